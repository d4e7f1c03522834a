package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestInstallerBlobs(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		content := make([]byte, 2*store.InstallerBlobChunk+12345) // three chunks, the last short
		for i := range content {
			content[i] = byte(i * 7 % 251)
		}
		sum := sha256.Sum256(content)
		sha := hex.EncodeToString(sum[:])
		if _, err := db.OpenInstallerBlob(ctx, sha); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before put: %v", err)
		}
		if err := db.PutInstallerBlob(ctx, sha, bytes.NewReader(content[1:])); err == nil {
			t.Fatal("content that does not hash to its key was stored")
		}
		for range 2 { // the second put is a no-op
			if err := db.PutInstallerBlob(ctx, sha, bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := db.InstallerBlobSize(ctx, sha); err != nil || n != int64(len(content)) {
			t.Fatalf("size %d, %v", n, err)
		}
		r, err := db.OpenInstallerBlob(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read back %d bytes (%v)", len(got), err)
		}
		tests := []struct {
			name     string
			from, to int64
		}{
			{"inside one chunk", 10, 20},
			{"across a chunk boundary", store.InstallerBlobChunk - 5, store.InstallerBlobChunk + 5},
			{"the tail", int64(len(content)) - 100, int64(len(content))},
		}
		for _, tc := range tests {
			if _, err := r.Seek(tc.from, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, tc.to-tc.from)
			if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, content[tc.from:tc.to]) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
	})
}
