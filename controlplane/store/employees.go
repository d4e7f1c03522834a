package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

const employeeCols = `id, org_id, source, external_id, hr, equipment_type, notes, created_at, updated_at`

func scanEmployee(s interface{ Scan(...any) error }) (domain.Employee, error) {
	var e domain.Employee
	var hr string
	if err := s.Scan(&e.ID, &e.OrgID, &e.Source, &e.ExternalID, &hr, &e.EquipmentType, &e.Notes, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(hr), &e.HR); err != nil {
		return e, fmt.Errorf("employee %s hr fields: %w", e.ID, err)
	}
	if e.HR.Departments == nil {
		e.HR.Departments = []string{}
	}
	return e, nil
}

// departmentsKey stores departments as "|a|b|" so a filter is one LIKE on both dialects.
func departmentsKey(ds []string) string {
	var b strings.Builder
	b.WriteString("|")
	for _, d := range ds {
		b.WriteString(strings.ReplaceAll(strings.ToLower(d), "|", "/"))
		b.WriteString("|")
	}
	return b.String()
}

func employeeArgs(e *domain.Employee) ([]any, error) {
	if e.HR.Departments == nil {
		e.HR.Departments = []string{}
	}
	hr, err := json.Marshal(e.HR)
	if err != nil {
		return nil, err
	}
	var start, term any
	if e.HR.StartDate != nil {
		start = e.HR.StartDate.String()
	}
	if e.HR.TerminationDate != nil {
		term = e.HR.TerminationDate.String()
	}
	return []any{e.ID, e.OrgID, e.Source, e.ExternalID, string(hr), e.HR.FirstName, e.HR.LastName,
		strings.ToLower(e.HR.WorkEmail), string(e.HR.Status), string(e.HR.MemberType), departmentsKey(e.HR.Departments),
		start, term, utcPtr(e.HR.SourceUpdatedAt), e.EquipmentType, e.Notes, e.CreatedAt, e.UpdatedAt}, nil
}

// InsertEmployee creates an employee row. HR sync and manual creation both use it.
func InsertEmployee(ctx context.Context, q Querier, e *domain.Employee) error {
	if e.ID == "" {
		e.ID = domain.NewID()
	}
	now := domain.Now()
	e.CreatedAt, e.UpdatedAt = now, now
	args, err := employeeArgs(e)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO employees (id, org_id, source, external_id, hr, first_name, last_name, work_email,
		status, member_type, departments, start_date, termination_date, source_updated_at, equipment_type, notes, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, args...)
	if IsUniqueViolation(err) {
		return fmt.Errorf("employee %s/%s exists: %w", e.Source, e.ExternalID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert employee: %w", err)
	}
	return nil
}

// UpdateEmployee rewrites every column of an existing employee (HR sync writes HR
// fields through it; the API only changes the Lanyard-owned ones).
func UpdateEmployee(ctx context.Context, q Querier, e *domain.Employee) error {
	e.UpdatedAt = domain.Now()
	args, err := employeeArgs(e)
	if err != nil {
		return err
	}
	// Drop created_at (index 16): it never changes and Postgres rejects unused parameters.
	args = append(args[:16], args[17])
	res, err := q.ExecContext(ctx, `UPDATE employees SET source = $3, external_id = $4, hr = $5, first_name = $6, last_name = $7,
		work_email = $8, status = $9, member_type = $10, departments = $11, start_date = $12, termination_date = $13,
		source_updated_at = $14, equipment_type = $15, notes = $16, updated_at = $17
		WHERE id = $1 AND org_id = $2`, args...)
	if err != nil {
		return fmt.Errorf("update employee %s: %w", e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("employee %s: %w", e.ID, ErrNotFound)
	}
	return nil
}

// GetEmployee reads one employee of an org.
func GetEmployee(ctx context.Context, q Querier, orgID, id string) (domain.Employee, error) {
	e, err := scanEmployee(q.QueryRowContext(ctx, `SELECT `+employeeCols+` FROM employees WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("employee %s: %w", id, ErrNotFound)
	}
	return e, err
}

// GetEmployee is the DB method form.
func (db *DB) GetEmployee(ctx context.Context, orgID, id string) (domain.Employee, error) {
	return GetEmployee(ctx, db.SQL, orgID, id)
}

// GetEmployeeByExternalID finds an employee by HR identity key. The redundant
// external_id <> ” lets both engines use the partial unique index.
func GetEmployeeByExternalID(ctx context.Context, q Querier, orgID, source, externalID string) (domain.Employee, error) {
	e, err := scanEmployee(q.QueryRowContext(ctx, `SELECT `+employeeCols+` FROM employees WHERE org_id = $1 AND source = $2 AND external_id = $3 AND external_id <> ''`,
		orgID, source, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("employee %s/%s: %w", source, externalID, ErrNotFound)
	}
	return e, err
}

// EmployeeFilter narrows an employee listing.
type EmployeeFilter struct {
	Status     domain.EmploymentStatus
	Department string
	MemberType domain.MemberType
	Email      string
}

// ListEmployees returns one page of an org's employees.
func (db *DB) ListEmployees(ctx context.Context, orgID string, f EmployeeFilter, p Page) ([]domain.Employee, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("status = ?", string(f.Status))
	w.addIf("member_type = ?", string(f.MemberType))
	if f.Department != "" {
		w.add("departments LIKE ?", "%"+departmentsKey([]string{f.Department})+"%")
	}
	w.addIf("work_email = ?", strings.ToLower(f.Email))
	return listPage(ctx, db.SQL, "list employees", scanEmployee, func(e domain.Employee) string { return e.ID }, p,
		`SELECT `+employeeCols+` FROM employees`, w)
}

// EmployeeLocalPatch holds the Lanyard-owned fields an admin may edit.
type EmployeeLocalPatch struct {
	EquipmentType *string
	Notes         *string
}

// PatchEmployeeLocal edits Lanyard-owned fields, auditing before and after.
func (db *DB) PatchEmployeeLocal(ctx context.Context, orgID, id string, p EmployeeLocalPatch) (domain.Employee, error) {
	var out domain.Employee
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := GetEmployee(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		out = before
		if p.EquipmentType != nil {
			out.EquipmentType = *p.EquipmentType
		}
		if p.Notes != nil {
			out.Notes = *p.Notes
		}
		if err := UpdateEmployee(ctx, tx, &out); err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "employee.local_updated", "employee", id, before, out))
	})
	return out, err
}

// EmployeeQuery is an employee search: the EmployeeFilter equality filters plus free-text
// search, a sort and keyset paging.
type EmployeeQuery struct {
	EmployeeFilter
	// Q matches the name ("first last") or work email (case-insensitive substring).
	Q string
	// Sort is one of EmployeeSorts ("" = created); Desc reverses it.
	Sort  string
	Desc  bool
	Page  Page
	Total bool
}

// EmployeeSorts are the orders an employee list supports.
var EmployeeSorts = []string{"created", "name", "email", "status", "start_date"}

func employeeSortKey(sort string) (sortKey, bool) {
	switch sort {
	case "", "created":
		return sortKey{Expr: "created_at", Time: true}, true
	case "name":
		return sortKey{Expr: "lower(first_name || ' ' || last_name)"}, true
	case "email":
		return sortKey{Expr: "work_email"}, true
	case "status":
		return sortKey{Expr: "status"}, true
	case "start_date":
		// Dates are stored as YYYY-MM-DD text, which sorts as dates; no date sorts first.
		return sortKey{Expr: "COALESCE(start_date, '')"}, true
	}
	return sortKey{}, false
}

// EmployeePage is one page of an employee search.
type EmployeePage struct {
	Items      []domain.Employee
	NextCursor string
	Total      *int
}

// SearchEmployees returns one page of an org's employees matching q, in q's order (keyset
// paging on (sort key, id), see SearchDevices).
func (db *DB) SearchEmployees(ctx context.Context, orgID string, q EmployeeQuery) (EmployeePage, error) {
	var out EmployeePage
	key, ok := employeeSortKey(q.Sort)
	if !ok {
		return out, fmt.Errorf("%w: sort must be one of %s", ErrInvalidInput, strings.Join(EmployeeSorts, ", "))
	}
	sortName := q.Sort
	if sortName == "" {
		sortName = "created"
	}
	cur, err := decodeListCursor(q.Page.Cursor, sortName, q.Desc)
	if err != nil {
		return out, err
	}
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("status = ?", string(q.Status))
	w.addIf("member_type = ?", string(q.MemberType))
	if q.Department != "" {
		w.add("departments LIKE ?", "%"+departmentsKey([]string{q.Department})+"%")
	}
	w.addIf("work_email = ?", strings.ToLower(q.Email))
	if s := strings.TrimSpace(q.Q); s != "" {
		w.add(`(lower(first_name || ' ' || last_name) LIKE ? ESCAPE '\' OR work_email LIKE ? ESCAPE '\')`, likePattern(s))
	}
	if q.Total {
		n, err := countRows(ctx, db.SQL, "search employees", "employees", w)
		if err != nil {
			return out, err
		}
		out.Total = &n
	}
	tail, err := w.seek(key, "id", q.Desc, cur, q.Page.limit())
	if err != nil {
		return out, err
	}
	var keys []string
	err = queryEach(ctx, db.SQL, "search employees", func(s rowScanner) error {
		var hr string
		var k any
		var e domain.Employee
		if err := s.Scan(&e.ID, &e.OrgID, &e.Source, &e.ExternalID, &hr, &e.EquipmentType, &e.Notes, &e.CreatedAt, &e.UpdatedAt, &k); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(hr), &e.HR); err != nil {
			return fmt.Errorf("employee %s hr fields: %w", e.ID, err)
		}
		if e.HR.Departments == nil {
			e.HR.Departments = []string{}
		}
		out.Items = append(out.Items, e)
		keys = append(keys, keyValue(k))
		return nil
	}, `SELECT `+employeeCols+`, `+key.Expr+` FROM employees`+w.clause()+tail, w.args...)
	if err != nil {
		return out, err
	}
	if len(out.Items) > q.Page.limit() {
		out.Items = out.Items[:q.Page.limit()]
		last := out.Items[len(out.Items)-1]
		k := keys[len(out.Items)-1]
		if key.Time {
			k = keyValue(last.CreatedAt)
		}
		out.NextCursor = encodeListCursor(listCursor{Sort: sortName, Desc: q.Desc, Key: k, ID: last.ID})
	}
	return out, nil
}
