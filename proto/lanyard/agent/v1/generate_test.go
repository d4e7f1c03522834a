package agentv1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// lookTool finds a code generator on PATH or in GOBIN/GOPATH/bin, where `go install` puts it.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := []string{os.Getenv("GOBIN")}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// TestGeneratedCodeIsFresh regenerates the Go code from agent.proto into a temporary directory
// and fails when it differs from the committed files. Fix with `make generate`.
func TestGeneratedCodeIsFresh(t *testing.T) {
	buf := lookTool("buf")
	if buf == "" {
		t.Skip("buf is not installed (go install github.com/bufbuild/buf/cmd/buf@v1.75.0); cannot check generated code")
	}
	var pathDirs []string
	for _, plugin := range []string{"protoc-gen-go", "protoc-gen-go-grpc"} {
		p := lookTool(plugin)
		if p == "" {
			t.Fatalf("%s is not installed; see proto/buf.gen.yaml for the pinned version", plugin)
		}
		pathDirs = append(pathDirs, filepath.Dir(p))
	}
	protoRoot, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(buf, "generate", "-o", out)
	cmd.Dir = protoRoot
	path := os.Getenv("PATH")
	for _, d := range pathDirs {
		path = d + string(os.PathListSeparator) + path
	}
	cmd.Env = append(os.Environ(), "PATH="+path, "BUF_CACHE_DIR="+filepath.Join(out, ".cache"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	gen, err := filepath.Glob(filepath.Join(out, "lanyard", "agent", "v1", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := filepath.Glob("*.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(gen) == 0 || len(gen) != len(committed) {
		t.Fatalf("generated %d files, committed %d: run `make generate`", len(gen), len(committed))
	}
	for _, g := range gen {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(filepath.Base(g))
		if err != nil {
			t.Fatalf("%s is not committed: run `make generate`", filepath.Base(g))
		}
		if !bytes.Equal(want, have) {
			t.Errorf("%s is stale: run `make generate`", filepath.Base(g))
		}
	}
}
