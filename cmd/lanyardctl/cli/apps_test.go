package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestAppsCommands: connect a SCIM app with basic auth (a bad config is one readable
// line), reconcile, and list the orphan it finds.
func TestAppsCommands(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	eng := lifecycle.New(db, lifecycle.WithKeys(kr), lifecycle.WithApps(lifecycle.StoreAppDirectory{DB: db, Keys: kr,
		Builders: map[string]apps.Builder{"scim": apps.BuildSCIM}}))
	h := apitest.New(t, db, api.Options{}, eng.Routes())
	o := storetest.Org(t, db, domain.PlanPro)
	fake, err := fakescim.Start("", fakescim.BasicAuth("lanyard", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.AddUser(fakescim.User{UserName: "ghost@acme.test", Active: true})
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	t.Setenv("CRM_PASSWORD", "pw")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	if _, err := run("apps", "connect", "crm", "--base-url", fake.URL, "--auth", "basic", "--secret-env", "CRM_PASSWORD"); err == nil ||
		!strings.Contains(err.Error(), "settings.username") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("connect without username: %v", err)
	}
	if out, err := run("apps", "connect", "crm", "--base-url", fake.URL, "--auth", "basic", "--settings", `{"username":"lanyard"}`, "--secret-env", "CRM_PASSWORD"); err != nil || strings.Contains(out, "pw") {
		t.Fatalf("connect: %q %v", out, err)
	}
	if out, err := run("apps", "connectors"); err != nil || !strings.Contains(out, "basic") {
		t.Fatalf("connectors: %q %v", out, err)
	}
	if out, err := run("apps", "reconcile"); err != nil || !strings.Contains(out, "1") {
		t.Fatalf("reconcile: %q %v", out, err)
	}
	if out, err := run("apps", "orphans"); err != nil || !strings.Contains(out, "ghost@acme.test") || !strings.Contains(out, "no_person") {
		t.Fatalf("orphans: %q %v", out, err)
	}
}
