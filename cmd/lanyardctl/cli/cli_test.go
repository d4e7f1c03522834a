package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestCLIAgainstRealAPI(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	emp := storetest.Employee(t, db, o.ID, "Grace")
	tok := h.Token(o.ID, domain.RoleAdmin)
	cfgPath := filepath.Join(t.TempDir(), "ctl.json")
	t.Setenv("LANYARDCTL_CONFIG", cfgPath)

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out)
		return out.String(), err
	}
	if _, err := run("devices", "list"); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("before login: %v", err)
	}
	if out, err := run("login", "--url", h.Server.URL, "--token", tok); err != nil || !strings.Contains(out, "logged in") {
		t.Fatalf("login: %q %v", out, err)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("settings file mode: %v %v", fi, err)
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", "lyd_wrong"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("bad token login: %v", err)
	}
	out, err := run("devices", "create", "--serial", "CTL-1", "--vendor", "Dell", "--platform", "windows")
	if err != nil || !strings.Contains(out, "CTL-1") {
		t.Fatalf("create: %q %v", out, err)
	}
	out, err = run("devices", "list")
	if err != nil || !strings.Contains(out, "CTL-1") || !strings.Contains(out, "SERIAL") {
		t.Fatalf("list: %q %v", out, err)
	}
	devs, _, _ := db.ListDevices(context.Background(), o.ID, store.DeviceFilter{}, store.Page{})
	if len(devs) != 1 {
		t.Fatalf("devices in db: %d", len(devs))
	}
	if out, err = run("devices", "assign", devs[0].ID, emp.ID); err != nil || !strings.Contains(out, "assigned") {
		t.Fatalf("assign: %q %v", out, err)
	}
	if out, err = run("--json", "devices", "get", devs[0].ID); err != nil || !strings.Contains(out, `"assigned_employee_id": "`+emp.ID) {
		t.Fatalf("get --json: %q %v", out, err)
	}
	_, err = run("devices", "transition", devs[0].ID, "cleaning")
	if err == nil || !strings.Contains(err.Error(), "HTTP 409") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("invalid transition should be one readable line with the status: %v", err)
	}
	if out, err = run("audit", "--target", devs[0].ID); err != nil || !strings.Contains(out, "device.assigned") {
		t.Fatalf("audit: %q %v", out, err)
	}
	if out, err = run("employees", "list"); err != nil || !strings.Contains(out, "Grace Test") {
		t.Fatalf("employees: %q %v", out, err)
	}
	if out, err = run("tokens", "create", "ci", "--role", "viewer"); err != nil || !strings.Contains(out, "lyd_") {
		t.Fatalf("tokens create: %q %v", out, err)
	}
}
