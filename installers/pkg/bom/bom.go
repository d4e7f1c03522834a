// Package bom writes and reads macOS "bill of materials" files (the Bom of
// a flat package component): a BOMStore of blocks holding a B-tree of
// every payload path with its mode, owner, size and POSIX cksum.
//
// No Go library writes this format and Debian has no mkbom, so it is
// written here from the published descriptions of the format (bomutils'
// bom.h, the stuckliste format reference). The reader exists so tests can
// round-trip what the writer produced; nothing on Linux can check a BOM the
// way macOS Installer does, so packages built with it are labelled
// "structurally verified on Linux, not yet verified on macOS".
package bom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Entry types stored in a path's metadata block.
const (
	typeFile = 1
	typeDir  = 2
	typeLink = 3
)

// Mode type bits (st_mode).
const (
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	modeType    = 0o170000
)

// Entry is one path of the payload. Paths are relative and start with "."
// ("." itself is the payload root), as lsbom prints them.
type Entry struct {
	Path     string
	Mode     uint16 // type and permission bits
	UID      uint32
	GID      uint32
	Mtime    uint32
	Size     uint32
	Checksum uint32 // POSIX cksum of the content (files) or the target (links)
	Linkname string
}

const (
	headerSize    = 512
	leafCapacity  = 256 // entries per Paths leaf, as Apple's tools write them
	pathsBlock    = 4096
	vindexBlock   = 128
	metadataFlags = 0x000f
)

// pad extends a tree node to the tree's block size, as Apple's BOMs store
// them.
func pad(b []byte, size int) []byte {
	if len(b) < size {
		b = append(b, make([]byte, size-len(b))...)
	}
	return b
}

type storage struct {
	data []byte   // block contents, starting at file offset headerSize
	ptrs [][2]int // offset (into data), length; index 0 is the null block
	vars []struct {
		name  string
		index uint32
	}
}

func newStorage() *storage { return &storage{ptrs: [][2]int{{0, 0}}} }

func (s *storage) add(b []byte) uint32 {
	s.ptrs = append(s.ptrs, [2]int{len(s.data), len(b)})
	s.data = append(s.data, b...)
	return uint32(len(s.ptrs) - 1)
}

func (s *storage) addVar(name string, b []byte) {
	s.vars = append(s.vars, struct {
		name  string
		index uint32
	}{name, s.add(b)})
}

type be struct{ bytes.Buffer }

func (b *be) u8(v uint8)   { b.WriteByte(v) }
func (b *be) u16(v uint16) { _ = binary.Write(&b.Buffer, binary.BigEndian, v) }
func (b *be) u32(v uint32) { _ = binary.Write(&b.Buffer, binary.BigEndian, v) }
func (b *be) cstr(s string) {
	b.WriteString(s)
	b.WriteByte(0)
}

func tree(child, blockSize, count uint32) []byte {
	var b be
	b.WriteString("tree")
	b.u32(1)
	b.u32(child)
	b.u32(blockSize)
	b.u32(count)
	b.u8(0)
	return b.Bytes()
}

func node(leaf bool, count int, forward, backward uint32, pairs [][2]uint32) []byte {
	var b be
	if leaf {
		b.u16(1)
	} else {
		b.u16(0)
	}
	b.u16(uint16(count))
	b.u32(forward)
	b.u32(backward)
	for _, p := range pairs {
		b.u32(p[0])
		b.u32(p[1])
	}
	return b.Bytes()
}

type treeNode struct {
	Entry
	name     string
	id       uint32
	parent   uint32
	children []*treeNode
}

// Write writes a BOM listing entries. Every entry's parent directory must
// itself be an entry, and "." must be present.
func Write(w io.Writer, entries []Entry) error {
	byPath := map[string]*treeNode{}
	for _, e := range entries {
		p := clean(e.Path)
		if _, dup := byPath[p]; dup {
			return fmt.Errorf("bom: duplicate path %q", p)
		}
		switch uint32(e.Mode) & modeType {
		case ModeDir, ModeRegular, ModeSymlink:
		default:
			return fmt.Errorf("bom: %s: unsupported file type in mode %o", p, e.Mode)
		}
		byPath[p] = &treeNode{Entry: e, name: path.Base(p)}
		byPath[p].Path = p
	}
	root, ok := byPath["."]
	if !ok {
		return errors.New(`bom: the root entry "." is missing`)
	}
	for p, n := range byPath {
		if p == "." {
			continue
		}
		parent, ok := byPath[clean(path.Dir(p))]
		if !ok {
			return fmt.Errorf("bom: parent directory of %q is not listed", p)
		}
		if uint32(parent.Mode)&modeType != ModeDir {
			return fmt.Errorf("bom: parent of %q is not a directory", p)
		}
		parent.children = append(parent.children, n)
	}
	// Breadth-first ids with siblings sorted by name: ids then increase in
	// (parent id, name) order, the order of the Paths B-tree keys.
	var order []*treeNode
	queue := []*treeNode{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		n.id = uint32(len(order) + 1)
		order = append(order, n)
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		for _, c := range n.children {
			c.parent = n.id
		}
		queue = append(queue, n.children...)
	}

	s := newStorage()
	{
		// One statistics entry for cpu type 0 (we do not classify Mach-O
		// files): the number of paths and the total size of the files.
		var total uint32
		for _, n := range order {
			if uint32(n.Mode)&modeType != ModeDir {
				total += n.Size
			}
		}
		var b be
		b.u32(1) // version
		b.u32(uint32(len(order)))
		b.u32(1) // entries
		b.u32(0) // cpu type
		b.u32(0)
		b.u32(total)
		b.u32(0)
		s.addVar("BomInfo", b.Bytes())
	}
	{
		var leaves []uint32
		var lastKeys []uint32
		for start := 0; start < len(order); start += leafCapacity {
			end := min(start+leafCapacity, len(order))
			var pairs [][2]uint32
			for _, n := range order[start:end] {
				// Metadata as Apple's mkbom writes it (checked against macOS by
				// the stuckliste project): type, 1, flags 0x000f (full metadata,
				// not a Mach-O), mode, uid, gid, mtime, size, 1, then per type
				// the checksum / link target, and 8 zero bytes.
				var info2 be
				kind := uint32(n.Mode) & modeType
				switch kind {
				case ModeDir:
					info2.u8(typeDir)
				case ModeSymlink:
					info2.u8(typeLink)
				default:
					info2.u8(typeFile)
				}
				info2.u8(1)
				info2.u16(metadataFlags)
				info2.u16(n.Mode)
				info2.u32(n.UID)
				info2.u32(n.GID)
				info2.u32(n.Mtime)
				size := n.Size
				if kind == ModeDir {
					size = 0
				}
				info2.u32(size)
				info2.u8(1)
				switch kind {
				case ModeRegular:
					info2.u32(n.Checksum)
				case ModeSymlink:
					info2.u32(n.Checksum)
					info2.u32(uint32(len(n.Linkname) + 1))
					info2.cstr(n.Linkname)
				}
				info2.Write(make([]byte, 8))
				var info1 be
				info1.u32(n.id)
				info1.u32(s.add(info2.Bytes()))
				var file be
				file.u32(n.parent)
				file.cstr(n.name)
				pairs = append(pairs, [2]uint32{s.add(info1.Bytes()), s.add(file.Bytes())})
			}
			var back uint32
			if len(leaves) > 0 {
				back = leaves[len(leaves)-1]
			}
			leaf := s.add(pad(node(true, len(pairs), 0, back, pairs), pathsBlock))
			if len(leaves) > 0 { // link the previous leaf forward
				prev := leaves[len(leaves)-1]
				p := s.ptrs[prev]
				binary.BigEndian.PutUint32(s.data[p[0]+4:], leaf)
			}
			leaves = append(leaves, leaf)
			lastKeys = append(lastKeys, pairs[len(pairs)-1][1])
		}
		rootNode := leaves[0]
		if len(leaves) > 1 {
			var pairs [][2]uint32
			for i, l := range leaves {
				pairs = append(pairs, [2]uint32{l, lastKeys[i]})
			}
			rootNode = s.add(pad(node(false, len(pairs), 0, 0, pairs), pathsBlock))
		}
		s.addVar("Paths", tree(rootNode, pathsBlock, uint32(len(order))))
	}
	s.addVar("HLIndex", tree(s.add(pad(node(true, 0, 0, 0, nil), pathsBlock)), pathsBlock, 0))
	{
		vtree := s.add(tree(s.add(pad(node(true, 0, 0, 0, nil), vindexBlock)), vindexBlock, 0))
		var b be
		b.u32(1)
		b.u32(vtree)
		b.u32(0)
		b.u8(1) // 1: the tree is empty
		s.addVar("VIndex", b.Bytes())
	}
	s.addVar("Size64", tree(s.add(pad(node(true, 0, 0, 0, nil), pathsBlock)), pathsBlock, 0))

	// Layout: header, blocks, variables, then the block table and free list.
	var vars be
	vars.u32(uint32(len(s.vars)))
	for _, v := range s.vars {
		vars.u32(v.index)
		vars.u8(uint8(len(v.name)))
		vars.WriteString(v.name)
	}
	varsOff := headerSize + len(s.data)
	var index be
	index.u32(uint32(len(s.ptrs)))
	for i, p := range s.ptrs {
		if i == 0 {
			index.u32(0)
			index.u32(0)
			continue
		}
		index.u32(uint32(headerSize + p[0]))
		index.u32(uint32(p[1]))
	}
	index.u32(0) // free list: no entries, two spare null pointers
	for range 4 {
		index.u32(0)
	}
	indexOff := varsOff + vars.Len()
	var hdr be
	hdr.WriteString("BOMStore")
	hdr.u32(1)
	hdr.u32(uint32(len(s.ptrs) - 1)) // non-null blocks
	hdr.u32(uint32(indexOff))
	hdr.u32(uint32(index.Len()))
	hdr.u32(uint32(varsOff))
	hdr.u32(uint32(vars.Len()))
	out := make([]byte, headerSize, indexOff+index.Len())
	copy(out, hdr.Bytes())
	out = append(out, s.data...)
	out = append(out, vars.Bytes()...)
	out = append(out, index.Bytes()...)
	_, err := w.Write(out)
	return err
}

func clean(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(p, ".")), "/")
	if p == "" {
		return "."
	}
	return "./" + p
}

// Read parses a BOM and returns its Paths entries in id order.
func Read(b []byte) ([]Entry, error) {
	r := reader{b: b}
	if len(b) < headerSize || string(b[:8]) != "BOMStore" {
		return nil, errors.New("bom: not a BOMStore file")
	}
	if v := r.u32(8); v != 1 {
		return nil, fmt.Errorf("bom: unsupported version %d", v)
	}
	indexOff, indexLen := r.u32(16), r.u32(20)
	varsOff, varsLen := r.u32(24), r.u32(28)
	if int(indexOff)+int(indexLen) > len(b) || int(varsOff)+int(varsLen) > len(b) || indexLen < 4 {
		return nil, errors.New("bom: index or variables out of range")
	}
	nptr := r.u32(int(indexOff))
	if 4+8*int(nptr) > int(indexLen) {
		return nil, errors.New("bom: block table longer than index")
	}
	block := func(i uint32) ([]byte, error) {
		if i == 0 || i >= nptr {
			return nil, fmt.Errorf("bom: block %d out of range", i)
		}
		off := int(indexOff) + 4 + 8*int(i)
		a, l := r.u32(off), r.u32(off+4)
		if int(a)+int(l) > len(b) {
			return nil, fmt.Errorf("bom: block %d beyond end of file", i)
		}
		return b[a : a+l], nil
	}
	vars := map[string]uint32{}
	count := r.u32(int(varsOff))
	off := int(varsOff) + 4
	for range count {
		if off+5 > len(b) {
			return nil, errors.New("bom: truncated variables")
		}
		idx, n := r.u32(off), int(b[off+4])
		if off+5+n > len(b) {
			return nil, errors.New("bom: truncated variable name")
		}
		vars[string(b[off+5:off+5+n])] = idx
		off += 5 + n
	}
	for _, name := range []string{"BomInfo", "Paths", "HLIndex", "VIndex", "Size64"} {
		if _, ok := vars[name]; !ok {
			return nil, fmt.Errorf("bom: variable %s missing", name)
		}
	}
	tb, err := block(vars["Paths"])
	if err != nil {
		return nil, err
	}
	if len(tb) < 21 || string(tb[:4]) != "tree" {
		return nil, errors.New("bom: Paths is not a tree")
	}
	nodeIdx := binary.BigEndian.Uint32(tb[8:])
	total := binary.BigEndian.Uint32(tb[16:])
	type rec struct {
		parent uint32
		name   string
		e      Entry
	}
	recs := map[uint32]rec{}
	var ids []uint32
	// Descend to the leftmost leaf, then follow the forward links.
	for depth := 0; ; depth++ {
		nb, err := block(nodeIdx)
		if err != nil {
			return nil, err
		}
		if len(nb) < 12 || depth > 32 {
			return nil, errors.New("bom: bad Paths node")
		}
		if binary.BigEndian.Uint16(nb) == 1 {
			break
		}
		if binary.BigEndian.Uint16(nb[2:]) == 0 || len(nb) < 20 {
			return nil, errors.New("bom: empty Paths branch")
		}
		nodeIdx = binary.BigEndian.Uint32(nb[12:])
	}
	for seen := 0; nodeIdx != 0; seen++ {
		if seen > 1<<16 {
			return nil, errors.New("bom: Paths leaf chain loops")
		}
		nb, err := block(nodeIdx)
		if err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(nb[2:]))
		if len(nb) < 12+8*n {
			return nil, errors.New("bom: truncated Paths leaf")
		}
		for i := range n {
			i1, err := block(binary.BigEndian.Uint32(nb[12+8*i:]))
			if err != nil {
				return nil, err
			}
			fb, err := block(binary.BigEndian.Uint32(nb[16+8*i:]))
			if err != nil {
				return nil, err
			}
			if len(i1) < 8 || len(fb) < 5 {
				return nil, errors.New("bom: truncated path record")
			}
			id := binary.BigEndian.Uint32(i1)
			i2, err := block(binary.BigEndian.Uint32(i1[4:]))
			if err != nil {
				return nil, err
			}
			if len(i2) < 31 {
				return nil, errors.New("bom: truncated path metadata")
			}
			e := Entry{
				Mode: binary.BigEndian.Uint16(i2[4:]), UID: binary.BigEndian.Uint32(i2[6:]),
				GID: binary.BigEndian.Uint32(i2[10:]), Mtime: binary.BigEndian.Uint32(i2[14:]),
				Size: binary.BigEndian.Uint32(i2[18:]), Checksum: binary.BigEndian.Uint32(i2[23:]),
			}
			wantType := map[uint8]uint32{typeFile: ModeRegular, typeDir: ModeDir, typeLink: ModeSymlink}[i2[0]]
			if wantType == 0 || uint32(e.Mode)&modeType != wantType {
				return nil, fmt.Errorf("bom: path %d: entry type %d does not match mode %o", id, i2[0], e.Mode)
			}
			if uint32(e.Mode)&modeType == ModeDir {
				e.Checksum = 0
			}
			if ll := binary.BigEndian.Uint32(i2[27:]); uint32(e.Mode)&modeType == ModeSymlink && ll > 0 {
				if len(i2) < 31+int(ll) {
					return nil, errors.New("bom: truncated link name")
				}
				e.Linkname = strings.TrimRight(string(i2[31:31+ll]), "\x00")
			}
			name := strings.TrimRight(string(fb[4:]), "\x00")
			if _, dup := recs[id]; dup {
				return nil, fmt.Errorf("bom: duplicate path id %d", id)
			}
			recs[id] = rec{parent: binary.BigEndian.Uint32(fb), name: name, e: e}
			ids = append(ids, id)
		}
		nodeIdx = binary.BigEndian.Uint32(nb[4:])
	}
	if uint32(len(ids)) != total {
		return nil, fmt.Errorf("bom: tree says %d paths, leaves hold %d", total, len(ids))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		parts := []string{}
		cur := id
		for steps := 0; cur != 0; steps++ {
			rc, ok := recs[cur]
			if !ok || steps > len(ids) {
				return nil, fmt.Errorf("bom: path %d has a broken parent chain", id)
			}
			parts = append([]string{rc.name}, parts...)
			cur = rc.parent
		}
		e := recs[id].e
		e.Path = strings.Join(parts, "/")
		out = append(out, e)
	}
	return out, nil
}

type reader struct{ b []byte }

func (r reader) u32(off int) uint32 {
	if off+4 > len(r.b) {
		return 0
	}
	return binary.BigEndian.Uint32(r.b[off:])
}

var cksumTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// Cksum is the POSIX cksum(1) CRC of data, the checksum lsbom shows.
func Cksum(data []byte) uint32 {
	var crc uint32
	for _, b := range data {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^b]
	}
	for n := len(data); n > 0; n >>= 8 {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^byte(n)]
	}
	return ^crc
}
