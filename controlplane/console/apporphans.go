package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// App orphans (GET /api/v1/apps/orphans): the app accounts reconciliation could not match
// to an active person, per app, and a "Reconcile now" form that runs the API's reconcile
// route (the same engine pass as the periodic job) and shows its report. Both routes are
// admin-only; the console adds no rule of its own, so a lower role gets the API's refusal.

func appOrphanPages() []page {
	return []page{{Pattern: "GET /apps/orphans", Handler: appOrphansPage}}
}

func appOrphanActions() []action {
	return []action{
		{Name: "reconcile apps", Form: "POST /apps/orphans/reconcile", API: "POST /api/v1/apps/reconcile", Done: reconcileDone},
	}
}

type appOrphansView struct {
	All    bool
	Groups []orphanGroup
	Report *reportView // set after "Reconcile now"
}

// orphanGroup is one app's orphans.
type orphanGroup struct {
	App     string
	Orphans []orphanRow
}

type orphanRow struct {
	store.AppOrphan
	Why    string // the reason in plain words
	Person string // the linked person's name ("" when the account matched nobody)
}

// reportView is a reconcile pass's report with its per-app counts in a stable order.
type reportView struct {
	Apps    []appCount
	Orphans int
	New     int
	Errors  []string
}

type appCount struct {
	App      string
	Accounts int
}

func appOrphansPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v, err := c.loadAppOrphans(r, rq, r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "apporphans", "", "App orphans", "apps", v)
}

// reconcileDone shows the pass's report above the list it refreshed (no redirect: the
// report exists only in this answer).
func reconcileDone(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var rep lifecycle.ReconcileReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("decode reconcile report: %w", err)
	}
	v, err := c.loadAppOrphans(r, rq, form(r, "all") == "true")
	if err != nil {
		return err
	}
	v.Report = newReportView(rep)
	return c.render(w, rq, http.StatusOK, "apporphans", "", "App orphans", "apps", v)
}

func newReportView(rep lifecycle.ReconcileReport) *reportView {
	out := &reportView{Orphans: rep.Orphans, New: rep.New, Errors: rep.Errors}
	for app, n := range rep.Apps {
		out.Apps = append(out.Apps, appCount{App: app, Accounts: n})
	}
	sort.Slice(out.Apps, func(i, j int) bool { return out.Apps[i].App < out.Apps[j].App })
	return out
}

func (c *Console) loadAppOrphans(r *http.Request, rq *request, all bool) (appOrphansView, error) {
	v := appOrphansView{All: all}
	target := "/api/v1/apps/orphans"
	if all {
		target += "?all=true"
	}
	var list api.List[store.AppOrphan]
	if err := c.call(r, rq, "GET", target, nil, &list); err != nil {
		return v, err
	}
	names, err := c.employeeNames(r, rq, list.Items)
	if err != nil {
		return v, err
	}
	v.Groups = groupOrphans(list.Items, names)
	return v, nil
}

// groupOrphans splits the list (ordered by app) into one group per app.
func groupOrphans(items []store.AppOrphan, names map[string]string) []orphanGroup {
	var out []orphanGroup
	for _, o := range items {
		if len(out) == 0 || out[len(out)-1].App != o.App {
			out = append(out, orphanGroup{App: o.App})
		}
		g := &out[len(out)-1]
		g.Orphans = append(g.Orphans, orphanRow{AppOrphan: o, Why: orphanReason(o), Person: names[o.EmployeeID]})
	}
	return out
}

// employeeNames names the people the orphans link to, one read per person; a person
// no longer in Lanyard keeps the link with a generic label.
func (c *Console) employeeNames(r *http.Request, rq *request, items []store.AppOrphan) (map[string]string, error) {
	names := map[string]string{}
	for _, o := range items {
		if o.EmployeeID == "" {
			continue
		}
		if _, done := names[o.EmployeeID]; done {
			continue
		}
		var emp domain.Employee
		err := c.call(r, rq, "GET", "/api/v1/employees/"+url.PathEscape(o.EmployeeID), nil, &emp)
		switch {
		case err == nil:
			names[o.EmployeeID] = strings.TrimSpace(emp.HR.FirstName + " " + emp.HR.LastName)
		case notFoundCall(err):
			names[o.EmployeeID] = "Person"
		default:
			return nil, err
		}
	}
	return names, nil
}

// orphanReason says why reconciliation reported an account, in the words an admin
// acts on.
func orphanReason(o store.AppOrphan) string {
	switch {
	case o.Reason == "no_person":
		return "account of nobody in Lanyard"
	case o.Reason == "terminated" && o.Action == "resuspended":
		return "active account of a terminated person — suspended again"
	case o.Reason == "terminated" && o.Action == "resuspend_failed":
		return "active account of a terminated person — suspending it again failed"
	case o.Reason == "terminated":
		return "active account of a terminated person"
	}
	return humanize(o.Reason)
}
