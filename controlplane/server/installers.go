package server

// Installers wiring (installers/). The service serves GET /api/v1/installers,
// /api/v1/installers/builds, /api/v1/installers/{platform}, POST /api/v1/installers/links
// and the public GET /api/v1/installers/download/{token} (Routes).
//
// Agent binaries come from the directory of the running lanyard executable, where
// `make build` puts lanyard-agent-<goos>-<goarch>[.exe] beside bin/lanyard; packages are
// stored in the database (installer_blobs) so any replica serves any download link, and
// <data-dir>/installers is only scratch for a build in progress. Secrets are minted by controlplane/enrollment and the
// CA fingerprint is the agent API's CA.

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
	"github.com/lanyardhq/lanyard/pki"
)

func buildInstallers(d Deps, ca *pki.CA) (*installersvc.Service, error) {
	binDir := ""
	if exe, err := os.Executable(); err == nil {
		binDir = filepath.Dir(exe)
	}
	b := NewInstallerBuilder(d.Config, d.DB, ca.RootFingerprint, installers.Prebuilt{Dir: binDir}, d.Logger)
	svc, err := installersvc.New(b, d.DB, filepath.Join(d.Config.DataDir, "installers"), d.Logger)
	if err != nil {
		return nil, err
	}
	// Expiring public download links (onboarding e-mail, MDM InstallEnterpriseApplication).
	svc.Links = &installersvc.Links{Sealer: d.Keyring, BaseURL: d.Config.PublicURL}
	return svc, nil
}

// NewInstallerBuilder is the one place an agent package builder is made, for both the
// installers API and `lanyard installers build`, so every package carries the same
// addresses for the same config: the control-plane URL is public-url, the agent addresses
// agent-urls (else agent-url), and the enrollment address the first agent address's host
// with the port after its own,
// where the agent API's enrollment listener is (agentapi.Config: grpc-addr's port + 1).
// Leaving the enrollment address out would make the agent fall back to port 8444, wrong
// for any agent-url not on 8443. fingerprint is the agent CA root's (pki.CA.RootFingerprint).
func NewInstallerBuilder(cfg config.Config, db *store.DB, fingerprint func() string, agents installers.AgentBinaries, logger *slog.Logger) *installers.Builder {
	m := enrollment.Minter{Store: db, Fingerprint: fingerprint}
	addrs := agentAddresses(cfg)
	var list, enroll []string
	if len(addrs) > 1 { // one address stays the single grpc_address older configs have
		list = addrs
		for _, a := range addrs {
			enroll = append(enroll, enrollmentAddress(a))
		}
	}
	return &installers.Builder{
		ControlPlaneURL:     cfg.PublicURL,
		GRPCAddress:         addrs[0],
		GRPCAddresses:       list,
		EnrollmentAddress:   enrollmentAddress(addrs[0]),
		EnrollmentAddresses: enroll,
		Version:             installers.PackageVersion(Version),
		Secrets:             m,
		CA:                  m,
		Orgs:                db,
		Agents:              agents,
		Logger:              logger,
	}
}

// agentAddresses are the agent API addresses installers bake: agent-urls, else agent-url.
func agentAddresses(cfg config.Config) []string {
	var out []string
	for _, a := range strings.Split(cfg.AgentURLs, ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = []string{cfg.AgentURL}
	}
	return out
}

// enrollmentAddress mirrors agentapi's default enrollment listener: the agent address's
// port + 1 on the same host.
func enrollmentAddress(agentURL string) string {
	host, port, err := net.SplitHostPort(agentURL)
	if err != nil {
		return ""
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}
