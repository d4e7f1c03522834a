// Package service exposes installers over the admin API:
//
//	GET /api/v1/installers                    platforms and architectures offered
//	GET /api/v1/installers/builds             the org's past builds (with their secret ids)
//	GET /api/v1/installers/{platform}?arch=   download: a cached package whose enrollment
//	                                          secret is still usable, else a fresh build
//	POST /api/v1/installers/links             an expiring public download URL (onboarding
//	                                          e-mail, MDM InstallEnterpriseApplication)
//	GET /api/v1/installers/download/{token}   public: serves the package a link names
//
// Packages are stored in the database (installer_blobs, by sha256) and recorded in
// installer_builds, so every replica serves every package and every link; CacheDir is
// only scratch space for a build in progress. A cached package is served only while its secret is
// neither revoked, expired nor used up, so revoking a package's secret
// (through the enrollment-secret API) also retires it here.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
)

// Store is what the service needs from the database.
type Store interface {
	CreateInstallerBuild(ctx context.Context, b *store.InstallerBuild) error
	LatestInstallerBuilds(ctx context.Context, orgID, platform, arch, version string, limit int) ([]store.InstallerBuild, error)
	ListInstallerBuilds(ctx context.Context, orgID string, p store.Page) ([]store.InstallerBuild, string, error)
	GetEnrollmentSecret(ctx context.Context, orgID, id string) (store.EnrollmentSecret, error)
	GetInstallerBuild(ctx context.Context, orgID, id string) (store.InstallerBuild, error)
	PutInstallerBlob(ctx context.Context, sha string, r io.Reader) error
	InstallerBlobSize(ctx context.Context, sha string) (int64, error)
	OpenInstallerBlob(ctx context.Context, sha string) (io.ReadSeeker, error)
}

// Service serves installers for the caller's org.
type Service struct {
	Builder  *installers.Builder
	Store    Store
	CacheDir string // scratch for builds in progress; nothing is kept there
	// Links enables public, expiring download URLs (nil: off).
	Links  *Links
	Logger *slog.Logger
	Now    func() time.Time

	group singleflight.Group
	sem   chan struct{} // one build at a time: wixl and compression are CPU-heavy
}

// New returns a Service; cacheDir is created 0700.
func New(b *installers.Builder, st Store, cacheDir string, logger *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("installers: cache dir: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{Builder: b, Store: st, CacheDir: cacheDir, Logger: logger, sem: make(chan struct{}, 1)}, nil
}

// PlatformInfo lists one platform's architectures.
type PlatformInfo struct {
	Platform installers.Platform `json:"platform"`
	Archs    []string            `json:"archs"`
	Download string              `json:"download"`
}

// Platforms is the GET /api/v1/installers response.
type Platforms struct {
	Version   string         `json:"version"`
	Platforms []PlatformInfo `json:"platforms"`
	Note      string         `json:"note"`
}

// MacOSStatus is the label the .pkg carries until it is checked on a real Mac.
const MacOSStatus = "macos-pkg: built and structurally verified on Linux, not yet verified on macOS"

// Routes implements the server's capability hook.
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Method: http.MethodGet, Path: "/api/v1/installers", Summary: "List the agent installer platforms and architectures",
			Tag: "installers", Role: domain.RoleIT, Feature: domain.FeatureDeviceTracking, Response: Platforms{}, Handler: s.platforms},
		{Method: http.MethodGet, Path: "/api/v1/installers/builds", Summary: "List the organization's installer builds and their enrollment secret ids",
			Tag: "installers", Role: domain.RoleIT, Feature: domain.FeatureDeviceTracking,
			Query:    api.PageParams(),
			Response: api.List[store.InstallerBuild]{}, Handler: s.listBuilds},
		{Method: http.MethodGet, Path: "/api/v1/installers/{platform}",
			Summary: "Download the agent installer (linux-deb, linux-rpm, windows-msi, macos-pkg) with the org's enrollment config baked in",
			Tag:     "installers", Role: domain.RoleIT, Feature: domain.FeatureDeviceTracking,
			Query: []api.Param{
				api.EnumParam("arch", "default amd64 (universal for macos-pkg; universal is for macos-pkg only)", "amd64", "arm64", "universal"),
				api.BoolParam("fresh", "true builds a new package with a new enrollment secret instead of serving the cached one"),
			},
			Handler: s.download},
		{Method: http.MethodPost, Path: "/api/v1/installers/links",
			Summary: "Create an expiring public download link for the org's installer (onboarding e-mail, MDM InstallEnterpriseApplication)",
			Tag:     "installers", Role: domain.RoleIT, Feature: domain.FeatureDeviceTracking,
			Request: LinkRequest{}, Response: Link{}, Status: http.StatusCreated, Handler: s.createLink},
		{Method: http.MethodGet, Path: downloadPrefix + "{token}",
			Summary: "Download an installer through a link from POST /api/v1/installers/links (no API token; the link is the credential)",
			Tag:     "installers", Public: true, Handler: s.publicDownload},
	}
}

func (s *Service) platforms(w http.ResponseWriter, r *http.Request) error {
	out := Platforms{Version: s.Builder.Version, Note: MacOSStatus}
	for _, p := range installers.Platforms() {
		out.Platforms = append(out.Platforms, PlatformInfo{Platform: p, Archs: installers.Archs(p), Download: "/api/v1/installers/" + string(p)})
	}
	return api.JSON(w, http.StatusOK, out)
}

func (s *Service) listBuilds(w http.ResponseWriter, r *http.Request) error {
	p, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := s.Store.ListInstallerBuilds(r.Context(), api.PrincipalFrom(r.Context()).OrgID, p)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	orgID := api.PrincipalFrom(ctx).OrgID
	tg, err := installers.ParseTarget(r.PathValue("platform"), r.URL.Query().Get("arch"))
	if err != nil {
		return api.NotFound(err.Error())
	}
	fresh, _ := strconv.ParseBool(r.URL.Query().Get("fresh"))
	b, err := s.Get(ctx, orgID, tg, fresh)
	if err != nil {
		return err
	}
	content, closeFn, err := s.open(ctx, b)
	if err != nil {
		return fmt.Errorf("installers: open package %s: %w", b.ID, err)
	}
	defer closeFn()
	serveFile(w, r, b, content)
	return nil
}

// open returns a build's package: from the database, or for a build made before packages
// moved there, from the file on the replica that built it. A missing package is
// os.ErrNotExist.
func (s *Service) open(ctx context.Context, b store.InstallerBuild) (io.ReadSeeker, func(), error) {
	content, err := s.Store.OpenInstallerBlob(ctx, b.SHA256)
	if err == nil {
		return content, func() {}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if b.CachePath == "" {
		return nil, nil, os.ErrNotExist
	}
	f, err := os.Open(b.CachePath)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// stored reports whether a build's package can be served by this replica.
func (s *Service) stored(ctx context.Context, b store.InstallerBuild) (bool, error) {
	_, err := s.Store.InstallerBlobSize(ctx, b.SHA256)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if b.CachePath == "" {
		return false, nil
	}
	_, err = os.Stat(b.CachePath)
	return err == nil, nil
}

// Get returns a usable package for the org and target: the newest cached
// build whose file exists and whose secret is still usable, else a new one.
func (s *Service) Get(ctx context.Context, orgID string, tg installers.Target, fresh bool) (store.InstallerBuild, error) {
	if !fresh {
		if b, ok, err := s.cached(ctx, orgID, tg); err != nil || ok {
			return b, err
		}
	}
	key := orgID + "|" + string(tg.Platform) + "|" + tg.Arch
	if fresh {
		key += "|fresh|" + domain.NewID()
	}
	v, err, _ := s.group.Do(key, func() (any, error) {
		if !fresh { // another request may have built it while we waited
			if b, ok, err := s.cached(ctx, orgID, tg); err != nil || ok {
				return b, err
			}
		}
		return s.build(ctx, orgID, tg)
	})
	if err != nil {
		return store.InstallerBuild{}, err
	}
	return v.(store.InstallerBuild), nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) cached(ctx context.Context, orgID string, tg installers.Target) (store.InstallerBuild, bool, error) {
	builds, err := s.Store.LatestInstallerBuilds(ctx, orgID, string(tg.Platform), tg.Arch, s.Builder.Version, 5)
	if err != nil {
		return store.InstallerBuild{}, false, err
	}
	for _, b := range builds {
		if ok, err := s.stored(ctx, b); err != nil || !ok {
			if err != nil {
				return store.InstallerBuild{}, false, err
			}
			continue
		}
		sec, err := s.Store.GetEnrollmentSecret(ctx, orgID, b.SecretID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.InstallerBuild{}, false, err
		}
		if Usable(sec, s.now()) {
			return b, true, nil
		}
	}
	return store.InstallerBuild{}, false, nil
}

// Usable reports whether a package's secret can still enroll a device:
// not revoked, not expired (with a day's margin so a fresh download does
// not expire before it is installed) and not used up.
func Usable(sec store.EnrollmentSecret, now time.Time) bool {
	switch {
	case sec.RevokedAt != nil:
		return false
	case sec.ExpiresAt != nil && !now.Add(24*time.Hour).Before(*sec.ExpiresAt):
		return false
	case sec.MaxUses > 0 && sec.Uses >= sec.MaxUses:
		return false
	}
	return true
}

func (s *Service) build(ctx context.Context, orgID string, tg installers.Target) (store.InstallerBuild, error) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return store.InstallerBuild{}, ctx.Err()
	}
	id := domain.NewID()
	dir := filepath.Join(s.CacheDir, orgID, id)
	defer os.RemoveAll(dir) // the package goes to the database; nothing stays on this replica
	a, err := s.Builder.Build(ctx, installers.Request{OrgID: orgID, Target: tg}, dir)
	if err != nil {
		switch {
		case errors.Is(err, installers.ErrPlan):
			return store.InstallerBuild{}, api.Forbidden(err.Error())
		case errors.Is(err, installers.ErrNoAgentBinary):
			s.Logger.ErrorContext(ctx, "installer build failed", "component", "installers", "err", err)
			return store.InstallerBuild{}, api.Unavailable(fmt.Sprintf("the %s/%s agent binary is not available on this server "+
				"(run make build so lanyard-agent-<goos>-<goarch> sits beside the lanyard executable)", tg.GOOS(), tg.Arch))
		}
		return store.InstallerBuild{}, err
	}
	b := store.InstallerBuild{ID: id, OrgID: orgID, Platform: string(tg.Platform), Arch: tg.Arch, Version: a.Version,
		FileName: a.FileName, SHA256: a.SHA256, Size: a.Size, SecretID: a.SecretID, Signed: a.Signed,
		CreatedAt: a.BuiltAt}
	if err := s.putBlob(ctx, a.Path, a.SHA256); err != nil {
		return store.InstallerBuild{}, err
	}
	if err := s.Store.CreateInstallerBuild(ctx, &b); err != nil {
		return store.InstallerBuild{}, err
	}
	return b, nil
}

func (s *Service) putBlob(ctx context.Context, path, sha string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("installers: open built package: %w", err)
	}
	defer f.Close()
	return s.Store.PutInstallerBlob(ctx, sha, f)
}
