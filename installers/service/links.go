package service

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
)

// Sealer encrypts download tokens (the server's *secrets.Keyring).
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Links makes time-limited public download URLs for built packages, for
// those who cannot send an API token: an employee following the
// onboarding e-mail, or a Mac fetching the .pkg that an MDM
// InstallEnterpriseApplication command names. The token in the URL is
// sealed (AES-GCM) with the server keyring, so it cannot be forged or
// altered; it names the org, the build and the expiry.
type Links struct {
	Sealer  Sealer
	BaseURL string // the control plane's public URL, e.g. https://lanyard.example.com
}

const (
	linkAAD        = "installers.download"
	downloadPrefix = "/api/v1/installers/download/"
	// DefaultLinkTTL is how long a download link works unless asked otherwise.
	DefaultLinkTTL = 7 * 24 * time.Hour
	maxLinkTTL     = 30 * 24 * time.Hour
)

// BundleID is the macOS package identifier (for InstallEnterpriseApplication).
const BundleID = "com.lanyard.agent"

// LinkRequest is the body of POST /api/v1/installers/links.
type LinkRequest struct {
	Platform string `json:"platform"` // linux-deb, linux-rpm, windows-msi or macos-pkg
	Arch     string `json:"arch,omitempty"`
	TTLHours int    `json:"ttl_hours,omitempty"` // default 168 (7 days), at most 720
	Fresh    bool   `json:"fresh,omitempty"`     // build a new package with a new secret
}

// Link is a public, expiring download URL for one package build.
type Link struct {
	URL       string              `json:"url"`
	ExpiresAt time.Time           `json:"expires_at"`
	Platform  installers.Platform `json:"platform"`
	Arch      string              `json:"arch"`
	Version   string              `json:"version"`
	FileName  string              `json:"file_name"`
	SHA256    string              `json:"sha256"`
	Size      int64               `json:"size_bytes"`
	BuildID   string              `json:"build_id"`
	SecretID  string              `json:"secret_id"`
	// BundleID is set for macos-pkg: with URL, SHA256 and Size it is what an
	// MDM InstallEnterpriseApplication manifest needs.
	BundleID string `json:"bundle_id,omitempty"`
}

type linkToken struct {
	Org     string `json:"o"`
	Build   string `json:"b"`
	Expires int64  `json:"e"`
}

// Link returns a download link for the org's package (cached or new).
func (s *Service) Link(ctx context.Context, orgID string, tg installers.Target, ttl time.Duration, fresh bool) (Link, error) {
	if s.Links == nil || s.Links.Sealer == nil {
		return Link{}, api.Unavailable("download links are not configured on this server")
	}
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	if ttl > maxLinkTTL {
		return Link{}, api.Unprocessable(fmt.Sprintf("a download link lasts at most %d hours", int(maxLinkTTL.Hours())))
	}
	b, err := s.Get(ctx, orgID, tg, fresh)
	if err != nil {
		return Link{}, err
	}
	exp := s.now().Add(ttl).UTC().Truncate(time.Second)
	plain, _ := json.Marshal(linkToken{Org: orgID, Build: b.ID, Expires: exp.Unix()})
	sealed, err := s.Links.Sealer.Seal(plain, linkAAD)
	if err != nil {
		return Link{}, fmt.Errorf("installers: seal download token: %w", err)
	}
	l := Link{
		URL:       strings.TrimRight(s.Links.BaseURL, "/") + downloadPrefix + base64.RawURLEncoding.EncodeToString([]byte(sealed)),
		ExpiresAt: exp, Platform: tg.Platform, Arch: tg.Arch, Version: b.Version, FileName: b.FileName,
		SHA256: b.SHA256, Size: b.Size, BuildID: b.ID, SecretID: b.SecretID,
	}
	if tg.Platform == installers.MacOSPkg {
		l.BundleID = BundleID
	}
	return l, nil
}

func (s *Service) createLink(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req LinkRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	tg, err := installers.ParseTarget(req.Platform, req.Arch)
	if err != nil {
		return api.Unprocessable(err.Error())
	}
	if req.TTLHours < 0 {
		return api.Unprocessable("ttl_hours must be positive")
	}
	l, err := s.Link(ctx, api.PrincipalFrom(ctx).OrgID, tg, time.Duration(req.TTLHours)*time.Hour, req.Fresh)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, l)
}

// errGone is a 410 problem for retired links and packages.
func errGone(detail string) error {
	p := api.NotFound(detail)
	p.Status = http.StatusGone
	p.Title = "Gone"
	p.Type = api.ProblemBase + "gone"
	return p
}

// publicDownload serves GET /api/v1/installers/download/{token}: no API
// token, the sealed link token is the authorization.
func (s *Service) publicDownload(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if s.Links == nil || s.Links.Sealer == nil {
		return api.NotFound("no such download")
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.PathValue("token"))
	if err != nil {
		return api.NotFound("no such download")
	}
	plain, err := s.Links.Sealer.Open(string(raw), linkAAD)
	if err != nil {
		return api.NotFound("no such download")
	}
	var tok linkToken
	if err := json.Unmarshal(plain, &tok); err != nil || tok.Org == "" || tok.Build == "" {
		return api.NotFound("no such download")
	}
	if s.now().Unix() > tok.Expires {
		return errGone("this download link has expired; ask your IT team for a new one")
	}
	b, err := s.Store.GetInstallerBuild(ctx, tok.Org, tok.Build)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no such download")
	}
	if err != nil {
		return err
	}
	sec, err := s.Store.GetEnrollmentSecret(ctx, tok.Org, b.SecretID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) || sec.RevokedAt != nil || (sec.ExpiresAt != nil && !s.now().Before(*sec.ExpiresAt)) ||
		(sec.MaxUses > 0 && sec.Uses >= sec.MaxUses) {
		return errGone("this installer was retired (its enrollment secret is revoked, expired or used up); ask your IT team for a fresh installer")
	}
	content, closeFn, err := s.open(ctx, b)
	if errors.Is(err, os.ErrNotExist) {
		return errGone("this installer is no longer on the server; ask your IT team for a fresh installer")
	}
	if err != nil {
		return err
	}
	defer closeFn()
	serveFile(w, r, b, content)
	return nil
}

func serveFile(w http.ResponseWriter, r *http.Request, b store.InstallerBuild, content io.ReadSeeker) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", b.FileName))
	w.Header().Set("X-Checksum-Sha256", b.SHA256)
	w.Header().Set("X-Lanyard-Installer-Build", b.ID)
	w.Header().Set("X-Lanyard-Enrollment-Secret-Id", b.SecretID)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, b.FileName, b.CreatedAt, content)
}
