package slack_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/fakeslack"
	"github.com/lanyardhq/lanyard/controlplane/notify/slack"
)

func fake(t *testing.T) *fakeslack.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := fakeslack.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sample() slack.Message {
	return slack.Message{Text: "Wipe of C02XK1 awaits a second admin",
		Blocks: slack.SectionBlocks("Wipe awaiting approval", "Sam asked to wipe <C02XK1> & it needs a different admin.",
			"Review the wipe", "https://lanyard.acme.example/devices/d1", []string{"Device", "Serial"},
			map[string]string{"Device": "MacBook Pro", "Serial": "C02XK1"})}
}

func TestPostIsAcceptedAsSlackWouldAcceptIt(t *testing.T) {
	s := fake(t)
	url := s.URL("it-alerts")
	if err := slack.New(nil).Post(context.Background(), url, sample()); err != nil {
		t.Fatal(err)
	}
	got := s.Posts("it-alerts")
	if len(got) != 1 || got[0].Text != "Wipe of C02XK1 awaits a second admin" || len(got[0].Blocks) != 4 {
		t.Fatalf("posts: %+v", got)
	}
	if !strings.Contains(string(got[0].Raw), `&lt;C02XK1&gt; &amp; it`) {
		t.Errorf("mrkdwn not escaped: %s", got[0].Raw)
	}
	if !strings.Contains(string(got[0].Raw), `"url":"https://lanyard.acme.example/devices/d1"`) {
		t.Errorf("no link back: %s", got[0].Raw)
	}
}

func TestFailuresAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		permanent  bool
		retryAfter time.Duration
	}{
		{"throttled", http.StatusTooManyRequests, "rate_limited", false, time.Second},
		{"server error", http.StatusInternalServerError, "internal_error", false, 0},
		{"unavailable", http.StatusServiceUnavailable, "internal_error", false, 0},
		{"hook removed", http.StatusNotFound, "no_service", true, 0},
		{"channel archived", http.StatusGone, "channel_is_archived", true, 0},
		{"posting prohibited", http.StatusForbidden, "action_prohibited", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fake(t)
			url := s.URL("h")
			s.Fail("h", tc.status, 1)
			err := slack.New(nil).Post(context.Background(), url, sample())
			var pe *slack.PostError
			if !errors.As(err, &pe) || pe.Status != tc.status || pe.Body != tc.body || pe.Permanent != tc.permanent || pe.RetryAfter != tc.retryAfter {
				t.Fatalf("got %+v (%v)", pe, err)
			}
			if strings.Contains(err.Error(), url) {
				t.Fatal("the webhook URL (a credential) is in the error")
			}
			// The failure was for one post: the retry goes through.
			if err := slack.New(nil).Post(context.Background(), url, sample()); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := len(s.Posts("h")); n != 1 {
				t.Fatalf("%d posts accepted", n)
			}
		})
	}
}

func TestBadPayloadsAreRefusedLikeSlack(t *testing.T) {
	s := fake(t)
	url := s.URL("h")
	c := slack.New(nil)
	for name, m := range map[string]slack.Message{
		"unknown block type": {Text: "x", Blocks: []slack.Block{{"type": "video"}}},
		"header in mrkdwn":   {Text: "x", Blocks: []slack.Block{{"type": "header", "text": map[string]any{"type": "mrkdwn", "text": "x"}}}},
	} {
		var pe *slack.PostError
		if err := c.Post(context.Background(), url, m); !errors.As(err, &pe) || pe.Status != 400 || pe.Body != "invalid_blocks" || !pe.Permanent {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := c.Post(context.Background(), url, slack.Message{}); err == nil {
		t.Error("an empty message was sent")
	}
	if err := c.Post(context.Background(), s.URL("h")[:len(url)-1]+"x", sample()); err == nil {
		t.Error("a post to an unknown hook succeeded")
	}
}

// Long text and long lists are cut to Slack's limits instead of being refused.
func TestFitKeepsWithinLimits(t *testing.T) {
	s := fake(t)
	url := s.URL("h")
	var blocks []slack.Block
	for range 70 {
		blocks = append(blocks, slack.Section(strings.Repeat("é", 4000)))
	}
	if err := slack.New(nil).Post(context.Background(), url, slack.Message{Text: "digest", Blocks: blocks}); err != nil {
		t.Fatal(err)
	}
	got := s.Posts("h")[0]
	if len(got.Blocks) != slack.MaxBlocks {
		t.Fatalf("%d blocks", len(got.Blocks))
	}
	if !strings.Contains(string(got.Raw), "and 21 more") {
		t.Error("the cut is not said")
	}
}

func TestHangIsBoundedByTheDeadline(t *testing.T) {
	s := fake(t)
	url := s.URL("h")
	s.Hang("h", true)
	defer s.Hang("h", false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var pe *slack.PostError
	if err := slack.New(nil).Post(ctx, url, sample()); !errors.As(err, &pe) || pe.Permanent || pe.Status != 0 {
		t.Fatalf("hang: %v", err)
	}
}
