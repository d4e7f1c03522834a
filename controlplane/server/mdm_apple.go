package server

// Apple MDM wiring (controlplane/mdm/apple). The service serves /mdm/connect,
// /mdm/checkin, /scep, /enroll/{token} and /mdm/ade/enroll (Mount), the admin routes
// under /api/v1/mdm (Routes), the push-certificate expiry warning (Warnings), the MDM view
// of GET /devices/{id} (DeviceDetails) and its re-push loop (Start).

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// The MDM channel plugs into the agent API's shared command model.
var _ agentapi.Channel = (*apple.Channel)(nil)

// channelRegistry is the part of agentapi.Commands the MDM wiring uses.
type channelRegistry interface{ RegisterChannel(agentapi.Channel) }

// buildAppleMDM builds the MDM service and registers its channel on the shared command
// model, so a Mac with a live MDM enrollment gets lock, wipe and collect_inventory from
// POST /api/v1/devices/{id}/actions (and from lifecycle) over MDM. The agent .pkg that
// enrolled Macs install comes from the installers service.
func buildAppleMDM(ctx context.Context, d Deps, commands channelRegistry, inst *installersvc.Service) (*apple.Service, error) {
	svc, err := apple.New(ctx, apple.Config{DB: d.DB, Keyring: d.Keyring, BaseURL: d.Config.PublicURL, Logger: d.Logger,
		APNsURL: d.Config.APNsURL, DEPURL: d.Config.DEPURL, AgentPackage: mdmAgentPackage(d, inst)})
	if err != nil {
		return nil, err
	}
	commands.RegisterChannel(svc.Channel())
	return svc, nil
}
