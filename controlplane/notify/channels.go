package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// WebhookConfig is a webhook channel's non-secret settings.
type WebhookConfig struct {
	URL string `json:"url"`
}

// ChannelInput creates or changes a channel. Secret is write-only: the SMTP password, the
// Slack incoming-webhook URL (Slack treats it as a credential) or the webhook signing
// secret; it is sealed at rest and never returned.
type ChannelInput struct {
	Name    string         `json:"name" maxlen:"100"`
	Kind    string         `json:"kind" enum:"email,slack,webhook,log"`
	Enabled *bool          `json:"enabled,omitempty"`
	Email   *EmailConfig   `json:"email,omitempty"`
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	Secret  string         `json:"secret,omitempty" maxlen:"4096"`
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validURL accepts https, or http to a loopback host (the fakes, a local relay).
func validURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute URL", store.ErrInvalidInput, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%w: put credentials in the secret, not the URL", store.ErrInvalidInput)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%w: the URL must be https (plain http only to a loopback address)", store.ErrInvalidInput)
}

// apply validates in and writes it onto c (a new channel when c.ID is ""); the secret is
// sealed with the channel's AAD.
func (e *Engine) apply(c *store.NotifyChannel, in ChannelInput) error {
	if c.ID == "" {
		c.ID = domain.NewID()
		c.Kind = in.Kind
		c.Enabled = true
	} else if in.Kind != "" && in.Kind != c.Kind {
		return fmt.Errorf("%w: a channel's kind cannot change (create another channel)", store.ErrInvalidInput)
	}
	if in.Name != "" {
		c.Name = strings.TrimSpace(in.Name)
	}
	if c.Name == "" {
		return fmt.Errorf("%w: name is required", store.ErrInvalidInput)
	}
	if in.Enabled != nil {
		c.Enabled = *in.Enabled
	}
	var cfg any
	switch c.Kind {
	case channelEmail:
		if in.Email == nil && len(c.Config) > 0 {
			break
		}
		if in.Email == nil || in.Email.Host == "" || in.Email.From == "" {
			return fmt.Errorf("%w: an email channel needs email.host and email.from", store.ErrInvalidInput)
		}
		if _, err := mail.ParseAddress(in.Email.From); err != nil {
			return fmt.Errorf("%w: email.from %q: %v", store.ErrInvalidInput, in.Email.From, err)
		}
		switch in.Email.TLS {
		case "", "starttls", "tls":
		case "none":
			if !isLoopbackHost(in.Email.Host) {
				return fmt.Errorf("%w: email.tls none is allowed only to a loopback SMTP server", store.ErrInvalidInput)
			}
		default:
			return fmt.Errorf("%w: email.tls must be starttls, tls or none", store.ErrInvalidInput)
		}
		cfg = in.Email
	case channelHook:
		if in.Webhook == nil && len(c.Config) > 0 {
			break
		}
		if in.Webhook == nil {
			return fmt.Errorf("%w: a webhook channel needs webhook.url", store.ErrInvalidInput)
		}
		if err := validURL(in.Webhook.URL); err != nil {
			return err
		}
		if in.Secret == "" && c.SecretSealed == "" {
			return fmt.Errorf("%w: a webhook channel needs a signing secret (give the receiver the same one)", store.ErrInvalidInput)
		}
		cfg = in.Webhook
	case channelSlack:
		if in.Secret == "" && c.SecretSealed == "" {
			return fmt.Errorf("%w: a Slack channel needs its incoming-webhook URL as the secret", store.ErrInvalidInput)
		}
		if in.Secret != "" {
			if err := validURL(in.Secret); err != nil {
				return err
			}
		}
		cfg = struct{}{}
	case channelLog:
		cfg = struct{}{}
	default:
		return fmt.Errorf("%w: kind must be email, slack, webhook or log", store.ErrInvalidInput)
	}
	if cfg != nil {
		b, _ := json.Marshal(cfg)
		c.Config = b
	}
	if c.Kind == channelHook && in.Secret != "" && len(in.Secret) < 24 {
		return fmt.Errorf("%w: a webhook signing secret must be at least 24 characters", store.ErrInvalidInput)
	}
	if in.Secret != "" {
		sealed, err := e.keys.Seal([]byte(in.Secret), store.NotifyChannelAAD(c.OrgID, c.ID))
		if err != nil {
			return fmt.Errorf("seal channel secret: %w", err)
		}
		c.SecretSealed = sealed
	}
	return nil
}

// CreateChannel adds a channel to an org.
func (e *Engine) CreateChannel(ctx context.Context, orgID string, in ChannelInput) (store.NotifyChannel, error) {
	c := store.NotifyChannel{OrgID: orgID}
	if err := e.apply(&c, in); err != nil {
		return c, err
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertNotifyChannel(ctx, tx, &c); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "notify.channel.created", "notify_channel", c.ID, nil, c))
	})
	return c, err
}

// UpdateChannel changes a channel (fields left out stay).
func (e *Engine) UpdateChannel(ctx context.Context, orgID, id string, in ChannelInput) (store.NotifyChannel, error) {
	var c store.NotifyChannel
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = store.GetNotifyChannel(ctx, tx, orgID, id); err != nil {
			return err
		}
		before := c
		if err := e.apply(&c, in); err != nil {
			return err
		}
		if err := store.UpdateNotifyChannel(ctx, tx, &c); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "notify.channel.updated", "notify_channel", c.ID, before, c))
	})
	return c, err
}

// DeleteChannel removes a channel and the rules that name it.
func (e *Engine) DeleteChannel(ctx context.Context, orgID, id string) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := store.DeleteNotifyChannel(ctx, tx, orgID, id); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "notify.channel.deleted", "notify_channel", id, nil, nil))
	})
}

// RotateSecret replaces a webhook channel's signing secret; the old one keeps signing
// beside it (a second v1 signature) for keepOld (Config.PrevSecretTTL when 0), so a
// receiver can switch over without dropping a message.
func (e *Engine) RotateSecret(ctx context.Context, orgID, id, secret string, keepOld time.Duration) (store.NotifyChannel, error) {
	if keepOld <= 0 {
		keepOld = e.cfg.PrevSecretTTL
	}
	var c store.NotifyChannel
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = store.GetNotifyChannel(ctx, tx, orgID, id); err != nil {
			return err
		}
		if c.Kind != channelHook {
			return fmt.Errorf("%w: only a webhook channel has a signing secret to rotate", store.ErrInvalidInput)
		}
		if len(secret) < 24 {
			return fmt.Errorf("%w: the new signing secret must be at least 24 characters", store.ErrInvalidInput)
		}
		old := c.SecretSealed
		if err := e.apply(&c, ChannelInput{Secret: secret}); err != nil {
			return err
		}
		until := domain.Now().Add(keepOld)
		c.PrevSecretSealed, c.PrevSecretExpiresAt = old, &until
		if err := store.UpdateNotifyChannel(ctx, tx, &c); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "notify.channel.secret_rotated", "notify_channel", c.ID, nil,
			map[string]any{"previous_valid_until": until}))
	})
	return c, err
}

// openSecrets returns a channel's secrets: the current one, then the previous one while
// it is still honoured.
func (e *Engine) openSecrets(c store.NotifyChannel) ([]string, error) {
	var out []string
	aad := store.NotifyChannelAAD(c.OrgID, c.ID)
	if c.SecretSealed != "" {
		b, err := e.keys.Open(c.SecretSealed, aad)
		if err != nil {
			return nil, fmt.Errorf("open the channel's secret: %w", err)
		}
		out = append(out, string(b))
	}
	if c.PrevSecretSealed != "" && c.PrevSecretExpiresAt != nil && c.PrevSecretExpiresAt.After(domain.Now()) {
		b, err := e.keys.Open(c.PrevSecretSealed, aad)
		if err != nil {
			return nil, fmt.Errorf("open the channel's previous secret: %w", err)
		}
		out = append(out, string(b))
	}
	return out, nil
}

// TestChannel sends the "test" message through a channel now and reports the
// receiver's answer (to: the email recipient; ignored by other kinds).
func (e *Engine) TestChannel(ctx context.Context, orgID, id, to string) (Outcome, error) {
	c, err := store.GetNotifyChannel(ctx, e.db.SQL, orgID, id)
	if err != nil {
		return Outcome{}, err
	}
	if c.Kind == channelEmail {
		if _, err := mail.ParseAddress(to); err != nil {
			return Outcome{}, fmt.Errorf("%w: a test email needs a recipient address (to)", store.ErrInvalidInput)
		}
	}
	org, err := store.GetOrg(ctx, e.db.SQL, orgID)
	if err != nil {
		return Outcome{}, err
	}
	ev := domain.Event{ID: domain.NewID(), OrgID: orgID, Type: EventChannelTest, SubjectType: "notify_channel", SubjectID: c.ID,
		At: domain.Now(), Payload: json.RawMessage(`{"channel":` + mustJSON(c.Name) + `}`)}
	msg := Message{Subject: "Lanyard test message", Text: "This is a test from Lanyard."}
	if e.render != nil {
		m, err := e.render.Render("test", Data{OrgName: org.Name, Location: org.Location(), PublicURL: strings.TrimRight(e.cfg.PublicURL, "/"),
			At: ev.At, Link: "/notifications", Fields: map[string]string{"channel": c.Name}})
		if err != nil {
			return Outcome{}, fmt.Errorf("render the test message: %w", err)
		}
		msg = m
	}
	began := time.Now()
	out := e.send(ctx, c, "test-"+ev.ID, to, ev, msg)
	out.DurationMS = time.Since(began).Milliseconds()
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "notify.channel.tested", "notify_channel", c.ID, nil, out))
	})
	return out, err
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
