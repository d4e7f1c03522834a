package server

// Installers wiring (owned by the installers work, installers/). Registered from init so
// this file is the whole hook, like hris.go. The service serves GET /api/v1/installers,
// /api/v1/installers/builds, /api/v1/installers/{platform}, POST /api/v1/installers/links
// and the public GET /api/v1/installers/download/{token} (Routes).
//
// Agent binaries come from the directory of the running lanyard executable, where
// `make build` puts lanyard-agent-<goos>-<goarch>[.exe] beside bin/lanyard; packages are
// cached under <data-dir>/installers. Secrets are minted by controlplane/enrollment and the
// CA fingerprint comes from the agent API's CA, looked up when a package is built.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/installers"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

func init() {
	capabilities = append(capabilities, capability{name: "installers", build: buildInstallers})
}

// builtCA finds the agent API's CA among the built capabilities (at call time, so the
// order of the capability list does not matter).
type builtCA struct{ d *Deps }

func (b builtCA) CAFingerprint(context.Context, string) (string, error) {
	for _, c := range b.d.Built {
		if a, ok := c.(*agentapi.Server); ok && a.CA() != nil {
			return a.CA().RootFingerprint(), nil
		}
	}
	return "", errors.New("installers: the agent API (and its CA) is not running in this server")
}

func buildInstallers(_ context.Context, d *Deps) (any, error) {
	binDir := ""
	if exe, err := os.Executable(); err == nil {
		binDir = filepath.Dir(exe)
	}
	b := &installers.Builder{
		ControlPlaneURL:   d.Config.PublicURL,
		GRPCAddress:       d.Config.AgentURL,
		EnrollmentAddress: enrollmentAddress(d.Config.AgentURL),
		Version:           installers.PackageVersion(Version),
		Secrets:           enrollment.Minter{Store: d.DB},
		CA:                builtCA{d},
		Orgs:              d.DB,
		Agents:            installers.Prebuilt{Dir: binDir},
		Logger:            d.Logger,
	}
	svc, err := installersvc.New(b, d.DB, filepath.Join(d.Config.DataDir, "installers"), d.Logger)
	if err != nil {
		return nil, err
	}
	// Expiring public download links (onboarding e-mail, MDM InstallEnterpriseApplication).
	svc.Links = &installersvc.Links{Sealer: d.Keyring, BaseURL: d.Config.PublicURL}
	return svc, nil
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
