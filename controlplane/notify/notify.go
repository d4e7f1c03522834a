// Package notify tells people what Lanyard decided: it consumes the outbox, applies each
// organization's rules to pick recipients and channels (email, Slack, signed webhooks, a
// log line), and delivers every message at least once with retries, backoff and a dead
// letter list an admin can replay. See docs/notifications.md and
// docs/adr/2026-12-03_notification-delivery.md.
//
// Two halves, joined by the notify_deliveries table:
//
//   - the consumer (consume.go) reads outbox events in order and, in the transaction that
//     marks an event handled, inserts one delivery per (event, channel, recipient) with a
//     deterministic id: a crash before commit loses nothing (the event is read again), a
//     re-read after commit enqueues nothing twice;
//   - the workers (deliver.go) claim due deliveries with a lease, send, and record the
//     attempt. A worker that dies mid-send leaves a lease that expires; another replica
//     takes the delivery over and sends it again with the same id (webhook-id,
//     Message-ID), which is how a receiver drops the duplicate.
package notify

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Keyring seals channel secrets at rest (secrets.Keyring).
type Keyring interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Message is a rendered notification (templates.Rendered, without the template package's
// types so this package stays testable on its own).
type Message struct {
	Subject, Text, HTML string
	// SlackText is the notification fallback; SlackBlocks the Block Kit body.
	SlackText   string
	SlackBlocks []map[string]any
}

// Renderer renders a template kind with an event's data (controlplane/notify/templates).
type Renderer interface {
	Render(kind string, d Data) (Message, error)
}

// Email is one email to send.
type Email struct {
	// ID is the delivery id; the Message-ID is derived from it, so a resend after a lost
	// answer is recognisable as the same message.
	ID      string
	To      []string
	Subject string
	Text    string
	HTML    string
}

// EmailConfig is an email channel's non-secret SMTP settings.
type EmailConfig struct {
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	Username string `json:"username,omitempty"`
	From     string `json:"from"`
	// TLS: starttls (default), tls (implicit), none (loopback only).
	TLS string `json:"tls,omitempty"`
}

// EmailSender sends email over SMTP (controlplane/notify/mail, adapted in the server).
type EmailSender interface {
	SendEmail(ctx context.Context, cfg EmailConfig, password string, m Email) error
}

// SlackSender posts to a Slack incoming webhook (controlplane/notify/slack).
type SlackSender interface {
	PostSlack(ctx context.Context, hookURL string, m Message) error
}

// WebhookSender posts signed webhooks (webhook.Client).
type WebhookSender interface {
	Post(ctx context.Context, url string, secrets []string, p webhook.Payload) (webhook.Result, error)
}

// EnrollLinks returns the links a new hire enrolls with: the agent installer download
// and, for a Mac, the MDM enrollment link (either may be empty).
type EnrollLinks func(ctx context.Context, orgID, employeeID string) (installerURL, enrollURL string, err error)

// SendError is how senders report a failure: the receiver's status (SMTP reply code,
// HTTP status; 0 for none) and words, whether a retry can help, and how long the
// receiver asked us to wait.
type SendError struct {
	Permanent  bool
	Status     int
	Detail     string
	RetryAfter time.Duration
	Err        error
}

func (e *SendError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return "send failed"
}

func (e *SendError) Unwrap() error { return e.Err }

// Config tunes the engine; zero values take the defaults.
type Config struct {
	// Consumer names the outbox cursor ("notify").
	Consumer string
	// PublicURL is the base of every link in a message (config public-url).
	PublicURL string
	// Poll is the backstop: how often the outbox and the queue are read without a
	// wake-up (default 2 s).
	Poll time.Duration
	// Workers is how many deliveries one replica sends at once (default 8).
	Workers int
	// Lease is how long a claimed delivery is held; past it another replica takes it
	// over (default 2·SendTimeout + 5 s: a send in progress always finishes first).
	Lease time.Duration
	// SendTimeout bounds one send, so a hanging receiver costs one attempt (default 20 s).
	SendTimeout time.Duration
	// MaxAttempts before a delivery that keeps failing transiently is dead (default 8).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delay: base·2^(n-1) capped at max, with
	// jitter (defaults 2 s and 1 h). A receiver's Retry-After wins when longer.
	BackoffBase, BackoffMax time.Duration
	// GapGrace: how long an outbox gap blocks the cursor (default 2 min; see lifecycle).
	GapGrace time.Duration
	// PoisonAfter: failures before an event is recorded as failed and skipped (default 5).
	PoisonAfter int
	// PrevSecretTTL: how long a rotated-out webhook secret keeps signing (default 24 h).
	PrevSecretTTL time.Duration
}

func (c *Config) defaults() {
	if c.Consumer == "" {
		c.Consumer = "notify"
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 20 * time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 2*c.SendTimeout + 5*time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 2 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Hour
	}
	if c.GapGrace <= 0 {
		c.GapGrace = 2 * time.Minute
	}
	if c.PoisonAfter <= 0 {
		c.PoisonAfter = 5
	}
	if c.PrevSecretTTL <= 0 {
		c.PrevSecretTTL = 24 * time.Hour
	}
}

// Deps is what the engine needs; Render and the senders are required for the channels
// that use them (a channel whose sender is nil fails its deliveries with that reason).
type Deps struct {
	DB      *store.DB
	Keys    Keyring
	Logger  *slog.Logger
	Render  Renderer
	Email   EmailSender
	Slack   SlackSender
	Webhook WebhookSender
	Enroll  EnrollLinks
	Config  Config
}

// Engine is the notification engine of one replica.
type Engine struct {
	db      *store.DB
	keys    Keyring
	log     *slog.Logger
	render  Renderer
	email   EmailSender
	slack   SlackSender
	webhook WebhookSender
	enroll  EnrollLinks
	cfg     Config

	kick     chan struct{} // new outbox rows
	sendKick chan struct{} // deliveries became due

	mu       sync.Mutex
	failures map[string]int // outbox event id → handling failures (poison)
	sending  map[string]bool
}

// New builds an engine; Start runs it.
func New(d Deps) *Engine {
	d.Config.defaults()
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	wh := d.Webhook
	if wh == nil {
		wh = webhook.New(&http.Client{Timeout: d.Config.SendTimeout})
	}
	return &Engine{db: d.DB, keys: d.Keys, log: log.With("component", "notify"), render: d.Render, email: d.Email, slack: d.Slack,
		webhook: wh, enroll: d.Enroll, cfg: d.Config, kick: make(chan struct{}, 1), sendKick: make(chan struct{}, 1),
		failures: map[string]int{}, sending: map[string]bool{}}
}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

// Notify wakes the consumer (new outbox rows) and the workers.
func (e *Engine) Notify() {
	signal(e.kick)
	signal(e.sendKick)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Start runs the consumer and the workers until ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	stop := e.listen(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.runWorkers(ctx)
	}()
	t := time.NewTicker(e.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := e.ConsumeOutbox(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("consume outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-t.C:
		case <-e.kick:
		}
	}
}

// systemCtx marks the actor of engine work for audit rows.
func systemCtx(ctx context.Context) context.Context {
	if domain.ActorFrom(ctx).ID != "system:unknown" {
		return ctx
	}
	return domain.WithActor(ctx, domain.Actor{ID: "system:notify"})
}
