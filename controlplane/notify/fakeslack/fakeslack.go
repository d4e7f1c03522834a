// Package fakeslack is Slack's incoming webhooks over loopback HTTP, for tests and the
// demo. It answers as Slack does (REFERENCE.md): "ok" for a good post, an error string
// with 400/403/404/410 for a bad one, 429 with Retry-After when told to throttle, and it
// records every accepted post. Knobs make a hook fail, throttle or hang.
package fakeslack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Post is one accepted message.
type Post struct {
	Text   string
	Blocks []map[string]any
	Raw    []byte
	At     time.Time
}

type failure struct {
	status int
	n      int
}

// Server is a running fake.
type Server struct {
	srv *http.Server
	url string

	mu      sync.Mutex
	hooks   map[string]bool // known hooks; a post to another answers 404 no_service
	posts   map[string][]Post
	fail    map[string]failure
	hang    map[string]chan struct{}
	changed chan struct{}
}

// Start serves on 127.0.0.1 until ctx ends.
func Start(ctx context.Context) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeslack: listen: %w", err)
	}
	s := &Server{url: "http://" + l.Addr().String(), hooks: map[string]bool{}, posts: map[string][]Post{},
		fail: map[string]failure{}, hang: map[string]chan struct{}{}, changed: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		for h, ch := range s.hang {
			close(ch)
			delete(s.hang, h)
		}
		s.mu.Unlock()
		_ = s.srv.Close()
	}()
	return s, nil
}

// URL creates hook name and returns its webhook URL (Slack's shape: /services/T…/B…/secret).
func (s *Server) URL(hook string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks[hook] = true
	return s.url + "/services/T0LANYARD/B0LANYARD/" + hook
}

// Posts returns what hook accepted, oldest first.
func (s *Server) Posts(hook string) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Post(nil), s.posts[hook]...)
}

// WaitFor waits until cond holds for hook's posts, or ctx ends.
func (s *Server) WaitFor(ctx context.Context, hook string, cond func([]Post) bool) ([]Post, error) {
	for {
		s.mu.Lock()
		got := append([]Post(nil), s.posts[hook]...)
		ch := s.changed
		s.mu.Unlock()
		if cond(got) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("fakeslack: hook %s has %d posts, condition not met: %w", hook, len(got), ctx.Err())
		case <-ch:
		}
	}
}

// Fail answers hook's next n posts with status (429 comes with Retry-After: 1; 404
// no_service, 410 channel_is_archived, 403 action_prohibited, 5xx an error page).
func (s *Server) Fail(hook string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[hook] = failure{status: status, n: n}
}

// Hang makes hook's posts wait without an answer (on) until released (off).
func (s *Server) Hang(hook string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, hanging := s.hang[hook]
	switch {
	case on && !hanging:
		s.hang[hook] = make(chan struct{})
	case !on && hanging:
		close(ch)
		delete(s.hang, hook)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/services/"), "/")
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/services/") || len(parts) != 3 {
		slackError(w, http.StatusNotFound, "no_service")
		return
	}
	hook := parts[2]
	s.mu.Lock()
	known := s.hooks[hook]
	release := s.hang[hook]
	failWith := 0
	if f := s.fail[hook]; f.n > 0 {
		f.n--
		s.fail[hook] = f
		failWith = f.status
	}
	s.mu.Unlock()
	if !known {
		slackError(w, http.StatusNotFound, "no_service")
		return
	}
	if release != nil {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	if failWith != 0 {
		switch failWith {
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			slackError(w, failWith, "rate_limited")
		case http.StatusNotFound:
			slackError(w, failWith, "no_service")
		case http.StatusGone:
			slackError(w, failWith, "channel_is_archived")
		case http.StatusForbidden:
			slackError(w, failWith, "action_prohibited")
		default:
			slackError(w, failWith, "internal_error")
		}
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		slackError(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	var p struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		slackError(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	if strings.TrimSpace(p.Text) == "" && len(p.Blocks) == 0 {
		slackError(w, http.StatusBadRequest, "no_text")
		return
	}
	if err := validBlocks(p.Blocks); err != "" {
		slackError(w, http.StatusBadRequest, err)
		return
	}
	s.mu.Lock()
	s.posts[hook] = append(s.posts[hook], Post{Text: p.Text, Blocks: p.Blocks, Raw: raw, At: time.Now()})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// validBlocks checks the Block Kit rules Slack enforces that a sender can get wrong.
func validBlocks(blocks []map[string]any) string {
	if len(blocks) > 50 {
		return "invalid_blocks"
	}
	for _, b := range blocks {
		typ, _ := b["type"].(string)
		switch typ {
		case "header", "section", "context", "actions", "divider":
		default:
			return "invalid_blocks"
		}
		if t, ok := b["text"].(map[string]any); ok {
			s, _ := t["text"].(string)
			limit := 3000
			if typ == "header" {
				limit = 150
				if t["type"] != "plain_text" {
					return "invalid_blocks"
				}
			}
			if s == "" || utf8.RuneCountInString(s) > limit {
				return "invalid_blocks"
			}
		} else if typ == "header" || (typ == "section" && b["fields"] == nil) {
			return "invalid_blocks"
		}
		if fs, ok := b["fields"].([]any); ok && len(fs) > 10 {
			return "invalid_blocks"
		}
	}
	return ""
}

func slackError(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
