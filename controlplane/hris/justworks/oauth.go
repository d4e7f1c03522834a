package justworks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// Provider implements hris.Provider for Justworks.
type Provider struct {
	cfg   Config
	oauth *oauth2.Config

	mu      sync.Mutex
	sources map[string]*tokenSource // per connection: refreshes are single-flight per connection
	// unknownTypes: member type values already logged as unknown.
	unknownTypes map[string]bool
}

var _ hris.Provider = (*Provider)(nil)

// New returns a Justworks provider.
func New(cfg Config) (*Provider, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Provider{
		cfg: cfg,
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       cfg.Scopes,
			Endpoint: oauth2.Endpoint{
				AuthURL:   cfg.AuthorizeURL,
				TokenURL:  cfg.TokenURL,
				AuthStyle: oauth2.AuthStyleInParams, // the token spec puts client_id/secret in the form
			},
		},
		sources:      map[string]*tokenSource{},
		unknownTypes: map[string]bool{},
	}, nil
}

// Name implements hris.Provider.
func (p *Provider) Name() string { return "justworks" }

// AuthCodeURL implements hris.Provider.
func (p *Provider) AuthCodeURL(state string) string { return p.oauth.AuthCodeURL(state) }

func (p *Provider) oauthCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient)
}

// Exchange implements hris.Provider.
func (p *Provider) Exchange(ctx context.Context, code string) (hris.Grant, error) {
	tok, err := p.oauth.Exchange(p.oauthCtx(ctx), code)
	if err != nil {
		return hris.Grant{}, p.tokenError("exchange code", err)
	}
	return p.grantFrom(tok, nil), nil
}

// grantFrom converts a token response. Justworks sends expires_at (date-time)
// per the spec; expires_in is also accepted; neither means DefaultTokenTTL.
func (p *Provider) grantFrom(tok *oauth2.Token, prev *hris.Grant) hris.Grant {
	g := hris.Grant{
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		TokenType:    tok.TokenType,
		Expiry:       tok.Expiry,
	}
	if v, ok := tok.Extra("expires_at").(string); ok && v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			g.Expiry = t
		}
	} else if v, ok := tok.Extra("expires_at").(float64); ok && v > 0 {
		g.Expiry = time.Unix(int64(v), 0)
	}
	if g.Expiry.IsZero() {
		g.Expiry = p.cfg.Now().Add(p.cfg.DefaultTokenTTL)
	}
	g.Expiry = g.Expiry.UTC()
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		g.Scopes = hris.ParseScopes(s)
	} else if prev != nil {
		g.Scopes = prev.Scopes
	}
	if g.RefreshToken == "" && prev != nil {
		g.RefreshToken = prev.RefreshToken
	}
	return g
}

// tokenError maps an oauth2 error: invalid_grant (and friends) mean the grant is
// gone and an admin must connect again.
func (p *Provider) tokenError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "invalid_grant", "unauthorized_client", "invalid_client", "access_denied":
			return fmt.Errorf("justworks: %s: %s: %w", op, re.ErrorCode, hris.ErrReauthorize)
		}
		if re.Response != nil && (re.Response.StatusCode == http.StatusTooManyRequests || re.Response.StatusCode >= 500) {
			return fmt.Errorf("justworks: %s: status %d: %w", op, re.Response.StatusCode, hris.ErrUnavailable)
		}
		if re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("justworks: %s: status 401: %w", op, hris.ErrReauthorize)
		}
	}
	return fmt.Errorf("justworks: %s: %w", op, err)
}

// Revoke implements hris.Provider: revokes the refresh token (which ends the
// grant) and the access token.
func (p *Provider) Revoke(ctx context.Context, g hris.Grant) error {
	var errs []error
	if g.RefreshToken != "" {
		errs = append(errs, p.revoke(ctx, g.RefreshToken, "refresh_token"))
	}
	if g.AccessToken != "" {
		errs = append(errs, p.revoke(ctx, g.AccessToken, "access_token"))
	}
	return errors.Join(errs...)
}

func (p *Provider) revoke(ctx context.Context, token, hint string) error {
	form := url.Values{
		"client_id":       {p.cfg.ClientID},
		"client_secret":   {p.cfg.ClientSecret},
		"token":           {token},
		"token_type_hint": {hint},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.RevokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("justworks: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("justworks: revoke %s: %w", hint, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("justworks: revoke %s: status %d", hint, resp.StatusCode)
	}
	return nil
}

// Forget drops the cached token state of a connection (after disconnect).
func (p *Provider) Forget(connID string) {
	p.mu.Lock()
	delete(p.sources, connID)
	p.mu.Unlock()
}

func (p *Provider) source(connID string, ts hris.TokenStore) *tokenSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sources[connID]
	if s == nil {
		s = &tokenSource{p: p, store: ts, lock: make(chan struct{}, 1)}
		p.sources[connID] = s
	} else {
		s.store = ts
	}
	return s
}

// tokenSource holds one connection's grant. Every refresh happens with lock
// held, so the poller and webhook workers of one process refresh once
// (single-flight); a refresh another replica did is picked up from the store.
type tokenSource struct {
	p     *Provider
	store hris.TokenStore
	lock  chan struct{}
	cur   *hris.Grant
}

func (s *tokenSource) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *tokenSource) release() { <-s.lock }

func (s *tokenSource) fresh(g *hris.Grant) bool {
	return g != nil && g.AccessToken != "" && s.p.cfg.Now().Add(s.p.cfg.RefreshSkew).Before(g.Expiry)
}

// token returns a usable grant, refreshing ahead of expiry.
func (s *tokenSource) token(ctx context.Context) (hris.Grant, error) {
	if err := s.acquire(ctx); err != nil {
		return hris.Grant{}, err
	}
	defer s.release()
	if s.cur == nil {
		g, err := s.store.Load(ctx)
		if err != nil {
			return hris.Grant{}, fmt.Errorf("justworks: load grant: %w", err)
		}
		s.cur = &g
	}
	if s.fresh(s.cur) {
		return *s.cur, nil
	}
	return s.refreshLocked(ctx)
}

// invalidate is called after a 401 with the access token that failed; only the
// first caller refreshes, the others get the new token.
func (s *tokenSource) invalidate(ctx context.Context, failed string) (hris.Grant, error) {
	if err := s.acquire(ctx); err != nil {
		return hris.Grant{}, err
	}
	defer s.release()
	if s.cur != nil && s.cur.AccessToken != failed && s.fresh(s.cur) {
		return *s.cur, nil
	}
	if g, err := s.store.Load(ctx); err == nil && g.AccessToken != failed && s.fresh(&g) {
		s.cur = &g
		return g, nil
	}
	return s.refreshLocked(ctx)
}

func (s *tokenSource) refreshLocked(ctx context.Context) (hris.Grant, error) {
	g, err := s.refreshWith(ctx, *s.cur)
	// Another replica may have rotated the refresh token a moment ago and not
	// saved the new one yet: look in the store a few times before giving up on
	// the grant (giving up ends the connection).
	for i := 0; errors.Is(err, hris.ErrReauthorize) && i < 4; i++ {
		stored, lerr := s.store.Load(ctx)
		if lerr == nil && stored.RefreshToken != "" && stored.RefreshToken != s.cur.RefreshToken {
			s.cur = &stored
			if s.fresh(&stored) {
				return stored, nil
			}
			g, err = s.refreshWith(ctx, stored)
			continue
		}
		if serr := s.p.cfg.Sleep(ctx, time.Duration(i+1)*250*time.Millisecond); serr != nil {
			return hris.Grant{}, serr
		}
	}
	if err != nil {
		return hris.Grant{}, err
	}
	if err := s.store.Save(ctx, g); err != nil {
		// The provider already rotated the refresh token; keep it in memory so
		// this process keeps working, and report the failure.
		s.cur = &g
		return hris.Grant{}, fmt.Errorf("justworks: save refreshed grant: %w", err)
	}
	s.cur = &g
	return g, nil
}

func (s *tokenSource) refreshWith(ctx context.Context, prev hris.Grant) (hris.Grant, error) {
	if prev.RefreshToken == "" {
		return hris.Grant{}, fmt.Errorf("justworks: no refresh token: %w", hris.ErrReauthorize)
	}
	cfg := s.p.cfg
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			if err := cfg.Sleep(ctx, backoff(cfg, attempt)); err != nil {
				return hris.Grant{}, err
			}
		}
		// An expired token makes oauth2 refresh at once.
		src := s.p.oauth.TokenSource(s.p.oauthCtx(ctx), &oauth2.Token{
			RefreshToken: prev.RefreshToken,
			Expiry:       time.Unix(1, 0),
		})
		tok, err := src.Token()
		if err == nil {
			cfg.Logger.DebugContext(ctx, "refreshed access token")
			return s.p.grantFrom(tok, &prev), nil
		}
		lastErr = s.p.tokenError("refresh token", err)
		if !errors.Is(lastErr, hris.ErrUnavailable) {
			return hris.Grant{}, lastErr
		}
	}
	return hris.Grant{}, lastErr
}

// retryAfter parses Retry-After (seconds or HTTP date).
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
