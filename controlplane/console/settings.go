package console

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Settings: the organization's plan, time zone, offboarding hour, wipe approval and
// whether international members are imported (GET/PATCH /api/v1/org).

func settingsPages() []page {
	return []page{{Pattern: "GET /settings", Handler: settingsPage}}
}

func settingsActions() []action {
	return []action{
		{Name: "save settings", Form: "POST /settings", API: "PATCH /api/v1/org", Body: settingsBody,
			Sample: map[string]string{"time_zone": "America/New_York", "offboarding_hour": "17", "wipe_requires_approval": "on"},
			Done:   back(fixed("/settings"), "Settings saved.")},
		// Last in the table on purpose: its sample changes the test org's plan.
		{Name: "choose plan", Form: "POST /settings/plan", API: "PATCH /api/v1/org", StricterRole: domain.RoleOwner,
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				plan := form(r, "plan")
				if plan == "" {
					return nil, badRequest("Choose a plan.")
				}
				return map[string]string{"plan": plan}, nil
			}, Sample: map[string]string{"plan": string(domain.PlanEssentials)},
			Done: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
				var o domain.Org
				_ = json.Unmarshal(raw, &o)
				to := safeNext(form(r, "next"))
				if to == "/" {
					to = "/settings"
				}
				return c.done(w, r, to, "Plan: "+humanize(o.Plan)+".")
			}},
	}
}

// settingsBody sends the whole settings object (the API replaces it), starting from the
// current one so settings this form does not show are kept.
func settingsBody(c *Console, r *http.Request, rq *request) (any, error) {
	var o domain.Org
	if err := c.call(r, rq, "GET", "/api/v1/org", nil, &o); err != nil {
		return nil, err
	}
	s := o.Settings
	hour, err := formInt(r, "offboarding_hour")
	if err != nil {
		return nil, err
	}
	lead, err := formInt(r, "onboarding_lead_days")
	if err != nil {
		return nil, err
	}
	threshold, err := formInt(r, "mass_termination_threshold_pct")
	if err != nil {
		return nil, err
	}
	s.OffboardingHour, s.OnboardingLeadDays, s.MassTerminationThresholdPct = hour, lead, threshold
	s.WipeRequiresApproval = r.PostFormValue("wipe_requires_approval") == "on"
	s.IncludeInternational = r.PostFormValue("include_international") == "on"
	body := map[string]any{"settings": s}
	if tz := form(r, "time_zone"); tz != "" {
		body["time_zone"] = tz
	}
	if name := form(r, "name"); name != "" {
		body["name"] = name
	}
	return body, nil
}

type settingsView struct {
	Org   domain.Org
	Plans []planChoice
	Owner bool
	Admin bool
	Hours []int
	Zones []string
}

func settingsPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := settingsView{Owner: rq.P.Role.AtLeast(domain.RoleOwner), Admin: rq.P.Role.AtLeast(domain.RoleAdmin)}
	if err := c.call(r, rq, "GET", "/api/v1/org", nil, &v.Org); err != nil {
		return err
	}
	v.Plans = plansFor(v.Org.Plan)
	for h := 0; h < 24; h++ {
		v.Hours = append(v.Hours, h)
	}
	v.Zones = commonZones
	if v.Org.TimeZone != "" {
		if _, err := time.LoadLocation(v.Org.TimeZone); err == nil && !contains(v.Zones, v.Org.TimeZone) {
			v.Zones = append([]string{v.Org.TimeZone}, v.Zones...)
		}
	}
	return c.render(w, rq, http.StatusOK, "settings", "", "Settings", "settings", v)
}

// commonZones are offered in the time zone list; any IANA zone may be typed through the
// API, and the org's current one is always listed.
var commonZones = []string{"UTC", "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
	"America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "Europe/London", "Europe/Berlin", "Asia/Kolkata",
	"Asia/Tokyo", "Australia/Sydney"}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
