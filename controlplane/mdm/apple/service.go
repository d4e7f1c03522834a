// Package apple is Lanyard's Apple MDM: nanomdm v0.9.0 embedded as a library (check-in
// and command protocol), a micromdm/scep server on a dedicated MDM CA with one-time
// challenges, signed enrollment profiles, our own APNs provider and re-push loop, command
// intent kept in our tables (re-issued when a re-Authenticate clears nanomdm's queue), the
// org baseline rendered as configuration profiles with drift repair, and ADE via nanodep.
//
// The host (controlplane/server) builds a Service with New, mounts Handler() at the root
// (it serves /mdm/..., /scep, /enroll/...), adds Routes() to the admin API, adds
// ReadyWarnings to /readyz, and runs Run(ctx) for the background loops.
package apple

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	nanolog "github.com/micromdm/nanolib/log"
	"github.com/micromdm/nanomdm/certverify"
	"github.com/micromdm/nanomdm/cryptoutil"
	httpmdm "github.com/micromdm/nanomdm/http/mdm"
	pushsvc "github.com/micromdm/nanomdm/push/service"
	"github.com/micromdm/nanomdm/service"
	"github.com/micromdm/nanomdm/service/certauth"
	"github.com/micromdm/nanomdm/service/multi"
	"github.com/micromdm/nanomdm/service/nanomdm"
	"github.com/micromdm/nanomdm/storage"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Keyring seals secrets at rest (*secrets.Keyring implements it).
type Keyring interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Config is what the MDM service needs from its host.
type Config struct {
	DB      *store.DB
	Keyring Keyring
	// BaseURL is the public https URL Macs reach (e.g. https://lanyard.example.com).
	// It is baked into enrollment profiles and can never change for enrolled Macs.
	BaseURL string
	Logger  *slog.Logger

	// APNsURL overrides Apple's gateway (tests: fakeapns). APNsRootCAs trusts it.
	APNsURL     string
	APNsRootCAs *x509.CertPool
	// PushWorkers bounds concurrent pushes (default 8).
	PushWorkers int

	// CommandTTL is how long a command may wait for an answer before it expires
	// (default 7 days, the APNs expiration).
	CommandTTL time.Duration
	// RepushInterval is the re-push loop's base period (default 2 min).
	RepushInterval time.Duration
	// ADESyncInterval is how often ABM device lists are synced (default 30 min).
	ADESyncInterval time.Duration
	// ChallengeTTL is the life of a SCEP challenge (default 1 h).
	ChallengeTTL time.Duration
	// ProfileCheckInterval is how often an Idle check-in triggers a ProfileList to
	// detect baseline drift (default 4 h).
	ProfileCheckInterval time.Duration
	// CAKeyBits for a newly generated MDM CA (default 3072; tests use 2048).
	CAKeyBits int
	// AgentPackage, when set, names the signed agent .pkg (from the installers) that every
	// newly enrolled Mac installs with InstallEnterpriseApplication; nil result: none.
	AgentPackage func(ctx context.Context, orgID string) (*AgentPackage, error)
	// DEPURL is the default Apple DEP/ABM API base URL (per-org overrides are stored).
	DEPURL string
	// DEPClient, when set, is the HTTP client for the ABM/DEP API (tests trust the fake).
	DEPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// AgentPackage is a downloadable agent package for InstallEnterpriseApplication.
type AgentPackage struct {
	URL     string // https
	SHA256  string // hex
	Size    int64
	Version string
}

// Service is the running Apple MDM.
type Service struct {
	cfg   Config
	db    *store.DB
	keys  Keyring
	log   *slog.Logger
	id    *Identity
	nano  storage.AllStorage
	close []func()

	pusher   *pushsvc.PushService
	handler  http.Handler
	mdmH     http.Handler
	bareCore service.CheckinAndCommandService

	touchMu        sync.Mutex
	touched        map[string]time.Time
	profileChecked map[string]time.Time
	posture        map[string]string // last posture written per UDID
	base           baselineCache
}

// NanoMDMSchema is the Postgres schema holding nanomdm's tables for a Lanyard schema
// (migration 00300 computes the same name).
func NanoMDMSchema(lanyardSchema string) string {
	s := strings.TrimSpace(strings.Split(lanyardSchema, ",")[0])
	s = strings.Trim(s, `"`)
	if s == "" || s == "public" {
		return "nanomdm"
	}
	return s + "_nanomdm"
}

// New builds the service: loads (or creates on first start) the MDM CA and server
// identity, opens nanomdm's storage for the dialect, and builds the check-in chain
// certauth → multi(lanyard listener → nanomdm core).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Keyring == nil {
		return nil, errors.New("mdm: DB and Keyring are required")
	}
	if !strings.HasPrefix(cfg.BaseURL, "https://") && !strings.HasPrefix(cfg.BaseURL, "http://") {
		return nil, fmt.Errorf("mdm: base URL %q must be an absolute URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CommandTTL <= 0 {
		cfg.CommandTTL = 7 * 24 * time.Hour
	}
	if cfg.RepushInterval <= 0 {
		cfg.RepushInterval = 2 * time.Minute
	}
	if cfg.ADESyncInterval <= 0 {
		cfg.ADESyncInterval = 30 * time.Minute
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = time.Hour
	}
	if cfg.ProfileCheckInterval <= 0 {
		cfg.ProfileCheckInterval = 4 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, db: cfg.DB, keys: cfg.Keyring, log: cfg.Logger.With("component", "mdm"), touched: map[string]time.Time{}, profileChecked: map[string]time.Time{}, posture: map[string]string{}}
	id, err := s.loadIdentity(ctx)
	if err != nil {
		return nil, err
	}
	s.id = id
	if err := s.openNanoStorage(ctx); err != nil {
		return nil, err
	}
	nlog := nanoLogger{s.log}
	core := nanomdm.New(s.nano, nanomdm.WithLogger(nlog), nanomdm.WithUserAuthenticate(nanomdm.NewUAService(s.nano, false)))
	s.bareCore = core
	// Our listener runs synchronously after the core (pitfall 4: multi's secondary
	// services are asynchronous and their errors are swallowed); multi still lets a host
	// add fire-and-forget listeners (webhooks) later.
	var svc service.CheckinAndCommandService = multi.New(nlog, &listener{CheckinAndCommandService: core, s: s})
	svc = certauth.New(svc, s.nano, certauth.WithLogger(nlog))

	s.mdmH, err = BuildMDMHandler(svc, s.id.CAPEM(), nlog)
	if err != nil {
		return nil, err
	}
	s.pusher = pushsvc.New(s.nano, &pushCertStore{s: s}, &PushProviderFactory{
		BaseURL: cfg.APNsURL, RootCAs: cfg.APNsRootCAs, Workers: cfg.PushWorkers,
	}, nlog)
	scepH, err := s.scepHandler()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/mdm/connect", s.mdmH)
	mux.Handle("/mdm/checkin", s.mdmH)
	mux.Handle("/scep", scepH)
	mux.HandleFunc("GET /enroll/{token}", s.serveEnrollProfile)
	mux.HandleFunc("POST /mdm/ade/enroll", s.serveADEProfile)
	s.handler = mux
	return s, nil
}

// BuildMDMHandler wraps a check-in/command service with Mdm-Signature extraction and
// verification against the MDM CA. Failures answer 400, never 401 (a 401 can make a Mac
// unenroll). Exported so the benchmark can serve bare nanomdm the same way.
func BuildMDMHandler(svc service.CheckinAndCommandService, caPEM []byte, nlog nanolog.Logger) (http.Handler, error) {
	ver, err := certverify.NewPoolVerifier(caPEM, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("mdm cert verifier: %w", err)
	}
	var h http.Handler = httpmdm.CheckinAndCommandHandler(svc, nlog)
	h = httpmdm.CertVerifyMiddleware(h, ver, nlog)
	h = httpmdm.CertExtractMdmSignatureMiddleware(h, httpmdm.MdmSignatureVerifierFunc(cryptoutil.VerifyMdmSignature),
		httpmdm.SigLogWithLogger(nlog))
	return never401(limitBody(h, 4<<20)), nil
}

// Handler serves /mdm/connect, /mdm/checkin, /scep, /enroll/{token} and /mdm/ade/enroll.
func (s *Service) Handler() http.Handler { return s.handler }

// Identity returns the MDM CA and server identity.
func (s *Service) Identity() *Identity { return s.id }

// Storage is nanomdm's storage (for tests and the benchmark).
func (s *Service) Storage() storage.AllStorage { return s.nano }

// Close releases nanomdm's connection pool.
func (s *Service) Close() {
	for _, c := range s.close {
		c()
	}
}

func (s *Service) openNanoStorage(ctx context.Context) error {
	switch s.db.Dialect {
	case store.SQLite:
		s.nano = newSQLiteNanoStorage(s.db.SQL)
		return nil
	case store.Postgres:
		st, closeNano, err := openPostgresNano(ctx, s.db, s.log)
		if err != nil {
			return err
		}
		s.nano = st
		s.close = append(s.close, closeNano)
		return nil
	}
	return fmt.Errorf("mdm: unsupported dialect %q", s.db.Dialect)
}

func (s *Service) loadIdentity(ctx context.Context) (*Identity, error) {
	for range 2 {
		certs, sealed, err := s.db.MDMLoadIdentity(ctx)
		if err == nil {
			keys, err := s.keys.Open(sealed, "mdm:identity")
			if err != nil {
				return nil, fmt.Errorf("mdm: open identity keys: %w", err)
			}
			return UnmarshalIdentity([]byte(certs), keys)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("mdm: load identity: %w", err)
		}
		id, err := GenerateIdentity("Lanyard", s.cfg.CAKeyBits)
		if err != nil {
			return nil, err
		}
		certPEM, keyPEM, err := MarshalIdentity(id)
		if err != nil {
			return nil, err
		}
		sealedKeys, err := s.keys.Seal(keyPEM, "mdm:identity")
		if err != nil {
			return nil, err
		}
		err = s.db.MDMSaveIdentity(ctx, string(certPEM), sealedKeys)
		if err == nil {
			s.log.Info("generated MDM CA", "subject", id.CACert.Subject.String())
			return id, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("mdm: save identity: %w", err)
		}
		// another replica won the race: load its identity
	}
	return nil, errors.New("mdm: could not load or create the identity")
}

// URLs baked into profiles.
func (s *Service) serverURL() string  { return s.cfg.BaseURL + "/mdm/connect" }
func (s *Service) checkInURL() string { return s.cfg.BaseURL + "/mdm/checkin" }
func (s *Service) scepURL() string    { return s.cfg.BaseURL + "/scep" }

// never401 rewrites a 401 from anything below into 400: a 401 on the MDM endpoint can make
// a Mac unenroll itself (pitfall 7).
func never401(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&no401Writer{ResponseWriter: w}, r)
	})
}

type no401Writer struct{ http.ResponseWriter }

func (w *no401Writer) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		code = http.StatusBadRequest
	}
	w.ResponseWriter.WriteHeader(code)
}

func limitBody(next http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

// NanoLogger adapts a slog logger to nanolib's logger interface.
func NanoLogger(l *slog.Logger) nanolog.Logger { return nanoLogger{l} }

// nanoLogger adapts slog to nanolib's logger (key-value pairs, "msg" key).
type nanoLogger struct{ l *slog.Logger }

func (n nanoLogger) Info(kv ...interface{})  { n.log(slog.LevelInfo, kv) }
func (n nanoLogger) Debug(kv ...interface{}) { n.log(slog.LevelDebug, kv) }
func (n nanoLogger) With(kv ...interface{}) nanolog.Logger {
	return nanoLogger{n.l.With(kv...)}
}

func (n nanoLogger) log(level slog.Level, kv []interface{}) {
	msg := "nanomdm"
	args := make([]any, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		switch {
		case k == "msg":
			msg = fmt.Sprint(kv[i+1])
			continue
		case k == "status" && fmt.Sprint(kv[i+1]) == "Idle" && level == slog.LevelInfo:
			// Every Mac polls Idle on each push and check-in: routine, not news.
			level = slog.LevelDebug
		}
		args = append(args, kv[i], kv[i+1])
	}
	if !n.l.Enabled(context.Background(), level) {
		return
	}
	n.l.Log(context.Background(), level, msg, args...)
}
