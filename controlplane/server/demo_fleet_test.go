package server

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/dashboard"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The demo org has a fleet worth looking at, and seeding it again (every `make run`)
// changes nothing: same devices, still one offboarding running and one wipe waiting.
func TestDemoFleetIdempotent(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			url := ""
			if dialect == "postgres" {
				url = storetest.PostgresURL(t)
			}
			cfg := testConfig(t, url)
			cfg.Demo = true
			var first dashboard.Dashboard
			for start := 0; start < 2; start++ {
				ctx, cancel := context.WithCancel(context.Background())
				s, err := New(ctx, cfg, quietLogger())
				if err != nil {
					t.Fatal(err)
				}
				org, _, err := s.SeedDemo(ctx)
				if err != nil {
					t.Fatalf("start %d: %v", start, err)
				}
				viewer := api.Principal{OrgID: org.ID, Org: org, Role: domain.RoleViewer, TokenID: "test", Via: "token"}
				var d dashboard.Dashboard
				if err := s.API.Call(ctx, viewer, "GET", "/api/v1/dashboard", nil, &d); err != nil {
					t.Fatal(err)
				}
				var macs, wins, linux store.DevicePage
				for p, out := range map[string]*store.DevicePage{"macos": &macs, "windows": &wins, "linux": &linux} {
					if err := s.API.Call(ctx, viewer, "GET", "/api/v1/devices?total=true&assigned=true&platform="+p, nil, out); err != nil {
						t.Fatal(err)
					}
				}
				cancel()
				s.DB.Close()
				if d.Devices.Total < 40 || d.Devices.ByState["in_use"] < 20 || d.Devices.ByState["retired"] != 1 || d.Devices.ByState["lost"] != 1 {
					t.Errorf("start %d: devices %+v", start, d.Devices)
				}
				if d.Offline == nil || d.Offline.Count != 3 || d.NeedsReview == nil || d.NeedsReview.Count != 1 {
					t.Errorf("start %d: offline %+v, needs review %+v", start, d.Offline, d.NeedsReview)
				}
				if c := d.Compliance; c == nil || c.DiskEncryption.Off == 0 || c.Firewall.Off == 0 || c.ScreenLock.Off == 0 || len(c.OSVersion) != 3 {
					t.Errorf("start %d: compliance %+v", start, d.Compliance)
				}
				if d.Workflows.Offboarding != 1 || len(d.Workflows.Next) == 0 || d.Workflows.Next[0].State != "running" {
					t.Errorf("start %d: workflows %+v", start, d.Workflows)
				}
				if d.Approvals.Count != 1 || d.Approvals.Items[0].Type != "wipe" {
					t.Errorf("start %d: approvals %+v", start, d.Approvals)
				}
				if !d.HRSync.Connected {
					t.Errorf("start %d: hr sync %+v", start, d.HRSync)
				}
				if len(macs.Items) == 0 || len(wins.Items) == 0 || len(linux.Items) == 0 || macs.Items[0].Assignee == nil {
					t.Errorf("start %d: assigned devices per OS: %d %d %d", start, len(macs.Items), len(wins.Items), len(linux.Items))
				}
				if start == 0 {
					first = d
					continue
				}
				if d.Devices.Total != first.Devices.Total || d.Offline.Count != first.Offline.Count || d.Approvals.Items[0].CommandID != first.Approvals.Items[0].CommandID ||
					d.Workflows.Next[0].ID != first.Workflows.Next[0].ID {
					t.Errorf("second start changed the demo: %+v then %+v", first.Devices, d.Devices)
				}
			}
		})
	}
}
