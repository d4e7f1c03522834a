package justworks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// wireMember follows the Member schema of the members OpenAPI file. Nested
// objects whose fields the spec leaves open are decoded as maps and read
// defensively (API.md §5).
type wireMember struct {
	ID        string `json:"id"`
	CompanyID string `json:"company_id"`
	WorkID    string `json:"work_id"`
	Name      *struct {
		GivenName         string `json:"given_name"`
		FamilyName        string `json:"family_name"`
		PreferredName     string `json:"preferred_name"`
		FullPreferredName string `json:"full_preferred_name"`
	} `json:"name"`
	Active                    *bool                      `json:"active"`
	EmploymentLocationType    string                     `json:"employment_location_type"`
	Type                      string                     `json:"type"`
	Addresses                 []hris.Address             `json:"addresses"`
	Emails                    []map[string]any           `json:"emails"`
	Phones                    []map[string]any           `json:"phones"`
	CurrentEmployment         map[string]json.RawMessage `json:"current_employment"`
	Department                map[string]any             `json:"department"`
	Manager                   map[string]any             `json:"manager"`
	EmploymentStartDate       *string                    `json:"employment_start_date"`
	EmploymentTerminationDate *string                    `json:"employment_termination_date"`
	JobTitle                  string                     `json:"job_title"`
	CreatedAt                 string                     `json:"created_at"`
	UpdatedAt                 string                     `json:"updated_at"`
}

// ParseMember decodes one member object into the normalized form. It fails on
// records that miss required fields (id, active) or carry values of the wrong
// type or format; the caller skips and reports those.
func ParseMember(raw []byte) (*hris.Member, error) {
	m, _, err := parseMember(raw)
	return m, err
}

// parseMember is ParseMember that also returns the type values it did not
// recognise.
func parseMember(raw []byte) (*hris.Member, []string, error) {
	var w wireMember
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, nil, fmt.Errorf("malformed member: %w", err)
	}
	if strings.TrimSpace(w.ID) == "" {
		return nil, nil, errors.New("malformed member: missing id")
	}
	if w.Active == nil {
		return nil, nil, errors.New("malformed member: missing active")
	}
	m := &hris.Member{
		ExternalID:   w.ID,
		CompanyID:    w.CompanyID,
		WorkID:       w.WorkID,
		Active:       *w.Active,
		Title:        strings.TrimSpace(w.JobTitle),
		ProviderType: w.Type,
	}
	if w.Name != nil {
		m.FirstName = strings.TrimSpace(w.Name.GivenName)
		m.LastName = strings.TrimSpace(w.Name.FamilyName)
		m.PreferredName = strings.TrimSpace(w.Name.PreferredName)
	}
	for _, e := range w.Emails {
		addr := strings.TrimSpace(str(e, "address", "email", "value"))
		if addr == "" {
			continue
		}
		switch strings.ToLower(str(e, "type", "kind", "label")) {
		case "work", "business":
			if m.WorkEmail == "" {
				m.WorkEmail = addr
			}
		case "personal", "home", "other":
			if m.PersonalEmail == "" {
				m.PersonalEmail = addr
			}
		}
	}
	m.Phone = pickPhone(w.Phones)
	if len(w.Addresses) > 0 {
		m.Address = w.Addresses[0]
		m.Address.Country = strings.ToUpper(m.Address.Country)
	}
	if w.Department != nil {
		m.DepartmentID = str(w.Department, "id", "department_id")
		m.DepartmentName = str(w.Department, "name", "display_name")
	}
	if w.Manager != nil {
		m.ManagerID = str(w.Manager, "id", "member_id")
	}
	var err error
	if m.StartDate, err = civilDate(w.EmploymentStartDate); err != nil {
		return nil, nil, fmt.Errorf("malformed member %s: employment_start_date: %w", w.ID, err)
	}
	if m.TerminationDate, err = civilDate(w.EmploymentTerminationDate); err != nil {
		return nil, nil, fmt.Errorf("malformed member %s: employment_termination_date: %w", w.ID, err)
	}
	if m.CreatedAt, err = timestamp(w.CreatedAt); err != nil {
		return nil, nil, fmt.Errorf("malformed member %s: created_at: %w", w.ID, err)
	}
	if m.UpdatedAt, err = timestamp(w.UpdatedAt); err != nil {
		return nil, nil, fmt.Errorf("malformed member %s: updated_at: %w", w.ID, err)
	}
	var unknown []string
	m.MemberType, unknown = memberType(w.Type, w.CurrentEmployment)
	m.International = international(&w, m.Address.Country)
	return m, unknown, nil
}

// memberKind is what a member `type` value tells us.
type memberKind struct {
	kind string // hris.Type*; "" for an employee whose full/part time sits in the employment data
	intl bool   // the value itself says international
}

// memberTypes holds every member `type` value the Justworks reference names:
// the DOC values international_employee and employee_eor, the guessed
// employee, contractor, international_contractor and vendor (API.md §5), and
// the help centre's member types in snake case (Full Time, Part Time, Paid
// Intern, EOR employee, Outside-US employee, US contractor, vendor,
// third-party admin), plus "intern", which the fake serves. Matching is exact
// after normalising case and separators: a substring test once read
// "international_employee" as "intern".
var memberTypes = map[string]memberKind{
	"employee":                 {},
	"full_time":                {kind: hris.TypeFullTime},
	"part_time":                {kind: hris.TypePartTime},
	"international_employee":   {intl: true},
	"outside_us_employee":      {intl: true},
	"employee_eor":             {intl: true},
	"eor_employee":             {intl: true},
	"contractor":               {kind: hris.TypeContractor},
	"us_contractor":            {kind: hris.TypeContractor},
	"international_contractor": {kind: hris.TypeContractor, intl: true},
	"vendor":                   {kind: hris.TypeContractor},
	"intern":                   {kind: hris.TypeIntern},
	"paid_intern":              {kind: hris.TypeIntern},
	"third_party_admin":        {kind: hris.TypeOther},
}

// employmentTypes are the values of the employment type inside the
// country-keyed employment data [GUESS: {"US": {"employment_type":
// "part_time"}}, API.md §5], matched exactly like memberTypes.
var employmentTypes = map[string]string{
	"full_time":   hris.TypeFullTime,
	"part_time":   hris.TypePartTime,
	"contractor":  hris.TypeContractor,
	"intern":      hris.TypeIntern,
	"paid_intern": hris.TypeIntern,
}

// employmentKeys are the keys of an employment entry that may carry its type.
var employmentKeys = []string{"employment_type", "type", "employment_status", "hours_type"}

// unknownMemberType is where a `type` nobody documented lands: "other", which
// Lanyard treats like a contractor (no employee-only access is assumed).
const unknownMemberType = hris.TypeOther

func normType(s string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
}

// memberType maps the member's type and employment data; unknown lists the
// values it did not recognise (for the caller to log once).
func memberType(t string, emp map[string]json.RawMessage) (kind string, unknown []string) {
	mk, ok := memberTypes[normType(t)]
	switch {
	case t == "":
		// No type at all: an employee, as the spec's own example reads.
	case !ok:
		return unknownMemberType, []string{"type=" + t}
	case mk.kind != "":
		return mk.kind, nil
	}
	// Employees: full/part time sits in the country-keyed employment data.
	for _, country := range slices.Sorted(maps.Keys(emp)) {
		var v map[string]any
		if json.Unmarshal(emp[country], &v) != nil {
			continue
		}
		for _, k := range employmentKeys {
			s := str(v, k)
			if s == "" {
				continue
			}
			if et, ok := employmentTypes[normType(s)]; ok {
				if et != hris.TypeFullTime {
					return et, unknown
				}
				continue
			}
			if k == "employment_type" {
				unknown = append(unknown, "employment_type="+s)
			}
		}
	}
	return hris.TypeFullTime, unknown
}

func international(w *wireMember, country string) bool {
	if memberTypes[normType(w.Type)].intl {
		return true
	}
	if strings.EqualFold(w.EmploymentLocationType, "international") {
		return true
	}
	if len(w.CurrentEmployment) > 0 {
		_, us := w.CurrentEmployment["US"]
		return !us
	}
	return country != "" && country != "US"
}

func pickPhone(phones []map[string]any) string {
	first := ""
	for _, p := range phones {
		n := strings.TrimSpace(str(p, "number", "phone", "value", "e164"))
		if n == "" {
			continue
		}
		if t := strings.ToLower(str(p, "type", "kind")); t == "mobile" || t == "cell" {
			return n
		}
		if first == "" {
			first = n
		}
	}
	return first
}

func civilDate(p *string) (string, error) {
	if p == nil || *p == "" {
		return "", nil
	}
	t, err := time.Parse(time.DateOnly, *p)
	if err != nil {
		// Tolerate a full timestamp; keep its date.
		t2, err2 := time.Parse(time.RFC3339, *p)
		if err2 != nil {
			return "", fmt.Errorf("invalid date %q", *p)
		}
		t = t2
	}
	return t.Format(time.DateOnly), nil
}

func timestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid timestamp %q", s)
	}
	return t.UTC(), nil
}

// str returns the first non-empty string value among keys (numbers are
// formatted; other types ignored).
func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return fmt.Sprintf("%.0f", v)
		}
	}
	return ""
}
