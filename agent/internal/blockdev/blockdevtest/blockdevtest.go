// Package blockdevtest turns a recorded block-device layout (the format
// blockdev/testdata/record.sh prints) into sysfs and procfs trees under a
// test's temporary directory, with the kernel's own relative symlinks, so
// blockdev.Discover runs on it exactly as on a live /sys and /proc.
package blockdevtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// Materialize builds the trees for spec and returns their roots.
//
// Spec lines: "L <path> <target>" (symlink), "F <path> <content>" (file),
// "D <path>" (directory), paths relative to /sys; then "== mountinfo" and
// "== swaps" sections copied to <proc>/1/mountinfo and <proc>/swaps.
// Lines starting with "#" are comments.
func Materialize(t testing.TB, spec string) blockdev.Roots {
	t.Helper()
	base := t.TempDir()
	r := blockdev.Roots{Sys: filepath.Join(base, "sys"), Proc: filepath.Join(base, "proc")}
	if err := Write(r, spec); err != nil {
		t.Fatal(err)
	}
	return r
}

// Write builds the trees for spec under r.Sys and r.Proc.
func Write(r blockdev.Roots, spec string) error {
	section := "sys"
	var proc = map[string]*strings.Builder{"mountinfo": {}, "swaps": {}}
	for n, line := range strings.Split(spec, "\n") {
		if s, ok := strings.CutPrefix(line, "== "); ok {
			if proc[s] == nil {
				return fmt.Errorf("line %d: unknown section %q", n+1, s)
			}
			section = s
			continue
		}
		if section != "sys" {
			proc[section].WriteString(line + "\n")
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		path, arg, _ := strings.Cut(rest, " ")
		if path == "" || filepath.IsAbs(path) || strings.Contains(path, "..") {
			return fmt.Errorf("line %d: bad path %q", n+1, path)
		}
		p := filepath.Join(r.Sys, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		switch op {
		case "L":
			err = os.Symlink(arg, p)
		case "F":
			err = os.WriteFile(p, []byte(arg+"\n"), 0o644)
		case "D":
			err = os.MkdirAll(p, 0o755)
		default:
			err = fmt.Errorf("unknown op %q", op)
		}
		if err != nil && !os.IsExist(err) {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(r.Proc, "1"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Proc, "1", "mountinfo"), []byte(strings.TrimLeft(proc["mountinfo"].String(), "\n")), 0o644); err != nil {
		return err
	}
	if proc["swaps"].Len() > 0 {
		return os.WriteFile(filepath.Join(r.Proc, "swaps"), []byte(proc["swaps"].String()), 0o644)
	}
	return nil
}

// Builder writes a layout spec the way the kernel lays sysfs out: device
// directories under devices/, links from block/ (whole disks and virtual
// devices), class/block/ and dev/block/, holders/ and slaves/ links between
// stacked devices, and btrfs member links, all relative as the kernel
// writes them. Tests use it for layouts whose names are only known at run
// time (loop devices); the files in blockdev/testdata were written with it
// or recorded by record.sh.
type Builder struct {
	lines []string
	dirs  map[string]string // kernel name -> device dir (relative to /sys)
	mi    []string
	swaps []string
}

// NewBuilder starts an empty layout.
func NewBuilder() *Builder { return &Builder{dirs: map[string]string{}} }

func (b *Builder) add(format string, args ...any) {
	b.lines = append(b.lines, fmt.Sprintf(format, args...))
}

func (b *Builder) link(at, target string) {
	rel, err := filepath.Rel(filepath.Dir(at), target)
	if err != nil {
		panic(err)
	}
	b.add("L %s %s", at, rel)
}

func (b *Builder) device(name, dir, devno string, whole bool) {
	b.dirs[name] = dir
	if whole {
		b.link("block/"+name, dir)
	}
	b.link("class/block/"+name, dir)
	b.link("dev/block/"+devno, dir)
	b.add("F %s/dev %s", dir, devno)
	b.add("F %s/ro 0", dir)
	b.add("D %s/holders", dir)
	b.add("D %s/slaves", dir)
}

// Disk adds a whole disk under parent: an NVMe controller
// ("devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"), a SCSI device
// (".../target0:0:0/0:0:0:0", the disk goes in its block/ directory) or
// "devices/virtual/block" (zram).
func (b *Builder) Disk(parent, name, devno string) *Builder {
	dir := parent + "/" + name
	if !strings.Contains(parent, "/nvme/") && parent != "devices/virtual/block" {
		dir = parent + "/block/" + name
	}
	b.device(name, dir, devno, true)
	b.add("F %s/removable 0", dir)
	return b
}

// Partition adds partition number n of disk.
func (b *Builder) Partition(disk, name, devno string, n int) *Builder {
	dir := b.dirs[disk] + "/" + name
	b.device(name, dir, devno, false)
	b.add("F %s/partition %d", dir, n)
	return b
}

// Loop adds a loop device backed by file ("" for none).
func (b *Builder) Loop(name, devno, file string) *Builder {
	dir := "devices/virtual/block/" + name
	b.device(name, dir, devno, true)
	if file != "" {
		b.add("F %s/loop/backing_file %s", dir, file)
	}
	return b
}

// DM adds a device-mapper device stacked on slaves.
func (b *Builder) DM(name, devno, dmName, dmUUID string, slaves ...string) *Builder {
	dir := "devices/virtual/block/" + name
	b.device(name, dir, devno, true)
	b.add("F %s/dm/name %s", dir, dmName)
	b.add("F %s/dm/uuid %s", dir, dmUUID)
	b.add("F %s/dm/suspended 0", dir)
	b.stack(name, slaves)
	return b
}

// MD adds an MD RAID array over members.
func (b *Builder) MD(name, devno string, members ...string) *Builder {
	dir := "devices/virtual/block/" + name
	b.device(name, dir, devno, true)
	b.add("F %s/md/level raid1", dir)
	b.stack(name, members)
	return b
}

func (b *Builder) stack(name string, slaves []string) {
	dir := b.dirs[name]
	for _, s := range slaves {
		sd, ok := b.dirs[s]
		if !ok {
			panic("blockdevtest: slave " + s + " not added before " + name)
		}
		b.link(dir+"/slaves/"+s, sd)
		b.link(sd+"/holders/"+name, dir)
	}
}

// Btrfs lists a btrfs filesystem's member devices.
func (b *Builder) Btrfs(fsid string, members ...string) *Builder {
	for _, m := range members {
		b.link("fs/btrfs/"+fsid+"/devices/"+m, b.dirs[m])
	}
	b.add("F fs/btrfs/%s/label ", fsid)
	return b
}

// Mount adds a mountinfo line ("27 1 253:1 / / rw,relatime - ext4 /dev/mapper/root rw").
func (b *Builder) Mount(lines ...string) *Builder { b.mi = append(b.mi, lines...); return b }

// Swap adds a /proc/swaps line ("/dev/dm-2 partition 8388604 0 -2").
func (b *Builder) Swap(lines ...string) *Builder { b.swaps = append(b.swaps, lines...); return b }

// String is the spec.
func (b *Builder) String() string {
	var s strings.Builder
	for _, l := range b.lines {
		s.WriteString(l + "\n")
	}
	s.WriteString("== mountinfo\n")
	for _, l := range b.mi {
		s.WriteString(l + "\n")
	}
	s.WriteString("== swaps\nFilename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
	for _, l := range b.swaps {
		s.WriteString(l + "\n")
	}
	return s.String()
}
