package agentapi

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// fakeStream records what the hub writes to an agent's stream.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	sent []*agentv1.ConnectResponse
}

func (f *fakeStream) Context() context.Context { return f.ctx }
func (f *fakeStream) Send(m *agentv1.ConnectResponse) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return nil
}
func (f *fakeStream) Recv() (*agentv1.ConnectRequest, error) { select {} }

func (f *fakeStream) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, m := range f.sent {
		if c := m.GetCommand(); c != nil {
			ids = append(ids, c.GetId())
		}
	}
	return ids
}

// TestClaimedCommandFollowsNewerStream: a command claimed for a stream that was replaced
// while it was being claimed (the newer stream read its open commands before the command
// existed) goes out on the newer stream, claimed again for it, instead of waiting for the
// agent's next reconnect.
func TestClaimedCommandFollowsNewerStream(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	org := storetest.Org(t, db, domain.PlanPro)
	dev := storetest.Device(t, db, org.ID, "SN-RACE")
	s := &Server{db: db, cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	s.Commands = &Commands{db: db, cfg: s.cfg}
	h := newHub(s)
	s.hub = h
	id := identity.Agent{OrgID: org.ID, AgentID: "agent-1"}
	oldStream := &fakeStream{ctx: ctx}
	old := h.register(ctx, oldStream, id, dev.ID, &agentv1.Hello{})
	cmd := store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: store.CommandMessage, Params: map[string]string{"body": "hi"},
		Channel: store.ChannelAgent, TargetSerial: "SN-RACE", ExpiresAt: time.Now().Add(time.Hour)}
	if _, err := db.CreateClaimedDeviceCommand(ctx, &cmd, id.AgentID); err != nil {
		t.Fatal(err)
	}
	newStream := &fakeStream{ctx: ctx}
	h.register(ctx, newStream, id, dev.ID, &agentv1.Hello{}) // ends old
	h.sendClaimed(ctx, old, cmd)
	if got := oldStream.commands(); len(got) != 0 {
		t.Fatalf("the ended stream was written: %v", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(newStream.commands()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the command never reached the newer stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := newStream.commands(); len(got) != 1 || got[0] != cmd.ID {
		t.Fatalf("newer stream got %v, want [%s]", got, cmd.ID)
	}
	stored, err := db.GetDeviceCommand(ctx, org.ID, cmd.ID)
	if err != nil || stored.State != store.CommandSent || stored.Attempts != 2 {
		t.Fatalf("stored %+v %v: want sent, attempt 2", stored, err)
	}
}
