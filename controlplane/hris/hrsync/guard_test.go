package hrsync_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// A provider that hands back a cursor it already sent (forever, or in a
// cycle) fails the run before the looping page is applied; the pages before it
// stay, nobody is terminated and the checkpoint does not move. The fake loops
// for 40 pages and then pages normally, so without the guard the run would
// "succeed" after reading the same members 40 times.
func TestCursorLoopFailsRun(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		for _, tc := range []struct {
			mode    string
			applied int // pages applied before the repeat shows
		}{
			{fakejustworks.CursorStuck, 1}, // page 1 → A; A → A
			{fakejustworks.CursorCycle, 2}, // page 1 → A; A → B; B → A
		} {
			t.Run(tc.mode+"/initial", func(t *testing.T) {
				h := newHarness(t, db, hopts{members: gen(100, true)}) // 4 pages of 25
				h.fake.SetCursorFault(fakejustworks.CursorFault{Mode: tc.mode, Pages: 40})
				_, run := h.connect()
				if run.Status != store.HRRunFailed || !strings.Contains(run.Error, "repeated a cursor") {
					t.Fatalf("run %s %q", run.Status, run.Error)
				}
				if run.Pages != tc.applied || run.Created != 25*tc.applied {
					t.Fatalf("applied %d pages, %d created; want %d pages", run.Pages, run.Created, tc.applied)
				}
				if n := h.countEmployees(domain.StatusActive); n != run.Created {
					t.Fatalf("%d employees stored, run says %d", n, run.Created)
				}
				if c := h.conn(); c.ImportDone || c.Checkpoint != nil {
					t.Fatalf("a failed import advanced the connection: %+v", c)
				}
				if got := h.fake.Stats().MemberPages; got > tc.applied+1 {
					t.Fatalf("%d pages fetched; the guard should stop at %d", got, tc.applied+1)
				}
			})
			t.Run(tc.mode+"/full", func(t *testing.T) {
				h := newHarness(t, db, hopts{members: gen(100, true)})
				if _, run := h.connect(); run.Status != store.HRRunSucceeded {
					t.Fatalf("import %+v", run)
				}
				before := h.conn().Checkpoint
				// A member left: a complete scan would terminate them, a looping one must not.
				if _, err := h.fake.ScheduleTermination(mid(99), date(-1)); err != nil {
					t.Fatal(err)
				}
				h.fake.SetCursorFault(fakejustworks.CursorFault{Mode: tc.mode, Pages: 40})
				run := h.sync(hrsync.KindFull)
				if run.Status != store.HRRunFailed || !strings.Contains(run.Error, "repeated a cursor") || run.Terminated != 0 {
					t.Fatalf("run %s terminated %d %q", run.Status, run.Terminated, run.Error)
				}
				if h.employee(mid(99)).HR.Status != domain.StatusActive {
					t.Fatal("an incomplete scan terminated a member")
				}
				if c := h.conn(); !c.Checkpoint.Equal(*before) {
					t.Fatalf("checkpoint moved %v → %v", before, c.Checkpoint)
				}
			})
		}
	})
}

// The page cap ends a listing that keeps going (fresh cursors every time) as
// failed, with the setting to raise named in the reason.
func TestPageCapFailsRun(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(100, true), cfg: func(c *hrsync.Config) { c.MaxPages = 3 }})
		_, run := h.connect()
		if run.Status != store.HRRunFailed || !strings.Contains(run.Error, "page cap") || !strings.Contains(run.Error, "hr-sync-max-pages") {
			t.Fatalf("run %s %q", run.Status, run.Error)
		}
		if run.Pages != 3 || run.Created != 75 || h.fake.Stats().MemberPages != 3 {
			t.Fatalf("pages %d created %d fetched %d", run.Pages, run.Created, h.fake.Stats().MemberPages)
		}
		if c := h.conn(); c.ImportDone {
			t.Fatal("import marked done")
		}
	})
}

// A person who shows up under a new member id (same work email and work id)
// is not created a second time: the run fails naming both ids and the
// employee, and nothing of the page is applied. A rehire under a new id (the
// old member terminated at the provider) still goes through.
func TestMemberIDChangeFailsRun(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(30, true)})
		if _, run := h.connect(); run.Status != store.HRRunSucceeded || run.Created != 30 {
			t.Fatalf("import %+v", run)
		}
		h.events()
		t.Run("id changed", func(t *testing.T) {
			old := h.employee(mid(3))
			nm, err := h.fake.ChangeMemberID(mid(3))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { // put the member back for the next cases
				h.fake.Load(append(without(h.fake.Members(), nm.ID), withID(nm, mid(3))))
			}()
			run := h.sync(hrsync.KindFull)
			if run.Status != store.HRRunFailed || !strings.Contains(run.Error, "member id changed under the same identity") ||
				!strings.Contains(run.Error, mid(3)) || !strings.Contains(run.Error, nm.ID) || !strings.Contains(run.Error, old.ID) {
				t.Fatalf("run %s %q", run.Status, run.Error)
			}
			if _, err := store.GetEmployeeByExternalID(h.ctx, db.SQL, h.org.ID, "justworks", nm.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("new id stored: %v", err)
			}
			if n := h.countEmployees(domain.StatusActive); n != 30 {
				t.Fatalf("%d active employees, want 30", n)
			}
			if evs := h.events(); len(evs) != 0 {
				t.Fatalf("events %v", countTypes(evs))
			}
		})
		t.Run("duplicate by webhook", func(t *testing.T) {
			dup, _ := h.fake.Member(mid(4))
			dup.ID = ""
			added := h.fake.AddMember(dup) // emits member.profile.created
			defer h.fake.Load(without(h.fake.Members(), added.ID))
			h.deliver()
			if rows := h.webhookRows(); rows["failed"] != 1 {
				t.Fatalf("webhook rows %v", rows)
			}
			if _, err := store.GetEmployeeByExternalID(h.ctx, db.SQL, h.org.ID, "justworks", added.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("duplicate stored: %v", err)
			}
			run := h.sync(hrsync.KindFull)
			if run.Status != store.HRRunFailed || !strings.Contains(run.Error, "both active") {
				t.Fatalf("run %s %q", run.Status, run.Error)
			}
		})
		t.Run("rehire under a new id is not an id change", func(t *testing.T) {
			// Terminated at the provider, rehired under a new id, no webhook
			// delivered: the scan sees both at once.
			if _, err := h.fake.ScheduleTermination(mid(5), date(-1)); err != nil {
				t.Fatal(err)
			}
			nm, err := h.fake.RehireAsNew(mid(5), date(0))
			if err != nil {
				t.Fatal(err)
			}
			run := h.sync(hrsync.KindFull)
			if run.Status != store.HRRunSucceeded {
				t.Fatalf("run %s %q", run.Status, run.Error)
			}
			if e := h.employee(nm.ID); e.HR.Status != domain.StatusActive {
				t.Fatalf("rehired %+v", e.HR)
			}
		})
	})
}

func without(ms []fakejustworks.Member, id string) []fakejustworks.Member {
	out := ms[:0:0]
	for _, m := range ms {
		if m.ID != id {
			out = append(out, m)
		}
	}
	return out
}

func withID(m fakejustworks.Member, id string) fakejustworks.Member {
	m.ID = id
	return m
}
