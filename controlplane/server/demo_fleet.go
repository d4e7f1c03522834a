package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
)

// The demo fleet: enough devices across states and operating systems for the console to
// have something to show, with what their agents reported, people from the fake Justworks
// holding them, one offboarding running and one wipe waiting for a second admin. Every
// step checks what is already there, because SeedDemo runs on every `make run`.

// demoModel is one kind of machine in the demo fleet.
type demoModel struct {
	prefix, vendor, model string
	platform              domain.Platform
	osName                string
	// versions: the newest first; a few machines run an older one.
	versions []string
}

var demoModels = []demoModel{
	{"C02MBP", "apple", "MacBook Pro 14 (M3)", domain.PlatformMacOS, "macOS", []string{"15.1", "14.7"}},
	{"C02MBA", "apple", "MacBook Air 13 (M2)", domain.PlatformMacOS, "macOS", []string{"15.1", "14.6"}},
	{"PF4T14", "lenovo", "ThinkPad T14 Gen 4", domain.PlatformWindows, "Windows 11", []string{"10.0.26100", "10.0.22631"}},
	{"DL7440", "dell", "Latitude 7440", domain.PlatformWindows, "Windows 11", []string{"10.0.26100", "10.0.22631"}},
	{"PF4X1C", "lenovo", "ThinkPad X1 Carbon Gen 11", domain.PlatformLinux, "Ubuntu", []string{"24.04", "22.04"}},
	{"FRW13A", "framework", "Laptop 13 (AMD)", domain.PlatformLinux, "Fedora", []string{"41", "40"}},
}

// demoFleetSize is how many devices the demo fleet has (plus the five stock devices and
// the one an unknown agent reports).
const demoFleetSize = 36

// demoDevice is one device of the fleet and what happens to it.
type demoDevice struct {
	domain.Device
	m        demoModel
	assign   bool
	final    domain.DeviceState // a state reached after assignment (lost) or instead of it
	report   bool
	offline  time.Duration // how long ago its agent last reported (0: now)
	old      bool          // runs the older OS version
	disk     string
	firewall string
	screen   string
}

// demoFleet lays the fleet out deterministically: most devices assigned and in use, some
// spares in stock, a few ordered or in transit, one lost, two retired; every seventh
// unencrypted, every fifth without a firewall, every sixth without a screen lock, every
// fourth on last year's OS, three not heard from for over a week.
func demoFleet(orgID string) []demoDevice {
	var out []demoDevice
	for i := 0; i < demoFleetSize; i++ {
		m := demoModels[i%len(demoModels)]
		d := demoDevice{m: m, assign: true, report: true, disk: seed.On, firewall: seed.On, screen: seed.On, old: i%4 == 3}
		d.Device = domain.Device{OrgID: orgID, SerialNumber: fmt.Sprintf("%s%04d", m.prefix, 1001+i), Vendor: m.vendor, Model: m.model,
			Platform: m.platform, EquipmentType: "laptop"}
		switch {
		case i >= 30 && i < 33: // spares on the shelf, agent installed
			d.assign = false
		case i == 33:
			d.assign, d.report, d.State = false, false, domain.StateOrdered
		case i == 34:
			d.assign, d.report, d.State = false, false, domain.StateInTransit
		case i == 35:
			d.assign, d.final, d.offline = false, domain.StateRetired, 60*24*time.Hour
		}
		if i == 9 { // a Windows laptop reported lost by its holder
			d.final, d.offline = domain.StateLost, 12*24*time.Hour
		}
		if i == 14 || i == 21 || i == 26 {
			d.offline = time.Duration(8+i) * 24 * time.Hour
		}
		if i%7 == 6 {
			d.disk = seed.Off
		}
		if i%5 == 4 {
			d.firewall = seed.Off
		}
		if i%6 == 5 {
			d.screen = seed.Off
		}
		if i == 17 {
			d.screen = seed.Unknown
		}
		out = append(out, d)
	}
	return out
}

// demoUnknownSerial is reported by an agent whose machine nobody recorded: tracking
// creates the device and flags it for review.
const demoUnknownSerial = "5CG3349QXZ"

// seedDemoFleet adds the fleet to the demo org (once), refreshes the reports of the
// devices that should look online, and makes sure one offboarding runs and one wipe awaits
// approval.
func (s *Server) seedDemoFleet(ctx context.Context, org domain.Org) error {
	if !org.Settings.WipeRequiresApproval {
		org.Settings.WipeRequiresApproval = true
		var err error
		if org, err = s.DB.UpdateOrg(ctx, org); err != nil {
			return fmt.Errorf("demo fleet: require wipe approval: %w", err)
		}
	}
	fleet := demoFleet(org.ID)
	existing, err := s.DB.FindDevicesBySerial(ctx, org.ID, fleet[0].SerialNumber)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		if err := s.createDemoFleet(ctx, org, fleet); err != nil {
			return fmt.Errorf("demo fleet: %w", err)
		}
	} else if err := s.refreshDemoReports(ctx, org, fleet); err != nil {
		return fmt.Errorf("demo fleet: %w", err)
	}
	admin, err := s.demoAdmin(ctx, org)
	if err != nil {
		return fmt.Errorf("demo fleet: %w", err)
	}
	if err := s.demoOffboarding(ctx, admin, fleet); err != nil {
		return fmt.Errorf("demo offboarding: %w", err)
	}
	if err := s.demoPendingWipe(ctx, admin, fleet); err != nil {
		return fmt.Errorf("demo wipe: %w", err)
	}
	return nil
}

func (d demoDevice) report0(at time.Time) seed.Report {
	v := d.m.versions[0]
	if d.old {
		v = d.m.versions[1]
	}
	host := strings.ToLower(d.m.prefix) + "-" + d.SerialNumber[len(d.SerialNumber)-4:]
	return seed.Report{Serial: d.SerialNumber, Vendor: d.Vendor, Model: d.Model, Hostname: host, Platform: d.Platform, OSName: d.m.osName,
		OSVersion: v, Disk: d.disk, Firewall: d.firewall, ScreenLock: d.screen, At: at.Add(-d.offline)}
}

func (s *Server) createDemoFleet(ctx context.Context, org domain.Org, fleet []demoDevice) error {
	people, err := s.demoPeople(ctx, org.ID)
	if err != nil {
		return err
	}
	now := domain.Now()
	// The last few people hold no laptop yet (new hires waiting for one), so the demo has
	// someone to hand stock to, and tests can offboard a person without a demo laptop.
	holders := people
	if len(holders) > 16 {
		holders = holders[:len(holders)-8]
	}
	for i := range fleet {
		d := &fleet[i]
		if err := s.DB.CreateDevice(ctx, &d.Device); err != nil {
			return err
		}
		if d.assign && len(holders) > 0 {
			if _, err := s.DB.AssignDevice(ctx, org.ID, d.ID, holders[i%len(holders)].ID); err != nil {
				return err
			}
		}
		if d.report {
			// The first report links the agent to the device; an assigned device moves to in_use.
			if _, _, err := seed.ReportInventory(ctx, s.DB, org.ID, d.report0(now)); err != nil {
				return err
			}
		}
		if d.final != "" { // lost after its last report, or retired long after it
			if _, err := s.DB.TransitionDevice(ctx, org.ID, d.ID, d.final); err != nil {
				return err
			}
		}
	}
	_, _, err = seed.ReportInventory(ctx, s.DB, org.ID, seed.Report{Serial: demoUnknownSerial, Vendor: "hp", Model: "EliteBook 840 G10",
		Hostname: "DESKTOP-7Q2K9F", Platform: domain.PlatformWindows, OSName: "Windows 11", OSVersion: "10.0.22631",
		Disk: seed.Off, Firewall: seed.On, ScreenLock: seed.On, At: now})
	return err
}

// refreshDemoReports has every online device's agent report again, as running agents
// would, so "offline for more than 7 days" keeps meaning the same devices after a restart.
func (s *Server) refreshDemoReports(ctx context.Context, org domain.Org, fleet []demoDevice) error {
	now := domain.Now()
	for _, d := range fleet {
		if !d.report || d.offline > 0 {
			continue
		}
		devs, err := s.DB.FindDevicesBySerial(ctx, org.ID, d.SerialNumber)
		if err != nil || len(devs) == 0 {
			return err
		}
		agents, err := s.DB.ListAgentsForDevice(ctx, org.ID, devs[0].ID)
		if err != nil || len(agents) == 0 {
			return err
		}
		if _, err := s.DB.ApplyInventory(ctx, org.ID, agents[len(agents)-1].ID, seed.InventoryReport(d.report0(now))); err != nil {
			return err
		}
	}
	return nil
}

// demoPeople are the org's active employees (from the fake Justworks), in a stable order.
func (s *Server) demoPeople(ctx context.Context, orgID string) ([]domain.Employee, error) {
	pg, err := s.DB.SearchEmployees(ctx, orgID, store.EmployeeQuery{EmployeeFilter: store.EmployeeFilter{Status: domain.StatusActive},
		Sort: "email", Page: store.Page{Limit: store.MaxLimit}})
	return pg.Items, err
}

const demoAdminToken = "demo admin (seed)"

// demoAdmin is the principal the seed acts as for the offboarding and the wipe, so they
// go through the API's role checks and audit like an admin's: a token of the demo owner, so
// the wipe it asks for waits for the second admin, a different person.
func (s *Server) demoAdmin(ctx context.Context, org domain.Org) (api.Principal, error) {
	p := api.Principal{OrgID: org.ID, Org: org, Role: domain.RoleAdmin, Via: "token"}
	owners, err := s.DB.FindUsersByEmail(ctx, org.ID, DemoOwnerEmail)
	if err != nil {
		return p, err
	}
	if len(owners) == 0 {
		return p, fmt.Errorf("demo owner %s does not exist", DemoOwnerEmail)
	}
	p.UserID, p.UserEmail = owners[0].ID, owners[0].Email
	toks, _, err := s.DB.ListTokens(ctx, org.ID, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return p, err
	}
	for _, t := range toks {
		if t.Name == demoAdminToken && t.RevokedAt == nil && t.UserID == p.UserID {
			p.TokenID = t.ID
			return p, nil
		}
	}
	t, _, err := s.DB.CreateTokenFor(ctx, store.NewToken{OrgID: org.ID, Name: demoAdminToken, Role: domain.RoleAdmin, UserID: p.UserID})
	p.TokenID = t.ID
	return p, err
}

// demoOffboarding starts one offboarding (through the lifecycle API) unless one is open:
// the holder of the first in-use Windows laptop, whose lock goes to its agent.
func (s *Server) demoOffboarding(ctx context.Context, admin api.Principal, fleet []demoDevice) error {
	counts, _, err := s.DB.OpenWorkflows(ctx, admin.OrgID, 1)
	if err != nil {
		return err
	}
	for _, c := range counts {
		if c.Kind == "offboarding" {
			return nil
		}
	}
	for _, d := range fleet {
		if d.Platform != domain.PlatformWindows || !d.assign || d.final != "" {
			continue
		}
		devs, err := s.DB.FindDevicesBySerial(ctx, admin.OrgID, d.SerialNumber)
		if err != nil || len(devs) == 0 || devs[0].AssignedEmployeeID == "" {
			continue
		}
		emp := devs[0].AssignedEmployeeID
		err = s.API.Call(ctx, admin, "POST", "/api/v1/employees/"+emp+"/offboard", map[string]string{"confirm": emp}, nil)
		if ce, ok := api.AsCallError(err); ok && ce.Status == 409 {
			continue // already offboarded on an earlier start; try the next person
		}
		return err
	}
	return errors.New("no employee holds an in-use Windows laptop")
}

// demoPendingWipe asks (as the seed's admin, through the agent API's actions route) to
// wipe the lost laptop, unless a command already awaits approval; with the org's
// wipe_requires_approval it waits for a second admin.
func (s *Server) demoPendingWipe(ctx context.Context, admin api.Principal, fleet []demoDevice) error {
	n, _, err := s.DB.PendingApprovals(ctx, admin.OrgID, 1)
	if err != nil || n > 0 {
		return err
	}
	i := slices.IndexFunc(fleet, func(d demoDevice) bool { return d.final == domain.StateLost })
	devs, err := s.DB.FindDevicesBySerial(ctx, admin.OrgID, fleet[i].SerialNumber)
	if err != nil || len(devs) == 0 {
		return fmt.Errorf("lost laptop %s: %v", fleet[i].SerialNumber, err)
	}
	var cmd store.DeviceCommand
	if err := s.API.Call(ctx, admin, "POST", "/api/v1/devices/"+devs[0].ID+"/actions",
		agentapi.ActionRequest{Type: store.CommandWipe, Confirm: devs[0].SerialNumber}, &cmd); err != nil {
		return err
	}
	if cmd.State != store.CommandAwaitingApproval {
		return fmt.Errorf("wipe of %s is %s, not awaiting approval", devs[0].SerialNumber, cmd.State)
	}
	return nil
}
