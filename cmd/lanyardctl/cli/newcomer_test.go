package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// `employees get` takes a work email like `offboard` does, and `retrievals
// list` prints "-" for what the server omits, never "<nil>".
func TestEmployeeByEmailAndNoNilCells(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	eng := lifecycle.New(db)
	h := apitest.New(t, db, api.Options{}, eng.Routes())
	o := storetest.Org(t, db, domain.PlanPro)
	emp := storetest.Employee(t, db, o.ID, "Ada")
	dev := storetest.Device(t, db, o.ID, "RET-1")
	if err := store.InsertRetrieval(ctx, db.SQL, &store.Retrieval{OrgID: o.ID, EmployeeID: emp.ID, DeviceID: dev.ID, State: "requested"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{emp.ID, emp.HR.WorkEmail, strings.ToUpper(emp.HR.WorkEmail)} {
		out, err := run("employees", "get", ref)
		if err != nil || !strings.Contains(out, emp.ID) || !strings.Contains(out, "Ada") {
			t.Fatalf("employees get %s: %q %v", ref, out, err)
		}
	}
	if _, err := run("employees", "get", "nobody@acme.test"); err == nil || !strings.Contains(err.Error(), "no employee with work email") {
		t.Fatalf("unknown email: %v", err)
	}
	out, err := run("retrievals", "list")
	if err != nil || strings.Contains(out, "<nil>") || !strings.Contains(out, "requested") {
		t.Fatalf("retrievals list: %q %v", out, err)
	}
}
