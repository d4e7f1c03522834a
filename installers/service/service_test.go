package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/installers"
	"github.com/lanyardhq/lanyard/installers/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// dbMinter stores real enrollment_secrets rows so revocation is visible.
type dbMinter struct{ db *store.DB }

func (m dbMinter) MintPackageSecret(ctx context.Context, orgID string, o installers.SecretOptions) (installers.MintedSecret, error) {
	plain := "lyes_" + domain.NewID()
	s := store.EnrollmentSecret{OrgID: orgID, Name: o.Name, Prefix: plain[:10], ExpiresAt: o.ExpiresAt, MaxUses: o.MaxUses}
	if err := m.db.CreateEnrollmentSecret(ctx, &s, store.HashToken(plain)); err != nil {
		return installers.MintedSecret{}, err
	}
	return installers.MintedSecret{ID: s.ID, Plaintext: plain}, nil
}

type fixedCA struct{}

func (fixedCA) CAFingerprint(context.Context, string) (string, error) {
	return strings.Repeat("ab", 32), nil
}

type bins struct{ t testing.TB }

func (b bins) AgentBinary(_ context.Context, goos, goarch string) (string, error) {
	return testutil.GoBinary(b.t, goos, goarch), nil
}

func TestDownloadCacheAndRevoke(t *testing.T) {
	testutil.Need(t, "dpkg-deb")
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
		pro := domain.Org{Name: "Acme", Plan: domain.PlanPro}
		ess := domain.Org{Name: "Small", Plan: domain.PlanEssentials}
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			if err := store.CreateOrg(ctx, tx, &pro); err != nil {
				return err
			}
			return store.CreateOrg(ctx, tx, &ess)
		}); err != nil {
			t.Fatal(err)
		}
		b := &installers.Builder{ControlPlaneURL: "https://lanyard.example.com", Version: "1.0.0",
			Secrets: dbMinter{db}, CA: fixedCA{}, Orgs: db, Agents: bins{t}}
		svc, err := New(b, db, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		h := apitest.New(t, db, api.Options{}, svc.Routes())
		it := h.Token(pro.ID, domain.RoleIT)

		r := h.Do("GET", "/api/v1/installers", it, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"windows-msi"`) || !strings.Contains(string(r.Body), "not yet verified on macOS") {
			t.Fatalf("platforms: %d %s", r.Status, r.Body)
		}

		first := h.Do("GET", "/api/v1/installers/linux-deb?arch=amd64", it, nil)
		if first.Status != 200 {
			t.Fatalf("download: %d %s", first.Status, first.Body)
		}
		sum := sha256.Sum256(first.Body)
		if got := first.Header.Get("X-Checksum-Sha256"); got != hex.EncodeToString(sum[:]) {
			t.Errorf("checksum header %q does not match the body", got)
		}
		if cd := first.Header.Get("Content-Disposition"); !strings.Contains(cd, "lanyard-agent_1.0.0_linux-deb_amd64.deb") {
			t.Errorf("Content-Disposition = %q", cd)
		}
		if first.Body[0] != '!' || !strings.HasPrefix(string(first.Body), "!<arch>") {
			t.Errorf("body is not a .deb (ar archive)")
		}

		second := h.Do("GET", "/api/v1/installers/linux-deb", it, nil)
		if second.Header.Get("X-Lanyard-Installer-Build") != first.Header.Get("X-Lanyard-Installer-Build") {
			t.Error("second download was rebuilt instead of served from the cache")
		}

		// Revoking the package's secret retires the cached package.
		secretID := first.Header.Get("X-Lanyard-Enrollment-Secret-Id")
		if _, err := db.RevokeEnrollmentSecret(ctx, pro.ID, secretID, false); err != nil {
			t.Fatal(err)
		}
		third := h.Do("GET", "/api/v1/installers/linux-deb", it, nil)
		if third.Status != 200 || third.Header.Get("X-Lanyard-Enrollment-Secret-Id") == secretID {
			t.Errorf("after revoke: status %d, secret %q (old %q)", third.Status, third.Header.Get("X-Lanyard-Enrollment-Secret-Id"), secretID)
		}
		fresh := h.Do("GET", "/api/v1/installers/linux-deb?fresh=true", it, nil)
		if fresh.Header.Get("X-Lanyard-Installer-Build") == third.Header.Get("X-Lanyard-Installer-Build") {
			t.Error("fresh=true served the cached build")
		}

		list := h.Do("GET", "/api/v1/installers/builds", it, nil)
		var page api.List[store.InstallerBuild]
		list.JSON(t, &page)
		if len(page.Items) != 3 {
			t.Fatalf("builds = %d, want 3: %s", len(page.Items), list.Body)
		}
		for _, ib := range page.Items {
			if ib.SecretID == "" || ib.SHA256 == "" || ib.OrgID != pro.ID || strings.Contains(string(list.Body), "cache_path") {
				t.Errorf("build record %+v", ib)
			}
		}

		for path, want := range map[string]int{
			"/api/v1/installers/linux-apk":              404,
			"/api/v1/installers/windows-msi?arch=arm64": 404,
		} {
			r := h.Do("GET", path, it, nil)
			if r.Status != want || !strings.Contains(string(r.Body), "valid:") {
				t.Errorf("%s: %d %s", path, r.Status, r.Body)
			}
		}
		if r := h.Do("GET", "/api/v1/installers/linux-deb", h.Token(pro.ID, domain.RoleViewer), nil); r.Status != http.StatusForbidden {
			t.Errorf("viewer: %d", r.Status)
		}
		if r := h.Do("GET", "/api/v1/installers/linux-deb", h.Token(ess.ID, domain.RoleOwner), nil); r.Status != http.StatusPaymentRequired {
			t.Errorf("essentials plan: %d %s", r.Status, r.Body)
		}
		apitest.CheckIsolation(t, h, h.Token(ess.ID, domain.RoleOwner), apitest.Fixtures{})
	})
}

func TestUsable(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	later, soon := now.Add(72*time.Hour), now.Add(time.Hour)
	for name, c := range map[string]struct {
		s    store.EnrollmentSecret
		want bool
	}{
		"fresh":         {store.EnrollmentSecret{}, true},
		"revoked":       {store.EnrollmentSecret{RevokedAt: &now}, false},
		"expires later": {store.EnrollmentSecret{ExpiresAt: &later}, true},
		"expires soon":  {store.EnrollmentSecret{ExpiresAt: &soon}, false},
		"used up":       {store.EnrollmentSecret{MaxUses: 2, Uses: 2}, false},
		"uses left":     {store.EnrollmentSecret{MaxUses: 2, Uses: 1}, true},
	} {
		if got := Usable(c.s, now); got != c.want {
			t.Errorf("%s: Usable = %v", name, got)
		}
	}
}

type noBins struct{}

func (noBins) AgentBinary(context.Context, string, string) (string, error) {
	return "", os.ErrNotExist
}

func TestMissingAgentBinaryIs503(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
	org := domain.Org{Name: "Acme", Plan: domain.PlanPro}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		t.Fatal(err)
	}
	b := &installers.Builder{ControlPlaneURL: "https://x.example", Version: "1.0.0", Secrets: dbMinter{db}, CA: fixedCA{}, Orgs: db, Agents: noBins{}}
	svc, err := New(b, db, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, db, api.Options{}, svc.Routes())
	r := h.Do("GET", "/api/v1/installers/windows-msi", h.Token(org.ID, domain.RoleAdmin), nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "make build") {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	secrets, _, err := db.ListEnrollmentSecrets(ctx, org.ID, store.Page{})
	if err != nil || len(secrets) != 0 {
		t.Errorf("a failed build left %d secrets (err %v)", len(secrets), err)
	}
}

func TestLinks(t *testing.T) {
	testutil.Need(t, "dpkg-deb")
	db := storetest.NewSQLite(t)
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
	org := domain.Org{Name: "Acme", Plan: domain.PlanPro}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		t.Fatal(err)
	}
	b := &installers.Builder{ControlPlaneURL: "https://x.example", Version: "1.0.0", Secrets: dbMinter{db}, CA: fixedCA{}, Orgs: db, Agents: bins{t}}
	scratch := t.TempDir()
	svc, err := New(b, db, scratch, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, db, api.Options{}, svc.Routes())
	it := h.Token(org.ID, domain.RoleIT)
	if r := h.Do("POST", "/api/v1/installers/links", it, LinkRequest{Platform: "linux-deb"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("links without a keyring: %d %s", r.Status, r.Body)
	}
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	svc.Links = &Links{Sealer: kr, BaseURL: h.Server.URL}

	r := h.Do("POST", "/api/v1/installers/links", it, LinkRequest{Platform: "macos-pkg", Arch: "universal", TTLHours: 48})
	if r.Status != http.StatusCreated {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	var l Link
	r.JSON(t, &l)
	if l.BundleID != BundleID || l.Size == 0 || len(l.SHA256) != 64 || !strings.HasPrefix(l.URL, h.Server.URL+downloadPrefix) ||
		time.Until(l.ExpiresAt) < 47*time.Hour {
		t.Fatalf("link %+v", l)
	}
	path := strings.TrimPrefix(l.URL, h.Server.URL)
	got := h.Do("GET", path, "", nil) // no API token: the link is the credential
	sum := sha256.Sum256(got.Body)
	if got.Status != 200 || hex.EncodeToString(sum[:]) != l.SHA256 || int64(len(got.Body)) != l.Size {
		t.Fatalf("public download: %d, %d bytes", got.Status, len(got.Body))
	}
	// The package lives in the database, not on this replica: the scratch dir is empty and
	// another service over the same database with its own empty dir serves the same link.
	if left, _ := filepath.Glob(filepath.Join(scratch, "*", "*", "*")); len(left) != 0 {
		t.Errorf("files left in the scratch dir: %v", left)
	}
	other, err := New(b, db, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other.Links = svc.Links
	h2 := apitest.New(t, db, api.Options{}, other.Routes())
	if got2 := h2.Do("GET", path, "", nil); got2.Status != 200 || !bytes.Equal(got2.Body, got.Body) {
		t.Fatalf("download from another replica: %d, %d bytes", got2.Status, len(got2.Body))
	}
	tampered := path[:len(path)-3] + "AAA"
	if r := h.Do("GET", tampered, "", nil); r.Status != http.StatusNotFound {
		t.Errorf("tampered link: %d", r.Status)
	}
	svc.Now = func() time.Time { return time.Now().Add(49 * time.Hour) }
	if r := h.Do("GET", path, "", nil); r.Status != http.StatusGone || !strings.Contains(string(r.Body), "expired") {
		t.Errorf("expired link: %d %s", r.Status, r.Body)
	}
	svc.Now = nil
	if _, err := db.RevokeEnrollmentSecret(ctx, org.ID, l.SecretID, false); err != nil {
		t.Fatal(err)
	}
	if r := h.Do("GET", path, "", nil); r.Status != http.StatusGone || !strings.Contains(string(r.Body), "fresh installer") {
		t.Errorf("link to a revoked package: %d %s", r.Status, r.Body)
	}
	for name, req := range map[string]LinkRequest{
		"too long":     {Platform: "linux-deb", TTLHours: 24 * 31},
		"bad platform": {Platform: "linux-apk"},
	} {
		if r := h.Do("POST", "/api/v1/installers/links", it, req); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := h.Do("POST", "/api/v1/installers/links", h.Token(org.ID, domain.RoleViewer), LinkRequest{Platform: "linux-deb"}); r.Status != http.StatusForbidden {
		t.Errorf("viewer: %d", r.Status)
	}
}

// TestConcurrentDownloadsBuildOnce: simultaneous first downloads share one
// build (and one secret).
func TestConcurrentDownloadsBuildOnce(t *testing.T) {
	testutil.Need(t, "dpkg-deb")
	db := storetest.NewSQLite(t)
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
	org := domain.Org{Name: "Acme", Plan: domain.PlanPro}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		t.Fatal(err)
	}
	b := &installers.Builder{ControlPlaneURL: "https://x.example", Version: "1.0.0", Secrets: dbMinter{db}, CA: fixedCA{}, Orgs: db, Agents: bins{t}}
	svc, err := New(b, db, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, db, api.Options{}, svc.Routes())
	tok := h.Token(org.ID, domain.RoleIT)
	const n = 4
	ids := make(chan string, n)
	for range n {
		go func() {
			r := h.Do("GET", "/api/v1/installers/linux-rpm?arch=arm64", tok, nil)
			ids <- fmt.Sprint(r.Status, " ", r.Header.Get("X-Lanyard-Installer-Build"))
		}()
	}
	first := <-ids
	for range n - 1 {
		if got := <-ids; got != first {
			t.Errorf("concurrent downloads got %q and %q", first, got)
		}
	}
	if !strings.HasPrefix(first, "200 ") {
		t.Fatalf("download: %s", first)
	}
	builds, _, err := db.ListInstallerBuilds(ctx, org.ID, store.Page{})
	if err != nil || len(builds) != 1 {
		t.Errorf("%d builds recorded (err %v), want 1", len(builds), err)
	}
}
