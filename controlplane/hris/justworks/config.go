// Package justworks is the Justworks Partner API provider for controlplane/hris:
// OAuth2 authorization code (golang.org/x/oauth2), member paging, member get,
// company and departments, single-flight token refresh per connection,
// revocation, and webhook signature checks.
//
// Comments mark what the Partner API documents and what is our guess
// ([GUESS]); every URL is configurable because sources disagree (notably on
// the authorize host).
package justworks

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Defaults from the reference notes (API.md §1, §2, §10).
const (
	DefaultBaseURL      = "https://public-api.justworks.com"
	DefaultAuthorizeURL = "https://payroll.justworks.com/oauth/authorize"
	DefaultTokenTTL     = 24 * time.Hour
	MaxPageSize         = 100
)

// Scopes Lanyard asks for: detail (includes basic), employment, company basic.
var DefaultScopes = []string{"member.detail:read", "member.employment:read", "company.basic:read"}

// Config configures a Provider. Only ClientID, ClientSecret and RedirectURL are
// required; the rest has production defaults.
type Config struct {
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Scopes       []string // default DefaultScopes

	BaseURL      string // API host; default DefaultBaseURL
	AuthorizeURL string // default DefaultAuthorizeURL
	TokenURL     string // default BaseURL + "/oauth/token"
	RevokeURL    string // default BaseURL + "/v1/oauth/revoke"

	HTTPClient *http.Client // default: 30 s timeout
	Logger     *slog.Logger

	// Retries of 429/5xx/network errors per request (attempts including the first).
	MaxAttempts   int           // default 6
	BackoffBase   time.Duration // default 250 ms, doubled per attempt, with jitter
	BackoffMax    time.Duration // default 20 s
	MaxRetryAfter time.Duration // cap on an honoured Retry-After; default 60 s
	// RefreshSkew: refresh an access token this long before it expires.
	RefreshSkew time.Duration // default 5 min
	// DefaultTokenTTL applies when a token response carries neither expires_at nor expires_in.
	DefaultTokenTTL time.Duration

	// Now and Sleep are test hooks (defaults time.Now and a context-aware sleep).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (c *Config) setDefaults() error {
	if c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("justworks: client id and secret are required")
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.AuthorizeURL == "" {
		c.AuthorizeURL = DefaultAuthorizeURL
	}
	if c.TokenURL == "" {
		c.TokenURL = c.BaseURL + "/oauth/token"
	}
	if c.RevokeURL == "" {
		c.RevokeURL = c.BaseURL + "/v1/oauth/revoke"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "justworks")
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 20 * time.Second
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 60 * time.Second
	}
	if c.RefreshSkew <= 0 {
		c.RefreshSkew = 5 * time.Minute
	}
	if c.DefaultTokenTTL <= 0 {
		c.DefaultTokenTTL = DefaultTokenTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
