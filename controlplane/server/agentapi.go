package server

// Agent API wiring (controlplane/agentapi). The capability opens the embedded agent CA
// (keys sealed by the keyring) and serves the mTLS agent API on grpc-addr and enrollment
// on the next port (Start), the admin routes for device actions, tracking and enrollment
// secrets (Routes) and the "tracking" view of GET /devices/{id} (DeviceDetails). Its CA
// and its command model (Commands) are handed to the capabilities built after it (see
// buildCapabilities).

import (
	"context"
	"fmt"
	"net"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
)

func buildAgentAPI(ctx context.Context, d Deps) (*agentapi.Server, error) {
	// The server certificate names what agents dial (agent-url) plus loopback.
	names := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, _, err := net.SplitHostPort(d.Config.AgentURL); err == nil && host != "" && host != "localhost" {
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, host)
		}
	}
	limit, err := agentapi.ParseRateLimit(d.Config.EnrollRateLimit)
	if err != nil {
		return nil, fmt.Errorf("enroll-rate-limit: %w", err)
	}
	return agentapi.Open(ctx, d.DB, d.Keyring, agentapi.Config{AgentAddr: d.Config.GRPCAddr, DNSNames: names, IPs: ips, Logger: d.Logger,
		EnrollRateLimit: limit, RenewGrace: d.Config.AgentRenewGrace})
}
