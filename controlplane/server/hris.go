package server

// HR sync wiring (controlplane/hris). With --demo the engine talks to an in-process fake
// Justworks, which SeedDemo connects the demo org to.

import (
	"context"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/console"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
)

// buildHRIS builds the HR sync engine and registers its jobs; with --demo it also starts
// the fake Justworks it returns.
func buildHRIS(d Deps) (*hrsync.Engine, *fakejustworks.Server, error) {
	cfg := d.Config
	providers := map[string]hris.Provider{}
	var jw justworks.Config
	var fake *fakejustworks.Server
	switch {
	case cfg.Demo:
		// Lives as long as the process; background context on purpose.
		var err error
		if fake, err = fakejustworks.StartDemo(context.Background(), "127.0.0.1:0"); err != nil {
			return nil, nil, err
		}
		jw = hrsync.FakeJustworksConfig(fake, cfg.PublicURL)
	case cfg.JustworksClientID != "":
		jw = justworks.Config{ClientID: cfg.JustworksClientID, ClientSecret: cfg.JustworksSecret,
			RedirectURL: cfg.PublicURL + hrsync.CallbackPath, AuthorizeURL: cfg.JustworksAuthURL,
			TokenURL: cfg.JustworksTokenURL, BaseURL: cfg.JustworksAPIURL}
	}
	if jw.ClientID != "" {
		jw.Logger = d.Logger
		p, err := justworks.New(jw)
		if err != nil {
			return nil, fake, fmt.Errorf("justworks provider: %w", err)
		}
		providers["justworks"] = p
	}
	e, err := hrsync.New(hrsync.Config{DB: d.DB, Keyring: d.Keyring, Providers: providers, PublicURL: cfg.PublicURL,
		ConsoleReturn: console.JustworksReturnPath,
		WebhookSecret: cfg.JustworksWebhookKey, ReconcileInterval: cfg.HRReconcileInterval, MaxPages: cfg.HRSyncMaxPages, Logger: d.Logger,
		Registerer: d.Registry})
	if err != nil {
		return nil, fake, err
	}
	e.RegisterJobs(d.JobRegistry)
	return e, fake, nil
}

// seedHRIS connects the demo org to the fake Justworks and imports it.
func (s *Server) seedHRIS(ctx context.Context, org domain.Org) error {
	if s.caps.demoJustworks == nil {
		return nil
	}
	if _, err := hrsync.ConnectDemo(ctx, s.caps.hr, org.ID, s.caps.demoJustworks); err != nil {
		return fmt.Errorf("connect demo org to the fake Justworks: %w", err)
	}
	return nil
}
