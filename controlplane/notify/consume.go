package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ConsumeOutbox turns new outbox events into deliveries and returns how many events it
// handled. The cursor rules are lifecycle's (controlplane/lifecycle/consumer.go): the
// cursor moves only over a contiguous run of handled seqs (a younger gap may be a
// transaction still committing), each event is handled in one transaction with its
// notify mark in lifecycle_handled_events, and an event that keeps failing is recorded
// (audit notify.event.failed) and skipped after PoisonAfter tries.
func (e *Engine) ConsumeOutbox(ctx context.Context) (int, error) {
	ctx = systemCtx(ctx)
	cursor, err := store.ConsumerCursor(ctx, e.db.SQL, e.cfg.Consumer)
	if err != nil {
		return 0, err
	}
	events, err := e.db.ListEvents(ctx, cursor, 500)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	handledBefore, err := store.HandledEventSeqs(ctx, e.db.SQL, e.cfg.Consumer, cursor, events[len(events)-1].Seq)
	if err != nil {
		return 0, err
	}
	n, queued := 0, 0
	var firstErr error
	failed := map[int64]bool{}
	for _, ev := range events {
		if handledBefore[ev.Seq] {
			continue
		}
		var added int
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			fresh, err := store.MarkEventHandled(ctx, tx, e.cfg.Consumer, ev)
			if err != nil || !fresh {
				return err
			}
			added, err = e.plan(ctx, tx, ev)
			return err
		})
		if err != nil {
			failed[ev.Seq] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, err)
			}
			e.poison(ctx, ev, err)
			continue
		}
		queued += added
		n++
	}
	wall := domain.Now()
	next := cursor
	for _, ev := range events {
		if failed[ev.Seq] || (ev.Seq != next+1 && ev.At.After(wall.Add(-e.cfg.GapGrace))) {
			break
		}
		next = ev.Seq
	}
	if next > cursor {
		if err := store.AdvanceConsumerCursor(ctx, e.db.SQL, e.cfg.Consumer, next); err != nil {
			return n, err
		}
	}
	if queued > 0 {
		signal(e.sendKick)
	}
	return n, firstErr
}

// poison counts an event's failures; at PoisonAfter it is marked handled with an audit
// row an admin can see, so one bad event never stalls the others.
func (e *Engine) poison(ctx context.Context, ev domain.Event, cause error) {
	e.mu.Lock()
	e.failures[ev.ID]++
	n := e.failures[ev.ID]
	e.mu.Unlock()
	e.log.Warn("event handling failed", "event", ev.ID, "type", ev.Type, "attempt", n, "err", cause)
	if n < e.cfg.PoisonAfter {
		return
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		fresh, err := store.MarkEventHandled(ctx, tx, e.cfg.Consumer, ev)
		if err != nil || !fresh {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, ev.OrgID, "notify.event.failed", ev.SubjectType, ev.SubjectID, nil,
			map[string]any{"event_id": ev.ID, "type": ev.Type, "error": cause.Error(), "attempts": n}))
	})
	if err != nil {
		e.log.Error("record failed event", "event", ev.ID, "err", err)
		return
	}
	e.mu.Lock()
	delete(e.failures, ev.ID)
	e.mu.Unlock()
}

// plan inserts the deliveries of one event inside tx and returns how many are due.
func (e *Engine) plan(ctx context.Context, tx *sql.Tx, ev domain.Event) (int, error) {
	if ev.OrgID == "" {
		return 0, nil
	}
	rules, err := e.rulesOf(ctx, tx, ev.OrgID)
	if err != nil {
		return 0, err
	}
	var matching []store.NotifyRule
	for _, r := range rules {
		if r.Matches(ev.Type) {
			matching = append(matching, r)
		}
	}
	if len(matching) == 0 {
		return 0, nil
	}
	channels, err := store.ListNotifyChannels(ctx, tx, ev.OrgID)
	if err != nil {
		return 0, err
	}
	org, err := store.GetOrg(ctx, tx, ev.OrgID)
	if err != nil {
		return 0, err
	}
	p := planner{e: e, ctx: ctx, tx: tx, ev: ev, channels: channels, loc: org.Location()}
	p.evJSON, _ = json.Marshal(ev)
	for _, r := range matching {
		if err := p.rule(r); err != nil {
			return p.due, err
		}
	}
	return p.due, nil
}

// rulesOf returns an org's rules, giving it the default set the first time.
func (e *Engine) rulesOf(ctx context.Context, tx *sql.Tx, orgID string) ([]store.NotifyRule, error) {
	fresh, err := store.MarkNotifyOrgSeeded(ctx, tx, orgID)
	if err != nil {
		return nil, err
	}
	if fresh {
		for _, r := range DefaultRules(orgID) {
			if err := store.InsertNotifyRule(ctx, tx, &r); err != nil {
				return nil, err
			}
		}
	}
	return store.ListNotifyRules(ctx, tx, orgID)
}

// SeedDefaults gives an org its default rules now (the demo; a new org otherwise gets
// them with its first event).
func (e *Engine) SeedDefaults(ctx context.Context, orgID string) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := e.rulesOf(ctx, tx, orgID)
		return err
	})
}

type planner struct {
	e        *Engine
	ctx      context.Context
	tx       *sql.Tx
	ev       domain.Event
	evJSON   []byte
	channels []store.NotifyChannel
	loc      *time.Location
	due      int
}

func (p *planner) emailChannel(id string) (store.NotifyChannel, bool) {
	for _, c := range p.channels {
		if c.Kind == channelEmail && c.Enabled && (id == "" || c.ID == id) {
			return c, true
		}
	}
	return store.NotifyChannel{}, false
}

func (p *planner) rule(r store.NotifyRule) error {
	kinds := templates[p.ev.Type]
	switch r.Audience {
	case audienceAdmins, audienceAddress:
		if kinds.admin == "" {
			return nil
		}
		var to []string
		if r.Audience == audienceAddress {
			to = []string{r.Address}
		} else {
			var err error
			if to, err = adminEmails(p.ctx, p.tx, p.ev.OrgID, domain.Role(r.MinRole)); err != nil {
				return err
			}
		}
		ch, ok := p.emailChannel(r.ChannelID)
		for _, addr := range to {
			if !ok {
				if err := p.failed(store.NotifyChannel{Kind: channelEmail}, addr, kinds.admin, "no email channel is configured"); err != nil {
					return err
				}
				continue
			}
			if err := p.add(ch, addr, kinds.admin); err != nil {
				return err
			}
		}
	case audienceChannel:
		for _, c := range p.channels {
			if !c.Enabled || c.Kind == channelEmail || (r.ChannelID != "" && c.ID != r.ChannelID) {
				continue
			}
			if c.Kind != channelHook && kinds.admin == "" {
				continue // Slack and log carry prompts; webhooks carry any event
			}
			if err := p.add(c, "", kinds.admin); err != nil {
				return err
			}
		}
	case audienceEmployee:
		if kinds.employee == "" {
			return nil
		}
		emp, ok, err := p.employee()
		if err != nil || !ok {
			return err
		}
		ch, chOK := p.emailChannel(r.ChannelID)
		addr := employeeAddress(emp, p.ev.At, p.loc)
		switch {
		case addr == "":
			return p.failed(ch, "employee:"+emp.ID, kinds.employee, "the employee has no email address (neither personal nor work)")
		case !chOK:
			return p.failed(store.NotifyChannel{Kind: channelEmail}, addr, kinds.employee, "no email channel is configured")
		}
		return p.add(ch, addr, kinds.employee)
	}
	return nil
}

// employee finds the event's employee: its subject, or the payload's employee_id.
func (p *planner) employee() (domain.Employee, bool, error) {
	id := ""
	if p.ev.SubjectType == "employee" {
		id = p.ev.SubjectID
	} else {
		var pl struct {
			EmployeeID string `json:"employee_id"`
		}
		_ = json.Unmarshal(p.ev.Payload, &pl)
		id = pl.EmployeeID
	}
	if id == "" {
		return domain.Employee{}, false, nil
	}
	emp, err := store.GetEmployee(p.ctx, p.tx, p.ev.OrgID, id)
	if errors.Is(err, store.ErrNotFound) {
		return emp, false, nil
	}
	return emp, err == nil, err
}

// employeeAddress is where an employee's mail goes: the personal address before the
// start date (no work mailbox yet), the work address from then on; either when the other
// is missing.
func employeeAddress(emp domain.Employee, at time.Time, loc *time.Location) string {
	personal, work := strings.TrimSpace(emp.HR.PersonalEmail), strings.TrimSpace(emp.HR.WorkEmail)
	started := emp.HR.StartDate == nil || !at.Before(emp.HR.StartDate.At(0, loc))
	if started && work != "" || personal == "" {
		return work
	}
	return personal
}

func (p *planner) add(c store.NotifyChannel, recipient, tmpl string) error {
	d := store.Delivery{ID: store.DeliveryID(p.ev, c.ID, recipient), OrgID: p.ev.OrgID, EventID: p.ev.ID, EventType: p.ev.Type,
		EventAt: p.ev.At, Event: p.evJSON, ChannelID: c.ID, ChannelKind: c.Kind, Recipient: recipient, Template: tmpl}
	fresh, err := store.InsertDelivery(p.ctx, p.tx, &d)
	if fresh {
		p.due++
	}
	return err
}

// failed records a delivery that cannot be attempted (no address, no channel), with
// its reason, and tells the admins (notify.delivery_failed) unless the event already is
// such a notice.
func (p *planner) failed(c store.NotifyChannel, recipient, tmpl, reason string) error {
	d := store.Delivery{ID: store.DeliveryID(p.ev, c.ID, recipient), OrgID: p.ev.OrgID, EventID: p.ev.ID, EventType: p.ev.Type,
		EventAt: p.ev.At, Event: p.evJSON, ChannelID: c.ID, ChannelKind: c.Kind, Recipient: recipient, Template: tmpl,
		State: store.DeliveryFailed, LastError: reason}
	fresh, err := store.InsertDelivery(p.ctx, p.tx, &d)
	if err != nil || !fresh {
		return err
	}
	return failureNotice(p.ctx, p.tx, d, reason)
}

// failureNotice writes the notify.delivery_failed event for a delivery that ended failed
// or dead, so the admins' channels hear about it.
func failureNotice(ctx context.Context, q store.Querier, d store.Delivery, reason string) error {
	if d.EventType == EventDeliveryFailed || d.EventType == EventChannelTest {
		return nil // a notice about a notice would loop
	}
	payload, _ := json.Marshal(map[string]string{"delivery_id": d.ID, "event_type": d.EventType, "channel_kind": d.ChannelKind,
		"recipient": d.Recipient, "reason": reason})
	return store.WriteEvent(ctx, q, domain.Event{OrgID: d.OrgID, Type: EventDeliveryFailed, SubjectType: "notify_delivery", SubjectID: d.ID,
		Payload: payload})
}

// adminEmails lists the addresses of an org's active console users with at least role.
func adminEmails(ctx context.Context, q store.Querier, orgID string, min domain.Role) ([]string, error) {
	if !min.Valid() {
		min = defaultAdminRole
	}
	rows, err := q.QueryContext(ctx, `SELECT email, role FROM users WHERE org_id = $1 AND removed_at IS NULL AND disabled_at IS NULL ORDER BY id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("admins of %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var email string
		var role domain.Role
		if err := rows.Scan(&email, &role); err != nil {
			return nil, fmt.Errorf("admins of %s: %w", orgID, err)
		}
		if role.AtLeast(min) && strings.Contains(email, "@") {
			out = append(out, email)
		}
	}
	return out, rows.Err()
}
