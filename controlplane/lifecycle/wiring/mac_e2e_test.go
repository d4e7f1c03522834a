package wiring_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakedep"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// appleMDM is the real Apple MDM service behind an HTTP server, with a fake ABM (DEP)
// and a fake APNs, set up for one org (push certificate and ABM token uploaded).
type appleMDM struct {
	svc  *apple.Service
	apns *fakeapns.Server
	dep  *fakedep.Server
	base string
}

func startAppleMDM(ctx context.Context, t *testing.T, db *store.DB, kr *secrets.Keyring, orgID string) *appleMDM {
	t.Helper()
	m := &appleMDM{apns: fakeapns.New(), dep: fakedep.New()}
	t.Cleanup(m.apns.Close)
	t.Cleanup(m.dep.Close)
	srv := httptest.NewUnstartedServer(nil)
	m.base = "http://" + srv.Listener.Addr().String()
	var err error
	m.svc, err = apple.New(ctx, apple.Config{DB: db, Keyring: kr, BaseURL: m.base, Logger: slog.New(slog.DiscardHandler), APNsURL: m.apns.URL(),
		APNsRootCAs: m.apns.RootCAs(), CAKeyBits: 2048, DEPURL: m.dep.URL(), RepushInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if db.Dialect == store.Postgres {
		schema := apple.NanoMDMSchema(db.Schema)
		t.Cleanup(func() { _, _ = db.SQL.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`) })
	}
	t.Cleanup(m.svc.Close)
	srv.Config.Handler = m.svc.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	topic := "com.apple.mgmt.External." + domain.NewID()
	certPEM, keyPEM, _ := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
	if _, err := m.svc.UploadPushCert(ctx, orgID, "token:test", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	kp, err := m.svc.CreateADEKeypair(ctx, orgID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(kp)
	cert, _ := x509.ParseCertificate(b.Bytes)
	tok, _ := m.dep.MakeServerToken(cert)
	if _, err := m.svc.UploadADEToken(ctx, orgID, tok, ""); err != nil {
		t.Fatal(err)
	}
	return m
}

// mdmCommand is the device's last Apple MDM command of a request type.
func (w *world) mdmCommand(deviceID, requestType string) (store.MDMCommand, bool) {
	cs, _, _ := w.db.MDMListCommands(context.Background(), w.org.ID, deviceID, store.Page{})
	var last store.MDMCommand
	found := false
	for _, c := range cs {
		if c.RequestType == requestType {
			last, found = c, true
		}
	}
	return last, found
}

// TestJustworksToMacEndToEnd is issue 7's end-to-end test with the simulated Mac, on
// both stores, with a fake clock shared by lifecycle, HR sync and fake Justworks:
// Justworks hire → HR sync (webhook) → the stocked Mac is assigned → its serial gets the
// ADE profile at the fake ABM → apps granted on fake SCIM → the Mac enrolls from Setup
// Assistant (real Apple MDM, fake APNs) and is linked to the hire → termination scheduled
// in Justworks → at the date apps deactivated on SCIM, DeviceLock acknowledged with the
// escrowed PIN → retrieval → receipt → EraseDevice acknowledged → cleaning →
// ready_for_redeploy → the Mac goes to the next Justworks hire (ADE profile again).
func TestJustworksToMacEndToEnd(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newMacWorld(t, db)
		const serial = "C02LIFE0001"
		w.mac.dep.AddDevice(serial, "MacBook Air")
		mac := domain.Device{OrgID: w.org.ID, SerialNumber: serial, Vendor: "apple", Model: "MacBook Air", Platform: domain.PlatformMacOS, EquipmentType: "laptop"}
		if err := db.CreateDevice(ctx, &mac); err != nil || mac.State != domain.StateInStock {
			t.Fatalf("stocked Mac = %+v %v", mac, err)
		}

		// Hire in Justworks, inside the 5-day lead time: onboarding runs at once.
		w.hire("mae", w.clock.Now().AddDate(0, 0, 3))
		var mae domain.Employee
		w.waitFor("HR sync imports the hire", func() bool { var ok bool; mae, ok = w.employeeByEmail("mae@acme.example.com"); return ok })
		if mae.Source != "justworks" || mae.ExternalID == "" {
			t.Fatalf("hire = %+v", mae)
		}
		w.waitFor("enroll step done", func() bool {
			return w.step(mae.ID, lifecycle.KindOnboarding, lifecycle.StepEnrollDevice) == "succeeded"
		})
		if d, _ := db.GetDevice(ctx, w.org.ID, mac.ID); d.AssignedEmployeeID != mae.ID {
			t.Fatalf("Mac holder = %q, want %q", d.AssignedEmployeeID, mae.ID)
		}
		if w.mac.dep.AssignedProfile(serial) == "" {
			t.Fatal("no ADE profile assigned at ABM")
		}
		var enroll map[string]any
		for _, s := range w.workflow(mae.ID, lifecycle.KindOnboarding).Steps {
			if s.Kind == string(lifecycle.StepEnrollDevice) {
				_ = json.Unmarshal(s.Output, &enroll)
			}
		}
		if enroll["method"] != "ade" || enroll["serial_number"] != serial {
			t.Fatalf("enroll output = %v", enroll)
		}
		w.waitFor("apps granted", func() bool { u, ok := w.scim.UserByName("mae@acme.example.com"); return ok && u.Active })

		// First boot: Setup Assistant enrolls the Mac.
		m := macsim.New(serial)
		w.mac.apns.Subscribe(m.Token(), m.Wake)
		t.Cleanup(m.Wait)
		prof, err := m.FetchADEProfile(ctx, w.mac.base+"/mdm/ade/enroll")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Enroll(ctx, prof); err != nil {
			t.Fatal(err)
		}
		w.waitFor("onboarding done", func() bool { return w.workflow(mae.ID, lifecycle.KindOnboarding).State == "succeeded" })
		enr, err := db.MDMGetEnrollmentByDevice(ctx, w.org.ID, mac.ID)
		if err != nil || enr.SerialNumber != serial || enr.EmployeeID != mae.ID {
			t.Fatalf("enrollment = %+v %v", enr, err)
		}
		if ch, _ := (wiring.Commander{DB: db}).Channel(ctx, w.org.ID, mac.ID); ch != store.ChannelMDM {
			t.Fatalf("channel = %q", ch)
		}

		// Termination scheduled in Justworks for 10 days from now; jump to the date.
		term := w.clock.Now().AddDate(0, 0, 10)
		if _, err := w.fake.ScheduleTermination(mae.ExternalID, term.Format(time.DateOnly)); err != nil {
			t.Fatal(err)
		}
		w.waitFor("offboarding scheduled", func() bool { return w.workflow(mae.ID, lifecycle.KindOffboarding).State == "scheduled" })
		off := w.workflow(mae.ID, lifecycle.KindOffboarding)
		if off.RunAt.Sub(w.clock.Now()) < 9*24*time.Hour {
			t.Fatalf("offboarding run_at = %s, now %s", off.RunAt, w.clock.Now())
		}
		if locked, _ := m.Locked(); locked {
			t.Fatal("Mac locked before the termination date")
		}
		w.advance(off.RunAt.Sub(w.clock.Now()) + time.Minute)
		w.waitFor("retrieval open", func() bool { return w.step(mae.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting" })
		if u, _ := w.scim.UserByName("mae@acme.example.com"); u.Active {
			t.Fatal("SCIM user still active")
		}
		locked, pin := m.Locked()
		if !locked || len(pin) != 6 {
			t.Fatalf("Mac locked = %v, PIN %q", locked, pin)
		}
		lock, ok := w.mdmCommand(mac.ID, apple.ReqDeviceLock)
		if !ok || lock.State != store.MDMCmdDone {
			t.Fatalf("DeviceLock = %+v", lock)
		}
		if escrowed, err := w.mac.svc.RevealPIN(lock); err != nil || escrowed != pin {
			t.Fatalf("PIN on the Mac %q, escrowed %q (%v)", pin, escrowed, err)
		}
		cmds, _, _ := db.ListDeviceCommands(ctx, w.org.ID, mac.ID, store.Page{})
		if len(cmds) != 1 || cmds[0].Type != store.CommandLock || cmds[0].Channel != store.ChannelMDM || cmds[0].State != store.CommandDone ||
			!strings.Contains(string(cmds[0].Result), `"pin_escrowed":true`) {
			t.Fatalf("lock command = %+v", cmds)
		}

		// The kit goes out, the Mac comes back: wipe over MDM, then cleaning.
		rs, _, _ := store.ListRetrievals(ctx, db.SQL, w.org.ID, store.RetrievalFilter{EmployeeID: mae.ID}, store.Page{})
		if len(rs) != 1 {
			t.Fatalf("retrievals = %+v", rs)
		}
		wh := store.Warehouse{OrgID: w.org.ID, Name: "Reno"}
		if err := db.InsertWarehouse(ctx, &wh); err != nil {
			t.Fatal(err)
		}
		if _, err := w.eng.KitSent(ctx, w.org.ID, rs[0].ID, "1Z-KIT"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.eng.Receive(ctx, w.org.ID, rs[0].ID, lifecycle.IntakeInput{WarehouseID: wh.ID, Condition: "good"}); err != nil {
			t.Fatal(err)
		}
		w.waitFor("cleaning", func() bool { return w.step(mae.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "waiting" })
		if !m.Erased() {
			t.Fatal("Mac not erased")
		}
		if erase, ok := w.mdmCommand(mac.ID, apple.ReqEraseDevice); !ok || erase.State != store.MDMCmdDone {
			t.Fatalf("EraseDevice = %+v", erase)
		}
		ts, _, _ := db.ListTasks(ctx, w.org.ID, store.TaskFilter{WorkflowID: off.ID, State: "open"}, store.Page{})
		if len(ts) != 1 || ts[0].Kind != "clean_device" {
			t.Fatalf("open tasks = %+v", ts)
		}
		if _, err := w.eng.CompleteTask(ctx, w.org.ID, ts[0].ID, "cleaned"); err != nil {
			t.Fatal(err)
		}
		w.waitFor("offboarding done", func() bool { return w.workflow(mae.ID, lifecycle.KindOffboarding).State == "succeeded" })
		if d, _ := db.GetDevice(ctx, w.org.ID, mac.ID); d.State != domain.StateReadyForRedeploy || d.AssignedEmployeeID != "" {
			t.Fatalf("Mac after cleaning: state %s, holder %q", d.State, d.AssignedEmployeeID)
		}

		// The next Justworks hire gets the Mac, and its serial the ADE profile again.
		assigns := w.mac.dep.Calls("/profile/devices")
		w.hire("alan", w.clock.Now().AddDate(0, 0, 2))
		var alan domain.Employee
		w.waitFor("next hire imported", func() bool { var ok bool; alan, ok = w.employeeByEmail("alan@acme.example.com"); return ok })
		w.waitFor("Mac redeployed", func() bool {
			d, _ := db.GetDevice(ctx, w.org.ID, mac.ID)
			return d.AssignedEmployeeID == alan.ID
		})
		w.waitFor("next hire's enroll step done", func() bool {
			return w.step(alan.ID, lifecycle.KindOnboarding, lifecycle.StepEnrollDevice) == "succeeded"
		})
		if n := w.mac.dep.Calls("/profile/devices"); n <= assigns {
			t.Fatalf("ADE profile assignments %d → %d", assigns, n)
		}
	})
}
