// Package cpio writes cpio archives in the portable "odc" format (POSIX.1
// octet-oriented, magic 070707), the format of a macOS flat package's
// Payload and Scripts.
//
// It is written here because the Go ecosystem has no maintained odc writer
// we could import; the format is a fixed 76-byte ASCII header per entry.
package cpio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Mode type bits as stored in the header's c_mode field.
const (
	TypeDir     = 0o040000
	TypeRegular = 0o100000
	TypeSymlink = 0o120000
)

// Header describes one archive entry.
type Header struct {
	Name  string // e.g. "./Library/LaunchDaemons/x.plist"; "." for the root
	Mode  int64  // permission bits and, if set, type bits; see FileMode
	UID   int
	GID   int
	Mtime int64 // seconds since the epoch
	Size  int64 // data length (0 for directories)
	// Linkname is the target of a symlink; written as the entry's data.
	Linkname string
}

// Writer writes an odc archive. Call Close to write the trailer.
type Writer struct {
	w       io.Writer
	ino     int64
	remain  int64
	closed  bool
	written int64
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteHeader starts a new entry. For regular files exactly hdr.Size bytes
// must then be written with Write.
func (w *Writer) WriteHeader(hdr Header) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if w.remain != 0 {
		return fmt.Errorf("cpio: previous entry short by %d bytes", w.remain)
	}
	if hdr.Name == "" || strings.ContainsRune(hdr.Name, 0) {
		return fmt.Errorf("cpio: invalid name %q", hdr.Name)
	}
	size := hdr.Size
	if hdr.Mode&0o170000 == TypeSymlink {
		size = int64(len(hdr.Linkname))
	}
	if hdr.Mode&0o170000 == TypeDir {
		size = 0
	}
	w.ino++
	fields := []struct {
		v     int64
		width int
	}{
		{0, 6},                        // c_dev
		{w.ino, 6},                    // c_ino
		{hdr.Mode, 6},                 // c_mode
		{int64(hdr.UID), 6},           // c_uid
		{int64(hdr.GID), 6},           // c_gid
		{1, 6},                        // c_nlink
		{0, 6},                        // c_rdev
		{hdr.Mtime, 11},               // c_mtime
		{int64(len(hdr.Name) + 1), 6}, // c_namesize (with NUL)
		{size, 11},                    // c_filesize
	}
	var b strings.Builder
	b.WriteString("070707")
	for _, f := range fields {
		s := fmt.Sprintf("%0*o", f.width, f.v)
		if len(s) > f.width || f.v < 0 {
			return fmt.Errorf("cpio: %s: value %d does not fit the odc header", hdr.Name, f.v)
		}
		b.WriteString(s)
	}
	b.WriteString(hdr.Name)
	b.WriteByte(0)
	n, err := io.WriteString(w.w, b.String())
	w.written += int64(n)
	if err != nil {
		return fmt.Errorf("cpio: write header %s: %w", hdr.Name, err)
	}
	if hdr.Mode&0o170000 == TypeSymlink {
		n, err := io.WriteString(w.w, hdr.Linkname)
		w.written += int64(n)
		return err
	}
	w.remain = size
	return nil
}

// Write writes file data for the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		return 0, fmt.Errorf("cpio: write of %d bytes exceeds entry size (%d left)", len(p), w.remain)
	}
	n, err := w.w.Write(p)
	w.remain -= int64(n)
	w.written += int64(n)
	return n, err
}

// Close writes the TRAILER!!! entry. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.WriteHeader(Header{Name: "TRAILER!!!"}); err != nil {
		return err
	}
	w.closed = true
	return nil
}

// FileMode converts an fs.FileMode to the header's c_mode (type + permission bits).
func FileMode(m fs.FileMode) int64 {
	v := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	switch {
	case m.IsDir():
		v |= TypeDir
	case m&fs.ModeSymlink != 0:
		v |= TypeSymlink
	default:
		v |= TypeRegular
	}
	return v
}

// Entry is one parsed archive entry (see Read).
type Entry struct {
	Header
	Data []byte
}

// Read parses a whole odc archive. It exists for tests and for verifying
// what the package builder wrote.
func Read(r io.Reader) ([]Entry, error) {
	var out []Entry
	for {
		var h [76]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, fmt.Errorf("cpio: read header: %w", err)
		}
		if string(h[:6]) != "070707" {
			return nil, fmt.Errorf("cpio: bad magic %q", h[:6])
		}
		field := func(off, width int) (int64, error) {
			var v int64
			_, err := fmt.Sscanf(string(h[off:off+width]), "%o", &v)
			return v, err
		}
		var vals [10]int64
		offs := []struct{ off, w int }{{6, 6}, {12, 6}, {18, 6}, {24, 6}, {30, 6}, {36, 6}, {42, 6}, {48, 11}, {59, 6}, {65, 11}}
		for i, o := range offs {
			v, err := field(o.off, o.w)
			if err != nil {
				return nil, fmt.Errorf("cpio: header field %d: %w", i, err)
			}
			vals[i] = v
		}
		name := make([]byte, vals[8])
		if _, err := io.ReadFull(r, name); err != nil {
			return nil, fmt.Errorf("cpio: read name: %w", err)
		}
		data := make([]byte, vals[9])
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("cpio: read data: %w", err)
		}
		e := Entry{Header: Header{
			Name: strings.TrimRight(string(name), "\x00"), Mode: vals[2], UID: int(vals[3]), GID: int(vals[4]),
			Mtime: vals[7], Size: vals[9],
		}, Data: data}
		if e.Name == "TRAILER!!!" {
			return out, nil
		}
		if e.Mode&0o170000 == TypeSymlink {
			e.Linkname = string(data)
		}
		out = append(out, e)
	}
}
