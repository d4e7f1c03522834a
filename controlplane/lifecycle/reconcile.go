package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Reconciliation (issue 16 item 6): every connector that can list its accounts is
// compared with Lanyard's people. An active account of a terminated person is
// suspended again and reported; an account nobody matches is reported. Orphans are
// stored with first and last seen (GET /api/v1/apps/orphans) and audited.

// AppReconcileInterval is how often every org's apps are reconciled.
const AppReconcileInterval = 6 * time.Hour

// ReconcileReport is one pass over one org.
type ReconcileReport struct {
	Apps    map[string]int `json:"apps"` // accounts listed per app
	Orphans int            `json:"orphans"`
	New     int            `json:"new"`
	Errors  []string       `json:"errors,omitempty"`
}

// ReconcileApps reconciles every listable connector of orgID.
func (e *Engine) ReconcileApps(ctx context.Context, orgID string) (ReconcileReport, error) {
	ctx = systemCtx(ctx)
	rep := ReconcileReport{Apps: map[string]int{}}
	if e.apps == nil {
		return rep, nil
	}
	reg, _, err := e.apps.Connectors(ctx, orgID)
	if err != nil {
		return rep, err
	}
	people, err := e.people(ctx, orgID)
	if err != nil {
		return rep, err
	}
	for app, c := range reg {
		if !c.Capabilities().List {
			continue
		}
		found, n, err := reconcileApp(ctx, c, people.forApp(c))
		rep.Apps[app] = n
		if err != nil {
			// One app's outage does not hide the others' orphans; its stored ones stay.
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		fresh, err := e.db.SaveAppOrphans(ctx, orgID, app, found, domain.Now())
		if err != nil {
			return rep, err
		}
		rep.Orphans += len(found)
		rep.New += fresh
	}
	return rep, nil
}

// peopleIndex finds an employee by Lanyard id (the externalId link) or work email.
type peopleIndex struct {
	byID, byEmail map[string]domain.Employee
}

func (e *Engine) people(ctx context.Context, orgID string) (peopleIndex, error) {
	ix := peopleIndex{byID: map[string]domain.Employee{}, byEmail: map[string]domain.Employee{}}
	cursor := ""
	for {
		page, next, err := e.db.ListEmployees(ctx, orgID, store.EmployeeFilter{}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return ix, err
		}
		for _, emp := range page {
			ix.byID[emp.ID] = emp
			if emp.HR.WorkEmail != "" {
				ix.byEmail[strings.ToLower(emp.HR.WorkEmail)] = emp
			}
		}
		if next == "" {
			return ix, nil
		}
		cursor = next
	}
}

// linkKeyer is a connector that stores Lanyard's id in another form (Entra's
// employeeId holds 16 characters, so a UUID is kept as a digest).
type linkKeyer interface {
	LinkKey(lanyardID string) string
}

// forApp returns the index with c's form of the link ids.
func (ix peopleIndex) forApp(c apps.Connector) peopleIndex {
	lk, ok := c.(linkKeyer)
	if !ok {
		return ix
	}
	out := peopleIndex{byID: make(map[string]domain.Employee, len(ix.byID)), byEmail: ix.byEmail}
	for id, emp := range ix.byID {
		out.byID[lk.LinkKey(id)] = emp
	}
	return out
}

func (ix peopleIndex) match(a apps.Account) (domain.Employee, bool) {
	if emp, ok := ix.byID[a.ExternalID]; ok && a.ExternalID != "" {
		return emp, true
	}
	for _, k := range []string{a.Email, a.UserName} {
		if emp, ok := ix.byEmail[strings.ToLower(k)]; ok && k != "" {
			return emp, true
		}
	}
	return domain.Employee{}, false
}

// reconcileApp lists c's accounts and returns its orphans, suspending again the
// active accounts of terminated people.
func reconcileApp(ctx context.Context, c apps.Connector, people peopleIndex) ([]store.AppOrphan, int, error) {
	var found []store.AppOrphan
	n := 0
	err := c.List(ctx, func(a apps.Account) error {
		n++
		emp, ok := people.match(a)
		switch {
		case !ok:
			found = append(found, store.AppOrphan{AccountID: a.ID, UserName: a.UserName, Reason: "no_person", Action: "reported"})
		case emp.HR.Status == domain.StatusTerminated && (a.Active == nil || *a.Active):
			o := store.AppOrphan{AccountID: a.ID, UserName: a.UserName, EmployeeID: emp.ID, Reason: "terminated", Action: "resuspended"}
			p := person(emp)
			p.AccountID = a.ID
			r, err := c.Suspend(ctx, p)
			switch {
			case err != nil:
				o.Action, o.Detail = "resuspend_failed", err.Error()
			case r.Action == "absent":
				// The connector could not find the account it just listed: it is
				// still active, whatever Suspend answered.
				o.Action, o.Detail = "resuspend_failed", "the connector found no account to suspend for "+emp.HR.WorkEmail+"; suspend "+a.UserName+" by hand"
			}
			found = append(found, o)
		}
		return nil
	})
	return found, n, err
}

// ReconcileAppsArgs is the periodic job that fans out one job per org.
type ReconcileAppsArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileAppsArgs) Kind() string { return "apps.reconcile_all" }

// ReconcileOrgAppsArgs reconciles one org's apps (unique among unfinished jobs).
type ReconcileOrgAppsArgs struct {
	OrgID string `json:"org_id"`
}

// Kind implements river.JobArgs.
func (ReconcileOrgAppsArgs) Kind() string { return "apps.reconcile" }

// InsertOpts keeps one pending pass per org.
func (ReconcileOrgAppsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type reconcileAllWorker struct {
	river.WorkerDefaults[ReconcileAppsArgs]
	e *Engine
}

func (w *reconcileAllWorker) Work(ctx context.Context, _ *river.Job[ReconcileAppsArgs]) error {
	orgs, err := w.e.db.ListOrgs(ctx)
	if err != nil {
		return err
	}
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	for _, o := range orgs {
		if !o.Plan.Allows(domain.FeatureAppAccess) {
			continue
		}
		if _, err := client.Insert(ctx, ReconcileOrgAppsArgs{OrgID: o.ID}, nil); err != nil {
			return fmt.Errorf("enqueue app reconciliation of %s: %w", o.ID, err)
		}
	}
	return nil
}

type reconcileOrgWorker struct {
	river.WorkerDefaults[ReconcileOrgAppsArgs]
	e *Engine
}

func (w *reconcileOrgWorker) Timeout(*river.Job[ReconcileOrgAppsArgs]) time.Duration {
	return 30 * time.Minute
}

func (w *reconcileOrgWorker) Work(ctx context.Context, j *river.Job[ReconcileOrgAppsArgs]) error {
	rep, err := w.e.ReconcileApps(ctx, j.Args.OrgID)
	if err == nil && len(rep.Errors) > 0 {
		w.e.log.Warn("app reconciliation: some apps could not be listed", "org_id", j.Args.OrgID, "errors", rep.Errors)
	}
	return err
}

// RegisterReconcile adds the reconciliation workers and the periodic pass (every
// interval, and once at start).
func (e *Engine) RegisterReconcile(reg *jobs.Registry, interval time.Duration) {
	if interval <= 0 {
		interval = AppReconcileInterval
	}
	jobs.Add(reg, &reconcileAllWorker{e: e})
	jobs.Add(reg, &reconcileOrgWorker{e: e})
	reg.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return ReconcileAppsArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true, ID: "apps.reconcile_all"}))
}

func (e *Engine) hListOrphans(w http.ResponseWriter, r *http.Request) error {
	all := r.URL.Query().Get("all") == "true"
	items, err := e.db.ListAppOrphans(r.Context(), orgOf(r), all)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hReconcileNow(w http.ResponseWriter, r *http.Request) error {
	rep, err := e.ReconcileApps(r.Context(), orgOf(r))
	if err != nil {
		return fmt.Errorf("reconcile apps: %w", err)
	}
	return api.JSON(w, http.StatusOK, rep)
}
