// Package procs lists processes and their user IDs from a proc
// filesystem, so a lock can check that a user's sessions really ended.
//
// Only packages under agent/ may import it.
package procs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Proc is one process.
type Proc struct {
	PID  int
	Name string
	// State is the one-letter state ("R", "S", "Z", ...).
	State string
	// RealUID and EffectiveUID from the Uid line.
	RealUID, EffectiveUID int
}

// Live reports whether the process can still run: a zombie has exited and
// only waits for its parent to collect its status.
func (p Proc) Live() bool { return p.State != "Z" && p.State != "X" }

// List reads every process under procDir ("/proc"). A process that exits
// while it is read is skipped.
func List(procDir string) ([]Proc, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := read(filepath.Join(procDir, e.Name(), "status"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // exited meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("procs: %w", err)
		}
		p.PID = pid
		out = append(out, p)
	}
	return out, nil
}

func read(path string) (Proc, error) {
	f, err := os.Open(path)
	if err != nil {
		return Proc{}, err
	}
	defer f.Close()
	p := Proc{RealUID: -1, EffectiveUID: -1}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.Name = v
		case "State":
			p.State, _, _ = strings.Cut(v, " ")
		case "Uid":
			f := strings.Fields(v)
			if len(f) >= 2 {
				p.RealUID, _ = strconv.Atoi(f[0])
				p.EffectiveUID, _ = strconv.Atoi(f[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Proc{}, err // ESRCH when the process exited meanwhile
	}
	return p, nil
}

// LiveOf returns the live processes running as uid (real or effective).
func LiveOf(ps []Proc, uid int) []Proc {
	var out []Proc
	for _, p := range ps {
		if p.Live() && (p.RealUID == uid || p.EffectiveUID == uid) {
			out = append(out, p)
		}
	}
	return out
}
