// Package rest is the JSON-over-HTTP plumbing the native app connectors share:
// one request, the provider's error body turned into an *apps.TargetError, and
// Retry-After read the way RFC 9110 §10.2.3 allows (seconds or an HTTP date).
// Each connector supplies only what differs: how it authenticates and how its
// provider spells an error.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

// ErrorInfo is what a provider's error body says.
type ErrorInfo struct {
	Code   string
	Detail string
	// Kind overrides apps.ClassifyStatus when the provider's code says more than
	// the status (Google's 403 rateLimitExceeded, GitHub's 403 with no quota left).
	Kind error
	// RetryAfter overrides the Retry-After header (GitHub's x-ratelimit-reset).
	RetryAfter time.Duration
}

// Client sends JSON requests to one provider.
type Client struct {
	App  string
	Base string // no trailing slash
	HC   *http.Client
	// Header is added to every request (API version, Accept).
	Header http.Header
	// Auth sets credentials on a request; it may fail (a token fetch).
	Auth func(ctx context.Context, r *http.Request) error
	// ParseError reads a non-2xx answer. nil: the status alone decides.
	ParseError func(status int, h http.Header, body []byte) ErrorInfo
	// ContentType of request bodies; default application/json.
	ContentType string
}

// Response is a successful answer.
type Response struct {
	Status int
	Header http.Header
}

// Do sends method path (relative to Base, or absolute when it starts with
// http: a provider's next-page link) with body encoded as JSON, and decodes a
// 2xx answer into out when out is non-nil and the body is not empty. op names
// the operation in errors ("provision", "suspend").
func (c *Client) Do(ctx context.Context, op, method, path string, body, out any, extra ...string) (Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Response{}, fmt.Errorf("%s: %s: encode %s %s: %w", c.App, op, method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = c.Base + path
	} else if !sameOrigin(path, c.Base) {
		// A next-page link elsewhere would carry our credentials there.
		return Response{}, &apps.TargetError{App: c.App, Op: op, Kind: apps.ErrRejected,
			Detail: "refusing to follow a link off the API's origin: " + path}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %s: %s %s: %w", c.App, op, method, path, err)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	if body != nil {
		ct := c.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.Auth != nil {
		if err := c.Auth(ctx, req); err != nil {
			return Response{}, c.authError(op, err)
		}
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return Response{}, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Response{}, &apps.TargetError{App: c.App, Op: op, Status: resp.StatusCode,
			Kind: apps.ErrUnavailable, Err: fmt.Errorf("read body: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Response{}, c.statusError(op, resp, raw)
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return Response{}, &apps.TargetError{App: c.App, Op: op, Status: resp.StatusCode,
				Kind: apps.ErrRejected, Err: fmt.Errorf("decode %s %s: %w", method, path, err)}
		}
	}
	return Response{Status: resp.StatusCode, Header: resp.Header}, nil
}

func (c *Client) statusError(op string, resp *http.Response, raw []byte) *apps.TargetError {
	info := ErrorInfo{}
	if c.ParseError != nil {
		info = c.ParseError(resp.StatusCode, resp.Header, raw)
	}
	kind := info.Kind
	if kind == nil {
		kind = apps.ClassifyStatus(resp.StatusCode)
	}
	if kind == nil { // a 1xx/3xx we did not follow: nothing a retry fixes
		kind = apps.ErrRejected
	}
	retry := info.RetryAfter
	if retry == 0 {
		retry = RetryAfter(resp.Header, time.Now())
	}
	return &apps.TargetError{
		App: c.App, Op: op, Status: resp.StatusCode,
		Code: info.Code, Detail: trim(info.Detail),
		RetryAfter: retry, Kind: kind,
	}
}

// transportError is a request that got no answer: a transient failure unless
// the caller's context ended it.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return &apps.TargetError{App: c.App, Op: op, Err: ctx.Err()}
	}
	return &apps.TargetError{App: c.App, Op: op, Kind: apps.ErrUnavailable, Err: err}
}

// authError is a failed credential exchange (the OAuth token endpoint): a
// refused client is ErrAuth, an unreachable endpoint transient.
func (c *Client) authError(op string, err error) error {
	var te *apps.TargetError
	if errors.As(err, &te) {
		return err
	}
	return &apps.TargetError{App: c.App, Op: op, Kind: apps.ErrUnavailable, Err: err}
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// RetryAfter reads Retry-After (delay-seconds or an HTTP-date relative to
// now); zero when absent or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// trim keeps a provider's message readable in a step result: one line, bounded.
func trim(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// Bearer is an Auth that sends a static token (GitHub, Slack SCIM).
func Bearer(token string) func(context.Context, *http.Request) error {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// DefaultHTTPClient is the client a connector uses when the Spec gives none.
func DefaultHTTPClient(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: 20 * time.Second}
}

// NextLink reads rel="next" from RFC 8288 Link headers (one header with
// comma-separated links, or several headers as Okta sends them); "" when
// there is no next page.
func NextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, part := range strings.Split(v, ",") {
			u, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if ok && strings.Contains(params, `rel="next"`) {
				return strings.Trim(strings.TrimSpace(u), "<>")
			}
		}
	}
	return ""
}
