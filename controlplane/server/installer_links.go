package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/installers"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// installerLink makes an expiring public download link to the org's agent package for a
// platform, so onboarding can send it to the new hire and MDM can hand it to a Mac.
func installerLink(ctx context.Context, svc *installersvc.Service, orgID string, p domain.Platform) (installersvc.Link, error) {
	name := map[domain.Platform]installers.Platform{domain.PlatformWindows: "windows-msi", domain.PlatformLinux: "linux-deb",
		domain.PlatformMacOS: "macos-pkg"}[p]
	if name == "" {
		return installersvc.Link{}, fmt.Errorf("no agent installer for platform %q", p)
	}
	tg, err := installers.ParseTarget(string(name), "")
	if err != nil {
		return installersvc.Link{}, err
	}
	if svc == nil {
		return installersvc.Link{}, errors.New("the installers capability is not running in this server")
	}
	return svc.Link(ctx, orgID, tg, 0, false)
}

// mdmAgentPackage gives MDM the agent .pkg for InstallEnterpriseApplication. Apple only
// fetches the manifest and package over https, so a plain-http public URL (make run) is
// reported instead of sending a command every Mac would fail.
func mdmAgentPackage(d Deps, inst *installersvc.Service) func(ctx context.Context, orgID string) (*apple.AgentPackage, error) {
	return func(ctx context.Context, orgID string) (*apple.AgentPackage, error) {
		if !strings.HasPrefix(d.Config.PublicURL, "https://") {
			return nil, fmt.Errorf("public-url %s is not https: Macs cannot download the agent package over MDM", d.Config.PublicURL)
		}
		l, err := installerLink(ctx, inst, orgID, domain.PlatformMacOS)
		if err != nil {
			return nil, err
		}
		return &apple.AgentPackage{URL: l.URL, SHA256: l.SHA256, Size: l.Size, Version: l.Version}, nil
	}
}
