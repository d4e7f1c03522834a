package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// agentAPIServiceConfig is pick_first over a shuffled address list: each agent settles on
// one replica, a fleet spreads over all of them, and when the replica's connection breaks
// the next RPC (the reconnecting stream, after the connect loop's jittered backoff) tries
// the other addresses in turn instead of waiting for that replica to come back. An address
// that does not answer delays the next by pick_first's 250 ms happy-eyeballs interval only.
const agentAPIServiceConfig = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// dialAgentAPI opens one gRPC channel over every agent API address. Each connection is
// verified like a single address always was: mTLS with the device certificate, and the
// server's chain must reach the enrolled roots and name the host of the address being
// dialed (grpc sets the TLS server name per address from resolver.Address.ServerName).
// A longer list therefore only adds servers that hold a certificate from this control
// plane's CA; it cannot weaken the check.
func dialAgentAPI(addrs []string, roots *x509.CertPool, h *certHolder) (*grpc.ClientConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("client: no agent API address")
	}
	state := resolver.State{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("client: grpc address %q: %w", a, err)
		}
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	// A per-channel builder (not resolver.Register): no global state, one list per Agent.
	r := manual.NewBuilderWithScheme("lanyard-agent")
	r.InitialState(state)
	tc := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// ServerName stays empty so grpc fills it from each address's ServerName.
		RootCAs:              roots,
		GetClientCertificate: h.get,
		// Resumption skips the certificate exchange and signatures of a full handshake
		// (~30% of its server CPU): a reconnect to a replica that issued the ticket is
		// cheaper, which matters when a fleet reconnects at once. The server still checks
		// revocation of the resumed identity (verifyConnection runs on resumptions).
		ClientSessionCache: tls.NewLRUClientSessionCache(len(addrs) * 2),
	}
	opts := append(TransportOptions(),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(agentAPIServiceConfig),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	conn, err := grpc.NewClient(r.Scheme()+":///agent-api", opts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %v: %w", addrs, err)
	}
	return conn, nil
}
