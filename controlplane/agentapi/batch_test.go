package agentapi

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestPresenceLastChangeWins: a batch can hold a stream's close and the reconnect of the
// same agent (or the other way round); the agent ends in the state of its last change.
func TestPresenceLastChangeWins(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		agent := func(hash string) string {
			s := store.EnrollmentSecret{OrgID: org.ID, Name: "p", Prefix: "p"}
			if err := db.CreateEnrollmentSecret(ctx, &s, hash); err != nil {
				t.Fatal(err)
			}
			a := store.Agent{}
			if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
				t.Fatal(err)
			}
			return a.ID
		}
		closedLast, reopenedLast := agent("presence-1"), agent("presence-2")
		b := newPresenceBatcher(db)
		outs, err := b.flush(ctx, []presence{
			{agentID: closedLast, online: true}, {agentID: reopenedLast, online: false},
			{agentID: closedLast, online: false}, {agentID: reopenedLast, online: true},
		})
		if err != nil || len(outs) != 4 {
			t.Fatalf("flush: %d results, %v", len(outs), err)
		}
		for id, want := range map[string]bool{closedLast: false, reopenedLast: true} {
			a, err := db.GetAgent(ctx, org.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Online != want || a.LastSeenAt == nil {
				t.Errorf("agent %s: online %v (want %v), last seen %v", id, a.Online, want, a.LastSeenAt)
			}
		}
	})
}
