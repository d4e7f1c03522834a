package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/securefs"
)

// Status is what the running agent writes to status.json for
// `lanyard-agent status`.
type Status struct {
	Version      string `json:"version"`
	PID          int    `json:"pid"`
	AgentID      string `json:"agent_id,omitempty"`
	OrgID        string `json:"org_id,omitempty"`
	DeviceID     string `json:"device_id,omitempty"`
	SerialNumber string `json:"serial_number"`
	HardwareUUID string `json:"hardware_uuid,omitempty"`
	// DryRun and SerialOverridden are the test knobs in effect (test builds
	// only; a release build never sets them).
	DryRun           bool `json:"dry_run"`
	SerialOverridden bool `json:"serial_overridden"`
	// Locked: the device is held locked by LockedByCommandID and the lock is
	// re-asserted at every start; LockReasserted* is the last re-assert.
	Locked             bool      `json:"locked"`
	LockedByCommandID  string    `json:"locked_by_command_id,omitempty"`
	LockedAt           time.Time `json:"locked_at,omitzero"`
	LockReassertedAt   time.Time `json:"lock_reasserted_at,omitzero"`
	LockReassertState  string    `json:"lock_reassert_state,omitempty"`
	LockReassertError  string    `json:"lock_reassert_error,omitempty"`
	EscrowedProtectors []string  `json:"escrowed_protectors,omitempty"`
	// GRPCAddress is the replica the stream is connected to, one of GRPCAddresses.
	GRPCAddress      string    `json:"grpc_address,omitempty"`
	GRPCAddresses    []string  `json:"grpc_addresses,omitempty"`
	Connected        bool      `json:"connected"`
	ConnectedSince   time.Time `json:"connected_since,omitzero"`
	LastHeartbeatAck time.Time `json:"last_heartbeat_ack,omitzero"`
	LastInventory    time.Time `json:"last_inventory,omitzero"`
	InventoryHash    string    `json:"inventory_hash,omitempty"`
	CertNotAfter     time.Time `json:"cert_not_after,omitzero"`
	CertRenewAfter   time.Time `json:"cert_renew_after,omitzero"`
	PendingResults   int       `json:"pending_results"`
	CommandsHandled  int       `json:"commands_handled"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorAt      time.Time `json:"last_error_at,omitzero"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// statusFile serializes writes of status.json.
type statusFile struct {
	path string
	mu   sync.Mutex
	s    Status
}

func (f *statusFile) update(fn func(*Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.s)
	f.s.UpdatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(f.s, "", "  ")
	if err == nil {
		_ = securefs.WriteFile(f.path, append(b, '\n'))
	}
}

func (f *statusFile) snapshot() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

// ReadStatus reads status.json from a state directory.
func ReadStatus(stateDir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(stateDir, statusJSON))
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("client: no status file in %s (agent never ran)", stateDir)
	}
	if err != nil {
		return s, fmt.Errorf("client: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("client: parse status: %w", err)
	}
	return s, nil
}
