package auditchain

import (
	"net/http"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Routes is the verify endpoint. A broken chain is a 200 with ok false: the request
// worked, the log did not.
func (c *Chainer) Routes() []api.Route {
	return []api.Route{{Method: "GET", Path: "/api/v1/audit/verify", Tag: "Audit", Role: domain.RoleAdmin, Response: Report{},
		Summary: "Verify the organization's tamper-evident audit chain: links queued rows, then names the first edited, deleted, inserted or reordered row",
		Handler: c.verify}}
}

func (c *Chainer) verify(w http.ResponseWriter, r *http.Request) error {
	rep, err := c.ChainAndVerify(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rep)
}
