package console

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// dashboard is GET /api/v1/dashboard's answer (the home page in one call).
type dashboard struct {
	Devices struct {
		Total   int            `json:"total"`
		ByState map[string]int `json:"by_state"`
	} `json:"devices"`
	Compliance *struct {
		Reporting      int         `json:"reporting"`
		NotReporting   int         `json:"not_reporting"`
		DiskEncryption checkCounts `json:"disk_encryption"`
		Firewall       checkCounts `json:"firewall"`
		ScreenLock     checkCounts `json:"screen_lock"`
		OSVersion      []struct {
			Platform       string `json:"platform"`
			CurrentVersion string `json:"current_version"`
			UpToDate       int    `json:"up_to_date"`
			Outdated       int    `json:"outdated"`
			Unknown        int    `json:"unknown"`
		} `json:"os_version"`
	} `json:"compliance"`
	Offline     *deviceSample `json:"offline"`
	NeedsReview *deviceSample `json:"needs_review"`
	Workflows   struct {
		Onboarding  int `json:"onboarding"`
		Offboarding int `json:"offboarding"`
		Next        []struct {
			ID           string    `json:"id"`
			Kind         string    `json:"kind"`
			State        string    `json:"state"`
			RunAt        time.Time `json:"run_at"`
			EmployeeID   string    `json:"employee_id"`
			EmployeeName string    `json:"employee_name"`
		} `json:"next"`
	} `json:"workflows"`
	Approvals struct {
		Count int `json:"count"`
		Items []struct {
			CommandID    string    `json:"command_id"`
			Type         string    `json:"type"`
			DeviceID     string    `json:"device_id"`
			SerialNumber string    `json:"serial_number"`
			Model        string    `json:"model"`
			CreatedBy    string    `json:"created_by"`
			CreatedAt    time.Time `json:"created_at"`
		} `json:"items"`
	} `json:"approvals"`
	HRSync struct {
		Connected   bool       `json:"connected"`
		Provider    string     `json:"provider"`
		State       string     `json:"state"`
		CompanyName string     `json:"company_name"`
		Attention   string     `json:"attention"`
		LastSyncAt  *time.Time `json:"last_sync_at"`
		LastError   *struct {
			Status    string    `json:"status"`
			Error     string    `json:"error"`
			StartedAt time.Time `json:"started_at"`
		} `json:"last_error"`
	} `json:"hr_sync"`
	APNs *struct {
		Topic    string    `json:"topic"`
		NotAfter time.Time `json:"not_after"`
		DaysLeft int       `json:"days_left"`
		Expired  bool      `json:"expired"`
	} `json:"apns"`
}

type checkCounts struct {
	On      int `json:"on"`
	Off     int `json:"off"`
	Unknown int `json:"unknown"`
}

type deviceSample struct {
	Count int         `json:"count"`
	Items []deviceRow `json:"items"`
}

// bar is one row of a text-valued bar chart (the width is a CSS class: the CSP allows no
// inline style).
type bar struct {
	Label string
	N     int
	Of    int
	Width string // "w0" … "w100" in steps of 5
	OK    bool
}

func newBar(label string, n, of int, ok bool) bar {
	w := 0
	if of > 0 {
		w = (n*100/of + 2) / 5 * 5
	}
	return bar{Label: label, N: n, Of: of, Width: "w" + strconv.Itoa(w), OK: ok}
}

type homeView struct {
	Org        domain.Org
	Dash       *dashboard
	States     []bar
	Compliance []bar
}

func homePage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v homeView
	if err := c.call(r, rq, "GET", "/api/v1/org", nil, &v.Org); err != nil {
		return err
	}
	if _, ok := c.routes["GET /api/v1/dashboard"]; ok {
		var d dashboard
		if err := c.call(r, rq, "GET", "/api/v1/dashboard", nil, &d); err != nil {
			return err
		}
		v.Dash = &d
		for _, s := range domain.AllDeviceStates {
			if n := d.Devices.ByState[string(s)]; n > 0 {
				v.States = append(v.States, newBar(humanize(s), n, d.Devices.Total, false))
			}
		}
		if cp := d.Compliance; cp != nil {
			of := cp.Reporting
			v.Compliance = append(v.Compliance, newBar("Disk encryption", cp.DiskEncryption.On, of, true),
				newBar("Firewall", cp.Firewall.On, of, true), newBar("Screen lock", cp.ScreenLock.On, of, true))
			for _, os := range cp.OSVersion {
				v.Compliance = append(v.Compliance, newBar(os.Platform+" "+os.CurrentVersion, os.UpToDate, os.UpToDate+os.Outdated+os.Unknown, true))
			}
		}
		slices.SortStableFunc(v.States, func(a, b bar) int { return b.N - a.N })
	}
	c.namePeople(r, rq)
	return c.render(w, rq, http.StatusOK, "home", "", "Home", "home", v)
}
