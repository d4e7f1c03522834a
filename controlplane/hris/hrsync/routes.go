package hrsync

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// SyncRequest triggers a sync.
type SyncRequest struct {
	// Kind: "" (auto), "incremental" or "full".
	Kind string `json:"kind,omitempty"`
	// ApproveTerminations lets this run apply terminations the mass-termination
	// breaker held (admin only).
	ApproveTerminations bool `json:"approve_terminations,omitempty"`
}

// Routes implements the server's capability hook.
func (e *Engine) Routes() []api.Route {
	const tag = "HR sync"
	return []api.Route{
		{Method: "POST", Path: "/api/v1/hr/connection", Summary: "Start connecting an HR provider (OAuth2 authorization code)", Tag: tag,
			Role: domain.RoleAdmin, Feature: domain.FeatureHRSync, Request: ConnectRequest{}, Response: ConnectResponse{}, Status: http.StatusCreated,
			Handler: e.apiConnect},
		{Method: "GET", Path: "/api/v1/hr/connection", Summary: "HR connection status, current run progress and employee counts", Tag: tag,
			Role: domain.RoleViewer, Feature: domain.FeatureHRSync, Response: Status{}, Handler: e.apiStatus},
		{Method: "DELETE", Path: "/api/v1/hr/connection", Summary: "Disconnect the HR provider (people and devices stay)", Tag: tag,
			Role: domain.RoleAdmin, Feature: domain.FeatureHRSync, Response: store.HRConnection{}, Handler: e.apiDisconnect},
		{Method: "POST", Path: "/api/v1/hr/connection/sync", Summary: "Start a sync run now", Tag: tag,
			Role: domain.RoleIT, Feature: domain.FeatureHRSync, Request: SyncRequest{}, Response: store.HRSyncRun{}, Status: http.StatusAccepted,
			Handler: e.apiSync},
		{Method: "GET", Path: "/api/v1/hr/sync-runs", Summary: "List sync runs, newest first", Tag: tag,
			Role: domain.RoleViewer, Feature: domain.FeatureHRSync, Response: api.List[store.HRSyncRun]{}, Handler: e.apiListRuns,
			Query: api.PageParams()},
		{Method: "GET", Path: "/api/v1/hr/sync-runs/{id}", Summary: "One sync run with its progress and errors", Tag: tag, Resource: "hr_sync_run",
			Role: domain.RoleViewer, Feature: domain.FeatureHRSync, Response: store.HRSyncRun{}, Handler: e.apiGetRun},
		{Method: "GET", Path: CallbackPath, Summary: "OAuth2 redirect target (the provider sends the admin's browser here)", Tag: tag,
			Public: true, Response: CallbackResult{}, Handler: e.apiCallback,
			Query: []api.Param{{Name: "code", Description: "authorization code"}, {Name: "state", Description: "state from the authorize URL"}, {Name: "error", Description: "set when access was denied"}}},
		{Method: "POST", Path: WebhookPath, Summary: "Provider webhook (signature-verified, deduplicated by event id)", Tag: tag,
			Public: true, Response: WebhookAck{}, Status: http.StatusAccepted, Handler: e.handleWebhook},
	}
}

func (e *Engine) apiConnect(w http.ResponseWriter, r *http.Request) error {
	var req ConnectRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	resp, err := e.Connect(r.Context(), api.PrincipalFrom(r.Context()).OrgID, req)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, resp)
}

func (e *Engine) apiStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := e.GetStatus(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, st)
}

func (e *Engine) apiDisconnect(w http.ResponseWriter, r *http.Request) error {
	c, err := e.Disconnect(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("the organization has no HR connection")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (e *Engine) apiSync(w http.ResponseWriter, r *http.Request) error {
	var req SyncRequest
	if r.ContentLength != 0 {
		if err := api.Decode(r, &req); err != nil {
			return err
		}
	}
	p := api.PrincipalFrom(r.Context())
	switch req.Kind {
	case KindAuto, KindIncremental, KindFull:
	default:
		return api.BadRequest(`kind must be "", "incremental" or "full"`)
	}
	if req.ApproveTerminations && !p.Role.AtLeast(domain.RoleAdmin) {
		return api.Forbidden("approving held terminations needs the admin role")
	}
	run, err := e.StartSync(r.Context(), p.OrgID, SyncOptions{Kind: req.Kind, Trigger: "manual", ApproveTerminations: req.ApproveTerminations})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.NotFound("the organization has no HR connection; run `lanyardctl hr connect`")
	case errors.Is(err, store.ErrConflict) && run.ID != "":
		return api.Conflict("a sync is already running").With("run_id", run.ID)
	case err != nil:
		return err
	}
	return api.JSON(w, http.StatusAccepted, run)
}

func (e *Engine) apiListRuns(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	runs, next, err := e.db.ListHRSyncRuns(r.Context(), api.PrincipalFrom(r.Context()).OrgID, pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(runs, next))
}

func (e *Engine) apiGetRun(w http.ResponseWriter, r *http.Request) error {
	run, err := store.GetHRSyncRun(r.Context(), e.db.SQL, api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, run)
}

func (e *Engine) apiCallback(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	res, err := e.Callback(r.Context(), q.Get("state"), q.Get("code"), q.Get("error"))
	if e.cfg.ConsoleReturn != "" && wantsHTML(r) {
		// The admin's browser came here from the provider's consent page: send it back to
		// the console, which shows the outcome and the import's progress, not JSON.
		v := url.Values{}
		var p *api.Problem
		switch {
		case err == nil:
			v.Set("run", res.RunID)
		case errors.As(err, &p) && p.Detail != "":
			v.Set("error", p.Detail)
		default:
			e.log.ErrorContext(r.Context(), "oauth callback", "err", err)
			v.Set("error", "connecting failed on the server; start again, and check the server log if it keeps failing")
		}
		http.Redirect(w, r, e.cfg.ConsoleReturn+"?"+v.Encode(), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, res)
}

// wantsHTML reports a browser navigation (it asks for HTML first), not an API client.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if mt == "text/html" {
			return true
		}
	}
	return false
}
