package console

import (
	"net/http"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

type homeView struct {
	Org domain.Org
}

func homePage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v homeView
	if err := c.call(r, rq, "GET", "/api/v1/org", nil, &v.Org); err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "home", "", "Home", "home", v)
}
