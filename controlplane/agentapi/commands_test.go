package agentapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// simAgent holds a Connect stream like the real agent: with autoDone it answers every
// command as a current agent does (received, running, then done with evidence signed by
// its key for lock, unlock and wipe) and counts deliveries per command id.
type simAgent struct {
	mu       sync.Mutex
	got      map[string]int
	cmds     chan *agentv1.Command
	done     chan struct{}
	err      error
	autoDone bool
	st       agentv1.AgentService_ConnectClient
	sendMu   sync.Mutex
	acks     chan struct{}
}

func (e *env) connect(t *testing.T, ag enrolledAgent, autoDone bool) (*simAgent, context.CancelFunc) {
	t.Helper()
	var respond func(*agentv1.Command) []*agentv1.CommandResult
	if autoDone {
		respond = func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) }
	}
	return e.connectWith(t, ag, &agentv1.Hello{AgentVersion: "test"}, respond)
}

// connectWith opens a stream with hello; respond (nil: none) gives the results to send
// for each delivered command.
func (e *env) connectWith(t *testing.T, ag enrolledAgent, hello *agentv1.Hello, respond func(*agentv1.Command) []*agentv1.CommandResult) (*simAgent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := e.agentClient(&ag.Cert).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("welcome: %v %v", m, err)
	}
	a := &simAgent{got: map[string]int{}, cmds: make(chan *agentv1.Command, 100), done: make(chan struct{}), autoDone: respond != nil, st: st,
		acks: make(chan struct{}, 16)}
	go func() {
		defer close(a.done)
		for {
			m, err := st.Recv()
			if err != nil {
				a.err = err
				return
			}
			if m.GetHeartbeatAck() != nil {
				a.acks <- struct{}{}
				continue
			}
			c := m.GetCommand()
			if c == nil {
				continue
			}
			a.mu.Lock()
			a.got[c.GetId()]++
			a.mu.Unlock()
			a.cmds <- c
			if respond != nil {
				for _, r := range respond(c) {
					_ = a.send(r)
				}
			}
		}
	}()
	return a, func() { cancel(); <-a.done }
}

// sync returns once the server has handled everything sent before it: the server
// handles a stream's messages in order, so its answer to a heartbeat comes after them.
func (a *simAgent) sync(t *testing.T) {
	t.Helper()
	a.sendMu.Lock()
	err := a.st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}})
	a.sendMu.Unlock()
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	select {
	case <-a.acks:
	case <-a.done:
		t.Fatalf("stream ended: %v", a.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat answer")
	}
}

// send sends one result on the stream.
func (a *simAgent) send(r *agentv1.CommandResult) error {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	return a.st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: r}})
}

func waitState(t *testing.T, db *store.DB, orgID, id, want string) store.DeviceCommand {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := db.GetDeviceCommand(context.Background(), orgID, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s is %s, want %s", id, c.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func linkedAgent(t *testing.T, e *env, serial string) (enrolledAgent, domain.Device) {
	t.Helper()
	dev := linuxDevice(t, e.db, e.org.ID, serial)
	secret, _ := e.secret(e.org.ID, enrollment.Options{})
	ag := e.enroll(secret, serial, "uuid-"+serial)
	if _, err := e.agentClient(&ag.Cert).ReportInventory(context.Background(), inventory(serial)); err != nil {
		t.Fatal(err)
	}
	return ag, dev
}

func TestCommandDelivery(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "token:test"})
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-CMD")

		// Online: delivered at once, with the target serial; the ack and result are recorded.
		sim, stop := e.connect(t, ag, true)
		cmd, created, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandLock,
			Params: map[string]string{"message": "call IT"}, IdempotencyKey: "lock-1"})
		if err != nil || !created {
			t.Fatalf("submit: %v %v", created, err)
		}
		got := <-sim.cmds
		if got.GetId() != cmd.ID || got.GetTargetSerial() != "SN-CMD" || got.GetLock().GetMessage() != "call IT" ||
			got.GetType() != agentv1.CommandType_COMMAND_TYPE_LOCK {
			t.Fatalf("delivered %+v", got)
		}
		done := waitState(t, db, e.org.ID, cmd.ID, store.CommandDone)
		if done.ReceivedAt == nil || done.StartedAt == nil || done.AgentID != ag.ID || len(done.Result) == 0 ||
			done.Evidence == nil || !done.Evidence.Verified {
			t.Fatalf("done command %+v", done)
		}
		// Duplicate submission: same command, nothing sent again.
		again, created, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandLock, IdempotencyKey: "lock-1"})
		if err != nil || created || again.ID != cmd.ID {
			t.Fatalf("duplicate submit: %v %v %v", again.ID, created, err)
		}
		stop()

		// Offline: queued, then delivered when the agent reconnects.
		waitOffline(t, db, e.org.ID, ag.ID)
		off, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandWipe, Confirm: "sn-cmd"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if c, _ := db.GetDeviceCommand(ctx, e.org.ID, off.ID); c.State != store.CommandQueued {
			t.Fatalf("offline command is %s", c.State)
		}
		sim, stop = e.connect(t, ag, true)
		got = <-sim.cmds
		if got.GetId() != off.ID || got.GetConfirmation() == nil || len(got.GetConfirmation().GetSignature()) == 0 {
			t.Fatalf("wipe delivered without confirmation: %+v", got)
		}
		waitState(t, db, e.org.ID, off.ID, store.CommandDone)
		stop()

		// A wipe without the serial is refused; audit has every transition of the lock.
		if _, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandWipe, Confirm: "WRONG"}); err != agentapi.ErrConfirmMismatch {
			t.Fatalf("wipe without serial: %v", err)
		}
		audit, _, _ := db.ListAudit(ctx, e.org.ID, store.AuditFilter{TargetID: cmd.ID}, store.Page{})
		var actions []string
		for _, a := range audit {
			actions = append(actions, a.Action)
		}
		want := []string{"device_command.queued", "device_command.sent", "device_command.received", "device_command.running", "device_command.done"}
		if fmt.Sprint(actions) != fmt.Sprint(want) {
			t.Fatalf("audit %v, want %v", actions, want)
		}
	})
}

func TestRestartLosesNoCommand(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-RST")
		cmd, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandCollectInventory})
		if err != nil {
			t.Fatal(err)
		}
		// Sent to a stream that dies before the agent answers: still resent after restart.
		sim, stop := e.connect(t, ag, false)
		<-sim.cmds
		stop()
		e.stop()
		// A new control plane on the same database (same keyring → same CA).
		srv2, _, _ := startServer(t, db, e.kr)
		e.srv = srv2
		sim, stop = e.connect(t, ag, true)
		defer stop()
		got := <-sim.cmds
		if got.GetId() != cmd.ID {
			t.Fatalf("after restart got %s", got.GetId())
		}
		c := waitState(t, db, e.org.ID, cmd.ID, store.CommandDone)
		if c.Attempts != 2 {
			t.Fatalf("attempts %d, want 2", c.Attempts)
		}
	})
}

// twoReplicas starts replica A (the returned env) and replica B, each with its own pool on
// one Postgres database (skipped without LANYARD_TEST_DATABASE_URL).
func twoReplicas(t *testing.T) (a, b *env) {
	t.Helper()
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	open := func() *store.DB {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	dbA, dbB := open(), open()
	if err := dbA.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a = newEnv(t, dbA, domain.PlanPro)
	srvB, _, _ := startServer(t, dbB, a.kr)
	return a, &env{t: t, db: dbB, kr: a.kr, ca: a.ca, srv: srvB, org: a.org}
}

func TestTwoReplicasDeliverOnce(t *testing.T) {
	ctx := context.Background()
	e, onB := twoReplicas(t)
	const n = 12
	type pair struct {
		sim *simAgent
		dev domain.Device
	}
	var pairs []pair
	for i := 0; i < n; i++ {
		ag, dev := linkedAgent(t, e, fmt.Sprintf("SN-REP-%02d", i))
		target := e
		if i%2 == 1 {
			target = onB
		}
		sim, stop := target.connect(t, ag, true)
		t.Cleanup(stop)
		pairs = append(pairs, pair{sim, dev})
	}
	// Every command is submitted on replica A; half the streams live on replica B.
	var ids []string
	for _, p := range pairs {
		for k := 0; k < 3; k++ {
			c, _, err := e.srv.Commands.Submit(ctx, e.org, p.dev.ID, agentapi.SubmitRequest{Type: store.CommandMessage,
				Params: map[string]string{"body": fmt.Sprint("hello ", k)}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
	}
	for _, id := range ids {
		waitState(t, e.db, e.org.ID, id, store.CommandDone)
	}
	for i, p := range pairs {
		p.sim.mu.Lock()
		if len(p.sim.got) != 3 {
			t.Errorf("agent %d got %d commands", i, len(p.sim.got))
		}
		for id, times := range p.sim.got {
			if times != 1 {
				t.Errorf("command %s delivered %d times", id, times)
			}
		}
		p.sim.mu.Unlock()
	}
}

func waitOffline(t *testing.T, db *store.DB, orgID, agentID string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := db.GetAgent(context.Background(), orgID, agentID)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Online {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("agent still online after its stream closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRevocationReachesOtherReplica(t *testing.T) {
	ctx := context.Background()
	e, onB := twoReplicas(t)
	ag, dev := linkedAgent(t, e, "SN-XREV")
	sim, stop := onB.connect(t, ag, true)
	defer stop()
	// Revoked through replica A; replica B holds the stream.
	if _, err := e.srv.RevokeDevice(ctx, e.org.ID, dev.ID, "stolen"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sim.done:
		// Ended from outside its Recv: gRPC says Canceled (endable.go); the next
		// stream is refused as revoked (TestRevokedOnOpenStream).
		wantCode(t, sim.err, codes.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("replica B kept the revoked agent's stream open")
	}
}
