package hrsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Run kinds.
const (
	KindAuto        = ""
	KindInitial     = "initial"     // first import of all active members (resumable)
	KindIncremental = "incremental" // updated_at_gte from the checkpoint minus Skew
	KindFull        = "full"        // every member, to catch what updated_at misses
)

// SyncOptions tune one run.
type SyncOptions struct {
	Kind    string // KindAuto picks initial, full (when due) or incremental
	Trigger string // connect, schedule, manual, demo
	// ApproveTerminations lets this run apply terminations over the
	// mass-termination threshold (an admin's decision).
	ApproveTerminations bool
}

var (
	errConnectionEnded = errors.New("hrsync: connection is no longer active")
	errBlocked         = errors.New("hrsync: mass-termination breaker tripped; terminations held for an admin")
)

// StartSync begins a run and works it in the background; the returned run is
// in state running. ErrConflict when the connection already runs one.
func (e *Engine) StartSync(ctx context.Context, orgID string, o SyncOptions) (store.HRSyncRun, error) {
	run, err := e.begin(ctx, orgID, o)
	if err != nil {
		return run, err
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		r := run
		e.execute(e.actorCtx(e.baseCtx), &r, o)
	}()
	return run, nil
}

// SyncNow runs a sync to its end and returns the finished run.
func (e *Engine) SyncNow(ctx context.Context, orgID string, o SyncOptions) (store.HRSyncRun, error) {
	run, err := e.begin(ctx, orgID, o)
	if err != nil {
		return run, err
	}
	e.execute(e.actorCtx(ctx), &run, o)
	return run, nil
}

// begin inserts the run row; the unique index on running runs keeps one run
// per connection across replicas. A run whose heartbeat stopped (its process
// died) is marked failed and replaced.
func (e *Engine) begin(ctx context.Context, orgID string, o SyncOptions) (store.HRSyncRun, error) {
	ctx = e.actorCtx(ctx)
	conn, err := store.GetLiveHRConnection(ctx, e.db.SQL, orgID)
	if err != nil {
		return store.HRSyncRun{}, fmt.Errorf("no HR connection: %w", err)
	}
	if conn.State != store.HRStateActive {
		return store.HRSyncRun{}, fmt.Errorf("HR connection is %s, not active: %w", conn.State, store.ErrConflict)
	}
	kind := o.Kind
	if kind == KindAuto {
		switch {
		case !conn.ImportDone:
			kind = KindInitial
		case conn.Checkpoint == nil || conn.LastFullAt == nil || e.now().Sub(*conn.LastFullAt) >= e.cfg.FullScanInterval:
			kind = KindFull
		default:
			kind = KindIncremental
		}
	}
	if kind == KindIncremental && conn.Checkpoint == nil {
		kind = KindFull
	}
	if !conn.ImportDone {
		kind = KindInitial
	}
	trigger := o.Trigger
	if trigger == "" {
		trigger = "manual"
	}
	now := e.now()
	run := store.HRSyncRun{ID: domain.NewID(), OrgID: orgID, ConnectionID: conn.ID, Kind: kind, Trigger: trigger,
		Status: store.HRRunRunning, StartedAt: now, HeartbeatAt: now, Errors: []store.HRRunError{}}
	for attempt := 0; attempt < 2; attempt++ {
		err = e.db.InTx(ctx, func(tx *sql.Tx) error {
			if err := store.InsertHRSyncRun(ctx, tx, &run); err != nil {
				return err
			}
			if o.ApproveTerminations {
				c, err := e.db.LockHRConnection(ctx, tx, orgID, conn.ID)
				if err != nil {
					return err
				}
				c.ApproveTerminations = true
				if err := store.UpdateHRConnection(ctx, tx, &c); err != nil {
					return err
				}
				if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "hr.terminations.approved", "hr_connection", c.ID, nil, map[string]any{"run_id": run.ID})); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		cur, gerr := store.GetRunningHRSyncRun(ctx, e.db.SQL, conn.ID)
		if gerr != nil || e.now().Sub(cur.HeartbeatAt) < e.cfg.RunStaleAfter {
			return cur, err
		}
		fin := e.now()
		cur.Status, cur.Error, cur.FinishedAt = store.HRRunFailed, "abandoned: no heartbeat since "+cur.HeartbeatAt.Format(time.RFC3339), &fin
		if uerr := store.UpdateHRSyncRun(ctx, e.db.SQL, &cur); uerr != nil {
			return cur, uerr
		}
	}
	return run, err
}

// execute works a begun run and records its end.
func (e *Engine) execute(ctx context.Context, run *store.HRSyncRun, o SyncOptions) {
	start := e.now()
	log := e.log.With("org_id", run.OrgID, "connection_id", run.ConnectionID, "run_id", run.ID, "kind", run.Kind)
	err := e.scan(ctx, run)
	fin := e.now()
	run.FinishedAt, run.HeartbeatAt = &fin, fin
	switch {
	case err == nil:
		run.Status = store.HRRunSucceeded
	case errors.Is(err, errBlocked):
		run.Status = store.HRRunBlocked
	case errors.Is(err, hris.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, hris.ErrStaleCursor):
		run.Status = store.HRRunPartial
		run.Error = err.Error()
	default:
		run.Status = store.HRRunFailed
		run.Error = err.Error()
	}
	// The run record must be written even when ctx was canceled.
	wctx := context.WithoutCancel(ctx)
	if uerr := e.db.InTx(wctx, func(tx *sql.Tx) error {
		if err := store.UpdateHRSyncRun(wctx, tx, run); err != nil {
			return err
		}
		c, err := e.db.LockHRConnection(wctx, tx, run.OrgID, run.ConnectionID)
		if err != nil {
			return err
		}
		c.LastSyncAt = &fin
		if err := store.UpdateHRConnection(wctx, tx, &c); err != nil {
			return err
		}
		return e.recordStreak(wctx, tx, c, run)
	}); uerr != nil {
		log.ErrorContext(ctx, "record sync run", "err", uerr)
	}
	if reason := endReason(err); reason != "" {
		if _, terr := e.terminateConnection(wctx, run.OrgID, run.ConnectionID, reason, ""); terr != nil {
			log.ErrorContext(ctx, "terminate connection", "err", terr)
		}
	}
	e.met.run(run.Kind, run.Status, run.Created, run.Updated, run.Terminated, run.Skipped, run.Held)
	log.InfoContext(ctx, "hr sync finished", "status", run.Status, "pages", run.Pages, "seen", run.Seen, "created", run.Created,
		"updated", run.Updated, "terminated", run.Terminated, "skipped", run.Skipped, "held", run.Held,
		"duration", fin.Sub(start).Round(time.Millisecond), "err", err)
}

// scan reads members and applies them; see the package comment for the rules.
func (e *Engine) scan(ctx context.Context, run *store.HRSyncRun) error {
	conn, err := store.GetHRConnection(ctx, e.db.SQL, run.OrgID, run.ConnectionID)
	if err != nil {
		return err
	}
	if conn.State != store.HRStateActive {
		return errConnectionEnded
	}
	org, err := store.GetOrg(ctx, e.db.SQL, run.OrgID)
	if err != nil {
		return err
	}
	dir, err := e.directory(&conn)
	if err != nil {
		return err
	}
	start := e.now()
	candidates := map[string]bool{}
	var order []string
	sc := &scanner{e: e, run: run, org: org, conn: conn, dir: dir, reported: map[string]bool{}, onTerminate: func(id string) {
		if !candidates[id] {
			candidates[id] = true
			order = append(order, id)
		}
	}}
	hasTerm, err := store.HasTerminatedEmployees(ctx, e.db.SQL, org.ID, conn.Provider)
	if err != nil {
		return err
	}
	sc.noRehire = !hasTerm
	switch run.Kind {
	case KindInitial:
		// Every member is read, not only status=active: whether Justworks
		// reports a future hire as active before the start date is undocumented,
		// and a reconnect must see who left while it was disconnected. Former
		// members we never knew are ignored.
		if err := sc.pass(ctx, hris.ListOptions{Cursor: conn.ImportCursor}, true); err != nil {
			return err
		}
		// Catch up what changed while we paged (EDGE_CASES 9); a resumed
		// import catches up from the connect, when its first pages were read.
		since := start
		if conn.ImportCursor != "" {
			since = conn.CreatedAt
		}
		if err := sc.pass(ctx, hris.ListOptions{UpdatedSince: since.Add(-e.cfg.Skew)}, false); err != nil {
			return err
		}
		// A bulk load leaves Postgres statistics stale; refresh them so the
		// next scans use the indexes.
		if err := e.db.AnalyzeHRTables(ctx); err != nil {
			e.log.WarnContext(ctx, "refresh statistics after import", "err", err)
		}
	case KindIncremental:
		if err := sc.pass(ctx, hris.ListOptions{UpdatedSince: conn.Checkpoint.Add(-e.cfg.Skew)}, false); err != nil {
			return err
		}
	default:
		if err := sc.pass(ctx, hris.ListOptions{}, false); err != nil {
			return err
		}
	}
	// Start dates that passed: pending -> active (no updated_at change at the provider).
	if err := sc.started(ctx); err != nil {
		return err
	}
	// The scan is complete: now, and only now, consider terminations.
	if err := sc.terminations(ctx, order); err != nil {
		return err
	}
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := e.db.LockHRConnection(ctx, tx, run.OrgID, run.ConnectionID)
		if err != nil {
			return err
		}
		if c.State != store.HRStateActive {
			return errConnectionEnded
		}
		c.Checkpoint = &start
		if run.Kind == KindInitial || run.Kind == KindFull {
			c.LastFullAt = &start
		}
		c.ImportDone, c.ImportCursor = true, ""
		return store.UpdateHRConnection(ctx, tx, &c)
	})
}

type scanner struct {
	e           *Engine
	run         *store.HRSyncRun
	org         domain.Org
	conn        store.HRConnection
	dir         hris.Directory
	noRehire    bool // no terminated employees when the scan started
	onTerminate func(id string)
	reported    map[string]bool // malformed ids already counted in this run
}

func (sc *scanner) opts() applyOpts {
	return applyOpts{org: sc.org, source: sc.conn.Provider, today: todayIn(sc.e.now(), sc.org.Location()), noRehire: sc.noRehire}
}

func (sc *scanner) addError(kind, id, msg string) {
	if len(sc.run.Errors) < store.MaxHRRunErrors {
		sc.run.Errors = append(sc.run.Errors, store.HRRunError{ExternalID: id, Kind: kind, Message: msg})
	}
}

// pass pages through one listing. With persistImport the cursor is saved with
// each page, in the page's transaction, so a crashed import resumes there.
func (sc *scanner) pass(ctx context.Context, opt hris.ListOptions, persistImport bool) error {
	e := sc.e
	opt.Limit = e.cfg.PageSize
	// The next page is fetched while the current one is written: with a real
	// API the request latency, not the database, sets the import time.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan fetched, 1)
	go sc.fetch(fctx, opt, pages)
	for f := range pages {
		if f.restarted {
			sc.addError("stale_cursor", "", "provider rejected the cursor; scan restarted")
			continue
		}
		if f.err != nil {
			return f.err
		}
		if err := sc.applyFetched(ctx, f.page, persistImport); err != nil {
			return err
		}
		if f.page.NextCursor == "" {
			return nil
		}
	}
	return ctx.Err()
}

type fetched struct {
	page      *hris.Page
	err       error
	restarted bool
}

// fetch pages through one listing into out, restarting on a stale cursor
// (upserts are idempotent, so pages seen twice change nothing).
func (sc *scanner) fetch(ctx context.Context, opt hris.ListOptions, out chan<- fetched) {
	defer close(out)
	send := func(f fetched) bool {
		select {
		case out <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	restarts := 0
	guard := newCursorGuard(sc.e.cfg.MaxPages, opt.Cursor)
	for {
		if err := guard.beforeFetch(); err != nil {
			send(fetched{err: err})
			return
		}
		page, err := sc.dir.ListMembers(ctx, opt)
		if errors.Is(err, hris.ErrStaleCursor) && opt.Cursor != "" && restarts < 3 {
			restarts++
			opt.Cursor = ""
			guard.reset()
			if !send(fetched{restarted: true}) {
				return
			}
			continue
		}
		if err == nil {
			// A repeated cursor fails the run before its page is applied:
			// the page belongs to a listing that would never end.
			err = guard.next(page.NextCursor)
		}
		if err != nil {
			send(fetched{err: err})
			return
		}
		if !send(fetched{page: page}) || page.NextCursor == "" {
			return
		}
		opt.Cursor = page.NextCursor
	}
}

// applyFetched writes one page, its progress and (for imports) its cursor in
// one transaction.
func (sc *scanner) applyFetched(ctx context.Context, page *hris.Page, persistImport bool) error {
	if err := sc.e.checkIdentities(ctx, sc.dir, sc.org, sc.conn.Provider, page.Items); err != nil {
		return err
	}
	err := sc.applyFetchedOnce(ctx, page, persistImport)
	if errors.Is(err, store.ErrConflict) {
		// A webhook created one of these members concurrently (Postgres):
		// the retry sees the row and updates it instead.
		err = sc.applyFetchedOnce(ctx, page, persistImport)
	}
	return err
}

func (sc *scanner) applyFetchedOnce(ctx context.Context, page *hris.Page, persistImport bool) error {
	e := sc.e
	snapshot := *sc.run
	snapshot.Errors = append([]store.HRRunError(nil), sc.run.Errors...)
	o := sc.opts()
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := e.db.LockHRConnection(ctx, tx, sc.run.OrgID, sc.run.ConnectionID)
		if err != nil {
			return err
		}
		if c.State != store.HRStateActive {
			return errConnectionEnded
		}
		for _, sk := range page.Skipped {
			if sk.ExternalID != "" && sc.reported[sk.ExternalID] {
				continue // the same bad record seen again (catch-up pass, restart)
			}
			sc.reported[sk.ExternalID] = true
			sc.run.Skipped++
			sc.addError("malformed", sk.ExternalID, sk.Reason)
		}
		outs, reasons, err := e.applyPage(ctx, tx, page.Items, o)
		if err != nil {
			return err
		}
		for i, m := range page.Items {
			sc.run.Seen++
			sc.count(outs[i], m.ExternalID, reasons[i])
		}
		sc.run.Pages++
		sc.run.Cursor = page.NextCursor
		sc.run.HeartbeatAt = e.now()
		if err := store.UpdateHRSyncRun(ctx, tx, sc.run); err != nil {
			return err
		}
		if persistImport {
			c.ImportCursor = page.NextCursor
			return store.UpdateHRConnection(ctx, tx, &c)
		}
		return nil
	})
	if err != nil {
		*sc.run = snapshot
	}
	return err
}

func (sc *scanner) count(out outcome, id, reason string) {
	switch out {
	case outCreated:
		sc.run.Created++
	case outUpdated:
		sc.run.Updated++
	case outTerminated:
		sc.run.Terminated++
	case outSkipped:
		sc.run.Skipped++
		sc.addError("excluded", id, reason)
	case outWouldTerminate:
		sc.onTerminate(id)
	default:
		sc.run.Unchanged++
	}
}

// terminations applies the terminations a complete scan found, each confirmed
// by GET /v1/members/{id}, unless there are more than the org allows in one
// run: then none is applied and an admin must approve (circuit breaker).
func (sc *scanner) terminations(ctx context.Context, ids []string) error {
	e := sc.e
	if len(ids) == 0 {
		return sc.clearApproval(ctx, 0)
	}
	active, err := store.CountEmployeesByStatus(ctx, e.db.SQL, sc.org.ID, sc.conn.Provider, domain.StatusActive)
	if err != nil {
		return err
	}
	pending, err := store.CountEmployeesByStatus(ctx, e.db.SQL, sc.org.ID, sc.conn.Provider, domain.StatusPending)
	if err != nil {
		return err
	}
	pct := sc.org.Settings.MassTerminationThresholdPct
	if pct <= 0 {
		pct = 20
	}
	limit := max(e.cfg.MassTerminationMin, (active+pending)*pct/100)
	if len(ids) > limit && !sc.conn.ApproveTerminations {
		return sc.block(ctx, len(ids), active+pending, pct)
	}
	for _, id := range ids {
		m, err := sc.dir.GetMember(ctx, id)
		if errors.Is(err, hris.ErrNotFound) {
			sc.addError("not_confirmed", id, "termination not applied: member not found on re-fetch")
			continue
		}
		if err != nil {
			return err
		}
		o := sc.opts()
		o.allowTerminate = true
		err = e.db.InTx(ctx, func(tx *sql.Tx) error {
			out, reason, err := e.applyMember(ctx, tx, *m, o)
			if err != nil {
				return err
			}
			sc.count(out, id, reason)
			sc.run.HeartbeatAt = e.now()
			return store.UpdateHRSyncRun(ctx, tx, sc.run)
		})
		if err != nil {
			return err
		}
	}
	return sc.clearApproval(ctx, len(ids))
}

// started re-fetches pending employees whose start date has come.
func (sc *scanner) started(ctx context.Context) error {
	ids, err := store.ListPendingStartedExternalIDs(ctx, sc.e.db.SQL, sc.org.ID, sc.conn.Provider, sc.opts().today)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := sc.dir.GetMember(ctx, id)
		if errors.Is(err, hris.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		o := sc.opts()
		err = sc.e.db.InTx(ctx, func(tx *sql.Tx) error {
			out, reason, err := sc.e.applyMember(ctx, tx, *m, o)
			if err != nil {
				return err
			}
			sc.count(out, id, reason)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (sc *scanner) block(ctx context.Context, n, active, pct int) error {
	e := sc.e
	sc.run.Held = n
	msg := fmt.Sprintf("mass termination held: %d of %d active employees would be terminated in one sync (threshold %d%%); "+
		"check Justworks, then approve with `lanyardctl hr sync --approve-terminations`", n, active, pct)
	sc.addError("mass_termination", "", msg)
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := e.db.LockHRConnection(ctx, tx, sc.run.OrgID, sc.run.ConnectionID)
		if err != nil {
			return err
		}
		before := c
		c.Attention = msg
		if err := store.UpdateHRConnection(ctx, tx, &c); err != nil {
			return err
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, c.OrgID, "hr.sync.blocked", "hr_connection", c.ID, connView(before), connView(c))); err != nil {
			return err
		}
		// Every reconcile re-trips the breaker while the hold lasts; the admins are prompted
		// once per hold (the key is forgotten when the hold clears).
		b, err := json.Marshal(domain.HRTerminationsHeldPayload{ConnectionID: c.ID, Provider: c.Provider, Count: n, Threshold: pct})
		if err != nil {
			return err
		}
		_, err = store.WriteEventOnce(ctx, tx, heldKey(c.ID), domain.Event{OrgID: c.OrgID, Type: domain.EventHRTerminationsHeld,
			SubjectType: "hr_connection", SubjectID: c.ID, Payload: b})
		return err
	})
	if err != nil {
		return err
	}
	e.log.WarnContext(ctx, "mass-termination breaker tripped", "org_id", sc.org.ID, "would_terminate", n, "active", active)
	return errBlocked
}

// clearApproval consumes a one-shot approval and clears the attention flag
// once a complete scan handled its terminations (none left over the threshold).
func (sc *scanner) clearApproval(ctx context.Context, applied int) error {
	if !sc.conn.ApproveTerminations && sc.conn.Attention == "" {
		return nil
	}
	return sc.e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := sc.e.db.LockHRConnection(ctx, tx, sc.run.OrgID, sc.run.ConnectionID)
		if err != nil {
			return err
		}
		approved := c.ApproveTerminations
		c.ApproveTerminations, c.Attention = false, ""
		if err := store.UpdateHRConnection(ctx, tx, &c); err != nil {
			return err
		}
		if _, err := store.ForgetEventKey(ctx, tx, heldKey(c.ID)); err != nil {
			return err
		}
		if !approved || applied == 0 {
			return nil
		}
		// The admins who were prompted about the hold hear that it was released.
		return writeConnEvent(ctx, tx, c, domain.EventHRTerminationsReleased, domain.HRTerminationsHeldPayload{Count: applied})
	})
}

// heldKey is the WriteEventOnce key of a connection's current mass-termination hold.
func heldKey(connID string) string { return "hr.terminations_held:" + connID }

// SyncFailingAfter is how many runs in a row must fail (or stop early) before the admins
// are prompted that HR sync is failing; one outage that the next run heals is no prompt.
const SyncFailingAfter = 3

// recordStreak prompts once per failing streak (hr.sync_failing) and once when a run
// works again (hr.sync_recovered), in the transaction that records the run.
func (e *Engine) recordStreak(ctx context.Context, tx *sql.Tx, c store.HRConnection, run *store.HRSyncRun) error {
	key := "hr.sync_failing:" + c.ID
	switch run.Status {
	case store.HRRunFailed, store.HRRunPartial:
		n, err := store.HRFailureStreak(ctx, tx, c.ID, SyncFailingAfter)
		if err != nil || n < SyncFailingAfter {
			return err
		}
		b, err := json.Marshal(domain.HRConnectionPayload{ConnectionID: c.ID, Provider: c.Provider, Reason: run.Error, Failures: n})
		if err != nil {
			return err
		}
		_, err = store.WriteEventOnce(ctx, tx, key, domain.Event{OrgID: c.OrgID, Type: domain.EventHRSyncFailing,
			SubjectType: "hr_connection", SubjectID: c.ID, Payload: b})
		return err
	case store.HRRunSucceeded:
		was, err := store.ForgetEventKey(ctx, tx, key)
		if err != nil || !was {
			return err
		}
		return writeConnEvent(ctx, tx, c, domain.EventHRSyncRecovered, domain.HRConnectionPayload{})
	}
	return nil
}
