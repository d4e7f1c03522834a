package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/console"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// countingAPI counts the console's calls into the API.
type countingAPI struct {
	console.API
	calls atomic.Int64
}

func (c *countingAPI) Call(ctx context.Context, p api.Principal, method, target string, body, out any) error {
	c.calls.Add(1)
	return c.API.Call(ctx, p, method, target, body, out)
}

// The list pages cost one API call whatever the number of rows: no call per row.
func TestListPagesMakeOneCall(t *testing.T) {
	e := newEnv(t)
	for i := range 60 {
		d := storetest.Device(t, e.srv.DB, e.org.ID, fmt.Sprintf("N1-%03d", i))
		emp := storetest.Employee(t, e.srv.DB, e.org.ID, fmt.Sprintf("P%d", i))
		if _, err := e.srv.DB.AssignDevice(context.Background(), e.org.ID, d.ID, emp.ID); err != nil {
			t.Fatal(err)
		}
	}
	ca := &countingAPI{API: e.srv.API}
	con, err := console.New(console.Options{Auth: e.auth, API: ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(con)
	defer hs.Close()
	e.http = hs
	cl := e.client(domain.RoleViewer)
	for _, path := range []string{"/devices", "/devices?sort=serial&order=desc", "/people", "/people?q=P1"} {
		before := ca.calls.Load()
		if p := cl.get(path); p.Status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.Status)
		}
		if n := ca.calls.Load() - before; n != 1 {
			t.Errorf("%s made %d API calls, want 1", path, n)
		}
	}
}

// BenchmarkDevicesPage renders the device list's first page over 10,000 devices and
// reports the server time percentiles (go test -bench DevicesPage -run ^$ ./controlplane/console/).
func BenchmarkDevicesPage(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := range 10000 {
		d := domain.Device{OrgID: e.org.ID, SerialNumber: fmt.Sprintf("BENCH-%05d", i), Vendor: "lenovo", Model: "ThinkPad", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
		if err := e.srv.DB.CreateDevice(ctx, &d); err != nil {
			b.Fatal(err)
		}
	}
	cl := e.client(domain.RoleViewer)
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		if p := cl.get("/devices?q=BENCH-0"); p.Status != http.StatusOK {
			b.Fatalf("%d", p.Status)
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
}
