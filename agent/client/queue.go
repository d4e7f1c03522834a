package client

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lanyardhq/lanyard/agent/internal/securefs"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Queue keeps command results on disk: a result is written to pending/
// before it is sent and moved to delivered/ once the server has confirmed
// it (a heartbeat acknowledged after the result was sent). Delivered results
// are kept for DeliveredTTL so a redelivered command id is answered with
// its stored result instead of being executed twice.
type Queue struct {
	dir string
	mu  sync.Mutex
}

// DeliveredTTL is how long delivered results are kept for deduplication.
const DeliveredTTL = 7 * 24 * time.Hour

// OpenQueue creates dir/pending and dir/delivered.
func OpenQueue(dir string) (*Queue, error) {
	for _, d := range []string{dir, filepath.Join(dir, "pending"), filepath.Join(dir, "delivered")} {
		if err := securefs.MkdirAll(d); err != nil {
			return nil, err
		}
	}
	return &Queue{dir: dir}, nil
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

func fileName(id string) string {
	if safeID.MatchString(id) {
		return id + ".pb"
	}
	sum := sha256.Sum256([]byte(id))
	return "h-" + hex.EncodeToString(sum[:16]) + ".pb"
}

func (q *Queue) path(box, id string) string { return filepath.Join(q.dir, box, fileName(id)) }

// Put stores r as pending (replacing an earlier result for the same id).
func (q *Queue) Put(r *agentv1.CommandResult) error {
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("client: queue marshal: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_ = os.Remove(q.path("delivered", r.GetCommandId()))
	return securefs.WriteFile(q.path("pending", r.GetCommandId()), b)
}

// Get returns the stored result for id (pending or delivered).
func (q *Queue) Get(id string) (*agentv1.CommandResult, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, box := range []string{"pending", "delivered"} {
		if r, err := readResult(q.path(box, id)); err == nil {
			return r, true
		}
	}
	return nil, false
}

// Pending returns pending results, oldest first.
func (q *Queue) Pending() ([]*agentv1.CommandResult, error) {
	return q.list("pending")
}

// Unfinished returns the results, pending or delivered, that are not
// terminal (received, running, or an old agent's acknowledged): after a
// restart their commands will never finish.
func (q *Queue) Unfinished() ([]*agentv1.CommandResult, error) {
	var out []*agentv1.CommandResult
	for _, box := range []string{"pending", "delivered"} {
		rs, err := q.list(box)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			switch r.GetState() {
			case agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED, agentv1.CommandState_COMMAND_STATE_RECEIVED,
				agentv1.CommandState_COMMAND_STATE_RUNNING:
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (q *Queue) list(box string) ([]*agentv1.CommandResult, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(q.dir, box))
	if err != nil {
		return nil, fmt.Errorf("client: queue: %w", err)
	}
	type item struct {
		r *agentv1.CommandResult
		t time.Time
	}
	var items []item
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".pb" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		r, err := readResult(filepath.Join(q.dir, box, e.Name()))
		if err != nil {
			continue
		}
		items = append(items, item{r, info.ModTime()})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].t.Before(items[j].t) })
	out := make([]*agentv1.CommandResult, len(items))
	for i, it := range items {
		out[i] = it.r
	}
	return out, nil
}

// MarkDelivered moves id's result to delivered/ unless a newer pending
// result for it replaced the one that was sent (same state check).
func (q *Queue) MarkDelivered(id string, state agentv1.CommandState) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.path("pending", id)
	r, err := readResult(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.GetState() != state {
		return nil // a later state is waiting to be sent
	}
	return os.Rename(p, q.path("delivered", id))
}

// Prune deletes delivered results older than DeliveredTTL.
func (q *Queue) Prune(now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dir := filepath.Join(q.dir, "delivered")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > DeliveredTTL {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func readResult(p string) (*agentv1.CommandResult, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	r := &agentv1.CommandResult{}
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("client: queue %s: %w", p, err)
	}
	return r, nil
}
