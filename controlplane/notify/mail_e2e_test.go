package notify_test

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/fakeslack"
	"github.com/lanyardhq/lanyard/controlplane/notify/fakesmtp"
	"github.com/lanyardhq/lanyard/controlplane/notify/senders"
	"github.com/lanyardhq/lanyard/controlplane/notify/slack"
	"github.com/lanyardhq/lanyard/controlplane/notify/templates"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// mailHarness is an org with an admin, an email channel on a real SMTP server over
// loopback (STARTTLS + AUTH), the repository's templates, and a "public" web server at
// PublicURL that serves the enrollment links the engine hands out.
type mailHarness struct {
	*harness
	smtp  *fakesmtp.Server
	admin string
	site  *httptest.Server
}

func newMailHarness(t *testing.T, db *store.DB) *mailHarness {
	set, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	srv, err := fakesmtp.Start(ctx, fakesmtp.Options{Username: "lanyard", Password: "smtp-pass-0123"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	links := map[string]bool{}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := links[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "enrollment profile")
	}))
	t.Cleanup(site.Close)
	h := &mailHarness{smtp: srv, site: site}
	h.harness = &harness{t: t, ctx: domain.WithActor(ctx, domain.Actor{ID: "user:test"}), db: db, org: storetest.Org(t, db, domain.PlanPro)}
	cfg := fastConfig()
	cfg.PublicURL = site.URL
	enroll := func(_ context.Context, orgID, employeeID string) (string, string, error) {
		p := "/enroll/" + domain.NewID()
		mu.Lock()
		links[p] = true
		mu.Unlock()
		return site.URL + "/installers/dl/" + employeeID, site.URL + p, nil
	}
	h.eng = notify.New(notify.Deps{DB: db, Keys: keyring(t), Render: senders.Templates{Set: set}, Email: senders.Mail{Roots: srv.RootCAs()},
		Enroll: enroll, Config: cfg})
	if _, err := h.eng.CreateChannel(h.ctx, h.org.ID, notify.ChannelInput{Name: "mail", Kind: "email", Secret: "smtp-pass-0123",
		Email: &notify.EmailConfig{Host: "127.0.0.1", Port: srv.Port(), Username: "lanyard", From: "Lanyard <it@lanyard.test>"}}); err != nil {
		t.Fatal(err)
	}
	h.admin = "admin-" + domain.NewID()[30:] + "@lanyard.test"
	if err := store.CreateUser(h.ctx, db.SQL, &store.User{OrgID: h.org.ID, Email: h.admin, Name: "Ada Admin", Role: domain.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *mailHarness) waitMail(pred func(fakesmtp.Received) bool) fakesmtp.Received {
	h.t.Helper()
	var got fakesmtp.Received
	_, err := h.smtp.WaitFor(h.ctx, func(ms []fakesmtp.Received) bool {
		for _, m := range ms {
			if pred(m) {
				got = m
				return true
			}
		}
		return false
	})
	if err != nil {
		h.t.Fatalf("no such mail: %v", err)
	}
	return got
}

func to(addr string) func(fakesmtp.Received) bool {
	return func(m fakesmtp.Received) bool {
		for _, t := range m.To {
			if strings.EqualFold(t, addr) {
				return true
			}
		}
		return false
	}
}

func (h *mailHarness) employee(first, personal, work string, start time.Time) domain.Employee {
	h.t.Helper()
	d := domain.NewDate(start.Year(), start.Month(), start.Day())
	e := domain.Employee{OrgID: h.org.ID, Source: "manual", HR: domain.HRFields{FirstName: first, LastName: "Test", PersonalEmail: personal,
		WorkEmail: work, Status: domain.StatusActive, StartDate: &d}}
	if err := store.InsertEmployee(h.ctx, h.db.SQL, &e); err != nil {
		h.t.Fatal(err)
	}
	return e
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+`)

func TestHireSendsEnrollmentMailWithAWorkingLink(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newMailHarness(t, db)
		h.start()
		emp := h.employee("Grace", "grace.home@example.org", "grace@acme.test", time.Now().AddDate(0, 0, 10))
		h.event(domain.EventEmployeeHired, "employee", emp.ID, nil)

		// Before the start date the new hire's mail goes to the personal address.
		m := h.waitMail(to("grace.home@example.org"))
		var enroll string
		for _, l := range linkRE.FindAllString(m.Text, -1) {
			if strings.Contains(l, "/enroll/") {
				enroll = strings.TrimRight(l, ".,)")
			}
		}
		if enroll == "" || !strings.HasPrefix(enroll, h.site.URL) {
			t.Fatalf("no enrollment link under public-url in:\n%s", m.Text)
		}
		resp, err := http.Get(enroll)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", enroll, resp.StatusCode)
		}
		if !strings.HasPrefix(m.MessageID, "<nd_") || !strings.Contains(m.HTML, "Grace") {
			t.Fatalf("message: id %q html %q", m.MessageID, m.HTML)
		}
		// The admins are prompted too.
		a := h.waitMail(to(h.admin))
		if !strings.Contains(a.Subject+a.Text, "Grace") {
			t.Fatalf("admin prompt: %q\n%s", a.Subject, a.Text)
		}
		for _, got := range h.smtp.Messages() {
			if strings.Contains(string(got.Raw), "smtp-pass-0123") {
				t.Fatal("a message carries the SMTP password")
			}
		}
	})
}

func TestTerminationPromptsAdminsAndMailsRetrieval(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newMailHarness(t, db)
		h.start()
		emp := h.employee("Linus", "linus.home@example.org", "linus@acme.test", time.Now().AddDate(-2, 0, 0))
		h.event(domain.EventEmployeeTerminated, "employee", emp.ID, nil)
		a := h.waitMail(to(h.admin))
		if !strings.Contains(a.Subject+a.Text, "Linus") {
			t.Fatalf("admin prompt: %q", a.Subject)
		}
		// After the start date the employee's mail goes to the work address.
		r := h.waitMail(to("linus@acme.test"))
		if r.Text == "" || r.HTML == "" {
			t.Fatalf("retrieval mail without text or HTML: %+v", r)
		}
	})
}

// TestSMTPFailuresAreRetriedOrReported: each way SMTP fails is retried (transient) or
// recorded failed (permanent), and a healthy server gets the message once.
func TestSMTPFailuresAreRetriedOrReported(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newMailHarness(t, db)
		h.onlyRules(store.NotifyRule{Events: []string{"*"}, Audience: "employee"})
		h.start()
		cases := []struct {
			name  string
			email string
			setup func()
			heal  func()
			want  string
		}{
			{"451 then accepted", "a@acme.test", func() { h.smtp.FailNext(1, 451) }, nil, store.DeliveryDelivered},
			{"550 recipient refused", "b@acme.test", func() { h.smtp.RejectRecipient("b@acme.test", 550) }, nil, store.DeliveryFailed},
			{"malformed address", "not an address", func() {}, nil, store.DeliveryFailed},
			{"server hangs, then answers", "c@acme.test", func() { h.smtp.Hang(true) }, func() { h.smtp.Hang(false) }, store.DeliveryDelivered},
			{"server down, then back", "d@acme.test", func() { h.smtp.Close() }, func() {
				if err := h.smtp.Restart(h.ctx); err != nil {
					t.Fatal(err)
				}
			}, store.DeliveryDelivered},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				emp := h.employee("E", "", c.email, time.Now().AddDate(-1, 0, 0))
				c.setup()
				ev := h.event(domain.EventEmployeeTerminated, "employee", emp.ID, nil)
				if c.heal != nil {
					h.waitDeliveries(ev.ID, func(ds []store.Delivery) bool { return len(ds) == 1 && ds[0].Attempts >= 1 && ds[0].LastError != "" })
					c.heal()
				}
				ds := h.waitDeliveries(ev.ID, allIn(c.want))
				atts, err := store.DeliveryAttempts(h.ctx, db.SQL, ds[0].ID)
				if err != nil {
					t.Fatal(err)
				}
				if c.want == store.DeliveryFailed && len(atts) != 1 {
					t.Fatalf("a permanent failure was retried: %+v", atts)
				}
				if c.want == store.DeliveryDelivered {
					if len(atts) < 2 || atts[0].Outcome != "transient" {
						t.Fatalf("attempts: %+v", atts)
					}
					n := 0
					for _, m := range h.smtp.Messages() {
						if to(c.email)(m) {
							n++
						}
					}
					if n != 1 {
						t.Fatalf("%s got %d messages", c.email, n)
					}
				}
			})
		}
	})
}

// TestAdminPromptsReachEmailAndSlack: a held layoff and a wipe waiting for a second
// approval prompt the admins by email and in Slack (with a link back to the item); a
// Slack 429 is retried after its Retry-After.
func TestAdminPromptsReachEmailAndSlack(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newMailHarness(t, db)
		fs, err := fakeslack.Start(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		set, _ := templates.Load()
		h.eng = notify.New(notify.Deps{DB: db, Keys: keyring(t), Render: senders.Templates{Set: set}, Email: senders.Mail{Roots: h.smtp.RootCAs()},
			Slack: senders.Slack{Client: slack.New(nil)}, Config: func() notify.Config { c := fastConfig(); c.PublicURL = h.site.URL; return c }()})
		// The channels were created by the first engine with its own keyring: make them again.
		chs, _ := store.ListNotifyChannels(h.ctx, db.SQL, h.org.ID)
		for _, c := range chs {
			_ = store.DeleteNotifyChannel(h.ctx, db.SQL, h.org.ID, c.ID)
		}
		if _, err := h.eng.CreateChannel(h.ctx, h.org.ID, notify.ChannelInput{Name: "mail", Kind: "email", Secret: "smtp-pass-0123",
			Email: &notify.EmailConfig{Host: "127.0.0.1", Port: h.smtp.Port(), Username: "lanyard", From: "Lanyard <it@lanyard.test>"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.CreateChannel(h.ctx, h.org.ID, notify.ChannelInput{Name: "it-alerts", Kind: "slack", Secret: fs.URL("it")}); err != nil {
			t.Fatal(err)
		}
		h.start()
		dev := storetest.Device(t, db, h.org.ID, "C02WIPE0001")
		fs.Fail("it", 429, 1)
		cases := []struct {
			name    string
			typ     string
			subject string
			id      string
			payload map[string]any
			want    string
		}{
			{"held layoff", domain.EventHRTerminationsHeld, "org", h.org.ID, map[string]any{"count": 12}, "12"},
			{"wipe awaiting a second admin", domain.EventWipeApprovalPending, "device", dev.ID, map[string]any{"device_id": dev.ID}, "C02WIPE0001"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ev := h.event(c.typ, c.subject, c.id, c.payload)
				m := h.waitMail(func(m fakesmtp.Received) bool { return to(h.admin)(m) && strings.Contains(m.Text, c.want) })
				if !strings.Contains(m.Text, h.site.URL) {
					t.Fatalf("no link back in:\n%s", m.Text)
				}
				if _, err := fs.WaitFor(h.ctx, "it", func(ps []fakeslack.Post) bool {
					for _, p := range ps {
						if strings.Contains(string(p.Raw), c.want) {
							return true
						}
					}
					return false
				}); err != nil {
					t.Fatal(err)
				}
				h.waitDeliveries(ev.ID, allIn(store.DeliveryDelivered))
			})
		}
	})
}

// TestProducerPayloadsRender: the prompts render from the payloads their producers write
// (docs/events.md names), through the real templates.
func TestProducerPayloadsRender(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := newMailHarness(t, db)
	h.start()
	dev := storetest.Device(t, db, h.org.ID, "C02FAIL0001")
	cases := []struct {
		typ, subjectType, subjectID string
		payload                     map[string]any
		want                        string
	}{
		{domain.EventTaskCreated, "task", "t1", map[string]any{"task_id": "t1", "title": "Ship a monitor to Grace", "kind": "manual"}, "Ship a monitor to Grace"},
		{domain.EventDeviceCommandFailed, "device", dev.ID, map[string]any{"command_id": "c1", "device_id": dev.ID, "serial": dev.SerialNumber,
			"kind": "lock", "state": "expired", "reason": "the device never checked in"}, "C02FAIL0001"},
		{domain.EventMDMAPNsExpiring, "org", h.org.ID, map[string]any{"topic": "com.apple.mgmt.x", "days_left": 7}, "7"},
		{domain.EventHRSyncFailing, "hr_connection", "c1", map[string]any{"connection_id": "c1", "provider": "justworks", "reason": "401", "failures": 3}, "3"},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			ev := h.event(c.typ, c.subjectType, c.subjectID, c.payload)
			ds := h.waitDeliveries(ev.ID, func(ds []store.Delivery) bool {
				return len(ds) > 0 && (ds[0].State == store.DeliveryDelivered || ds[0].State == store.DeliveryFailed)
			})
			if ds[0].State != store.DeliveryDelivered {
				t.Fatalf("%s: %s", ds[0].State, ds[0].LastError)
			}
			h.waitMail(func(m fakesmtp.Received) bool { return to(h.admin)(m) && strings.Contains(m.Text, c.want) })
		})
	}
}

// The daily digest (opt-in: a rule on digest.due) lists what waits for a person, read
// when it is sent: the open tasks, overdue first.
func TestDigestListsWhatWaits(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newMailHarness(t, db)
		h.onlyRules(store.NotifyRule{Events: []string{domain.EventDigestDue}, Audience: "admins", MinRole: string(domain.RoleIT)})
		past := time.Now().Add(-48 * time.Hour)
		later := time.Now().Add(48 * time.Hour)
		emp := storetest.Employee(t, db, h.org.ID, "Ada")
		if err := db.InTx(h.ctx, func(tx *sql.Tx) error {
			w := store.Workflow{OrgID: h.org.ID, Kind: "offboarding", EmployeeID: emp.ID, State: "running", RunAt: past}
			if err := store.InsertWorkflow(h.ctx, tx, &w, []string{"manual"}); err != nil {
				return err
			}
			for _, tk := range []store.LifecycleTask{
				{Title: "Order a monitor for Grace", DueAt: &later},
				{Title: "Collect the badge from Ada", DueAt: &past},
			} {
				tk.OrgID, tk.WorkflowID, tk.StepID, tk.Kind = h.org.ID, w.ID, w.Steps[0].ID, "manual"
				if err := store.InsertTask(h.ctx, tx, &tk); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		h.start()
		h.event(domain.EventDigestDue, "org", h.org.ID, map[string]any{"date": time.Now().Format(time.DateOnly)})
		m := h.waitMail(func(m fakesmtp.Received) bool { return to(h.admin)(m) && strings.Contains(m.Subject, "digest") })
		badge, monitor := strings.Index(m.Text, "Collect the badge from Ada"), strings.Index(m.Text, "Order a monitor for Grace")
		if badge < 0 || monitor < 0 || badge > monitor || !strings.Contains(m.Text, "2 open tasks (1 overdue)") || !strings.Contains(m.Text, "overdue since") {
			t.Fatalf("digest:\n%s", m.Text)
		}
	})
}
