package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

type deviceView struct {
	Device      domain.Device
	Tracking    *trackingView
	MDM         *apple.DeviceMDM
	Assignee    *domain.Employee
	Assignments []assignmentRow
	Commands    []store.DeviceCommand
	// CommandsNote explains an empty command list the API refused (plan, role).
	CommandsNote string
	MDMCommands  []store.MDMCommand
	Transitions  []domain.DeviceState
	// Key makes one rendering's lock/wipe forms idempotent (a double submit is one command).
	Key      string
	Locked   bool
	Assigned bool
}

type trackingView struct {
	store.DeviceTracking
	Posture   posture
	Inventory string // indented JSON
	Escrowed  int
}

type assignmentRow struct {
	domain.Assignment
	Name string
}

func devicePage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	id := url.PathEscape(r.PathValue("id"))
	var dv struct {
		domain.Device
		Details deviceDetails `json:"details"`
	}
	if err := c.call(r, rq, "GET", "/api/v1/devices/"+id, nil, &dv); err != nil {
		return err
	}
	v := deviceView{Device: dv.Device, MDM: dv.Details.MDM, Key: randomToken(), Assigned: dv.AssignedEmployeeID != ""}
	if t := dv.Details.Tracking; t != nil {
		tv := &trackingView{DeviceTracking: t.DeviceTracking, Escrowed: len(t.EscrowedRecoveryKeys)}
		if len(t.Posture) > 0 {
			// The posture as the agent reported it; the list API reads the same fields.
			tv.Posture = parsePosture(t.Posture)
		}
		if len(t.Inventory) > 0 {
			var buf bytes.Buffer
			if json.Indent(&buf, t.Inventory, "", "  ") == nil {
				tv.Inventory = buf.String()
			}
		}
		v.Tracking = tv
		v.Locked = t.LockedByCommandID != ""
	}
	for _, s := range domain.AllDeviceStates {
		if domain.CanTransition(v.Device.State, s) && s != domain.StateAssigned {
			v.Transitions = append(v.Transitions, s)
		}
	}
	if v.Assigned {
		var e domain.Employee
		if err := c.call(r, rq, "GET", "/api/v1/employees/"+url.PathEscape(v.Device.AssignedEmployeeID), nil, &e); err == nil {
			v.Assignee = &e
		}
	}
	var as api.List[domain.Assignment]
	if err := c.call(r, rq, "GET", "/api/v1/devices/"+id+"/assignments?limit=20", nil, &as); err != nil {
		return err
	}
	names := map[string]string{}
	for _, a := range as.Items {
		if _, ok := names[a.EmployeeID]; !ok && len(names) < 20 {
			var e domain.Employee
			if c.call(r, rq, "GET", "/api/v1/employees/"+url.PathEscape(a.EmployeeID), nil, &e) == nil {
				names[a.EmployeeID] = e.HR.FirstName + " " + e.HR.LastName
			}
		}
		v.Assignments = append(v.Assignments, assignmentRow{Assignment: a, Name: names[a.EmployeeID]})
	}
	var cmds api.List[store.DeviceCommand]
	if err := c.call(r, rq, "GET", "/api/v1/devices/"+id+"/actions?limit=20", nil, &cmds); err != nil {
		ce, ok := api.AsCallError(err)
		if !ok || ce.Status >= 500 {
			return err
		}
		v.CommandsNote = ce.Detail
	}
	v.Commands = cmds.Items
	if v.MDM != nil {
		var mc apple.CommandList
		if err := c.call(r, rq, "GET", "/api/v1/mdm/devices/"+id+"/commands?limit=20", nil, &mc); err == nil {
			v.MDMCommands = mc.Items
		}
	}
	c.namePeople(r, rq)
	return c.render(w, rq, http.StatusOK, "device", "", v.Device.SerialNumber, "devices", v)
}

// parsePosture reads the agent's posture report (protojson of agent.v1.Posture).
func parsePosture(raw json.RawMessage) posture {
	var p struct {
		DiskEncryption string `json:"disk_encryption"`
		Firewall       string `json:"firewall"`
		ScreenLock     string `json:"screen_lock"`
		OSVersion      string `json:"os_version"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return posture{}
	}
	word := func(s string) string {
		switch s {
		case "POSTURE_STATE_ON":
			return "on"
		case "POSTURE_STATE_OFF":
			return "off"
		case "":
			return ""
		}
		return "unknown"
	}
	return posture{DiskEncryption: word(p.DiskEncryption), Firewall: word(p.Firewall), ScreenLock: word(p.ScreenLock), OSVersion: p.OSVersion}
}
