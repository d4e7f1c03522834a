package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Unlocking after a cancelled offboarding. A termination that is canceled (or a rehire,
// or an admin's cancel) after the lock step ran must not leave the laptop locked with
// nobody told: every device the lock may have locked gets an "Unlock" task naming the
// command to run, and POST /api/v1/workflows/{id}/unlock sends the unlocks for the
// agent-locked ones. Nothing unlocks by itself: a person decides, and it is audited.

// byHandAudit is the device audit action written when a person completes a manual lock
// or wipe task (the device proved nothing; the person vouches for it).
var byHandAudit = map[string]string{"manual_lock": "device.locked_by_hand", "manual_wipe": "device.wiped_by_hand"}

func commandVerb(stepKind string) string {
	if stepKind == string(StepWipeDevices) {
		return "wipe"
	}
	return "lock"
}

// lockTarget is a device the offboarding's lock step may have locked.
type lockTarget struct {
	step   store.WorkflowStep
	result deviceResult
	// how: "agent", "mdm", "hand" (a person locked it), or "" (nothing was sent).
	how string
}

// lockTargets lists the devices of w's lock step that are or may be locked: the lock
// was done, done by hand, still on its way when the workflow stopped, or failed or
// expired after the device may have run part of it. Simulated, canceled and unsent
// locks changed nothing and are left out.
func lockTargets(ctx context.Context, q store.Querier, w store.Workflow) ([]lockTarget, error) {
	for _, s := range w.Steps {
		if s.Kind != string(StepLockDevices) {
			continue
		}
		tasks, err := store.TasksOfStep(ctx, q, s.ID)
		if err != nil {
			return nil, err
		}
		var out []lockTarget
		for _, r := range deviceResults(s.Output) {
			t := lockTarget{step: s, result: r, how: r.Channel}
			for _, tk := range tasks {
				if tk.Kind == "manual_lock" && tk.SubjectID == r.DeviceID && tk.State == "done" {
					t.how, t.result.DoneBy, t.result.ManualTask = "hand", tk.CompletedBy, tk.ID
				}
			}
			switch {
			case t.how == "hand":
			case r.CommandID == "":
				continue
			case r.State == CommandSimulated || r.State == CommandCanceled:
				continue
			}
			out = append(out, t)
		}
		return out, nil
	}
	return nil, nil
}

// offerUnlocks opens an "Unlock" task per device w's lock step may have locked (inside
// the cancelling transaction, after the workflow's other tasks were cancelled).
func (e *Engine) offerUnlocks(ctx context.Context, tx *sql.Tx, w store.Workflow, reason string) (int, error) {
	targets, err := lockTargets(ctx, tx, w)
	if err != nil || len(targets) == 0 {
		return 0, err
	}
	emp, err := store.GetEmployee(ctx, tx, w.OrgID, w.EmployeeID)
	if err != nil {
		return 0, err
	}
	for _, t := range targets {
		dev, err := store.GetDevice(ctx, tx, w.OrgID, t.result.DeviceID)
		if err != nil {
			return 0, err
		}
		task := store.LifecycleTask{OrgID: w.OrgID, WorkflowID: w.ID, StepID: t.step.ID, Kind: "unlock_device", SubjectID: dev.ID,
			Title:    fmt.Sprintf("Unlock %s (%s) of %s", dev.Model, dev.SerialNumber, displayName(emp)),
			Detail:   unlockDetail(w, t, dev, reason),
			Assignee: e.cfg.DefaultAssignee}
		due := e.clock.Now().Add(e.cfg.TaskDue)
		task.DueAt = &due
		if err := store.InsertTask(ctx, tx, &task); err != nil {
			return 0, err
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.task.created", "task", task.ID, nil, task)); err != nil {
			return 0, err
		}
	}
	return len(targets), nil
}

// unlockDetail says how to unlock one device, in the admin's terms.
func unlockDetail(w store.Workflow, t lockTarget, dev domain.Device, reason string) string {
	r := t.result
	why := fmt.Sprintf("The offboarding was cancelled (%s)", reason)
	agentHow := fmt.Sprintf("Unlock it with `lanyardctl devices unlock %s` (POST /api/v1/devices/%s/actions {\"type\":\"unlock\"}), or every device of this offboarding at once with POST /api/v1/workflows/%s/unlock. "+
		"The agent restores exactly what the lock changed and reports proof; complete this task once the unlock is done.", dev.ID, dev.ID, w.ID)
	switch {
	case t.how == "hand":
		return fmt.Sprintf("%s after %s was locked by hand by %s (task %s). Unlock it the same way, then complete this task.", why, dev.SerialNumber, r.DoneBy, r.ManualTask)
	case t.how == store.ChannelMDM:
		return fmt.Sprintf("%s after this Mac was sent MDM DeviceLock (command %s, %s). A DeviceLock cannot be undone remotely: unlock it at the Mac with its 6-digit PIN, "+
			"shown by `lanyardctl mdm pin %s` (GET /api/v1/mdm/commands/%s/pin, audited). Complete this task once the Mac is unlocked.", why, r.CommandID, r.State, r.CommandID, r.CommandID)
	case r.Outcome == outcomeDone:
		return fmt.Sprintf("%s after %s was locked (command %s, proven by the device). It stays locked until you unlock it. %s", why, dev.SerialNumber, r.CommandID, agentHow)
	case r.Outcome == outcomeWaiting:
		return fmt.Sprintf("%s while the lock command %s was still %s: if it is still queued, cancel it (POST /api/v1/device-actions/%s/cancel); otherwise the device locks when it runs it. %s",
			why, r.CommandID, r.State, r.CommandID, agentHow)
	default:
		return fmt.Sprintf("%s after the lock command %s ended %s (%s): the device may be partly locked. %s", why, r.CommandID, r.State, orDefault(r.Reason, "no reason given"), agentHow)
	}
}

// UnlockResult is what POST /api/v1/workflows/{id}/unlock did for one device.
type UnlockResult struct {
	DeviceID     string `json:"device_id"`
	SerialNumber string `json:"serial_number"`
	// LockCommandID is the lock this unlock undoes.
	LockCommandID string `json:"lock_command_id,omitempty"`
	// CommandID and State are the unlock command's (agent channel).
	CommandID string `json:"command_id,omitempty"`
	State     string `json:"state,omitempty"`
	// Reason is why no unlock could be sent, or why it ended without being done.
	Reason string `json:"reason,omitempty"`
	// Instruction is what a person must do instead (a Mac's PIN, a lock done by hand).
	Instruction string `json:"instruction,omitempty"`
}

// UnlockReport lists the unlock of every device a cancelled offboarding locked.
type UnlockReport struct {
	WorkflowID string         `json:"workflow_id"`
	Devices    []UnlockResult `json:"devices"`
}

// UnlockDevices sends an unlock to every device a cancelled offboarding locked (or may have)
// through the agent channel, idempotently (key unlock:lockStepID:deviceID: asking twice
// sends one unlock per device). Macs locked with MDM and devices locked by hand get an
// instruction instead. Only a cancelled offboarding can be unlocked this way: while it
// runs, its lock stands.
func (e *Engine) UnlockDevices(ctx context.Context, orgID, workflowID string) (UnlockReport, error) {
	rep := UnlockReport{WorkflowID: workflowID, Devices: []UnlockResult{}}
	w, err := store.GetWorkflow(ctx, e.db.SQL, orgID, workflowID)
	if err != nil {
		return rep, err
	}
	if w.Kind != string(KindOffboarding) || w.State != string(WorkflowCancelled) {
		return rep, fmt.Errorf("unlock is offered once an offboarding is cancelled; this %s is %s: %w", w.Kind, w.State, ErrBadState)
	}
	targets, err := lockTargets(ctx, e.db.SQL, w)
	if err != nil {
		return rep, err
	}
	for _, t := range targets {
		r := t.result
		res := UnlockResult{DeviceID: r.DeviceID, SerialNumber: r.Serial, LockCommandID: r.CommandID}
		switch {
		case t.how == "hand":
			res.Instruction = fmt.Sprintf("locked by hand by %s (task %s): unlock it the same way", r.DoneBy, r.ManualTask)
		case t.how == store.ChannelMDM:
			res.Instruction = fmt.Sprintf("a Mac locked with MDM DeviceLock unlocks at the Mac with its PIN: lanyardctl mdm pin %s (GET /api/v1/mdm/commands/%s/pin)", r.CommandID, r.CommandID)
		case e.commands == nil:
			res.Reason = "no device command model is configured"
		default:
			cmd, err := e.commands.Unlock(ctx, orgID, r.DeviceID, "unlock:"+t.step.ID+":"+r.DeviceID)
			switch {
			case errors.Is(err, ErrNoChannel):
				res.Reason = "the device has no agent any more: unlock it by hand"
			case err != nil:
				res.Reason = err.Error()
			default:
				res.CommandID, res.State, res.Reason = cmd.ID, cmd.State, cmd.Reason
			}
		}
		rep.Devices = append(rep.Devices, res)
	}
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "lifecycle.workflow.unlock_requested", "workflow", w.ID, nil, rep))
	})
	return rep, err
}
