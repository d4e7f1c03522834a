package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// deviceRow is one row of GET /api/v1/devices: the device with its holder and what its
// agent last said, so the page needs no request per row.
type deviceRow struct {
	domain.Device
	Assignee    *personRef `json:"assignee"`
	LastSeenAt  *time.Time `json:"last_seen_at"`
	Hostname    string     `json:"hostname"`
	OSName      string     `json:"os_name"`
	OSVersion   string     `json:"os_version"`
	NeedsReview bool       `json:"needs_review"`
	Posture     posture    `json:"posture"`
}

type personRef struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// posture is a device's last compliance report: "on", "off", "unknown" or "".
type posture struct {
	DiskEncryption string `json:"disk_encryption"`
	Firewall       string `json:"firewall"`
	ScreenLock     string `json:"screen_lock"`
	OSVersion      string `json:"os_version"`
}

type countedList[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
	Total      *int   `json:"total"`
}

// deviceParams are the list parameters the page passes to the API as they are; the API
// validates them (a bad one comes back as its 400, shown as a message).
var deviceParams = []string{"q", "state", "platform", "assigned", "disk_encrypted", "firewall", "screen_lock",
	"offline_days", "needs_review", "sort", "order", "cursor"}

type devicesView struct {
	Query     url.Values
	Rows      []deviceRow
	Total     int // shown when HasTotal
	HasTotal  bool
	Next      string // next page URL
	Filtered  bool
	States    []domain.DeviceState
	Platforms []string
	Sorts     []sortCol
}

type sortCol struct {
	Label, Key string
	Current    bool
	Desc       bool
	URL        string
}

func devicesPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	q := keep(r.URL.Query(), deviceParams)
	params := keep(q, deviceParams)
	params.Set("limit", "50")
	params.Set("total", "true")
	var list countedList[deviceRow]
	if err := c.call(r, rq, "GET", "/api/v1/devices?"+params.Encode(), nil, &list); err != nil {
		return err
	}
	v := devicesView{Query: q, Rows: list.Items, Total: deref(list.Total), HasTotal: list.Total != nil, States: domain.AllDeviceStates,
		Platforms: []string{"macos", "windows", "linux", "ios", "other"}}
	for k := range q {
		if k != "sort" && k != "order" && k != "cursor" {
			v.Filtered = true
		}
	}
	if list.NextCursor != "" {
		v.Next = withQuery(q, "/devices", "cursor", list.NextCursor)
	}
	v.Sorts = sortColumns(q, "/devices", [][2]string{{"Serial", "serial"}, {"Model", "model"}, {"State", "state"},
		{"Assignee", "assignee"}, {"Last seen", "last_seen"}})
	w.Header().Set("Vary", "HX-Request")
	block := ""
	if r.Header.Get("HX-Request") == "true" {
		block = "results"
	}
	return c.render(w, rq, http.StatusOK, "devices", block, "Devices", "devices", v)
}

// keep returns the non-empty values of the named parameters.
func keep(q url.Values, names []string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if v := strings.TrimSpace(q.Get(n)); v != "" {
			out.Set(n, v)
		}
	}
	return out
}

// sortColumns builds the column headers' sort links: a second click reverses the order.
func sortColumns(q url.Values, path string, cols [][2]string) []sortCol {
	out := make([]sortCol, 0, len(cols))
	for _, col := range cols {
		sc := sortCol{Label: col[0], Key: col[1], Current: q.Get("sort") == col[1], Desc: q.Get("order") == "desc"}
		order := ""
		if sc.Current && !sc.Desc {
			order = "desc"
		}
		sc.URL = withQuery(q, path, "sort", col[1], "order", order, "cursor", "")
		out = append(out, sc)
	}
	return out
}
