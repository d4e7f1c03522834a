package fakejustworks

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Name is MemberName in the spec.
type Name struct {
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	PreferredName string `json:"preferred_name,omitempty"`
}

// Address is Address in the spec.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Email [GUESS shape].
type Email struct {
	Type    string `json:"type"` // WORK or PERSONAL
	Address string `json:"address"`
}

// Phone [GUESS shape].
type Phone struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

// Ref is a {id, name} reference (department, manager) [GUESS shape].
type Ref struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Department of the company.
type Department struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Employment is one country's entry of current_employment [GUESS shape].
type Employment struct {
	EmploymentType string `json:"employment_type,omitempty"` // full_time, part_time
	StartDate      string `json:"start_date,omitempty"`
	EndDate        string `json:"end_date,omitempty"`
}

// Member follows the spec's Member schema; empty values are omitted, empty
// arrays are [] (API.md §1).
type Member struct {
	ID                        string                `json:"id"`
	CompanyID                 string                `json:"company_id"`
	WorkID                    string                `json:"work_id,omitempty"`
	Name                      *Name                 `json:"name,omitempty"`
	Active                    bool                  `json:"active"`
	EmploymentLocationType    string                `json:"employment_location_type,omitempty"`
	Type                      string                `json:"type,omitempty"`
	Addresses                 []Address             `json:"addresses"`
	Emails                    []Email               `json:"emails"`
	Phones                    []Phone               `json:"phones"`
	CurrentEmployment         map[string]Employment `json:"current_employment,omitempty"`
	EmploymentHistory         []Employment          `json:"employment_history"`
	Department                *Ref                  `json:"department,omitempty"`
	Manager                   *Ref                  `json:"manager,omitempty"`
	EmploymentStartDate       string                `json:"employment_start_date,omitempty"`
	EmploymentTerminationDate string                `json:"employment_termination_date,omitempty"`
	JobTitle                  string                `json:"job_title,omitempty"`
	CreatedAt                 time.Time             `json:"created_at"`
	UpdatedAt                 time.Time             `json:"updated_at"`
}

// Clone deep-copies m.
func (m Member) Clone() Member {
	c := m
	if m.Name != nil {
		n := *m.Name
		c.Name = &n
	}
	c.Addresses = slices.Clone(m.Addresses)
	c.Emails = slices.Clone(m.Emails)
	c.Phones = slices.Clone(m.Phones)
	c.EmploymentHistory = slices.Clone(m.EmploymentHistory)
	if m.CurrentEmployment != nil {
		c.CurrentEmployment = map[string]Employment{}
		for k, v := range m.CurrentEmployment {
			c.CurrentEmployment[k] = v
		}
	}
	if m.Department != nil {
		d := *m.Department
		c.Department = &d
	}
	if m.Manager != nil {
		r := *m.Manager
		c.Manager = &r
	}
	return c
}

// WorkEmail returns the WORK email, if any.
func (m Member) WorkEmail() string {
	for _, e := range m.Emails {
		if e.Type == "WORK" {
			return e.Address
		}
	}
	return ""
}

// view applies the grant's scopes: fields the grant may not see are omitted,
// exactly like empty ones (EDGE_CASES 15).
func (m Member) view(scopes []string) Member {
	v := m.Clone()
	if v.Addresses == nil {
		v.Addresses = []Address{}
	}
	if v.Emails == nil {
		v.Emails = []Email{}
	}
	if v.Phones == nil {
		v.Phones = []Phone{}
	}
	if v.EmploymentHistory == nil {
		v.EmploymentHistory = []Employment{}
	}
	if !slices.Contains(scopes, "member.detail:read") {
		v.Addresses, v.Phones = []Address{}, []Phone{}
		v.Emails = slices.DeleteFunc(v.Emails, func(e Email) bool { return e.Type != "WORK" })
		v.Department, v.Manager, v.JobTitle = nil, nil, ""
	}
	if !slices.Contains(scopes, "member.employment:read") {
		v.EmploymentStartDate, v.EmploymentTerminationDate = "", ""
		v.CurrentEmployment, v.EmploymentHistory = nil, []Employment{}
	}
	return v
}

type cursor struct {
	Epoch   int       `json:"e"`
	Issued  time.Time `json:"t"`
	After   time.Time `json:"u,omitzero"`
	AfterID string    `json:"i,omitempty"`
	Offset  int       `json:"o,omitempty"`
	Filter  string    `json:"f"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, bool) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

type timeFilter struct {
	op string
	t  time.Time
}

func (f timeFilter) match(t time.Time) bool {
	switch f.op {
	case "gt":
		return t.After(f.t)
	case "gte":
		return !t.Before(f.t)
	case "lt":
		return t.Before(f.t)
	case "lte":
		return !t.After(f.t)
	case "ne":
		return !t.Equal(f.t)
	default:
		return t.Equal(f.t)
	}
}

func (s *Server) handleListMembers(w http.ResponseWriter, r *http.Request, tok *accessToken) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "invalid_limit", "limit must be 1..100")
			return
		}
		limit = n
	}
	status := q.Get("status")
	if status != "" && status != "active" && status != "terminated" {
		writeError(w, http.StatusBadRequest, "invalid_status", "status must be active or terminated")
		return
	}
	var filters []timeFilter
	for _, op := range []string{"", "gt", "gte", "lt", "lte", "ne"} {
		key := "updated_at"
		if op != "" {
			key += "_" + op
		}
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_updated_at", key+" must be ISO-8601")
				return
			}
			filters = append(filters, timeFilter{op: op, t: t})
		}
	}
	filterKey := status + "|" + q.Get("updated_at") + q.Get("updated_at_gt") + q.Get("updated_at_gte") + q.Get("updated_at_lt") + q.Get("updated_at_lte") + q.Get("updated_at_ne")

	s.mu.Lock()
	s.pages++
	page, hook := s.pages, s.pageHook
	s.mu.Unlock()
	if hook != nil {
		hook(page)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.MemberPages++
	var cur cursor
	if c := q.Get("cursor"); c != "" {
		var ok bool
		cur, ok = decodeCursor(c)
		stale := s.opts.CursorTTL > 0 && s.nowLocked().Sub(cur.Issued) > s.opts.CursorTTL
		if !ok || cur.Epoch != s.cursorEpoch || cur.Filter != filterKey || stale {
			writeError(w, http.StatusBadRequest, "invalid_cursor", "cursor is invalid or expired")
			return
		}
	}

	type row struct {
		id  string
		upd time.Time
		m   *Member
	}
	rows := make([]row, 0, len(s.members)+len(s.raw))
	for id, m := range s.members {
		if status == "active" && !m.Active || status == "terminated" && m.Active {
			continue
		}
		ok := true
		for _, f := range filters {
			ok = ok && f.match(m.UpdatedAt)
		}
		if ok {
			rows = append(rows, row{id: id, upd: m.UpdatedAt, m: m})
		}
	}
	for id := range s.raw {
		if _, dup := s.members[id]; !dup {
			rows = append(rows, row{id: id})
		}
	}
	byOffset := s.opts.Ordering == "offset"
	slices.SortFunc(rows, func(a, b row) int {
		if !byOffset {
			if c := a.upd.Compare(b.upd); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.id, b.id)
	})
	start := 0
	if q.Get("cursor") != "" {
		if byOffset {
			start = min(cur.Offset, len(rows))
		} else {
			start, _ = slices.BinarySearchFunc(rows, cur, func(r row, c cursor) int {
				if x := r.upd.Compare(c.After); x != 0 {
					return x
				}
				if x := cmp.Compare(r.id, c.AfterID); x != 0 {
					return x
				}
				return -1 // strictly after the cursor row
			})
		}
	}
	end := min(start+limit, len(rows))
	items := make([]json.RawMessage, 0, end-start)
	for _, rw := range rows[start:end] {
		if raw, ok := s.raw[rw.id]; ok {
			items = append(items, raw)
			continue
		}
		b, _ := json.Marshal(rw.m.view(tok.grant.scopes))
		items = append(items, b)
	}
	resp := map[string]any{"items": items}
	if end < len(rows) {
		last := rows[end-1]
		c := cursor{Epoch: s.cursorEpoch, Issued: s.nowLocked(), Filter: filterKey}
		if byOffset {
			c.Offset = end
		} else {
			c.After, c.AfterID = last.upd, last.id
		}
		resp["next_cursor"] = encodeCursor(c)
	}
	s.applyCursorFaultLocked(q.Get("cursor"), resp)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleGetMember(w http.ResponseWriter, r *http.Request, tok *accessToken) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.MemberGets++
	if raw, ok := s.raw[id]; ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
		return
	}
	m := s.members[id]
	if m == nil {
		writeError(w, http.StatusNotFound, "not_found", "member not found")
		return
	}
	writeJSON(w, http.StatusOK, m.view(tok.grant.scopes))
}

func (s *Server) handleCompany(w http.ResponseWriter, r *http.Request, tok *accessToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	deps := make([]Department, len(s.departments))
	copy(deps, s.departments)
	writeJSON(w, http.StatusOK, map[string]any{
		"id":           s.opts.CompanyID,
		"display_name": s.opts.CompanyName,
		"legal_name":   s.opts.CompanyName + ", Inc.",
		"addresses":    []Address{{Line1: "1 Fake Plaza", City: "New York", State: "NY", PostalCode: "10001", Country: "US"}},
		"departments":  deps,
		"offices":      []any{},
		"phones":       []any{},
		"created_at":   "2020-01-01T00:00:00Z",
		"updated_at":   "2026-01-01T00:00:00Z",
	})
}

// ---- in-process mutation API (each change bumps updated_at and emits the
// webhook Justworks would send, if any) ----

// Member returns a copy of a member.
func (s *Server) Member(id string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[id]
	if m == nil {
		return Member{}, false
	}
	return m.Clone(), true
}

// Members returns copies of all members, by id.
func (s *Server) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m.Clone())
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Load replaces all members without emitting events (initial state).
func (s *Server) Load(ms []Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = make(map[string]*Member, len(ms))
	for i := range ms {
		m := ms[i].Clone()
		if m.CompanyID == "" {
			m.CompanyID = s.opts.CompanyID
		}
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = s.stampLocked()
		}
		if m.CreatedAt.IsZero() {
			m.CreatedAt = m.UpdatedAt
		}
		s.members[m.ID] = &m
	}
}

// AddMember adds a member (id generated when empty) and emits
// member.profile.created. It returns the stored copy.
func (s *Server) AddMember(m Member) Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	m = m.Clone()
	if m.ID == "" {
		m.ID = randID("mem_")
	}
	m.CompanyID = s.opts.CompanyID
	m.UpdatedAt = s.stampLocked()
	m.CreatedAt = m.UpdatedAt
	s.members[m.ID] = &m
	s.emitLocked("member.profile.created", &m)
	return m.Clone()
}

// UpdateMember edits a member and emits member.profile.updated (unless silent,
// for changes Justworks sends no webhook about, e.g. a type change).
func (s *Server) UpdateMember(id string, fn func(*Member), silent bool) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[id]
	if m == nil {
		return Member{}, errNoMember
	}
	fn(m)
	m.ID = id
	m.UpdatedAt = s.stampLocked()
	if !silent {
		s.emitLocked("member.profile.updated", m)
	}
	return m.Clone(), nil
}

// ScheduleTermination sets the termination date and emits
// member.employment_state.termination_scheduled. A date before today takes
// effect at once (retroactive termination).
func (s *Server) ScheduleTermination(id, date string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[id]
	if m == nil {
		return Member{}, errNoMember
	}
	m.EmploymentTerminationDate = date
	m.UpdatedAt = s.stampLocked()
	s.applyDatesLocked()
	s.emitLocked("member.employment_state.termination_scheduled", m)
	return m.Clone(), nil
}

// CancelTermination removes the date (omitted, not null) and reactivates a
// member whose termination had taken effect; emits termination_canceled.
func (s *Server) CancelTermination(id string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[id]
	if m == nil {
		return Member{}, errNoMember
	}
	m.EmploymentTerminationDate = ""
	m.Active = true
	m.UpdatedAt = s.stampLocked()
	s.emitLocked("member.employment_state.termination_canceled", m)
	return m.Clone(), nil
}

// Rehire makes a terminated member active again under the same id, with a new
// start date and a history entry; Justworks sends no dedicated event, so none
// is emitted (EDGE_CASES 4, variant "same id").
func (s *Server) Rehire(id, startDate string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[id]
	if m == nil {
		return Member{}, errNoMember
	}
	m.EmploymentHistory = append(m.EmploymentHistory, Employment{StartDate: m.EmploymentStartDate, EndDate: m.EmploymentTerminationDate})
	m.Active = true
	m.EmploymentStartDate = startDate
	m.EmploymentTerminationDate = ""
	m.UpdatedAt = s.stampLocked()
	return m.Clone(), nil
}

// RehireAsNew creates a new member id for a former member, copying the
// profile (same work email and work id), and emits member.profile.created
// (EDGE_CASES 4, variant "new id").
func (s *Server) RehireAsNew(oldID, startDate string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.members[oldID]
	if old == nil {
		return Member{}, errNoMember
	}
	m := old.Clone()
	m.ID = randID("mem_")
	m.Active = true
	m.EmploymentStartDate = startDate
	m.EmploymentTerminationDate = ""
	m.EmploymentHistory = nil
	m.UpdatedAt = s.stampLocked()
	m.CreatedAt = m.UpdatedAt
	s.members[m.ID] = &m
	s.emitLocked("member.profile.created", &m)
	return m.Clone(), nil
}

// PutRaw serves raw bytes as the member with this id (malformed records).
func (s *Server) PutRaw(id string, raw json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw[id] = raw
}

// Departments returns the company's departments.
func (s *Server) Departments() []Department {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.departments)
}

// RenameDepartment keeps the id, changes the name everywhere and emits
// department.updated. Member updated_at is not bumped (the member record
// itself did not change), so only the event or a full scan reveals it.
func (s *Server) RenameDepartment(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.departments {
		if s.departments[i].ID == id {
			s.departments[i].Name = name
		}
	}
	for _, m := range s.members {
		if m.Department != nil && m.Department.ID == id {
			m.Department.Name = name
		}
	}
	s.emitDepartmentLocked("department.updated", Department{ID: id, Name: name})
}

// DeleteDepartment removes it; members lose their department (field omitted)
// and get a new updated_at; emits department.deleted.
func (s *Server) DeleteDepartment(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone Department
	s.departments = slices.DeleteFunc(s.departments, func(d Department) bool {
		if d.ID == id {
			gone = d
			return true
		}
		return false
	})
	for _, m := range s.members {
		if m.Department != nil && m.Department.ID == id {
			m.Department = nil
			m.UpdatedAt = s.stampLocked()
		}
	}
	s.emitDepartmentLocked("department.deleted", gone)
}

// AddDepartment adds a department and emits department.created.
func (s *Server) AddDepartment(d Department) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.departments = append(s.departments, d)
	s.emitDepartmentLocked("department.created", d)
}

// ChangeMemberID re-keys a member: the same person (work email, work id,
// profile) under a new member id, the old id gone, and no webhook. Nothing in
// the spec allows it; the HR sync must refuse to guess.
func (s *Server) ChangeMemberID(oldID string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.members[oldID]
	if old == nil {
		return Member{}, errNoMember
	}
	m := old.Clone()
	m.ID = randID("mem_")
	m.UpdatedAt = s.stampLocked()
	delete(s.members, oldID)
	s.members[m.ID] = &m
	return m.Clone(), nil
}
