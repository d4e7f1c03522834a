package hrsync_test

import (
	"encoding/json"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// HR sync prompts once per failing streak: SyncFailingAfter bad runs in a row
// give one hr.sync_failing, further failures give nothing more, and the first
// good run gives one hr.sync_recovered (and re-arms the next streak).
func TestSyncFailingAndRecoveredOncePerStreak(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(10, true)})
		if _, run := h.connect(); run.Status != store.HRRunSucceeded {
			t.Fatalf("connect run %+v", run)
		}
		h.events()
		// A 5xx on every members call outlasts the client's retries, so each run stops early.
		failRun := func() {
			t.Helper()
			h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 503, Times: 1000})
			defer h.fake.ClearFaults()
			if run := h.sync("full"); run.Status != store.HRRunFailed && run.Status != store.HRRunPartial {
				t.Fatalf("run not failed: %+v", run)
			}
		}
		streak := func(name string) {
			for i := 1; i <= hrsync.SyncFailingAfter+2; i++ {
				failRun()
				c := countTypes(h.events())
				want := 0
				if i == hrsync.SyncFailingAfter {
					want = 1
				}
				if c[domain.EventHRSyncFailing] != want || c[domain.EventHRSyncRecovered] != 0 {
					t.Fatalf("%s: failure %d events %v", name, i, c)
				}
			}
			if run := h.sync("full"); run.Status != store.HRRunSucceeded {
				t.Fatalf("%s: good run %+v", name, run)
			}
			evs := h.events()
			if c := countTypes(evs); c[domain.EventHRSyncRecovered] != 1 || c[domain.EventHRSyncFailing] != 0 {
				t.Fatalf("%s: recovery events %v", name, c)
			}
			if run := h.sync("full"); run.Status != store.HRRunSucceeded {
				t.Fatalf("%s: second good run %+v", name, run)
			}
			if c := countTypes(h.events()); c[domain.EventHRSyncRecovered] != 0 {
				t.Fatalf("%s: recovered twice %v", name, c)
			}
		}
		streak("first streak")
		streak("second streak") // the recovery re-arms the prompt
	})
}

// The failing prompt names the connection and how many runs failed.
func TestSyncFailingPayload(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(10, true)})
		h.connect()
		h.events()
		h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 503, Times: 1000})
		var failing []domain.Event
		for i := 0; i < hrsync.SyncFailingAfter; i++ {
			h.sync("full")
			for _, ev := range h.events() {
				if ev.Type == domain.EventHRSyncFailing {
					failing = append(failing, ev)
				}
			}
		}
		if len(failing) != 1 {
			t.Fatalf("failing events %d", len(failing))
		}
		var p domain.HRConnectionPayload
		if err := json.Unmarshal(failing[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if c := h.conn(); p.ConnectionID != c.ID || p.Provider != c.Provider || p.Failures != hrsync.SyncFailingAfter || p.Reason == "" {
			t.Fatalf("payload %+v", p)
		}
	})
}
