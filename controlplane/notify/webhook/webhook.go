// Package webhook sends Lanyard's events to a receiver's URL as signed JSON, in the
// Standard Webhooks shape (https://www.standardwebhooks.com): headers webhook-id,
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>",
// several space-separated while a rotated secret is still honoured). Receivers check a
// payload with Verify, which also refuses stale timestamps, so a captured payload
// replayed later is detected.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names (Standard Webhooks).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a signing secret; the rest is base64 of the key bytes.
const SecretPrefix = "whsec_"

// Payload is the JSON body of every webhook.
type Payload struct {
	// ID is the delivery's id, also sent as webhook-id: a receiver deduplicates on it
	// (a retry after a lost answer carries the same id).
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	OrgID   string          `json:"org_id"`
	At      time.Time       `json:"at"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

// NewSecret makes a random signing secret ("whsec_" + base64 of 32 bytes).
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// key returns the HMAC key of a secret: the base64 after the prefix, or the raw bytes of a
// secret without it (receivers that chose their own).
func key(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, SecretPrefix); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return b
		}
	}
	return []byte(secret)
}

func sign(secret, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key(secret))
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the webhook-signature header value: one "v1,<sig>" per secret,
// space-separated (the new secret first, then the previous one during a rotation).
func Sign(secrets []string, id string, ts time.Time, body []byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s != "" {
			sigs = append(sigs, sign(s, id, ts.Unix(), body))
		}
	}
	return strings.Join(sigs, " ")
}

// Verification errors.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrStale          = errors.New("webhook: timestamp outside the tolerance (a replayed or delayed payload)")
	ErrBadSignature   = errors.New("webhook: no signature matches")
)

// DefaultTolerance is how far a timestamp may be from now (either way) before Verify
// refuses it.
const DefaultTolerance = 5 * time.Minute

// Verify checks a received webhook: the timestamp within tolerance of now (else
// ErrStale) and at least one v1 signature made with one of secrets (else
// ErrBadSignature). A receiver that rotates lists both its secrets while switching over.
func Verify(secrets []string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a number", ErrStale, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		want := sign(s, id, ts, body)
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// PostError is a failed post: the receiver's status and words, and whether a retry can
// help (Permanent false: 408, 429, 5xx, a network error or timeout).
type PostError struct {
	Status     int
	Body       string
	RetryAfter time.Duration
	Permanent  bool
	Err        error
}

func (e *PostError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("webhook receiver answered %d: %s", e.Status, e.Body)
	}
	return "webhook post: " + e.Err.Error()
}

func (e *PostError) Unwrap() error { return e.Err }

// Client posts webhooks.
type Client struct {
	hc  *http.Client
	now func() time.Time
}

// New returns a client; hc nil means a client with a 15 s timeout. Redirects are not
// followed: a receiver that moved must be reconfigured, not chased.
func New(hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{hc: &c, now: time.Now}
}

// Result is a receiver's answer to a successful post.
type Result struct {
	Status int
	Body   string
}

// Post sends p to url signed with secrets (current first). The body is p as JSON.
func (c *Client) Post(ctx context.Context, url string, secrets []string, p Payload) (Result, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return Result{}, &PostError{Permanent: true, Err: fmt.Errorf("encode payload: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, &PostError{Permanent: true, Err: fmt.Errorf("bad receiver URL: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Lanyard-Webhooks/1")
	req.Header.Set(HeaderID, p.ID)
	ts := c.now()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secrets, p.ID, ts, body))
	resp, err := c.hc.Do(req)
	if err != nil {
		return Result{}, &PostError{Err: err}
	}
	defer resp.Body.Close()
	words, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	text := strings.TrimSpace(string(words))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{Status: resp.StatusCode, Body: text}, nil
	}
	pe := &PostError{Status: resp.StatusCode, Body: text, RetryAfter: RetryAfter(resp.Header.Get("Retry-After"), c.now())}
	pe.Permanent = !(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500)
	return Result{Status: resp.StatusCode, Body: text}, pe
}

// RetryAfter parses a Retry-After header (seconds or an HTTP date); 0 when absent or bad.
func RetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
