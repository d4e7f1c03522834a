package lifecycle_test

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// ?dry_run=true is the console's preview: it reports every row's errors (422) or the
// rows it would import (200), and writes nothing either way: no device, no audit row.
func TestCSVImportDryRunWritesNothing(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{noRiver: true})
		a := apiHarness(t, h)
		tok := a.Token(h.org.ID, domain.RoleIT)
		auditBefore := len(mustAudit(t, db, h.org.ID))
		for _, tc := range []struct {
			name, csv string
			status    int
			rows      int
			errRows   []int
		}{
			{"one bad row", "serial_number,vendor,equipment_type,platform\nDRY1,apple,laptop,macos\nDRY2,apple,laptop,beos\nDRY3,dell,laptop,windows\n",
				422, 3, []int{3}},
			{"all good", "serial_number,vendor,equipment_type\nDRY1,apple,laptop\nDRY3,dell,laptop\n", 200, 2, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := a.Do("POST", "/api/v1/assets/import?dry_run=true", tok, tc.csv)
				var rep lifecycle.ImportReport
				resp.JSON(t, &rep)
				if resp.Status != tc.status || !rep.DryRun || rep.Imported != 0 || rep.Rows != tc.rows || len(rep.Errors) != len(tc.errRows) {
					t.Fatalf("dry run = %d %+v", resp.Status, rep)
				}
				for i, row := range tc.errRows {
					if rep.Errors[i].Row != row || rep.Errors[i].Message == "" {
						t.Fatalf("error %d = %+v, want row %d with a message", i, rep.Errors[i], row)
					}
				}
				devs, _, err := db.ListDevices(context.Background(), h.org.ID, store.DeviceFilter{}, store.Page{})
				if err != nil || len(devs) != 0 {
					t.Fatalf("a dry run wrote %d devices (%v)", len(devs), err)
				}
				if n := len(mustAudit(t, db, h.org.ID)); n != auditBefore {
					t.Fatalf("a dry run wrote %d audit rows", n-auditBefore)
				}
			})
		}
	})
}
