package auditchain_test

import (
	"net/http"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestVerifyRoute(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		c := newChainer(t, db)
		h := apitest.New(t, db, api.Options{}, c.Routes())
		org := storetest.Org(t, db, domain.PlanPro).ID
		other := storetest.Org(t, db, domain.PlanPro).ID
		ids := writeAudit(t, db, org, 3)
		writeAudit(t, db, other, 5)

		if r := h.Do("GET", "/api/v1/audit/verify", h.Token(org, domain.RoleIT), nil); r.Status != http.StatusForbidden {
			t.Fatalf("it role: %d %s", r.Status, r.Body)
		}
		admin := h.Token(org, domain.RoleAdmin)
		var rep auditchain.Report
		r := h.Do("GET", "/api/v1/audit/verify", admin, nil)
		r.JSON(t, &rep)
		var total int64 // the three rows and the tokens' own audit rows, none chained before the call
		if err := db.SQL.QueryRow(`SELECT count(*) FROM audit_log WHERE org_id = $1`, org).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || !rep.OK || rep.OrgID != org || rep.Rows != total || rep.Checkpoints != 1 || rep.Unchained != 0 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		tamper(t, db, `UPDATE audit_log SET action = 'device.nothing' WHERE id = `+q(ids[1]))
		rep = auditchain.Report{}
		r = h.Do("GET", "/api/v1/audit/verify", admin, nil)
		r.JSON(t, &rep)
		if r.Status != http.StatusOK || rep.OK || rep.FirstBad == nil || rep.FirstBad.RowID != ids[1] {
			t.Fatalf("after the edit: %d %s", r.Status, r.Body)
		}
	})
}
