package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// DeviceDetailer adds a capability's view of a device (tracking, MDM) to GET /devices/{id}
// under its own key, so the core never needs to know those capabilities.
type DeviceDetailer interface {
	DeviceDetails(ctx context.Context, orgID, deviceID string) (key string, details any, err error)
}

// DeviceView is a device with the details capabilities attach to it.
type DeviceView struct {
	domain.Device
	Details map[string]any `json:"details,omitempty"`
}

type orgPatch struct {
	Name     *string             `json:"name,omitempty"`
	TimeZone *string             `json:"time_zone,omitempty"`
	Plan     *string             `json:"plan,omitempty"`
	Settings *domain.OrgSettings `json:"settings,omitempty"`
}

type tokenCreate struct {
	Name          string `json:"name"`
	Role          string `json:"role"`
	ExpiresInDays int    `json:"expires_in_days,omitempty"`
	// Kind is personal (default) or service (a script's token); either way the caller owns it.
	Kind string `json:"kind,omitempty" enum:"personal,service"`
}

type tokenCreated struct {
	Token store.Token `json:"token"`
	// Secret is shown once; only its hash is stored.
	Secret string `json:"secret"`
}

type employeePatch struct {
	EquipmentType *string `json:"equipment_type,omitempty"`
	Notes         *string `json:"notes,omitempty" maxlen:"4000" text:"multiline"`
}

type deviceCreate struct {
	SerialNumber  string       `json:"serial_number"`
	Vendor        string       `json:"vendor"`
	Model         string       `json:"model,omitempty"`
	Platform      string       `json:"platform,omitempty"`
	EquipmentType string       `json:"equipment_type"`
	PurchaseDate  *domain.Date `json:"purchase_date,omitempty"`
	State         string       `json:"state,omitempty"`
	Notes         string       `json:"notes,omitempty" maxlen:"4000" text:"multiline"`
}

type devicePatch struct {
	Model         *string      `json:"model,omitempty"`
	Platform      *string      `json:"platform,omitempty"`
	EquipmentType *string      `json:"equipment_type,omitempty"`
	PurchaseDate  *domain.Date `json:"purchase_date,omitempty"`
	Notes         *string      `json:"notes,omitempty" maxlen:"4000" text:"multiline"`
}

// deviceQuery is GET /devices' query string (see DecodeQuery). The enums are checked
// against the domain's lists by TestListQueryEnums.
type deviceQuery struct {
	Q             string `query:"q" doc:"case-insensitive substring of serial, model, vendor, hostname, or the assignee's name or work email"`
	State         string `query:"state" doc:"device state" enum:"ordered,in_transit,in_stock,assigned,in_use,retrieval_requested,in_retrieval,received,cleaning,ready_for_redeploy,lost,retired"`
	Platform      string `query:"platform" doc:"operating system family" enum:"macos,windows,linux,ios,other"`
	OSVersion     string `query:"os_version" doc:"OS version the agent last reported, exactly (e.g. 15.1)"`
	EquipmentType string `query:"equipment_type" doc:"e.g. laptop"`
	EmployeeID    string `query:"employee_id" doc:"devices held by this employee"`
	Serial        string `query:"serial" doc:"serial number, exactly"`
	Assigned      *bool  `query:"assigned" doc:"true: devices with a holder; false: without"`
	Unassigned    bool   `query:"unassigned" doc:"true for devices with no holder (same as assigned=false)"`
	DiskEncrypted *bool  `query:"disk_encrypted" doc:"last posture report says disk encryption is on (true) or off (false); unknown matches neither"`
	Firewall      *bool  `query:"firewall" doc:"last posture report says the firewall is on (true) or off (false)"`
	ScreenLock    *bool  `query:"screen_lock" doc:"last posture report says the screen lock is on (true) or off (false)"`
	OfflineDays   int    `query:"offline_days" doc:"agent last seen more than this many days ago (devices without an agent are not offline)" min:"1" max:"3650"`
	NeedsReview   *bool  `query:"needs_review" doc:"flagged for review: unknown serial, serial conflict, or an agent in dry-run/test mode"`
	Sort          string `query:"sort" doc:"sort key (default created); ties are broken by id" enum:"created,serial,model,state,last_seen,assignee"`
	Order         string `query:"order" doc:"sort direction (default asc)" enum:"asc,desc"`
	Limit         int    `query:"limit" doc:"page size (default 50)" min:"1" max:"200"`
	Cursor        string `query:"cursor" doc:"from next_cursor; valid only with the same sort and order"`
	Total         bool   `query:"total" doc:"true to count every matching device (total)"`
}

// employeeQuery is GET /employees' query string.
type employeeQuery struct {
	Q          string `query:"q" doc:"case-insensitive substring of the name (first last) or work email"`
	Status     string `query:"status" doc:"employment status" enum:"pending,active,terminated"`
	Department string `query:"department" doc:"department name (case-insensitive)"`
	MemberType string `query:"member_type" doc:"member type" enum:"full_time,part_time,contractor"`
	Email      string `query:"email" doc:"work email, exactly" format:"email"`
	Sort       string `query:"sort" doc:"sort key (default created); ties are broken by id" enum:"created,name,email,status,start_date"`
	Order      string `query:"order" doc:"sort direction (default asc)" enum:"asc,desc"`
	Limit      int    `query:"limit" doc:"page size (default 50)" min:"1" max:"200"`
	Cursor     string `query:"cursor" doc:"from next_cursor; valid only with the same sort and order"`
	Total      bool   `query:"total" doc:"true to count every matching employee (total)"`
}

// CountedList is a List that can also say how many items match in all (when asked).
type CountedList[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
	Total      *int   `json:"total,omitempty"`
}

// NewCountedList never returns a null items array.
func NewCountedList[T any](items []T, next string, total *int) CountedList[T] {
	if items == nil {
		items = []T{}
	}
	return CountedList[T]{Items: items, NextCursor: next, Total: total}
}

type assignRequest struct {
	EmployeeID string `json:"employee_id"`
}

type transitionRequest struct {
	State string `json:"state"`
}

var validPlatforms = []domain.Platform{domain.PlatformMacOS, domain.PlatformWindows, domain.PlatformLinux, domain.PlatformIOS, domain.PlatformOther}

func parsePlatform(s string) (domain.Platform, error) {
	if s == "" {
		return "", nil
	}
	p := domain.Platform(strings.ToLower(s))
	if !slices.Contains(validPlatforms, p) {
		return "", Unprocessable(fmt.Sprintf("platform %q is not one of %v", s, validPlatforms)).With("field", "platform")
	}
	return p, nil
}

func coreRoutes(st Store, detailers ...DeviceDetailer) []Route {
	h := &core{st: st, detailers: detailers}
	dev := "Devices"
	return []Route{
		{Method: "GET", Path: "/api/v1/org", Summary: "Get the caller's organization", Tag: "Organization", Role: domain.RoleViewer,
			Response: domain.Org{}, Handler: h.getOrg},
		{Method: "PATCH", Path: "/api/v1/org", Summary: "Update the organization (plan changes need owner)", Tag: "Organization",
			Role: domain.RoleAdmin, Request: orgPatch{}, Response: domain.Org{}, Handler: h.patchOrg},
		{Method: "GET", Path: "/api/v1/tokens", Summary: "List API tokens", Tag: "Tokens", Role: domain.RoleAdmin,
			Response: List[store.Token]{}, Handler: h.listTokens},
		{Method: "POST", Path: "/api/v1/tokens", Summary: "Create an API token (secret shown once)", Tag: "Tokens", Role: domain.RoleAdmin,
			Request: tokenCreate{}, Response: tokenCreated{}, Status: http.StatusCreated, Handler: h.createToken},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Summary: "Revoke an API token", Tag: "Tokens", Role: domain.RoleAdmin,
			Resource: "token", Response: store.Token{}, Handler: h.revokeToken},
		{Method: "GET", Path: "/api/v1/employees", Summary: "List and search employees", Tag: "Employees", Role: domain.RoleViewer,
			QueryOf: employeeQuery{}, Response: CountedList[domain.Employee]{}, Handler: h.listEmployees},
		{Method: "GET", Path: "/api/v1/employees/{id}", Summary: "Get an employee", Tag: "Employees", Role: domain.RoleViewer,
			Resource: "employee", Response: domain.Employee{}, Handler: h.getEmployee},
		{Method: "PATCH", Path: "/api/v1/employees/{id}", Summary: "Edit Lanyard-owned employee fields (HR fields are read-only)", Tag: "Employees",
			Role: domain.RoleIT, Resource: "employee", Request: employeePatch{}, Response: domain.Employee{}, Handler: h.patchEmployee},
		{Method: "GET", Path: "/api/v1/employees/{id}/assignments", Summary: "An employee's device assignment history", Tag: "Employees",
			Role: domain.RoleViewer, Resource: "employee", Response: List[domain.Assignment]{}, Handler: h.employeeAssignments},
		{Method: "GET", Path: "/api/v1/devices", Summary: "List, search, filter and sort devices", Tag: dev, Role: domain.RoleViewer,
			Feature: domain.FeatureAssets, QueryOf: deviceQuery{}, Response: CountedList[store.DeviceListItem]{}, Handler: h.listDevices},
		{Method: "POST", Path: "/api/v1/devices", Summary: "Create a device", Tag: dev, Role: domain.RoleIT, Feature: domain.FeatureAssets,
			Request: deviceCreate{}, Response: domain.Device{}, Status: http.StatusCreated, Handler: h.createDevice},
		{Method: "GET", Path: "/api/v1/devices/{id}", Summary: "Get a device with capability details", Tag: dev, Role: domain.RoleViewer,
			Feature: domain.FeatureAssets, Resource: "device", Response: DeviceView{}, Handler: h.getDevice},
		{Method: "PATCH", Path: "/api/v1/devices/{id}", Summary: "Edit a device's descriptive fields", Tag: dev, Role: domain.RoleIT,
			Feature: domain.FeatureAssets, Resource: "device", Request: devicePatch{}, Response: domain.Device{}, Handler: h.patchDevice},
		{Method: "POST", Path: "/api/v1/devices/{id}/assign", Summary: "Assign a device to an employee", Tag: dev, Role: domain.RoleIT,
			Feature: domain.FeatureAssets, Resource: "device", Request: assignRequest{}, Response: domain.Device{}, Handler: h.assignDevice},
		{Method: "POST", Path: "/api/v1/devices/{id}/unassign", Summary: "Take back an assigned device not yet in use", Tag: dev,
			Role: domain.RoleIT, Feature: domain.FeatureAssets, Resource: "device", Response: domain.Device{}, Handler: h.unassignDevice},
		{Method: "POST", Path: "/api/v1/devices/{id}/transition", Summary: "Move a device along its state machine", Tag: dev,
			Role: domain.RoleIT, Feature: domain.FeatureAssets, Resource: "device", Request: transitionRequest{}, Response: domain.Device{},
			Handler: h.transitionDevice},
		{Method: "GET", Path: "/api/v1/devices/{id}/assignments", Summary: "A device's assignment history", Tag: dev, Role: domain.RoleViewer,
			Feature: domain.FeatureAssets, Resource: "device", Response: List[domain.Assignment]{}, Handler: h.deviceAssignments},
		{Method: "GET", Path: "/api/v1/audit", Summary: "Read the audit log", Tag: "Audit", Role: domain.RoleAdmin,
			Query: append([]Param{{Name: "actor", Description: "e.g. token:<id>"}, {Name: "target_type", Description: "e.g. device"},
				{Name: "target_id", Description: "id"}, {Name: "action", Description: "e.g. device.assigned"},
				{Name: "since", Description: "RFC 3339 time", Format: "date-time"}, {Name: "until", Description: "RFC 3339 time", Format: "date-time"}},
				PageParams()...),
			Response: List[domain.AuditEntry]{}, Handler: h.listAudit},
	}
}

type core struct {
	st        Store
	detailers []DeviceDetailer
}

func (h *core) getOrg(w http.ResponseWriter, r *http.Request) error {
	return JSON(w, http.StatusOK, PrincipalFrom(r.Context()).Org)
}

func (h *core) patchOrg(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req orgPatch
	if err := Decode(r, &req); err != nil {
		return err
	}
	o := p.Org
	if req.Name != nil {
		if strings.TrimSpace(*req.Name) == "" {
			return Unprocessable("name must not be empty").With("field", "name")
		}
		o.Name = strings.TrimSpace(*req.Name)
	}
	if req.TimeZone != nil {
		if _, err := time.LoadLocation(*req.TimeZone); err != nil || *req.TimeZone == "" {
			return Unprocessable(fmt.Sprintf("time_zone %q is not an IANA zone such as America/New_York", *req.TimeZone)).With("field", "time_zone")
		}
		o.TimeZone = *req.TimeZone
	}
	if req.Plan != nil {
		plan, err := domain.ParsePlan(*req.Plan)
		if err != nil {
			return Unprocessable(err.Error()).With("field", "plan")
		}
		if plan != o.Plan && !p.Role.AtLeast(domain.RoleOwner) {
			return Forbidden("changing the plan needs the owner role")
		}
		o.Plan = plan
	}
	if req.Settings != nil {
		if s := req.Settings; s.OffboardingHour < 0 || s.OffboardingHour > 23 || s.OnboardingLeadDays < 0 ||
			s.MassTerminationThresholdPct < 0 || s.MassTerminationThresholdPct > 100 {
			return Unprocessable("settings out of range: offboarding_hour 0-23, onboarding_lead_days ≥ 0, mass_termination_threshold_pct 0-100")
		}
		o.Settings = *req.Settings
	}
	out, err := h.st.UpdateOrg(r.Context(), o)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, out)
}

func (h *core) listTokens(w http.ResponseWriter, r *http.Request) error {
	pg, err := PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := h.st.ListTokens(r.Context(), PrincipalFrom(r.Context()).OrgID, pg)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, NewList(items, next))
}

func (h *core) createToken(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req tokenCreate
	if err := Decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 100 {
		return Unprocessable("name is required (at most 100 characters)").With("field", "name")
	}
	role, err := domain.ParseRole(req.Role)
	if err != nil {
		return Unprocessable(err.Error()).With("field", "role")
	}
	if !p.Role.AtLeast(role) {
		return Forbidden("a token cannot grant a role above the caller's (" + string(p.Role) + ")")
	}
	kind := req.Kind
	switch kind {
	case "":
		kind = store.TokenPersonal
	case store.TokenPersonal, store.TokenService:
	default:
		return Unprocessable("kind must be personal or service").With("field", "kind")
	}
	if req.ExpiresInDays < 0 || req.ExpiresInDays > 3650 {
		return Unprocessable("expires_in_days must be from 0 (never) to 3650").With("field", "expires_in_days")
	}
	var exp *time.Time
	if req.ExpiresInDays > 0 {
		t := domain.Now().AddDate(0, 0, req.ExpiresInDays)
		exp = &t
	}
	// The token belongs to the person calling (a token minted by an owner-less token has no
	// owner either); its role never exceeds theirs, checked above and again at every use.
	tok, secret, err := h.st.CreateTokenFor(r.Context(), store.NewToken{OrgID: p.OrgID, Name: strings.TrimSpace(req.Name), Role: role,
		ExpiresAt: exp, UserID: p.UserID, Kind: kind})
	if err != nil {
		return err
	}
	return JSON(w, http.StatusCreated, tokenCreated{Token: tok, Secret: secret})
}

func (h *core) revokeToken(w http.ResponseWriter, r *http.Request) error {
	tok, err := h.st.RevokeToken(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, tok)
}

func (h *core) listEmployees(w http.ResponseWriter, r *http.Request) error {
	var qp employeeQuery
	if err := DecodeQuery(r, &qp); err != nil {
		return err
	}
	pg, err := PageFrom(r)
	if err != nil {
		return err
	}
	q := store.EmployeeQuery{EmployeeFilter: store.EmployeeFilter{Status: domain.EmploymentStatus(qp.Status), Department: qp.Department,
		MemberType: domain.MemberType(qp.MemberType), Email: qp.Email}, Q: qp.Q, Sort: qp.Sort, Desc: qp.Order == "desc", Page: pg, Total: qp.Total}
	res, err := h.st.SearchEmployees(r.Context(), PrincipalFrom(r.Context()).OrgID, q)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, NewCountedList(res.Items, res.NextCursor, res.Total))
}

func (h *core) getEmployee(w http.ResponseWriter, r *http.Request) error {
	e, err := h.st.GetEmployee(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, e)
}

func (h *core) patchEmployee(w http.ResponseWriter, r *http.Request) error {
	// Decode to raw fields first, so an HR field gets the "managed by HR" answer rather
	// than a generic unknown-field one.
	var raw map[string]json.RawMessage
	if err := Decode(r, &raw); err != nil {
		return err
	}
	for k := range raw {
		if slices.Contains(domain.HRFieldNames, k) {
			return HRManaged(k)
		}
	}
	b, _ := json.Marshal(raw)
	var req employeePatch
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return decodeProblem(err)
	}
	if p := checkBody(&req); p != nil {
		return p
	}
	e, err := h.st.PatchEmployeeLocal(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"),
		store.EmployeeLocalPatch{EquipmentType: req.EquipmentType, Notes: req.Notes})
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, e)
}

func (h *core) employeeAssignments(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if _, err := h.st.GetEmployee(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		return err
	}
	return h.assignments(w, r, "", r.PathValue("id"))
}

func (h *core) deviceAssignments(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if _, err := h.st.GetDevice(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		return err
	}
	return h.assignments(w, r, r.PathValue("id"), "")
}

func (h *core) assignments(w http.ResponseWriter, r *http.Request, deviceID, employeeID string) error {
	pg, err := PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := h.st.ListAssignments(r.Context(), PrincipalFrom(r.Context()).OrgID, deviceID, employeeID, pg)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, NewList(items, next))
}

func (h *core) listDevices(w http.ResponseWriter, r *http.Request) error {
	var qp deviceQuery
	if err := DecodeQuery(r, &qp); err != nil {
		return err
	}
	pg, err := PageFrom(r)
	if err != nil {
		return err
	}
	q := store.DeviceQuery{DeviceFilter: store.DeviceFilter{State: domain.DeviceState(qp.State), Platform: domain.Platform(qp.Platform),
		EquipmentType: qp.EquipmentType, EmployeeID: qp.EmployeeID, Unassigned: qp.Unassigned},
		Q: qp.Q, OSVersion: qp.OSVersion, Assigned: qp.Assigned, DiskEncrypted: qp.DiskEncrypted, Firewall: qp.Firewall,
		ScreenLock: qp.ScreenLock, OfflineDays: qp.OfflineDays, NeedsReview: qp.NeedsReview, Sort: qp.Sort, Desc: qp.Order == "desc",
		Page: pg, Total: qp.Total}
	if qp.Serial != "" {
		if q.Serial, err = domain.NormalizeSerial(qp.Serial); err != nil {
			return BadRequest(err.Error()).With("parameter", "serial")
		}
	}
	res, err := h.st.SearchDevices(r.Context(), PrincipalFrom(r.Context()).OrgID, q)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, NewCountedList(res.Items, res.NextCursor, res.Total))
}

func (h *core) createDevice(w http.ResponseWriter, r *http.Request) error {
	var req deviceCreate
	if err := Decode(r, &req); err != nil {
		return err
	}
	serial, err := domain.NormalizeSerial(req.SerialNumber)
	if err != nil {
		return Unprocessable(err.Error()).With("field", "serial_number")
	}
	vendor := domain.NormalizeVendor(req.Vendor)
	if vendor == "" || len(vendor) > 64 {
		return Unprocessable("vendor is required (at most 64 characters)").With("field", "vendor")
	}
	if strings.TrimSpace(req.EquipmentType) == "" {
		return Unprocessable("equipment_type is required (e.g. laptop, monitor)").With("field", "equipment_type")
	}
	platform, err := parsePlatform(req.Platform)
	if err != nil {
		return err
	}
	state := domain.DeviceState(req.State)
	switch state {
	case "":
		state = domain.StateInStock
	case domain.StateOrdered, domain.StateInTransit, domain.StateInStock:
	default:
		return Unprocessable("a new device starts as ordered, in_transit or in_stock").With("field", "state")
	}
	d := domain.Device{OrgID: PrincipalFrom(r.Context()).OrgID, SerialNumber: serial, Vendor: vendor, Model: req.Model,
		Platform: platform, EquipmentType: strings.TrimSpace(req.EquipmentType), PurchaseDate: req.PurchaseDate, State: state, Notes: req.Notes}
	if err := h.st.CreateDevice(r.Context(), &d); err != nil {
		return err
	}
	return JSON(w, http.StatusCreated, d)
}

func (h *core) getDevice(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	d, err := h.st.GetDevice(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := DeviceView{Device: d}
	for _, dt := range h.detailers {
		key, details, err := dt.DeviceDetails(r.Context(), p.OrgID, d.ID)
		if err != nil {
			return err
		}
		if details != nil {
			if v.Details == nil {
				v.Details = map[string]any{}
			}
			v.Details[key] = details
		}
	}
	return JSON(w, http.StatusOK, v)
}

func (h *core) patchDevice(w http.ResponseWriter, r *http.Request) error {
	var req devicePatch
	if err := Decode(r, &req); err != nil {
		return err
	}
	patch := store.DevicePatch{Model: req.Model, EquipmentType: req.EquipmentType, PurchaseDate: req.PurchaseDate, Notes: req.Notes}
	if req.Platform != nil {
		p, err := parsePlatform(*req.Platform)
		if err != nil {
			return err
		}
		patch.Platform = &p
	}
	d, err := h.st.PatchDevice(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"), patch)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, d)
}

func (h *core) assignDevice(w http.ResponseWriter, r *http.Request) error {
	var req assignRequest
	if err := Decode(r, &req); err != nil {
		return err
	}
	if req.EmployeeID == "" {
		return Unprocessable("employee_id is required").With("field", "employee_id")
	}
	d, err := h.st.AssignDevice(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"), req.EmployeeID)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, d)
}

func (h *core) unassignDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := h.st.UnassignDevice(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, d)
}

func (h *core) transitionDevice(w http.ResponseWriter, r *http.Request) error {
	var req transitionRequest
	if err := Decode(r, &req); err != nil {
		return err
	}
	to := domain.DeviceState(req.State)
	if !to.Valid() {
		return Unprocessable(fmt.Sprintf("state %q is not one of %v", req.State, domain.AllDeviceStates)).With("field", "state")
	}
	d, err := h.st.TransitionDevice(r.Context(), PrincipalFrom(r.Context()).OrgID, r.PathValue("id"), to)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, d)
}

func (h *core) listAudit(w http.ResponseWriter, r *http.Request) error {
	pg, err := PageFrom(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), TargetType: q.Get("target_type"), TargetID: q.Get("target_id"), Action: q.Get("action")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return BadRequest(name + " must be an RFC 3339 time such as 2026-11-25T10:00:00Z")
			}
			*dst = t
		}
	}
	items, next, err := h.st.ListAudit(r.Context(), PrincipalFrom(r.Context()).OrgID, f, pg)
	if err != nil {
		return err
	}
	return JSON(w, http.StatusOK, NewList(items, next))
}
