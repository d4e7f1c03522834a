package justworks

import (
	"encoding/json"
	"errors"
	"fmt"
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

// International member types (API.md §5, §10.3); "international_contractor" is our guess.
var internationalTypes = []string{"international_employee", "employee_eor", "international_contractor"}

// ParseMember decodes one member object into the normalized form. It fails on
// records that miss required fields (id, active) or carry values of the wrong
// type or format; the caller skips and reports those.
func ParseMember(raw []byte) (*hris.Member, error) {
	var w wireMember
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("malformed member: %w", err)
	}
	if strings.TrimSpace(w.ID) == "" {
		return nil, errors.New("malformed member: missing id")
	}
	if w.Active == nil {
		return nil, errors.New("malformed member: missing active")
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
		return nil, fmt.Errorf("malformed member %s: employment_start_date: %w", w.ID, err)
	}
	if m.TerminationDate, err = civilDate(w.EmploymentTerminationDate); err != nil {
		return nil, fmt.Errorf("malformed member %s: employment_termination_date: %w", w.ID, err)
	}
	if m.CreatedAt, err = timestamp(w.CreatedAt); err != nil {
		return nil, fmt.Errorf("malformed member %s: created_at: %w", w.ID, err)
	}
	if m.UpdatedAt, err = timestamp(w.UpdatedAt); err != nil {
		return nil, fmt.Errorf("malformed member %s: updated_at: %w", w.ID, err)
	}
	m.MemberType = memberType(w.Type, w.CurrentEmployment)
	m.International = international(&w, m.Address.Country)
	return m, nil
}

func memberType(t string, emp map[string]json.RawMessage) string {
	lt := strings.ToLower(t)
	switch {
	case strings.Contains(lt, "contractor"), strings.Contains(lt, "vendor"):
		return hris.TypeContractor
	case strings.Contains(lt, "intern"):
		return hris.TypeIntern
	case strings.Contains(lt, "part"):
		return hris.TypePartTime
	case lt != "" && !strings.Contains(lt, "employee") && !strings.Contains(lt, "full"):
		return hris.TypeOther
	}
	// Employees: full/part time sits in the country-keyed employment data
	// [GUESS: {"US": {"employment_type": "part_time"}}]; read any value that
	// mentions part time.
	for _, raw := range emp {
		var v map[string]any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		for _, k := range []string{"employment_type", "type", "employment_status", "hours_type"} {
			s := strings.ToLower(str(v, k))
			if strings.Contains(s, "part") {
				return hris.TypePartTime
			}
			if strings.Contains(s, "contract") {
				return hris.TypeContractor
			}
			if strings.Contains(s, "intern") {
				return hris.TypeIntern
			}
		}
	}
	return hris.TypeFullTime
}

func international(w *wireMember, country string) bool {
	if slices.Contains(internationalTypes, strings.ToLower(w.Type)) {
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
