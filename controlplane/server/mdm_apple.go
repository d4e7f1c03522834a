package server

// Apple MDM wiring (owned by the Apple MDM work, controlplane/mdm/apple). Registered from
// init so this file is the whole hook, like hris.go. The service serves /mdm/connect,
// /mdm/checkin, /scep, /enroll/{token} and /mdm/ade/enroll (Mount), the admin routes
// under /api/v1/mdm (Routes), the push-certificate expiry warning (Warnings), the MDM view
// of GET /devices/{id} (DeviceDetails) and its re-push loop (Start).

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
)

// The MDM channel plugs into the agent API's shared command model.
var _ agentapi.Channel = (*apple.Channel)(nil)

func init() {
	capabilities = append(capabilities, capability{name: "mdm-apple", build: buildAppleMDM})
}

func buildAppleMDM(ctx context.Context, d *Deps) (any, error) {
	svc, err := apple.New(ctx, apple.Config{DB: d.DB, Keyring: d.Keyring, BaseURL: d.Config.PublicURL, Logger: d.Logger,
		APNsURL: d.Config.APNsURL, DEPURL: d.Config.DEPURL, AgentPackage: mdmAgentPackage(d)})
	if err != nil {
		return nil, err
	}
	// One device, two channels: Macs enrolled in MDM get lock/wipe/collect_inventory from
	// POST /api/v1/devices/{id}/actions over MDM. (If the agent API is built after this
	// capability, its wiring registers svc.Channel() the same way.)
	for _, b := range d.Built {
		if a, ok := b.(*agentapi.Server); ok && a.Commands != nil {
			a.Commands.RegisterChannel(svc.Channel())
		}
	}
	return svc, nil
}
