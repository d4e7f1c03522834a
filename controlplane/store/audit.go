package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// AuditFor builds an audit entry for the actor in ctx; before and after are marshalled
// to JSON (nil stays empty).
func AuditFor(ctx context.Context, orgID, action, targetType, targetID string, before, after any) domain.AuditEntry {
	a := domain.ActorFrom(ctx)
	return domain.AuditEntry{
		OrgID: orgID, Actor: a.ID, RequestID: a.RequestID, Action: action,
		TargetType: targetType, TargetID: targetID, Before: mustJSON(before), After: mustJSON(after),
	}
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(fmt.Sprintf(`{"marshal_error":%q}`, err.Error()))
	}
	return b
}

func nullJSON(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

// WriteAudit appends an audit row through q, normally the caller's transaction, so the
// record exists exactly when the change does. It takes no shared lock: the hash chain is
// built after commit (controlplane/auditchain), which relies on At being the write time.
func WriteAudit(ctx context.Context, q Querier, e domain.AuditEntry) error {
	if e.ID == "" {
		e.ID = domain.NewID()
	}
	if e.At.IsZero() {
		e.At = domain.Now()
	}
	if e.Actor == "" {
		e.Actor = domain.ActorFrom(ctx).ID
	}
	_, err := q.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, before_json, after_json, request_id, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.ID, e.OrgID, e.Actor, e.Action, e.TargetType, e.TargetID, nullJSON(e.Before), nullJSON(e.After), e.RequestID,
		// Microseconds, which both stores keep exactly: Postgres would round nanoseconds, so a
		// row moved from SQLite (lanyard admin move) would no longer match its chain hash.
		e.At.UTC().Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("write audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditFilter narrows an audit listing.
type AuditFilter struct {
	Actor      string
	TargetType string
	TargetID   string
	Action     string
	Since      time.Time
	Until      time.Time
}

// ListAudit returns one page of an org's audit log, oldest first.
func (db *DB) ListAudit(ctx context.Context, orgID string, f AuditFilter, p Page) ([]domain.AuditEntry, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("actor = ?", f.Actor)
	w.addIf("target_type = ?", f.TargetType)
	w.addIf("target_id = ?", f.TargetID)
	w.addIf("action = ?", f.Action)
	if !f.Since.IsZero() {
		w.add("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		w.add("at < ?", f.Until.UTC())
	}
	return listPage(ctx, db.SQL, "list audit", scanAudit, func(e domain.AuditEntry) string { return e.ID }, p,
		`SELECT id, org_id, actor, action, target_type, target_id, before_json, after_json, request_id, at FROM audit_log`, w)
}

func scanAudit(s rowScanner) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	var before, after *string
	if err := s.Scan(&e.ID, &e.OrgID, &e.Actor, &e.Action, &e.TargetType, &e.TargetID, &before, &after, &e.RequestID, &e.At); err != nil {
		return e, err
	}
	if before != nil {
		e.Before = json.RawMessage(*before)
	}
	if after != nil {
		e.After = json.RawMessage(*after)
	}
	return e, nil
}

// WriteEvent appends a domain event to the outbox in the caller's transaction.
func WriteEvent(ctx context.Context, q Querier, ev domain.Event) error {
	if ev.ID == "" {
		ev.ID = domain.NewID()
	}
	if ev.At.IsZero() {
		ev.At = domain.Now()
	}
	payload := string(ev.Payload)
	if payload == "" {
		payload = "{}"
	}
	_, err := q.ExecContext(ctx, `INSERT INTO outbox_events (id, org_id, type, subject_type, subject_id, payload, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, ev.ID, ev.OrgID, ev.Type, ev.SubjectType, ev.SubjectID, payload, ev.At.UTC())
	if err != nil {
		return fmt.Errorf("write event %s: %w", ev.Type, err)
	}
	return nil
}

// ListEvents returns up to limit outbox events with seq > after, in order. Consumers keep
// their own position; see lifecycle for how gaps from concurrent writers are handled.
func (db *DB) ListEvents(ctx context.Context, after int64, limit int) ([]domain.Event, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return queryAll(ctx, db.SQL, "list events", scanEvent, `SELECT seq, id, org_id, type, subject_type, subject_id, payload, at
		FROM outbox_events WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
}

func scanEvent(s rowScanner) (domain.Event, error) {
	var e domain.Event
	var payload string
	if err := s.Scan(&e.Seq, &e.ID, &e.OrgID, &e.Type, &e.SubjectType, &e.SubjectID, &payload, &e.At); err != nil {
		return e, err
	}
	e.Payload = json.RawMessage(payload)
	return e, nil
}

// WriteEventOnce appends ev to the outbox unless an event with the same dedup key was
// written before, in the caller's transaction. Periodic observers (the watcher on every
// replica, a re-run after a restart) call it so that each fact reaches the outbox once; the
// key names the fact, e.g. "task.overdue:<task id>". It reports whether ev was written.
func WriteEventOnce(ctx context.Context, q Querier, key string, ev domain.Event) (bool, error) {
	if ev.ID == "" {
		ev.ID = domain.NewID()
	}
	res, err := q.ExecContext(ctx, `INSERT INTO event_once (key, org_id, event_id, at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO NOTHING`, key, ev.OrgID, ev.ID, domain.Now().UTC())
	if err != nil {
		return false, fmt.Errorf("claim event key %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return false, fmt.Errorf("claim event key %s: %w", key, err)
		}
		return false, nil
	}
	if err := WriteEvent(ctx, q, ev); err != nil {
		return false, err
	}
	return true, nil
}

// ForgetEventKey drops a dedup key so the fact can be emitted again: a device that checks
// in after a silence re-arms its silence event.
// It reports whether the key was set (the fact had been emitted).
func ForgetEventKey(ctx context.Context, q Querier, key string) (bool, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM event_once WHERE key = $1`, key)
	if err != nil {
		return false, fmt.Errorf("forget event key %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
