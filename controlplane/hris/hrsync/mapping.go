package hrsync

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// Time-zone rule (EDGE_CASES 1): HR dates are civil dates. "Today" is the date in
// the organization's time zone; a member whose start date is after today is
// pending. A termination date is the last day worked: Lanyard emits
// employee.termination_scheduled with the date as soon as HR enters it (the
// lifecycle schedules offboarding at the org's offboarding hour on that date)
// and employee.terminated once Justworks reports the member inactive.

// status computes the employment status of a member on a given day.
func status(m hris.Member, today string) domain.EmploymentStatus {
	if !m.Active {
		// Not active yet, not terminated, start in the future: a pending hire.
		if m.TerminationDate == "" && m.StartDate != "" && m.StartDate > today {
			return domain.StatusPending
		}
		return domain.StatusTerminated
	}
	if m.StartDate != "" && m.StartDate > today {
		return domain.StatusPending
	}
	return domain.StatusActive
}

func memberType(t string) domain.MemberType {
	switch t {
	case hris.TypePartTime, hris.TypeIntern:
		return domain.MemberPartTime
	case hris.TypeContractor, hris.TypeOther:
		return domain.MemberContractor
	}
	return domain.MemberFullTime
}

func datePtr(s string) *domain.Date {
	if s == "" {
		return nil
	}
	d, err := domain.ParseDate(s)
	if err != nil {
		return nil
	}
	return &d
}

// desired merges a member into the HR fields. Field groups the grant does not
// cover keep their previous values: an omitted field is not "cleared" when the
// scope to see it is missing (EDGE_CASES 15).
func desired(old *domain.HRFields, m hris.Member, today string) domain.HRFields {
	var hr domain.HRFields
	if old != nil {
		hr = *old
		hr.Departments = slices.Clone(old.Departments)
	}
	fields := m.Fields
	if fields == 0 {
		fields = hris.FieldsBasic | hris.FieldsDetail | hris.FieldsEmployment
	}
	if fields.Has(hris.FieldsBasic) || old == nil {
		hr.FirstName, hr.LastName = m.FirstName, m.LastName
		hr.WorkEmail = m.WorkEmail
		hr.MemberType = memberType(m.MemberType)
		hr.International = m.International
	}
	if fields.Has(hris.FieldsDetail) || old == nil {
		hr.PersonalEmail, hr.Phone, hr.Title = m.PersonalEmail, m.Phone, m.Title
		hr.Address = domain.Address(m.Address)
		hr.Departments = []string{}
		if m.DepartmentName != "" {
			hr.Departments = []string{m.DepartmentName}
		}
	}
	if fields.Has(hris.FieldsEmployment) || old == nil {
		hr.StartDate, hr.TerminationDate = datePtr(m.StartDate), datePtr(m.TerminationDate)
	}
	probe := m
	probe.StartDate, probe.TerminationDate = "", ""
	if hr.StartDate != nil {
		probe.StartDate = hr.StartDate.String()
	}
	if hr.TerminationDate != nil {
		probe.TerminationDate = hr.TerminationDate.String()
	}
	hr.Status = status(probe, today)
	if !m.UpdatedAt.IsZero() {
		u := m.UpdatedAt.UTC()
		hr.SourceUpdatedAt = &u
	}
	if hr.Departments == nil {
		hr.Departments = []string{}
	}
	return hr
}

func dateStr(d *domain.Date) string {
	if d == nil {
		return ""
	}
	return d.String()
}

// changedFields lists the HR fields that differ (JSON names).
func changedFields(a, b domain.HRFields) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("first_name", a.FirstName != b.FirstName)
	add("last_name", a.LastName != b.LastName)
	add("work_email", a.WorkEmail != b.WorkEmail)
	add("personal_email", a.PersonalEmail != b.PersonalEmail)
	add("phone", a.Phone != b.Phone)
	add("address", a.Address != b.Address)
	add("title", a.Title != b.Title)
	add("status", a.Status != b.Status)
	add("departments", !slices.Equal(a.Departments, b.Departments))
	add("member_type", a.MemberType != b.MemberType)
	add("international", a.International != b.International)
	add("start_date", dateStr(a.StartDate) != dateStr(b.StartDate))
	add("termination_date", dateStr(a.TerminationDate) != dateStr(b.TerminationDate))
	return out
}

// plannedEvent is an outbox event before it gets ids.
type plannedEvent struct {
	Type    string
	Payload map[string]any
}

// eventsFor decides the outbox events of a change, from state (never from the
// webhook that triggered it). old is nil for a new employee. Each real change
// yields exactly one event of its kind; a write that changes nothing yields none.
func eventsFor(old *domain.HRFields, hr domain.HRFields) []plannedEvent {
	base := func(extra map[string]any) map[string]any {
		p := map[string]any{"status": hr.Status, "start_date": dateStr(hr.StartDate), "termination_date": dateStr(hr.TerminationDate)}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	if old == nil {
		if hr.Status == domain.StatusTerminated {
			return nil
		}
		evs := []plannedEvent{{Type: domain.EventEmployeeHired, Payload: base(nil)}}
		if hr.TerminationDate != nil {
			evs = append(evs, plannedEvent{Type: domain.EventEmployeeTerminationScheduled, Payload: base(map[string]any{"date": hr.TerminationDate.String()})})
		}
		return evs
	}
	var evs []plannedEvent
	changed := changedFields(*old, hr)
	consumed := map[string]bool{}
	wasTerm, isTerm := old.Status == domain.StatusTerminated, hr.Status == domain.StatusTerminated
	switch {
	case !wasTerm && isTerm:
		evs = append(evs, plannedEvent{Type: domain.EventEmployeeTerminated, Payload: base(nil)})
		consumed["status"], consumed["termination_date"] = true, true
	case wasTerm && !isTerm:
		if dateStr(old.StartDate) != dateStr(hr.StartDate) || old.TerminationDate == nil {
			evs = append(evs, plannedEvent{Type: domain.EventEmployeeRehired, Payload: base(map[string]any{"previous_termination_date": dateStr(old.TerminationDate)})})
		} else {
			// Same employment, termination date removed: the termination was
			// canceled after it took effect (EDGE_CASES 3).
			evs = append(evs, plannedEvent{Type: domain.EventEmployeeTerminationCanceled, Payload: base(map[string]any{"after_effective": true, "canceled_date": dateStr(old.TerminationDate)})})
		}
		consumed["status"], consumed["termination_date"], consumed["start_date"] = true, true, true
	default:
		if ot, nt := dateStr(old.TerminationDate), dateStr(hr.TerminationDate); ot != nt {
			if nt != "" {
				evs = append(evs, plannedEvent{Type: domain.EventEmployeeTerminationScheduled, Payload: base(map[string]any{"date": nt, "previous_date": ot})})
			} else {
				evs = append(evs, plannedEvent{Type: domain.EventEmployeeTerminationCanceled, Payload: base(map[string]any{"canceled_date": ot})})
			}
			consumed["termination_date"] = true
		}
	}
	var rest []string
	for _, f := range changed {
		if !consumed[f] {
			rest = append(rest, f)
		}
	}
	if len(rest) > 0 {
		evs = append(evs, plannedEvent{Type: domain.EventEmployeeUpdated, Payload: base(map[string]any{"changed": rest})})
	}
	return evs
}

func todayIn(now time.Time, loc *time.Location) string {
	return now.In(loc).Format(time.DateOnly)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
