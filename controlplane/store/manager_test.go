package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestManagerWorkEmail: the manager HR names, found through the provider's ids in the
// employee's own org; nobody when HR names none, the manager is not in Lanyard, or they
// were terminated (a terminated manager cannot receive a leaver's files).
func TestManagerWorkEmail(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org, other := domain.Org{Name: "Acme", Plan: domain.PlanPro}, domain.Org{Name: "Other", Plan: domain.PlanPro}
		for _, o := range []*domain.Org{&org, &other} {
			if err := store.CreateOrg(ctx, db.SQL, o); err != nil {
				t.Fatal(err)
			}
		}
		add := func(o domain.Org, email string, status domain.EmploymentStatus, managerExt string) domain.Employee {
			e := domain.Employee{OrgID: o.ID, Source: "justworks", ExternalID: domain.NewID(), HR: domain.HRFields{
				FirstName: email, WorkEmail: email, Status: status, MemberType: domain.MemberFullTime}}
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				if err := store.InsertEmployee(ctx, tx, &e); err != nil {
					return err
				}
				return store.UpsertHRMember(ctx, tx, store.HRMember{EmployeeID: e.ID, OrgID: o.ID, Source: "justworks",
					ExternalID: e.ExternalID, ManagerExternalID: managerExt, UpdatedAt: time.Now()})
			})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		boss := add(org, "boss@acme.test", domain.StatusActive, "")
		gone := add(org, "gone@acme.test", domain.StatusTerminated, "")
		elsewhere := add(other, "twin@other.test", domain.StatusActive, "")
		tests := []struct {
			name string
			emp  domain.Employee
			want string
		}{
			{"active manager", add(org, "ada@acme.test", domain.StatusActive, boss.ExternalID), "boss@acme.test"},
			{"no manager", add(org, "bo@acme.test", domain.StatusActive, ""), ""},
			{"manager not in Lanyard", add(org, "cy@acme.test", domain.StatusActive, "jw-unknown"), ""},
			{"terminated manager", add(org, "di@acme.test", domain.StatusActive, gone.ExternalID), ""},
			{"same provider id in another org", add(org, "ed@acme.test", domain.StatusActive, elsewhere.ExternalID), ""},
		}
		for _, tt := range tests {
			got, err := db.ManagerWorkEmail(ctx, tt.emp.ID)
			if err != nil || got != tt.want {
				t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
			}
		}
	})
}
