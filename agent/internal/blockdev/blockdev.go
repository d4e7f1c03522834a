// Package blockdev finds what a Linux machine's mounted filesystems and
// active swap areas are stored on, down through device-mapper, MD RAID,
// partitions, loop devices and multi-device btrfs, and tells the encryption
// layers apart: LUKS1/LUKS2 (a header on the backing device: crypto-erasable),
// plain dm-crypt and foreign formats (encrypted, but no header we can erase),
// dm-verity and dm-integrity (integrity, not encryption).
//
// It reads only sysfs and procfs (/sys/class/block, /sys/dev/block,
// /sys/fs/btrfs, /proc/1/mountinfo, /proc/swaps) and runs no tool, so the
// roots are injectable and tests run on recorded trees. The disk-encryption
// posture check and the Linux wipe both use it, so what posture reports and
// what a wipe can promise come from the same discovery.
//
// Only packages under agent/ may import it.
package blockdev

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Roots are where Discover looks. Zero fields mean the live system.
type Roots struct {
	Sys  string // "/sys"
	Proc string // "/proc"
	// Dev resolves a mount source that is a symlink under /dev
	// (/dev/disk/by-uuid/...); "/dev" on a live system. Empty in tests
	// whose sources are kernel names or /dev/mapper names.
	Dev string
}

func (r Roots) withDefaults() Roots {
	if r.Sys == "" {
		r.Sys = "/sys"
	}
	if r.Proc == "" {
		r.Proc = "/proc"
	}
	return r
}

// Crypt is the device-mapper crypt subsystem of a device, from the prefix
// cryptsetup writes into the dm uuid ("CRYPT-<TYPE>-<uuid>-<name>").
type Crypt string

// Crypt types. NotCrypt is every device that is not a cryptsetup mapping.
const (
	NotCrypt  Crypt = ""
	LUKS1     Crypt = "LUKS1"
	LUKS2     Crypt = "LUKS2"
	Plain     Crypt = "PLAIN"
	Verity    Crypt = "VERITY"
	Integrity Crypt = "INTEGRITY"
	// SubDev is a helper mapping cryptsetup stacks under a LUKS2 device
	// with authenticated encryption (the "_dif" dm-integrity device); the
	// LUKS header sits on its backing device.
	SubDev    Crypt = "SUBDEV"
	BitLocker Crypt = "BITLK"
	TrueCrypt Crypt = "TCRYPT"
	FileVault Crypt = "FVAULT2"
	LoopAES   Crypt = "LOOPAES"
)

// CryptOf reads a dm uuid. Unknown CRYPT- types keep their name.
func CryptOf(dmUUID string) Crypt {
	rest, ok := strings.CutPrefix(strings.TrimSpace(dmUUID), "CRYPT-")
	if !ok {
		return NotCrypt
	}
	typ, _, _ := strings.Cut(rest, "-")
	if typ == "" {
		return Crypt("unknown")
	}
	return Crypt(typ)
}

// Erasable: the format keeps its keys in a header on the backing device
// that `cryptsetup luksErase` destroys.
func (c Crypt) Erasable() bool { return c == LUKS1 || c == LUKS2 }

// Encrypts: data below this layer is ciphertext. dm-verity and dm-integrity
// only protect integrity; the SUBDEV helper is integrity too.
func (c Crypt) Encrypts() bool {
	switch c {
	case NotCrypt, Verity, Integrity, SubDev:
		return false
	}
	return true
}

// Describe names the layer for an admin.
func (c Crypt) Describe() string {
	switch c {
	case LUKS1, LUKS2:
		return string(c)
	case Plain:
		return "plain dm-crypt (no header: its key is derived at every open and cannot be erased)"
	case Verity:
		return "dm-verity (integrity of a read-only image, not encryption)"
	case Integrity, SubDev:
		return "dm-integrity (integrity, not encryption)"
	case BitLocker:
		return "BitLocker (opened by cryptsetup; its metadata cannot be erased by cryptsetup)"
	case TrueCrypt:
		return "TrueCrypt/VeraCrypt (no LUKS header to erase)"
	case FileVault:
		return "FileVault 2 (no LUKS header to erase)"
	case LoopAES:
		return "loop-AES (no LUKS header to erase)"
	case NotCrypt:
		return "not encrypted"
	}
	return "dm-crypt type " + string(c) + " (not LUKS)"
}

// Device is one block device as sysfs shows it.
type Device struct {
	// Name is the kernel name ("nvme0n1p3", "dm-0", "loop4", "cciss!c0d0").
	Name   string
	DevNo  string // "259:3"
	DMName string // device-mapper name ("luks-0f3c…", "vg-root")
	DMUUID string
	Slaves []string
	// BackingFile is a loop device's file.
	BackingFile string
}

// Crypt of the device.
func (d Device) Crypt() Crypt { return CryptOf(d.DMUUID) }

// Path is the device node ("/dev/" + the kernel name, "!" standing for "/").
func Path(name string) string { return "/dev/" + strings.ReplaceAll(name, "!", "/") }

// Volume is an active LUKS mapping: the crypt device and the device holding
// its header.
type Volume struct {
	Crypt  string // kernel name of the dm-crypt device ("dm-0")
	DMName string // its mapping name ("luks-4b0a…", "nvme0n1p3_crypt")
	Type   Crypt  // LUKS1 or LUKS2
	// UUID is the LUKS UUID cryptsetup recorded in the mapping's dm uuid
	// ("4b0afb56-51ed-441e-8b95-0c5ce95d9077"); the header must carry it.
	UUID string
	// Header is the kernel name of the device holding the header
	// ("nvme0n1p3"); "" when the mapping shows no backing device.
	Header string
}

// HeaderPath is the header's device node.
func (v Volume) HeaderPath() string {
	if v.Header == "" {
		return ""
	}
	return Path(v.Header)
}

func (v Volume) String() string {
	return fmt.Sprintf("%s %s (%s) on %s", v.Type, v.Crypt, v.DMName, v.HeaderPath())
}

// Exposure is a path through a store's device stack that reaches storage
// without passing a LUKS layer, or that discovery could not follow.
type Exposure struct {
	Device string // kernel name where the walk stopped ("" when none)
	// Encrypted: the data is ciphertext (plain dm-crypt, BitLocker…), just
	// not crypto-erasable. False for plain storage and for Unknown.
	Encrypted bool
	// Unknown: discovery could not tell where the data is stored.
	Unknown bool
	Detail  string
}

func (e Exposure) String() string {
	if e.Device == "" {
		return e.Detail
	}
	return e.Device + ": " + e.Detail
}

// Kind of store.
type Kind string

// Store kinds.
const (
	Filesystem Kind = "filesystem"
	Swap       Kind = "swap"
)

// Role says whether a store holds user data.
type Role string

// Roles. Only RoleData stores decide whether a machine's data can be
// crypto-erased; LUKS volumes under the others are still erased.
const (
	RoleData Role = "data"
	// RoleBoot: /boot, /efi and below: boot loader, kernels, initramfs.
	RoleBoot Role = "boot"
	// RoleImage: read-only image formats (squashfs, erofs, iso9660) and
	// filesystems on dm-verity: nothing written at run time.
	RoleImage Role = "read-only image"
	// RoleRemote: network filesystems: not stored on this device.
	RoleRemote Role = "remote"
	// RoleIndirect: overlay, FUSE, eCryptfs: their files are kept in
	// another mount, judged on its own.
	RoleIndirect Role = "stored in another mount"
	// RoleMemory: zram swap.
	RoleMemory Role = "memory"
)

// Store is a mounted filesystem or an active swap area, and what it is
// stored on.
type Store struct {
	Kind Kind
	// MountPoints of a filesystem (every mount of the same superblock:
	// bind mounts, btrfs subvolumes); the swap file or device of a swap.
	MountPoints []string
	FSType      string
	Source      string
	DevNo       string
	Role        Role
	// Devices are the block devices the store sits on directly (btrfs:
	// every member device).
	Devices []string
	// LUKS volumes its data is under.
	LUKS []Volume
	// Exposed lists the paths not under LUKS. A data store is
	// crypto-erasable when it has LUKS volumes and no exposure.
	Exposed []Exposure
	// Note explains the role or how the store was found.
	Note string
}

// Where is the store's first mount point (or swap path).
func (s Store) Where() string {
	if len(s.MountPoints) == 0 {
		return s.Source
	}
	return s.MountPoints[0]
}

// Erasable: a crypto-erase of s.LUKS makes every byte of the store unreadable.
func (s Store) Erasable() bool { return len(s.LUKS) > 0 && len(s.Exposed) == 0 }

// Encrypted: every path of the store passes an encryption layer.
func (s Store) Encrypted() bool {
	if len(s.LUKS) == 0 && len(s.Exposed) == 0 {
		return false
	}
	for _, e := range s.Exposed {
		if !e.Encrypted {
			return false
		}
	}
	return true
}

// Describe is one line for an admin: "/home (btrfs on LUKS2 dm-0 (luks-a) on /dev/nvme0n1p3)".
func (s Store) Describe() string {
	what := s.FSType
	if s.Kind == Swap {
		what = "swap"
		if s.FSType != "" && s.FSType != "swap" {
			what = "swap file on " + s.FSType
		}
	}
	var on []string
	for _, v := range s.LUKS {
		on = append(on, v.String())
	}
	for _, e := range s.Exposed {
		on = append(on, e.String())
	}
	where := strings.Join(s.MountPoints, ", ")
	switch {
	case len(on) == 0 && s.Note != "":
		return fmt.Sprintf("%s (%s: %s)", where, what, s.Note)
	case len(on) == 0:
		return fmt.Sprintf("%s (%s)", where, what)
	case s.Role != RoleData && s.Note != "":
		return fmt.Sprintf("%s (%s on %s; %s, no user data)", where, what, strings.Join(on, "; "), s.Note)
	}
	return fmt.Sprintf("%s (%s on %s)", where, what, strings.Join(on, "; "))
}

// Layout is everything Discover found.
type Layout struct {
	// Stores are the non-virtual mounted filesystems and the active swap
	// areas, in mountinfo then /proc/swaps order.
	Stores []Store
	// Volumes are the distinct LUKS volumes under any store (boot
	// included), in discovery order.
	Volumes []Volume
	// Mounts is the whole mount table, virtual filesystems included.
	Mounts []Mount
}

// StoreOf returns the filesystem store holding path (the mount with the
// longest mount point above it); false when that mount is virtual
// (tmpfs: memory) or path is on no mount.
func (l Layout) StoreOf(path string) (Store, bool) {
	best := -1
	for i, m := range l.Mounts {
		if within(path, m.MountPoint) && (best < 0 || len(m.MountPoint) >= len(l.Mounts[best].MountPoint)) {
			best = i
		}
	}
	if best < 0 {
		return Store{}, false
	}
	for _, s := range l.Stores {
		if s.Kind == Filesystem && s.DevNo == l.Mounts[best].DevNo {
			return s, true
		}
	}
	return Store{}, false
}

// Data returns the stores that hold user data.
func (l Layout) Data() []Store {
	var out []Store
	for _, s := range l.Stores {
		if s.Role == RoleData {
			out = append(out, s)
		}
	}
	return out
}

// ErrNoMountinfo: neither /proc/1/mountinfo nor /proc/self/mountinfo could be read.
var ErrNoMountinfo = errors.New("blockdev: mountinfo unreadable")

// Discover reads the mount table, swap table and block-device stack.
//
// It prefers /proc/1/mountinfo (init's mount namespace: a service started
// with ProtectHome= or a private /mnt still sees every mount) and falls back
// to /proc/self/mountinfo.
func Discover(r Roots) (Layout, error) {
	r = r.withDefaults()
	mi, err := os.ReadFile(filepath.Join(r.Proc, "1", "mountinfo"))
	if err != nil {
		var err2 error
		if mi, err2 = os.ReadFile(filepath.Join(r.Proc, "self", "mountinfo")); err2 != nil {
			return Layout{}, fmt.Errorf("%w: %v; %v", ErrNoMountinfo, err, err2)
		}
	}
	mounts := ParseMountinfo(string(mi))
	var swaps []SwapEntry
	switch b, err := os.ReadFile(filepath.Join(r.Proc, "swaps")); {
	case err == nil:
		swaps = ParseSwaps(string(b))
	case errors.Is(err, os.ErrNotExist):
		// A kernel without swap support has no /proc/swaps.
	default:
		return Layout{}, fmt.Errorf("blockdev: %w", err)
	}
	d := &discovery{roots: r, mounts: mounts, devs: map[string]*Device{}}
	return d.layout(swaps), nil
}

// DeviceStack classifies the stack under one block device ("253:1") as
// Discover would for a filesystem on it (loop backing files are judged
// with the mount table of r.Proc when present).
func DeviceStack(r Roots, devno string) (Store, error) {
	r = r.withDefaults()
	d := &discovery{roots: r, devs: map[string]*Device{}}
	if mi, err := os.ReadFile(filepath.Join(r.Proc, "self", "mountinfo")); err == nil {
		d.mounts = ParseMountinfo(string(mi))
	}
	dev, err := d.byDevNo(devno)
	if err != nil {
		return Store{}, fmt.Errorf("blockdev: %s not in sysfs: %w", devno, err)
	}
	s := Store{Kind: Filesystem, DevNo: devno, Role: RoleData, Devices: []string{dev.Name}}
	d.walk(dev.Name, 0, &s)
	return s, nil
}

// Mount is one mountinfo line.
type Mount struct {
	DevNo      string // "253:1"; "0:N" for filesystems without one block device
	Root       string // the subtree mounted ("/home" for a btrfs subvolume)
	MountPoint string
	Options    string
	FSType     string
	Source     string
}

// ParseMountinfo parses proc_pid_mountinfo(5) lines; malformed lines are
// skipped.
func ParseMountinfo(s string) []Mount {
	var out []Mount
	for _, l := range strings.Split(s, "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 2 {
			continue
		}
		out = append(out, Mount{DevNo: f[2], Root: unescape(f[3]), MountPoint: unescape(f[4]), Options: f[5],
			FSType: g[0], Source: unescape(g[1])})
	}
	return out
}

// SwapEntry is one /proc/swaps line.
type SwapEntry struct {
	Path string // "/dev/dm-2", "/swap.img"
	Type string // "partition" or "file"
}

// ParseSwaps parses /proc/swaps.
func ParseSwaps(s string) []SwapEntry {
	var out []SwapEntry
	for i, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 2 {
			continue
		}
		out = append(out, SwapEntry{Path: unescape(f[0]), Type: f[1]})
	}
	return out
}

// unescape undoes the octal escapes (\040 for a space) the kernel writes.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOct(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOct(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// Filesystem types by what they hold.
var (
	virtualFS = set("proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "securityfs", "cgroup", "cgroup2",
		"pstore", "efivarfs", "bpf", "debugfs", "tracefs", "hugetlbfs", "mqueue", "configfs", "fusectl",
		"autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "selinuxfs", "smackfs", "nfsd", "devfs", "usbfs",
		"binder", "rootfs")
	imageFS  = set("squashfs", "erofs", "iso9660", "cramfs", "romfs", "udf")
	remoteFS = set("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "virtiofs", "afs",
		"lustre", "fuse.sshfs", "fuse.rclone", "davfs", "fuse.s3fs")
	indirectFS = set("overlay", "aufs", "unionfs", "ecryptfs", "fuse")
)

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func isBoot(mp string) bool {
	return mp == "/boot" || mp == "/efi" || strings.HasPrefix(mp, "/boot/")
}

type discovery struct {
	roots  Roots
	mounts []Mount
	devs   map[string]*Device
	// fileDepth bounds loop-device → backing file → filesystem recursion.
	fileDepth int
}

func (d *discovery) layout(swaps []SwapEntry) Layout {
	l := Layout{Mounts: d.mounts}
	byDev := map[string]int{}
	for _, m := range d.mounts {
		if virtualFS[m.FSType] {
			continue
		}
		// A device number names one superblock (anonymous ones too), so
		// bind mounts and btrfs subvolumes of one filesystem are one store.
		if i, ok := byDev[m.DevNo]; ok {
			st := &l.Stores[i]
			if !slices.Contains(st.MountPoints, m.MountPoint) {
				st.MountPoints = append(st.MountPoints, m.MountPoint)
			}
			if st.Role == RoleBoot && !isBoot(m.MountPoint) {
				st.Role, st.Note = RoleData, ""
			}
			continue
		}
		byDev[m.DevNo] = len(l.Stores)
		l.Stores = append(l.Stores, d.filesystem(m))
	}
	for _, s := range swaps {
		l.Stores = append(l.Stores, d.swap(s))
	}
	seen := map[string]bool{}
	for _, s := range l.Stores {
		for _, v := range s.LUKS {
			if k := v.Crypt; !seen[k] {
				seen[k] = true
				l.Volumes = append(l.Volumes, v)
			}
		}
	}
	return l
}

// filesystem classifies one mount.
func (d *discovery) filesystem(m Mount) Store {
	s := Store{Kind: Filesystem, MountPoints: []string{m.MountPoint}, FSType: m.FSType, Source: m.Source, DevNo: m.DevNo, Role: RoleData}
	switch {
	case imageFS[m.FSType]:
		s.Role, s.Note = RoleImage, "read-only image format"
		return s
	case remoteFS[m.FSType]:
		s.Role, s.Note = RoleRemote, "network filesystem, not stored on this device"
		return s
	case indirectFS[m.FSType] || strings.HasPrefix(m.FSType, "fuse.") && m.FSType != "fuseblk":
		s.Role, s.Note = RoleIndirect, "its files are kept in another mount or by a user-space process"
		return s
	}
	if isBoot(m.MountPoint) {
		s.Role = RoleBoot
		s.Note = "boot loader and kernels"
	}
	var tops []string
	switch {
	case m.FSType == "btrfs":
		members, note := d.btrfsMembers(m)
		if members == nil {
			s.Exposed = []Exposure{{Unknown: true, Detail: note}}
			return s
		}
		tops = members
	case !strings.HasPrefix(m.DevNo, "0:"):
		dev, err := d.byDevNo(m.DevNo)
		if err != nil {
			s.Exposed = []Exposure{{Unknown: true, Detail: fmt.Sprintf("block device %s (%s) not in sysfs", m.DevNo, m.Source)}}
			return s
		}
		tops = []string{dev.Name}
	default:
		s.Exposed = []Exposure{{Unknown: true, Detail: m.FSType + " filesystem: cannot tell which block devices hold it"}}
		return s
	}
	s.Devices = tops
	for _, t := range tops {
		d.walk(t, 0, &s)
	}
	if len(s.LUKS) == 0 && len(s.Exposed) == 0 && s.Role == RoleData {
		// Every path ended on dm-verity.
		s.Role, s.Note = RoleImage, "on dm-verity: read-only"
	}
	return s
}

// swap classifies one active swap area.
func (d *discovery) swap(e SwapEntry) Store {
	s := Store{Kind: Swap, MountPoints: []string{e.Path}, Source: e.Path, FSType: "swap", Role: RoleData}
	if e.Type == "file" {
		fs, ok := d.containing(e.Path)
		if !ok {
			s.Exposed = []Exposure{{Unknown: true, Detail: "swap file on no known mount"}}
			return s
		}
		s.FSType, s.DevNo = fs.FSType, fs.DevNo
		s.Devices, s.LUKS, s.Exposed = fs.Devices, fs.LUKS, fs.Exposed
		s.Note = "swap file in " + fs.Where()
		if fs.Role != RoleData && fs.Role != RoleBoot {
			s.Role, s.Note = fs.Role, "swap file in "+fs.Where()+" ("+string(fs.Role)+")"
		}
		return s
	}
	name, ok := d.resolveSource(e.Path)
	if !ok {
		s.Exposed = []Exposure{{Unknown: true, Detail: "swap device not in sysfs"}}
		return s
	}
	if strings.HasPrefix(name, "zram") {
		s.Role, s.Note, s.Devices = RoleMemory, "compressed RAM, gone at power-off", []string{name}
		return s
	}
	s.Devices = []string{name}
	d.walk(name, 0, &s)
	return s
}

// containing returns the classified store of the mount holding path.
func (d *discovery) containing(path string) (Store, bool) {
	best := -1
	for i, m := range d.mounts {
		if within(path, m.MountPoint) && (best < 0 || len(m.MountPoint) >= len(d.mounts[best].MountPoint)) {
			best = i
		}
	}
	if best < 0 || virtualFS[d.mounts[best].FSType] {
		return Store{}, false
	}
	return d.filesystem(d.mounts[best]), true
}

func within(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// walk follows name's stack downwards until every path passed a crypt layer
// or reached storage, recording LUKS volumes and exposures in s.
func (d *discovery) walk(name string, depth int, s *Store) {
	if depth > 16 {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: name, Unknown: true, Detail: "block device stack too deep"})
		return
	}
	dev, err := d.byName(name)
	if err != nil {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: name, Unknown: true, Detail: "not in sysfs"})
		return
	}
	switch c := dev.Crypt(); {
	case c.Erasable():
		v := Volume{Crypt: dev.Name, DMName: dev.DMName, Type: c, UUID: luksUUID(dev.DMUUID, c)}
		v.Header = d.headerDevice(dev)
		if v.Header == "" {
			s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Encrypted: true,
				Detail: string(c) + " mapping without a backing device in sysfs"})
			return
		}
		if !slices.ContainsFunc(s.LUKS, func(o Volume) bool { return o.Crypt == v.Crypt }) {
			s.LUKS = append(s.LUKS, v)
		}
		return
	case c == Verity:
		// Read-only: nothing the user writes is on it. Not encryption.
		return
	case c.Encrypts():
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Encrypted: true, Detail: c.Describe()})
		return
	}
	if len(dev.Slaves) > 0 {
		for _, sl := range dev.Slaves {
			d.walk(sl, depth+1, s)
		}
		return
	}
	if dev.BackingFile != "" {
		d.walkFile(dev, s)
		return
	}
	if dev.DMName != "" {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Detail: "device-mapper device with no backing device"})
		return
	}
	s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Detail: "not encrypted"})
}

// walkFile judges a loop device by the filesystem holding its backing file.
func (d *discovery) walkFile(dev *Device, s *Store) {
	if d.fileDepth > 4 {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Unknown: true, Detail: "loop devices nested too deep"})
		return
	}
	d.fileDepth++
	defer func() { d.fileDepth-- }()
	fs, ok := d.containing(dev.BackingFile)
	if !ok {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Unknown: true,
			Detail: "loop device backed by " + dev.BackingFile + ", on no known mount"})
		return
	}
	for _, v := range fs.LUKS {
		if !slices.ContainsFunc(s.LUKS, func(o Volume) bool { return o.Crypt == v.Crypt }) {
			s.LUKS = append(s.LUKS, v)
		}
	}
	for _, e := range fs.Exposed {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Encrypted: e.Encrypted, Unknown: e.Unknown,
			Detail: fmt.Sprintf("loop device backed by %s in %s, which is on %s", dev.BackingFile, fs.Where(), e)})
	}
	if len(fs.LUKS) == 0 && len(fs.Exposed) == 0 {
		s.Exposed = appendExposure(s.Exposed, Exposure{Device: dev.Name, Unknown: true,
			Detail: "loop device backed by " + dev.BackingFile + " in " + fs.Describe()})
	}
}

func appendExposure(es []Exposure, e Exposure) []Exposure {
	if slices.Contains(es, e) {
		return es
	}
	return append(es, e)
}

// headerDevice is the device under a LUKS mapping that holds its header:
// its backing device, through cryptsetup's own integrity sub-device.
func (d *discovery) headerDevice(dev *Device) string {
	for range 4 {
		if len(dev.Slaves) != 1 {
			return ""
		}
		below, err := d.byName(dev.Slaves[0])
		if err != nil {
			return ""
		}
		if below.Crypt() != SubDev {
			return below.Name
		}
		dev = below
	}
	return ""
}

// luksUUID extracts the LUKS UUID from "CRYPT-LUKS2-<32 hex>-<name>".
func luksUUID(dmUUID string, c Crypt) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(dmUUID), "CRYPT-"+string(c)+"-")
	if !ok {
		return ""
	}
	hex, _, _ := strings.Cut(rest, "-")
	if len(hex) != 32 || strings.Trim(strings.ToLower(hex), "0123456789abcdef") != "" {
		return ""
	}
	hex = strings.ToLower(hex)
	return hex[0:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:32]
}

// btrfsMembers returns every device of the btrfs filesystem mounted from
// m.Source, from /sys/fs/btrfs/<fsid>/devices (btrfs mounts carry an
// anonymous device number, so mountinfo alone cannot tell).
func (d *discovery) btrfsMembers(m Mount) ([]string, string) {
	src, ok := d.resolveSource(m.Source)
	if !ok {
		return nil, "btrfs source " + m.Source + " not found in sysfs"
	}
	fsids, _ := os.ReadDir(filepath.Join(d.roots.Sys, "fs", "btrfs"))
	for _, fsid := range fsids {
		dir := filepath.Join(d.roots.Sys, "fs", "btrfs", fsid.Name(), "devices")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if slices.Contains(names, src) {
			return names, ""
		}
	}
	return nil, "btrfs on " + src + ": no /sys/fs/btrfs entry lists it"
}

// resolveSource maps a mount or swap source to a kernel device name.
func (d *discovery) resolveSource(src string) (string, bool) {
	if name, ok := strings.CutPrefix(src, "/dev/mapper/"); ok {
		return d.byDMName(name)
	}
	if rest, ok := strings.CutPrefix(src, "/dev/"); ok {
		name := strings.ReplaceAll(rest, "/", "!")
		if _, err := d.byName(name); err == nil {
			return name, true
		}
		if d.roots.Dev != "" {
			if p, err := filepath.EvalSymlinks(filepath.Join(d.roots.Dev, rest)); err == nil {
				if rel, err := filepath.Rel(d.roots.Dev, p); err == nil && !strings.HasPrefix(rel, "..") {
					name := strings.ReplaceAll(rel, "/", "!")
					if _, err := d.byName(name); err == nil {
						return name, true
					}
				}
			}
		}
	}
	return "", false
}

func (d *discovery) byDMName(dm string) (string, bool) {
	ents, _ := os.ReadDir(filepath.Join(d.roots.Sys, "class", "block"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "dm-") {
			continue
		}
		if dev, err := d.byName(e.Name()); err == nil && dev.DMName == dm {
			return dev.Name, true
		}
	}
	return "", false
}

func (d *discovery) byDevNo(devno string) (*Device, error) {
	dir, err := filepath.EvalSymlinks(filepath.Join(d.roots.Sys, "dev", "block", devno))
	if err != nil {
		return nil, err
	}
	return d.read(filepath.Base(dir), dir)
}

func (d *discovery) byName(name string) (*Device, error) {
	if dev, ok := d.devs[name]; ok {
		return dev, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(d.roots.Sys, "class", "block", name))
	if err != nil {
		return nil, err
	}
	return d.read(name, dir)
}

// read loads one device directory.
func (d *discovery) read(name, dir string) (*Device, error) {
	if dev, ok := d.devs[name]; ok {
		return dev, nil
	}
	dev := &Device{Name: name, DevNo: readLine(filepath.Join(dir, "dev"))}
	if dev.DevNo == "" {
		return nil, fmt.Errorf("blockdev: %s has no dev file", dir)
	}
	dev.DMName = readLine(filepath.Join(dir, "dm", "name"))
	dev.DMUUID = readLine(filepath.Join(dir, "dm", "uuid"))
	// The kernel appends " (deleted)" when the file was unlinked.
	dev.BackingFile = strings.TrimSuffix(readLine(filepath.Join(dir, "loop", "backing_file")), " (deleted)")
	ents, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	for _, e := range ents {
		dev.Slaves = append(dev.Slaves, e.Name())
	}
	d.devs[name] = dev
	return dev, nil
}

func readLine(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		return strings.TrimSpace(sc.Text())
	}
	return ""
}
