// Package xar writes xar archives, the container of a macOS flat package
// (.pkg): a 28-byte header, a zlib-compressed XML table of contents and a
// heap holding the TOC's SHA-1 followed by the files' bytes.
//
// bsdtar can write xar too, but then every control-plane host that builds
// packages would need libarchive-tools; the format is small enough to write
// in Go. Files are stored uncompressed ("application/octet-stream"), as
// productbuild stores the already-gzipped Payload and Scripts. Tests read
// the result back with bsdtar.
package xar

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one archive member. Directories are implied by the paths of
// the files under them and may also be listed to set their mode.
type File struct {
	Path  string // slash-separated, relative, e.g. "base.pkg/Payload"
	Dir   bool
	Mode  uint32 // permission bits
	Mtime time.Time
	Data  []byte
}

const (
	magic        = 0x78617221 // "xar!"
	headerSize   = 28
	cksumSHA1    = 1
	sha1Size     = sha1.Size
	octetStream  = "application/octet-stream"
	timeLayout   = "2006-01-02T15:04:05Z"
	defaultMode  = 0o644
	defaultDMode = 0o755
)

type xmlChecksum struct {
	Style string `xml:"style,attr"`
	Value string `xml:",chardata"`
}

type xmlEncoding struct {
	Style string `xml:"style,attr"`
}

type xmlData struct {
	Length            int64       `xml:"length"`
	Offset            int64       `xml:"offset"`
	Size              int64       `xml:"size"`
	Encoding          xmlEncoding `xml:"encoding"`
	ExtractedChecksum xmlChecksum `xml:"extracted-checksum"`
	ArchivedChecksum  xmlChecksum `xml:"archived-checksum"`
}

type xmlFile struct {
	ID    int        `xml:"id,attr"`
	Data  *xmlData   `xml:"data,omitempty"`
	CTime string     `xml:"ctime"`
	MTime string     `xml:"mtime"`
	ATime string     `xml:"atime"`
	Group string     `xml:"group"`
	GID   int        `xml:"gid"`
	User  string     `xml:"user"`
	UID   int        `xml:"uid"`
	Mode  string     `xml:"mode"`
	Type  string     `xml:"type"`
	Name  string     `xml:"name"`
	Files []*xmlFile `xml:"file"`
}

type xmlTOCChecksum struct {
	Style  string `xml:"style,attr"`
	Offset int64  `xml:"offset"`
	Size   int64  `xml:"size"`
}

type xmlTOC struct {
	CreationTime string         `xml:"creation-time"`
	Checksum     xmlTOCChecksum `xml:"checksum"`
	Files        []*xmlFile     `xml:"file"`
}

type xmlXar struct {
	XMLName xml.Name `xml:"xar"`
	TOC     xmlTOC   `xml:"toc"`
}

// Write writes files as a xar archive owned by root:wheel. Output is
// deterministic for the same input (creation time = latest file mtime).
func Write(w io.Writer, files []File) error {
	type node struct {
		f        *xmlFile
		children map[string]*node
		data     []byte
	}
	root := &node{children: map[string]*node{}}
	var created time.Time
	stamp := func(t time.Time) string { return t.UTC().Format(timeLayout) }
	var ensure func(p string, t time.Time) (*node, error)
	ensure = func(p string, t time.Time) (*node, error) {
		if p == "." || p == "" {
			return root, nil
		}
		parent, err := ensure(path.Dir(p), t)
		if err != nil {
			return nil, err
		}
		name := path.Base(p)
		if n, ok := parent.children[name]; ok {
			if n.f.Type != "directory" {
				return nil, fmt.Errorf("xar: %s is a file and a directory", p)
			}
			return n, nil
		}
		n := &node{children: map[string]*node{}, f: &xmlFile{Name: name, Type: "directory",
			Mode: fmt.Sprintf("%04o", defaultDMode), User: "root", Group: "wheel",
			CTime: stamp(t), MTime: stamp(t), ATime: stamp(t)}}
		parent.children[name] = n
		return n, nil
	}
	for _, f := range files {
		p := path.Clean(strings.TrimPrefix(f.Path, "/"))
		if p == "." || strings.HasPrefix(p, "../") || p == ".." {
			return fmt.Errorf("xar: invalid path %q", f.Path)
		}
		if f.Mtime.After(created) {
			created = f.Mtime
		}
		if f.Dir {
			n, err := ensure(p, f.Mtime)
			if err != nil {
				return err
			}
			if f.Mode != 0 {
				n.f.Mode = fmt.Sprintf("%04o", f.Mode&0o7777)
			}
			continue
		}
		parent, err := ensure(path.Dir(p), f.Mtime)
		if err != nil {
			return err
		}
		name := path.Base(p)
		if _, dup := parent.children[name]; dup {
			return fmt.Errorf("xar: duplicate path %q", p)
		}
		mode := f.Mode & 0o7777
		if mode == 0 {
			mode = defaultMode
		}
		parent.children[name] = &node{data: f.Data, f: &xmlFile{Name: name, Type: "file",
			Mode: fmt.Sprintf("%04o", mode), User: "root", Group: "wheel",
			CTime: stamp(f.Mtime), MTime: stamp(f.Mtime), ATime: stamp(f.Mtime)}}
	}

	// Assign ids and heap offsets depth first in name order.
	var heap bytes.Buffer
	heap.Write(make([]byte, sha1Size)) // TOC checksum placeholder
	id := 0
	var walk func(n *node) []*xmlFile
	walk = func(n *node) []*xmlFile {
		names := make([]string, 0, len(n.children))
		for k := range n.children {
			names = append(names, k)
		}
		sort.Strings(names)
		var out []*xmlFile
		for _, k := range names {
			c := n.children[k]
			id++
			c.f.ID = id
			if c.f.Type == "file" {
				sum := sha1.Sum(c.data)
				hexsum := hex.EncodeToString(sum[:])
				c.f.Data = &xmlData{Length: int64(len(c.data)), Offset: int64(heap.Len()), Size: int64(len(c.data)),
					Encoding:          xmlEncoding{Style: octetStream},
					ExtractedChecksum: xmlChecksum{Style: "sha1", Value: hexsum},
					ArchivedChecksum:  xmlChecksum{Style: "sha1", Value: hexsum}}
				heap.Write(c.data)
			} else {
				c.f.Files = walk(c)
			}
			out = append(out, c.f)
		}
		return out
	}
	toc := xmlXar{TOC: xmlTOC{
		CreationTime: stamp(created),
		Checksum:     xmlTOCChecksum{Style: "sha1", Offset: 0, Size: sha1Size},
		Files:        walk(root),
	}}
	tocXML, err := xml.MarshalIndent(toc, "", " ")
	if err != nil {
		return fmt.Errorf("xar: encode toc: %w", err)
	}
	tocXML = append([]byte(xml.Header), tocXML...)
	var ztoc bytes.Buffer
	zw, err := zlib.NewWriterLevel(&ztoc, zlib.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(tocXML); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	sum := sha1.Sum(ztoc.Bytes())
	h := heap.Bytes()
	copy(h, sum[:])

	var hdr [headerSize]byte
	binary.BigEndian.PutUint32(hdr[0:], magic)
	binary.BigEndian.PutUint16(hdr[4:], headerSize)
	binary.BigEndian.PutUint16(hdr[6:], 1)
	binary.BigEndian.PutUint64(hdr[8:], uint64(ztoc.Len()))
	binary.BigEndian.PutUint64(hdr[16:], uint64(len(tocXML)))
	binary.BigEndian.PutUint32(hdr[24:], cksumSHA1)
	for _, b := range [][]byte{hdr[:], ztoc.Bytes(), h} {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("xar: write: %w", err)
		}
	}
	return nil
}

// Entry is a file read back by Read.
type Entry struct {
	Path string
	Dir  bool
	Mode string
	Data []byte
}

// Read parses a xar archive written by Write (uncompressed members,
// SHA-1 checksums), verifying the TOC checksum and every file's checksum.
func Read(b []byte) ([]Entry, string, error) {
	if len(b) < headerSize || binary.BigEndian.Uint32(b) != magic {
		return nil, "", fmt.Errorf("xar: bad magic")
	}
	hs := int(binary.BigEndian.Uint16(b[4:]))
	zlen := binary.BigEndian.Uint64(b[8:])
	if uint64(len(b)) < uint64(hs)+zlen {
		return nil, "", fmt.Errorf("xar: truncated toc")
	}
	ztoc := b[hs : uint64(hs)+zlen]
	heap := b[uint64(hs)+zlen:]
	zr, err := zlib.NewReader(bytes.NewReader(ztoc))
	if err != nil {
		return nil, "", fmt.Errorf("xar: toc: %w", err)
	}
	tocXML, err := io.ReadAll(zr)
	if err != nil {
		return nil, "", fmt.Errorf("xar: toc: %w", err)
	}
	var x xmlXar
	if err := xml.Unmarshal(tocXML, &x); err != nil {
		return nil, "", fmt.Errorf("xar: parse toc: %w", err)
	}
	c := x.TOC.Checksum
	if c.Style != "sha1" || c.Offset < 0 || c.Offset+c.Size > int64(len(heap)) {
		return nil, "", fmt.Errorf("xar: unsupported toc checksum %q", c.Style)
	}
	sum := sha1.Sum(ztoc)
	if !bytes.Equal(sum[:], heap[c.Offset:c.Offset+c.Size]) {
		return nil, "", fmt.Errorf("xar: toc checksum mismatch")
	}
	var out []Entry
	var walk func(prefix string, fs []*xmlFile) error
	walk = func(prefix string, fs []*xmlFile) error {
		for _, f := range fs {
			p := path.Join(prefix, f.Name)
			if f.Type == "directory" {
				out = append(out, Entry{Path: p, Dir: true, Mode: f.Mode})
				if err := walk(p, f.Files); err != nil {
					return err
				}
				continue
			}
			if f.Data == nil {
				out = append(out, Entry{Path: p, Mode: f.Mode})
				continue
			}
			d := f.Data
			if d.Offset < 0 || d.Length < 0 || d.Offset+d.Length > int64(len(heap)) {
				return fmt.Errorf("xar: %s: data out of range", p)
			}
			data := heap[d.Offset : d.Offset+d.Length]
			s := sha1.Sum(data)
			if d.ArchivedChecksum.Style == "sha1" && hex.EncodeToString(s[:]) != d.ArchivedChecksum.Value {
				return fmt.Errorf("xar: %s: checksum mismatch", p)
			}
			out = append(out, Entry{Path: p, Mode: f.Mode, Data: data})
		}
		return nil
	}
	if err := walk("", x.TOC.Files); err != nil {
		return nil, "", err
	}
	return out, string(tocXML), nil
}
