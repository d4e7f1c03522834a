package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// action is one console form: the form's pattern, the ONE API route it calls, and how the
// form becomes the API's body. Every state change the console can make is a row of
// actionTable; the generated role test walks it against the API's route table.
type action struct {
	Name string
	// Form is the console's "METHOD /path" pattern; its {names} fill the API path's.
	Form string
	// API is the "METHOD /path" of the API route (exactly as in its route table).
	API string
	// StricterRole: the API handler refuses more than its route's Role says (a wipe or an
	// unlock needs admin on a route open to it). The role test expects this instead.
	StricterRole domain.Role
	// Body builds the API request body from the form (nil: no body).
	Body func(c *Console, r *http.Request, rq *request) (any, error)
	// Sample are form values for a valid-looking submission (for the role test).
	Sample map[string]string
	// Done answers a successful call, given the API's JSON answer.
	Done func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error
	// Call, when set, replaces Body + call + Done for a form that needs more than one
	// JSON body (a query string, a raw CSV, its own answer to a refusal such as the CSV
	// preview's row errors). It must call only a.API; a refusal it returns is rendered.
	Call func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error
}

func actionTable() []action {
	deviceBack := func(verb string) func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
		return func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
			return c.done(w, r, "/devices/"+url.PathEscape(r.PathValue("id")), verb)
		}
	}
	command := func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
		var cmd store.DeviceCommand
		if err := json.Unmarshal(raw, &cmd); err != nil {
			return fmt.Errorf("decode command: %w", err)
		}
		msg := fmt.Sprintf("%s command %s: %s.", humanize(cmd.Type), cmd.ID, humanize(cmd.State))
		if cmd.State == "awaiting_approval" {
			msg = fmt.Sprintf("Wipe %s is awaiting approval: a second admin must approve it on this device's page.", cmd.ID)
		}
		return c.done(w, r, "/devices/"+url.PathEscape(cmd.DeviceID), msg)
	}
	deviceAction := func(typ string) func(c *Console, r *http.Request, rq *request) (any, error) {
		return func(c *Console, r *http.Request, rq *request) (any, error) {
			req := map[string]any{"type": typ}
			switch typ {
			case store.CommandLock:
				if m := strings.TrimSpace(r.PostFormValue("message")); m != "" {
					req["params"] = map[string]string{"message": m}
				}
			case store.CommandWipe:
				req["confirm"] = strings.TrimSpace(r.PostFormValue("confirm"))
			}
			// One submission, one command: a double click or a resent form is the same request.
			if k := r.PostFormValue("idempotency_key"); k != "" {
				req["idempotency_key"] = k
			}
			return req, nil
		}
	}
	return []action{
		{Name: "lock", Form: "POST /devices/{id}/lock", API: "POST /api/v1/devices/{id}/actions",
			Body: deviceAction(store.CommandLock), Sample: map[string]string{"message": "Return this laptop to IT"}, Done: command},
		{Name: "unlock", Form: "POST /devices/{id}/unlock", API: "POST /api/v1/devices/{id}/actions", StricterRole: domain.RoleAdmin,
			Body: deviceAction(store.CommandUnlock), Done: command},
		{Name: "wipe", Form: "POST /devices/{id}/wipe", API: "POST /api/v1/devices/{id}/actions", StricterRole: domain.RoleAdmin,
			Body: deviceAction(store.CommandWipe), Sample: map[string]string{"confirm": "SERIAL"}, Done: command},
		{Name: "approve", Form: "POST /device-actions/{id}/approve", API: "POST /api/v1/device-actions/{id}/approve", Done: command},
		{Name: "cancel command", Form: "POST /device-actions/{id}/cancel", API: "POST /api/v1/device-actions/{id}/cancel", Done: command},
		{Name: "assign", Form: "POST /devices/{id}/assign", API: "POST /api/v1/devices/{id}/assign",
			Body: assignBody, Sample: map[string]string{"employee": "emp"}, Done: deviceBack("Device assigned.")},
		{Name: "unassign", Form: "POST /devices/{id}/unassign", API: "POST /api/v1/devices/{id}/unassign", Done: deviceBack("Device unassigned.")},
		{Name: "transition", Form: "POST /devices/{id}/transition", API: "POST /api/v1/devices/{id}/transition",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return map[string]string{"state": r.PostFormValue("state")}, nil
			}, Sample: map[string]string{"state": string(domain.StateInStock)}, Done: deviceBack("Device state changed.")},
		{Name: "mark reviewed", Form: "POST /devices/{id}/review", API: "POST /api/v1/devices/{id}/review",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return map[string]string{"note": strings.TrimSpace(r.PostFormValue("note"))}, nil
			}, Sample: map[string]string{"note": "label matches"}, Done: deviceBack("Device marked as reviewed.")},
		{Name: "reveal recovery keys", Form: "POST /devices/{id}/recovery-keys", API: "GET /api/v1/devices/{id}/recovery-keys",
			Done: revealRecoveryKeys},
		{Name: "reveal lock PIN", Form: "POST /mdm-commands/{id}/pin", API: "GET /api/v1/mdm/commands/{id}/pin", Done: revealPIN},
		{Name: "schedule offboarding", Form: "POST /people/{id}/offboard", API: "POST /api/v1/employees/{id}/offboard",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				// The dry-run page is the confirmation a person sees; the API's confirm
				// (the employee id) says this form came from it.
				return map[string]any{"confirm": r.PostFormValue("confirm")}, nil
			}, Sample: map[string]string{"confirm": "emp"}, Done: offboardScheduled},
	}
}

// done sends the browser back to a page with a message (POST → redirect → GET).
func (c *Console) done(w http.ResponseWriter, r *http.Request, to, msg string) error {
	setFlash(w, c.opts.Secure, "ok", msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)\}`)

// fillPath puts the form's path values into the API path.
func fillPath(pattern string, r *http.Request) string {
	return pathParam.ReplaceAllStringFunc(pattern, func(m string) string {
		return url.PathEscape(r.PathValue(m[1 : len(m)-1]))
	})
}

func (c *Console) actionHandler(a action) http.Handler {
	method, apiPath, _ := strings.Cut(a.API, " ")
	return c.pageHandler(page{Pattern: a.Form, Handler: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
		if a.Call != nil {
			return a.Call(c, w, r, rq)
		}
		var body any
		if a.Body != nil {
			var err error
			if body, err = a.Body(c, r, rq); err != nil {
				return err
			}
		}
		var raw json.RawMessage
		if err := c.call(r, rq, method, fillPath(apiPath, r), body, &raw); err != nil {
			if isReauth(err) {
				http.Redirect(w, r, "/reauth?next="+url.QueryEscape(backTo(r)), http.StatusSeeOther)
				return nil
			}
			return err
		}
		return a.Done(c, w, r, rq, raw)
	}})
}

// call runs one API route as the signed-in person.
func (c *Console) call(r *http.Request, rq *request, method, target string, body, out any) error {
	return c.opts.API.Call(r.Context(), rq.P, method, target, body, out)
}

// isReauth reports the API's "sign in again to reveal this" answer.
func isReauth(err error) bool {
	ce, ok := api.AsCallError(err)
	return ok && ce.Status == http.StatusUnauthorized && strings.HasSuffix(ce.Type, "reauth-required")
}

// notFoundCall reports an API 404 (a page then shows its own "not found").
func notFoundCall(err error) bool {
	ce, ok := api.AsCallError(err)
	return ok && ce.Status == http.StatusNotFound
}

// assignBody takes the person as an id or a work email (resolved through the API).
func assignBody(c *Console, r *http.Request, rq *request) (any, error) {
	who := strings.TrimSpace(r.PostFormValue("employee"))
	if who == "" {
		return nil, badRequest("Type the work email of the person to assign the device to.")
	}
	if strings.Contains(who, "@") {
		var list api.List[domain.Employee]
		if err := c.call(r, rq, "GET", "/api/v1/employees?limit=2&email="+url.QueryEscape(who), nil, &list); err != nil {
			return nil, err
		}
		if len(list.Items) != 1 {
			return nil, &httpError{status: http.StatusUnprocessableEntity, msg: "No one has the work email " + who + "."}
		}
		who = list.Items[0].ID
	}
	return map[string]string{"employee_id": who}, nil
}
