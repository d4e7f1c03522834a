// Package oidc is single sign-on for the console: each organization may name one OpenID
// Connect provider (Google Workspace, Okta, Entra ID, ... found through discovery), and an
// admin signs in there instead of with a password. It is the relying party: the
// authorization code flow with PKCE S256, state and nonce kept server-side in a one-use
// row AND bound to the starting browser by a short-lived cookie, the ID token verified
// (signature, issuer, audience, expiry, nonce), the email taken from the ID token or
// UserInfo and required to be verified and in an allowed domain. Only then does it hand
// the person to a SessionStarter (the auth service), which finds the user and opens the
// session. Every refusal sends the browser to /signin?error=<code> and is audited.
//
// The configuration is managed through REST routes (Routes, role admin); the browser
// endpoints are mounted with Mount.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Browser endpoints and the cookie binding a sign-in to its browser.
const (
	StartPath    = "/auth/sso/start"
	CallbackPath = "/auth/sso/callback"
	CookieName   = "lanyard_sso"
	// SignInPath is where every failure lands, with ?error=<code>.
	SignInPath = "/signin"
)

const (
	// stateTTL bounds a sign-in from start to callback.
	stateTTL = 10 * time.Minute
	// maxInFlight caps sign-ins in flight per org: the start endpoint is unauthenticated.
	maxInFlight = 1000
	// providerTTL is how long a discovery document is reused.
	providerTTL = 15 * time.Minute
)

// Scopes the relying party asks for.
var Scopes = []string{gooidc.ScopeOpenID, "email", "profile"}

// SessionStarter opens a console session for a person the provider vouched for, writes
// the response (cookie and redirect) and returns nil; on error it must write nothing
// (the caller redirects to the sign-in page). The server wires it to auth.Service.SignInOIDC.
// authTime is when the provider last authenticated the person (the ID token's auth_time;
// zero when it sent none): a session's proof for revealing secrets is that time, not the
// time of a redirect the provider may have answered from its own long-lived session.
type SessionStarter func(ctx context.Context, w http.ResponseWriter, r *http.Request, v Vouched) error

// Vouched is who the provider vouched for, and where the browser goes afterwards.
type Vouched struct {
	OrgID, Issuer, Subject, Email string
	AuthTime                      time.Time
	// Next is a local path (checked by localpath.Safe when the sign-in started and
	// again here) to return to; "/" for home.
	Next string
}

// Store is the persistence SSO needs; *store.DB implements it.
type Store interface {
	GetSSOConfig(ctx context.Context, orgID string) (store.SSOConfig, error)
	PutSSOConfig(ctx context.Context, c *store.SSOConfig) error
	DeleteSSOConfig(ctx context.Context, orgID string) (store.SSOConfig, error)
	InsertSSOState(ctx context.Context, s store.SSOState, now time.Time, max int) error
	ConsumeSSOState(ctx context.Context, stateHash string) (store.SSOState, error)
	RecordSSOFailure(ctx context.Context, orgID string, f store.SSOFailure) error
}

// Sealer encrypts secrets at rest; *secrets.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Config configures the service.
type Config struct {
	Store Store
	Keys  Sealer
	// PublicURL is how browsers reach Lanyard; the redirect URI is PublicURL+CallbackPath
	// and cookies are Secure when it is https.
	PublicURL string
	Start     SessionStarter
	// HTTPClient talks to providers (default: 10 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (default domain.Now).
	Now func() time.Time
}

// Service is the relying party.
type Service struct {
	cfg    Config
	log    *slog.Logger
	secure bool

	mu        sync.Mutex
	providers map[string]cachedProvider
}

type cachedProvider struct {
	p  *gooidc.Provider
	at time.Time
}

// New builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Start == nil {
		return nil, errors.New("oidc: Store, Keys and Start are required")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if !strings.HasPrefix(cfg.PublicURL, "http://") && !strings.HasPrefix(cfg.PublicURL, "https://") {
		return nil, fmt.Errorf("oidc: public URL %q must be http(s)", cfg.PublicURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = domain.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("component", "sso"), secure: strings.HasPrefix(cfg.PublicURL, "https://"),
		providers: map[string]cachedProvider{}}, nil
}

// RedirectURI is the callback URL to register at the provider.
func (s *Service) RedirectURI() string { return s.cfg.PublicURL + CallbackPath }

// SignInURL is the link that starts SSO for an org.
func (s *Service) SignInURL(orgID string) string {
	return s.cfg.PublicURL + StartPath + "?org=" + orgID
}

// Mount adds the browser endpoints.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+StartPath, s.start)
	mux.HandleFunc("GET "+CallbackPath, s.callback)
}

// provider returns the discovered provider for issuer, reusing a recent discovery.
func (s *Service) provider(ctx context.Context, issuer string) (*gooidc.Provider, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	c, ok := s.providers[issuer]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < providerTTL && now.Sub(c.at) >= 0 {
		return c.p, nil
	}
	p, err := s.discover(ctx, issuer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.providers[issuer] = cachedProvider{p: p, at: now}
	s.mu.Unlock()
	return p, nil
}

func (s *Service) discover(ctx context.Context, issuer string) (*gooidc.Provider, error) {
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, s.cfg.HTTPClient), issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", issuer, err)
	}
	return p, nil
}

func (s *Service) forget(issuer string) {
	s.mu.Lock()
	delete(s.providers, issuer)
	s.mu.Unlock()
}

// oauthConfig is the OAuth 2 client for an org's configuration. The client authentication
// follows what discovery announces (basic unless only post is offered), so the token
// endpoint sees one attempt per code instead of oauth2's guess-and-retry.
func (s *Service) oauthConfig(p *gooidc.Provider, c store.SSOConfig, secret string) *oauth2.Config {
	ep := p.Endpoint()
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if err := p.Claims(&meta); err == nil && !slices.Contains(meta.Methods, "client_secret_basic") &&
		slices.Contains(meta.Methods, "client_secret_post") {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Endpoint: ep, RedirectURL: s.RedirectURI(), Scopes: Scopes}
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashString(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Enabled reports whether orgID has SSO switched on (the console shows "Sign in with SSO"
// only then).
func (s *Service) Enabled(ctx context.Context, orgID string) bool {
	c, err := s.cfg.Store.GetSSOConfig(ctx, orgID)
	return err == nil && c.Enabled
}
