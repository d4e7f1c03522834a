package hrsync_test

import (
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The generated checks of the route table: tenant isolation, roles, OpenAPI.
func TestRouteTableChecks(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(5, true)})
		_, run := h.connect()
		s := api.New(api.Options{Store: db}, h.eng.Routes())
		ah := apitest.Wrap(t, db, s, s)
		orgB := storetest.Org(t, db, domain.PlanPro)
		apitest.CheckIsolation(t, ah, ah.Token(orgB.ID, domain.RoleOwner), apitest.Fixtures{
			"hr_sync_run":   run.ID,
			"hr_connection": h.conn().ID,
		})
		apitest.CheckRoles(t, ah, orgB.ID)
		apitest.CheckOpenAPI(t, s)
	})
}
