package installers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// GoBuild builds the agent from source with the Go toolchain
// (CGO_ENABLED=0, -trimpath, stripped), once per OS/arch per GoBuild value.
// It is what `lanyard installers build` and `make packages` use on a
// machine with the source tree; servers use Prebuilt.
type GoBuild struct {
	ModuleDir string // module root containing Package
	Package   string // default ./cmd/lanyard-agent
	Version   string // stamped into agent/cli.Version
	OutDir    string // where binaries go; default a temp dir under os.TempDir
	Tags      string // extra build tags, e.g. grpcnotrace

	mu     sync.Mutex
	built  map[string]string
	ownDir bool
}

// AgentBinary implements AgentBinaries.
func (g *GoBuild) AgentBinary(ctx context.Context, goos, goarch string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := goos + "-" + goarch
	if p, ok := g.built[key]; ok {
		return p, nil
	}
	if g.built == nil {
		g.built = map[string]string{}
	}
	if g.OutDir == "" {
		d, err := os.MkdirTemp("", "lanyard-agent-bin-")
		if err != nil {
			return "", err
		}
		g.OutDir, g.ownDir = d, true
	}
	pkgPath := g.Package
	if pkgPath == "" {
		pkgPath = "./cmd/lanyard-agent"
	}
	out := filepath.Join(g.OutDir, BinaryName(goos, goarch))
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X " + AgentVersionSymbol + "=" + g.Version, "-o", out}
	if g.Tags != "" {
		args = append(args, "-tags", g.Tags)
	}
	args = append(args, pkgPath)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = g.ModuleDir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for %s/%s: %w: %s", pkgPath, goos, goarch, err, stderr.String())
	}
	g.built[key] = out
	return out, nil
}

// Cleanup removes the binaries when OutDir was a temp dir made by GoBuild.
func (g *GoBuild) Cleanup() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ownDir {
		_ = os.RemoveAll(g.OutDir)
		g.OutDir, g.ownDir = "", false
	}
	g.built = nil
}

// AgentVersionSymbol is the agent's version variable, set with -ldflags -X.
const AgentVersionSymbol = "github.com/lanyardhq/lanyard/agent/cli.Version"

// Prebuilt serves agent binaries from a directory laid out by
// `make agent-binaries`: lanyard-agent-<goos>-<goarch>[.exe].
type Prebuilt struct{ Dir string }

// AgentBinary implements AgentBinaries.
func (p Prebuilt) AgentBinary(_ context.Context, goos, goarch string) (string, error) {
	path := filepath.Join(p.Dir, BinaryName(goos, goarch))
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("prebuilt agent binary: %w", err)
	}
	return path, nil
}

// BinaryName is the file name of a prebuilt agent binary.
func BinaryName(goos, goarch string) string {
	n := "lanyard-agent-" + goos + "-" + goarch
	if goos == "windows" {
		n += ".exe"
	}
	return n
}
