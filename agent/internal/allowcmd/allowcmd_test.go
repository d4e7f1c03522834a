//go:build linux

package allowcmd

import (
	"context"
	"errors"
	"testing"
)

func TestRunRefusesOutsideAllowlist(t *testing.T) {
	for _, argv := range [][]string{
		{"/bin/sh", "-c", "true"},
		{"usermod", "--help"}, // relative: never resolved through PATH
		{"/tmp/usermod"},
	} {
		_, err := Run(context.Background(), argv...)
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Run(%v) err = %v, want ErrNotAllowed", argv, err)
		}
	}
	if _, err := Run(context.Background()); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestRunAllowlisted(t *testing.T) {
	p := First("/usr/bin/id", "/bin/id")
	if p == "" {
		t.Skip("id(1) not installed")
	}
	out, err := Run(context.Background(), p, "-u")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no output from id -u")
	}
}
