package wiring_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakedep"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestMacADEEndToEnd uses the real Apple MDM service (fake ABM, fake APNs, a simulated
// Mac): hire → the stocked Mac's serial gets the ADE profile at ABM → the Mac enrolls
// from Setup Assistant → onboarding completes on its enrollment → termination → the
// lock goes over MDM (DeviceLock with a Lanyard PIN, escrowed) → retrieval → receipt →
// EraseDevice over MDM → cleaning → ready for redeploy.
func TestMacADEEndToEnd(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		quiet := slog.New(slog.DiscardHandler)
		kr, _ := secrets.New(secrets.NewKey())
		apns := fakeapns.New()
		t.Cleanup(apns.Close)
		dep := fakedep.New()
		t.Cleanup(dep.Close)
		srv := httptest.NewUnstartedServer(nil)
		base := "http://" + srv.Listener.Addr().String()
		svc, err := apple.New(ctx, apple.Config{DB: db, Keyring: kr, BaseURL: base, Logger: quiet, APNsURL: apns.URL(),
			APNsRootCAs: apns.RootCAs(), CAKeyBits: 2048, DEPURL: dep.URL(), RepushInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if db.Dialect == store.Postgres {
			schema := apple.NanoMDMSchema(db.Schema)
			t.Cleanup(func() { _, _ = db.SQL.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`) })
		}
		t.Cleanup(svc.Close)
		srv.Config.Handler = svc.Handler()
		srv.Start()
		t.Cleanup(srv.Close)
		agent, err := agentsim.Start(ctx, db, kr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(agent.Close)
		agent.API.Commands.RegisterChannel(svc.Channel()) // as controlplane/server does

		org := domain.Org{Name: "Mac shop", Plan: domain.PlanPro, TimeZone: "UTC"}
		if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
			t.Fatal(err)
		}
		topic := "com.apple.mgmt.External." + domain.NewID()
		certPEM, keyPEM, _ := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
		if _, err := svc.UploadPushCert(ctx, org.ID, "token:test", certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		kp, err := svc.CreateADEKeypair(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(kp)
		cert, _ := x509.ParseCertificate(b.Bytes)
		tok, _ := dep.MakeServerToken(cert)
		if _, err := svc.UploadADEToken(ctx, org.ID, tok, ""); err != nil {
			t.Fatal(err)
		}
		const serial = "C02LIFE0001"
		dep.AddDevice(serial, "MacBook Air")
		mac := domain.Device{OrgID: org.ID, SerialNumber: serial, Vendor: "apple", Model: "MacBook Air", Platform: domain.PlatformMacOS, EquipmentType: "laptop"}
		if err := db.CreateDevice(ctx, &mac); err != nil {
			t.Fatal(err)
		}

		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		reg, handle := jobs.NewRegistry(), &jobs.Handle{}
		built := []any{agent.API, svc}
		eng := wiring.New(wiring.Deps{DB: db, Keys: kr, Jobs: handle, Registry: reg, Logger: quiet, Workers: 4,
			Built:   func() []any { return built },
			Options: []lifecycle.Option{lifecycle.WithConfig(lifecycle.Config{Recheck: 200 * time.Millisecond, CommandRecheck: 100 * time.Millisecond})}})
		client, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		handle.Set(client)
		if err := client.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = client.Stop(sctx)
		})
		go eng.Run(ctx, 50*time.Millisecond)
		wait := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for %s", what)
				}
				time.Sleep(25 * time.Millisecond)
			}
		}
		step := func(empID string, kind lifecycle.Kind, k lifecycle.StepKind) string {
			ws, _, _ := db.ListWorkflows(ctx, org.ID, store.WorkflowFilter{EmployeeID: empID, Kind: string(kind)}, store.Page{})
			if len(ws) == 0 {
				return ""
			}
			w, _ := db.GetWorkflow(ctx, org.ID, ws[0].ID)
			for _, s := range w.Steps {
				if s.Kind == string(k) {
					return s.State
				}
			}
			return ""
		}

		// Hire (as HR sync writes it).
		soon := time.Now().UTC().AddDate(0, 0, 3)
		start := domain.NewDate(soon.Year(), soon.Month(), soon.Day())
		emp := domain.Employee{OrgID: org.ID, Source: "justworks", ExternalID: "mem_mac", EquipmentType: "laptop", HR: domain.HRFields{
			FirstName: "Mae", LastName: "Jemison", WorkEmail: "mae@acme.test", Status: domain.StatusActive, Departments: []string{"Design"}, StartDate: &start}}
		writeHR := func(typ string, mutate func(*domain.Employee)) {
			t.Helper()
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				if mutate == nil {
					if err := store.InsertEmployee(ctx, tx, &emp); err != nil {
						return err
					}
				} else {
					mutate(&emp)
					if err := store.UpdateEmployee(ctx, tx, &emp); err != nil {
						return err
					}
				}
				return store.WriteEvent(ctx, tx, domain.Event{OrgID: org.ID, Type: typ, SubjectType: "employee", SubjectID: emp.ID})
			}); err != nil {
				t.Fatal(err)
			}
		}
		writeHR(domain.EventEmployeeHired, nil)
		wait("ADE profile assigned at ABM", func() bool { return dep.AssignedProfile(serial) != "" })
		wait("enroll step done", func() bool { return step(emp.ID, lifecycle.KindOnboarding, lifecycle.StepEnrollDevice) == "succeeded" })
		// First boot: Setup Assistant enrolls the Mac.
		m := macsim.New(serial)
		apns.Subscribe(m.Token(), m.Wake)
		t.Cleanup(m.Wait)
		prof, err := m.FetchADEProfile(ctx, base+"/mdm/ade/enroll")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Enroll(ctx, prof); err != nil {
			t.Fatal(err)
		}
		wait("onboarding done", func() bool { return step(emp.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "succeeded" })
		if ch, _ := (wiring.Commander{DB: db}).Channel(ctx, org.ID, mac.ID); ch != store.ChannelMDM {
			t.Fatalf("channel = %q", ch)
		}

		// Terminated today: lock over MDM with an escrowed PIN, retrieval.
		writeHR(domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		wait("retrieval open", func() bool { return step(emp.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting" })
		locked, pin := m.Locked()
		if !locked || len(pin) != 6 {
			t.Fatalf("Mac locked = %v, PIN %q", locked, pin)
		}
		cmds, _, _ := db.ListDeviceCommands(ctx, org.ID, mac.ID, store.Page{})
		if len(cmds) != 1 || cmds[0].Channel != store.ChannelMDM || !strings.Contains(string(cmds[0].Result), `"pin_escrowed":true`) {
			t.Fatalf("lock command = %+v", cmds)
		}
		rs, _, _ := store.ListRetrievals(ctx, db.SQL, org.ID, store.RetrievalFilter{EmployeeID: emp.ID}, store.Page{})
		wh := store.Warehouse{OrgID: org.ID, Name: "Reno"}
		if err := db.InsertWarehouse(ctx, &wh); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Receive(ctx, org.ID, rs[0].ID, lifecycle.IntakeInput{WarehouseID: wh.ID, Condition: "good"}); err != nil {
			t.Fatal(err)
		}
		wait("cleaning", func() bool { return step(emp.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "waiting" })
		if !m.Erased() {
			t.Fatal("Mac not erased")
		}
		ts, _, _ := db.ListTasks(ctx, org.ID, store.TaskFilter{State: "open", Assignee: "it"}, store.Page{})
		for _, tk := range ts {
			if tk.Kind == "clean_device" {
				if _, err := eng.CompleteTask(ctx, org.ID, tk.ID, "clean"); err != nil {
					t.Fatal(err)
				}
			}
		}
		wait("ready for redeploy", func() bool {
			d, _ := db.GetDevice(ctx, org.ID, mac.ID)
			return d.State == domain.StateReadyForRedeploy
		})
	})
}
