package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assetFS embed.FS

//go:embed templates
var templateFS embed.FS

// asset is one embedded file served under a content-hashed name, so it can be cached for
// a year and a new build still reaches every browser at once.
type asset struct {
	name, hashed, etag, ctype string
	body                      []byte
}

type assetSet struct {
	byName   map[string]*asset // logical name, e.g. "app.js"
	byHashed map[string]*asset // served name, e.g. "app.1a2b3c4d5e.js"
}

func loadAssets() (*assetSet, error) {
	s := &assetSet{byName: map[string]*asset{}, byHashed: map[string]*asset{}}
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])[:12]
		ext := path.Ext(name)
		a := &asset{name: name, hashed: strings.TrimSuffix(name, ext) + "." + h + ext, etag: `"` + h + `"`, body: b,
			ctype: mime.TypeByExtension(ext)}
		if a.ctype == "" {
			a.ctype = "text/plain; charset=utf-8"
		}
		s.byName[name], s.byHashed[a.hashed] = a, a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: load assets: %w", err)
	}
	return s, nil
}

// URL is the path a page links an asset by (template func "asset").
func (s *assetSet) URL(name string) (string, error) {
	a, ok := s.byName[name]
	if !ok {
		return "", fmt.Errorf("console: no asset %q", name)
	}
	return "/assets/" + a.hashed, nil
}

func (s *assetSet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := s.byHashed[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", a.etag)
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}
