package main

import (
	"fmt"
	"github.com/lanyardhq/lanyard/controlplane/apps/entra"
	"github.com/lanyardhq/lanyard/controlplane/apps/google"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// builders are the connector kinds the benchmark's engine can build (the server's wiring).
var builders = map[string]apps.Builder{"scim": apps.BuildSCIM, "google": google.Builder(), "entra": entra.Build}

// appTarget is the fake app an offboarding suspends accounts on, one per connector
// kind (-kind): the benchmark seeds every employee's account, then measures webhook →
// the account suspended on the app.
type appTarget interface {
	// Connector is the stored configuration pointing the engine at the fake.
	Connector(orgID string, kr *secrets.Keyring) (store.AppConnector, error)
	Seed(email string) error
	// SuspendedAt is when the account was suspended, if it is.
	SuspendedAt(email string) (time.Time, bool)
	Close()
}

// newAppTarget starts the fake for kind.
func newAppTarget(kind string) (appTarget, error) {
	switch kind {
	case "google":
		return newGoogleTarget()
	case "entra":
		return newEntraTarget()
	case "scim":
		s, err := fakescim.Start("scim")
		if err != nil {
			return nil, err
		}
		return scimTarget{s}, nil
	}
	return nil, fmt.Errorf("-kind %s: want scim, google or entra", kind)
}

type scimTarget struct{ s *fakescim.Server }

func (t scimTarget) Connector(orgID string, kr *secrets.Keyring) (store.AppConnector, error) {
	sealed, err := kr.Seal([]byte("scim"), lifecycle.TokenAAD(orgID, "slack"))
	return store.AppConnector{OrgID: orgID, App: "slack", Kind: "scim", BaseURL: t.s.URL, TokenSealed: sealed, RevokeMode: "deactivate"}, err
}

func (t scimTarget) Seed(email string) error {
	t.s.AddUser(fakescim.User{UserName: email, Active: true})
	return nil
}

func (t scimTarget) SuspendedAt(email string) (time.Time, bool) {
	u, at, ok := t.s.UserChangedAt(email)
	return at, ok && !u.Active
}

func (t scimTarget) Close() { _ = t.s.Close() }
