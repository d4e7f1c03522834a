package server

// Lifecycle wiring (controlplane/lifecycle). The engine serves the workflow, task,
// offboarding (dry-run), procurement, retrieval, warehouse, asset and app-access routes
// (Routes), runs its River step worker on the "lifecycle" queue, and consumes the outbox
// and timers on every replica (Start).

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/apps/entra"
	"github.com/lanyardhq/lanyard/controlplane/apps/github"
	"github.com/lanyardhq/lanyard/controlplane/apps/google"
	"github.com/lanyardhq/lanyard/controlplane/apps/okta"
	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// connectorBuilders are the app connector kinds this server can build, one Builder
// per kind (explicit: no init() registration).
func connectorBuilders(db *store.DB) map[string]apps.Builder {
	return map[string]apps.Builder{
		"scim":   apps.BuildSCIM,
		"entra":  entra.Build,
		"github": github.Build,
		// The leaver's Drive goes to the manager HR names (Justworks' manager id,
		// kept with the member); with none, the transfer is a manual task.
		"google": google.Builder(google.WithManagerLookup(func(ctx context.Context, p apps.Person) (string, error) {
			return db.ManagerWorkEmail(ctx, p.ExternalID)
		})),
		"okta":  okta.Build,
		"slack": slackscim.Build,
	}
}

// buildLifecycle builds the engine on the shared command model (lock and wipe, over the
// agent or, with the MDM channel registered on it, MDM), the Apple MDM service (ADE and
// Mac enrollment links) and the installers (agent installer links for other platforms).
func buildLifecycle(d Deps, commands wiring.Submitter, mdm *apple.Service, inst *installersvc.Service) *lifecycle.Engine {
	return wiring.New(wiring.Deps{DB: d.DB, Keys: d.Keyring, Jobs: d.Jobs, Registry: d.JobRegistry, Logger: d.Logger, Metrics: d.Registry,
		Commands: commands, MDM: mdm, Connectors: connectorBuilders(d.DB),
		// Non-Mac enrollment: an expiring public link to the org's agent installer
		// (enrollment secret baked in) for the new hire; when no package can be built
		// here (no agent binaries beside lanyard), the admin download route instead.
		InstallerURL: func(ctx context.Context, orgID string, p domain.Platform) (string, error) {
			l, err := installerLink(ctx, inst, orgID, p)
			if err == nil {
				return l.URL, nil
			}
			d.Logger.Warn("installer link unavailable; falling back to the admin download route", "component", "lifecycle", "org_id", orgID, "err", err)
			name := map[domain.Platform]string{domain.PlatformWindows: "windows-msi", domain.PlatformMacOS: "macos-pkg"}[p]
			if name == "" {
				name = "linux-deb"
			}
			return d.Config.PublicURL + "/api/v1/installers/" + name, nil
		}})
}
