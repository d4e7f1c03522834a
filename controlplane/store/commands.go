package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

	ChannelAgent = "agent"
	ChannelMDM   = "mdm"

	// How an MDM erase was confirmed after the Mac acknowledged it.
	ConfirmStoppedCheckingIn = "stopped checking in"
	ConfirmReenrolled        = "re-enrolled"
)

// OpenCommandStates are the states a command can still leave (not terminal).
var OpenCommandStates = []string{CommandAwaitingApproval, CommandQueued, CommandSent, CommandReceived, CommandRunning}

// CommandNotifyChannel is the Postgres NOTIFY channel announcing a command ready to send;
// the payload is the command id and its device id (CommandNotice).
const CommandNotifyChannel = "lanyard_device_commands"

// CommandNotice reads a CommandNotifyChannel payload: "<command id> <device id>". A replica
// that does not hold the device's stream can ignore it without reading the command; an
// older replica's payload (the id alone) has no device id.
func CommandNotice(payload string) (id, deviceID string) {
	id, deviceID, _ = strings.Cut(payload, " ")
	return id, deviceID
}

// DeviceCommand is one command to one device, whatever channel carries it.
type DeviceCommand struct {
	ID       string `json:"id"`
	OrgID    string `json:"org_id"`
	DeviceID string `json:"device_id"`
	Type     string `json:"type" enum:"lock,unlock,wipe,message,collect_inventory"`
	// Params are the admin's parameters (lock: message; message: title, body) plus what
	// the server adds: allow_best_effort on a wipe when the org allows it.
	Params         map[string]string `json:"params,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	// State: awaiting_approval → queued → sent → received → running → done | failed |
	// expired | canceled, or simulated (a dry-run agent: nothing ran, never done).
	State        string `json:"state" enum:"awaiting_approval,queued,sent,received,running,done,failed,expired,canceled,simulated"`
	Channel      string `json:"channel" enum:"agent,mdm"`
	TargetSerial string `json:"target_serial"`
	AgentID      string `json:"agent_id,omitempty"`
	CreatedBy    string `json:"created_by"`
	// CreatedByUser is the person behind CreatedBy ("" for rows from before people, and
	// for tokens without an owner); the two-person rule compares people.
	CreatedByUser string `json:"created_by_user,omitempty"`
	ApprovedBy    string `json:"approved_by,omitempty"`
	// Error is the device's or the server's reason for failed, expired or simulated.
	Error string `json:"error,omitempty"`
	// Result is the device's raw answer (agent: the CommandResult with its steps).
	Result json.RawMessage `json:"result,omitempty"`
	// Evidence is what the device checked after running the command, decoded; Verified
	// says whether its signature and contents were accepted.
	Evidence    *CommandEvidence `json:"evidence,omitempty"`
	Attempts    int              `json:"attempts"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	SentAt      *time.Time       `json:"sent_at,omitempty"`
	ReceivedAt  *time.Time       `json:"received_at,omitempty"`
	StartedAt   *time.Time       `json:"started_at,omitempty"`
	CompletedAt *time.Time       `json:"completed_at,omitempty"`
	// ConfirmedAt and Confirmation: an MDM erase the Mac acknowledged is confirmed when
	// the Mac re-enrolls or stops checking in.
	ConfirmedAt  *time.Time `json:"confirmed_at,omitempty"`
	Confirmation string     `json:"confirmation,omitempty" enum:"stopped checking in,re-enrolled"`
	ExpiresAt    time.Time  `json:"expires_at"`
}

// CommandEvidence is a device's evidence for a command (agentv1.Evidence) as the API
// shows it.
type CommandEvidence struct {
	// Verified: the signature is the streaming agent's, and the evidence names this
	// command and its target; for lock, unlock and wipe a done command also needs every
	// check ok.
	Verified bool `json:"verified"`
	// The identity the device measured: its firmware serial, or its hardware UUID.
	SerialNumber string         `json:"serial_number"`
	HardwareUUID string         `json:"hardware_uuid"`
	Checks       []CommandCheck `json:"checks"`
	WipeMethod   string         `json:"wipe_method,omitempty" enum:"crypto_erase,best_effort,remote_wipe_csp"`
	FinalAction  string         `json:"final_action,omitempty"`
	CheckedAt    *time.Time     `json:"checked_at,omitempty"`
	Mode         AgentMode      `json:"mode"`
}

// CommandCheck is one fact the device checked after a command ran.
type CommandCheck struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Observed string `json:"observed,omitempty"`
	Expected string `json:"expected,omitempty"`
}

// Terminal reports whether the command can change no more.
func (c DeviceCommand) Terminal() bool { return CommandTerminal(c.State) }

// CommandTerminal reports whether a command state is final.
func CommandTerminal(state string) bool {
	switch state {
	case CommandDone, CommandFailed, CommandExpired, CommandCanceled, CommandSimulated:
		return true
	}
	return false
}

// ErrCommandState means a transition is not allowed from the command's current state.
var ErrCommandState = fmt.Errorf("command state does not allow this: %w", ErrConflict)

const commandCols = `id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial, agent_id, created_by, approved_by,
	error, result, evidence, attempts, created_at, updated_at, sent_at, received_at, started_at, completed_at, confirmed_at, confirmation, expires_at, created_by_user`

func scanCommand(s interface{ Scan(...any) error }) (DeviceCommand, error) {
	var c DeviceCommand
	var params, result, evidence string
	var idem *string
	err := s.Scan(&c.ID, &c.OrgID, &c.DeviceID, &c.Type, &params, &idem, &c.State, &c.Channel, &c.TargetSerial, &c.AgentID, &c.CreatedBy,
		&c.ApprovedBy, &c.Error, &result, &evidence, &c.Attempts, &c.CreatedAt, &c.UpdatedAt, &c.SentAt, &c.ReceivedAt, &c.StartedAt,
		&c.CompletedAt, &c.ConfirmedAt, &c.Confirmation, &c.ExpiresAt, &c.CreatedByUser)
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
	if evidence != "" {
		c.Evidence = new(CommandEvidence)
		if err := json.Unmarshal([]byte(evidence), c.Evidence); err != nil {
			return c, fmt.Errorf("decode evidence of command %s: %w", c.ID, err)
		}
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

func (db *DB) notifyCommand(ctx context.Context, q Querier, id, deviceID string) error {
	if db.Dialect != Postgres {
		return nil
	}
	if _, err := q.ExecContext(ctx, `SELECT pg_notify($1, $2)`, CommandNotifyChannel, id+" "+deviceID); err != nil {
		return fmt.Errorf("notify command %s: %w", id, err)
	}
	return nil
}

// CreateDeviceCommand stores a new command. When the org already has a command with the
// same idempotency key, that command is returned with created == false and nothing is
// written. A queued command is announced (NOTIFY) at commit.
func (db *DB) CreateDeviceCommand(ctx context.Context, c *DeviceCommand) (created bool, err error) {
	return db.createDeviceCommand(ctx, c, "")
}

// CreateClaimedDeviceCommand is CreateDeviceCommand for the replica that holds the
// device's agent stream: a queued command is also claimed for agentID (queued → sent,
// audited as its own transition) in the same transaction, so it reaches the stream after
// one commit instead of two, and is not announced (no other replica has it to deliver).
// On return c is the command as stored (sent). A command born in another state, or a
// repeated idempotency key, is handled as by CreateDeviceCommand.
func (db *DB) CreateClaimedDeviceCommand(ctx context.Context, c *DeviceCommand, agentID string) (created bool, err error) {
	return db.createDeviceCommand(ctx, c, agentID)
}

// errIdempotentReplay aborts the transaction of a create whose idempotency key is taken.
var errIdempotentReplay = errors.New("idempotency key already used")

func (db *DB) createDeviceCommand(ctx context.Context, c *DeviceCommand, claimFor string) (created bool, err error) {
	// No read first: the insert skips a taken idempotency key (ON CONFLICT), which costs
	// a repeat what the read would have cost every first call.
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
			c.CreatedByUser = domain.ActorFrom(ctx).UserID
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
		// A command can be born terminal: one the server refuses at once (a Mac without
		// MDM asked to lock) is created failed, with its reason, so the admin sees it.
		var completed any
		if c.Terminal() {
			c.CompletedAt = &now
			completed = now
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO device_commands (id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial,
			agent_id, created_by, approved_by, error, result, attempts, created_at, updated_at, completed_at, expires_at, created_by_user)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', $12, '', 0, $13, $13, $14, $15, $16)
			ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`,
			c.ID, c.OrgID, c.DeviceID, c.Type, params, idem, c.State, c.Channel, c.TargetSerial, c.AgentID, c.CreatedBy, c.Error, now, completed,
			c.ExpiresAt.UTC(), c.CreatedByUser)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errIdempotentReplay
		}
		if err := WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "device_command."+c.State, "device_command", c.ID, nil, c)); err != nil {
			return err
		}
		if err := writeCommandPrompt(ctx, tx, *c); err != nil {
			return err
		}
		if c.State != CommandQueued {
			return nil
		}
		if claimFor == "" {
			return db.notifyCommand(ctx, tx, c.ID, c.DeviceID)
		}
		sent, err := db.transitionTx(ctx, tx, *c, CommandUpdate{From: []string{CommandQueued}, To: CommandSent, AgentID: claimFor})
		if err != nil {
			return err
		}
		*c = sent
		return nil
	})
	if err != nil && c.IdempotencyKey != "" && (errors.Is(err, errIdempotentReplay) || IsUniqueViolation(err)) {
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
// (queued, or sent but not yet received), oldest first.
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
	// Evidence replaces the command's evidence when set.
	Evidence *CommandEvidence
	// Approver is set for awaiting_approval → queued.
	Approver string
}

// TransitionDeviceCommand moves a command from one of u.From to u.To, atomically: when the
// command is no longer in one of u.From it returns ErrCommandState and writes nothing. The
// transition is audited (with its reason); entering queued is announced to the replicas;
// an agent-channel lock or wipe that becomes done is a domain event (device.locked,
// device.wiped), as the MDM channel's are.
func (db *DB) TransitionDeviceCommand(ctx context.Context, orgID, id string, u CommandUpdate) (DeviceCommand, error) {
	var out DeviceCommand
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := getCommand(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		out, err = db.transitionTx(ctx, tx, before, u)
		return err
	})
	return out, err
}

// transitionTx is TransitionDeviceCommand's work in tx, from the command as read in tx.
func (db *DB) transitionTx(ctx context.Context, tx *sql.Tx, before DeviceCommand, u CommandUpdate) (DeviceCommand, error) {
	orgID, id := before.OrgID, before.ID
	allowed := false
	for _, f := range u.From {
		if before.State == f {
			allowed = true
		}
	}
	if !allowed {
		return DeviceCommand{}, fmt.Errorf("command %s is %s, not %v: %w", id, before.State, u.From, ErrCommandState)
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
	// received_at is when the device had the command; a result that skips the
	// receipt (an old agent's DONE, an MDM answer) implies it.
	received := func() {
		if before.ReceivedAt == nil {
			after.ReceivedAt = &now
			add("received_at", now)
		}
	}
	switch u.To {
	case CommandSent:
		after.SentAt, after.Attempts = &now, before.Attempts+1
		add("sent_at", now)
		add("attempts", after.Attempts)
	case CommandReceived:
		received()
	case CommandRunning:
		received()
		after.StartedAt = &now
		add("started_at", now)
	case CommandDone, CommandFailed, CommandExpired, CommandCanceled, CommandSimulated:
		after.CompletedAt = &now
		add("completed_at", now)
		if u.To == CommandDone || u.To == CommandSimulated {
			received()
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
	if u.Evidence != nil {
		b, err := json.Marshal(u.Evidence)
		if err != nil {
			return DeviceCommand{}, fmt.Errorf("encode evidence: %w", err)
		}
		after.Evidence = u.Evidence
		add("evidence", string(b))
	}
	args = append(args, orgID, id, before.State)
	n := len(args)
	res, err := tx.ExecContext(ctx, `UPDATE device_commands SET `+set+fmt.Sprintf(` WHERE org_id = $%d AND id = $%d AND state = $%d`, n-2, n-1, n), args...)
	if err != nil {
		return DeviceCommand{}, fmt.Errorf("update command %s: %w", id, err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return DeviceCommand{}, fmt.Errorf("command %s changed concurrently: %w", id, ErrCommandState)
	}
	audit := map[string]any{"state": u.To, "error": u.Error, "agent_id": after.AgentID, "device_id": before.DeviceID}
	if u.Evidence != nil {
		audit["evidence_verified"] = u.Evidence.Verified
		audit["checks"] = len(u.Evidence.Checks)
	}
	if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device_command."+u.To, "device_command", id,
		map[string]string{"state": before.State}, audit)); err != nil {
		return DeviceCommand{}, err
	}
	if ev := doneEvent(after); ev != "" {
		if err := WriteEvent(ctx, tx, domain.Event{OrgID: orgID, Type: ev, SubjectType: "device", SubjectID: after.DeviceID,
			Payload: mustJSON(map[string]any{"channel": after.Channel, "command_id": id, "state": after.State})}); err != nil {
			return DeviceCommand{}, err
		}
	}
	if err := writeCommandPrompt(ctx, tx, after); err != nil {
		return DeviceCommand{}, err
	}
	if u.To == CommandQueued {
		return after, db.notifyCommand(ctx, tx, id, after.DeviceID)
	}
	return after, nil
}

// doneEvent is the domain event of an agent-channel command that just became done (the
// MDM channel writes its own when the Mac acknowledges, MDMApplyResult).
func doneEvent(c DeviceCommand) string {
	if c.State != CommandDone || c.Channel != ChannelAgent {
		return ""
	}
	switch c.Type {
	case CommandLock:
		return domain.EventDeviceLocked
	case CommandWipe:
		return domain.EventDeviceWiped
	}
	return ""
}

// writeCommandPrompt writes the events that ask a person to act on a command in the state it
// just entered: a wipe waiting for a second admin, or a lock or wipe that ended failed or
// expired. Both channels end here (the MDM channel mirrors its results onto the device
// command), so mdm_commands write no failure event of their own.
func writeCommandPrompt(ctx context.Context, q Querier, c DeviceCommand) error {
	if c.Type != CommandLock && c.Type != CommandWipe {
		return nil
	}
	switch c.State {
	case CommandAwaitingApproval:
		return WriteEvent(ctx, q, domain.Event{OrgID: c.OrgID, Type: domain.EventWipeApprovalPending, SubjectType: "device", SubjectID: c.DeviceID,
			Payload: mustJSON(domain.WipeApprovalPendingPayload{ApprovalID: c.ID, DeviceID: c.DeviceID, Serial: c.TargetSerial,
				RequestedBy: c.CreatedBy})})
	case CommandFailed, CommandExpired:
		return WriteEvent(ctx, q, domain.Event{OrgID: c.OrgID, Type: domain.EventDeviceCommandFailed, SubjectType: "device", SubjectID: c.DeviceID,
			Payload: mustJSON(domain.DeviceCommandFailedPayload{CommandID: c.ID, DeviceID: c.DeviceID, Serial: c.TargetSerial, Kind: c.Type,
				Channel: c.Channel, State: c.State, Reason: c.Error})})
	}
	return nil
}

// expiryReasons say, per state, what an expired command never got to.
var expiryReasons = map[string]string{
	CommandAwaitingApproval: "expired waiting for a second admin's approval",
	CommandQueued:           "expired before delivery: the device did not connect in time",
	CommandSent:             "expired: sent to the device, which never confirmed receipt",
	CommandReceived:         "expired: the device received the command but never reported a result",
	CommandRunning:          "expired: the device started the command but never reported a result",
}

// ExpireDeviceCommands moves commands past their expiry that never finished to expired,
// with the reason (what the device never did), auditing each; it returns how many it
// expired. A device that received a lock and never answered ends here.
func (db *DB) ExpireDeviceCommands(ctx context.Context, now time.Time) (int, error) {
	type ref struct{ org, id, state string }
	// The rows are read to the end (and closed) before any transition opens a transaction.
	refs, err := queryAll(ctx, db.SQL, "find expired commands", func(s rowScanner) (ref, error) {
		var r ref
		err := s.Scan(&r.org, &r.id, &r.state)
		return r, err
	}, `SELECT org_id, id, state FROM device_commands WHERE state IN ($1, $2, $3, $4, $5) AND expires_at < $6`,
		CommandAwaitingApproval, CommandQueued, CommandSent, CommandReceived, CommandRunning, now.UTC())
	if err != nil {
		return 0, err
	}
	n := 0
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:commands"})
	for _, r := range refs {
		_, err := db.TransitionDeviceCommand(ctx, r.org, r.id, CommandUpdate{From: []string{r.state}, To: CommandExpired, Error: expiryReasons[r.state]})
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

// ConfirmDeviceCommand records that a done MDM erase was confirmed (confirmation is
// ConfirmStoppedCheckingIn or ConfirmReenrolled), audited. A command that is not a done,
// unconfirmed wipe returns ErrCommandState.
func (db *DB) ConfirmDeviceCommand(ctx context.Context, orgID, id, confirmation string) (DeviceCommand, error) {
	var out DeviceCommand
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := getCommand(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		if c.State != CommandDone || c.Type != CommandWipe || c.ConfirmedAt != nil {
			return fmt.Errorf("command %s (%s %s) cannot be confirmed: %w", id, c.Type, c.State, ErrCommandState)
		}
		now := domain.Now()
		res, err := tx.ExecContext(ctx, `UPDATE device_commands SET confirmed_at = $1, confirmation = $2, updated_at = $1
			WHERE org_id = $3 AND id = $4 AND confirmed_at IS NULL`, now, confirmation, orgID, id)
		if err != nil {
			return fmt.Errorf("confirm command %s: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("command %s confirmed concurrently: %w", id, ErrCommandState)
		}
		c.ConfirmedAt, c.Confirmation, c.UpdatedAt = &now, confirmation, now
		out = c
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device_command.confirmed", "device_command", id, nil,
			map[string]any{"confirmation": confirmation, "device_id": c.DeviceID, "type": c.Type}))
	})
	return out, err
}

// UnconfirmedMDMErases returns a device's done, unconfirmed MDM erases, oldest first.
func (db *DB) UnconfirmedMDMErases(ctx context.Context, orgID, deviceID string) ([]DeviceCommand, error) {
	return queryAll(ctx, db.SQL, "unconfirmed erases of "+deviceID, scanCommand, `SELECT `+commandCols+` FROM device_commands
		WHERE org_id = $1 AND device_id = $2 AND channel = $3 AND type = $4 AND state = $5 AND confirmed_at IS NULL ORDER BY id`,
		orgID, deviceID, ChannelMDM, CommandWipe, CommandDone)
}

// SilentErase is an unconfirmed MDM erase with the device's last MDM contact.
type SilentErase struct {
	Command    DeviceCommand
	LastSeenAt *time.Time
}

// UnconfirmedMDMErasesBefore returns the done, unconfirmed MDM erases the Mac
// acknowledged before doneBefore, each with the last time any MDM enrollment of its
// device checked in (nil: never). The caller decides what silence confirms.
func (db *DB) UnconfirmedMDMErasesBefore(ctx context.Context, doneBefore time.Time, limit int) ([]SilentErase, error) {
	var out []SilentErase
	at := map[string]int{}
	// One row per enrollment of the device (a Mac re-enrolled under a new UDID has two);
	// the latest contact wins.
	err := queryEach(ctx, db.SQL, "unconfirmed erases", func(s rowScanner) error {
		var seen *time.Time
		c, err := scanCommand(plusScanner{s, []any{&seen}})
		if err != nil {
			return err
		}
		i, ok := at[c.ID]
		if !ok {
			at[c.ID] = len(out)
			out = append(out, SilentErase{Command: c, LastSeenAt: seen})
			return nil
		}
		if seen != nil && (out[i].LastSeenAt == nil || seen.After(*out[i].LastSeenAt)) {
			out[i].LastSeenAt = seen
		}
		return nil
	}, `SELECT `+prefixCols("c", commandCols)+`, e.last_seen_at FROM device_commands c
		LEFT JOIN mdm_enrollments e ON e.org_id = c.org_id AND e.device_id = c.device_id
		WHERE c.channel = $1 AND c.type = $2 AND c.state = $3 AND c.confirmed_at IS NULL AND c.completed_at < $4
		AND c.id IN (SELECT id FROM device_commands WHERE channel = $1 AND type = $2 AND state = $3 AND confirmed_at IS NULL
			AND completed_at < $4 ORDER BY id LIMIT `+fmt.Sprint(limit)+`)
		ORDER BY c.id`, ChannelMDM, CommandWipe, CommandDone, doneBefore.UTC())
	return out, err
}

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// plusScanner scans a row of known columns followed by more.
type plusScanner struct {
	s    rowScanner
	more []any
}

func (p plusScanner) Scan(dest ...any) error { return p.s.Scan(append(dest, p.more...)...) }
