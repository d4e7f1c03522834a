package pkg

import (
	"bytes"
	"debug/macho"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanyardhq/lanyard/installers/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func TestUniversal(t *testing.T) {
	arm := testutil.GoBinary(t, "darwin", "arm64")
	amd := testutil.GoBinary(t, "darwin", "amd64")
	fat, err := Universal(arm, amd)
	if err != nil {
		t.Fatal(err)
	}
	ff, err := macho.NewFatFile(bytes.NewReader(fat))
	if err != nil {
		t.Fatalf("debug/macho cannot read the universal binary: %v", err)
	}
	if len(ff.Arches) != 2 || ff.Arches[0].Cpu != macho.CpuArm64 || ff.Arches[1].Cpu != macho.CpuAmd64 {
		t.Fatalf("arches = %+v", ff.Arches)
	}
	for i, p := range []string{arm, amd} {
		want, _ := os.ReadFile(p)
		a := ff.Arches[i]
		if a.Offset%(1<<fatAlign) != 0 || !bytes.Equal(fat[a.Offset:a.Offset+a.Size], want) {
			t.Errorf("slice %d not aligned or not byte-identical", i)
		}
	}
	if _, err := Universal(arm, arm); err == nil {
		t.Error("two arm64 slices accepted")
	}
	notMacho := filepath.Join(t.TempDir(), "x")
	_ = os.WriteFile(notMacho, []byte("#!/bin/sh\n"), 0o755)
	if _, err := Universal(arm, notMacho); err == nil {
		t.Error("non-Mach-O slice accepted")
	}
}
