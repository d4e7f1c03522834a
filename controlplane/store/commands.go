package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Command types and states of the shared device command model (all channels).
const (
	CommandLock             = "lock"
	CommandWipe             = "wipe"
	CommandMessage          = "message"
	CommandCollectInventory = "collect_inventory"
	CommandUnlock           = "unlock"

	// queued → sent → received → running → done | failed | expired | canceled, plus
	// simulated (a dry-run agent). done for lock, unlock and wipe means the device's
	// signed evidence verified; for MDM, the Mac's Acknowledged.
	CommandAwaitingApproval = "awaiting_approval"
	CommandQueued           = "queued"
	CommandSent             = "sent"
	CommandReceived         = "received"
	CommandRunning          = "running"
	CommandDone             = "done"
	CommandFailed           = "failed"
	CommandExpired          = "expired"
	CommandCanceled         = "canceled"
	CommandSimulated        = "simulated"
	// CommandAcknowledged is the state before received existed; migration 00203 turns it
	// into received.
	CommandAcknowledged = "acknowledged"

	ChannelAgent = "agent"
	ChannelMDM   = "mdm"
)

// CommandNotifyChannel is the Postgres NOTIFY channel announcing a command ready to send;
// the payload is the command id.
const CommandNotifyChannel = "lanyard_device_commands"

// DeviceCommand is one command to one device, whatever channel carries it.
type DeviceCommand struct {
	ID             string            `json:"id"`
	OrgID          string            `json:"org_id"`
	DeviceID       string            `json:"device_id"`
	Type           string            `json:"type"`
	Params         map[string]string `json:"params,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	State          string            `json:"state"`
	Channel        string            `json:"channel"`
	TargetSerial   string            `json:"target_serial"`
	AgentID        string            `json:"agent_id,omitempty"`
	CreatedBy      string            `json:"created_by"`
	ApprovedBy     string            `json:"approved_by,omitempty"`
	Error          string            `json:"error,omitempty"`
	Result         json.RawMessage   `json:"result,omitempty"`
	Attempts       int               `json:"attempts"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	SentAt         *time.Time        `json:"sent_at,omitempty"`
	AcknowledgedAt *time.Time        `json:"acknowledged_at,omitempty"`
	CompletedAt    *time.Time        `json:"completed_at,omitempty"`
	ExpiresAt      time.Time         `json:"expires_at"`
}

// Terminal reports whether the command can change no more.
func (c DeviceCommand) Terminal() bool {
	switch c.State {
	case CommandDone, CommandFailed, CommandExpired, CommandCanceled:
		return true
	}
	return false
}

// ErrCommandState means a transition is not allowed from the command's current state.
var ErrCommandState = fmt.Errorf("command state does not allow this: %w", ErrConflict)

const commandCols = `id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial, agent_id, created_by, approved_by,
	error, result, attempts, created_at, updated_at, sent_at, acknowledged_at, completed_at, expires_at`

func scanCommand(s interface{ Scan(...any) error }) (DeviceCommand, error) {
	var c DeviceCommand
	var params, result string
	var idem *string
	err := s.Scan(&c.ID, &c.OrgID, &c.DeviceID, &c.Type, &params, &idem, &c.State, &c.Channel, &c.TargetSerial, &c.AgentID, &c.CreatedBy,
		&c.ApprovedBy, &c.Error, &result, &c.Attempts, &c.CreatedAt, &c.UpdatedAt, &c.SentAt, &c.AcknowledgedAt, &c.CompletedAt, &c.ExpiresAt)
	if err != nil {
		return c, err
	}
	if idem != nil {
		c.IdempotencyKey = *idem
	}
	if params != "" && params != "{}" {
		if err := json.Unmarshal([]byte(params), &c.Params); err != nil {
			return c, fmt.Errorf("decode params of command %s: %w", c.ID, err)
		}
	}
	if result != "" {
		c.Result = json.RawMessage(result)
	}
	return c, nil
}

func getCommand(ctx context.Context, q Querier, orgID, id string) (DeviceCommand, error) {
	c, err := scanCommand(q.QueryRowContext(ctx, `SELECT `+commandCols+` FROM device_commands WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("command %s: %w", id, ErrNotFound)
	}
	return c, err
}

// GetDeviceCommand reads one command of an org.
func (db *DB) GetDeviceCommand(ctx context.Context, orgID, id string) (DeviceCommand, error) {
	return getCommand(ctx, db.SQL, orgID, id)
}

// GetDeviceCommandByID reads a command without an org (for delivery after a NOTIFY).
func (db *DB) GetDeviceCommandByID(ctx context.Context, id string) (DeviceCommand, error) {
	c, err := scanCommand(db.SQL.QueryRowContext(ctx, `SELECT `+commandCols+` FROM device_commands WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("command %s: %w", id, ErrNotFound)
	}
	return c, err
}

func (db *DB) notifyCommand(ctx context.Context, q Querier, id string) error {
	if db.Dialect != Postgres {
		return nil
	}
	if _, err := q.ExecContext(ctx, `SELECT pg_notify($1, $2)`, CommandNotifyChannel, id); err != nil {
		return fmt.Errorf("notify command %s: %w", id, err)
	}
	return nil
}

// CreateDeviceCommand stores a new command. When the org already has a command with the
// same idempotency key, that command is returned with created == false and nothing is
// written. A queued command is announced (NOTIFY) at commit.
func (db *DB) CreateDeviceCommand(ctx context.Context, c *DeviceCommand) (created bool, err error) {
	if c.IdempotencyKey != "" {
		if existing, err := db.findByIdempotency(ctx, db.SQL, c.OrgID, c.IdempotencyKey); err == nil {
			*c = existing
			return false, nil
		} else if !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if c.ID == "" {
			c.ID = domain.NewID()
		}
		now := domain.Now()
		c.CreatedAt, c.UpdatedAt = now, now
		if c.State == "" {
			c.State = CommandQueued
		}
		if c.CreatedBy == "" {
			c.CreatedBy = domain.ActorFrom(ctx).ID
		}
		params := "{}"
		if len(c.Params) > 0 {
			b, err := json.Marshal(c.Params)
			if err != nil {
				return fmt.Errorf("encode params: %w", err)
			}
			params = string(b)
		}
		var idem any
		if c.IdempotencyKey != "" {
			idem = c.IdempotencyKey
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO device_commands (id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial,
			agent_id, created_by, approved_by, error, result, attempts, created_at, updated_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', '', '', 0, $12, $12, $13)`,
			c.ID, c.OrgID, c.DeviceID, c.Type, params, idem, c.State, c.Channel, c.TargetSerial, c.AgentID, c.CreatedBy, now, c.ExpiresAt.UTC())
		if err != nil {
			return err
		}
		if err := WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "device_command."+c.State, "device_command", c.ID, nil, c)); err != nil {
			return err
		}
		if c.State == CommandQueued {
			return db.notifyCommand(ctx, tx, c.ID)
		}
		return nil
	})
	if err != nil && IsUniqueViolation(err) && c.IdempotencyKey != "" {
		existing, ferr := db.findByIdempotency(ctx, db.SQL, c.OrgID, c.IdempotencyKey)
		if ferr != nil {
			return false, ferr
		}
		*c = existing
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create command: %w", err)
	}
	return true, nil
}

func (db *DB) findByIdempotency(ctx context.Context, q Querier, orgID, key string) (DeviceCommand, error) {
	c, err := scanCommand(q.QueryRowContext(ctx, `SELECT `+commandCols+` FROM device_commands WHERE org_id = $1 AND idempotency_key = $2`, orgID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("command with key %s: %w", key, ErrNotFound)
	}
	return c, err
}

// ListDeviceCommands returns one page of a device's commands (all devices when deviceID is
// empty), oldest first.
func (db *DB) ListDeviceCommands(ctx context.Context, orgID, deviceID string, p Page) ([]DeviceCommand, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("device_id = ?", deviceID)
	return listPage(ctx, db.SQL, "list commands", scanCommand, func(c DeviceCommand) string { return c.ID }, p,
		`SELECT `+commandCols+` FROM device_commands`, w)
}

// OpenAgentCommands returns a device's agent-channel commands that still need delivery
// (queued, or sent but not yet acknowledged), oldest first.
func (db *DB) OpenAgentCommands(ctx context.Context, orgID, deviceID string) ([]DeviceCommand, error) {
	return queryAll(ctx, db.SQL, "open commands of "+deviceID, scanCommand, `SELECT `+commandCols+` FROM device_commands
		WHERE org_id = $1 AND device_id = $2 AND channel = $3 AND state IN ($4, $5) ORDER BY id`,
		orgID, deviceID, ChannelAgent, CommandQueued, CommandSent)
}

// QueuedAgentCommandIDs returns up to limit queued agent-channel commands (the poll backstop
// for a missed NOTIFY).
func (db *DB) QueuedAgentCommandIDs(ctx context.Context, limit int) ([]DeviceCommand, error) {
	return queryAll(ctx, db.SQL, "queued commands", scanCommand,
		`SELECT `+commandCols+` FROM device_commands WHERE state = $1 AND channel = $2 ORDER BY id LIMIT `+fmt.Sprint(limit),
		CommandQueued, ChannelAgent)
}

// CommandUpdate describes one state transition.
type CommandUpdate struct {
	From    []string
	To      string
	AgentID string
	Error   string
	Result  json.RawMessage
	// Approver is set for awaiting_approval → queued.
	Approver string
}

// TransitionDeviceCommand moves a command from one of u.From to u.To, atomically: when the
// command is no longer in one of u.From it returns ErrCommandState and writes nothing. The
// transition is audited; entering queued is announced to the replicas.
func (db *DB) TransitionDeviceCommand(ctx context.Context, orgID, id string, u CommandUpdate) (DeviceCommand, error) {
	var out DeviceCommand
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := getCommand(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		allowed := false
		for _, f := range u.From {
			if before.State == f {
				allowed = true
			}
		}
		if !allowed {
			return fmt.Errorf("command %s is %s, not %v: %w", id, before.State, u.From, ErrCommandState)
		}
		now := domain.Now()
		after := before
		after.State, after.UpdatedAt = u.To, now
		set := `state = $1, updated_at = $2`
		args := []any{u.To, now}
		add := func(col string, v any) {
			args = append(args, v)
			set += fmt.Sprintf(", %s = $%d", col, len(args))
		}
		switch u.To {
		case CommandSent:
			after.SentAt, after.Attempts = &now, before.Attempts+1
			add("sent_at", now)
			add("attempts", after.Attempts)
		case CommandAcknowledged:
			after.AcknowledgedAt = &now
			add("acknowledged_at", now)
		case CommandDone, CommandFailed, CommandExpired, CommandCanceled:
			after.CompletedAt = &now
			add("completed_at", now)
			if u.To == CommandDone && before.AcknowledgedAt == nil {
				after.AcknowledgedAt = &now
				add("acknowledged_at", now)
			}
		case CommandQueued:
			if u.Approver != "" {
				after.ApprovedBy = u.Approver
				add("approved_by", u.Approver)
			}
		}
		if u.AgentID != "" {
			after.AgentID = u.AgentID
			add("agent_id", u.AgentID)
		}
		if u.Error != "" {
			after.Error = u.Error
			add("error", u.Error)
		}
		if len(u.Result) > 0 {
			after.Result = u.Result
			add("result", string(u.Result))
		}
		args = append(args, orgID, id, before.State)
		n := len(args)
		res, err := tx.ExecContext(ctx, `UPDATE device_commands SET `+set+fmt.Sprintf(` WHERE org_id = $%d AND id = $%d AND state = $%d`, n-2, n-1, n), args...)
		if err != nil {
			return fmt.Errorf("update command %s: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("command %s changed concurrently: %w", id, ErrCommandState)
		}
		if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device_command."+u.To, "device_command", id,
			map[string]string{"state": before.State}, map[string]any{"state": u.To, "error": u.Error, "agent_id": after.AgentID, "device_id": before.DeviceID})); err != nil {
			return err
		}
		out = after
		if u.To == CommandQueued {
			return db.notifyCommand(ctx, tx, id)
		}
		return nil
	})
	return out, err
}

// ExpireDeviceCommands moves commands past their expiry that never finished to expired,
// auditing each; it returns how many it expired.
func (db *DB) ExpireDeviceCommands(ctx context.Context, now time.Time) (int, error) {
	type ref struct{ org, id, state string }
	// The rows are read to the end (and closed) before any transition opens a transaction.
	refs, err := queryAll(ctx, db.SQL, "find expired commands", func(s rowScanner) (ref, error) {
		var r ref
		err := s.Scan(&r.org, &r.id, &r.state)
		return r, err
	}, `SELECT org_id, id, state FROM device_commands WHERE state IN ($1, $2, $3, $4) AND expires_at < $5`,
		CommandAwaitingApproval, CommandQueued, CommandSent, CommandAcknowledged, now.UTC())
	if err != nil {
		return 0, err
	}
	n := 0
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:commands"})
	for _, r := range refs {
		_, err := db.TransitionDeviceCommand(ctx, r.org, r.id, CommandUpdate{From: []string{r.state}, To: CommandExpired, Error: "expired before completion"})
		if errors.Is(err, ErrCommandState) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
