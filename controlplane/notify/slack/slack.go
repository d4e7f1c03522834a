// Package slack posts notifications to Slack incoming webhooks
// (https://api.slack.com/messaging/webhooks): Block Kit blocks with a plain-text
// fallback, and errors that say whether a retry can help.
package slack

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
	"unicode/utf8"
)

// Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
const (
	MaxBlocks      = 50
	MaxSectionText = 3000
	MaxHeaderText  = 150
	MaxFields      = 10
	MaxFieldText   = 2000
)

// Block is one Block Kit object.
type Block = map[string]any

// Message is one post: Text is the notification fallback (and what screen readers and
// mobile previews show), Blocks the layout.
type Message struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks,omitempty"`
}

// PostError is a failed post.
type PostError struct {
	Status int    // HTTP status; 0 when there was no answer
	Body   string // Slack's error string ("invalid_payload", "no_service", ...), trimmed
	// RetryAfter is Slack's Retry-After on a 429.
	RetryAfter time.Duration
	// Permanent: the webhook is gone or refuses this payload (400, 403, 404, 410); a
	// retry cannot help. Otherwise (429, 5xx, no answer) it may.
	Permanent bool
	Err       error
}

func (e *PostError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("slack: no answer: %v", e.Err)
	case e.Body != "":
		return fmt.Sprintf("slack: HTTP %d: %s", e.Status, e.Body)
	}
	return fmt.Sprintf("slack: HTTP %d", e.Status)
}

func (e *PostError) Unwrap() error { return e.Err }

// Client posts to incoming webhooks.
type Client struct{ hc *http.Client }

// New returns a client; nil hc means a client with a 15-second timeout.
func New(hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &Client{hc: hc}
}

// Post sends m to webhookURL. The URL is a credential (anyone holding it can post): it
// never appears in an error.
func (c *Client) Post(ctx context.Context, webhookURL string, m Message) error {
	if strings.TrimSpace(m.Text) == "" && len(m.Blocks) == 0 {
		return &PostError{Permanent: true, Body: "no_text", Err: errors.New("a message needs text or blocks")}
	}
	m = Fit(m)
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // mrkdwn's own &amp; &lt; &gt; stay readable on the wire
	if err := enc.Encode(m); err != nil {
		return &PostError{Permanent: true, Err: fmt.Errorf("encode: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, &body)
	if err != nil {
		return &PostError{Permanent: true, Err: errors.New("the webhook URL is not a valid URL")}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		return &PostError{Err: redact(err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	pe := &PostError{Status: resp.StatusCode, Body: clip(text, 200)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		pe.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode >= 500:
	default:
		pe.Permanent = true
	}
	return pe
}

// redact drops the URL from a transport error (*url.Error carries it, and the webhook URL
// is a credential).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// Fit trims m to Block Kit's limits (text truncated with an ellipsis, at most MaxBlocks
// blocks) so a long list never makes Slack refuse the whole notification.
func Fit(m Message) Message {
	if len(m.Blocks) > MaxBlocks {
		m.Blocks = append(m.Blocks[:MaxBlocks-1:MaxBlocks-1], Context(fmt.Sprintf("… and %d more", len(m.Blocks)-MaxBlocks+1)))
	}
	for _, b := range m.Blocks {
		t, _ := b["text"].(map[string]any)
		if t == nil {
			continue
		}
		s, _ := t["text"].(string)
		limit := MaxSectionText
		if b["type"] == "header" {
			limit = MaxHeaderText
		}
		t["text"] = clip(s, limit)
	}
	return m
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Escape makes s safe inside mrkdwn: &, < and > are control characters there.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Header is a header block (plain text).
func Header(text string) Block {
	return Block{"type": "header", "text": map[string]any{"type": "plain_text", "text": clip(text, MaxHeaderText)}}
}

// Section is a mrkdwn section; text must already be escaped.
func Section(mrkdwn string) Block {
	return Block{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": clip(mrkdwn, MaxSectionText)}}
}

// Context is a small grey line (mrkdwn, escaped by the caller).
func Context(mrkdwn string) Block {
	return Block{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": clip(mrkdwn, MaxSectionText)}}}
}

// Button is an actions block with one link button back to the item.
func Button(label, url string) Block {
	return Block{"type": "actions", "elements": []any{map[string]any{"type": "button",
		"text": map[string]any{"type": "plain_text", "text": clip(label, 75)}, "url": url}}}
}

// SectionBlocks is the usual notification: a header, the body, the fields as label:
// value pairs (in the order given by keys), and a button back to the item.
func SectionBlocks(title, body, linkText, linkURL string, keys []string, fields map[string]string) []Block {
	blocks := []Block{Header(title)}
	if body != "" {
		blocks = append(blocks, Section(Escape(body)))
	}
	var fs []any
	for _, k := range keys {
		v, ok := fields[k]
		if !ok || v == "" || len(fs) == MaxFields {
			continue
		}
		fs = append(fs, map[string]any{"type": "mrkdwn", "text": clip("*"+Escape(k)+"*\n"+Escape(v), MaxFieldText)})
	}
	if len(fs) > 0 {
		blocks = append(blocks, Block{"type": "section", "fields": fs})
	}
	if linkURL != "" {
		blocks = append(blocks, Button(linkText, linkURL))
	}
	return blocks
}
