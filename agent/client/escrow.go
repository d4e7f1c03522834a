package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/internal/securefs"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// escrowJSON lists the recovery protectors the server confirmed holding:
// ids only, never a password. A protector not listed (new volume, rotated
// password) is sent again.
const escrowJSON = "escrow.json"

type escrowRecord struct {
	// Confirmed: protector id → when the server confirmed it.
	Confirmed map[string]time.Time `json:"confirmed"`
}

func (s Store) loadEscrow() (escrowRecord, error) {
	r := escrowRecord{Confirmed: map[string]time.Time{}}
	b, err := os.ReadFile(s.path(escrowJSON))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("client: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("client: parse %s: %w", escrowJSON, err)
	}
	if r.Confirmed == nil {
		r.Confirmed = map[string]time.Time{}
	}
	return r, nil
}

func (s Store) saveEscrow(r escrowRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return securefs.WriteFile(s.path(escrowJSON), append(b, '\n'))
}

// escrowKeys sends the recovery keys the server has not confirmed yet, when
// the planner can read them (Windows BitLocker). It runs at start and on
// every inventory tick; a failure is retried on the next tick. Passwords are
// never logged or written to disk.
func (a *Agent) escrowKeys(ctx context.Context) error {
	reader, ok := a.o.Planner.(actions.RecoveryKeyReader)
	if !ok {
		return nil
	}
	keys, err := reader.RecoveryKeys(ctx)
	if err != nil {
		return fmt.Errorf("client: read recovery keys: %w", err)
	}
	a.escrowMu.Lock()
	defer a.escrowMu.Unlock()
	rec, err := a.store.loadEscrow()
	if err != nil {
		return err
	}
	present := map[string]bool{}
	var firstErr error
	sent := 0
	for _, k := range keys {
		if k.ProtectorID == "" || k.Password == "" {
			continue
		}
		present[k.ProtectorID] = true
		if _, done := rec.Confirmed[k.ProtectorID]; done {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := a.api.EscrowRecoveryKey(cctx, &agentv1.EscrowRecoveryKeyRequest{Kind: k.Kind, Volume: k.Volume,
			ProtectorId: k.ProtectorID, RecoveryPassword: k.Password})
		cancel()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("client: escrow recovery key of %s (protector %s): %w", k.Volume, k.ProtectorID, err)
			}
			continue
		}
		rec.Confirmed[k.ProtectorID] = time.Now().UTC()
		sent++
		a.log.Info("recovery key escrowed", "kind", k.Kind, "volume", k.Volume, "protector_id", k.ProtectorID)
	}
	// Forget protectors that are gone (rotated away), so the file does not grow.
	for id := range rec.Confirmed {
		if !present[id] {
			delete(rec.Confirmed, id)
		}
	}
	if err := a.store.saveEscrow(rec); err != nil && firstErr == nil {
		firstErr = err
	}
	ids := make([]string, 0, len(rec.Confirmed))
	for id := range rec.Confirmed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	a.status.update(func(s *Status) { s.EscrowedProtectors = ids })
	return firstErr
}
