package linux

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func buildPkg(t *testing.T, format string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent-bin")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "scratch")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	in := Input{Format: format, Arch: "amd64", Version: "1.2.3", BinaryPath: bin,
		Config: []byte(`{"enrollment_secret":"lyes_test"}` + "\n"), Mtime: time.Unix(1764000000, 0)}
	if err := Build(&buf, in, scratch); err != nil {
		t.Fatal(err)
	}
	// Reproducible: the same input gives the same bytes.
	var again bytes.Buffer
	if err := Build(&again, in, scratch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("%s: two builds of the same input differ", format)
	}
	out := filepath.Join(dir, "pkg."+format)
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func contains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func TestDeb(t *testing.T) {
	p := buildPkg(t, Deb)
	contains(t, "dpkg-deb -I", run(t, "dpkg-deb", "-I", p),
		"Package: lanyard-agent", "Version: 1.2.3-1", "Architecture: amd64", "postinst", "prerm", "postrm")
	contains(t, "dpkg-deb -c", run(t, "dpkg-deb", "-c", p),
		"-rwxr-xr-x root/root", "./usr/bin/lanyard-agent",
		"-rw------- root/root", "./etc/lanyard/agent.json",
		"drwx------ root/root", "./var/lib/lanyard/",
		"./usr/lib/systemd/system/lanyard-agent.service")
	if s := run(t, "dpkg-deb", "-c", p); strings.Contains(s, " ./lib/") {
		t.Errorf("package has /lib paths (merged-/usr):\n%s", s)
	}
	// The configuration is not a conffile (a new build's secret must replace it).
	if s := run(t, "dpkg-deb", "-I", p); strings.Contains(s, "conffiles") {
		t.Errorf("package declares conffiles:\n%s", s)
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", p, ctl)
	post, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	contains(t, "postinst", string(post), "systemctl enable lanyard-agent.service", "systemctl restart lanyard-agent.service", "[ -d /run/systemd/system ]")
	postrm, _ := os.ReadFile(filepath.Join(ctl, "postrm"))
	contains(t, "postrm", string(postrm), `if [ "$1" = purge ]`, "rm -rf /var/lib/lanyard /etc/lanyard")
}

func TestRPM(t *testing.T) {
	p := buildPkg(t, RPM)
	contains(t, "rpm -qpi --scripts", run(t, "rpm", "-qpi", "--scripts", p),
		"Name        : lanyard-agent", "Version     : 1.2.3", "Architecture: x86_64",
		"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"systemctl restart lanyard-agent.service", `if [ "$1" = 0 ]`)
	contains(t, "rpm -qplv", run(t, "rpm", "-qplv", p),
		"-rw-------    1 root     root", "/etc/lanyard/agent.json",
		"drwx------    2 root     root", "/var/lib/lanyard",
		"-rwxr-xr-x    1 root     root", "/usr/bin/lanyard-agent")
	if s := run(t, "rpm", "-qpc", p); strings.Contains(s, "agent.json") {
		t.Errorf("agent.json is marked %%config:\n%s", s)
	}
}

func TestRejects(t *testing.T) {
	for name, in := range map[string]Input{
		"format": {Format: "apk", Arch: "amd64", Version: "1", BinaryPath: "x", Config: []byte("{}")},
		"arch":   {Format: Deb, Arch: "mips", Version: "1", BinaryPath: "x", Config: []byte("{}")},
		"config": {Format: Deb, Arch: "amd64", Version: "1", BinaryPath: "x"},
	} {
		if err := Build(&bytes.Buffer{}, in, t.TempDir()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
