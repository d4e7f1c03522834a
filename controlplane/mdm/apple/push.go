package apple

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/nanomdm/push"
)

// DefaultAPNsURL is Apple's production push gateway.
const DefaultAPNsURL = "https://api.push.apple.com"

// PushErrorClass groups APNs failure reasons by what the caller should do about them.
type PushErrorClass string

const (
	// PushRetry: transient (throttled, APNs down); the re-push loop tries again later.
	PushRetry PushErrorClass = "retry"
	// PushBadToken: the device token is dead (Unregistered, BadDeviceToken,
	// DeviceTokenNotForTopic); pushing again is pointless until the Mac sends a new
	// TokenUpdate.
	PushBadToken PushErrorClass = "bad_token"
	// PushBadCert: our push certificate is expired, revoked or for another topic; an admin
	// must upload a renewed certificate.
	PushBadCert PushErrorClass = "bad_certificate"
	// PushBadRequest: our request was malformed; a bug, not retried.
	PushBadRequest PushErrorClass = "bad_request"
)

// PushError is one failed push with the APNs reason and its class.
type PushError struct {
	Status int
	Reason string
	Class  PushErrorClass
}

func (e *PushError) Error() string {
	return fmt.Sprintf("apns: %d %s (%s)", e.Status, e.Reason, e.Class)
}

// ClassifyAPNsReason maps an APNs status and reason string to a PushErrorClass.
// Reasons are from Apple's "Handling notification responses from APNs".
func ClassifyAPNsReason(status int, reason string) PushErrorClass {
	switch reason {
	case "Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic", "ExpiredToken":
		return PushBadToken
	case "BadCertificate", "BadCertificateEnvironment", "ExpiredProviderToken", "Forbidden",
		"InvalidProviderToken", "MissingProviderToken", "TopicDisallowed", "BadTopic", "MissingTopic":
		return PushBadCert
	case "TooManyRequests", "TooManyProviderTokenUpdates", "InternalServerError",
		"ServiceUnavailable", "Shutdown", "IdleTimeout":
		return PushRetry
	}
	switch {
	case status == http.StatusGone:
		return PushBadToken
	case status == http.StatusForbidden:
		return PushBadCert
	case status == http.StatusTooManyRequests || status >= 500 || status == 0:
		return PushRetry
	}
	return PushBadRequest
}

// PushProviderFactory builds APNs providers for nanomdm's push service. It replaces
// nanomdm's nanopush, which in v0.9.0 has no base URL option, sends no apns-push-type or
// apns-topic, spawns one goroutine per push and crashes on an HTTP/2 GOAWAY.
type PushProviderFactory struct {
	// BaseURL of the APNs gateway; DefaultAPNsURL when empty. Tests point it at fakeapns.
	BaseURL string
	// RootCAs trusts the gateway's certificate; the system pool when nil.
	RootCAs *x509.CertPool
	// Expiration is how long APNs keeps a push for an offline device (default 7 days).
	// Without it APNs drops pushes to offline Macs.
	Expiration time.Duration
	// Workers bounds concurrent pushes per provider (default 8).
	Workers int
	// Timeout per push request (default 15s).
	Timeout time.Duration
	// Observe, when set, is called for every push outcome (metrics, bookkeeping).
	Observe func(topic, token string, err error)
}

// NewPushProvider implements push.PushProviderFactory.
func (f *PushProviderFactory) NewPushProvider(cert *tls.Certificate) (push.PushProvider, error) {
	if cert == nil {
		return nil, errors.New("apns: nil push certificate")
	}
	base := strings.TrimRight(f.BaseURL, "/")
	if base == "" {
		base = DefaultAPNsURL
	}
	workers := f.Workers
	if workers <= 0 {
		workers = 8
	}
	exp := f.Expiration
	if exp <= 0 {
		exp = 7 * 24 * time.Hour
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{*cert},
			RootCAs:      f.RootCAs,
			MinVersion:   tls.VersionTLS12,
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
	}
	return &pushProvider{
		base:    base,
		client:  &http.Client{Transport: tr, Timeout: timeout},
		exp:     exp,
		workers: workers,
		observe: f.Observe,
	}, nil
}

type pushProvider struct {
	base    string
	client  *http.Client
	exp     time.Duration
	workers int
	observe func(topic, token string, err error)
}

// Push sends one MDM push per entry with at most p.workers requests in flight.
func (p *pushProvider) Push(ctx context.Context, pushes []*mdm.Push) (map[string]*push.Response, error) {
	out := make(map[string]*push.Response, len(pushes))
	var mu sync.Mutex
	sem := make(chan struct{}, p.workers)
	var wg sync.WaitGroup
	for _, pi := range pushes {
		if pi == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return out, ctx.Err()
		}
		wg.Add(1)
		go func(pi *mdm.Push) {
			defer wg.Done()
			defer func() { <-sem }()
			resp := p.pushOne(ctx, pi)
			if p.observe != nil {
				p.observe(pi.Topic, pi.Token.String(), resp.Err)
			}
			mu.Lock()
			out[pi.Token.String()] = resp
			mu.Unlock()
		}(pi)
	}
	wg.Wait()
	return out, nil
}

func (p *pushProvider) pushOne(ctx context.Context, pi *mdm.Push) *push.Response {
	body, err := json.Marshal(map[string]string{"mdm": pi.PushMagic})
	if err != nil {
		return &push.Response{Err: err}
	}
	url := p.base + "/3/device/" + pi.Token.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &push.Response{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("apns-push-type", "mdm")
	req.Header.Set("apns-priority", "10")
	req.Header.Set("apns-expiration", strconv.FormatInt(time.Now().Add(p.exp).Unix(), 10))
	if pi.Topic != "" {
		req.Header.Set("apns-topic", pi.Topic)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return &push.Response{Err: &PushError{Reason: err.Error(), Class: PushRetry}}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	id := resp.Header.Get("apns-id")
	if resp.StatusCode == http.StatusOK {
		return &push.Response{Id: id}
	}
	var reason struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(b, &reason)
	return &push.Response{Id: id, Err: &PushError{
		Status: resp.StatusCode,
		Reason: reason.Reason,
		Class:  ClassifyAPNsReason(resp.StatusCode, reason.Reason),
	}}
}
