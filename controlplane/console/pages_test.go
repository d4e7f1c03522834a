package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// Every page renders for a viewer with real data behind it, and a model name holding
// markup stays text (html/template escapes it; the CSP would refuse it anyway).
func TestPagesRenderAndEscape(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	d := domain.Device{OrgID: e.org.ID, SerialNumber: "XSS-1", Vendor: "apple", Model: evil, Platform: domain.PlatformMacOS, EquipmentType: "laptop"}
	if err := e.srv.DB.CreateDevice(ctx, &d); err != nil {
		t.Fatal(err)
	}
	emp := storetest.Employee(t, e.srv.DB, e.org.ID, "Ada")
	if _, err := e.srv.DB.AssignDevice(ctx, e.org.ID, d.ID, emp.ID); err != nil {
		t.Fatal(err)
	}
	admin := e.client(domain.RoleAdmin)
	for _, path := range []string{"/", "/devices", "/devices?q=XSS", "/devices/" + d.ID, "/devices/" + d.ID + "/secrets",
		"/people", "/people?q=Ada&status=active", "/people/" + emp.ID, "/people/" + emp.ID + "/offboard"} {
		t.Run(path, func(t *testing.T) {
			p := admin.get(path)
			if p.Status != http.StatusOK {
				t.Fatalf("%d: %s", p.Status, p.Body)
			}
			if strings.Contains(p.Body, "<script>alert") || strings.Contains(p.Body, "<img src=x") {
				t.Fatalf("markup from a device model reached the page unescaped")
			}
			if strings.Contains(path, d.ID) && !strings.Contains(p.Body, "XSS-1") {
				t.Fatalf("device not shown")
			}
		})
	}
	if p := admin.get("/devices/" + d.ID); !strings.Contains(p.Body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("model not shown as text: %s", p.Body)
	}
	// htmx asks for the table only.
	req, _ := http.NewRequest("GET", e.http.URL+"/devices?q=XSS", nil)
	req.Header.Set("HX-Request", "true")
	if p := admin.do(req); p.Status != 200 || strings.Contains(p.Body, "<html") || !strings.Contains(p.Body, `id="results"`) {
		t.Errorf("htmx fragment: %d %s", p.Status, p.Body)
	}
	if p := admin.get("/devices/" + domain.NewID()); p.Status != http.StatusNotFound || !strings.Contains(p.Body, `role="alert"`) {
		t.Errorf("unknown device: %d", p.Status)
	}
}

func TestEmptyStatesSayWhatToDo(t *testing.T) {
	e := newEnv(t)
	v := e.client(domain.RoleViewer)
	for path, want := range map[string]string{
		"/devices":       "Devices appear when the agent enrolls them",
		"/people":        "connect Justworks",
		"/devices?q=zzz": "Clear the filters",
	} {
		if p := v.get(path); p.Status != 200 || !strings.Contains(p.Body, want) {
			t.Errorf("%s: %d, want %q in %s", path, p.Status, want, p.Body)
		}
	}
}

// The forms do what they say through the API: lock makes a command, wipe with the typed
// serial is recorded, assign and unassign change the holder.
func TestDeviceFormsCallTheAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := storetest.Device(t, e.srv.DB, e.org.ID, "FORM-1")
	emp := storetest.Employee(t, e.srv.DB, e.org.ID, "Grace")
	it := e.client(domain.RoleIT)
	if p := it.post("/devices/"+d.ID+"/assign", url.Values{"employee": {emp.HR.WorkEmail}}); p.Status != http.StatusSeeOther {
		t.Fatalf("assign: %d %s", p.Status, p.Body)
	}
	got, err := e.srv.DB.GetDevice(ctx, e.org.ID, d.ID)
	if err != nil || got.AssignedEmployeeID != emp.ID {
		t.Fatalf("after assign: %+v %v", got, err)
	}
	p := it.get("/devices/" + d.ID)
	if !strings.Contains(p.Body, "Device assigned.") || !strings.Contains(p.Body, "Grace") {
		t.Errorf("flash or holder missing: %s", p.Body)
	}
	if p := it.post("/devices/"+d.ID+"/assign", url.Values{"employee": {"nobody@example.com"}}); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("assign to an unknown email: %d", p.Status)
	}
	if p := it.post("/devices/"+d.ID+"/lock", url.Values{"message": {"Return to IT"}, "idempotency_key": {"k1"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("lock: %d %s", p.Status, p.Body)
	}
	// The same form sent twice is one command (the idempotency key of the rendering).
	it.post("/devices/"+d.ID+"/lock", url.Values{"message": {"Return to IT"}, "idempotency_key": {"k1"}})
	cmds, _, err := e.srv.DB.ListDeviceCommands(ctx, e.org.ID, d.ID, store.Page{Limit: 10})
	if err != nil || len(cmds) != 1 || cmds[0].Type != "lock" || cmds[0].Params["message"] != "Return to IT" {
		t.Fatalf("commands: %+v %v", cmds, err)
	}
	// A wipe with the wrong serial is the API's refusal, shown.
	admin := e.client(domain.RoleAdmin)
	if p := admin.post("/devices/"+d.ID+"/wipe", url.Values{"confirm": {"WRONG"}}); p.Status < 400 || !strings.Contains(p.Body, "serial") {
		t.Errorf("wipe with wrong serial: %d %s", p.Status, p.Body)
	}
}
