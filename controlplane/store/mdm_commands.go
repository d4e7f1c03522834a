package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// pageBy is where.page keyed on another column.
func (w *where) pageBy(col string, p Page) (string, error) {
	after, err := DecodeCursor(p.Cursor)
	if err != nil {
		return "", err
	}
	if after != "" {
		w.add(col+" > ?", after)
	}
	return fmt.Sprintf(" WHERE %s ORDER BY %s LIMIT %d", strings.Join(w.conds, " AND "), col, p.limit()+1), nil
}

// MDM command states: the same as the agent channel's commands (DESIGN.md "Commands to
// devices"): queued → sent → acknowledged → done | failed | expired.
const (
	MDMCmdQueued       = "queued"
	MDMCmdSent         = "sent"
	MDMCmdAcknowledged = "acknowledged"
	MDMCmdDone         = "done"
	MDMCmdFailed       = "failed"
	MDMCmdExpired      = "expired"
	MDMCmdCanceled     = "canceled"
)

// MDMCommand is the intent of one MDM command; nanomdm's queue only carries delivery.
type MDMCommand struct {
	UUID           string     `json:"id"`
	WireUUID       string     `json:"wire_uuid"`
	OrgID          string     `json:"org_id"`
	DeviceID       string     `json:"device_id,omitempty"`
	UDID           string     `json:"udid"`
	RequestType    string     `json:"request_type"`
	State          string     `json:"state"`
	Source         string     `json:"source"` // admin, baseline, enroll, system
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	Params         string     `json:"params"`
	SecretSealed   string     `json:"-"`
	Error          string     `json:"error,omitempty"`
	NotNowCount    int        `json:"not_now_count"`
	IssueCount     int        `json:"issue_count"`
	Actor          string     `json:"actor"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	SentAt         *time.Time `json:"sent_at,omitempty"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
	ExpiresAt      time.Time  `json:"expires_at"`
}

// Terminal reports whether a state is final.
func MDMTerminal(state string) bool {
	switch state {
	case MDMCmdDone, MDMCmdFailed, MDMCmdExpired, MDMCmdCanceled:
		return true
	}
	return false
}

const mdmCommandCols = `command_uuid, wire_uuid, org_id, device_id, udid, request_type, state, source, idempotency_key, params, secret_sealed,
	error, not_now_count, issue_count, actor, created_at, updated_at, sent_at, completed_at, expires_at`

func scanMDMCommand(s interface{ Scan(...any) error }) (MDMCommand, error) {
	var c MDMCommand
	var idem, secret sql.NullString
	var sent, done sql.NullTime
	err := s.Scan(&c.UUID, &c.WireUUID, &c.OrgID, &c.DeviceID, &c.UDID, &c.RequestType, &c.State, &c.Source, &idem, &c.Params, &secret,
		&c.Error, &c.NotNowCount, &c.IssueCount, &c.Actor, &c.CreatedAt, &c.UpdatedAt, &sent, &done, &c.ExpiresAt)
	c.IdempotencyKey, c.SecretSealed, c.SentAt, c.CompletedAt = idem.String, secret.String, nullTimePtr(sent), nullTimePtr(done)
	return c, err
}

// MDMInsertCommand records a command's intent in tx-less mode, auditing it. With an
// idempotency key already used in the org, it returns the existing command and
// existed=true.
func (db *DB) MDMInsertCommand(ctx context.Context, c *MDMCommand, audit bool) (existed bool, err error) {
	now := domain.Now()
	c.CreatedAt, c.UpdatedAt = now, now
	if c.State == "" {
		c.State = MDMCmdQueued
	}
	if c.IssueCount == 0 {
		c.IssueCount = 1
	}
	if c.Actor == "" {
		c.Actor = domain.ActorFrom(ctx).ID
	}
	if c.WireUUID == "" {
		c.WireUUID = c.UUID
	}
	if c.IdempotencyKey == "" && !audit {
		// One statement: nothing to look up, nothing to audit.
		_, err = db.SQL.ExecContext(ctx, `INSERT INTO mdm_commands (command_uuid, wire_uuid, org_id, device_id, udid, request_type, state, source,
			params, secret_sealed, issue_count, actor, created_at, updated_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)`,
			c.UUID, c.WireUUID, c.OrgID, c.DeviceID, c.UDID, c.RequestType, c.State, c.Source, c.Params,
			nullString(c.SecretSealed), c.IssueCount, c.Actor, now, c.ExpiresAt.UTC())
		if IsUniqueViolation(err) {
			return false, fmt.Errorf("command %s: %w", c.UUID, ErrConflict)
		}
		return false, err
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if c.IdempotencyKey != "" {
			old, err := scanMDMCommand(tx.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE org_id = $1 AND idempotency_key = $2`,
				c.OrgID, c.IdempotencyKey))
			if err == nil {
				*c, existed = old, true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if c.WireUUID == "" {
			c.WireUUID = c.UUID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO mdm_commands (command_uuid, wire_uuid, org_id, device_id, udid, request_type, state, source,
			idempotency_key, params, secret_sealed, issue_count, actor, created_at, updated_at, expires_at)
			VALUES ($1, $15, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)`,
			c.UUID, c.OrgID, c.DeviceID, c.UDID, c.RequestType, c.State, c.Source, nullString(c.IdempotencyKey), c.Params,
			nullString(c.SecretSealed), c.IssueCount, c.Actor, now, c.ExpiresAt.UTC(), c.WireUUID)
		if IsUniqueViolation(err) {
			return fmt.Errorf("command %s: %w", c.UUID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert mdm command: %w", err)
		}
		if !audit {
			return nil
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "mdm.command."+strings.ToLower(c.RequestType), "device", c.DeviceID, nil,
			map[string]any{"command_id": c.UUID, "source": c.Source}))
	})
	return existed, err
}

// MDMGetCommand reads a command by UUID.
func (db *DB) MDMGetCommand(ctx context.Context, uuid string) (MDMCommand, error) {
	c, err := scanMDMCommand(db.SQL.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE command_uuid = $1`, uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("mdm command %s: %w", uuid, ErrNotFound)
	}
	return c, err
}

// MDMCommandResult is a device's answer to a command.
type MDMCommandResult struct {
	// Status is the MDM status: Acknowledged, Error, CommandFormatError, NotNow.
	Status string
	Error  string
}

// MDMApplyResult takes the wire UUID the Mac answered and moves a command according to the device's answer: Acknowledged → done,
// Error/CommandFormatError → failed, NotNow → stays sent with not_now_count+1. A result
// for a terminal command changes nothing. The updated command is returned.
func (db *DB) MDMApplyResult(ctx context.Context, wireUUID string, r MDMCommandResult) (MDMCommand, error) {
	now := domain.Now()
	switch r.Status {
	case "Acknowledged", "Error", "CommandFormatError", "NotNow":
	default:
		return MDMCommand{}, fmt.Errorf("unknown command status %q", r.Status)
	}
	// Fast path, one statement: open commands that need no audit row or event (the
	// Mac's routine traffic: inventory, baseline, system commands).
	c, err := scanMDMCommand(db.SQL.QueryRowContext(ctx, `UPDATE mdm_commands SET
		state = CASE WHEN $2 = 'Acknowledged' THEN 'done' WHEN $2 = 'NotNow' THEN 'sent' ELSE 'failed' END,
		error = CASE WHEN $2 = 'Error' OR $2 = 'CommandFormatError' THEN $3 ELSE error END,
		not_now_count = not_now_count + CASE WHEN $2 = 'NotNow' THEN 1 ELSE 0 END,
		completed_at = CASE WHEN $2 = 'NotNow' THEN completed_at ELSE $4 END,
		updated_at = $4
		WHERE wire_uuid = $1 AND state IN ('queued', 'sent') AND source <> 'admin' AND request_type NOT IN ('DeviceLock', 'EraseDevice')
		RETURNING `+mdmCommandCols, wireUUID, r.Status, r.Error, now))
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return c, err
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanMDMCommand(tx.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE wire_uuid = $1`, wireUUID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mdm command %s: %w", wireUUID, ErrNotFound)
		}
		if err != nil || MDMTerminal(c.State) {
			return err
		}
		switch r.Status {
		case "Acknowledged":
			c.State, c.CompletedAt = MDMCmdDone, &now
		case "Error", "CommandFormatError":
			c.State, c.CompletedAt, c.Error = MDMCmdFailed, &now, r.Error
		case "NotNow":
			c.NotNowCount++
			c.State = MDMCmdSent
		default:
			return fmt.Errorf("unknown command status %q", r.Status)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mdm_commands SET state = $2, error = $3, not_now_count = $4, completed_at = $5, updated_at = $6
			WHERE command_uuid = $1`, c.UUID, c.State, c.Error, c.NotNowCount, timeArg(c.CompletedAt), now); err != nil {
			return err
		}
		c.UpdatedAt = now
		if c.State == MDMCmdDone {
			ev := map[string]string{"DeviceLock": domain.EventDeviceLocked, "EraseDevice": domain.EventDeviceWiped}[c.RequestType]
			if ev != "" {
				if err := WriteEvent(ctx, tx, domain.Event{OrgID: c.OrgID, Type: ev, SubjectType: "device", SubjectID: c.DeviceID,
					Payload: mustJSON(map[string]any{"channel": "mdm", "command_id": c.UUID})}); err != nil {
					return err
				}
			}
		}
		if !MDMTerminal(c.State) || c.Source != "admin" {
			return nil
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "mdm.command."+c.State, "device", c.DeviceID, nil,
			map[string]any{"command_id": c.UUID, "request_type": c.RequestType, "error": c.Error}))
	})
	return c, err
}

// MDMFetchedByWire is called when the Mac fetched a command: a queued command becomes
// sent (sent=true) in one statement; otherwise the command is read as is.
func (db *DB) MDMFetchedByWire(ctx context.Context, wireUUID string) (c MDMCommand, sent bool, err error) {
	now := domain.Now()
	c, err = scanMDMCommand(db.SQL.QueryRowContext(ctx, `UPDATE mdm_commands SET state = 'sent', sent_at = $2, updated_at = $2
		WHERE wire_uuid = $1 AND state = 'queued' RETURNING `+mdmCommandCols, wireUUID, now))
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, false, err
	}
	c, err = db.MDMGetCommandByWire(ctx, wireUUID)
	return c, false, err
}

// MDMGetCommandByWire reads a command by the CommandUUID the Mac sees.
func (db *DB) MDMGetCommandByWire(ctx context.Context, wireUUID string) (MDMCommand, error) {
	c, err := scanMDMCommand(db.SQL.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE wire_uuid = $1`, wireUUID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("mdm command %s: %w", wireUUID, ErrNotFound)
	}
	return c, err
}

// MDMFailCommand ends an open command as failed (e.g. it could not be queued).
func (db *DB) MDMFailCommand(ctx context.Context, id, reason string) error {
	now := domain.Now()
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_commands SET state = 'failed', error = $2, completed_at = $3, updated_at = $3
		WHERE command_uuid = $1 AND state IN ('queued', 'sent')`, id, reason, now)
	return err
}

// MDMCancelCommand cancels an open command; the Mac will not get it.
func (db *DB) MDMCancelCommand(ctx context.Context, orgID, id string) (MDMCommand, error) {
	var c MDMCommand
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanMDMCommand(tx.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE org_id = $1 AND command_uuid = $2`, orgID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mdm command %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if MDMTerminal(c.State) {
			return fmt.Errorf("command is already %s: %w", c.State, ErrConflict)
		}
		now := domain.Now()
		if _, err := tx.ExecContext(ctx, `UPDATE mdm_commands SET state = 'canceled', completed_at = $2, updated_at = $2 WHERE command_uuid = $1`, id, now); err != nil {
			return err
		}
		c.State, c.CompletedAt = MDMCmdCanceled, &now
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.command.canceled", "device", c.DeviceID, nil, map[string]any{"command_id": id}))
	})
	return c, err
}

// MDMMarkSent records that the device fetched the command (by wire UUID).
func (db *DB) MDMMarkSent(ctx context.Context, wireUUID string) error {
	now := domain.Now()
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_commands SET state = 'sent', sent_at = $2, updated_at = $2 WHERE wire_uuid = $1 AND state = 'queued'`, wireUUID, now)
	return err
}

// MDMMarkReissued gives an open command a new wire UUID after a re-Authenticate cleared
// nanomdm's queue, and bumps its issue counter.
func (db *DB) MDMMarkReissued(ctx context.Context, id, newWireUUID string) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_commands SET wire_uuid = $2, state = 'queued', issue_count = issue_count + 1, updated_at = $3
		WHERE command_uuid = $1 AND state IN ('queued', 'sent')`, id, newWireUUID, domain.Now())
	return err
}

// MDMOpenCommands lists the open (queued or sent) commands of a Mac, oldest first.
func (db *DB) MDMOpenCommands(ctx context.Context, udid string) ([]MDMCommand, error) {
	return db.mdmCommands(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE udid = $1 AND state IN ('queued', 'sent') ORDER BY created_at, command_uuid`, udid)
}

// MDMLastCommand returns the newest command of a type for a Mac (any state).
func (db *DB) MDMLastCommand(ctx context.Context, udid, requestType string) (MDMCommand, error) {
	c, err := scanMDMCommand(db.SQL.QueryRowContext(ctx, `SELECT `+mdmCommandCols+` FROM mdm_commands WHERE udid = $1 AND request_type = $2
		ORDER BY created_at DESC, command_uuid DESC LIMIT 1`, udid, requestType))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("no %s command: %w", requestType, ErrNotFound)
	}
	return c, err
}

// MDMListCommands lists an org's commands, optionally for one device, newest last.
func (db *DB) MDMListCommands(ctx context.Context, orgID, deviceID string, p Page) ([]MDMCommand, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	if deviceID != "" {
		w.add("device_id = ?", deviceID)
	}
	tail, err := w.pageBy("command_uuid", p)
	if err != nil {
		return nil, "", err
	}
	return queryPage(ctx, db.SQL, "list mdm commands", scanMDMCommand, func(c MDMCommand) string { return c.UUID }, p,
		`SELECT `+mdmCommandCols+` FROM mdm_commands`+tail, w.args...)
}

// MDMExpireCommands moves open commands past their deadline to expired (so an admin sees
// that a Mac never answered) and returns them.
func (db *DB) MDMExpireCommands(ctx context.Context, now time.Time) ([]MDMCommand, error) {
	var out []MDMCommand
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, "expire mdm commands", scanMDMCommand, `UPDATE mdm_commands SET state = 'expired', error = 'device did not answer before the deadline',
			completed_at = $1, updated_at = $1 WHERE state IN ('queued', 'sent') AND expires_at <= $1 RETURNING `+mdmCommandCols, now.UTC())
		if err != nil {
			return err
		}
		for _, c := range out {
			if err := WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "mdm.command.expired", "device", c.DeviceID, nil,
				map[string]any{"command_id": c.UUID, "request_type": c.RequestType})); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func (db *DB) mdmCommands(ctx context.Context, q string, args ...any) ([]MDMCommand, error) {
	return queryAll(ctx, db.SQL, "mdm commands", scanMDMCommand, q, args...)
}
