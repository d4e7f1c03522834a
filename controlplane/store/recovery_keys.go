package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// RecoveryKindBitLocker is the kind of a BitLocker recovery password.
const RecoveryKindBitLocker = "bitlocker"

// RecoveryKey is one escrowed disk-encryption recovery secret of a device volume. The
// secret itself is sealed by the caller (SecretSealed, with RecoveryKeyAAD) and never
// leaves the store in the clear.
type RecoveryKey struct {
	ID          string `json:"id"`
	OrgID       string `json:"-"`
	DeviceID    string `json:"device_id"`
	AgentID     string `json:"agent_id,omitempty"`
	Kind        string `json:"kind" enum:"bitlocker"`
	Volume      string `json:"volume"`
	ProtectorID string `json:"protector_id"`
	// SecretSealed is the sealed recovery password (secrets.Keyring).
	SecretSealed string    `json:"-"`
	EscrowedAt   time.Time `json:"escrowed_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// RecoveryKeyAAD binds a sealed recovery secret to its device, volume and protector, so
// a sealed value copied onto another row does not open.
func RecoveryKeyAAD(orgID, deviceID, volume, protectorID string) string {
	return "recovery-key:" + orgID + ":" + deviceID + ":" + volume + ":" + protectorID
}

const recoveryKeyCols = `id, org_id, device_id, agent_id, kind, volume, protector_id, secret_sealed, created_at, updated_at`

func scanRecoveryKey(s rowScanner) (RecoveryKey, error) {
	var k RecoveryKey
	err := s.Scan(&k.ID, &k.OrgID, &k.DeviceID, &k.AgentID, &k.Kind, &k.Volume, &k.ProtectorID, &k.SecretSealed, &k.EscrowedAt, &k.UpdatedAt)
	return k, err
}

// EscrowRecoveryKey stores (or replaces, for the same device, volume and protector) a
// sealed recovery secret, audited without the secret. replaced reports an existing row.
func (db *DB) EscrowRecoveryKey(ctx context.Context, k *RecoveryKey) (replaced bool, err error) {
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		now := domain.Now()
		old, err := scanRecoveryKey(tx.QueryRowContext(ctx, `SELECT `+recoveryKeyCols+` FROM device_recovery_keys
			WHERE org_id = $1 AND device_id = $2 AND volume = $3 AND protector_id = $4`, k.OrgID, k.DeviceID, k.Volume, k.ProtectorID))
		switch {
		case err == nil:
			replaced = true
			k.ID, k.EscrowedAt, k.UpdatedAt = old.ID, old.EscrowedAt, now
			if _, err := tx.ExecContext(ctx, `UPDATE device_recovery_keys SET secret_sealed = $1, agent_id = $2, kind = $3, updated_at = $4 WHERE id = $5`,
				k.SecretSealed, k.AgentID, k.Kind, now, k.ID); err != nil {
				return fmt.Errorf("update recovery key: %w", err)
			}
		case errors.Is(err, sql.ErrNoRows):
			k.ID, k.EscrowedAt, k.UpdatedAt = domain.NewID(), now, now
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_recovery_keys (`+recoveryKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
				k.ID, k.OrgID, k.DeviceID, k.AgentID, k.Kind, k.Volume, k.ProtectorID, k.SecretSealed, now); err != nil {
				return fmt.Errorf("insert recovery key: %w", err)
			}
		default:
			return fmt.Errorf("read recovery key: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, k.OrgID, "device.recovery_key_escrowed", "device", k.DeviceID, nil,
			map[string]any{"kind": k.Kind, "volume": k.Volume, "protector_id": k.ProtectorID, "agent_id": k.AgentID, "replaced": replaced}))
	})
	return replaced, err
}

// ListRecoveryKeys returns a device's escrowed recovery keys (sealed), newest first.
// Another org's device is ErrNotFound.
func (db *DB) ListRecoveryKeys(ctx context.Context, orgID, deviceID string) ([]RecoveryKey, error) {
	if _, err := GetDevice(ctx, db.SQL, orgID, deviceID); err != nil {
		return nil, err
	}
	return queryAll(ctx, db.SQL, "recovery keys of "+deviceID, scanRecoveryKey, `SELECT `+recoveryKeyCols+` FROM device_recovery_keys
		WHERE org_id = $1 AND device_id = $2 ORDER BY updated_at DESC, id DESC`, orgID, deviceID)
}

// EscrowedProtectorIDs returns the ids of a device's protectors of a kind whose secret
// the server holds (a lock names them: LockParams.escrowed_protector_ids).
func (db *DB) EscrowedProtectorIDs(ctx context.Context, orgID, deviceID, kind string) ([]string, error) {
	return queryAll(ctx, db.SQL, "escrowed protectors of "+deviceID, scanString, `SELECT protector_id FROM device_recovery_keys
		WHERE org_id = $1 AND device_id = $2 AND kind = $3 ORDER BY protector_id`, orgID, deviceID, kind)
}
