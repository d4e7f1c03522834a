package console

import "net/http"

// page is one console page: a mux pattern and its handler. Each page lives in its own
// file (home.go, devices.go, …) with its template in templates/pages/.
type page struct {
	Pattern string
	// Public pages render without a session (sign-in); the rest redirect to /signin.
	Public bool
	// OwnCSRF: the handler checks CSRF itself (sign-in forms, before a session exists).
	OwnCSRF bool
	Handler func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error
}

// pageTable is every page of the console. To add a page: write its file and template
// and add a row here (and its nav entry below, which then becomes a link).
func pageTable() []page {
	return []page{
		{Pattern: "GET /signin", Public: true, Handler: signinPage},
		{Pattern: "POST /signin", Public: true, OwnCSRF: true, Handler: signinPost},
		{Pattern: "GET /signin/totp", Public: true, Handler: totpPage},
		{Pattern: "POST /signin/totp", Public: true, OwnCSRF: true, Handler: totpPost},
		{Pattern: "GET /signin/link/{token}", Public: true, Handler: linkPage},
		{Pattern: "POST /signin/link/{token}", Public: true, OwnCSRF: true, Handler: linkPost},
		{Pattern: "POST /signin/password", Public: true, OwnCSRF: true, Handler: setPasswordPost},
		{Pattern: "POST /signout", Handler: signoutPost},
		{Pattern: "GET /reauth", Handler: reauthPage},
		{Pattern: "POST /reauth", Handler: reauthPost},

		{Pattern: "GET /{$}", Handler: homePage},
		{Pattern: "GET /devices", Handler: devicesPage},
		{Pattern: "GET /devices/{id}", Handler: devicePage},
		{Pattern: "GET /devices/{id}/secrets", Handler: deviceSecretsPage},
		{Pattern: "GET /people", Handler: peoplePage},
		{Pattern: "GET /people/{id}", Handler: personPage},
		{Pattern: "GET /people/{id}/offboard", Handler: offboardPage},
	}
}

// navEntry is one item of the navigation; Section names the pages that mark it current.
type navEntry struct {
	Label, Path, Section string
}

// navTable is the navigation, in order. An entry whose page is not in pageTable yet shows
// as plain text (not a dead link).
func navTable() []navEntry {
	return []navEntry{
		{"Home", "/", "home"},
		{"People", "/people", "people"},
		{"Devices", "/devices", "devices"},
		{"Workflows", "/workflows", "workflows"},
		{"Justworks", "/justworks", "justworks"},
		{"Enrollment", "/enrollment", "enrollment"},
		{"Warehouse", "/warehouse", "warehouse"},
		{"App orphans", "/apps/orphans", "apps"},
		{"Notifications", "/notifications", "notifications"},
		{"Audit", "/audit", "audit"},
		{"Settings", "/settings", "settings"},
		{"Users", "/users", "users"},
	}
}
