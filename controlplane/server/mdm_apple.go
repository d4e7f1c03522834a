package server

// Apple MDM wiring (owned by the Apple MDM work, controlplane/mdm/apple). Registered from
// init so this file is the whole hook, like hris.go. The service serves /mdm/connect,
// /mdm/checkin, /scep, /enroll/{token} and /mdm/ade/enroll (Mount), the admin routes
// under /api/v1/mdm (Routes), the push-certificate expiry warning (Warnings), the MDM view
// of GET /devices/{id} (DeviceDetails) and its re-push loop (Start).

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
)

func init() {
	capabilities = append(capabilities, capability{name: "mdm-apple", build: buildAppleMDM})
}

func buildAppleMDM(ctx context.Context, d *Deps) (any, error) {
	// One device, two channels: the agent capability's command service should register
	// svc.Channel() (agentapi.Channel) so Macs enrolled in MDM get lock/wipe over MDM.
	return apple.New(ctx, apple.Config{DB: d.DB, Keyring: d.Keyring, BaseURL: d.Config.PublicURL, Logger: d.Logger,
		APNsURL: d.Config.APNsURL, DEPURL: d.Config.DEPURL})
}
