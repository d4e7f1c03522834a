// Package allowcmd runs subprocesses for the agent. Every program is named by
// an absolute path from a fixed allowlist, so a PATH change or a planted
// binary can never redirect what a root/SYSTEM service executes.
//
// Only packages under agent/ may import it.
package allowcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrNotAllowed is returned for a program outside the allowlist.
var ErrNotAllowed = errors.New("allowcmd: program not in allowlist")

// ErrNotFound is returned when an allowlisted program is absent on this host.
var ErrNotFound = errors.New("allowcmd: program not installed")

// DefaultTimeout bounds a command run without a context deadline.
const DefaultTimeout = 60 * time.Second

// Allowed reports whether path is an allowlisted program on this OS.
func Allowed(path string) bool {
	return slices.Contains(allowed, filepath.Clean(path)) && filepath.IsAbs(path)
}

// Run executes argv (argv[0] must be allowlisted) and returns its combined
// stdout, with stderr folded into the error on failure.
func Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("allowcmd: empty argv")
	}
	if !Allowed(argv[0]) {
		return nil, fmt.Errorf("%w: %s", ErrNotAllowed, argv[0])
	}
	if !exists(argv[0]) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, argv[0])
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		return stdout.Bytes(), fmt.Errorf("allowcmd: %s: %w: %s", filepath.Base(argv[0]), err, msg)
	}
	return stdout.Bytes(), nil
}

// First returns the first allowlisted program of candidates present on this
// host, or "".
func First(candidates ...string) string {
	for _, c := range candidates {
		if Allowed(c) && exists(c) {
			return c
		}
	}
	return ""
}
