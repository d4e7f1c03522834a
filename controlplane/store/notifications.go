package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Notifications (controlplane/notify): channels, rules, deliveries and their attempts
// (migration 00700). The engine enqueues deliveries in the transaction that marks the
// outbox event handled, and workers claim them with a lease.

// NotifyChannel is where messages go. Secrets are sealed (never in JSON).
type NotifyChannel struct {
	ID      string          `json:"id"`
	OrgID   string          `json:"org_id"`
	Name    string          `json:"name"`
	Kind    string          `json:"kind" enum:"email,slack,webhook,log"`
	Config  json.RawMessage `json:"config"`
	Enabled bool            `json:"enabled"`
	// HasSecret says a secret is set (the secret itself is never returned).
	HasSecret bool `json:"has_secret"`
	// PrevSecretExpiresAt: after a rotation, the previous webhook secret signs beside the
	// new one until then.
	PrevSecretExpiresAt *time.Time `json:"prev_secret_expires_at,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`

	SecretSealed     string `json:"-"`
	PrevSecretSealed string `json:"-"`
}

const notifyChannelCols = `id, org_id, name, kind, config, enabled, secret_sealed, prev_secret_sealed, prev_expires_at, created_at, updated_at`

func scanNotifyChannel(s rowScanner) (NotifyChannel, error) {
	var c NotifyChannel
	var cfg string
	err := s.Scan(&c.ID, &c.OrgID, &c.Name, &c.Kind, &cfg, &c.Enabled, &c.SecretSealed, &c.PrevSecretSealed, &c.PrevSecretExpiresAt, &c.CreatedAt, &c.UpdatedAt)
	c.Config = json.RawMessage(cfg)
	c.HasSecret = c.SecretSealed != ""
	return c, err
}

// NotifyChannelAAD binds a channel's sealed secrets to their org and channel, so a
// ciphertext copied to another row does not open.
func NotifyChannelAAD(orgID, channelID string) string {
	return "org:" + orgID + ":notify_channel:" + channelID
}

// InsertNotifyChannel adds a channel (c.ID must be set: the secret's AAD names it).
func InsertNotifyChannel(ctx context.Context, q Querier, c *NotifyChannel) error {
	now := domain.Now()
	c.CreatedAt, c.UpdatedAt = now, now
	if len(c.Config) == 0 {
		c.Config = json.RawMessage("{}")
	}
	_, err := q.ExecContext(ctx, `INSERT INTO notify_channels (id, org_id, name, kind, config, enabled, secret_sealed, prev_secret_sealed, prev_expires_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, c.ID, c.OrgID, c.Name, c.Kind, string(c.Config), c.Enabled, c.SecretSealed,
		c.PrevSecretSealed, c.PrevSecretExpiresAt, now, now)
	if IsUniqueViolation(err) {
		return fmt.Errorf("%w: a channel named %q exists", ErrConflict, c.Name)
	}
	if err != nil {
		return fmt.Errorf("insert notify channel: %w", err)
	}
	c.HasSecret = c.SecretSealed != ""
	return nil
}

// UpdateNotifyChannel writes every mutable field of c.
func UpdateNotifyChannel(ctx context.Context, q Querier, c *NotifyChannel) error {
	c.UpdatedAt = domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE notify_channels SET name = $1, config = $2, enabled = $3, secret_sealed = $4, prev_secret_sealed = $5,
		prev_expires_at = $6, updated_at = $7 WHERE org_id = $8 AND id = $9`, c.Name, string(c.Config), c.Enabled, c.SecretSealed, c.PrevSecretSealed,
		c.PrevSecretExpiresAt, c.UpdatedAt, c.OrgID, c.ID)
	if IsUniqueViolation(err) {
		return fmt.Errorf("%w: a channel named %q exists", ErrConflict, c.Name)
	}
	if err != nil {
		return fmt.Errorf("update notify channel %s: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("notify channel %s: %w", c.ID, ErrNotFound)
	}
	c.HasSecret = c.SecretSealed != ""
	return nil
}

// GetNotifyChannel reads one channel of an org.
func GetNotifyChannel(ctx context.Context, q Querier, orgID, id string) (NotifyChannel, error) {
	c, err := scanNotifyChannel(q.QueryRowContext(ctx, `SELECT `+notifyChannelCols+` FROM notify_channels WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("notify channel %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("get notify channel %s: %w", id, err)
	}
	return c, nil
}

// ListNotifyChannels lists an org's channels in creation order.
func ListNotifyChannels(ctx context.Context, q Querier, orgID string) ([]NotifyChannel, error) {
	return queryAll(ctx, q, "list notify channels", scanNotifyChannel,
		`SELECT `+notifyChannelCols+` FROM notify_channels WHERE org_id = $1 ORDER BY id`, orgID)
}

// DeleteNotifyChannel removes a channel and the rules that name it. Its deliveries stay
// (history); a pending one fails with "channel removed" when it comes due.
func DeleteNotifyChannel(ctx context.Context, q Querier, orgID, id string) error {
	res, err := q.ExecContext(ctx, `DELETE FROM notify_channels WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return fmt.Errorf("delete notify channel %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("notify channel %s: %w", id, ErrNotFound)
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM notify_rules WHERE org_id = $1 AND channel_id = $2`, orgID, id); err != nil {
		return fmt.Errorf("delete rules of channel %s: %w", id, err)
	}
	return nil
}

// NotifyRule routes event types to an audience.
type NotifyRule struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
	// Events are outbox event types; "*" matches every type.
	Events []string `json:"events"`
	// Audience: admins (console users with at least MinRole, by email), address (one
	// email address), channel (ChannelID; "" = every enabled non-email channel), or
	// employee (the event's employee: personal email before the start date, work after).
	Audience string `json:"audience" enum:"admins,address,channel,employee"`
	MinRole  string `json:"min_role,omitempty"`
	// ChannelID: for audience channel, the channel; for the email audiences, the email
	// channel to send through ("" = the org's first enabled email channel).
	ChannelID string    `json:"channel_id,omitempty"`
	Address   string    `json:"address,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Matches reports whether the rule covers an event type.
func (r NotifyRule) Matches(eventType string) bool {
	for _, e := range r.Events {
		if e == "*" || e == eventType {
			return true
		}
	}
	return false
}

const notifyRuleCols = `id, org_id, events, audience, min_role, channel_id, address, created_at`

func scanNotifyRule(s rowScanner) (NotifyRule, error) {
	var r NotifyRule
	var events string
	if err := s.Scan(&r.ID, &r.OrgID, &events, &r.Audience, &r.MinRole, &r.ChannelID, &r.Address, &r.CreatedAt); err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(events), &r.Events)
}

// InsertNotifyRule adds a rule.
func InsertNotifyRule(ctx context.Context, q Querier, r *NotifyRule) error {
	if r.ID == "" {
		r.ID = domain.NewID()
	}
	r.CreatedAt = domain.Now()
	events, _ := json.Marshal(r.Events)
	_, err := q.ExecContext(ctx, `INSERT INTO notify_rules (id, org_id, events, audience, min_role, channel_id, address, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, r.OrgID, string(events), r.Audience, r.MinRole, r.ChannelID, r.Address, r.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert notify rule: %w", err)
	}
	return nil
}

// ListNotifyRules lists an org's rules in creation order.
func ListNotifyRules(ctx context.Context, q Querier, orgID string) ([]NotifyRule, error) {
	return queryAll(ctx, q, "list notify rules", scanNotifyRule, `SELECT `+notifyRuleCols+` FROM notify_rules WHERE org_id = $1 ORDER BY id`, orgID)
}

// DeleteNotifyRule removes a rule.
func DeleteNotifyRule(ctx context.Context, q Querier, orgID, id string) error {
	res, err := q.ExecContext(ctx, `DELETE FROM notify_rules WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return fmt.Errorf("delete notify rule %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("notify rule %s: %w", id, ErrNotFound)
	}
	return nil
}

// MarkNotifyOrgSeeded records that an org got its default rules; false means it already
// had (so deleted defaults stay deleted).
func MarkNotifyOrgSeeded(ctx context.Context, q Querier, orgID string) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO notify_orgs (org_id, seeded_at) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, orgID, domain.Now())
	if err != nil {
		return false, fmt.Errorf("seed notify org %s: %w", orgID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySending   = "sending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // a permanent failure (bad address, 4xx from a webhook, no email)
	DeliveryDead      = "dead"   // transient failures until the attempt budget ran out
)

// Delivery is one message for one (event, channel, recipient).
type Delivery struct {
	ID          string          `json:"id"`
	OrgID       string          `json:"org_id"`
	EventID     string          `json:"event_id"`
	EventType   string          `json:"event_type"`
	EventAt     time.Time       `json:"event_at"`
	Event       json.RawMessage `json:"event"`
	ChannelID   string          `json:"channel_id"`
	ChannelKind string          `json:"channel_kind" enum:"email,slack,webhook,log"`
	Recipient   string          `json:"recipient,omitempty"`
	Template    string          `json:"template"`
	State       string          `json:"state" enum:"pending,sending,delivered,failed,dead"`
	Attempts    int             `json:"attempts"`
	NextAt      time.Time       `json:"next_at"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	DeliveredAt *time.Time      `json:"delivered_at,omitempty"`

	LeaseToken string     `json:"-"`
	LeaseUntil *time.Time `json:"-"`
}

// DeliveryID is the deterministic id of the delivery of an event to one recipient on one
// channel: the event's seq first (so ids sort in event order), then a hash of the three.
func DeliveryID(ev domain.Event, channelID, recipient string) string {
	sum := sha256.Sum256([]byte(ev.ID + "\x00" + channelID + "\x00" + recipient))
	return fmt.Sprintf("nd_%012d_%s", ev.Seq, hex.EncodeToString(sum[:8]))
}

const deliveryCols = `id, org_id, event_id, event_type, event_at, event, channel_id, channel_kind, recipient, template, state, attempts,
	next_at, lease_token, lease_until, last_error, created_at, updated_at, delivered_at`

func scanDelivery(s rowScanner) (Delivery, error) {
	var d Delivery
	var ev string
	err := s.Scan(&d.ID, &d.OrgID, &d.EventID, &d.EventType, &d.EventAt, &ev, &d.ChannelID, &d.ChannelKind, &d.Recipient, &d.Template,
		&d.State, &d.Attempts, &d.NextAt, &d.LeaseToken, &d.LeaseUntil, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt)
	d.Event = json.RawMessage(ev)
	return d, err
}

// InsertDelivery enqueues a delivery unless one with its id exists; false means it did.
// d.State "" means pending; a delivery created failed (an employee with no email) is
// recorded with its reason and never sent.
func InsertDelivery(ctx context.Context, q Querier, d *Delivery) (bool, error) {
	now := domain.Now()
	if d.State == "" {
		d.State = DeliveryPending
	}
	if d.NextAt.IsZero() {
		d.NextAt = now
	}
	if len(d.Event) == 0 {
		d.Event = json.RawMessage("{}")
	}
	d.CreatedAt, d.UpdatedAt = now, now
	res, err := q.ExecContext(ctx, `INSERT INTO notify_deliveries (id, org_id, event_id, event_type, event_at, event, channel_id, channel_kind,
		recipient, template, state, attempts, next_at, last_error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.OrgID, d.EventID, d.EventType, d.EventAt.UTC(), string(d.Event), d.ChannelID, d.ChannelKind, d.Recipient, d.Template,
		d.State, d.NextAt.UTC(), d.LastError, now, now)
	if err != nil {
		return false, fmt.Errorf("insert delivery %s: %w", d.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClaimDeliveries leases up to limit due deliveries (pending and due, or sending with an
// expired lease: a worker that died mid-send) to token until leaseUntil. On Postgres,
// FOR UPDATE SKIP LOCKED lets replicas claim side by side without waiting on each other;
// SQLite has one writer, so the UPDATE alone is atomic.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, limit int, token string, leaseUntil time.Time) ([]Delivery, error) {
	lock := ""
	if db.Dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now = now.UTC()
	return queryAll(ctx, db.SQL, "claim deliveries", scanDelivery, `UPDATE notify_deliveries SET state = 'sending', lease_token = $1, lease_until = $2,
		attempts = attempts + 1, updated_at = $3
		WHERE id IN (SELECT id FROM notify_deliveries
			WHERE (state = 'pending' AND next_at <= $3) OR (state = 'sending' AND lease_until < $3)
			ORDER BY next_at LIMIT $4`+lock+`)
		RETURNING `+deliveryCols, token, leaseUntil.UTC(), now, limit)
}

// NextDeliveryDue returns when the earliest pending delivery is due (zero: none).
func (db *DB) NextDeliveryDue(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.SQL.QueryRowContext(ctx, `SELECT next_at FROM notify_deliveries WHERE state = 'pending' ORDER BY next_at LIMIT 1`).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("next delivery due: %w", err)
	}
	return t, nil
}

// DeliveryAttempt is one try at sending a delivery.
type DeliveryAttempt struct {
	ID         string    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome" enum:"delivered,transient,permanent"`
	// Status is the receiver's status code (HTTP status, SMTP reply code; 0: none, e.g.
	// a refused connection); Detail its words or the error, never a secret.
	Status     int    `json:"status,omitempty"`
	Detail     string `json:"detail,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// FinishDelivery records an attempt and the delivery's next state, if the caller still
// holds the lease (token); false means another worker took the delivery over, and the
// attempt is not recorded as the delivery's outcome.
func FinishDelivery(ctx context.Context, q Querier, id, token string, a DeliveryAttempt, state string, nextAt time.Time, lastError string) (bool, error) {
	now := domain.Now()
	var delivered *time.Time
	if state == DeliveryDelivered {
		delivered = &now
	}
	res, err := q.ExecContext(ctx, `UPDATE notify_deliveries SET state = $1, next_at = $2, last_error = $3, lease_token = '', lease_until = NULL,
		updated_at = $4, delivered_at = COALESCE($5, delivered_at) WHERE id = $6 AND lease_token = $7 AND state = 'sending'`,
		state, nextAt.UTC(), lastError, now, delivered, id, token)
	if err != nil {
		return false, fmt.Errorf("finish delivery %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	return true, insertAttempt(ctx, q, id, a)
}

func insertAttempt(ctx context.Context, q Querier, deliveryID string, a DeliveryAttempt) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM notify_attempts WHERE delivery_id = $1`, deliveryID).Scan(&n); err != nil {
		return fmt.Errorf("count attempts of %s: %w", deliveryID, err)
	}
	if a.At.IsZero() {
		a.At = domain.Now()
	}
	_, err := q.ExecContext(ctx, `INSERT INTO notify_attempts (id, delivery_id, n, at, outcome, status, detail, duration_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, domain.NewID(), deliveryID, n+1, a.At.UTC(), a.Outcome, a.Status, a.Detail, a.DurationMS)
	if err != nil {
		return fmt.Errorf("record attempt of %s: %w", deliveryID, err)
	}
	return nil
}

// DeliveryFilter narrows a delivery listing.
type DeliveryFilter struct {
	State     string
	ChannelID string
	EventID   string
	EventType string
}

// ListDeliveries returns one page of an org's deliveries, in event order.
func ListDeliveries(ctx context.Context, q Querier, orgID string, f DeliveryFilter, p Page) ([]Delivery, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", f.State)
	w.addIf("channel_id = ?", f.ChannelID)
	w.addIf("event_id = ?", f.EventID)
	w.addIf("event_type = ?", f.EventType)
	return listPage(ctx, q, "list deliveries", scanDelivery, func(d Delivery) string { return d.ID }, p, `SELECT `+deliveryCols+` FROM notify_deliveries`, w)
}

// RecentDeliveries returns an org's newest deliveries (the console's list).
func RecentDeliveries(ctx context.Context, q Querier, orgID, state string, limit int) ([]Delivery, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", state)
	return queryAll(ctx, q, "recent deliveries", scanDelivery, `SELECT `+deliveryCols+` FROM notify_deliveries`+w.clause()+
		fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, min(max(limit, 1), MaxLimit)), w.args...)
}

// GetDelivery reads one delivery of an org.
func GetDelivery(ctx context.Context, q Querier, orgID, id string) (Delivery, error) {
	d, err := scanDelivery(q.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("get delivery %s: %w", id, err)
	}
	return d, nil
}

// DeliveryAttempts lists a delivery's attempts in order.
func DeliveryAttempts(ctx context.Context, q Querier, deliveryID string) ([]DeliveryAttempt, error) {
	return queryAll(ctx, q, "delivery attempts", func(s rowScanner) (DeliveryAttempt, error) {
		var a DeliveryAttempt
		err := s.Scan(&a.ID, &a.DeliveryID, &a.N, &a.At, &a.Outcome, &a.Status, &a.Detail, &a.DurationMS)
		return a, err
	}, `SELECT id, delivery_id, n, at, outcome, status, detail, duration_ms FROM notify_attempts WHERE delivery_id = $1 ORDER BY n`, deliveryID)
}

// ReplayDelivery puts a failed or dead delivery back in the queue with a fresh attempt
// budget (its attempts stay in the history); ErrConflict if it is not failed or dead.
func ReplayDelivery(ctx context.Context, q Querier, orgID, id string) error {
	now := domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE notify_deliveries SET state = 'pending', attempts = 0, next_at = $1, updated_at = $1
		WHERE org_id = $2 AND id = $3 AND state IN ('failed', 'dead')`, now, orgID, id)
	if err != nil {
		return fmt.Errorf("replay delivery %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := GetDelivery(ctx, q, orgID, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: only a failed or dead delivery can be replayed", ErrConflict)
	}
	return nil
}
