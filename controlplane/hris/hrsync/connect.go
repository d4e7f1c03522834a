package hrsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// OAuthStateTTL is how long an admin has to approve access.
const OAuthStateTTL = 15 * time.Minute

// ConnectRequest starts a connection.
type ConnectRequest struct {
	// Provider defaults to "justworks".
	Provider string `json:"provider,omitempty"`
	// WebhookSecret is the signing secret the provider issued for webhooks;
	// when empty Lanyard uses the server's configured secret, or generates one
	// and returns it (to hand to the provider).
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// ConnectResponse tells the admin where to approve access.
type ConnectResponse struct {
	ConnectionID string `json:"connection_id"`
	AuthorizeURL string `json:"authorize_url"`
	CallbackURL  string `json:"callback_url"`
	WebhookURL   string `json:"webhook_url"`
	// WebhookSecret is returned only when Lanyard generated it.
	WebhookSecret string    `json:"webhook_secret,omitempty"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// Connect starts the OAuth2 authorization-code flow for an org. A pending
// connection is replaced; an active one must be disconnected first.
func (e *Engine) Connect(ctx context.Context, orgID string, req ConnectRequest) (ConnectResponse, error) {
	ctx = e.actorCtx(ctx)
	if req.Provider == "" {
		req.Provider = "justworks"
	}
	p, err := e.provider(req.Provider)
	if err != nil {
		return ConnectResponse{}, api.Unprocessable(err.Error())
	}
	secret, generated := req.WebhookSecret, false
	if secret == "" && e.cfg.WebhookSecret == "" {
		secret, generated = "whsec_"+randomToken(24), true
	}
	now := e.now()
	exp := now.Add(OAuthStateTTL)
	c := store.HRConnection{ID: domain.NewID(), OrgID: orgID, Provider: req.Provider, State: store.HRStatePending,
		OAuthState: randomToken(32), OAuthStateExpires: &exp, CreatedBy: domain.ActorFrom(ctx).ID}
	if secret != "" {
		s, err := e.cfg.Keyring.Seal([]byte(secret), hookAAD(&c))
		if err != nil {
			return ConnectResponse{}, err
		}
		c.WebhookSecretSealed = s
	}
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		live, err := e.db.LockLiveHRConnection(ctx, tx, orgID)
		switch {
		case err == nil && live.State == store.HRStateActive:
			return api.Conflict("the organization is already connected to " + live.Provider + "; disconnect first")
		case err == nil:
			before := live
			live.State, live.Reason, live.TerminatedAt, live.OAuthState = store.HRStateTerminated, ReasonSuperseded, &now, ""
			if err := store.UpdateHRConnection(ctx, tx, &live); err != nil {
				return err
			}
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "hr.connection.terminated", "hr_connection", live.ID, connView(before), connView(live))); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := store.InsertHRConnection(ctx, tx, &c); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "hr.connection.started", "hr_connection", c.ID, nil, connView(c)))
	})
	if err != nil {
		return ConnectResponse{}, err
	}
	resp := ConnectResponse{ConnectionID: c.ID, AuthorizeURL: p.AuthCodeURL(c.OAuthState), CallbackURL: e.CallbackURL(),
		WebhookURL: e.WebhookURL(c.ID), ExpiresAt: exp}
	if generated {
		resp.WebhookSecret = secret
	}
	return resp, nil
}

// CallbackResult is the OAuth callback's answer.
type CallbackResult struct {
	ConnectionID string `json:"connection_id"`
	State        string `json:"state"`
	CompanyName  string `json:"company_name,omitempty"`
	Scopes       string `json:"scopes"`
	RunID        string `json:"run_id,omitempty"`
	Message      string `json:"message"`
}

// Callback completes the OAuth flow: exchange the code, store the grant
// (encrypted), read the company, and start the initial import.
func (e *Engine) Callback(ctx context.Context, state, code, oauthErr string) (CallbackResult, error) {
	ctx = domain.WithActor(ctx, domain.Actor{ID: Actor, RequestID: domain.ActorFrom(ctx).RequestID})
	c, err := store.GetHRConnectionByOAuthState(ctx, e.db.SQL, state)
	if err != nil {
		return CallbackResult{}, api.BadRequest("unknown or already used authorization state; start again with `lanyardctl hr connect`")
	}
	if c.OAuthStateExpires != nil && e.now().After(*c.OAuthStateExpires) {
		_, _ = e.terminateConnection(ctx, c.OrgID, c.ID, ReasonDenied, "authorization expired")
		return CallbackResult{}, api.BadRequest("the authorization request expired; start again")
	}
	if oauthErr != "" {
		_, _ = e.terminateConnection(ctx, c.OrgID, c.ID, ReasonDenied, oauthErr)
		return CallbackResult{}, api.BadRequest("the provider did not grant access: " + oauthErr)
	}
	if code == "" {
		return CallbackResult{}, api.BadRequest("missing code")
	}
	p, err := e.provider(c.Provider)
	if err != nil {
		return CallbackResult{}, err
	}
	g, err := p.Exchange(ctx, code)
	if err != nil {
		e.log.WarnContext(ctx, "oauth code exchange failed", "connection_id", c.ID, "err", err)
		return CallbackResult{}, api.Unprocessable("the provider rejected the authorization code; start again")
	}
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := e.db.LockHRConnection(ctx, tx, c.OrgID, c.ID)
		if err != nil {
			return err
		}
		if cur.State != store.HRStatePending || cur.OAuthState != state {
			return api.Conflict("this authorization was already used")
		}
		before := cur
		if err := e.sealGrant(&cur, g); err != nil {
			return err
		}
		cur.State, cur.OAuthState, cur.OAuthStateExpires = store.HRStateActive, "", nil
		if err := store.UpdateHRConnection(ctx, tx, &cur); err != nil {
			return err
		}
		c = cur
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, c.OrgID, "hr.connection.connected", "hr_connection", c.ID, connView(before), connView(cur)))
	})
	if err != nil {
		return CallbackResult{}, err
	}
	res := CallbackResult{ConnectionID: c.ID, State: c.State, Scopes: c.Scopes}
	if err := e.refreshCompany(ctx, &c); err != nil {
		if reason := endReason(err); reason != "" {
			_, _ = e.terminateConnection(ctx, c.OrgID, c.ID, reason, "")
			return CallbackResult{}, api.Unprocessable("the provider refused access right after approval: " + reason)
		}
		e.log.WarnContext(ctx, "read company", "connection_id", c.ID, "err", err)
	}
	res.CompanyName = c.CompanyName
	run, err := e.StartSync(ctx, c.OrgID, SyncOptions{Trigger: "connect"})
	if err != nil {
		return res, err
	}
	res.RunID = run.ID
	res.Message = "Connected. The initial import is running: `lanyardctl hr status`."
	return res, nil
}

func (e *Engine) refreshCompany(ctx context.Context, c *store.HRConnection) error {
	dir, err := e.directory(c)
	if err != nil {
		return err
	}
	comp, err := dir.GetCompany(ctx)
	if err != nil {
		return err
	}
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := e.db.LockHRConnection(ctx, tx, c.OrgID, c.ID)
		if err != nil {
			return err
		}
		cur.CompanyID, cur.CompanyName = comp.ID, comp.Name
		if err := store.UpdateHRConnection(ctx, tx, &cur); err != nil {
			return err
		}
		*c = cur
		return nil
	})
}

// Disconnect ends the org's connection at once (state terminated, reason
// recorded, audited) and revokes the grant at the provider, best effort.
// Employees and devices stay.
func (e *Engine) Disconnect(ctx context.Context, orgID string) (store.HRConnection, error) {
	ctx = e.actorCtx(ctx)
	c, err := store.GetLiveHRConnection(ctx, e.db.SQL, orgID)
	if err != nil {
		return c, fmt.Errorf("no HR connection: %w", err)
	}
	g, gerr := e.openGrant(&c)
	out, err := e.terminateConnection(ctx, orgID, c.ID, ReasonDisconnected, "by "+domain.ActorFrom(ctx).ID)
	if err != nil {
		return out, err
	}
	if gerr == nil {
		if p, perr := e.provider(c.Provider); perr == nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := p.Revoke(rctx, g); err != nil {
				e.log.WarnContext(ctx, "revoke grant at provider failed (connection is terminated anyway)", "connection_id", c.ID, "err", err)
			}
		}
	}
	return out, nil
}

// Status is the org's HR sync state.
type Status struct {
	Connected  bool                `json:"connected"`
	Connection *store.HRConnection `json:"connection,omitempty"`
	WebhookURL string              `json:"webhook_url,omitempty"`
	CurrentRun *store.HRSyncRun    `json:"current_run,omitempty"`
	LastRun    *store.HRSyncRun    `json:"last_run,omitempty"`
	Employees  map[string]int      `json:"employees"`
}

// GetStatus returns the org's connection (latest, whatever its state), its runs
// and employee counts.
func (e *Engine) GetStatus(ctx context.Context, orgID string) (Status, error) {
	st := Status{Employees: map[string]int{}}
	c, err := store.GetLatestHRConnection(ctx, e.db.SQL, orgID)
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Connection = &c
	st.Connected = c.State == store.HRStateActive
	if c.State != store.HRStateTerminated {
		st.WebhookURL = e.WebhookURL(c.ID)
	}
	if run, err := store.GetRunningHRSyncRun(ctx, e.db.SQL, c.ID); err == nil {
		st.CurrentRun = &run
	}
	runs, _, err := e.db.ListHRSyncRuns(ctx, orgID, store.Page{Limit: 5})
	if err != nil {
		return st, err
	}
	for i := range runs {
		if runs[i].Status != store.HRRunRunning && runs[i].ConnectionID == c.ID {
			st.LastRun = &runs[i]
			break
		}
	}
	for _, s := range []domain.EmploymentStatus{domain.StatusActive, domain.StatusPending, domain.StatusTerminated} {
		n, err := store.CountEmployeesByStatus(ctx, e.db.SQL, orgID, c.Provider, s)
		if err != nil {
			return st, err
		}
		st.Employees[string(s)] = n
	}
	return st, nil
}
