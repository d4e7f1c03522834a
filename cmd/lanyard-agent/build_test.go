package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// targets the agent ships for (`make build`).
var targets = [][2]string{
	{"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}, {"linux", "amd64"}, {"linux", "arm64"},
}

// TestCrossCompile builds the agent packages for every target with
// CGO_ENABLED=0, so per-OS files (_darwin.go, _windows.go, _linux.go) keep
// compiling even though tests only run on Linux. The build cache makes
// repeated runs fast.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compilation skipped in -short mode")
	}
	goBin := "go" /* resolved on PATH: go test puts GOROOT/bin first */
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		t.Run(tg[0]+"_"+tg[1], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "./agent/...", "./cmd/lanyard-agent")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+tg[0], "GOARCH="+tg[1])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s/%s: %v\n%s", tg[0], tg[1], err, out)
			}
		})
	}
}
