package lifecycle_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// reactivationJobs lists the reactivation jobs in River's table.
func (h *harness) reactivationJobs() []*rivertype.JobRow {
	h.t.Helper()
	res, err := h.river.JobList(context.Background(), river.NewJobListParams().Kinds(lifecycle.ReactivateArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
			rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled))
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Jobs
}

// waitReactivationJobs waits until every reactivation job has ended and returns them.
func (h *harness) waitReactivationJobs() []*rivertype.JobRow {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs := h.reactivationJobs()
		ended := len(jobs) > 0
		for _, j := range jobs {
			ended = ended && (j.State == rivertype.JobStateCompleted || j.State == rivertype.JobStateDiscarded || j.State == rivertype.JobStateCancelled)
		}
		if ended {
			return jobs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("reactivation jobs did not end: %+v\n%s", jobs, h.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reactivatedApps returns the apps of the one lifecycle.apps.reactivated audit of w.
func (h *harness) reactivatedApps(workflowID string) map[string]lifecycle.AppResult {
	h.t.Helper()
	es, _, err := h.db.ListAudit(context.Background(), h.org.ID, store.AuditFilter{Action: "lifecycle.apps.reactivated", TargetID: workflowID}, store.Page{Limit: 10})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(es) != 1 {
		h.t.Fatalf("reactivation audits of %s = %d, want 1", workflowID, len(es))
	}
	var after struct {
		Apps []lifecycle.AppResult `json:"apps"`
	}
	if err := json.Unmarshal(es[0].After, &after); err != nil {
		h.t.Fatal(err)
	}
	m := map[string]lifecycle.AppResult{}
	for _, a := range after.Apps {
		m[a.App] = a
	}
	return m
}

// offboarded onboards first with every connected app and terminates them until the
// revoke step suspended their accounts on servers.
func (h *harness) offboarded(first string, servers ...*fakescim.Server) domain.Employee {
	h.t.Helper()
	e, _ := h.onboarded(first, "SER-"+strings.ToUpper(first), "agent")
	h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
	h.pump("suspended", func() bool {
		for _, s := range servers {
			if isActive(s, e.HR.WorkEmail) {
				return false
			}
		}
		return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "succeeded"
	})
	return e
}

func (h *harness) cancelTermination(e *domain.Employee) {
	h.hrEvent(e, domain.EventEmployeeTerminationCanceled, func(e *domain.Employee) { e.HR.Status = domain.StatusActive })
}

// reactivateTasks lists w's open reactivate_app tasks (the cancel also opens unlock tasks).
func (h *harness) reactivateTasks(workflowID string) []store.LifecycleTask {
	var out []store.LifecycleTask
	for _, t := range h.openTasks(workflowID) {
		if t.Kind == "reactivate_app" {
			out = append(out, t)
		}
	}
	return out
}

func isActive(s *fakescim.Server, userName string) bool {
	u, ok := s.UserByName(userName)
	return ok && u.Active
}

// TestReactivationSurvivesACrashAfterTheCancel: the cancel commits while the app is
// down and the process dies before any reactivation runs (River stopped); a fresh
// engine and River find the job the cancel's transaction wrote and reactivate the
// account, once.
func TestReactivationSurvivesACrashAfterTheCancel(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		e := h.offboarded("cr", h.scim)
		if err := h.river.Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		h.scim.SetDown(true)
		h.cancelTermination(&e)
		if n, err := h.eng.ConsumeOutbox(ctx); err != nil || n == 0 {
			t.Fatalf("consume the cancel: %d, %v", n, err)
		}
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		if w.State != "cancelled" || isActive(h.scim, "cr@acme.test") || h.auditCount("lifecycle.apps.reactivated", w.ID) != 0 {
			t.Fatalf("before the restart: workflow %s, active %v", w.State, isActive(h.scim, "cr@acme.test"))
		}
		if jobs := h.reactivationJobs(); len(jobs) != 1 || jobs[0].State != rivertype.JobStateAvailable {
			t.Fatalf("the cancel's transaction left no reactivation job: %+v", jobs)
		}
		// The process is gone; the app is back; a new one starts.
		h.scim.SetDown(false)
		patches := h.scim.RequestsByMethod("PATCH")
		h.eng = h.newEngine()
		h.river = startRiver(t, db, h.eng)
		h.pump("reactivated", func() bool {
			return isActive(h.scim, "cr@acme.test") && h.auditCount("lifecycle.apps.reactivated", w.ID) > 0
		})
		h.waitReactivationJobs()
		if n := h.scim.RequestsByMethod("PATCH") - patches; n != 1 {
			t.Fatalf("reactivation PATCHes = %d, want 1", n)
		}
		if r := h.reactivatedApps(w.ID)["github"]; r.Outcome != "done" || r.Action != "reactivated" {
			t.Fatalf("github = %+v", r)
		}
	})
}

// TestReactivationRetriesTransientFailures: a target answering 503, or 429 with a
// Retry-After, a few times is retried with backoff (at least the Retry-After) until
// the account is back: one audit, no task.
func TestReactivationRetriesTransientFailures(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		retryAfter string
		wait       time.Duration
	}{
		{"503", 503, "", 0},
		{"429 with Retry-After", 429, "1", time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.EachDB(t, func(t *testing.T, db *store.DB) {
				const failures = 3
				h := newHarness(t, db, harnessOpts{})
				h.connectSCIM("github", "engineering")
				e := h.offboarded("tr", h.scim)
				h.scim.FailNext(failures, tc.status, tc.retryAfter, "", "try later")
				h.cancelTermination(&e)
				w := h.workflow(e.ID, lifecycle.KindOffboarding)
				h.pump("reactivated", func() bool {
					return isActive(h.scim, "tr@acme.test") && h.auditCount("lifecycle.apps.reactivated", w.ID) > 0
				})
				jobs := h.waitReactivationJobs()
				if len(jobs) != 1 || jobs[0].State != rivertype.JobStateCompleted || jobs[0].Attempt != failures+1 || len(jobs[0].Errors) != failures {
					t.Fatalf("job = %+v", jobs)
				}
				// Each retry waited at least the target's Retry-After.
				last := jobs[0].Errors[failures-1].At
				if tc.wait > 0 && jobs[0].AttemptedAt.Sub(last) < tc.wait {
					t.Fatalf("retried %s after the 429, Retry-After %s", jobs[0].AttemptedAt.Sub(last), tc.wait)
				}
				if r := h.reactivatedApps(w.ID)["github"]; r.Outcome != "done" || r.Action != "reactivated" {
					t.Fatalf("github = %+v", r)
				}
				if ts := h.reactivateTasks(w.ID); len(ts) != 0 {
					t.Fatalf("tasks = %+v", ts)
				}
			})
		})
	}
}

// TestReactivationPermanentFailureIsAManualTask: an app that rejects the reactivation
// gets one manual task naming it and its reason, without retries; the other app comes
// back and the audit has both outcomes.
func TestReactivationPermanentFailureIsAManualTask(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		fakes := startFakes(t, 2)
		h.connectFake("app1", fakes[0])
		h.connectFake("app2", fakes[1])
		e := h.offboarded("pm", fakes...)
		fakes[1].FailNextOn("PATCH", 1000, 400, "", "invalidValue", "account is on legal hold")
		h.cancelTermination(&e)
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		h.pump("settled", func() bool { return h.auditCount("lifecycle.apps.reactivated", w.ID) > 0 })
		jobs := h.waitReactivationJobs()
		if len(jobs) != 1 || jobs[0].State != rivertype.JobStateCompleted || jobs[0].Attempt != 1 {
			t.Fatalf("a rejection was retried: %+v", jobs)
		}
		res := h.reactivatedApps(w.ID)
		if res["app1"].Outcome != "done" || !isActive(fakes[0], "pm@acme.test") {
			t.Fatalf("app1 = %+v", res["app1"])
		}
		if res["app2"].Outcome != "blocked" || !strings.Contains(res["app2"].Error, "legal hold") || isActive(fakes[1], "pm@acme.test") {
			t.Fatalf("app2 = %+v", res["app2"])
		}
		tasks := h.reactivateTasks(w.ID)
		if len(tasks) != 1 || tasks[0].SubjectID != "app2" || tasks[0].ID != res["app2"].ManualTask ||
			!strings.Contains(tasks[0].Detail, "legal hold") || !strings.Contains(tasks[0].Title, "app2") {
			t.Fatalf("tasks = %+v", tasks)
		}
		if h.auditCount("lifecycle.task.created", tasks[0].ID) != 1 {
			t.Fatal("the task was not audited once")
		}
	})
}

// TestReactivationRetryCallsOnlyTheRest: one app is reactivated, the other is down;
// the retries never call the first again, and a later rehire of the same person
// writes no second audit.
func TestReactivationRetryCallsOnlyTheRest(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		fakes := startFakes(t, 2)
		h.connectFake("app1", fakes[0])
		h.connectFake("app2", fakes[1])
		e := h.offboarded("pr", fakes...)
		gets, patches := fakes[0].RequestsByMethod("GET"), fakes[0].RequestsByMethod("PATCH")
		fakes[1].FailNext(2, 503, "", "", "maintenance")
		h.cancelTermination(&e)
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		h.pump("reactivated", func() bool { return h.auditCount("lifecycle.apps.reactivated", w.ID) > 0 })
		jobs := h.waitReactivationJobs()
		if len(jobs) != 1 || jobs[0].Attempt != 3 {
			t.Fatalf("jobs = %+v", jobs)
		}
		if g, p := fakes[0].RequestsByMethod("GET")-gets, fakes[0].RequestsByMethod("PATCH")-patches; g != 1 || p != 1 {
			t.Fatalf("app1 was called again on retry: %d GET, %d PATCH", g, p)
		}
		res := h.reactivatedApps(w.ID)
		if res["app1"].Action != "reactivated" || res["app2"].Action != "reactivated" || !isActive(fakes[1], "pr@acme.test") {
			t.Fatalf("results = %+v", res)
		}
		// The same offboarding's reactivation is finished: a rehire finds nothing to do.
		h.hrEvent(&e, domain.EventEmployeeRehired, nil)
		if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		h.waitReactivationJobs()
		if n := h.auditCount("lifecycle.apps.reactivated", w.ID); n != 1 || len(h.reactivateTasks(w.ID)) != 0 {
			t.Fatalf("after the rehire: %d audits, tasks %+v", n, h.reactivateTasks(w.ID))
		}
	})
}
