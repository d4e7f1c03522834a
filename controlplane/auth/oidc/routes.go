package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ConfigRequest sets the organization's SSO provider.
type ConfigRequest struct {
	// Issuer is the provider's issuer URL, exactly as its discovery document says
	// (https; http only for a loopback host).
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// ClientSecret is write-only: never returned. Omit it to keep the stored one.
	ClientSecret string `json:"client_secret,omitempty"`
	// AllowedDomains are the email domains that may sign in (at least one when enabled).
	AllowedDomains []string `json:"allowed_domains"`
	Enabled        bool     `json:"enabled"`
}

// ConfigView is the organization's SSO configuration as the API shows it.
type ConfigView struct {
	Issuer          string   `json:"issuer"`
	ClientID        string   `json:"client_id"`
	ClientSecretSet bool     `json:"client_secret_set"`
	AllowedDomains  []string `json:"allowed_domains"`
	Enabled         bool     `json:"enabled"`
	// RedirectURI is what to register at the provider.
	RedirectURI string `json:"redirect_uri"`
	// SignInURL starts single sign-on for this organization.
	SignInURL string    `json:"sign_in_url"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TestRequest asks for a discovery check; an empty issuer tests the saved one.
type TestRequest struct {
	Issuer string `json:"issuer,omitempty"`
}

// TestResult reports a discovery check against the issuer.
type TestResult struct {
	OK                    bool     `json:"ok"`
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string   `json:"token_endpoint,omitempty"`
	UserInfoEndpoint      string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI               string   `json:"jwks_uri,omitempty"`
	SigningKeys           int      `json:"signing_keys"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	// Error says why the check failed; Warnings are things that will likely break sign-in.
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings"`
}

// Routes are the SSO configuration routes (admin).
func (s *Service) Routes() []api.Route {
	const tag = "sso"
	return []api.Route{
		{Method: "GET", Path: "/api/v1/sso", Summary: "The organization's single sign-on provider (the client secret is never returned)", Tag: tag,
			Role: domain.RoleAdmin, Response: ConfigView{}, Handler: s.apiGet},
		{Method: "PUT", Path: "/api/v1/sso", Summary: "Set the single sign-on provider (OpenID Connect issuer, client, allowed email domains)", Tag: tag,
			Role: domain.RoleAdmin, Request: ConfigRequest{}, Response: ConfigView{}, Handler: s.apiPut},
		{Method: "DELETE", Path: "/api/v1/sso", Summary: "Remove single sign-on (sign-ins in progress are cancelled)", Tag: tag,
			Role: domain.RoleAdmin, Status: http.StatusNoContent, Handler: s.apiDelete},
		{Method: "POST", Path: "/api/v1/sso/test", Summary: "Check the issuer's discovery document and signing keys", Tag: tag,
			Role: domain.RoleAdmin, Request: TestRequest{}, Response: TestResult{}, Handler: s.apiTest},
	}
}

func (s *Service) view(c store.SSOConfig) ConfigView {
	return ConfigView{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecretSet: c.ClientSecretSealed != "",
		AllowedDomains: c.AllowedDomains, Enabled: c.Enabled, RedirectURI: s.RedirectURI(), SignInURL: s.SignInURL(c.OrgID),
		UpdatedBy: c.UpdatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func (s *Service) apiGet(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Store.GetSSOConfig(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("single sign-on is not configured; PUT /api/v1/sso sets it up")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, s.view(c))
}

func (s *Service) apiPut(w http.ResponseWriter, r *http.Request) error {
	var req ConfigRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	orgID := api.PrincipalFrom(r.Context()).OrgID
	c, err := s.Configure(r.Context(), orgID, req)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, s.view(c))
}

// Configure validates and stores an org's configuration (sealing the secret) and drops
// the cached discovery of the issuer. The API and the demo seed both call it.
func (s *Service) Configure(ctx context.Context, orgID string, req ConfigRequest) (store.SSOConfig, error) {
	issuer, err := validIssuer(req.Issuer)
	if err != nil {
		return store.SSOConfig{}, api.Unprocessable(err.Error()).With("field", "issuer")
	}
	clientID := strings.TrimSpace(req.ClientID)
	if clientID == "" || len(clientID) > 512 {
		return store.SSOConfig{}, api.Unprocessable("client_id is required (at most 512 characters)").With("field", "client_id")
	}
	domains, err := validDomains(req.AllowedDomains)
	if err != nil {
		return store.SSOConfig{}, api.Unprocessable(err.Error()).With("field", "allowed_domains")
	}
	if req.Enabled && len(domains) == 0 {
		// Providers like Google serve every account from one issuer: without a domain
		// list, anyone with an account there could reach the user lookup.
		return store.SSOConfig{}, api.Unprocessable("enabled single sign-on needs at least one allowed email domain").
			With("field", "allowed_domains")
	}
	if len(req.ClientSecret) > 4096 {
		return store.SSOConfig{}, api.Unprocessable("client_secret is too long").With("field", "client_secret")
	}
	c := store.SSOConfig{OrgID: orgID, Issuer: issuer, ClientID: clientID, AllowedDomains: domains, Enabled: req.Enabled}
	if req.ClientSecret != "" {
		if c.ClientSecretSealed, err = s.cfg.Keys.Seal([]byte(req.ClientSecret), store.SSOClientSecretAAD(orgID)); err != nil {
			return c, fmt.Errorf("seal sso client secret: %w", err)
		}
	} else {
		prev, err := s.cfg.Store.GetSSOConfig(ctx, orgID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return c, api.Unprocessable("client_secret is required the first time").With("field", "client_secret")
		case err != nil:
			return c, err
		}
		c.ClientSecretSealed = prev.ClientSecretSealed
	}
	if err := s.cfg.Store.PutSSOConfig(ctx, &c); err != nil {
		return c, err
	}
	s.forget(issuer)
	return c, nil
}

func (s *Service) apiDelete(w http.ResponseWriter, r *http.Request) error {
	_, err := s.cfg.Store.DeleteSSOConfig(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("single sign-on is not configured")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) apiTest(w http.ResponseWriter, r *http.Request) error {
	var req TestRequest
	if r.ContentLength != 0 {
		if err := api.Decode(r, &req); err != nil {
			return err
		}
	}
	issuer := req.Issuer
	if issuer == "" {
		c, err := s.cfg.Store.GetSSOConfig(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound("single sign-on is not configured; send an issuer to test one before saving")
		}
		if err != nil {
			return err
		}
		issuer = c.Issuer
	}
	issuer, err := validIssuer(issuer)
	if err != nil {
		return api.Unprocessable(err.Error()).With("field", "issuer")
	}
	return api.JSON(w, http.StatusOK, s.Test(r.Context(), issuer))
}

// Test runs discovery against issuer and fetches its signing keys.
func (s *Service) Test(ctx context.Context, issuer string) TestResult {
	res := TestResult{Issuer: issuer, Warnings: []string{}}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := s.discover(ctx, issuer)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var meta struct {
		JWKSURI    string   `json:"jwks_uri"`
		Scopes     []string `json:"scopes_supported"`
		Challenges []string `json:"code_challenge_methods_supported"`
		Responses  []string `json:"response_types_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		res.Error = "the discovery document is not valid JSON: " + err.Error()
		return res
	}
	res.AuthorizationEndpoint, res.TokenEndpoint, res.UserInfoEndpoint = p.Endpoint().AuthURL, p.Endpoint().TokenURL, p.UserInfoEndpoint()
	res.JWKSURI, res.ScopesSupported = meta.JWKSURI, meta.Scopes
	n, err := s.countKeys(ctx, meta.JWKSURI)
	if err != nil {
		res.Error = "signing keys: " + err.Error()
		return res
	}
	res.SigningKeys = n
	if len(meta.Responses) > 0 && !slices.Contains(meta.Responses, "code") {
		res.Warnings = append(res.Warnings, "the provider does not list response_type code")
	}
	if len(meta.Challenges) > 0 && !slices.Contains(meta.Challenges, "S256") {
		res.Warnings = append(res.Warnings, "the provider does not list PKCE S256, which Lanyard sends")
	}
	if len(meta.Scopes) > 0 && !slices.Contains(meta.Scopes, "email") {
		res.Warnings = append(res.Warnings, "the provider does not list the email scope")
	}
	if res.UserInfoEndpoint == "" {
		res.Warnings = append(res.Warnings, "no UserInfo endpoint: the email must be in the ID token")
	}
	res.OK = true
	s.forget(issuer) // the next sign-in discovers afresh
	return res
}

func (s *Service) countKeys(ctx context.Context, jwksURI string) (int, error) {
	if jwksURI == "" {
		return 0, errors.New("the discovery document has no jwks_uri")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURI, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %s", jwksURI, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return 0, fmt.Errorf("%s: not a JWK set: %w", jwksURI, err)
	}
	if len(set.Keys) == 0 {
		return 0, fmt.Errorf("%s holds no keys", jwksURI)
	}
	return len(set.Keys), nil
}

// validIssuer accepts an absolute https URL without query or fragment, or http for a
// loopback host (the fake provider of tests and the demo).
func validIssuer(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if raw == "" || err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(raw) > 512 {
		return "", errors.New("issuer must be the provider's absolute issuer URL, e.g. https://accounts.google.com")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", errors.New("issuer must use https (http only for a loopback test provider)")
		}
	default:
		return "", errors.New("issuer must use https")
	}
	return raw, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var domainRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

// validDomains lowercases, strips a leading "@", dedupes and checks each domain.
func validDomains(in []string) ([]string, error) {
	if len(in) > 50 {
		return nil, errors.New("at most 50 allowed email domains")
	}
	out := []string{}
	for _, d := range in {
		d = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(d)), "@")
		if !domainRe.MatchString(d) {
			return nil, fmt.Errorf("%q is not an email domain (e.g. example.com)", d)
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}
