package agentapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// BenchmarkReportInventory drives delta reports (one section changed, as bench/agentsim's
// inventory phase sends them) through the real mTLS gRPC server and its batcher into the
// store, from 16 concurrent agents so batches form. Judge it by allocs/op and B/op: the
// client's allocations are in the numbers too, so compare server functions in a profile
// (-memprofile, pprof -sample_index=alloc_space) rather than the totals alone.
func BenchmarkReportInventory(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			var db *store.DB
			if dialect == "sqlite" {
				db = storetest.NewSQLite(b)
			} else {
				db = storetest.NewPostgres(b)
			}
			benchReports(b, db)
		})
	}
}

func benchReports(b *testing.B, db *store.DB) {
	ctx := context.Background()
	// The server's and the CA's log lines would break up the benchmark's output lines.
	quiet := slog.New(slog.DiscardHandler)
	prev := slog.Default()
	slog.SetDefault(quiet)
	b.Cleanup(func() { slog.SetDefault(prev) })
	e := newEnvWith(b, db, domain.PlanPro, func(c *agentapi.Config) { c.Logger = quiet })
	secret, _ := e.secret(e.org.ID, enrollment.Options{Name: "bench"})
	const agents = 16
	clients := make([]agentv1.AgentServiceClient, agents)
	for i := range clients {
		serial := fmt.Sprintf("BENCH-%03d", i)
		ag := e.enroll(secret, serial, "uuid-"+serial)
		clients[i] = e.agentClient(&ag.Cert)
		// The first report is full: it links the agent to a device, the state every later
		// delta finds.
		res, err := clients[i].ReportInventory(ctx, &agentv1.ReportInventoryRequest{Full: true, InventoryHash: "full",
			Inventory: benchInventory(serial, i)})
		if err != nil || res.GetDeviceId() == "" {
			b.Fatalf("full report of %s: %v (device %q)", serial, err, res.GetDeviceId())
		}
	}
	var next, seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(agents / 2) // GOMAXPROCS=2 on the reference machine: 16 reporters
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cl := clients[int(next.Add(1)-1)%agents]
		for pb.Next() {
			k := seq.Add(1)
			_, err := cl.ReportInventory(ctx, &agentv1.ReportInventoryRequest{ChangedSections: []string{"uptime_seconds"},
				Inventory: &agentv1.Inventory{UptimeSeconds: uint64(1000 + k)}, InventoryHash: "h" + strconv.FormatInt(k, 10)})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	var reports int
	if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM device_inventory_history WHERE org_id = $1`, e.org.ID).Scan(&reports); err != nil {
		b.Fatal(err)
	}
	// Every acknowledged delta changed uptime: one history row each, plus the full reports'.
	if want := int(seq.Load()) + agents; reports < want {
		b.Fatalf("%d history rows, want at least %d: an acknowledged report is missing", reports, want)
	}
}

// benchInventory is bench/agentsim's inventory of machine i.
func benchInventory(serial string, i int) *agentv1.Inventory {
	return &agentv1.Inventory{
		Hostname: "sim-" + strconv.Itoa(i), AgentVersion: "agentsim",
		Os:       &agentv1.OperatingSystem{Platform: "linux", Name: "Debian GNU/Linux", Version: "12.11", KernelVersion: "6.1.0-37-amd64", Arch: "amd64", Family: "debian"},
		Hardware: &agentv1.Hardware{SerialNumber: serial, HardwareUuid: "uuid-" + serial, Vendor: "Dell Inc.", Model: "Latitude 7440"},
		Cpu:      &agentv1.Cpu{Model: "13th Gen Intel(R) Core(TM) i7-1365U", PhysicalCores: 10, LogicalCores: 12}, MemoryBytes: 32 << 30,
		Disks: []*agentv1.Disk{{Device: "/dev/mapper/root", Mountpoint: "/", Fstype: "ext4", TotalBytes: 512 << 30, FreeBytes: 200 << 30,
			Encrypted: agentv1.PostureState_POSTURE_STATE_ON}},
		NetworkInterfaces: []*agentv1.NetworkInterface{{Name: "wlp0s20f3", MacAddress: fmt.Sprintf("02:00:00:00:00:%02x", i&0xff),
			IpAddresses: []string{"192.0.2.10/24", "fe80::1/64"}, Up: true}},
		Users:         []*agentv1.User{{Username: "user" + strconv.Itoa(i), Uid: "1000", FullName: "Sim User", Home: "/home/u", Admin: true, LoggedIn: true}},
		UptimeSeconds: 1,
		Posture: &agentv1.Posture{DiskEncryption: agentv1.PostureState_POSTURE_STATE_ON, Firewall: agentv1.PostureState_POSTURE_STATE_ON,
			ScreenLock: agentv1.PostureState_POSTURE_STATE_UNKNOWN, AutoUpdates: agentv1.PostureState_POSTURE_STATE_ON, OsVersion: "12.11"},
	}
}
