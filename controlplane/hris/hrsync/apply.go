package hrsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// outcome of applying one member.
type outcome int

const (
	outUnchanged outcome = iota
	outCreated
	outUpdated
	outTerminated
	outSkipped        // not imported (policy, e.g. international excluded); reason given
	outWouldTerminate // a termination not applied yet (scan: confirm and breaker first)
)

// applyOpts say how far apply may go.
type applyOpts struct {
	allowTerminate bool
	org            domain.Org
	source         string
	today          string
	// noRehire: the org has no terminated employee of this source, so a new
	// member cannot be a rehire (saves a lookup per new member on imports).
	noRehire bool
}

// applyMember writes one member's current state in tx: create, update or
// nothing, with audit rows and outbox events for real changes only.
func (e *Engine) applyMember(ctx context.Context, tx *sql.Tx, m hris.Member, o applyOpts) (outcome, string, error) {
	old, err := e.db.LockEmployeeByExternalID(ctx, tx, o.org.ID, o.source, m.ExternalID)
	return e.applyWith(ctx, tx, m, o, old, err)
}

// applyWith is applyMember with the stored employee already read and locked;
// lookupErr is store.ErrNotFound for a member we do not have.
func (e *Engine) applyWith(ctx context.Context, tx *sql.Tx, m hris.Member, o applyOpts, old domain.Employee, lookupErr error) (outcome, string, error) {
	err := lookupErr
	relinked := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		hr := desired(nil, m, o.today)
		if hr.Status == domain.StatusTerminated {
			return outUnchanged, "", nil // a former member we never knew: nothing to do
		}
		if m.International && !o.org.Settings.IncludeInternational {
			return outSkipped, "international member excluded by the organization's setting", nil
		}
		// Rehire under a new member id: reactivate the old employee instead of
		// creating a duplicate (EDGE_CASES 4).
		cerr := store.ErrNotFound
		var cand domain.Employee
		if !o.noRehire {
			cand, cerr = e.db.FindRehireCandidate(ctx, tx, o.org.ID, o.source, m.WorkID, normEmail(m.WorkEmail))
		}
		if cerr == nil {
			old, relinked = cand, true
			break
		}
		if !errors.Is(cerr, store.ErrNotFound) {
			return 0, "", cerr
		}
		emp := domain.Employee{OrgID: o.org.ID, Source: o.source, ExternalID: m.ExternalID, HR: hr}
		if err := store.InsertEmployee(ctx, tx, &emp); err != nil {
			return 0, "", err
		}
		if err := e.writeSideEffects(ctx, tx, nil, emp, m, eventsFor(nil, hr)); err != nil {
			return 0, "", err
		}
		return outCreated, "", nil
	case err != nil:
		return 0, "", err
	}

	// Never apply a record older than the one we have (out-of-order webhooks,
	// a member seen twice in one scan).
	if !relinked && old.HR.SourceUpdatedAt != nil && !m.UpdatedAt.IsZero() && m.UpdatedAt.Before(*old.HR.SourceUpdatedAt) {
		return outUnchanged, "", nil
	}
	hr := desired(&old.HR, m, o.today)
	evs := eventsFor(&old.HR, hr)
	if relinked {
		for i := range evs {
			evs[i].Payload["previous_external_id"] = old.ExternalID
		}
	}
	terminating := old.HR.Status != domain.StatusTerminated && hr.Status == domain.StatusTerminated
	if terminating && !o.allowTerminate {
		return outWouldTerminate, "", nil
	}
	if len(evs) == 0 && !relinked {
		if sameSourceTime(old.HR.SourceUpdatedAt, hr.SourceUpdatedAt) {
			return outUnchanged, "", nil
		}
		// Only the provider's updated_at moved: keep it, emit nothing.
		emp := old
		emp.HR = hr
		if err := store.UpdateEmployee(ctx, tx, &emp); err != nil {
			return 0, "", err
		}
		return outUnchanged, "", e.upsertMember(ctx, tx, emp, m)
	}
	emp := old
	emp.HR = hr
	emp.ExternalID = m.ExternalID
	if err := store.UpdateEmployee(ctx, tx, &emp); err != nil {
		return 0, "", err
	}
	if err := e.writeSideEffects(ctx, tx, &old, emp, m, evs); err != nil {
		return 0, "", err
	}
	if terminating {
		return outTerminated, "", nil
	}
	return outUpdated, "", nil
}

// unchanged reports whether applying m to stored would write nothing.
func unchanged(stored domain.Employee, m hris.Member, today string) bool {
	if stored.HR.SourceUpdatedAt != nil && !m.UpdatedAt.IsZero() && m.UpdatedAt.Before(*stored.HR.SourceUpdatedAt) {
		return true // older record: ignored anyway
	}
	hr := desired(&stored.HR, m, today)
	return len(eventsFor(&stored.HR, hr)) == 0 && sameSourceTime(stored.HR.SourceUpdatedAt, hr.SourceUpdatedAt)
}

func sameSourceTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (e *Engine) upsertMember(ctx context.Context, tx *sql.Tx, emp domain.Employee, m hris.Member) error {
	return store.UpsertHRMember(ctx, tx, store.HRMember{EmployeeID: emp.ID, OrgID: emp.OrgID, Source: emp.Source,
		ExternalID: m.ExternalID, WorkID: m.WorkID, DepartmentID: m.DepartmentID, ManagerExternalID: m.ManagerID,
		ProviderType: m.ProviderType, UpdatedAt: e.now()})
}

// writeSideEffects writes the provider details, the audit row and the events.
func (e *Engine) writeSideEffects(ctx context.Context, tx *sql.Tx, before *domain.Employee, emp domain.Employee, m hris.Member, evs []plannedEvent) error {
	if err := e.upsertMember(ctx, tx, emp, m); err != nil {
		return err
	}
	action := "employee.hr_updated"
	var b any
	if before == nil {
		action = "employee.hr_created"
	} else {
		b = before.HR
	}
	if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, emp.OrgID, action, "employee", emp.ID, b, emp.HR)); err != nil {
		return err
	}
	for _, ev := range evs {
		if err := store.WriteEvent(ctx, tx, domain.Event{OrgID: emp.OrgID, Type: ev.Type, SubjectType: "employee",
			SubjectID: emp.ID, Payload: mustJSON(eventPayload(ev, emp))}); err != nil {
			return fmt.Errorf("employee %s: %w", emp.ID, err)
		}
	}
	return nil
}

// applyPage applies one page of members in tx. New members (the bulk of an
// import) are written with one multi-row statement per table; everything else
// goes through applyMember one by one.
func (e *Engine) applyPage(ctx context.Context, tx *sql.Tx, ms []hris.Member, o applyOpts) ([]outcome, []string, error) {
	outs := make([]outcome, len(ms))
	reasons := make([]string, len(ms))
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.ExternalID)
	}
	existing, err := e.db.EmployeesByExternalIDs(ctx, tx, o.org.ID, o.source, ids)
	if err != nil {
		return nil, nil, err
	}
	type create struct {
		i   int
		m   hris.Member
		emp *domain.Employee
	}
	var creates []create
	inPage := map[string]bool{}
	for i, m := range ms {
		stored, known := existing[m.ExternalID]
		if known && unchanged(stored, m, o.today) {
			// Nothing to write: no lock needed (a full scan of an unchanged
			// roster costs one read per page).
			outs[i] = outUnchanged
			continue
		}
		if known || inPage[m.ExternalID] || !o.noRehire {
			out, reason, err := e.applyMember(ctx, tx, m, o)
			if err != nil {
				return nil, nil, fmt.Errorf("member %s: %w", m.ExternalID, err)
			}
			outs[i], reasons[i] = out, reason
			continue
		}
		inPage[m.ExternalID] = true
		hr := desired(nil, m, o.today)
		switch {
		case hr.Status == domain.StatusTerminated:
			outs[i] = outUnchanged
		case m.International && !o.org.Settings.IncludeInternational:
			outs[i], reasons[i] = outSkipped, "international member excluded by the organization's setting"
		default:
			creates = append(creates, create{i: i, m: m, emp: &domain.Employee{ID: domain.NewID(), OrgID: o.org.ID, Source: o.source, ExternalID: m.ExternalID, HR: hr}})
		}
	}
	if len(creates) == 0 {
		return outs, reasons, nil
	}
	emps := make([]*domain.Employee, len(creates))
	for k, c := range creates {
		emps[k] = c.emp
	}
	now := e.now()
	members := make([]store.HRMember, 0, len(creates))
	audits := make([]domain.AuditEntry, 0, len(creates))
	var events []domain.Event
	for _, c := range creates {
		emp := c.emp
		outs[c.i] = outCreated
		members = append(members, store.HRMember{EmployeeID: emp.ID, OrgID: emp.OrgID, Source: emp.Source, ExternalID: c.m.ExternalID,
			WorkID: c.m.WorkID, DepartmentID: c.m.DepartmentID, ManagerExternalID: c.m.ManagerID, ProviderType: c.m.ProviderType, UpdatedAt: now})
		audits = append(audits, store.AuditFor(ctx, emp.OrgID, "employee.hr_created", "employee", emp.ID, nil, emp.HR))
		for _, ev := range eventsFor(nil, emp.HR) {
			events = append(events, domain.Event{OrgID: emp.OrgID, Type: ev.Type, SubjectType: "employee", SubjectID: emp.ID,
				Payload: mustJSON(eventPayload(ev, *emp))})
		}
	}
	if err := e.db.InsertHRBatch(ctx, tx, emps, members, audits, events); err != nil {
		return nil, nil, err
	}
	return outs, reasons, nil
}

func eventPayload(ev plannedEvent, emp domain.Employee) map[string]any {
	ev.Payload["employee_id"] = emp.ID
	ev.Payload["external_id"] = emp.ExternalID
	ev.Payload["source"] = emp.Source
	ev.Payload["work_email"] = emp.HR.WorkEmail
	ev.Payload["name"] = emp.HR.FirstName + " " + emp.HR.LastName
	return ev.Payload
}
