package client

import (
	"context"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// commit implements actions.Executor.Commit: the Done result of a plan with
// a final irreversible step (power-off, reset) is stored, sent, and waited
// for until the server confirmed it (a heartbeat sent after it was
// acknowledged), at most CommitTimeout. The Executor runs the final step
// when commit returns, confirmed or not.
func (a *Agent) commit(ctx context.Context, kind actions.Kind, r actions.Result) error {
	m := a.resultMessage(kind, r)
	confirmed := a.awaitDelivery(m.GetCommandId(), m.GetState())
	defer a.stopAwait(m.GetCommandId())
	if err := a.deliver(m); err != nil {
		return err
	}
	a.kickConnect() // offline: reconnect now rather than after the backoff
	t := time.NewTimer(a.o.CommitTimeout)
	defer t.Stop()
	select {
	case <-confirmed:
		a.log.Info("result confirmed by the server before the final step", "command_id", m.GetCommandId(), "state", m.GetState().String())
		return nil
	case <-t.C:
		return fmt.Errorf("client: no confirmation from the server within %s", a.o.CommitTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

type waiter struct {
	state agentv1.CommandState
	ch    chan struct{}
}

// awaitDelivery returns a channel closed once the result (id, state) is
// confirmed delivered.
func (a *Agent) awaitDelivery(id string, state agentv1.CommandState) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiters == nil {
		a.waiters = map[string]waiter{}
	}
	w := waiter{state: state, ch: make(chan struct{})}
	a.waiters[id] = w
	return w.ch
}

func (a *Agent) stopAwait(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.waiters, id)
}

func (a *Agent) notifyDelivered(id string, state agentv1.CommandState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.waiters[id]; ok && w.state == state {
		close(w.ch)
		delete(a.waiters, id)
	}
}

// kickConnect cuts a reconnect backoff short.
func (a *Agent) kickConnect() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}
