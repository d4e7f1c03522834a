package console

import (
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

var peopleParams = []string{"q", "status", "department", "member_type", "sort", "order", "cursor"}

type peopleView struct {
	Query    url.Values
	Rows     []domain.Employee
	Total    int // shown when HasTotal
	HasTotal bool
	Next     string
	Filtered bool
	Sorts    []sortCol
}

func peoplePage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	q := keep(r.URL.Query(), peopleParams)
	params := keep(q, peopleParams)
	params.Set("limit", "50")
	params.Set("total", "true")
	var list countedList[domain.Employee]
	if err := c.call(r, rq, "GET", "/api/v1/employees?"+params.Encode(), nil, &list); err != nil {
		return err
	}
	v := peopleView{Query: q, Rows: list.Items, Total: deref(list.Total), HasTotal: list.Total != nil}
	for k := range q {
		if k != "sort" && k != "order" && k != "cursor" {
			v.Filtered = true
		}
	}
	if list.NextCursor != "" {
		v.Next = withQuery(q, "/people", "cursor", list.NextCursor)
	}
	v.Sorts = sortColumns(q, "/people", [][2]string{{"Name", "name"}, {"Work email", "email"}, {"Status", "status"}, {"Start date", "start_date"}})
	w.Header().Set("Vary", "HX-Request")
	block := ""
	if r.Header.Get("HX-Request") == "true" {
		block = "results"
	}
	return c.render(w, rq, http.StatusOK, "people", block, "People", "people", v)
}

// deref reads an optional count from the API (nil when the list was not counted).
func deref(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}
