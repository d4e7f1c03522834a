package server

// Lifecycle wiring (owned by the lifecycle work, controlplane/lifecycle). Registered from
// init so this file is the whole hook, like hris.go. The engine serves the workflow,
// task, offboarding (dry-run), procurement, retrieval, warehouse, asset and app-access
// routes (Routes), runs its River step worker on the "lifecycle" queue, and consumes the
// outbox and timers on every replica (Start). It finds the agent API (lock/wipe through
// the shared command model) and the Apple MDM service (ADE, enrollment links) in d.Built
// when it needs them.

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
)

func init() {
	capabilities = append(capabilities, capability{name: "lifecycle", build: buildLifecycle})
}

func buildLifecycle(_ context.Context, d *Deps) (any, error) {
	return wiring.New(wiring.Deps{DB: d.DB, Keys: d.Keyring, Jobs: d.Jobs, Registry: d.JobRegistry, Logger: d.Logger, Metrics: d.Registry,
		Built: func() []any { return d.Built },
		// Non-Mac enrollment: an expiring public link to the org's agent installer
		// (enrollment secret baked in) for the new hire; when no package can be built
		// here (no agent binaries beside lanyard), the admin download route instead.
		InstallerURL: func(ctx context.Context, orgID string, p domain.Platform) (string, error) {
			l, err := installerLink(ctx, d, orgID, p)
			if err == nil {
				return l.URL, nil
			}
			d.Logger.Warn("installer link unavailable; falling back to the admin download route", "component", "lifecycle", "org_id", orgID, "err", err)
			name := map[domain.Platform]string{domain.PlatformWindows: "windows-msi", domain.PlatformMacOS: "macos-pkg"}[p]
			if name == "" {
				name = "linux-deb"
			}
			return d.Config.PublicURL + "/api/v1/installers/" + name, nil
		}}), nil
}
