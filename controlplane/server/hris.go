package server

// HR sync wiring (owned by the HR-sync work, controlplane/hris). Registered from
// init so this file is the whole hook; move the entry into capabilities.go's
// list if you prefer one place.

import (
	"context"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
)

func init() {
	capabilities = append(capabilities, capability{name: "hris", build: buildHRIS})
	demoSeeders = append(demoSeeders, seedHRIS)
}

// demoJustworks is the in-process fake Justworks of `make run` (nil otherwise).
var demoJustworks *fakejustworks.Server

func buildHRIS(ctx context.Context, d *Deps) (any, error) {
	cfg := d.Config
	providers := map[string]hris.Provider{}
	var jw justworks.Config
	switch {
	case cfg.Demo:
		// Lives as long as the process; background context on purpose.
		fake, err := fakejustworks.StartDemo(context.Background(), "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		demoJustworks = fake
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
			return nil, fmt.Errorf("justworks provider: %w", err)
		}
		providers["justworks"] = p
	}
	e, err := hrsync.New(hrsync.Config{DB: d.DB, Keyring: d.Keyring, Providers: providers, PublicURL: cfg.PublicURL,
		WebhookSecret: cfg.JustworksWebhookKey, ReconcileInterval: cfg.HRReconcileInterval, Logger: d.Logger,
		Registerer: d.Registry})
	if err != nil {
		return nil, err
	}
	e.RegisterJobs(d.JobRegistry)
	return e, nil
}

// seedHRIS connects the demo org to the fake Justworks and imports it.
func seedHRIS(ctx context.Context, s *Server, org domain.Org) error {
	if demoJustworks == nil {
		return nil
	}
	for _, c := range s.Capabilities {
		if e, ok := c.(*hrsync.Engine); ok {
			if _, err := hrsync.ConnectDemo(ctx, e, org.ID, demoJustworks); err != nil {
				return fmt.Errorf("connect demo org to the fake Justworks: %w", err)
			}
		}
	}
	return nil
}
