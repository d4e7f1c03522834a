package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// A Linux wipe is a crypto-erase: every LUKS volume under a mounted
// filesystem or active swap loses all its keyslots (`cryptsetup luksErase`),
// so once the kernel forgets the volume keys at power-off the data is
// ciphertext nobody can open. It can be promised only when every mounted
// filesystem that holds data, and every swap area, is under LUKS. Otherwise
// the wipe refuses before anything runs (ErrNoCryptoErase), unless the org
// allows a best-effort removal: then the LUKS volumes it can erase are
// erased, home directories and /root on the other filesystems are removed,
// and the evidence says best_effort, never crypto_erase.

// LinuxWipeMessage is written to nologin while the machine is wiped.
const LinuxWipeMessage = "This device is being erased by your organization's IT department.\n"

// HeaderProbe is what `cryptsetup luksUUID` read from a LUKS volume's header
// device before anything ran.
type HeaderProbe struct {
	UUID string
	Err  error
}

// LinuxWipeFacts is what a Linux wipe plan needs beyond the lock's facts.
type LinuxWipeFacts struct {
	LinuxFacts
	// Storage is the block-device layout (blockdev.Discover).
	Storage blockdev.Layout
	// Headers holds, per LUKS volume (by crypt device name, "dm-0"), what
	// its header device said. A volume is erased only when its header
	// carries the UUID of the active mapping: that proves the header is on
	// the device we will erase (not detached elsewhere).
	Headers map[string]HeaderProbe
	// UserData are the candidates of a best-effort removal, as paths on
	// the machine (symlinks resolved): /root, each human account's home,
	// every directory in /home (directory accounts have no passwd entry).
	UserData []string
	// PowerOff is the final step.
	PowerOff Step
}

// LinuxWipeDecision is what the wipe does to each store.
type LinuxWipeDecision struct {
	Method string // WipeCryptoErase or WipeBestEffort
	// Erase are the LUKS volumes whose keyslots are destroyed.
	Erase []blockdev.Volume
	// Remove are the paths deleted by a best-effort wipe.
	Remove []string
	// Fates lists every data store (and boot store with LUKS) and what
	// happens to it.
	Fates []StoreFate
	// Blockers say why a crypto-erase cannot be promised (empty for
	// crypto_erase).
	Blockers []string
	// Skipped are best-effort candidates left alone, with the reason.
	Skipped []string
}

// StoreFate is what the wipe does to one store.
type StoreFate struct {
	Store blockdev.Store
	// Erased: every byte is under volumes in Erase.
	Erased bool
	// Removed: best effort deletes these paths on it.
	Removed []string
	// Why it is not erased ("" when Erased).
	Why string
}

// DecideLinuxWipe chooses between a crypto-erase, a best-effort removal
// (only with allowBestEffort) and a refusal wrapping ErrNoCryptoErase that
// says what was found.
func DecideLinuxWipe(w LinuxWipeFacts, allowBestEffort bool) (LinuxWipeDecision, error) {
	var d LinuxWipeDecision
	headerOK := map[string]string{} // crypt device -> "" or the reason it cannot be erased
	for _, v := range w.Storage.Volumes {
		p, probed := w.Headers[v.Crypt]
		switch {
		case !probed:
			headerOK[v.Crypt] = fmt.Sprintf("%s: header on %s not read", v.Crypt, v.HeaderPath())
		case p.Err != nil:
			headerOK[v.Crypt] = fmt.Sprintf("%s: no LUKS header readable on %s (detached header?): %v", v.Crypt, v.HeaderPath(), p.Err)
		case v.UUID == "" || !sameUUID(p.UUID, v.UUID):
			headerOK[v.Crypt] = fmt.Sprintf("%s: the header on %s has UUID %q, the active mapping expects %q (detached header?)",
				v.Crypt, v.HeaderPath(), p.UUID, v.UUID)
		default:
			headerOK[v.Crypt] = ""
			d.Erase = append(d.Erase, v)
		}
	}
	var blocked []blockdev.Store
	for _, s := range w.Storage.Stores {
		if s.Role != blockdev.RoleData && s.Role != blockdev.RoleBoot {
			continue
		}
		f := StoreFate{Store: s, Erased: s.Erasable()}
		var why []string
		for _, e := range s.Exposed {
			why = append(why, e.String())
		}
		for _, v := range s.LUKS {
			if r := headerOK[v.Crypt]; r != "" {
				f.Erased = false
				why = append(why, r)
			}
		}
		if !f.Erased {
			if s.Role != blockdev.RoleData {
				// A plain /boot holds no user data: neither a blocker
				// nor worth a check.
				continue
			}
			f.Why = strings.Join(why, "; ")
			d.Blockers = append(d.Blockers, s.Describe()+": "+f.Why)
			blocked = append(blocked, s)
		}
		d.Fates = append(d.Fates, f)
	}
	if len(d.Blockers) == 0 && len(d.Erase) == 0 {
		d.Blockers = []string{"no mounted filesystem holding data is on LUKS"}
	}
	if len(d.Blockers) == 0 {
		d.Method = WipeCryptoErase
		return d, nil
	}
	if !allowBestEffort {
		return d, fmt.Errorf("%w: %s", ErrNoCryptoErase, strings.Join(d.Blockers, "; "))
	}
	d.Method = WipeBestEffort
	for _, p := range w.UserData {
		s, ok := w.Storage.StoreOf(p)
		switch {
		case !ok:
			d.Skipped = append(d.Skipped, p+": in memory (tmpfs)")
			continue
		case s.Role != blockdev.RoleData:
			d.Skipped = append(d.Skipped, p+": "+s.Describe())
			continue
		case !slices.ContainsFunc(blocked, func(b blockdev.Store) bool { return b.DevNo == s.DevNo }):
			// Under an erased LUKS volume: gone with it.
			continue
		}
		d.Remove = append(d.Remove, p)
		for i := range d.Fates {
			if d.Fates[i].Store.Kind == blockdev.Filesystem && d.Fates[i].Store.DevNo == s.DevNo {
				d.Fates[i].Removed = append(d.Fates[i].Removed, p)
			}
		}
	}
	return d, nil
}

func sameUUID(a, b string) bool {
	return a != "" && strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// Summary is the plan's message for the admin.
func (d LinuxWipeDecision) Summary() string {
	var b strings.Builder
	switch d.Method {
	case WipeCryptoErase:
		b.WriteString("crypto-erase: the keyslots of every LUKS volume are destroyed, then the device powers off")
	default:
		b.WriteString("best-effort wipe (no crypto-erase possible: " + strings.Join(d.Blockers, "; ") + ")")
	}
	for _, f := range d.Fates {
		switch {
		case f.Erased:
			fmt.Fprintf(&b, "; %s: crypto-erased", f.Store.Describe())
		case len(f.Removed) > 0:
			fmt.Fprintf(&b, "; %s: removed %s, every other file left as is", f.Store.Describe(), strings.Join(f.Removed, ", "))
		case f.Store.Role == blockdev.RoleData:
			fmt.Fprintf(&b, "; %s: left as is", f.Store.Describe())
		}
	}
	for _, s := range d.Skipped {
		fmt.Fprintf(&b, "; not removed: %s", s)
	}
	return b.String()
}

// LinuxWipePlan turns a decision into steps: the lock first (its steps
// never stop the wipe: a failed account lock must not leave the data
// intact; the lock checks still decide the result), then luksErase of every
// volume, then the best-effort removals; and the final power-off.
func LinuxWipePlan(w LinuxWipeFacts, d LinuxWipeDecision) (steps, final []Step) {
	for _, s := range LinuxLockPlan(w.LinuxFacts, LinuxWipeMessage) {
		s.ContinueOnError = true
		steps = append(steps, s)
	}
	for _, v := range d.Erase {
		steps = append(steps, Step{
			Name: "crypto-erase:" + v.HeaderPath(), Destructive: true, ContinueOnError: true,
			Argv: []string{w.Cryptsetup, "luksErase", "--batch-mode", v.HeaderPath()},
		})
	}
	for _, p := range d.Remove {
		steps = append(steps, Step{
			Name: "remove-user-data:" + p, Destructive: true, ContinueOnError: true,
			Argv: []string{w.Rm, "-rf", "--one-file-system", "--preserve-root", "--", inRoot(w.Root, p)},
		})
	}
	pw := w.PowerOff
	pw.Destructive = true
	return steps, []Step{pw}
}

// LUKSHeaderReader reads LUKS headers (cryptsetup on a live system).
type LUKSHeaderReader interface {
	// UUID is `cryptsetup luksUUID dev`.
	UUID(ctx context.Context, dev string) (string, error)
	// Keyslots lists the keyslots the header at dev still has.
	Keyslots(ctx context.Context, dev string, t blockdev.Crypt) ([]string, error)
}

// VerifyLinuxWipe checks afterwards, per volume, that its header is still
// the one of the mapping (same UUID: we are reading the right device) and
// has no keyslot left; per removed path that it is gone; per store what
// that means; plus the lock checks.
func VerifyLinuxWipe(ctx context.Context, w LinuxWipeFacts, d LinuxWipeDecision, r LUKSHeaderReader) []Check {
	checks := VerifyLinuxLock(w.LinuxFacts)
	volOK := map[string]bool{}
	for _, v := range d.Erase {
		c := Check{Name: "luks-keyslots-destroyed:" + v.HeaderPath(),
			Expected: fmt.Sprintf("%s header %s present with no keyslot", v.Type, v.UUID)}
		uuid, err := r.UUID(ctx, v.HeaderPath())
		switch {
		case err != nil:
			c.Observed = "header unreadable: " + err.Error()
		case !sameUUID(uuid, v.UUID):
			c.Observed = fmt.Sprintf("header UUID %q", uuid)
		default:
			slots, err := r.Keyslots(ctx, v.HeaderPath(), v.Type)
			switch {
			case err != nil:
				c.Observed = "keyslots unreadable: " + err.Error()
			case len(slots) > 0:
				c.Observed = fmt.Sprintf("%s header %s: %d keyslots left (%s)", v.Type, uuid, len(slots), strings.Join(slots, ", "))
			default:
				c.OK = true
				c.Observed = fmt.Sprintf("%s header %s: 0 keyslots", v.Type, uuid)
			}
		}
		volOK[v.Crypt] = c.OK
		checks = append(checks, c)
	}
	gone := map[string]bool{}
	for _, p := range d.Remove {
		c := Check{Name: "user-data-removed:" + p, Expected: "absent"}
		_, err := os.Lstat(inRoot(w.Root, p))
		c.Observed = statWord(err)
		c.OK = errors.Is(err, os.ErrNotExist)
		gone[p] = c.OK
		checks = append(checks, c)
	}
	for _, f := range d.Fates {
		c := Check{Name: "storage:" + f.Store.Where()}
		switch {
		case f.Erased:
			c.Expected = "every LUKS volume under it without keyslots"
			c.OK = true
			var left []string
			for _, v := range f.Store.LUKS {
				if !volOK[v.Crypt] {
					c.OK = false
					left = append(left, v.HeaderPath())
				}
			}
			c.Observed = f.Store.Describe() + ": crypto-erased"
			if !c.OK {
				c.Observed = f.Store.Describe() + ": keyslots not destroyed on " + strings.Join(left, ", ")
			}
		default:
			c.Expected = "best effort: home directories and /root on it removed"
			c.OK = true
			var kept []string
			for _, p := range f.Removed {
				if !gone[p] {
					c.OK = false
					kept = append(kept, p)
				}
			}
			c.Observed = fmt.Sprintf("%s: not crypto-erasable (%s); removed: %s; every other file left as is",
				f.Store.Describe(), f.Why, orNone(f.Removed))
			if !c.OK {
				c.Observed = fmt.Sprintf("%s: still present: %s", f.Store.Describe(), strings.Join(kept, ", "))
			}
		}
		checks = append(checks, c)
	}
	return checks
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "nothing"
	}
	return strings.Join(xs, ", ")
}

// LinuxUserData lists what a best-effort wipe removes, as paths on the
// machine (symlinks resolved inside root, existing only, deduplicated):
// /root, every human account's home, every directory in /home.
func LinuxUserData(root string, humans []accounts.Account) []string {
	cands := []string{"/root"}
	for _, u := range humans {
		if h := filepath.Clean("/" + u.Home); u.Home != "" && h != "/" {
			cands = append(cands, h)
		}
	}
	if home, err := resolveIn(root, "/home"); err == nil {
		ents, _ := os.ReadDir(inRoot(root, home))
		for _, e := range ents {
			cands = append(cands, filepath.Join("/home", e.Name()))
		}
	}
	var out []string
	for _, c := range cands {
		p, err := resolveIn(root, c)
		if err != nil || p == "/" || slices.Contains(out, p) {
			continue
		}
		if fi, err := os.Lstat(inRoot(root, p)); err != nil || !fi.IsDir() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// inRoot is p inside root ("/" or "" is the machine itself).
func inRoot(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}

// resolveIn resolves every symlink of p as the machine rooted at root sees
// it (an absolute link target starts again at root, never above it).
func resolveIn(root, p string) (string, error) {
	parts := strings.Split(filepath.Clean("/"+p), "/")
	cur, links := "/", 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(inRoot(root, next))
		if errors.Is(err, os.ErrNotExist) {
			return filepath.Join(append([]string{next}, parts...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("actions: too many symlinks resolving %s", p)
		}
		target, err := os.Readlink(inRoot(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return cur, nil
}

// ParseLUKS2Keyslots reads the keyslot ids from
// `cryptsetup luksDump --dump-json-metadata` (cryptsetup 2.4 and later).
func ParseLUKS2Keyslots(out string) ([]string, error) {
	var md struct {
		Keyslots *map[string]json.RawMessage `json:"keyslots"`
	}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		return nil, fmt.Errorf("actions: LUKS2 metadata: %w", err)
	}
	if md.Keyslots == nil {
		return nil, errors.New("actions: LUKS2 metadata has no keyslots object")
	}
	ids := make([]string, 0, len(*md.Keyslots))
	for id := range *md.Keyslots {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	return ids, nil
}

var (
	luks1Slot    = regexp.MustCompile(`(?m)^Key Slot (\d+): (ENABLED|DISABLED)\s*$`)
	luksVersion  = regexp.MustCompile(`(?m)^Version:\s*(\d+)\s*$`)
	luks2SlotRow = regexp.MustCompile(`^\s+(\d+): \S`)
)

// ParseLUKSDump reads the keyslots still in use from `cryptsetup luksDump`
// text: LUKS1 "Key Slot N: ENABLED" rows (all eight rows must be there), or
// the entries of a LUKS2 "Keyslots:" section.
func ParseLUKSDump(out string, t blockdev.Crypt) ([]string, error) {
	m := luksVersion.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("actions: luksDump: no Version line")
	}
	switch {
	case t == blockdev.LUKS1 && m[1] == "1":
		rows := luks1Slot.FindAllStringSubmatch(out, -1)
		if len(rows) != 8 {
			return nil, fmt.Errorf("actions: luksDump: %d LUKS1 key slot rows, want 8", len(rows))
		}
		ids := []string{}
		for _, r := range rows {
			if r[2] == "ENABLED" {
				ids = append(ids, r[1])
			}
		}
		return ids, nil
	case t == blockdev.LUKS2 && m[1] == "2":
		ids, in, seen := []string{}, false, false
		for _, l := range strings.Split(out, "\n") {
			if l != "" && l[0] != ' ' && l[0] != '\t' {
				in = strings.HasPrefix(l, "Keyslots:")
				seen = seen || in
				continue
			}
			if r := luks2SlotRow.FindStringSubmatch(l); in && r != nil && strings.HasPrefix(l, "  ") {
				ids = append(ids, r[1])
			}
		}
		if !seen {
			return nil, errors.New("actions: luksDump: no Keyslots section")
		}
		return ids, nil
	}
	return nil, fmt.Errorf("actions: luksDump says LUKS version %s, the mapping is %s", m[1], t)
}
