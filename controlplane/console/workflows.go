package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Workflows and tasks: the onboarding / offboarding queue, one workflow's steps, and the
// manual tasks people complete or skip with a note.

func workflowPages() []page {
	return []page{
		{Pattern: "GET /workflows", Handler: workflowsPage},
		{Pattern: "GET /workflows/{id}", Handler: workflowPage},
	}
}

func workflowActions() []action {
	toWorkflow := func(r *http.Request, _ json.RawMessage) string {
		return "/workflows/" + url.PathEscape(r.PathValue("id"))
	}
	reason := func(c *Console, r *http.Request, rq *request) (any, error) {
		return map[string]string{"reason": form(r, "reason")}, nil
	}
	return []action{
		{Name: "pause workflow", Form: "POST /workflows/{id}/pause", API: "POST /api/v1/workflows/{id}/pause",
			Body: reason, Sample: map[string]string{"reason": "waiting for the laptop"}, Done: back(toWorkflow, "Workflow paused.")},
		{Name: "resume workflow", Form: "POST /workflows/{id}/resume", API: "POST /api/v1/workflows/{id}/resume",
			Done: back(toWorkflow, "Workflow resumed.")},
		{Name: "cancel workflow", Form: "POST /workflows/{id}/cancel", API: "POST /api/v1/workflows/{id}/cancel",
			Body: reason, Sample: map[string]string{"reason": "rehired"}, Done: workflowCancelled},
		{Name: "unlock workflow devices", Form: "POST /workflows/{id}/unlock", API: "POST /api/v1/workflows/{id}/unlock",
			Done: back(toWorkflow, "Unlock sent to the devices this offboarding locked; Macs show their PIN on the device page.")},
		{Name: "retry step", Form: "POST /workflows/{id}/steps/{step}/retry", API: "POST /api/v1/workflows/{id}/steps/{step}/retry",
			Done: back(toWorkflow, "Step queued to run again.")},
		{Name: "skip step", Form: "POST /workflows/{id}/steps/{step}/skip", API: "POST /api/v1/workflows/{id}/steps/{step}/skip",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "reason") == "" {
					return nil, badRequest("Write a note saying why this step is skipped; it goes into the audit log.")
				}
				return map[string]string{"reason": form(r, "reason")}, nil
			}, Sample: map[string]string{"reason": "done by hand"}, Done: back(toWorkflow, "Step skipped.")},
		{Name: "complete task", Form: "POST /tasks/{id}/complete", API: "POST /api/v1/tasks/{id}/complete",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return map[string]string{"note": form(r, "note")}, nil
			}, Sample: map[string]string{"note": "handed to the courier"}, Done: taskCompleted},
	}
}

func workflowCancelled(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var rep lifecycle.CancelReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("decode cancel report: %w", err)
	}
	msg := "Workflow cancelled."
	if len(rep.AlreadyDone) > 0 {
		msg += fmt.Sprintf(" Already done before the cancel: %v.", rep.AlreadyDone)
	}
	if len(rep.Reenable) > 0 {
		msg += fmt.Sprintf(" To undo by hand: %v.", rep.Reenable)
	}
	return c.done(w, r, "/workflows/"+url.PathEscape(r.PathValue("id")), msg)
}

func taskCompleted(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var t store.LifecycleTask
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("decode task: %w", err)
	}
	to := "/workflows"
	if t.WorkflowID != "" {
		to = "/workflows/" + url.PathEscape(t.WorkflowID)
	}
	return c.done(w, r, to, "Task done: "+t.Title+".")
}

type workflowsView struct {
	Workflows api.List[store.Workflow]
	Tasks     api.List[store.LifecycleTask]
	Filter    url.Values
	Next      string
	States    []string
}

func workflowsPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := workflowsView{Filter: r.URL.Query(), States: []string{"scheduled", "running", "paused", "failed", "succeeded", "cancelled"}}
	q := listQuery(r, 50, "state", "kind", "employee_id")
	if err := c.call(r, rq, "GET", "/api/v1/workflows?"+q.Encode(), nil, &v.Workflows); err != nil {
		return err
	}
	if err := c.call(r, rq, "GET", "/api/v1/tasks?state=open&limit=50", nil, &v.Tasks); err != nil {
		return err
	}
	v.Next = nextPage(r, v.Workflows.NextCursor)
	return c.render(w, rq, http.StatusOK, "workflows", "", "Workflows", "workflows", v)
}

type workflowView struct {
	W                                         lifecycle.WorkflowView
	Employee                                  *domain.Employee
	Steps                                     []stepView
	Open                                      []store.LifecycleTask // open tasks not tied to a listed step
	CanPause, CanResume, CanCancel, CanUnlock bool
}

type stepView struct {
	store.WorkflowStep
	Tasks             []store.LifecycleTask
	CanRetry, CanSkip bool
}

func workflowPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v workflowView
	if err := c.call(r, rq, "GET", "/api/v1/workflows/"+url.PathEscape(r.PathValue("id")), nil, &v.W); err != nil {
		return err
	}
	var emp domain.Employee
	if err := c.call(r, rq, "GET", "/api/v1/employees/"+url.PathEscape(v.W.EmployeeID), nil, &emp); err == nil {
		v.Employee = &emp
	}
	byStep := map[string][]store.LifecycleTask{}
	for _, t := range v.W.Tasks {
		byStep[t.StepID] = append(byStep[t.StepID], t)
	}
	for _, s := range v.W.Steps {
		st := lifecycle.StepState(s.State)
		v.Steps = append(v.Steps, stepView{WorkflowStep: s, Tasks: byStep[s.ID],
			CanRetry: st == lifecycle.StepFailed || st == lifecycle.StepWaiting || st == lifecycle.StepBlocked,
			CanSkip:  st == lifecycle.StepPending || st == lifecycle.StepWaiting || st == lifecycle.StepBlocked || st == lifecycle.StepFailed})
		delete(byStep, s.ID)
	}
	for _, ts := range byStep {
		for _, t := range ts {
			if t.State == "open" {
				v.Open = append(v.Open, t)
			}
		}
	}
	switch v.W.State {
	case "scheduled", "running":
		v.CanPause, v.CanCancel = true, true
	case "failed":
		v.CanCancel = true
	case "paused":
		v.CanResume, v.CanCancel = true, true
	case "cancelled":
		v.CanUnlock = v.W.Kind == "offboarding"
	}
	title := humanize(v.W.Kind)
	if v.Employee != nil {
		title += " of " + v.Employee.HR.FirstName + " " + v.Employee.HR.LastName
	}
	return c.render(w, rq, http.StatusOK, "workflow", "", title, "workflows", v)
}
