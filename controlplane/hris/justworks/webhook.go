package justworks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// Webhook signature headers (first-commit webhooks spec).
const (
	SignatureHeader          = "X-Justworks-Webhook-Signature"
	SignatureTimestampHeader = "X-Justworks-Webhook-Signature-Timestamp"
	DefaultTolerance         = 5 * time.Minute
)

// Sign computes our guessed signature scheme (API.md §6): lowercase hex
// HMAC-SHA256(secret, timestamp + "." + body). The fake server signs with it.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// HMACVerifier is the default hris.WebhookVerifier. Several secrets may be
// active at once (rotation); a signature header may carry several
// comma-separated values, each optionally prefixed "v1=" or "sha256=".
type HMACVerifier struct {
	Secrets   [][]byte
	Tolerance time.Duration // default DefaultTolerance
}

var _ hris.WebhookVerifier = HMACVerifier{}

// Verify implements hris.WebhookVerifier.
func (v HMACVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	sigHdr := h.Get(SignatureHeader)
	tsHdr := strings.TrimSpace(h.Get(SignatureTimestampHeader))
	if sigHdr == "" || tsHdr == "" {
		return fmt.Errorf("missing signature headers: %w", hris.ErrBadSignature)
	}
	if len(v.Secrets) == 0 {
		return fmt.Errorf("no webhook secret configured: %w", hris.ErrBadSignature)
	}
	ok := false
	for _, part := range strings.FieldsFunc(sigHdr, func(r rune) bool { return r == ',' || r == ' ' }) {
		part = strings.TrimPrefix(strings.TrimPrefix(part, "v1="), "sha256=")
		got, err := hex.DecodeString(strings.ToLower(part))
		if err != nil {
			continue
		}
		for _, s := range v.Secrets {
			want, _ := hex.DecodeString(Sign(s, tsHdr, body))
			if hmac.Equal(got, want) {
				ok = true
			}
		}
	}
	if !ok {
		return hris.ErrBadSignature
	}
	ts, err := parseWebhookTime(tsHdr)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", tsHdr, hris.ErrBadSignature)
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if d := now.Sub(ts); d > tol || d < -tol {
		return fmt.Errorf("timestamp %s is %s from now: %w", ts.Format(time.RFC3339), d.Round(time.Second), hris.ErrStaleTimestamp)
	}
	return nil
}

// parseWebhookTime accepts Unix seconds (or milliseconds) and RFC 3339.
func parseWebhookTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > 1e12 {
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// ParseWebhook implements hris.Provider: the envelope is
// {id, event_type, event_created_at, event_delivered_at, data}; data mirrors the
// resource (shape unspecified), so the member or department id is looked up in
// a few places.
func (p *Provider) ParseWebhook(body []byte) (hris.WebhookEvent, error) {
	return ParseWebhook(body)
}

// ParseWebhook is Provider.ParseWebhook without a provider.
func ParseWebhook(body []byte) (hris.WebhookEvent, error) {
	var env struct {
		ID             string         `json:"id"`
		EventType      string         `json:"event_type"`
		EventCreatedAt string         `json:"event_created_at"`
		Data           map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return hris.WebhookEvent{}, fmt.Errorf("justworks webhook: %w", err)
	}
	if env.ID == "" || env.EventType == "" {
		return hris.WebhookEvent{}, errors.New("justworks webhook: missing id or event_type")
	}
	ev := hris.WebhookEvent{ID: env.ID, ProviderType: env.EventType}
	if t, err := time.Parse(time.RFC3339Nano, env.EventCreatedAt); err == nil {
		ev.CreatedAt = t.UTC()
	}
	nested := func(k string) map[string]any {
		m, _ := env.Data[k].(map[string]any)
		return m
	}
	switch env.EventType {
	case "member.profile.created":
		ev.Type = hris.EventMemberCreated
	case "member.profile.updated":
		ev.Type = hris.EventMemberUpdated
	case "member.employment_state.termination_scheduled":
		ev.Type = hris.EventTerminationScheduled
	case "member.employment_state.termination_canceled":
		ev.Type = hris.EventTerminationCanceled
	case "department.created", "department.updated", "department.deleted":
		ev.Type = hris.EventDepartmentChanged
		ev.DepartmentID = str(env.Data, "department_id", "id")
		if ev.DepartmentID == "" {
			ev.DepartmentID = str(nested("department"), "id")
		}
		return ev, nil
	default:
		ev.Type = hris.EventUnknown
		return ev, nil
	}
	ev.MemberID = str(env.Data, "member_id")
	if ev.MemberID == "" {
		ev.MemberID = str(nested("member"), "id")
	}
	if ev.MemberID == "" {
		ev.MemberID = str(env.Data, "id")
	}
	if ev.MemberID == "" {
		return hris.WebhookEvent{}, fmt.Errorf("justworks webhook %s: no member id in data", env.ID)
	}
	return ev, nil
}
