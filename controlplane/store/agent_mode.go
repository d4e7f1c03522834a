package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// AgentMode is the set of test knobs an agent announced (agentv1.AgentMode). Release
// builds have none; a test build may run dry (commands recorded, not executed) or report
// an overridden serial. Either makes its results simulated, never done.
type AgentMode struct {
	DryRun           bool `json:"dry_run"`
	SerialOverridden bool `json:"serial_overridden"`
}

// Any reports whether a test knob is on.
func (m AgentMode) Any() bool { return m.DryRun || m.SerialOverridden }

// String is the stored form: "", "dry_run", "serial_overridden" or both, comma-separated.
func (m AgentMode) String() string {
	var parts []string
	if m.DryRun {
		parts = append(parts, "dry_run")
	}
	if m.SerialOverridden {
		parts = append(parts, "serial_overridden")
	}
	return strings.Join(parts, ",")
}

// ParseAgentMode reads the stored form.
func ParseAgentMode(s string) AgentMode {
	var m AgentMode
	for _, p := range strings.Split(s, ",") {
		switch p {
		case "dry_run":
			m.DryRun = true
		case "serial_overridden":
			m.SerialOverridden = true
		}
	}
	return m
}

// ReviewReasons are the review reasons a mode sets on the agent's device, one per knob.
func (m AgentMode) ReviewReasons() []string {
	var out []string
	if m.DryRun {
		out = append(out, "agent runs in dry-run mode (a test build): its commands are simulated, never done")
	}
	if m.SerialOverridden {
		out = append(out, "agent reports a test-override serial number (a test build), not the firmware's")
	}
	return out
}

// RecordAgentHello stores what an agent's Hello announced (its mode and the lock it
// holds) when it differs from what is stored (the caller compares, so an unchanged Hello
// costs nothing). A mode with a knob on flags the agent's device for review.
func (db *DB) RecordAgentHello(ctx context.Context, orgID, agentID string, mode AgentMode, lockedBy string) error {
	ctx = domain.WithActor(ctx, domain.Actor{ID: "agent:" + agentID})
	return db.InTx(ctx, func(tx *sql.Tx) error {
		var old, oldLock string
		var dev *string
		err := tx.QueryRowContext(ctx, `SELECT agent_mode, locked_by_command_id, device_id FROM agents WHERE org_id = $1 AND id = $2`,
			orgID, agentID).Scan(&old, &oldLock, &dev)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("agent %s: %w", agentID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read agent %s: %w", agentID, err)
		}
		if old == mode.String() && oldLock == lockedBy {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET agent_mode = $1, locked_by_command_id = $2, updated_at = $3 WHERE id = $4`,
			mode.String(), lockedBy, domain.Now(), agentID); err != nil {
			return fmt.Errorf("record hello of agent %s: %w", agentID, err)
		}
		if oldLock != lockedBy {
			if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "agent.held_lock", "agent", agentID,
				map[string]string{"locked_by_command_id": oldLock}, map[string]string{"locked_by_command_id": lockedBy})); err != nil {
				return err
			}
		}
		deviceID := ""
		if dev != nil {
			deviceID = *dev
		}
		return modeChanged(ctx, tx, orgID, agentID, deviceID, ParseAgentMode(old), mode)
	})
}

// recordReportedMode stores the mode an inventory report announced (full path only: the
// fast paths take a report only when its mode equals the stored one) and flags the
// device the report linked.
func recordReportedMode(ctx context.Context, tx Querier, orgID, agentID, deviceID string, mode AgentMode, linked bool) error {
	var old string
	if err := tx.QueryRowContext(ctx, `SELECT agent_mode FROM agents WHERE id = $1`, agentID).Scan(&old); err != nil {
		return fmt.Errorf("read mode of agent %s: %w", agentID, err)
	}
	if old == mode.String() {
		if linked && mode.Any() && deviceID != "" {
			return flagMode(ctx, tx, orgID, deviceID, mode)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET agent_mode = $1 WHERE id = $2`, mode.String(), agentID); err != nil {
		return fmt.Errorf("record mode of agent %s: %w", agentID, err)
	}
	return modeChanged(ctx, tx, orgID, agentID, deviceID, ParseAgentMode(old), mode)
}

// modeChanged audits a change of an agent's mode and flags its device when a knob is on.
func modeChanged(ctx context.Context, tx Querier, orgID, agentID, deviceID string, old, mode AgentMode) error {
	if old == mode {
		return nil
	}
	if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "agent.mode_changed", "agent", agentID, old, mode)); err != nil {
		return err
	}
	if !mode.Any() || deviceID == "" {
		return nil
	}
	return flagMode(ctx, tx, orgID, deviceID, mode)
}

// flagMode sets needs_review on a device with a reason naming each knob (kept once; an
// admin clears the review).
func flagMode(ctx context.Context, tx Querier, orgID, deviceID string, mode AgentMode) error {
	now := domain.Now()
	if err := ensureTracking(ctx, tx, orgID, deviceID, now); err != nil {
		return err
	}
	var reason string
	var needs bool
	if err := tx.QueryRowContext(ctx, `SELECT review_reason, needs_review FROM device_tracking WHERE device_id = $1`, deviceID).Scan(&reason, &needs); err != nil {
		return fmt.Errorf("read review of %s: %w", deviceID, err)
	}
	next := reason
	for _, r := range mode.ReviewReasons() {
		if !strings.Contains(next, r) {
			if next != "" {
				next += "; "
			}
			next += r
		}
	}
	if next == reason && needs {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET needs_review = $1, review_reason = $2, updated_at = $3 WHERE device_id = $4`,
		true, next, now, deviceID); err != nil {
		return fmt.Errorf("flag device %s: %w", deviceID, err)
	}
	return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device.needs_review", "device", deviceID, nil, map[string]string{"review_reason": next}))
}
