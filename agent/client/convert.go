package client

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/agent/posture"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Wire conversion: the generated types stop here (agent/inventory and
// agent/actions have their own types).

func postureState(s posture.State) agentv1.PostureState {
	switch s {
	case posture.On:
		return agentv1.PostureState_POSTURE_STATE_ON
	case posture.Off:
		return agentv1.PostureState_POSTURE_STATE_OFF
	}
	return agentv1.PostureState_POSTURE_STATE_UNKNOWN
}

// inventoryProto converts inv; with sections non-nil only those sections
// are set (a delta report).
func inventoryProto(inv *inventory.Inventory, sections []string) *agentv1.Inventory {
	want := func(string) bool { return true }
	if sections != nil {
		set := map[string]bool{}
		for _, s := range sections {
			set[s] = true
		}
		want = func(s string) bool { return set[s] }
	}
	out := &agentv1.Inventory{}
	if want("hostname") {
		out.Hostname = inv.Hostname
	}
	if want("os") {
		o := inv.OS
		out.Os = &agentv1.OperatingSystem{Platform: o.Platform, Name: o.Name, Version: o.Version, Build: o.Build,
			KernelVersion: o.KernelVersion, Arch: o.Arch, Family: o.Family}
	}
	if want("hardware") {
		h := inv.Hardware
		out.Hardware = &agentv1.Hardware{SerialNumber: h.SerialNumber, HardwareUuid: h.HardwareUUID,
			Vendor: h.Vendor, Model: h.Model, HostId: h.HostID, SerialSource: wireSerialSource(h.SerialSource)}
	}
	if want("cpu") {
		out.Cpu = &agentv1.Cpu{Model: inv.CPU.Model, PhysicalCores: inv.CPU.PhysicalCores, LogicalCores: inv.CPU.LogicalCores}
	}
	if want("memory_bytes") {
		out.MemoryBytes = inv.MemoryBytes
	}
	if want("disks") {
		for _, d := range inv.Disks {
			out.Disks = append(out.Disks, &agentv1.Disk{Device: d.Device, Mountpoint: d.Mountpoint, Fstype: d.FSType,
				TotalBytes: d.TotalBytes, FreeBytes: d.FreeBytes, SerialNumber: d.Serial,
				Encrypted: agentv1.PostureState_POSTURE_STATE_UNKNOWN})
		}
	}
	if want("network_interfaces") {
		for _, n := range inv.NetworkInterfaces {
			out.NetworkInterfaces = append(out.NetworkInterfaces, &agentv1.NetworkInterface{Name: n.Name,
				MacAddress: n.MACAddress, IpAddresses: n.IPAddresses, Up: n.Up, Loopback: n.Loopback})
		}
	}
	if want("users") {
		for _, u := range inv.Users {
			out.Users = append(out.Users, &agentv1.User{Username: u.Username, Uid: u.UID, FullName: u.FullName,
				Home: u.Home, Admin: u.Admin, LoggedIn: u.LoggedIn})
		}
	}
	// uptime is not a hashed section; it travels with every report.
	out.UptimeSeconds = inv.UptimeSeconds
	if want("boot_time") && !inv.BootTime.IsZero() {
		out.BootTime = timestamppb.New(inv.BootTime)
	}
	if want("posture") {
		p := inv.Posture
		out.Posture = &agentv1.Posture{
			DiskEncryption: postureState(p.DiskEncryption), Firewall: postureState(p.Firewall),
			ScreenLock: postureState(p.ScreenLock), AutoUpdates: postureState(p.AutoUpdates),
			OsVersion: p.OSVersion, OsBuild: p.OSBuild, Details: p.Details,
		}
	}
	if want("agent_version") {
		out.AgentVersion = inv.AgentVersion
	}
	return out
}

var stepStatus = map[actions.StepStatus]agentv1.StepStatus{
	actions.StepOK:      agentv1.StepStatus_STEP_STATUS_OK,
	actions.StepFailed:  agentv1.StepStatus_STEP_STATUS_FAILED,
	actions.StepSkipped: agentv1.StepStatus_STEP_STATUS_SKIPPED,
	actions.StepDryRun:  agentv1.StepStatus_STEP_STATUS_DRY_RUN,
}

var resultState = map[actions.State]agentv1.CommandState{
	actions.Received:  agentv1.CommandState_COMMAND_STATE_RECEIVED,
	actions.Running:   agentv1.CommandState_COMMAND_STATE_RUNNING,
	actions.Done:      agentv1.CommandState_COMMAND_STATE_DONE,
	actions.Failed:    agentv1.CommandState_COMMAND_STATE_FAILED,
	actions.Simulated: agentv1.CommandState_COMMAND_STATE_SIMULATED,
}

func resultProto(r actions.Result) *agentv1.CommandResult {
	out := &agentv1.CommandResult{CommandId: r.CommandID, Error: r.Error, Message: r.Message}
	out.State = resultState[r.State]
	if out.State == agentv1.CommandState_COMMAND_STATE_UNSPECIFIED {
		out.State = agentv1.CommandState_COMMAND_STATE_FAILED
	}
	if !r.Finished.IsZero() {
		out.FinishedAt = timestamppb.New(r.Finished)
	}
	for _, s := range r.Steps {
		argv := s.Step.Argv
		if s.Step.Write != nil {
			argv = []string{"write", s.Step.Write.Path}
		}
		out.Steps = append(out.Steps, &agentv1.CommandStep{Name: s.Step.Name, Argv: argv, Status: stepStatus[s.Status],
			Output: s.Output, Error: s.Error, Destructive: s.Step.Destructive})
	}
	return out
}

// commandKind maps the wire type; collect-inventory is handled by the agent.
func commandKind(t agentv1.CommandType) (actions.Kind, bool) {
	switch t {
	case agentv1.CommandType_COMMAND_TYPE_LOCK:
		return actions.Lock, true
	case agentv1.CommandType_COMMAND_TYPE_UNLOCK:
		return actions.Unlock, true
	case agentv1.CommandType_COMMAND_TYPE_WIPE:
		return actions.Wipe, true
	case agentv1.CommandType_COMMAND_TYPE_MESSAGE:
		return actions.Message, true
	}
	return "", false
}

func commandType(k actions.Kind) agentv1.CommandType {
	switch k {
	case actions.Lock:
		return agentv1.CommandType_COMMAND_TYPE_LOCK
	case actions.Unlock:
		return agentv1.CommandType_COMMAND_TYPE_UNLOCK
	case actions.Wipe:
		return agentv1.CommandType_COMMAND_TYPE_WIPE
	case actions.Message:
		return agentv1.CommandType_COMMAND_TYPE_MESSAGE
	}
	return agentv1.CommandType_COMMAND_TYPE_UNSPECIFIED
}

// serialSourceOverride is what inventory.Collector records for a test
// override; the wire knows only it and "firmware".
const serialSourceOverride = "override:test"

// wireSerialSource maps the collector's detailed source ("dmi:product_serial",
// "not available: ...") to the wire's "firmware" or "override:test": only a
// test build's override is not the firmware's word (an empty serial is the
// firmware having none).
func wireSerialSource(src string) string {
	if src == serialSourceOverride {
		return serialSourceOverride
	}
	return "firmware"
}

func modeProto(m actions.Mode) *agentv1.AgentMode {
	return &agentv1.AgentMode{DryRun: m.DryRun, SerialOverridden: m.SerialOverridden}
}

func evidenceProto(ev *actions.Evidence) *agentv1.Evidence {
	out := &agentv1.Evidence{CommandId: ev.CommandID, Type: commandType(ev.Kind), SerialNumber: ev.Serial,
		HardwareUuid: ev.HardwareUUID, WipeMethod: ev.WipeMethod, FinalAction: ev.FinalAction, Mode: modeProto(ev.Mode)}
	if !ev.CheckedAt.IsZero() {
		out.CheckedAt = timestamppb.New(ev.CheckedAt)
	}
	for _, c := range ev.Checks {
		out.Checks = append(out.Checks, &agentv1.Check{Name: c.Name, Ok: c.OK, Observed: c.Observed, Expected: c.Expected})
	}
	return out
}

func actionCommand(c *agentv1.Command) actions.Command {
	kind, _ := commandKind(c.GetType())
	ac := actions.Command{ID: c.GetId(), Kind: kind, TargetSerial: c.GetTargetSerial()}
	if c.GetExpiresAt() != nil {
		ac.ExpiresAt = c.GetExpiresAt().AsTime()
	}
	p := c.GetParams()
	switch kind {
	case actions.Lock:
		ac.Message = first(c.GetLock().GetMessage(), p["message"])
		ac.EscrowedProtectors = append([]string(nil), c.GetLock().GetEscrowedProtectorIds()...)
	case actions.Wipe:
		ac.AllowBestEffort = c.GetWipe().GetAllowBestEffort()
	case actions.Message:
		ac.Title = first(c.GetMessage().GetTitle(), p["title"])
		ac.Message = first(c.GetMessage().GetBody(), p["body"], p["message"])
	}
	return ac
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
