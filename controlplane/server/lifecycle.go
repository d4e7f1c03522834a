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
		// Non-Mac enrollment: IT downloads the org's agent installer (enrollment secret
		// baked in) and sends it to the employee.
		InstallerURL: func(_ context.Context, _ string, p domain.Platform) (string, error) {
			name := map[domain.Platform]string{domain.PlatformWindows: "windows-msi", domain.PlatformLinux: "linux-deb",
				domain.PlatformMacOS: "macos-pkg"}[p]
			if name == "" {
				name = "linux-deb"
			}
			return d.Config.PublicURL + "/api/v1/installers/" + name, nil
		}}), nil
}
