// Package watch turns facts that become true with time (a task past due, a device gone
// silent, an APNs certificate near expiry, the morning digest) into outbox events. It runs
// as one periodic job; every fact is written with store.WriteEventOnce under a key that
// names it, so a re-run, a restart or a second replica scanning at the same moment emits
// nothing twice.
package watch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// DefaultSilentDays applies when an org has not set OrgSettings.SilentDays.
const DefaultSilentDays = 7

// DigestHour is the local hour from which an org's daily digest is due.
const DigestHour = 8

// APNsThresholds are the days-before-expiry at which admins are prompted.
var APNsThresholds = []int{30, 7, 1}

// Options configure a Watcher.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // domain.Now when nil
}

// Watcher scans the store for time-based facts.
type Watcher struct {
	db  *store.DB
	log *slog.Logger
	now func() time.Time
}

// New returns a Watcher over db.
func New(db *store.DB, o Options) *Watcher {
	w := &Watcher{db: db, log: o.Logger, now: o.Now}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = domain.Now
	}
	return w
}

// Result counts the events one scan wrote.
type Result struct {
	Overdue, Silent, APNs, Digests int
}

// Scan runs every check once and reports what it emitted.
func (w *Watcher) Scan(ctx context.Context) (Result, error) {
	var r Result
	now := w.now().UTC()
	var err error
	if r.Overdue, err = w.overdue(ctx, now); err != nil {
		return r, err
	}
	orgs, err := w.db.ListOrgs(ctx)
	if err != nil {
		return r, fmt.Errorf("watch: list orgs: %w", err)
	}
	for _, org := range orgs {
		n, err := w.silent(ctx, org, now)
		if err != nil {
			return r, err
		}
		r.Silent += n
		if w.digest(ctx, org, now) {
			r.Digests++
		}
	}
	if r.APNs, err = w.apns(ctx, now); err != nil {
		return r, err
	}
	if r != (Result{}) {
		w.log.InfoContext(ctx, "watch emitted", "overdue", r.Overdue, "silent", r.Silent, "apns", r.APNs, "digests", r.Digests)
	}
	return r, nil
}

// emit writes ev once under key and reports whether this call wrote it.
func (w *Watcher) emit(ctx context.Context, key string, ev domain.Event, payload any) (bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return false, fmt.Errorf("watch: encode %s: %w", ev.Type, err)
	}
	ev.Payload = b
	var wrote bool
	err = w.db.InTx(ctx, func(tx *sql.Tx) error {
		wrote, err = store.WriteEventOnce(ctx, tx, key, ev)
		return err
	})
	if err != nil && store.IsUniqueViolation(err) {
		return false, nil // a concurrent replica claimed the key first
	}
	if err != nil {
		return false, fmt.Errorf("watch: %s: %w", key, err)
	}
	return wrote, nil
}

func (w *Watcher) overdue(ctx context.Context, now time.Time) (int, error) {
	tasks, err := w.db.OverdueTasks(ctx, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		ok, err := w.emit(ctx, "task.overdue:"+t.ID, domain.Event{OrgID: t.OrgID, Type: domain.EventTaskOverdue, SubjectType: "task", SubjectID: t.ID},
			domain.TaskOverduePayload{TaskID: t.ID, Title: t.Title, Assignee: t.Assignee, DueAt: t.DueAt.UTC()})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// silent prompts once per silence: the key carries the last-seen time, so a device that
// checks in and goes quiet again is a new fact.
func (w *Watcher) silent(ctx context.Context, org domain.Org, now time.Time) (int, error) {
	days := org.Settings.SilentDays
	if days <= 0 {
		days = DefaultSilentDays
	}
	devs, err := w.db.SilentDevices(ctx, org.ID, now.Add(-time.Duration(days)*24*time.Hour))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range devs {
		key := fmt.Sprintf("device.silent:%s:%d", d.DeviceID, d.LastSeenAt.UTC().UnixMicro())
		ok, err := w.emit(ctx, key, domain.Event{OrgID: org.ID, Type: domain.EventDeviceSilent, SubjectType: "device", SubjectID: d.DeviceID},
			domain.DeviceSilentPayload{DeviceID: d.DeviceID, Serial: d.Serial, Hostname: d.Hostname, LastSeenAt: d.LastSeenAt.UTC(), Days: days})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// digest is due from 08:00 in the org's time zone, once per local date.
func (w *Watcher) digest(ctx context.Context, org domain.Org, now time.Time) bool {
	loc := org.Location()
	local := now.In(loc)
	if local.Hour() < DigestHour {
		return false
	}
	date := local.Format("2006-01-02")
	ok, err := w.emit(ctx, "digest.due:"+org.ID+":"+date, domain.Event{OrgID: org.ID, Type: domain.EventDigestDue, SubjectType: "org", SubjectID: org.ID},
		domain.DigestDuePayload{Date: date, TimeZone: loc.String()})
	if err != nil {
		// One org's digest must not stop the other checks; the next scan retries it.
		w.log.ErrorContext(ctx, "digest event", "org_id", org.ID, "err", err)
	}
	return ok
}

// apns prompts at each threshold crossed, once per certificate (its expiry identifies it,
// so an uploaded renewal starts over). Only the nearest crossed threshold is emitted: a
// certificate first seen 5 days before expiry is the 7-day prompt, not 30 and 7 at once.
func (w *Watcher) apns(ctx context.Context, now time.Time) (int, error) {
	certs, err := w.db.MDMListPushCerts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range certs {
		left := c.NotAfter.Sub(now)
		crossed := 0
		for _, th := range APNsThresholds {
			if left <= time.Duration(th)*24*time.Hour {
				crossed = th
			}
		}
		if crossed == 0 {
			continue
		}
		key := fmt.Sprintf("mdm.apns_expiring:%s:%s:%d:%d", c.OrgID, c.Topic, c.NotAfter.UTC().Unix(), crossed)
		ok, err := w.emit(ctx, key, domain.Event{OrgID: c.OrgID, Type: domain.EventMDMAPNsExpiring, SubjectType: "org", SubjectID: c.OrgID},
			domain.APNsExpiringPayload{Topic: c.Topic, ExpiresAt: c.NotAfter.UTC(), DaysLeft: crossed})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// ScanArgs is the periodic watch job.
type ScanArgs struct{}

// Kind implements river.JobArgs.
func (ScanArgs) Kind() string { return "watch.scan" }

type scanWorker struct {
	river.WorkerDefaults[ScanArgs]
	w *Watcher
}

func (s *scanWorker) Work(ctx context.Context, _ *river.Job[ScanArgs]) error {
	_, err := s.w.Scan(ctx)
	return err
}

// RegisterJobs adds the scan as a periodic job every interval (and once at start). River
// runs periodic jobs on its leader; the dedup keys keep it exact if two ever overlap.
func (w *Watcher) RegisterJobs(reg *jobs.Registry, every time.Duration) {
	jobs.Add(reg, &scanWorker{w: w})
	reg.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return ScanArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true, ID: "watch.scan"}))
}
