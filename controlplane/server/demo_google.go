package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/google/fakegoogle"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The demo's Google Workspace: an in-process fakegoogle on loopback, connected to the demo
// org as the app "google-workspace", with an account for every active demo employee, so
// an offboarding in `make run` shows the access-removal step suspend and sign out a real
// (fake) account.
const (
	demoGoogleApp    = "google-workspace"
	demoGoogleDomain = "acme.example.com" // the demo Justworks' work email domain
)

func startDemoGoogle(ctx context.Context) (*fakegoogle.Server, error) {
	return fakegoogle.Start(ctx, fakegoogle.Options{Domain: demoGoogleDomain})
}

// seedGoogle (re)connects the demo org to this start's fake (a new port and key each
// start) and gives its active people accounts there.
func (s *Server) seedGoogle(ctx context.Context, org domain.Org) error {
	fake := s.caps.demoGoogle
	if fake == nil {
		return nil
	}
	settings, _ := json.Marshal(map[string]any{"domain": demoGoogleDomain, "admin_subject": "admin@" + demoGoogleDomain,
		"token_url": fake.URL + "/token", "groups_on_suspend": "remove"})
	spec := apps.Spec{App: demoGoogleApp, Kind: "google", BaseURL: fake.URL, Settings: settings, Secret: fake.ServiceAccountKey}
	// The same check the API makes on save: the builder must accept the configuration.
	if _, err := connectorBuilders(s.DB)["google"](ctx, spec); err != nil {
		return fmt.Errorf("demo google connector: %w", err)
	}
	sealed, err := s.Keyring.Seal(fake.ServiceAccountKey, lifecycle.TokenAAD(org.ID, demoGoogleApp))
	if err != nil {
		return err
	}
	c := store.AppConnector{OrgID: org.ID, App: demoGoogleApp, Kind: "google", BaseURL: fake.URL, Settings: string(settings),
		TokenSealed: sealed, RevokeMode: string(apps.RevokeDeactivate)}
	if err := s.DB.UpsertAppConnector(ctx, &c); err != nil {
		return err
	}
	cursor := ""
	for {
		page, next, err := s.DB.ListEmployees(ctx, org.ID, store.EmployeeFilter{}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, e := range page {
			if e.HR.WorkEmail == "" || !strings.HasSuffix(strings.ToLower(e.HR.WorkEmail), "@"+demoGoogleDomain) {
				continue
			}
			fake.AddUser(fakegoogle.User{PrimaryEmail: strings.ToLower(e.HR.WorkEmail), GivenName: e.HR.FirstName, FamilyName: e.HR.LastName,
				Suspended: e.HR.Status == domain.StatusTerminated, ExternalIDs: []map[string]string{{"type": "organization", "value": e.ID}}})
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}
