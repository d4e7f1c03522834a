// Package dashboard serves GET /api/v1/dashboard: the console's home page in one call.
// Every section is an aggregate query or a short, bounded list, so the response costs the
// same handful of statements at 50 devices or 10,000. It reads through the interfaces
// below; *store.DB implements all of them.
package dashboard

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Devices is what the dashboard reads about devices.
type Devices interface {
	CountDevicesByState(ctx context.Context, orgID string) (map[string]int, error)
	CountPosture(ctx context.Context, orgID string) ([]store.PostureGroup, error)
	SearchDevices(ctx context.Context, orgID string, q store.DeviceQuery) (store.DevicePage, error)
}

// Workflows is what it reads about onboardings and offboardings.
type Workflows interface {
	OpenWorkflows(ctx context.Context, orgID string, limit int) ([]store.WorkflowCount, []store.OpenWorkflow, error)
}

// Approvals is what it reads about commands awaiting a second admin.
type Approvals interface {
	PendingApprovals(ctx context.Context, orgID string, limit int) (int, []store.PendingApproval, error)
}

// HRSync is what it reads about the HR connection.
type HRSync interface {
	LatestHRConnection(ctx context.Context, orgID string) (*store.HRConnection, error)
	LatestHRSyncRuns(ctx context.Context, orgID string) (last, lastFailed *store.HRSyncRun, err error)
}

// PushCerts reads an org's APNs certificate (Apple MDM).
type PushCerts interface {
	MDMGetPushCert(ctx context.Context, orgID string) (store.MDMPushCert, error)
}

// Deps are the dashboard's sources. PushCerts is nil when Apple MDM is not configured.
type Deps struct {
	Devices   Devices
	Workflows Workflows
	Approvals Approvals
	HRSync    HRSync
	PushCerts PushCerts
	// Now is the clock (domain.Now when nil).
	Now func() time.Time
}

// Service builds dashboards.
type Service struct{ d Deps }

// New returns the dashboard service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = domain.Now
	}
	return &Service{d: d}
}

// OfflineDays is how long without contact makes a device "offline" on the dashboard.
const OfflineDays = 7

// SampleSize is how many rows each list section carries.
const SampleSize = 10

// Dashboard is the home page's data.
type Dashboard struct {
	GeneratedAt time.Time    `json:"generated_at"`
	Devices     DeviceCounts `json:"devices"`
	// Compliance, Offline and NeedsReview come from agent reports (device tracking, Pro plan);
	// they are absent on plans without it.
	Compliance  *Compliance      `json:"compliance,omitempty"`
	Offline     *DeviceSample    `json:"offline,omitempty"`
	NeedsReview *DeviceSample    `json:"needs_review,omitempty"`
	Workflows   WorkflowSummary  `json:"workflows"`
	Approvals   ApprovalSummary  `json:"approvals"`
	HRSync      HRSyncHealth     `json:"hr_sync"`
	APNs        *APNsCertificate `json:"apns,omitempty"`
}

// DeviceCounts is the fleet by state.
type DeviceCounts struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
}

// CheckCounts is one posture check across the in-service fleet with a posture report.
type CheckCounts struct {
	On      int `json:"on"`
	Off     int `json:"off"`
	Unknown int `json:"unknown"`
}

// OSCurrency is one platform's OS versions. Current is the newest version any of the
// org's in-service devices of that platform reports (compared numerically, segment by
// segment): a fleet-relative definition that needs no vendor feed, and flags the devices
// that fell behind their peers. Devices that report no version count as Unknown.
type OSCurrency struct {
	Platform       string `json:"platform"`
	CurrentVersion string `json:"current_version"`
	UpToDate       int    `json:"up_to_date"`
	Outdated       int    `json:"outdated"`
	Unknown        int    `json:"unknown"`
}

// Compliance counts in-service devices (not retired or lost) by posture.
type Compliance struct {
	// Reporting devices have a posture report; NotReporting ones have none (no agent yet).
	Reporting      int          `json:"reporting"`
	NotReporting   int          `json:"not_reporting"`
	DiskEncryption CheckCounts  `json:"disk_encryption"`
	Firewall       CheckCounts  `json:"firewall"`
	ScreenLock     CheckCounts  `json:"screen_lock"`
	OSVersion      []OSCurrency `json:"os_version"`
}

// DeviceSample is a count and its first SampleSize devices.
type DeviceSample struct {
	Count int                    `json:"count"`
	Items []store.DeviceListItem `json:"items"`
}

// WorkflowSummary is the unfinished onboardings and offboardings.
type WorkflowSummary struct {
	Onboarding  int                   `json:"onboarding"`
	Offboarding int                   `json:"offboarding"`
	ByState     []store.WorkflowCount `json:"by_state"`
	// Next lists running workflows first, then the next to start.
	Next []store.OpenWorkflow `json:"next"`
}

// ApprovalSummary is the commands (wipes) awaiting a second admin.
type ApprovalSummary struct {
	Count int                     `json:"count"`
	Items []store.PendingApproval `json:"items"`
}

// HRSyncHealth is the HR connection's state and its latest runs.
type HRSyncHealth struct {
	Connected   bool       `json:"connected"`
	Provider    string     `json:"provider,omitempty"`
	State       string     `json:"state,omitempty" enum:"pending,active,terminated"`
	CompanyName string     `json:"company_name,omitempty"`
	Attention   string     `json:"attention,omitempty"`
	LastSyncAt  *time.Time `json:"last_sync_at,omitempty"`
	LastRun     *RunInfo   `json:"last_run,omitempty"`
	// LastError is the newest run that failed, stopped early, was held, or logged an error.
	LastError *RunInfo `json:"last_error,omitempty"`
}

// RunInfo is one HR sync run, briefly.
type RunInfo struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status" enum:"running,succeeded,partial,failed,blocked"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// APNsCertificate is the org's Apple push certificate.
type APNsCertificate struct {
	Topic    string    `json:"topic"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	Expired  bool      `json:"expired"`
}

// Routes is the dashboard's route table.
func (s *Service) Routes() []api.Route {
	return []api.Route{{Method: "GET", Path: "/api/v1/dashboard", Summary: "The home page: fleet by state, compliance, offline and flagged devices, open workflows, pending approvals, HR sync and APNs health",
		Tag: "Dashboard", Role: domain.RoleViewer, Response: Dashboard{}, Handler: s.get}}
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	d, err := s.Build(r.Context(), p.OrgID, p.Org.Plan)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, d)
}

// Build assembles an org's dashboard; plan decides which sections it has.
func (s *Service) Build(ctx context.Context, orgID string, plan domain.Plan) (Dashboard, error) {
	now := s.d.Now()
	out := Dashboard{GeneratedAt: now}
	states, err := s.d.Devices.CountDevicesByState(ctx, orgID)
	if err != nil {
		return out, err
	}
	out.Devices.ByState = states
	for _, n := range states {
		out.Devices.Total += n
	}
	if plan.Allows(domain.FeatureDeviceTracking) {
		groups, err := s.d.Devices.CountPosture(ctx, orgID)
		if err != nil {
			return out, err
		}
		c := compliance(groups)
		out.Compliance = &c
		yes := true
		if out.Offline, err = s.sample(ctx, orgID, store.DeviceQuery{OfflineDays: OfflineDays, Sort: "last_seen", Now: now}); err != nil {
			return out, err
		}
		if out.NeedsReview, err = s.sample(ctx, orgID, store.DeviceQuery{NeedsReview: &yes, Sort: "last_seen", Desc: true}); err != nil {
			return out, err
		}
	}
	counts, next, err := s.d.Workflows.OpenWorkflows(ctx, orgID, SampleSize)
	if err != nil {
		return out, err
	}
	out.Workflows = WorkflowSummary{ByState: nonNil(counts), Next: nonNil(next)}
	for _, c := range counts {
		switch c.Kind {
		case "onboarding":
			out.Workflows.Onboarding += c.Count
		case "offboarding":
			out.Workflows.Offboarding += c.Count
		}
	}
	n, pending, err := s.d.Approvals.PendingApprovals(ctx, orgID, SampleSize)
	if err != nil {
		return out, err
	}
	out.Approvals = ApprovalSummary{Count: n, Items: nonNil(pending)}
	if out.HRSync, err = s.hrHealth(ctx, orgID); err != nil {
		return out, err
	}
	if s.d.PushCerts != nil && plan.Allows(domain.FeatureMDM) {
		c, err := s.d.PushCerts.MDMGetPushCert(ctx, orgID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return out, err
		default:
			out.APNs = &APNsCertificate{Topic: c.Topic, NotAfter: c.NotAfter, DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24),
				Expired: !now.Before(c.NotAfter)}
		}
	}
	return out, nil
}

// sample is a count and the first SampleSize in-service devices matching q.
func (s *Service) sample(ctx context.Context, orgID string, q store.DeviceQuery) (*DeviceSample, error) {
	q.InService, q.Total, q.Page = true, true, store.Page{Limit: SampleSize}
	pg, err := s.d.Devices.SearchDevices(ctx, orgID, q)
	if err != nil {
		return nil, err
	}
	return &DeviceSample{Count: *pg.Total, Items: nonNil(pg.Items)}, nil
}

func (s *Service) hrHealth(ctx context.Context, orgID string) (HRSyncHealth, error) {
	var h HRSyncHealth
	c, err := s.d.HRSync.LatestHRConnection(ctx, orgID)
	if err != nil || c == nil {
		return h, err
	}
	h = HRSyncHealth{Connected: c.State == "active", Provider: c.Provider, State: c.State, CompanyName: c.CompanyName,
		Attention: c.Attention, LastSyncAt: c.LastSyncAt}
	last, failed, err := s.d.HRSync.LatestHRSyncRuns(ctx, orgID)
	if err != nil {
		return h, err
	}
	h.LastRun, h.LastError = runInfo(last), runInfo(failed)
	return h, nil
}

func runInfo(r *store.HRSyncRun) *RunInfo {
	if r == nil {
		return nil
	}
	return &RunInfo{ID: r.ID, Kind: r.Kind, Status: r.Status, Error: r.Error, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
}

// compliance folds the posture groups into counts.
func compliance(groups []store.PostureGroup) Compliance {
	var c Compliance
	add := func(cc *CheckCounts, v string, n int) {
		switch v {
		case "on":
			cc.On += n
		case "off":
			cc.Off += n
		default:
			cc.Unknown += n
		}
	}
	newest := map[string]string{}
	for _, g := range groups {
		if !g.Reported {
			c.NotReporting += g.Count
			continue
		}
		c.Reporting += g.Count
		add(&c.DiskEncryption, g.DiskEncryption, g.Count)
		add(&c.Firewall, g.Firewall, g.Count)
		add(&c.ScreenLock, g.ScreenLock, g.Count)
		if g.OSVersion != "" && CompareVersions(g.OSVersion, newest[g.Platform]) > 0 {
			newest[g.Platform] = g.OSVersion
		}
	}
	byPlatform := map[string]*OSCurrency{}
	for _, g := range groups {
		if !g.Reported {
			continue
		}
		o := byPlatform[g.Platform]
		if o == nil {
			o = &OSCurrency{Platform: g.Platform, CurrentVersion: newest[g.Platform]}
			byPlatform[g.Platform] = o
		}
		switch {
		case g.OSVersion == "":
			o.Unknown += g.Count
		case CompareVersions(g.OSVersion, o.CurrentVersion) >= 0:
			o.UpToDate += g.Count
		default:
			o.Outdated += g.Count
		}
	}
	c.OSVersion = []OSCurrency{}
	for _, o := range byPlatform {
		c.OSVersion = append(c.OSVersion, *o)
	}
	slices.SortFunc(c.OSVersion, func(a, b OSCurrency) int { return strings.Compare(a.Platform, b.Platform) })
	return c
}

// CompareVersions compares dotted versions numerically segment by segment ("10.0.22631" >
// "10.0.19045", "15.10" > "15.9"); a missing segment is 0, and a segment that is not a
// number compares as text. "" is older than anything.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == ' ' || r == '_' })
	}
	as, bs := split(a), split(b)
	for i := 0; i < max(len(as), len(bs)); i++ {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		var c int
		if ex == nil && ey == nil {
			c = nx - ny
		} else {
			c = strings.Compare(x, y)
		}
		if c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
	}
	if len(as) == 0 && len(bs) > 0 {
		return -1
	}
	return 0
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
