package fakejustworks

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

var defaultDepartments = []Department{
	{ID: "dep_eng", Name: "Engineering"},
	{ID: "dep_sales", Name: "Sales"},
	{ID: "dep_ops", Name: "Operations"},
	{ID: "dep_fin", Name: "Finance"},
	{ID: "dep_ppl", Name: "People"},
	{ID: "dep_mkt", Name: "Marketing"},
	{ID: "dep_sup", Name: "Support"},
}

var (
	givenNames = []string{"Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances",
		"Edsger", "Radia", "Donald", "Hedy", "John", "Sophie", "Tim", "Jean", "Guido", "Karen", "Niklaus", "Annie",
		"Bjarne", "Mary", "James", "Shafi", "Leslie", "Evelyn", "Robert", "Joan", "Vint", "Lynn", "Brian", "Carol",
		"Yukihiro", "Adele", "Rob", "Elizabeth", "Ivan", "Kathleen", "Sanjay", "Priya", "Wei", "Amara", "Mateo", "Ingrid"}
	familyNames = []string{"Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
		"Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr", "Backus", "Wilson", "Berners-Lee", "Bartik", "van Rossum",
		"Sparck Jones", "Wirth", "Easley", "Stroustrup", "Keller", "Gosling", "Goldwasser", "Lamport", "Berezin", "Kahn",
		"Clarke", "Cerf", "Conway", "Kernighan", "Shaw", "Matsumoto", "Goldberg", "Pike", "Feinler", "Sutherland", "Booth",
		"Ghemawat", "Patel", "Zhang", "Okafor", "Garcia", "Larsen"}
	titles = map[string][]string{
		"dep_eng":   {"Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager", "SRE"},
		"dep_sales": {"Account Executive", "Sales Development Rep", "Sales Manager"},
		"dep_ops":   {"Operations Associate", "IT Administrator", "Office Manager"},
		"dep_fin":   {"Accountant", "Controller", "Financial Analyst"},
		"dep_ppl":   {"HR Generalist", "Recruiter", "People Partner"},
		"dep_mkt":   {"Marketing Manager", "Content Writer", "Designer"},
		"dep_sup":   {"Support Specialist", "Support Lead"},
	}
	usCities = []Address{
		{City: "New York", State: "NY", PostalCode: "10001"}, {City: "Brooklyn", State: "NY", PostalCode: "11201"},
		{City: "San Francisco", State: "CA", PostalCode: "94105"}, {City: "Austin", State: "TX", PostalCode: "78701"},
		{City: "Chicago", State: "IL", PostalCode: "60601"}, {City: "Denver", State: "CO", PostalCode: "80202"},
		{City: "Seattle", State: "WA", PostalCode: "98101"}, {City: "Boston", State: "MA", PostalCode: "02108"},
	}
	intlCities = []Address{
		{City: "London", PostalCode: "EC1A 1BB", Country: "GB"}, {City: "Berlin", PostalCode: "10115", Country: "DE"},
		{City: "Toronto", State: "ON", PostalCode: "M5H 2N2", Country: "CA"}, {City: "Lisbon", PostalCode: "1100-148", Country: "PT"},
	}
	intlDial = map[string]string{"GB": "+4420", "DE": "+4930", "CA": "+1416", "PT": "+35121"}
)

// GenOptions tunes Generate. Zero values give a realistic mix.
type GenOptions struct {
	CompanyID string    // default "co_fake"
	Domain    string    // work email domain; default "acme.example.com"
	Now       time.Time // reference time; default 2026-11-01T00:00:00Z (fixed, for determinism)
	// AllActiveUS makes every member an active US full-time employee with a
	// past start date (simple fixtures, benchmarks).
	AllActiveUS bool
}

// MemberID is the deterministic id of the i-th generated member.
func MemberID(i int) string { return fmt.Sprintf("mem_%08d", i) }

// Generate returns n deterministic members for seed: ~80% US full-time, part
// time, contractors, interns, international and EOR employees, a few
// terminated, a few with a future start or a scheduled termination.
func Generate(n int, seed uint64, o GenOptions) []Member {
	if o.CompanyID == "" {
		o.CompanyID = "co_fake"
	}
	if o.Domain == "" {
		o.Domain = "acme.example.com"
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]Member, 0, n)
	for i := 1; i <= n; i++ {
		given := givenNames[r.IntN(len(givenNames))]
		family := familyNames[r.IntN(len(familyNames))]
		dep := defaultDepartments[r.IntN(len(defaultDepartments))]
		m := Member{
			ID:                MemberID(i),
			CompanyID:         o.CompanyID,
			WorkID:            fmt.Sprintf("W%05d", i),
			Name:              &Name{GivenName: given, FamilyName: family},
			Active:            true,
			Type:              "employee",
			JobTitle:          titles[dep.ID][r.IntN(len(titles[dep.ID]))],
			Department:        &Ref{ID: dep.ID, Name: dep.Name},
			CurrentEmployment: map[string]Employment{"US": {EmploymentType: "full_time"}},
		}
		local := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(given+"."+family, " ", ""), "'", ""))
		m.Emails = []Email{{Type: "WORK", Address: fmt.Sprintf("%s%d@%s", local, i, o.Domain)},
			{Type: "PERSONAL", Address: fmt.Sprintf("%s%d@example.org", local, i)}}
		city := usCities[r.IntN(len(usCities))]
		city.Line1 = fmt.Sprintf("%d %s St", 1+r.IntN(999), family)
		city.Country = "US"
		m.Addresses = []Address{city}
		m.Phones = []Phone{{Type: "MOBILE", Number: fmt.Sprintf("+1212555%04d", i%10000)}}
		start := o.Now.AddDate(0, 0, -30-r.IntN(2000))
		m.EmploymentStartDate = start.Format(time.DateOnly)
		if i > 1 {
			m.Manager = &Ref{ID: MemberID(1 + r.IntN(min(i-1, 20)))}
		}
		if !o.AllActiveUS {
			switch p := r.IntN(100); {
			case p < 8:
				m.CurrentEmployment["US"] = Employment{EmploymentType: "part_time"}
			case p < 14:
				m.Type = "contractor"
				m.CurrentEmployment = nil
			case p < 15:
				m.Type = "intern"
			case p < 19:
				c := intlCities[r.IntN(len(intlCities))]
				c.Line1 = fmt.Sprintf("%d High Street", 1+r.IntN(200))
				m.Addresses = []Address{c}
				m.Phones = []Phone{{Type: "MOBILE", Number: fmt.Sprintf("%s%07d", intlDial[c.Country], i)}}
				m.CurrentEmployment = map[string]Employment{c.Country: {EmploymentType: "full_time"}}
				if p < 17 {
					m.Type = "international_employee"
				} else {
					m.Type = "employee_eor"
				}
			}
			switch p := r.IntN(100); {
			case p < 3:
				m.Active = false
				m.EmploymentTerminationDate = o.Now.AddDate(0, 0, -1-r.IntN(200)).Format(time.DateOnly)
			case p < 4:
				m.EmploymentTerminationDate = o.Now.AddDate(0, 0, 10+r.IntN(30)).Format(time.DateOnly)
			case p < 6:
				m.EmploymentStartDate = o.Now.AddDate(0, 0, 5+r.IntN(40)).Format(time.DateOnly)
			}
		}
		m.CreatedAt = start.Add(-14 * 24 * time.Hour)
		m.UpdatedAt = o.Now.Add(-time.Duration(n-i+1) * time.Minute)
		out = append(out, m)
	}
	return out
}
