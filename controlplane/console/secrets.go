package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// secretsView is the reveal page of a device: the buttons, and after a reveal the values.
type secretsView struct {
	Device       api.DeviceView
	Escrowed     []agentapi.EscrowedKey
	PINCommands  []store.MDMCommand
	RecoveryKeys []agentapi.RecoveryKeyView
	PIN          *apple.PINView
	Revealed     bool
}

// deviceSecretsPage offers the reveals. The API decides whether the session's last proof
// is recent enough; when it is not, the reveal lands on /reauth and comes back here.
func deviceSecretsPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v, err := c.loadSecretsView(r, rq, r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "secrets", "", "Secrets of "+v.Device.SerialNumber, "devices", v)
}

func (c *Console) loadSecretsView(r *http.Request, rq *request, deviceID string) (secretsView, error) {
	var v secretsView
	if err := c.call(r, rq, "GET", "/api/v1/devices/"+url.PathEscape(deviceID), nil, &v.Device); err != nil {
		return v, err
	}
	var d deviceDetails
	if raw, err := json.Marshal(v.Device.Details); err == nil {
		_ = json.Unmarshal(raw, &d)
	}
	if d.Tracking != nil {
		v.Escrowed = d.Tracking.EscrowedRecoveryKeys
	}
	if d.MDM != nil {
		var cmds apple.CommandList
		if err := c.call(r, rq, "GET", "/api/v1/mdm/devices/"+url.PathEscape(deviceID)+"/commands?limit=50", nil, &cmds); err == nil {
			for _, cmd := range cmds.Items {
				if cmd.RequestType == "DeviceLock" || cmd.RequestType == "EraseDevice" {
					v.PINCommands = append(v.PINCommands, cmd)
				}
			}
		}
	}
	return v, nil
}

// deviceDetails are the capability views GET /devices/{id} adds.
type deviceDetails struct {
	Tracking *agentapi.TrackingView `json:"tracking"`
	MDM      *apple.DeviceMDM       `json:"apple_mdm"`
}

func revealRecoveryKeys(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var keys api.List[agentapi.RecoveryKeyView]
	if err := json.Unmarshal(raw, &keys); err != nil {
		return fmt.Errorf("decode recovery keys: %w", err)
	}
	v, err := c.loadSecretsView(r, rq, r.PathValue("id"))
	if err != nil {
		return err
	}
	v.RecoveryKeys, v.Revealed = keys.Items, true
	return c.render(w, rq, http.StatusOK, "secrets", "", "Secrets of "+v.Device.SerialNumber, "devices", v)
}

func revealPIN(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var pin apple.PINView
	if err := json.Unmarshal(raw, &pin); err != nil {
		return fmt.Errorf("decode pin: %w", err)
	}
	var cmd store.MDMCommand
	if err := c.call(r, rq, "GET", "/api/v1/mdm/commands/"+url.PathEscape(r.PathValue("id")), nil, &cmd); err != nil {
		return err
	}
	v, err := c.loadSecretsView(r, rq, cmd.DeviceID)
	if err != nil {
		return err
	}
	v.PIN, v.Revealed = &pin, true
	return c.render(w, rq, http.StatusOK, "secrets", "", "Secrets of "+v.Device.SerialNumber, "devices", v)
}

func offboardScheduled(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	return c.done(w, r, "/people/"+url.PathEscape(r.PathValue("id")), "Offboarding scheduled.")
}
