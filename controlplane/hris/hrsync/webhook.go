package hrsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Paths of the public endpoints.
const (
	WebhookPath  = "/api/v1/hr/webhooks/{connection_id}"
	CallbackPath = "/api/v1/hr/oauth/callback"
)

const maxWebhookBody = 1 << 20

// Webhook event processing states.
const (
	evReceived  = "received"
	evProcessed = "processed"
	evIgnored   = "ignored"
	evHeld      = "held"
	evFailed    = "failed"
)

func (e *Engine) webhookSecrets(c *store.HRConnection) ([][]byte, error) {
	var out [][]byte
	if c.WebhookSecretSealed != "" {
		b, err := e.cfg.Keyring.Open(c.WebhookSecretSealed, hookAAD(c))
		if err != nil {
			return nil, fmt.Errorf("open webhook secret: %w", err)
		}
		out = append(out, b)
	}
	if e.cfg.WebhookSecret != "" {
		out = append(out, []byte(e.cfg.WebhookSecret))
	}
	return out, nil
}

// WebhookAck is the webhook endpoint's answer.
type WebhookAck struct {
	Status string `json:"status"` // accepted, duplicate, ignored
	ID     string `json:"id,omitempty"`
}

// handleWebhook verifies, deduplicates and records an event, answers at once,
// and hands the event to a worker. The event is only a hint: the worker
// re-fetches the member and decides from its current state.
func (e *Engine) handleWebhook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		return api.BadRequest("could not read the body")
	}
	if len(body) > maxWebhookBody {
		return api.BadRequest("body too large")
	}
	conn, err := store.GetHRConnection(ctx, e.db.SQL, "", r.PathValue("connection_id"))
	if err != nil {
		return api.NotFound("unknown HR connection")
	}
	if conn.State != store.HRStateActive {
		// Not 2xx: the provider retries and eventually closes the webhook.
		return api.NotFound("the HR connection is not active")
	}
	secrets, err := e.webhookSecrets(&conn)
	if err != nil {
		return err
	}
	if err := e.cfg.NewVerifier(secrets).Verify(r.Header, body, e.now()); err != nil {
		e.met.webhooks.WithLabelValues("rejected").Inc()
		e.log.WarnContext(ctx, "webhook rejected", "connection_id", conn.ID, "err", err)
		return api.Unauthorized("webhook signature or timestamp check failed")
	}
	p, err := e.provider(conn.Provider)
	if err != nil {
		return err
	}
	ev, err := p.ParseWebhook(body)
	if err != nil {
		e.log.WarnContext(ctx, "webhook unparseable", "connection_id", conn.ID, "err", err)
		return api.BadRequest("unparseable webhook payload")
	}
	rec := store.HRWebhookEvent{OrgID: conn.OrgID, ConnectionID: conn.ID, EventID: ev.ID, EventType: ev.ProviderType,
		MemberID: ev.MemberID, DepartmentID: ev.DepartmentID, ReceivedAt: e.now()}
	if ev.Type == hris.EventUnknown {
		rec.Status = evIgnored
	}
	if err := store.InsertHRWebhookEvent(ctx, e.db.SQL, &rec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			e.met.webhooks.WithLabelValues("duplicate").Inc()
			return api.JSON(w, http.StatusOK, WebhookAck{Status: "duplicate"})
		}
		return err
	}
	if err := store.TouchHRWebhook(ctx, e.db.SQL, conn.ID, rec.ReceivedAt); err != nil {
		e.log.WarnContext(ctx, "record webhook time", "err", err)
	}
	if rec.Status == evIgnored {
		e.met.webhooks.WithLabelValues("ignored").Inc()
		return api.JSON(w, http.StatusOK, WebhookAck{Status: "ignored", ID: rec.ID})
	}
	e.met.webhooks.WithLabelValues("accepted").Inc()
	select {
	case e.queue <- rec:
	default: // full: the sweeper picks it up
	}
	return api.JSON(w, http.StatusAccepted, WebhookAck{Status: "accepted", ID: rec.ID})
}

// Start runs the webhook workers and the sweeper of unprocessed events until
// ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	ctx = e.actorCtx(ctx)
	for i := 0; i < e.cfg.WebhookWorkers; i++ {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-e.baseCtx.Done():
					return
				case rec := <-e.queue:
					e.processEvent(ctx, rec)
				}
			}
		}()
	}
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.cancel()
			e.wg.Wait()
			return nil
		case <-t.C:
			if err := e.Sweep(ctx, 10*time.Second); err != nil && ctx.Err() == nil {
				e.log.WarnContext(ctx, "webhook sweep", "err", err)
			}
		}
	}
}

// Close stops background runs started by StartSync (tests).
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

// Sweep processes received events older than age (crash, full queue, transient error).
func (e *Engine) Sweep(ctx context.Context, age time.Duration) error {
	conns, err := store.ListActiveHRConnections(ctx, e.db.SQL)
	if err != nil {
		return err
	}
	for _, c := range conns {
		if err := e.sweepConnection(ctx, c.ID, age); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) sweepConnection(ctx context.Context, connID string, age time.Duration) error {
	evs, err := store.ListPendingHRWebhookEvents(ctx, e.db.SQL, connID, e.now().Add(-age), 500)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		e.processEvent(ctx, ev)
	}
	return nil
}

// processEvent handles one recorded event.
func (e *Engine) processEvent(ctx context.Context, rec store.HRWebhookEvent) {
	err := e.process(ctx, rec)
	if err == nil {
		e.met.webhookTime.Observe(e.now().Sub(rec.ReceivedAt).Seconds())
	} else {
		e.log.WarnContext(ctx, "webhook processing failed; will retry", "event_id", rec.EventID, "err", err)
	}
	e.mu.Lock()
	obs := e.onWebhook
	e.mu.Unlock()
	for _, fn := range obs {
		fn(rec, err)
	}
}

func (e *Engine) finish(ctx context.Context, q store.Querier, rec store.HRWebhookEvent, status, msg string) error {
	return store.FinishHRWebhookEvent(ctx, q, rec.ID, status, msg, e.now())
}

func (e *Engine) process(ctx context.Context, rec store.HRWebhookEvent) error {
	conn, err := store.GetHRConnection(ctx, e.db.SQL, rec.OrgID, rec.ConnectionID)
	if err != nil {
		return err
	}
	if conn.State != store.HRStateActive {
		return e.finish(ctx, e.db.SQL, rec, evIgnored, "connection not active")
	}
	if rec.MemberID != "" {
		return e.refreshMember(ctx, conn, rec.MemberID, &rec)
	}
	if rec.DepartmentID != "" {
		// A rename keeps the id; a delete drops the department from members:
		// re-fetch every member we have in it (EDGE_CASES 6).
		ids, err := store.ListHRMemberIDsByDepartment(ctx, e.db.SQL, conn.OrgID, conn.Provider, rec.DepartmentID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := e.refreshMember(ctx, conn, id, nil); err != nil {
				return err
			}
		}
	}
	return e.finish(ctx, e.db.SQL, rec, evProcessed, "")
}

// refreshMember re-fetches a member and applies its current state; rec (when
// set) is marked processed in the same transaction.
func (e *Engine) refreshMember(ctx context.Context, conn store.HRConnection, id string, rec *store.HRWebhookEvent) error {
	dir, err := e.directory(&conn)
	if err != nil {
		return err
	}
	m, err := dir.GetMember(ctx, id)
	switch {
	case errors.Is(err, hris.ErrNotFound):
		if rec != nil {
			return e.finish(ctx, e.db.SQL, *rec, evIgnored, "member not found at provider")
		}
		return nil
	case endReason(err) != "":
		if _, terr := e.terminateConnection(ctx, conn.OrgID, conn.ID, endReason(err), ""); terr != nil {
			return terr
		}
		if rec != nil {
			return e.finish(ctx, e.db.SQL, *rec, evFailed, err.Error())
		}
		return nil
	case err != nil && !errors.Is(err, hris.ErrUnavailable) && ctx.Err() == nil && rec != nil:
		// A malformed record: report it on the event, do not retry forever.
		return e.finish(ctx, e.db.SQL, *rec, evFailed, err.Error())
	case err != nil:
		return err
	}
	org, err := store.GetOrg(ctx, e.db.SQL, conn.OrgID)
	if err != nil {
		return err
	}
	if err := e.checkIdentities(ctx, dir, org, conn.Provider, []hris.Member{*m}); err != nil {
		if errors.Is(err, errIdentityChanged) && rec != nil {
			e.log.WarnContext(ctx, "webhook member not applied", "member_id", id, "err", err)
			return e.finish(ctx, e.db.SQL, *rec, evFailed, err.Error())
		}
		return err
	}
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		org, err := store.GetOrg(ctx, tx, conn.OrgID)
		if err != nil {
			return err
		}
		c, err := store.GetHRConnection(ctx, tx, conn.OrgID, conn.ID)
		if err != nil {
			return err
		}
		o := applyOpts{org: org, source: c.Provider, today: todayIn(e.now(), org.Location()), allowTerminate: c.Attention == ""}
		out, reason, err := e.applyMember(ctx, tx, *m, o)
		if err != nil {
			return err
		}
		if rec == nil {
			return nil
		}
		switch out {
		case outWouldTerminate:
			return e.finish(ctx, tx, *rec, evHeld, "termination held: the mass-termination breaker is waiting for an admin")
		case outSkipped:
			return e.finish(ctx, tx, *rec, evIgnored, reason)
		}
		return e.finish(ctx, tx, *rec, evProcessed, "")
	})
}
