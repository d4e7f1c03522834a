package actions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
)

func TestParseLUKSDumps(t *testing.T) {
	for _, tc := range []struct {
		file  string
		typ   blockdev.Crypt
		slots []string
		err   string
	}{
		{"luks2-two-keyslots.json", blockdev.LUKS2, []string{"0", "1"}, ""},
		{"luks2-erased.json", blockdev.LUKS2, []string{}, ""},
		{"luks2-two-keyslots.txt", blockdev.LUKS2, []string{"0", "1"}, ""},
		{"luks2-erased.txt", blockdev.LUKS2, []string{}, ""},
		{"luks1-two-keyslots.txt", blockdev.LUKS1, []string{"0", "1"}, ""},
		{"luks1-erased.txt", blockdev.LUKS1, []string{}, ""},
		// A LUKS1 dump read as the LUKS2 the mapping claims is an error,
		// never "no keyslots".
		{"luks1-two-keyslots.txt", blockdev.LUKS2, nil, "version 1"},
	} {
		t.Run(tc.file+"/"+string(tc.typ), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "luksdump", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if strings.HasSuffix(tc.file, ".json") {
				got, err = ParseLUKS2Keyslots(string(b))
			} else {
				got, err = ParseLUKSDump(string(b), tc.typ)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.slots) {
				t.Fatalf("slots %q err %v, want %q", got, err, tc.slots)
			}
		})
	}
	// Output that says nothing about keyslots never counts as "none left".
	for _, bad := range []string{"", "{}", `{"tokens":{}}`, "Version: 2\nTokens:\n"} {
		if _, err := ParseLUKS2Keyslots(bad); err == nil && strings.HasPrefix(bad, "{") {
			t.Errorf("json %q accepted", bad)
		}
		if _, err := ParseLUKSDump(bad, blockdev.LUKS2); err == nil {
			t.Errorf("dump %q accepted", bad)
		}
	}
}

// layout loads a recorded layout from blockdev's testdata.
func layout(t *testing.T, name string) blockdev.Layout {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join("..", "internal", "blockdev", "testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := blockdev.Discover(blockdevtest.Materialize(t, string(spec)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// goodHeaders: every header carries its mapping's UUID.
func goodHeaders(l blockdev.Layout) map[string]HeaderProbe {
	h := map[string]HeaderProbe{}
	for _, v := range l.Volumes {
		h[v.Crypt] = HeaderProbe{UUID: v.UUID}
	}
	return h
}

func TestDecideLinuxWipe(t *testing.T) {
	cases := []struct {
		layout string
		// method without best effort; "" = refused with ErrNoCryptoErase
		method  string
		erase   []string
		blocker string   // substring of the refusal
		remove  []string // best effort, of /root and /home/alice
	}{
		{"luks-root-ext4", WipeCryptoErase, []string{"/dev/sda3"}, "", nil},
		{"fedora-btrfs-two-devices", WipeCryptoErase, []string{"/dev/nvme0n1p3", "/dev/nvme1n1p1"}, "", nil},
		{"lvm-on-luks", WipeCryptoErase, []string{"/dev/nvme0n1p3"}, "", nil},
		{"swap-on-luks", WipeCryptoErase, []string{"/dev/nvme0n1p2", "/dev/nvme0n1p3"}, "", nil},
		{"luks2-integrity-on-mdraid", WipeCryptoErase, []string{"/dev/md0"}, "", nil},
		// /home's LUKS is erased even by best effort; only /root is on the plain /.
		{"luks-home-plain-root", "", []string{"/dev/sda3"}, "/ (ext4 on sda2: not encrypted)", []string{"/root"}},
		// /root is on the read-only verity image: nothing to remove there.
		{"verity-root", "", nil, "/home (ext4 on nvme0n1p4: not encrypted)", []string{"/home/alice"}},
		{"plain-dm-crypt", "", nil, "plain dm-crypt", []string{"/root", "/home/alice"}},
		{"no-encryption", "", nil, "/dev/nvme0n1p3 (swap on nvme0n1p3: not encrypted)", []string{"/root", "/home/alice"}},
		// Homes are on the LUKS root; the BitLocker partition is left as is.
		{"bitlocker-data", "", []string{"/dev/nvme0n1p5"}, "BitLocker", nil},
		{"recorded-btrfs-on-loop", "", nil, "loop device backed by /tmp/cs/c.img", []string{"/root", "/home/alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.layout, func(t *testing.T) {
			l := layout(t, tc.layout)
			w := LinuxWipeFacts{LinuxFacts: linuxFacts("/"), Storage: l, Headers: goodHeaders(l),
				UserData: []string{"/root", "/home/alice"}}
			d, err := DecideLinuxWipe(w, false)
			var erase []string
			for _, v := range d.Erase {
				erase = append(erase, v.HeaderPath())
			}
			if !slices.Equal(erase, tc.erase) {
				t.Errorf("erase %q, want %q", erase, tc.erase)
			}
			if tc.method != "" {
				if err != nil || d.Method != tc.method || len(d.Blockers) != 0 || len(d.Remove) != 0 {
					t.Fatalf("decision %+v err %v", d, err)
				}
				// Best effort allowed changes nothing when a crypto-erase is possible.
				if d2, err := DecideLinuxWipe(w, true); err != nil || d2.Method != WipeCryptoErase || len(d2.Remove) != 0 {
					t.Fatalf("with best effort allowed: %+v %v", d2, err)
				}
				return
			}
			if !errors.Is(err, ErrNoCryptoErase) || !strings.Contains(err.Error(), tc.blocker) {
				t.Fatalf("err %v, want ErrNoCryptoErase naming %q", err, tc.blocker)
			}
			d, err = DecideLinuxWipe(w, true)
			if err != nil || d.Method != WipeBestEffort {
				t.Fatalf("best effort: %+v %v", d, err)
			}
			if !slices.Equal(d.Remove, tc.remove) {
				t.Fatalf("best effort removes %q, want %q", d.Remove, tc.remove)
			}
			if !slices.Equal(erase, tc.erase) {
				t.Fatalf("best effort erases %q, want %q", erase, tc.erase)
			}
			if !strings.Contains(d.Summary(), "best-effort") || strings.Contains(d.Summary(), "crypto-erase:") {
				t.Fatalf("summary %q", d.Summary())
			}
		})
	}

	// A header that does not carry the mapping's UUID (detached header, or
	// the wrong device) is not erasable: the wipe refuses up front.
	l := layout(t, "luks-root-ext4")
	for name, probe := range map[string]HeaderProbe{
		"other uuid": {UUID: "11111111-2222-3333-4444-555555555555"},
		"no header":  {Err: errors.New("Device /dev/sda3 is not a valid LUKS device.")},
	} {
		w := LinuxWipeFacts{LinuxFacts: linuxFacts("/"), Storage: l, Headers: map[string]HeaderProbe{"dm-0": probe}}
		if _, err := DecideLinuxWipe(w, false); !errors.Is(err, ErrNoCryptoErase) || !strings.Contains(err.Error(), "detached header") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestLinuxWipePlanSteps(t *testing.T) {
	l := layout(t, "fedora-btrfs-two-devices")
	w := LinuxWipeFacts{LinuxFacts: linuxFacts("/"), Storage: l, Headers: goodHeaders(l),
		PowerOff: Step{Name: "power-off", Argv: []string{"/usr/bin/systemctl", "poweroff", "--force", "--force"}}}
	d, err := DecideLinuxWipe(w, false)
	if err != nil {
		t.Fatal(err)
	}
	steps, final := LinuxWipePlan(w, d)
	want := append(names(LinuxLockPlan(w.LinuxFacts, LinuxWipeMessage)),
		"crypto-erase:/dev/nvme0n1p3: /usr/sbin/cryptsetup luksErase --batch-mode /dev/nvme0n1p3",
		"crypto-erase:/dev/nvme1n1p1: /usr/sbin/cryptsetup luksErase --batch-mode /dev/nvme1n1p1")
	if got := names(steps); !slices.Equal(got, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if steps[0].Name != "block-logins:/etc/nologin" {
		t.Fatal("the wipe must start with the lock")
	}
	for _, s := range steps {
		if !s.ContinueOnError {
			t.Errorf("%s stops the wipe on failure", s.Name)
		}
		if strings.HasPrefix(s.Name, "crypto-erase:") != s.Destructive {
			t.Errorf("%s destructive=%v", s.Name, s.Destructive)
		}
	}
	if got := names(final); !slices.Equal(got, []string{"power-off: /usr/bin/systemctl poweroff --force --force"}) || !final[0].Destructive {
		t.Fatalf("final %v", got)
	}
	// Every store holding data, and its fate, is in the summary.
	for _, s := range []string{"/, /home (btrfs on LUKS2 dm-0", "crypto-erased"} {
		if !strings.Contains(d.Summary(), s) {
			t.Errorf("summary lacks %q: %s", s, d.Summary())
		}
	}
}

// recordedHeaders answers like cryptsetup from recorded dumps.
type recordedHeaders struct {
	uuid string
	dump string
}

func (r recordedHeaders) UUID(context.Context, string) (string, error) { return r.uuid, nil }
func (r recordedHeaders) Keyslots(_ context.Context, _ string, t blockdev.Crypt) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "luksdump", r.dump))
	if err != nil {
		return nil, err
	}
	return ParseLUKSDump(string(b), t)
}

func TestVerifyLinuxWipeChecks(t *testing.T) {
	l := layout(t, "luks-root-ext4")
	root := t.TempDir()
	w := LinuxWipeFacts{LinuxFacts: linuxFacts(root), Storage: l, Headers: goodHeaders(l)}
	w.Humans = nil
	d, err := DecideLinuxWipe(w, false)
	if err != nil {
		t.Fatal(err)
	}
	uuid := l.Volumes[0].UUID
	for _, tc := range []struct {
		name   string
		r      recordedHeaders
		ok     bool
		detail string
	}{
		{"erased", recordedHeaders{uuid, "luks2-erased.txt"}, true, "0 keyslots"},
		{"keyslots left", recordedHeaders{uuid, "luks2-two-keyslots.txt"}, false, "2 keyslots left (0, 1)"},
		{"another header", recordedHeaders{"133ff61f-9dba-48b9-b4a5-2567a6344391", "luks2-erased.txt"}, false, "header UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checks := VerifyLinuxWipe(context.Background(), w, d, tc.r)
			byName := map[string]Check{}
			for _, c := range checks {
				byName[c.Name] = c
			}
			c, ok := byName["luks-keyslots-destroyed:/dev/sda3"]
			if !ok || c.OK != tc.ok || !strings.Contains(c.Observed, tc.detail) {
				t.Fatalf("check %+v", c)
			}
			for _, s := range []string{"storage:/", "storage:/swapfile"} {
				if sc := byName[s]; sc.OK != tc.ok {
					t.Errorf("%s %+v", s, sc)
				}
			}
		})
	}
}
