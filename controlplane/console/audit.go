package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The audit log with the API's filters (GET /api/v1/audit): actor, action, target and a
// date range. Dates are the org's local days, sent to the API as RFC 3339 times.

func auditPages() []page {
	return []page{{Pattern: "GET /audit", Handler: auditPage}}
}

type auditView struct {
	Entries api.List[domain.AuditEntry]
	Filter  url.Values
	Next    string
	Zone    string
}

func auditPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	in := r.URL.Query()
	v := auditView{Filter: in, Zone: rq.P.Org.Location().String()}
	q := listQuery(r, 100, "actor", "action", "target_type", "target_id")
	loc := rq.P.Org.Location()
	for _, d := range []struct {
		field, param string
		days         int
	}{{"from", "since", 0}, {"to", "until", 1}} {
		s := strings.TrimSpace(in.Get(d.field))
		if s == "" {
			continue
		}
		day, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil {
			return badRequest("Dates are YYYY-MM-DD, e.g. 2026-12-01.")
		}
		q.Set(d.param, day.AddDate(0, 0, d.days).Format(time.RFC3339))
	}
	if err := c.call(r, rq, "GET", "/api/v1/audit?"+q.Encode(), nil, &v.Entries); err != nil {
		return err
	}
	v.Next = nextPage(r, v.Entries.NextCursor)
	c.namePeople(r, rq)
	return c.render(w, rq, http.StatusOK, "audit", "", "Audit log", "audit", v)
}

// namePeople loads the names of the org's users (removed ones too, since old entries name
// them) so the page's `who` calls say who did something instead of "user:<id>". Best
// effort and only for roles that may list users: without names a page still shows the ids.
func (c *Console) namePeople(r *http.Request, rq *request) {
	if rq.people != nil || !rq.P.Role.AtLeast(domain.RoleAdmin) {
		return
	}
	var users api.List[store.User]
	if err := c.call(r, rq, "GET", "/api/v1/users?include_removed=true&limit="+strconv.Itoa(store.MaxLimit), nil, &users); err != nil {
		return
	}
	rq.people = make(map[string]string, len(users.Items))
	for _, u := range users.Items {
		rq.people["user:"+u.ID] = u.Name + " <" + u.Email + ">"
	}
}

// who is the `who` template function: the person's name for a user actor, else the id.
func who(people map[string]string, actor string) string {
	if n, ok := people[actor]; ok {
		return n
	}
	return actor
}
