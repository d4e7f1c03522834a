package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Warehouse is a storage location.
type Warehouse struct {
	ID        string         `json:"id"`
	OrgID     string         `json:"org_id"`
	Name      string         `json:"name"`
	Address   domain.Address `json:"address"`
	CreatedAt time.Time      `json:"created_at"`
}

// Intake is the record of a device arriving at a warehouse.
type Intake struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	DeviceID       string     `json:"device_id"`
	WarehouseID    string     `json:"warehouse_id"`
	RetrievalID    string     `json:"retrieval_id,omitempty"`
	Condition      string     `json:"condition"`
	PhotoURLs      []string   `json:"photo_urls"`
	Accessories    []string   `json:"accessories"`
	ActivationLock bool       `json:"activation_lock"`
	FirmwareLock   bool       `json:"firmware_lock"`
	Accepted       bool       `json:"accepted"`
	RefusalReason  string     `json:"refusal_reason,omitempty"`
	ReceivedAt     time.Time  `json:"received_at"`
	StoredUntil    *time.Time `json:"stored_until,omitempty"`
}

// InsertWarehouse creates a warehouse; a duplicate name is ErrConflict.
func (db *DB) InsertWarehouse(ctx context.Context, w *Warehouse) error {
	if w.ID == "" {
		w.ID = domain.NewID()
	}
	w.CreatedAt = domain.Now()
	addr, _ := json.Marshal(w.Address)
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO warehouses (id, org_id, name, address, created_at) VALUES ($1, $2, $3, $4, $5)`,
			w.ID, w.OrgID, w.Name, string(addr), w.CreatedAt)
		if IsUniqueViolation(err) {
			return fmt.Errorf("warehouse %q exists: %w", w.Name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert warehouse: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, w.OrgID, "warehouse.created", "warehouse", w.ID, nil, w))
	})
}

// GetWarehouse reads a warehouse of an org.
func GetWarehouse(ctx context.Context, q Querier, orgID, id string) (Warehouse, error) {
	var w Warehouse
	var addr string
	err := q.QueryRowContext(ctx, `SELECT id, org_id, name, address, created_at FROM warehouses WHERE org_id = $1 AND id = $2`, orgID, id).
		Scan(&w.ID, &w.OrgID, &w.Name, &addr, &w.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("warehouse %s: %w", id, ErrNotFound)
	}
	_ = json.Unmarshal([]byte(addr), &w.Address)
	return w, err
}

// ListWarehouses returns an org's warehouses.
func (db *DB) ListWarehouses(ctx context.Context, orgID string) ([]Warehouse, error) {
	return queryAll(ctx, db.SQL, "list warehouses", func(s rowScanner) (Warehouse, error) {
		var w Warehouse
		var addr string
		if err := s.Scan(&w.ID, &w.OrgID, &w.Name, &addr, &w.CreatedAt); err != nil {
			return w, err
		}
		_ = json.Unmarshal([]byte(addr), &w.Address)
		return w, nil
	}, `SELECT id, org_id, name, address, created_at FROM warehouses WHERE org_id = $1 ORDER BY name`, orgID)
}

// InsertIntake records an intake (accepted or refused).
func InsertIntake(ctx context.Context, q Querier, in *Intake) error {
	if in.ID == "" {
		in.ID = domain.NewID()
	}
	if in.PhotoURLs == nil {
		in.PhotoURLs = []string{}
	}
	if in.Accessories == nil {
		in.Accessories = []string{}
	}
	photos, _ := json.Marshal(in.PhotoURLs)
	acc, _ := json.Marshal(in.Accessories)
	_, err := q.ExecContext(ctx, `INSERT INTO device_intakes (id, org_id, device_id, warehouse_id, retrieval_id, condition, photo_urls,
		accessories, activation_lock, firmware_lock, accepted, refusal_reason, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		in.ID, in.OrgID, in.DeviceID, in.WarehouseID, in.RetrievalID, in.Condition, string(photos), string(acc), in.ActivationLock,
		in.FirmwareLock, in.Accepted, in.RefusalReason, in.ReceivedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert intake: %w", err)
	}
	action := "warehouse.intake.accepted"
	if !in.Accepted {
		action = "warehouse.intake.refused"
	}
	return WriteAudit(ctx, q, AuditFor(ctx, in.OrgID, action, "device", in.DeviceID, nil, in))
}

// EndStorage closes a device's open stored period (it left the warehouse).
func EndStorage(ctx context.Context, q Querier, orgID, deviceID string, at time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE device_intakes SET stored_until = $1 WHERE org_id = $2 AND device_id = $3 AND accepted = $4
		AND stored_until IS NULL`, at.UTC(), orgID, deviceID, true)
	if err != nil {
		return fmt.Errorf("end storage of %s: %w", deviceID, err)
	}
	return nil
}

// ListIntakes returns a device's intake history (deviceID "" = the whole org), newest last.
func (db *DB) ListIntakes(ctx context.Context, orgID, deviceID string) ([]Intake, error) {
	query := `SELECT id, org_id, device_id, warehouse_id, retrieval_id, condition, photo_urls, accessories, activation_lock,
		firmware_lock, accepted, refusal_reason, received_at, stored_until FROM device_intakes WHERE org_id = $1`
	args := []any{orgID}
	if deviceID != "" {
		query += ` AND device_id = $2`
		args = append(args, deviceID)
	}
	return queryAll(ctx, db.SQL, "list intakes", scanIntake, query+` ORDER BY id`, args...)
}

func scanIntake(s rowScanner) (Intake, error) {
	var in Intake
	var photos, acc string
	if err := s.Scan(&in.ID, &in.OrgID, &in.DeviceID, &in.WarehouseID, &in.RetrievalID, &in.Condition, &photos, &acc,
		&in.ActivationLock, &in.FirmwareLock, &in.Accepted, &in.RefusalReason, &in.ReceivedAt, &in.StoredUntil); err != nil {
		return in, err
	}
	_ = json.Unmarshal([]byte(photos), &in.PhotoURLs)
	_ = json.Unmarshal([]byte(acc), &in.Accessories)
	return in, nil
}

// StockCount is the number of devices in a state at a location.
type StockCount struct {
	WarehouseID   string `json:"warehouse_id"`
	EquipmentType string `json:"equipment_type"`
	State         string `json:"state"`
	Count         int    `json:"count"`
}

// StockCounts counts devices currently stored (open accepted intake) per warehouse,
// equipment type and state.
func (db *DB) StockCounts(ctx context.Context, orgID string) ([]StockCount, error) {
	return queryAll(ctx, db.SQL, "stock counts", func(s rowScanner) (StockCount, error) {
		var c StockCount
		err := s.Scan(&c.WarehouseID, &c.EquipmentType, &c.State, &c.Count)
		return c, err
	}, `SELECT i.warehouse_id, d.equipment_type, d.state, COUNT(*) FROM device_intakes i
		JOIN devices d ON d.id = i.device_id WHERE i.org_id = $1 AND i.accepted = $2 AND i.stored_until IS NULL
		GROUP BY i.warehouse_id, d.equipment_type, d.state ORDER BY i.warehouse_id, d.equipment_type, d.state`, orgID, true)
}

// StoredPeriod is one stay of a device at a warehouse (for monthly billing counts).
type StoredPeriod struct {
	WarehouseID string
	DeviceID    string
	From        time.Time
	Until       *time.Time
}

// StoredPeriods lists accepted stays overlapping [from, to).
func (db *DB) StoredPeriods(ctx context.Context, orgID string, from, to time.Time) ([]StoredPeriod, error) {
	return queryAll(ctx, db.SQL, "stored periods", func(s rowScanner) (StoredPeriod, error) {
		var p StoredPeriod
		err := s.Scan(&p.WarehouseID, &p.DeviceID, &p.From, &p.Until)
		return p, err
	}, `SELECT warehouse_id, device_id, received_at, stored_until FROM device_intakes
		WHERE org_id = $1 AND accepted = $2 AND received_at < $3 AND (stored_until IS NULL OR stored_until >= $4)`,
		orgID, true, to.UTC(), from.UTC())
}
