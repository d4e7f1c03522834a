// Package fakeoidc is a faithful fake OpenID Provider on real HTTP (loopback) for tests and
// the demo: discovery, JWKS (an RS256 key generated at start), the authorization code flow
// with PKCE S256 required, a login page listing its users, a token endpoint taking
// client_secret_basic and client_secret_post, and UserInfo. It refuses what the specs
// (OpenID Connect Core 1.0, RFC 6749, RFC 7636) say a provider must refuse, with the error
// codes they name. It is our own code so that its behaviour is what we read in the specs,
// not what another library happens to do.
//
// Tamper makes it misbehave on purpose (wrong issuer or audience, foreign key, stale
// token) so a relying party's checks can be proven against it. Everything is in memory;
// a Server is safe for concurrent use.
package fakeoidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// User is an account at the provider.
type User struct {
	// Subject is the stable "sub" claim; derived from the email when empty.
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Password      string
}

// Client is a registered relying party.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are compared exactly (no prefix, no normalization), as OIDC requires.
	RedirectURIs []string
}

// Tamper makes the provider misbehave. The zero value is a faithful provider.
type Tamper struct {
	Issuer     string        // "iss" of ID tokens instead of the provider's issuer
	Audience   string        // "aud" of ID tokens instead of the client id
	Nonce      string        // "nonce" of ID tokens instead of the request's nonce
	IDTokenTTL time.Duration // ID token lifetime; negative issues already expired tokens
	ForeignKey bool          // sign ID tokens with a key that is not in the JWKS
	// EmailOnlyInUserInfo leaves email claims out of the ID token, as some providers do.
	EmailOnlyInUserInfo bool
}

// Config configures a provider.
type Config struct {
	// Issuer is the provider's base URL, exactly as discovery announces it; Start fills it.
	Issuer  string
	Users   []User
	Clients []Client
	// CodeTTL bounds an authorization code's life (default 60 s).
	CodeTTL time.Duration
	// AccessTokenTTL bounds an access token's life (default 1 h).
	AccessTokenTTL time.Duration
	// IDTokenTTL bounds an ID token's life (default 1 h).
	IDTokenTTL time.Duration
	// Now is the clock (default time.Now); Advance moves it forward.
	Now    func() time.Time
	Tamper Tamper
	Logger *slog.Logger
	// SigningKey signs ID tokens (default: a fresh RSA-2048 key); tests share one to save
	// the key generation.
	SigningKey *rsa.PrivateKey
}

// Server is a running fake provider. It is an http.Handler, so it also works behind
// httptest.NewUnstartedServer once Config.Issuer names that server's URL.
type Server struct {
	cfg Config
	log *slog.Logger
	key *rsa.PrivateKey
	kid string
	mux *http.ServeMux
	srv *http.Server

	mu       sync.Mutex
	offset   time.Duration
	tamper   Tamper
	requests map[string]*authRequest
	codes    map[string]*authCode
	access   map[string]*accessToken
	stats    Stats
	foreign  *rsa.PrivateKey // made on first use by Tamper.ForeignKey
}

// Stats counts what the provider did, for tests.
type Stats struct {
	Authorizations int // codes issued
	Tokens         int // successful code redemptions
	UserInfo       int // successful UserInfo calls
}

// authRequest is a validated /authorize request waiting for the user to sign in.
type authRequest struct {
	clientID, redirectURI, scope, state, nonce, challenge, loginHint string
	expires                                                          time.Time
}

type authCode struct {
	authRequest
	user    User
	expires time.Time
	used    bool
	issued  []string // access tokens minted from this code (revoked on replay)
}

type accessToken struct {
	user     User
	clientID string
	scope    string
	expires  time.Time
	revoked  bool
}

// New builds a provider for cfg.Issuer (an absolute http(s) URL without a trailing slash).
func New(cfg Config) (*Server, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(cfg.Issuer, "/") ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("fakeoidc: issuer %q must be an absolute http(s) URL without query, fragment or trailing slash", cfg.Issuer)
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 60 * time.Second
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.IDTokenTTL <= 0 {
		cfg.IDTokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for i := range cfg.Users {
		u := &cfg.Users[i]
		u.Email = strings.TrimSpace(u.Email)
		if u.Email == "" {
			return nil, errors.New("fakeoidc: every user needs an email")
		}
		if seen[strings.ToLower(u.Email)] {
			return nil, fmt.Errorf("fakeoidc: user %s listed twice", u.Email)
		}
		seen[strings.ToLower(u.Email)] = true
		if u.Subject == "" {
			sum := sha256.Sum256([]byte(strings.ToLower(u.Email)))
			u.Subject = "u" + hex.EncodeToString(sum[:10])
		}
	}
	for _, c := range cfg.Clients {
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("fakeoidc: client %q needs an id, a secret and at least one redirect URI", c.ID)
		}
	}
	key := cfg.SigningKey
	if key == nil {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("fakeoidc: generate signing key: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, key: key, kid: keyID(&key.PublicKey), tamper: cfg.Tamper,
		requests: map[string]*authRequest{}, codes: map[string]*authCode{}, access: map[string]*accessToken{}}
	// An issuer with a path (like Okta's https://example.okta.com/oauth2/default) serves
	// everything under that path; discovery is the issuer plus /.well-known/... (OIDC
	// Discovery 4).
	p := u.Path
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.discovery)
	s.mux.HandleFunc("GET "+p+"/jwks", s.jwks)
	s.mux.HandleFunc("GET "+p+"/authorize", s.authorize)
	s.mux.HandleFunc("POST "+p+"/authorize", s.authorize)
	s.mux.HandleFunc("POST "+p+"/login", s.login)
	s.mux.HandleFunc(p+"/token", s.token)
	s.mux.HandleFunc("GET "+p+"/userinfo", s.userinfo)
	s.mux.HandleFunc("POST "+p+"/userinfo", s.userinfo)
	return s, nil
}

// Start listens on addr ("" means 127.0.0.1:0) and serves until ctx ends or Close. When
// cfg.Issuer is empty it becomes http://<listen address>.
func Start(ctx context.Context, addr string, cfg Config) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakeoidc: listen on %s: %w", addr, err)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + ln.Addr().String()
	}
	s, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("fake OIDC provider stopped", "component", "fakeoidc", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return s, nil
}

// Close stops a provider made by Start.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// ServeHTTP serves the provider's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Issuer is the provider's issuer (its base URL).
func (s *Server) Issuer() string { return s.cfg.Issuer }

// Users returns the configured users (with derived subjects filled in).
func (s *Server) Users() []User { return append([]User(nil), s.cfg.Users...) }

// SetTamper changes how the provider misbehaves from now on.
func (s *Server) SetTamper(t Tamper) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = t
}

// Advance moves the provider's clock forward (code and token expiry).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// nowLocked is the fake clock; call it with s.mu held.
func (s *Server) nowLocked() time.Time { return s.cfg.Now().Add(s.offset) }

func (s *Server) client(id string) (Client, bool) {
	for _, c := range s.cfg.Clients {
		if c.ID == id {
			return c, true
		}
	}
	return Client{}, false
}

func (s *Server) user(email string) (User, bool) {
	for _, u := range s.cfg.Users {
		if strings.EqualFold(u.Email, email) {
			return u, true
		}
	}
	return User{}, false
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	iss := s.cfg.Issuer
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"userinfo_endpoint":                              iss + "/userinfo",
		"jwks_uri":                                       iss + "/jwks",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"scopes_supported":                               []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []string{"S256"},
		"claims_supported":                               []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "email", "email_verified", "name"},
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{jwk(&s.key.PublicKey, s.kid)}})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
