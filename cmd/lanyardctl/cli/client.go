package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Settings is what `lanyardctl login` saves (0600: it holds a token).
type Settings struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func settingsPath() (string, error) {
	if p := os.Getenv("LANYARDCTL_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config directory: %w", err)
	}
	return filepath.Join(dir, "lanyard", "lanyardctl.json"), nil
}

func loadSettings() (Settings, error) {
	var s Settings
	if u, t := os.Getenv("LANYARD_URL"), os.Getenv("LANYARD_TOKEN"); u != "" && t != "" {
		return Settings{URL: u, Token: t}, nil
	}
	p, err := settingsPath()
	if err != nil {
		return s, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return s, errors.New("not logged in: run `lanyardctl login --url URL --token TOKEN` (or set LANYARD_URL and LANYARD_TOKEN)")
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read %s: %w", p, err)
	}
	return s, nil
}

func saveSettings(s Settings) (string, error) {
	p, err := settingsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// Client calls the REST API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(s Settings) *Client {
	return &Client{base: strings.TrimRight(s.URL, "/"), token: s.Token, http: &http.Client{Timeout: 60 * time.Second}}
}

// APIError is a problem+json answer, shown as one readable line.
type APIError struct {
	Status int
	Type   string
	Title  string
	Detail string
}

func (e *APIError) Error() string {
	msg := e.Title
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Do sends a request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var p APIError
		if json.Unmarshal(b, &p) != nil || p.Title == "" {
			return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		p.Status = resp.StatusCode
		return &p
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Raw returns the raw body (downloads).
func (c *Client) Raw(ctx context.Context, path string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		var p APIError
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			p.Status = resp.StatusCode
			return nil, nil, &p
		}
		return nil, nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return b, resp.Header, nil
}

// listAll follows next_cursor until the list ends or limit items were read.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values, limit int) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	var all []T
	for {
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := c.Do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}
