package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// JustworksReturnPath is where the HR sync's OAuth callback sends the admin's browser
// back to (hrsync.Config.ConsoleReturn), with ?run=<initial import> or ?error=<message>.
const JustworksReturnPath = "/justworks/connected"

// JustworksStartPath is the entry page the Justworks Integrations Hub card opens.
const JustworksStartPath = "/justworks/start"

func justworksPages() []page {
	return []page{
		{Pattern: "GET /justworks", Handler: justworksPage},
		{Pattern: "GET " + JustworksStartPath, Public: true, Handler: justworksStartPage},
		{Pattern: "GET " + JustworksReturnPath, Handler: justworksConnected},
		{Pattern: "GET /justworks/runs/{id}", Handler: justworksRunPage},
		{Pattern: "GET /justworks/runs/{id}/progress", Handler: justworksRunPage},
	}
}

func justworksActions() []action {
	toRun := func(r *http.Request, raw json.RawMessage) string {
		var run store.HRSyncRun
		if json.Unmarshal(raw, &run) != nil || run.ID == "" {
			return "/justworks"
		}
		return "/justworks/runs/" + url.PathEscape(run.ID)
	}
	return []action{
		{Name: "connect Justworks", Form: "POST /justworks/connect", API: "POST /api/v1/hr/connection",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return hrsync.ConnectRequest{Provider: "justworks"}, nil
			}, Done: justworksConnectStarted},
		{Name: "sync Justworks now", Form: "POST /justworks/sync", API: "POST /api/v1/hr/connection/sync",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				kind := form(r, "kind")
				if kind != "" && kind != hrsync.KindFull && kind != hrsync.KindIncremental {
					return nil, badRequest("Choose a full or an incremental sync.")
				}
				return hrsync.SyncRequest{Kind: kind}, nil
			}, Done: back(toRun, "Sync started.")},
		{Name: "approve held terminations", Form: "POST /justworks/approve-terminations", API: "POST /api/v1/hr/connection/sync",
			StricterRole: domain.RoleAdmin,
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return hrsync.SyncRequest{ApproveTerminations: true}, nil
			}, Done: back(toRun, "Terminations approved: this sync applies the ones Justworks confirms, and their offboardings start.")},
		{Name: "disconnect Justworks", Form: "POST /justworks/disconnect", API: "DELETE /api/v1/hr/connection",
			Done: back(fixed("/justworks"), "Disconnected from Justworks. People and devices stay; nothing syncs until you connect again.")},
	}
}

type justworksView struct {
	Status hrsync.Status
	Runs   api.List[store.HRSyncRun]
	Error  string
}

func justworksPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := justworksView{Error: r.URL.Query().Get("error")}
	if err := c.call(r, rq, "GET", "/api/v1/hr/connection", nil, &v.Status); err != nil {
		return err
	}
	if err := c.call(r, rq, "GET", "/api/v1/hr/sync-runs?limit=20", nil, &v.Runs); err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "justworks", "", "Justworks", "justworks", v)
}

// justworksConnected is where the OAuth callback lands the browser: on to the import's
// progress, or back to the Justworks page with the API's reason.
func justworksConnected(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	if msg := q.Get("error"); msg != "" {
		setFlash(w, c.opts.Secure, "error", "Justworks was not connected: "+msg)
		http.Redirect(w, r, "/justworks", http.StatusSeeOther)
		return nil
	}
	if run := q.Get("run"); run != "" {
		return c.done(w, r, "/justworks/runs/"+url.PathEscape(run), "Connected to Justworks. The first import is running.")
	}
	return c.done(w, r, "/justworks", "Connected to Justworks.")
}

type connectView struct {
	hrsync.ConnectResponse
}

func justworksConnectStarted(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var v connectView
	if err := json.Unmarshal(raw, &v.ConnectResponse); err != nil {
		return fmt.Errorf("decode connect response: %w", err)
	}
	return c.render(w, rq, http.StatusOK, "justworks_connect", "", "Approve access in Justworks", "justworks", v)
}

type runView struct {
	Run     store.HRSyncRun
	Running bool
	Done    bool
}

// justworksRunPage shows one sync run; htmx asks for its progress part every second
// while it runs (the part stops asking once the run has finished).
func justworksRunPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v runView
	if err := c.call(r, rq, "GET", "/api/v1/hr/sync-runs/"+url.PathEscape(r.PathValue("id")), nil, &v.Run); err != nil {
		return err
	}
	v.Running = v.Run.Status == store.HRRunRunning
	v.Done = !v.Running
	if r.Header.Get("HX-Request") == "true" {
		return c.render(w, rq, http.StatusOK, "justworks_run", "progress", "Sync run", "justworks", v)
	}
	return c.render(w, rq, http.StatusOK, "justworks_run", "", "Justworks import", "justworks", v)
}

type startView struct {
	Org    domain.Org
	Status hrsync.Status
	Plans  []planChoice
	Owner  bool
}

type planChoice struct {
	Plan    domain.Plan
	Name    string
	About   string
	Current bool
}

func plansFor(current domain.Plan) []planChoice {
	out := []planChoice{
		{Plan: domain.PlanHR, Name: "HR", About: "People from Justworks, devices and their holders, procurement."},
		{Plan: domain.PlanEssentials, Name: "Essentials", About: "Adds onboarding and offboarding automation, app access and device tracking."},
		{Plan: domain.PlanPro, Name: "Pro", About: "Adds warehousing: storage, intake and retrieval to a warehouse."},
	}
	for i := range out {
		out[i].Current = out[i].Plan == current
	}
	return out
}

// justworksStartPage is the entry page of the Justworks Integrations Hub card: sign in,
// choose a plan, connect, and watch the first import.
func justworksStartPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v startView
	if rq.SignedIn {
		if err := c.call(r, rq, "GET", "/api/v1/org", nil, &v.Org); err != nil {
			return err
		}
		v.Plans, v.Owner = plansFor(v.Org.Plan), rq.P.Role.AtLeast(domain.RoleOwner)
		if v.Org.Plan.Includes(domain.PlanHR) {
			if err := c.call(r, rq, "GET", "/api/v1/hr/connection", nil, &v.Status); err != nil {
				if _, ok := refused(err); !ok {
					return err
				}
			}
		}
	}
	return c.render(w, rq, http.StatusOK, "justworks_start", "", "Set up Lanyard for Justworks", "justworks", v)
}
