package hrsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// FakeJustworksConfig is the Justworks provider configuration that talks to a
// fake server (make run, tests). publicURL is Lanyard's public URL.
func FakeJustworksConfig(fake *fakejustworks.Server, publicURL string) justworks.Config {
	return justworks.Config{
		ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret(),
		RedirectURL: publicURL + CallbackPath,
		BaseURL:     fake.URL(), AuthorizeURL: fake.AuthorizeURL(),
	}
}

// ConnectDemo connects an org to a fake Justworks without a browser: it runs
// the OAuth flow against the fake, subscribes the fake's webhooks to this
// engine, and waits for the initial import (up to two minutes). It is
// idempotent: an org that is already connected gets a fresh grant from this
// fake (a new fake instance knows none of the old tokens) and a sync.
func ConnectDemo(ctx context.Context, e *Engine, orgID string, fake *fakejustworks.Server) (store.HRConnection, error) {
	ctx = e.actorCtx(ctx)
	p, err := e.provider("justworks")
	if err != nil {
		return store.HRConnection{}, err
	}
	c, err := store.GetLiveHRConnection(ctx, e.db.SQL, orgID)
	if err == nil && c.State == store.HRStateActive {
		g, err := p.Exchange(ctx, fake.Authorize(e.CallbackURL(), justworks.DefaultScopes))
		if err != nil {
			return c, fmt.Errorf("demo re-authorize: %w", err)
		}
		if jw, ok := p.(interface{ Forget(string) }); ok {
			jw.Forget(c.ID)
		}
		if err := (tokenStore{e: e, connID: c.ID, orgID: orgID}).Save(ctx, g); err != nil {
			return c, err
		}
		secrets, err := e.webhookSecrets(&c)
		if err != nil || len(secrets) == 0 {
			return c, fmt.Errorf("demo webhook secret: %v", err)
		}
		fake.Subscribe(e.WebhookURL(c.ID), secrets[0])
		if _, err := e.SyncNow(ctx, orgID, SyncOptions{Trigger: "demo"}); err != nil && !errors.Is(err, store.ErrConflict) {
			return c, err
		}
		return store.GetHRConnection(ctx, e.db.SQL, orgID, c.ID)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, err
	}
	resp, err := e.Connect(ctx, orgID, ConnectRequest{Provider: "justworks"})
	if err != nil {
		return c, err
	}
	c, err = store.GetHRConnection(ctx, e.db.SQL, orgID, resp.ConnectionID)
	if err != nil {
		return c, err
	}
	secret := resp.WebhookSecret
	if secret == "" {
		secret = e.cfg.WebhookSecret
	}
	res, err := e.Callback(ctx, c.OAuthState, fake.Authorize(e.CallbackURL(), justworks.DefaultScopes), "")
	if err != nil {
		return c, fmt.Errorf("demo connect: %w", err)
	}
	fake.Subscribe(e.WebhookURL(c.ID), []byte(secret))
	if res.RunID != "" {
		if _, err := e.WaitRun(ctx, orgID, res.RunID, 2*time.Minute); err != nil {
			return c, err
		}
	}
	return store.GetHRConnection(ctx, e.db.SQL, orgID, c.ID)
}

// WaitRun polls a run until it finishes or timeout passes.
func (e *Engine) WaitRun(ctx context.Context, orgID, runID string, timeout time.Duration) (store.HRSyncRun, error) {
	deadline := time.Now().Add(timeout)
	for {
		run, err := store.GetHRSyncRun(ctx, e.db.SQL, orgID, runID)
		if err != nil {
			return run, err
		}
		if run.Status != store.HRRunRunning {
			return run, nil
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("sync run %s still running after %s", runID, timeout)
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
