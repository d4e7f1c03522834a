package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// The operations half of the console: workflows and tasks, Justworks, enrollment,
// warehouse / retrievals / orders, audit, settings, users and tokens, CSV import and
// export. Each page family lives in its own file with its pages and actions; these two
// functions are the tables New appends to the console's own.

func opsPages() []page {
	var out []page
	for _, f := range []func() []page{workflowPages, justworksPages, enrollmentPages, warehousePages, auditPages,
		settingsPages, tokenPages, userPages, csvPages, notificationPages, appOrphanPages} {
		out = append(out, f()...)
	}
	return out
}

func opsActions(routes map[string]api.Route) []action {
	var out []action
	// The users routes belong to the auth service; an API built without it has none,
	// and then the console offers no user forms (the users page says so).
	if _, ok := routes["POST /api/v1/users"]; ok {
		out = append(out, userActions()...)
	}
	// settingsActions last: the role test's sample for "choose plan" changes the plan.
	for _, f := range []func() []action{workflowActions, justworksActions, enrollmentActions, warehouseActions,
		tokenActions, csvActions, notificationActions, appOrphanActions, settingsActions} {
		out = append(out, f()...)
	}
	return out
}

// form returns a trimmed form value.
func form(r *http.Request, name string) string { return strings.TrimSpace(r.PostFormValue(name)) }

// formInt returns a form value as a number (0 when empty).
func formInt(r *http.Request, name string) (int, error) {
	v := form(r, name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(name + " must be a whole number")
	}
	return n, nil
}

// back answers an action with a redirect to to (built from the request) and a message.
func back(to func(r *http.Request, raw json.RawMessage) string, msg string) func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	return func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
		return c.done(w, r, to(r, raw), msg)
	}
}

// fixed is a redirect target that does not depend on the request.
func fixed(path string) func(r *http.Request, raw json.RawMessage) string {
	return func(*http.Request, json.RawMessage) string { return path }
}

// refused reports an API refusal (403) so a page can show "needs the admin role" for one
// section instead of failing whole.
func refused(err error) (string, bool) {
	ce, ok := api.AsCallError(err)
	if !ok || (ce.Status != http.StatusForbidden && ce.Status != http.StatusPaymentRequired) {
		return "", false
	}
	if ce.Detail != "" {
		return ce.Detail, true
	}
	return ce.Title, true
}

// section is one part of a page that may be refused to the caller's role or plan.
type part[T any] struct {
	Data    T
	Refused string
}

// load fills a section, turning a role or plan refusal into its message.
func load[T any](c *Console, r *http.Request, rq *request, target string) (part[T], error) {
	var s part[T]
	err := c.call(r, rq, "GET", target, nil, &s.Data)
	if msg, ok := refused(err); ok {
		s.Refused = msg
		return s, nil
	}
	return s, err
}

// resolveEmployee turns a work email (or an id) typed in a form into an employee id.
func (c *Console) resolveEmployee(r *http.Request, rq *request, who string) (string, error) {
	if !strings.Contains(who, "@") {
		return who, nil
	}
	var list api.List[domain.Employee]
	if err := c.call(r, rq, "GET", "/api/v1/employees?limit=2&email="+url.QueryEscape(who), nil, &list); err != nil {
		return "", err
	}
	if len(list.Items) != 1 {
		return "", &httpError{status: http.StatusUnprocessableEntity, msg: "No one has the work email " + who + "."}
	}
	return list.Items[0].ID, nil
}

// listQuery copies the allowed filter parameters of a page's URL into an API query.
func listQuery(r *http.Request, limit int, keys ...string) url.Values {
	q := url.Values{}
	in := r.URL.Query()
	for _, k := range keys {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	if cur := in.Get("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	q.Set("limit", strconv.Itoa(limit))
	return q
}

// nextPage is the link to the next page of a list, or "" at the end.
func nextPage(r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("cursor", cursor)
	return r.URL.Path + "?" + q.Encode()
}
