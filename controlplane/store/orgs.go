package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// CreateOrg inserts an organization.
func CreateOrg(ctx context.Context, q Querier, o *domain.Org) error {
	if o.ID == "" {
		o.ID = domain.NewID()
	}
	now := domain.Now()
	o.CreatedAt, o.UpdatedAt = now, now
	if o.TimeZone == "" {
		o.TimeZone = "UTC"
	}
	settings, err := json.Marshal(o.Settings)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO orgs (id, name, plan, time_zone, settings, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, o.ID, o.Name, string(o.Plan), o.TimeZone, string(settings), now, now)
	if err != nil {
		return fmt.Errorf("create org %q: %w", o.Name, err)
	}
	return nil
}

// GetOrg returns one organization.
func (db *DB) GetOrg(ctx context.Context, id string) (domain.Org, error) {
	return GetOrg(ctx, db.SQL, id)
}

// GetOrg reads an org through q.
func GetOrg(ctx context.Context, q Querier, id string) (domain.Org, error) {
	var o domain.Org
	var plan, settings string
	err := q.QueryRowContext(ctx, `SELECT id, name, plan, time_zone, settings, created_at, updated_at FROM orgs WHERE id = $1`, id).
		Scan(&o.ID, &o.Name, &plan, &o.TimeZone, &settings, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("org %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("get org %s: %w", id, err)
	}
	o.Plan = domain.Plan(plan)
	if err := json.Unmarshal([]byte(settings), &o.Settings); err != nil {
		return o, fmt.Errorf("org %s settings: %w", id, err)
	}
	return o, nil
}

// ListOrgs returns every organization (operator use: background jobs iterate orgs).
func (db *DB) ListOrgs(ctx context.Context) ([]domain.Org, error) {
	ids, err := QueryStrings(ctx, db.SQL, `SELECT id FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	out := make([]domain.Org, 0, len(ids))
	for _, id := range ids {
		o, err := db.GetOrg(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// UpdateOrg writes name, plan, time zone and settings, auditing the change.
func (db *DB) UpdateOrg(ctx context.Context, o domain.Org) (domain.Org, error) {
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := GetOrg(ctx, tx, o.ID)
		if err != nil {
			return err
		}
		settings, err := json.Marshal(o.Settings)
		if err != nil {
			return err
		}
		o.UpdatedAt = domain.Now()
		if _, err := tx.ExecContext(ctx, `UPDATE orgs SET name = $1, plan = $2, time_zone = $3, settings = $4, updated_at = $5 WHERE id = $6`,
			o.Name, string(o.Plan), o.TimeZone, string(settings), o.UpdatedAt, o.ID); err != nil {
			return fmt.Errorf("update org %s: %w", o.ID, err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, o.ID, "org.updated", "org", o.ID, before, o))
	})
	if err != nil {
		return domain.Org{}, err
	}
	return db.GetOrg(ctx, o.ID)
}
