package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/entra/fakegraph"
	"github.com/lanyardhq/lanyard/controlplane/apps/google/fakegoogle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// benchDomain is the work email domain of the fake Justworks' generated members.
const benchDomain = "acme.example.com"

// googleTarget: sign-in blocked at Google is the later of suspended and signed out.
type googleTarget struct {
	s      *fakegoogle.Server
	cancel context.CancelFunc
}

func newGoogleTarget() (appTarget, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := fakegoogle.Start(ctx, fakegoogle.Options{Domain: benchDomain})
	if err != nil {
		cancel()
		return nil, err
	}
	return googleTarget{s: s, cancel: cancel}, nil
}

func (t googleTarget) Connector(orgID string, kr *secrets.Keyring) (store.AppConnector, error) {
	settings, _ := json.Marshal(map[string]any{"domain": benchDomain, "admin_subject": "admin@" + benchDomain,
		"token_url": t.s.URL + "/token", "groups_on_suspend": "keep"})
	sealed, err := kr.Seal(t.s.ServiceAccountKey, lifecycle.TokenAAD(orgID, "google"))
	return store.AppConnector{OrgID: orgID, App: "google", Kind: "google", BaseURL: t.s.URL, Settings: string(settings),
		TokenSealed: sealed, RevokeMode: "deactivate"}, err
}

func (t googleTarget) Seed(email string) error {
	t.s.AddUser(fakegoogle.User{PrimaryEmail: strings.ToLower(email)})
	return nil
}

func (t googleTarget) SuspendedAt(email string) (time.Time, bool) {
	u, ok := t.s.User(strings.ToLower(email))
	if !ok || !u.Suspended || u.SignedOutAt.IsZero() {
		return time.Time{}, false
	}
	return latest(u.SuspendedAt, u.SignedOutAt), true
}

func (t googleTarget) Close() { t.s.Close(); t.cancel() }

// entraTarget: sign-in blocked in Entra is the later of accountEnabled=false and the
// sessions revoked.
type entraTarget struct {
	s      *fakegraph.Server
	cancel context.CancelFunc
}

const (
	benchTenant = "00000000-0000-4000-8000-0000000000aa"
	benchClient = "00000000-0000-4000-8000-0000000000bb"
	benchSecret = "bench-client-secret"
)

func newEntraTarget() (appTarget, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := fakegraph.Start(ctx, fakegraph.Options{TenantID: benchTenant, ClientID: benchClient, ClientSecret: benchSecret})
	if err != nil {
		cancel()
		return nil, err
	}
	return entraTarget{s: s, cancel: cancel}, nil
}

func (t entraTarget) Connector(orgID string, kr *secrets.Keyring) (store.AppConnector, error) {
	settings, _ := json.Marshal(map[string]any{"tenant_id": benchTenant, "client_id": benchClient, "domain": benchDomain,
		"authority_url": t.s.URL, "groups_on_suspend": "keep"})
	sealed, err := kr.Seal([]byte(benchSecret), lifecycle.TokenAAD(orgID, "m365"))
	return store.AppConnector{OrgID: orgID, App: "m365", Kind: "entra", BaseURL: t.s.URL, Settings: string(settings),
		TokenSealed: sealed, RevokeMode: "deactivate"}, err
}

func (t entraTarget) Seed(email string) error {
	e := strings.ToLower(email)
	t.s.AddUser(fakegraph.User{UserPrincipalName: e, Mail: e, AccountEnabled: true})
	return nil
}

func (t entraTarget) SuspendedAt(email string) (time.Time, bool) {
	u, ok := t.s.User(strings.ToLower(email))
	if !ok || u.AccountEnabled || u.SessionsRevokedAt.IsZero() {
		return time.Time{}, false
	}
	return latest(u.DisabledAt, u.SessionsRevokedAt), true
}

func (t entraTarget) Close() { _ = t.s.Close(); t.cancel() }

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
