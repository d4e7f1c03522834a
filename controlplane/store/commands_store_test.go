package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func newCommand(t *testing.T, db *store.DB, orgID, deviceID, typ string, expires time.Time) store.DeviceCommand {
	t.Helper()
	c := store.DeviceCommand{OrgID: orgID, DeviceID: deviceID, Type: typ, Channel: store.ChannelAgent, TargetSerial: "SN", ExpiresAt: expires}
	if _, err := db.CreateDeviceCommand(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCommandStatesWalk: received → running → done keeps every timestamp and the
// evidence, audits each step, and a done agent lock is the device.locked domain event;
// simulated is terminal; a late result cannot move a terminal command.
func TestCommandStatesWalk(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-WALK")
		c := newCommand(t, db, org.ID, dev.ID, store.CommandLock, domain.Now().Add(time.Hour))
		ev := &store.CommandEvidence{Verified: true, SerialNumber: "SN-WALK", Checks: []store.CommandCheck{{Name: "account-locked:ada", OK: true,
			Observed: "locked", Expected: "locked"}}, Mode: store.AgentMode{}}
		steps := []store.CommandUpdate{
			{From: []string{store.CommandQueued}, To: store.CommandSent, AgentID: "ag"},
			{From: []string{store.CommandSent}, To: store.CommandReceived},
			{From: []string{store.CommandReceived}, To: store.CommandRunning},
			{From: store.OpenCommandStates, To: store.CommandDone, Evidence: ev},
		}
		for _, u := range steps {
			if _, err := db.TransitionDeviceCommand(ctx, org.ID, c.ID, u); err != nil {
				t.Fatalf("%s: %v", u.To, err)
			}
		}
		got, err := db.GetDeviceCommand(ctx, org.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.CommandDone || got.ReceivedAt == nil || got.StartedAt == nil || got.CompletedAt == nil || got.SentAt == nil {
			t.Fatalf("timestamps %+v", got)
		}
		if got.ReceivedAt.After(*got.StartedAt) || got.StartedAt.After(*got.CompletedAt) {
			t.Fatalf("out of order: received %v started %v completed %v", got.ReceivedAt, got.StartedAt, got.CompletedAt)
		}
		if got.Evidence == nil || !got.Evidence.Verified || len(got.Evidence.Checks) != 1 || got.Evidence.Checks[0].Name != "account-locked:ada" {
			t.Fatalf("evidence %+v", got.Evidence)
		}
		want := "device_command.queued device_command.sent device_command.received device_command.running device_command.done"
		if a := strings.Join(storetest.AuditActions(t, db, org.ID, c.ID), " "); a != want {
			t.Fatalf("audit %q, want %q", a, want)
		}
		evs, err := db.ListEvents(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		locked := 0
		for _, e := range evs {
			if e.Type == domain.EventDeviceLocked && e.SubjectID == dev.ID && e.OrgID == org.ID {
				locked++
			}
		}
		if locked != 1 {
			t.Fatalf("device.locked events %d, want 1", locked)
		}
		if _, err := db.TransitionDeviceCommand(ctx, org.ID, c.ID, store.CommandUpdate{From: store.OpenCommandStates, To: store.CommandFailed}); !errors.Is(err, store.ErrCommandState) {
			t.Fatalf("late failure on a done command: %v", err)
		}

		sim := newCommand(t, db, org.ID, dev.ID, store.CommandWipe, domain.Now().Add(time.Hour))
		out, err := db.TransitionDeviceCommand(ctx, org.ID, sim.ID, store.CommandUpdate{From: store.OpenCommandStates, To: store.CommandSimulated,
			Error: "simulated: dry run"})
		if err != nil || !out.Terminal() || out.CompletedAt == nil || out.Error != "simulated: dry run" {
			t.Fatalf("simulated %+v %v", out, err)
		}
		if _, err := db.TransitionDeviceCommand(ctx, org.ID, sim.ID, store.CommandUpdate{From: store.OpenCommandStates, To: store.CommandDone}); !errors.Is(err, store.ErrCommandState) {
			t.Fatalf("simulated became done: %v", err)
		}
		// Unlock is a type the store accepts (CHECK constraint).
		newCommand(t, db, org.ID, dev.ID, store.CommandUnlock, domain.Now().Add(time.Hour))
		// Another org never sees the command.
		other := storetest.Org(t, db, domain.PlanPro)
		if _, err := db.GetDeviceCommand(ctx, other.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another org read the command: %v", err)
		}
	})
}

// TestCommandBornFailed: a command the server refuses at once is stored failed with its
// reason and completion time, audited, and never announced for delivery.
func TestCommandBornFailed(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-MAC")
		c := store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: store.CommandLock, Channel: store.ChannelAgent, State: store.CommandFailed,
			Error: "macOS: no MDM", ExpiresAt: domain.Now().Add(time.Hour)}
		if _, err := db.CreateDeviceCommand(ctx, &c); err != nil {
			t.Fatal(err)
		}
		got, _ := db.GetDeviceCommand(ctx, org.ID, c.ID)
		if got.State != store.CommandFailed || got.Error != "macOS: no MDM" || got.CompletedAt == nil {
			t.Fatalf("born failed %+v", got)
		}
		if a := storetest.AuditActions(t, db, org.ID, c.ID); len(a) != 1 || a[0] != "device_command.failed" {
			t.Fatalf("audit %v", a)
		}
		queued, err := db.QueuedAgentCommandIDs(ctx, 10)
		if err != nil || len(queued) != 0 {
			t.Fatalf("queued %v %v", queued, err)
		}
	})
}

// TestCreateClaimed: a command created for the stream this replica holds is stored sent
// (claimed for the agent, attempt 1) with both transitions audited, is not left queued for
// the poll, and a repeated idempotency key returns the first command whichever way each
// call was made, writing nothing.
func TestCreateClaimed(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-CLAIM")
		mk := func() store.DeviceCommand {
			return store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: store.CommandLock, Channel: store.ChannelAgent, TargetSerial: "SN-CLAIM",
				IdempotencyKey: "k1", ExpiresAt: domain.Now().Add(time.Hour)}
		}
		c := mk()
		created, err := db.CreateClaimedDeviceCommand(ctx, &c, "agent-1")
		if err != nil || !created {
			t.Fatalf("create: %v %v", created, err)
		}
		if c.State != store.CommandSent || c.AgentID != "agent-1" || c.Attempts != 1 || c.SentAt == nil {
			t.Fatalf("returned %+v", c)
		}
		got, err := db.GetDeviceCommand(ctx, org.ID, c.ID)
		if err != nil || got.State != store.CommandSent || got.AgentID != "agent-1" || got.Attempts != 1 || got.SentAt == nil {
			t.Fatalf("stored %+v %v", got, err)
		}
		if a := strings.Join(storetest.AuditActions(t, db, org.ID, c.ID), " "); a != "device_command.queued device_command.sent" {
			t.Fatalf("audit %q", a)
		}
		if q, err := db.QueuedAgentCommandIDs(ctx, 10); err != nil || len(q) != 0 {
			t.Fatalf("queued %v %v", q, err)
		}
		for _, claimed := range []bool{true, false} {
			again := mk()
			var created bool
			if claimed {
				created, err = db.CreateClaimedDeviceCommand(ctx, &again, "agent-2")
			} else {
				created, err = db.CreateDeviceCommand(ctx, &again)
			}
			if err != nil || created || again.ID != c.ID || again.AgentID != "agent-1" {
				t.Fatalf("replay (claimed %v): created %v err %v got %+v", claimed, created, err, again)
			}
		}
		if a := storetest.AuditActions(t, db, org.ID, c.ID); len(a) != 2 {
			t.Fatalf("a replay wrote audit: %v", a)
		}
		list, _, err := db.ListDeviceCommands(ctx, org.ID, dev.ID, store.Page{Limit: 10})
		if err != nil || len(list) != 1 {
			t.Fatalf("commands %d %v", len(list), err)
		}
	})
}

// TestExpireNamesWhatNeverHappened: every open state expires, received and running too,
// each with a reason that says what the device never did.
func TestExpireNamesWhatNeverHappened(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-EXP")
		past := domain.Now().Add(-time.Minute)
		paths := map[string][]string{
			store.CommandQueued:   nil,
			store.CommandSent:     {store.CommandSent},
			store.CommandReceived: {store.CommandSent, store.CommandReceived},
			store.CommandRunning:  {store.CommandSent, store.CommandReceived, store.CommandRunning},
		}
		ids := map[string]string{}
		for state, path := range paths {
			c := newCommand(t, db, org.ID, dev.ID, store.CommandLock, past)
			for _, to := range path {
				if _, err := db.TransitionDeviceCommand(ctx, org.ID, c.ID, store.CommandUpdate{From: store.OpenCommandStates, To: to}); err != nil {
					t.Fatal(err)
				}
			}
			ids[state] = c.ID
		}
		fresh := newCommand(t, db, org.ID, dev.ID, store.CommandLock, domain.Now().Add(time.Hour))
		n, err := db.ExpireDeviceCommands(ctx, domain.Now())
		if err != nil || n != len(paths) {
			t.Fatalf("expired %d (%v), want %d", n, err, len(paths))
		}
		wants := map[string]string{
			store.CommandQueued:   "did not connect",
			store.CommandSent:     "never confirmed receipt",
			store.CommandReceived: "received the command but never reported a result",
			store.CommandRunning:  "started the command but never reported a result",
		}
		for state, id := range ids {
			c, _ := db.GetDeviceCommand(ctx, org.ID, id)
			if c.State != store.CommandExpired || !strings.Contains(c.Error, wants[state]) || c.CompletedAt == nil {
				t.Errorf("from %s: %s %q", state, c.State, c.Error)
			}
			a := storetest.AuditActions(t, db, org.ID, id)
			if a[len(a)-1] != "device_command.expired" {
				t.Errorf("from %s: audit %v", state, a)
			}
		}
		if c, _ := db.GetDeviceCommand(ctx, org.ID, fresh.ID); c.State != store.CommandQueued {
			t.Fatalf("unexpired command is %s", c.State)
		}
	})
}

// TestConfirmErase: only a done, unconfirmed wipe can be confirmed, once, audited; the
// silent-erase query returns the Mac's last contact.
func TestConfirmErase(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-ERASE")
		mk := func(typ string) store.DeviceCommand {
			c := store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: typ, Channel: store.ChannelMDM, ExpiresAt: domain.Now().Add(time.Hour)}
			if _, err := db.CreateDeviceCommand(ctx, &c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		wipe, lock := mk(store.CommandWipe), mk(store.CommandLock)
		if _, err := db.ConfirmDeviceCommand(ctx, org.ID, wipe.ID, store.ConfirmReenrolled); !errors.Is(err, store.ErrCommandState) {
			t.Fatalf("confirmed a queued wipe: %v", err)
		}
		for _, c := range []store.DeviceCommand{wipe, lock} {
			if _, err := db.TransitionDeviceCommand(ctx, org.ID, c.ID, store.CommandUpdate{From: store.OpenCommandStates, To: store.CommandDone}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ConfirmDeviceCommand(ctx, org.ID, lock.ID, store.ConfirmReenrolled); !errors.Is(err, store.ErrCommandState) {
			t.Fatalf("confirmed a lock: %v", err)
		}
		silent, err := db.UnconfirmedMDMErasesBefore(ctx, domain.Now().Add(time.Minute), 10)
		if err != nil || len(silent) != 1 || silent[0].Command.ID != wipe.ID || silent[0].LastSeenAt != nil {
			t.Fatalf("silent erases %+v %v", silent, err)
		}
		if s, _ := db.UnconfirmedMDMErasesBefore(ctx, domain.Now().Add(-time.Hour), 10); len(s) != 0 {
			t.Fatalf("an erase done now is older than an hour: %+v", s)
		}
		if u, err := db.UnconfirmedMDMErases(ctx, org.ID, dev.ID); err != nil || len(u) != 1 {
			t.Fatalf("unconfirmed %v %v", u, err)
		}
		got, err := db.ConfirmDeviceCommand(ctx, org.ID, wipe.ID, store.ConfirmStoppedCheckingIn)
		if err != nil || got.ConfirmedAt == nil || got.Confirmation != store.ConfirmStoppedCheckingIn {
			t.Fatalf("confirm %+v %v", got, err)
		}
		if _, err := db.ConfirmDeviceCommand(ctx, org.ID, wipe.ID, store.ConfirmReenrolled); !errors.Is(err, store.ErrCommandState) {
			t.Fatalf("confirmed twice: %v", err)
		}
		reread, _ := db.GetDeviceCommand(ctx, org.ID, wipe.ID)
		if reread.Confirmation != store.ConfirmStoppedCheckingIn || reread.ConfirmedAt == nil {
			t.Fatalf("stored %+v", reread)
		}
		if a := storetest.AuditActions(t, db, org.ID, wipe.ID); a[len(a)-1] != "device_command.confirmed" {
			t.Fatalf("audit %v", a)
		}
		if u, _ := db.UnconfirmedMDMErases(ctx, org.ID, dev.ID); len(u) != 0 {
			t.Fatalf("still unconfirmed: %v", u)
		}
	})
}

// TestRecoveryKeyEscrow: one row per device, volume and protector (a re-escrow replaces
// the sealed value), audited without the secret; listing is per org.
func TestRecoveryKeyEscrow(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-BL")
		put := func(volume, protector, sealed string) bool {
			k := store.RecoveryKey{OrgID: org.ID, DeviceID: dev.ID, AgentID: "ag", Kind: store.RecoveryKindBitLocker, Volume: volume,
				ProtectorID: protector, SecretSealed: sealed}
			replaced, err := db.EscrowRecoveryKey(ctx, &k)
			if err != nil {
				t.Fatal(err)
			}
			return replaced
		}
		if put("C:", "{A}", "sealed-1") || put("D:", "{B}", "sealed-2") || !put("C:", "{A}", "sealed-3") {
			t.Fatal("replaced flags wrong")
		}
		keys, err := db.ListRecoveryKeys(ctx, org.ID, dev.ID)
		if err != nil || len(keys) != 2 {
			t.Fatalf("keys %+v %v", keys, err)
		}
		byVol := map[string]store.RecoveryKey{}
		for _, k := range keys {
			byVol[k.Volume] = k
		}
		if byVol["C:"].SecretSealed != "sealed-3" || byVol["D:"].ProtectorID != "{B}" {
			t.Fatalf("stored %+v", byVol)
		}
		ids, err := db.EscrowedProtectorIDs(ctx, org.ID, dev.ID, store.RecoveryKindBitLocker)
		if err != nil || fmt.Sprint(ids) != "[{A} {B}]" {
			t.Fatalf("protector ids %v %v", ids, err)
		}
		rows, _, _ := db.ListAudit(ctx, org.ID, store.AuditFilter{TargetID: dev.ID, Action: "device.recovery_key_escrowed"}, store.Page{})
		if len(rows) != 3 {
			t.Fatalf("escrow audits %d", len(rows))
		}
		for _, r := range rows {
			if strings.Contains(string(r.After), "sealed") {
				t.Fatalf("audit carries the secret: %s", r.After)
			}
		}
		other := storetest.Org(t, db, domain.PlanPro)
		if _, err := db.ListRecoveryKeys(ctx, other.ID, dev.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another org listed the keys: %v", err)
		}
	})
}

// TestAgentModeRecorded: a Hello or a report that announces a test knob is stored on the
// agent, shown in the tracking view, audited, and flags the device for review with a
// reason naming the knob; an unchanged report takes the fast path and writes no audit.
func TestAgentModeRecorded(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		a := enrolledAgent(t, db, org.ID, "u-mode")
		out, err := db.ApplyInventory(ctx, org.ID, a.ID, report("SN-MODE", nil))
		if err != nil || out.DeviceID == "" {
			t.Fatalf("link: %+v %v", out, err)
		}
		tr, _ := db.GetDeviceTracking(ctx, org.ID, out.DeviceID)
		if tr.AgentMode.Any() || strings.Contains(tr.ReviewReason, "dry-run") {
			t.Fatalf("release agent shown with a mode: %+v", tr)
		}
		dry := report("SN-MODE", nil)
		dry.Mode = store.AgentMode{DryRun: true}
		if _, err := db.ApplyInventory(ctx, org.ID, a.ID, dry); err != nil {
			t.Fatal(err)
		}
		tr, _ = db.GetDeviceTracking(ctx, org.ID, out.DeviceID)
		if !tr.AgentMode.DryRun || tr.AgentMode.SerialOverridden || !tr.NeedsReview || !strings.Contains(tr.ReviewReason, "dry-run") {
			t.Fatalf("dry-run report: %+v", tr)
		}
		before := len(storetest.AuditActions(t, db, org.ID, a.ID))
		if _, err := db.ApplyInventory(ctx, org.ID, a.ID, dry); err != nil {
			t.Fatal(err)
		}
		if after := len(storetest.AuditActions(t, db, org.ID, a.ID)); after != before {
			t.Fatalf("an unchanged mode wrote %d audit rows", after-before)
		}
		// The Hello announces a serial override and a held lock.
		if err := db.RecordAgentHello(ctx, org.ID, a.ID, store.AgentMode{DryRun: true, SerialOverridden: true}, "cmd-lock-1"); err != nil {
			t.Fatal(err)
		}
		tr, _ = db.GetDeviceTracking(ctx, org.ID, out.DeviceID)
		if !tr.AgentMode.SerialOverridden || tr.LockedByCommandID != "cmd-lock-1" || !strings.Contains(tr.ReviewReason, "test-override serial") ||
			strings.Count(tr.ReviewReason, "dry-run") != 1 {
			t.Fatalf("hello: %+v", tr)
		}
		ag, _ := db.GetAgent(ctx, org.ID, a.ID)
		if ag.Mode.String() != "dry_run,serial_overridden" || ag.LockedByCommandID != "cmd-lock-1" {
			t.Fatalf("agent %+v", ag)
		}
		acts := strings.Join(storetest.AuditActions(t, db, org.ID, a.ID), " ")
		if strings.Count(acts, "agent.mode_changed") != 2 || !strings.Contains(acts, "agent.held_lock") {
			t.Fatalf("agent audit %q", acts)
		}
		// Back to a release build: the mode clears, the review stays for an admin.
		if err := db.RecordAgentHello(ctx, org.ID, a.ID, store.AgentMode{}, ""); err != nil {
			t.Fatal(err)
		}
		tr, _ = db.GetDeviceTracking(ctx, org.ID, out.DeviceID)
		if tr.AgentMode.Any() || tr.LockedByCommandID != "" || !tr.NeedsReview {
			t.Fatalf("after release hello: %+v", tr)
		}
	})
}

// TestMigrationTurnsAcknowledgedIntoReceived rolls 00203 back, stores a command the old
// way (acknowledged, acknowledged_at) and migrates again.
func TestMigrationTurnsAcknowledgedIntoReceived(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir, dialect := "sqlite/migrations", goose.DialectSQLite3
		if db.Dialect == store.Postgres {
			dir, dialect = "postgres/migrations", goose.DialectPostgres
		}
		p, err := goose.NewProvider(dialect, db.SQL, os.DirFS(dir), goose.WithAllowOutofOrder(true), goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		// 00601 adds a column to device_commands; SQLite's 00203 rebuilds the table, so
		// 00601 comes off first and goes back on last.
		if _, err := p.ApplyVersion(ctx, 601, false); err != nil {
			t.Fatalf("down 00601: %v", err)
		}
		if _, err := p.ApplyVersion(ctx, 203, false); err != nil {
			t.Fatalf("down 00203: %v", err)
		}
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-OLD")
		at := domain.Now().Add(-time.Hour).Truncate(time.Millisecond)
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO device_commands (id, org_id, device_id, type, state, channel, created_at, updated_at,
			acknowledged_at, expires_at) VALUES ('old-1', $1, $2, 'lock', 'acknowledged', 'agent', $3, $3, $3, $4)`, org.ID, dev.ID, at, at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.ApplyVersion(ctx, 203, true); err != nil {
			t.Fatalf("up 00203: %v", err)
		}
		if _, err := p.ApplyVersion(ctx, 601, true); err != nil {
			t.Fatalf("up 00601: %v", err)
		}
		c, err := db.GetDeviceCommand(ctx, org.ID, "old-1")
		if err != nil {
			t.Fatal(err)
		}
		if c.State != store.CommandReceived || c.ReceivedAt == nil || !c.ReceivedAt.Equal(at) || c.Evidence != nil {
			t.Fatalf("migrated %+v", c)
		}
		if err := db.Ready(ctx); err != nil {
			t.Fatalf("after the round trip: %v", err)
		}
	})
}

// TestCommandNotice reads the announcement payloads of this and of an older replica.
func TestCommandNotice(t *testing.T) {
	for _, c := range []struct{ payload, id, device string }{
		{"cmd1 dev1", "cmd1", "dev1"},
		{"cmd1", "cmd1", ""}, // an older replica's: the id alone
		{"cmd1 ", "cmd1", ""},
	} {
		id, dev := store.CommandNotice(c.payload)
		if id != c.id || dev != c.device {
			t.Errorf("CommandNotice(%q) = %q, %q; want %q, %q", c.payload, id, dev, c.id, c.device)
		}
	}
}
