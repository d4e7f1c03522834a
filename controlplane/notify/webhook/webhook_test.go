package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook/fakereceiver"
)

func TestVerify(t *testing.T) {
	oldS, newS, other := webhook.NewSecret(), webhook.NewSecret(), webhook.NewSecret()
	body := []byte(`{"id":"msg_1"}`)
	now := time.Unix(1_800_000_000, 0)
	headers := func(secrets []string, ts time.Time, b []byte) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderID, "msg_1")
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(webhook.HeaderSignature, webhook.Sign(secrets, "msg_1", ts, b))
		return h
	}
	cases := []struct {
		name     string
		sentWith []string
		checkW   []string
		ts       time.Time
		body     []byte
		want     error
	}{
		{"good", []string{newS}, []string{newS}, now, body, nil},
		{"rotation: receiver still on the old secret", []string{newS, oldS}, []string{oldS}, now, body, nil},
		{"rotation: receiver already on the new secret", []string{newS, oldS}, []string{newS}, now, body, nil},
		{"wrong secret", []string{other}, []string{newS}, now, body, webhook.ErrBadSignature},
		{"body changed after signing", []string{newS}, []string{newS}, now, []byte(`{"id":"msg_2"}`), webhook.ErrBadSignature},
		{"replayed an hour later", []string{newS}, []string{newS}, now.Add(-time.Hour), body, webhook.ErrStale},
		{"from the future", []string{newS}, []string{newS}, now.Add(time.Hour), body, webhook.ErrStale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := headers(c.sentWith, c.ts, body)
			err := webhook.Verify(c.checkW, h, c.body, webhook.DefaultTolerance, now)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
	if err := webhook.Verify([]string{newS}, http.Header{}, body, 0, now); !errors.Is(err, webhook.ErrMissingHeaders) {
		t.Fatalf("no headers: %v", err)
	}
}

func TestPostAgainstReceiver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret := webhook.NewSecret()
	rcv, err := fakereceiver.Start(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	c := webhook.New(nil)
	p := webhook.Payload{ID: "dl_1", Type: "task.created", OrgID: "org_1", At: time.Now().UTC(), Subject: "A task", Data: json.RawMessage(`{"task_id":"t1"}`)}
	cases := []struct {
		name      string
		setup     func()
		status    int
		permanent bool
		retry     time.Duration
		ok        bool
	}{
		{"accepted", func() {}, 204, false, 0, true},
		{"500 is transient", func() { rcv.Fail(1, 500, 0) }, 500, false, 0, false},
		{"429 carries Retry-After", func() { rcv.Fail(1, 429, 7) }, 429, false, 7 * time.Second, false},
		{"400 is permanent", func() { rcv.Fail(1, 400, 0) }, 400, true, 0, false},
		{"410 is permanent", func() { rcv.Fail(1, 410, 0) }, 410, true, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			res, err := c.Post(ctx, rcv.URL(), []string{secret}, p)
			if tc.ok {
				if err != nil || res.Status != tc.status {
					t.Fatalf("Post = %+v, %v", res, err)
				}
				return
			}
			var pe *webhook.PostError
			if !errors.As(err, &pe) || pe.Status != tc.status || pe.Permanent != tc.permanent || pe.RetryAfter != tc.retry {
				t.Fatalf("Post error = %#v, want status %d permanent %v retry %v", err, tc.status, tc.permanent, tc.retry)
			}
		})
	}
	if got := rcv.Counts()["dl_1"]; got != 1 {
		t.Fatalf("receiver verified dl_1 %d times, want 1", got)
	}

	t.Run("a hanging receiver is bounded by the context", func(t *testing.T) {
		rcv.Hang(true)
		defer rcv.Hang(false)
		hctx, hcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer hcancel()
		_, err := c.Post(hctx, rcv.URL(), []string{secret}, p)
		var pe *webhook.PostError
		if !errors.As(err, &pe) || pe.Permanent {
			t.Fatalf("hang: %v", err)
		}
	})
	t.Run("down is transient, up again delivers", func(t *testing.T) {
		rcv.Down()
		_, err := c.Post(ctx, rcv.URL(), []string{secret}, p)
		var pe *webhook.PostError
		if !errors.As(err, &pe) || pe.Permanent || pe.Status != 0 {
			t.Fatalf("down: %v", err)
		}
		if err := rcv.Up(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Post(ctx, rcv.URL(), []string{secret}, p); err != nil {
			t.Fatalf("after up: %v", err)
		}
	})
	t.Run("a receiver with another secret refuses", func(t *testing.T) {
		_, err := c.Post(ctx, rcv.URL(), []string{webhook.NewSecret()}, p)
		var pe *webhook.PostError
		if !errors.As(err, &pe) || pe.Status != 401 {
			t.Fatalf("bad secret: %v", err)
		}
	})
}
