package pkg

import (
	"bytes"
	"debug/macho"
	"encoding/binary"
	"fmt"
	"os"
)

// fatAlign is the slice alignment (2^14, the arm64 page size) lipo uses.
const fatAlign = 14

// Universal merges thin Mach-O executables (e.g. darwin/arm64 and
// darwin/amd64 Go builds) into one universal ("fat") binary, as lipo
// -create does. Written here because no lipo runs on Linux.
func Universal(paths ...string) ([]byte, error) {
	if len(paths) < 2 {
		return nil, fmt.Errorf("pkg: a universal binary needs at least two slices")
	}
	type slice struct {
		cpu, sub uint32
		data     []byte
	}
	var slices []slice
	seen := map[macho.Cpu]bool{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("pkg: %w", err)
		}
		f, err := macho.NewFile(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("pkg: %s is not a thin Mach-O file: %w", p, err)
		}
		if seen[f.Cpu] {
			return nil, fmt.Errorf("pkg: two slices for %v", f.Cpu)
		}
		seen[f.Cpu] = true
		slices = append(slices, slice{uint32(f.Cpu), f.SubCpu, data})
	}
	var out bytes.Buffer
	hdr := make([]byte, 8+20*len(slices))
	binary.BigEndian.PutUint32(hdr[0:], macho.MagicFat)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(slices)))
	off := uint64(len(hdr))
	align := func(n uint64) uint64 { return (n + 1<<fatAlign - 1) &^ (1<<fatAlign - 1) }
	offsets := make([]uint64, len(slices))
	for i, s := range slices {
		off = align(off)
		offsets[i] = off
		if off+uint64(len(s.data)) > 1<<32-1 {
			return nil, fmt.Errorf("pkg: universal binary larger than 4 GiB")
		}
		e := hdr[8+20*i:]
		binary.BigEndian.PutUint32(e[0:], s.cpu)
		binary.BigEndian.PutUint32(e[4:], s.sub)
		binary.BigEndian.PutUint32(e[8:], uint32(off))
		binary.BigEndian.PutUint32(e[12:], uint32(len(s.data)))
		binary.BigEndian.PutUint32(e[16:], fatAlign)
		off += uint64(len(s.data))
	}
	out.Write(hdr)
	for i, s := range slices {
		out.Write(make([]byte, offsets[i]-uint64(out.Len())))
		out.Write(s.data)
	}
	return out.Bytes(), nil
}
