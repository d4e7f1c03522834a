package server

import (
	"context"
	"fmt"
	"github.com/lanyardhq/lanyard/controlplane/apps/google/fakegoogle"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/dashboard"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/senders"
	"github.com/lanyardhq/lanyard/controlplane/watch"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// auditChainEvery is how often the leader links new audit rows into the hash chain; it
// bounds the window in which a row is not yet covered (docs/operations.md, "Audit log").
const auditChainEvery = 30 * time.Second

// watchEvery is how often the watcher looks for time-based facts; a prompt is at most this
// late, and every scan is cheap (indexed, and a fact already emitted costs one no-op insert).
const watchEvery = time.Minute

// capabilities are the parts of the control plane, built once by buildCapabilities. The
// server inspects each for optional interfaces:
//
//	Routes() []api.Route                 admin API routes
//	Mount(*http.ServeMux)                other HTTP endpoints (webhooks, MDM, SCEP)
//	Start(ctx) error                     a background loop (gRPC server, push loop); runs until ctx ends
//	Ready(ctx) error                     fails /readyz
//	Warnings(ctx) []string               shown on /readyz
//	DeviceDetails(ctx, org, id)          adds a view to GET /devices/{id}
type capabilities struct {
	// auth is admins as people: users, sign-in, sessions (its routes: /me, /users, /sessions).
	auth       *auth.Service
	agentAPI   *agentapi.Server
	installers *installersvc.Service
	mdm        *apple.Service
	hr         *hrsync.Engine
	lifecycle  *lifecycle.Engine
	dashboard  *dashboard.Service
	// demoJustworks is the in-process fake Justworks of `make run` (nil otherwise).
	demoJustworks *fakejustworks.Server
	sso           *oidc.Service
	// demoOIDC is the in-process fake OpenID Provider of `make run` (nil otherwise).
	demoOIDC *fakeoidc.Server
	// demoGoogle is the in-process fake Google Workspace of `make run` (nil otherwise).
	demoGoogle *fakegoogle.Server
	// audit chains the audit log and verifies it (GET /api/v1/audit/verify).
	audit *auditchain.Service
	// notify turns outbox events into email, Slack, webhook and log messages.
	notify *notify.Engine
	// demoInbox is the in-process SMTP server of `make run` (nil otherwise).
	demoInbox *demoInbox
}

// list returns the capabilities in build order.
func (c *capabilities) list() []any {
	out := []any{c.auth, c.agentAPI, c.installers, c.mdm, c.hr, c.lifecycle, c.sso, c.dashboard, c.audit, c.notify}
	if c.demoInbox != nil {
		out = append(out, c.demoInbox)
	}
	return out
}

// buildCapabilities builds every capability in dependency order, handing each the ones it
// uses directly (no registry, no lookup by type), so a missing dependency is a compile
// error rather than a start-up order that silently leaves a channel out:
//
//  0. auth: users, sessions and sign-in (needs only the store and the keyring);
//  1. the agent API: the agent CA and the shared device command model (agent channel);
//  2. installers: the CA fingerprint from 1 (baked into every package);
//  3. Apple MDM: its channel registered on 1's command model (Macs enrolled in MDM get
//     lock and wipe over MDM), the agent .pkg for InstallEnterpriseApplication from 2;
//  4. HR sync (the fake Justworks with --demo);
//  5. lifecycle: lock and wipe through 1's command model (with 3's channel on it), ADE
//     and Mac enrollment links from 3, agent installer links from 2;
//  6. single sign-on, handing the people it verified to 0 (the fake provider with --demo).
//  7. the dashboard: read-only aggregates over the store (the APNs certificate section
//     because 3 is built).
//  8. the audit hash chain: its checkpoint key sealed by the keyring; chains after
//     commit, so it depends on nothing above.
//  9. notifications: consume the outbox; new hires' links from 2 (installers) and 3
//     (Mac enrollment links).
func buildCapabilities(ctx context.Context, d Deps) (*capabilities, error) {
	c := &capabilities{}
	c.auth = auth.New(auth.Options{DB: d.DB, Keyring: d.Keyring, Logger: d.Logger.With("component", "auth"), PublicURL: d.Config.PublicURL})
	var err error
	if c.agentAPI, err = buildAgentAPI(ctx, d); err != nil {
		return nil, fmt.Errorf("build agentapi: %w", err)
	}
	if c.installers, err = buildInstallers(d, c.agentAPI.CA()); err != nil {
		return nil, fmt.Errorf("build installers: %w", err)
	}
	if c.mdm, err = buildAppleMDM(ctx, d, c.agentAPI.Commands, c.installers); err != nil {
		return nil, fmt.Errorf("build mdm-apple: %w", err)
	}
	if c.hr, c.demoJustworks, err = buildHRIS(d); err != nil {
		return nil, fmt.Errorf("build hris: %w", err)
	}
	c.lifecycle = buildLifecycle(d, c.agentAPI.Commands, c.mdm, c.installers)
	if c.sso, c.demoOIDC, err = buildSSO(d, c.auth); err != nil {
		return nil, fmt.Errorf("build sso: %w", err)
	}
	c.dashboard = dashboard.New(dashboard.Deps{Devices: d.DB, Workflows: d.DB, Approvals: d.DB, HRSync: d.DB, PushCerts: d.DB})
	if c.audit, err = auditchain.New(ctx, d.DB, d.Keyring, auditchain.Options{Logger: d.Logger}); err != nil {
		return nil, fmt.Errorf("build audit chain: %w", err)
	}
	c.audit.RegisterJobs(d.JobRegistry, auditChainEvery)
	// Time-based prompts (overdue tasks, silent devices, APNs expiry, the digest) for the
	// notification engine, which reads them from the outbox.
	watch.New(d.DB, watch.Options{Logger: d.Logger}).RegisterJobs(d.JobRegistry, watchEvery)
	nd, err := notifySenders(d)
	if err != nil {
		return nil, fmt.Errorf("build notify: %w", err)
	}
	if d.Config.Demo {
		if c.demoGoogle, err = startDemoGoogle(context.Background()); err != nil {
			return nil, fmt.Errorf("start the demo Google Workspace: %w", err)
		}
		if c.demoInbox, err = startDemoInbox(); err != nil {
			return nil, fmt.Errorf("start the demo inbox: %w", err)
		}
		nd.Email = senders.Mail{Roots: c.demoInbox.smtp.RootCAs()}
	}
	c.notify = buildNotify(d, nd, c.mdm, c.installers)
	return c, nil
}
