package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ChannelInfo is an optional capability of a DeviceCommander: which channel would carry
// a command to a device ("agent", "mdm", or "" for none). Dry-run uses it.
type ChannelInfo interface {
	Channel(ctx context.Context, orgID, deviceID string) (string, error)
}

// DryRun is what an offboarding would do, computed without changing anything.
type DryRun struct {
	EmployeeID string `json:"employee_id"`
	Employee   string `json:"employee"`
	// RunAt is when it would run: the termination date at the org's offboarding hour,
	// or now.
	RunAt time.Time `json:"run_at"`
	// Automated is false when the org's plan lacks automation (nothing would run by itself).
	Automated bool `json:"automated"`
	// Existing is the employee's open offboarding, if one is already scheduled or running.
	Existing *store.Workflow `json:"existing,omitempty"`
	Steps    []DryRunStep    `json:"steps"`
}

// DryRunStep is one step and the things it would touch.
type DryRunStep struct {
	Kind        StepKind       `json:"kind"`
	Description string         `json:"description"`
	Targets     []DryRunTarget `json:"targets"`
}

// DryRunTarget is one app, device or retrieval a step would act on.
type DryRunTarget struct {
	Type   string `json:"type"` // app, device, retrieval
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	Action string `json:"action"`
	Note   string `json:"note,omitempty"`
}

// DryRunOffboarding shows every step an offboarding of the employee would run and the
// apps and devices it would touch. It only reads (including a read-only account lookup
// on app targets that support it).
func (e *Engine) DryRunOffboarding(ctx context.Context, orgID, employeeID string) (DryRun, error) {
	return e.dryRun(ctx, orgID, employeeID, true)
}

// dryRun computes the plan; lookup asks app targets whether the account exists.
func (e *Engine) dryRun(ctx context.Context, orgID, employeeID string, lookup bool) (DryRun, error) {
	org, err := e.db.GetOrg(ctx, orgID)
	if err != nil {
		return DryRun{}, err
	}
	emp, err := e.db.GetEmployee(ctx, orgID, employeeID)
	if err != nil {
		return DryRun{}, err
	}
	dr := DryRun{EmployeeID: emp.ID, Employee: displayName(emp), Automated: org.Plan.Allows(domain.FeatureAutomation), RunAt: e.clock.Now()}
	if emp.HR.TerminationDate != nil {
		dr.RunAt = e.offboardingAt(org, *emp.HR.TerminationDate)
	}
	if w, err := store.OpenWorkflowFor(ctx, e.db.SQL, orgID, employeeID, string(KindOffboarding)); err == nil {
		dr.Existing = &w
	} else if !errors.Is(err, store.ErrNotFound) {
		return dr, err
	}
	appTargets, err := e.dryRunApps(ctx, org, emp, lookup)
	if err != nil {
		return dr, err
	}
	devices, err := e.heldDevices(ctx, orgID, employeeID)
	if err != nil {
		return dr, err
	}
	var lock, retrieve, wipe, clean []DryRunTarget
	for _, d := range devices {
		name := fmt.Sprintf("%s %s (%s)", d.Model, d.SerialNumber, d.State)
		ch := ""
		if ci, ok := e.commands.(ChannelInfo); ok {
			if ch, err = ci.Channel(ctx, orgID, d.ID); err != nil {
				return dr, err
			}
		} else if e.commands != nil {
			ch = "agent or mdm"
		}
		if ch == "" {
			lock = append(lock, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "manual task",
				Note: "no agent and no MDM enrollment: a person must lock it"})
			wipe = append(wipe, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "manual task", Note: "no agent and no MDM enrollment"})
		} else {
			lock = append(lock, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "lock via " + ch, Note: "PIN generated and escrowed"})
			wipe = append(wipe, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "wipe via " + ch, Note: "after receipt at a warehouse"})
		}
		retrieve = append(retrieve, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "ship return kit",
			Note: "to " + formatAddress(emp.HR.Address)})
		clean = append(clean, DryRunTarget{Type: "device", ID: d.ID, Name: name, Action: "clean, then ready_for_redeploy"})
	}
	targets := map[StepKind][]DryRunTarget{StepRevokeApps: appTargets, StepLockDevices: lock, StepOpenRetrieval: retrieve,
		StepAwaitReceipt: retrieve, StepWipeDevices: wipe, StepCleanDevices: clean}
	for _, k := range Plan(KindOffboarding) {
		t := targets[k]
		if t == nil {
			t = []DryRunTarget{}
		}
		dr.Steps = append(dr.Steps, DryRunStep{Kind: k, Description: k.Describe(), Targets: t})
	}
	return dr, nil
}

func (e *Engine) dryRunApps(ctx context.Context, org domain.Org, emp domain.Employee, lookup bool) ([]DryRunTarget, error) {
	out := []DryRunTarget{}
	if !org.Plan.Allows(domain.FeatureAppAccess) || e.apps == nil {
		return out, nil
	}
	reg, modes, err := e.apps.Connectors(ctx, org.ID)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	sort.Strings(names)
	p := person(emp)
	for _, n := range names {
		mode := modes[n]
		if mode == "" {
			mode = apps.RevokeDeactivate
		}
		t := DryRunTarget{Type: "app", Name: n, Action: string(mode)}
		if lookup {
			a, err := reg[n].Find(ctx, p)
			switch {
			case errors.Is(err, apps.ErrNotFound):
				t.Action, t.Note = "none", "no account for "+p.UserName
			case err != nil:
				t.Note = "could not check the account: " + err.Error()
			case a.Active == nil:
				t.ID, t.Note = a.ID, "account "+a.UserName+" (the app does not say whether it is active)"
			case !*a.Active:
				t.ID, t.Action, t.Note = a.ID, "none", "account already inactive"
			default:
				t.ID, t.Note = a.ID, "active account "+a.UserName
			}
		}
		out = append(out, t)
	}
	return out, nil
}
