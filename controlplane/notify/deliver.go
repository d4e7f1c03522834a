package notify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	msgtemplates "github.com/lanyardhq/lanyard/controlplane/notify/templates"
	"html"
	"math/big"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// runWorkers claims due deliveries and sends up to Config.Workers at once, until ctx ends.
// It wakes when the consumer enqueued something, when a send finished (a slot is free),
// when the earliest retry comes due, and at the poll backstop (another replica's replay,
// a lease that expired).
func (e *Engine) runWorkers(ctx context.Context) {
	done := make(chan struct{}, e.cfg.Workers)
	inflight := 0
	for {
		if free := e.cfg.Workers - inflight; free > 0 && ctx.Err() == nil {
			token := newToken()
			ds, err := e.db.ClaimDeliveries(ctx, domain.Now(), free, token, domain.Now().Add(e.cfg.Lease))
			if err != nil && ctx.Err() == nil {
				e.log.Error("claim deliveries", "err", err)
			}
			for _, d := range ds {
				inflight++
				go func() {
					defer func() { done <- struct{}{} }()
					e.deliver(ctx, d, token)
				}()
			}
		}
		wait := e.cfg.Poll
		if next, err := e.db.NextDeliveryDue(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(time.Until(next), 5*time.Millisecond))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			for ; inflight > 0; inflight-- {
				<-done
			}
			return
		case <-done:
			inflight--
		case <-e.sendKick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Outcome is what one send produced, as recorded in an attempt.
type Outcome struct {
	// Result: delivered, transient or permanent.
	Result string `json:"result" enum:"delivered,transient,permanent"`
	// Status is the receiver's code (HTTP status, SMTP reply; 0 when none).
	Status int `json:"status,omitempty"`
	// Detail is the receiver's words or the error; never a secret.
	Detail     string        `json:"detail,omitempty"`
	RetryAfter time.Duration `json:"-"`
	DurationMS int64         `json:"duration_ms"`
}

// deliver sends one claimed delivery and records the attempt.
func (e *Engine) deliver(ctx context.Context, d store.Delivery, token string) {
	ctx = systemCtx(ctx)
	began := time.Now()
	out := e.attempt(ctx, d)
	out.DurationMS = time.Since(began).Milliseconds()
	if ctx.Err() != nil && out.Result != "delivered" {
		return // shutting down: the lease expires and a replica (or our restart) retries
	}
	state, next, lastErr := store.DeliveryDelivered, domain.Now(), ""
	switch out.Result {
	case "permanent":
		state, lastErr = store.DeliveryFailed, out.Detail
	case "transient":
		lastErr = out.Detail
		if d.Attempts >= e.cfg.MaxAttempts {
			state = store.DeliveryDead
		} else {
			state, next = store.DeliveryPending, domain.Now().Add(e.backoff(d.Attempts, out.RetryAfter))
		}
	}
	a := store.DeliveryAttempt{Outcome: out.Result, Status: out.Status, Detail: truncate(out.Detail, 1000), DurationMS: out.DurationMS}
	// A fresh context: the outcome of a send that happened must be recorded even when the
	// caller is stopping (else the receiver gets it again after the lease).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := e.db.InTx(rctx, func(tx *sql.Tx) error {
		ok, err := store.FinishDelivery(rctx, tx, d.ID, token, a, state, next, truncate(lastErr, 1000))
		if err != nil || !ok {
			return err
		}
		if state == store.DeliveryFailed || state == store.DeliveryDead {
			return failureNotice(rctx, tx, d, lastErr)
		}
		return nil
	})
	if err != nil {
		e.log.Error("record delivery attempt", "delivery", d.ID, "err", err)
		return
	}
	lvl := "delivery sent"
	if out.Result != "delivered" {
		lvl = "delivery attempt failed"
	}
	e.log.Info(lvl, "delivery", d.ID, "event", d.EventID, "type", d.EventType, "channel", d.ChannelKind, "attempt", d.Attempts,
		"result", out.Result, "status", out.Status, "detail", truncate(out.Detail, 200), "state", state)
	if state == store.DeliveryPending {
		signal(e.sendKick)
	}
}

// backoff is the delay before the retry after attempt n: base·2^(n-1) capped at max,
// jittered over its upper half so a burst of failures does not retry in lockstep; a
// receiver's Retry-After wins when it asks for longer (still capped).
func (e *Engine) backoff(n int, retryAfter time.Duration) time.Duration {
	d := e.cfg.BackoffBase
	for i := 1; i < n && d < e.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.BackoffMax)
	if half := int64(d / 2); half > 0 {
		j, _ := rand.Int(rand.Reader, big.NewInt(half))
		d = time.Duration(half + j.Int64())
	}
	return min(max(d, retryAfter), e.cfg.BackoffMax)
}

// attempt renders and sends a delivery once.
func (e *Engine) attempt(ctx context.Context, d store.Delivery) Outcome {
	ch, err := store.GetNotifyChannel(ctx, e.db.SQL, d.OrgID, d.ChannelID)
	if errors.Is(err, store.ErrNotFound) {
		return Outcome{Result: "permanent", Detail: "the channel was removed"}
	}
	if err != nil {
		return Outcome{Result: "transient", Detail: "read channel: " + err.Error()}
	}
	if !ch.Enabled {
		return Outcome{Result: "permanent", Detail: "the channel is disabled"}
	}
	var ev domain.Event
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		return Outcome{Result: "permanent", Detail: "stored event unreadable: " + err.Error()}
	}
	msg, perr := e.message(ctx, d, ev)
	if perr != nil {
		if ch.Kind != channelHook {
			return *perr
		}
		// A webhook's content is the event's data; the rendered subject is a courtesy,
		// so a template problem does not hold back a SIEM's feed.
		msg = Message{Subject: ev.Type}
	}
	return e.send(ctx, ch, d.ID, d.Recipient, ev, msg)
}

// message renders a delivery's template (a webhook without a template carries the event
// type as its subject).
func (e *Engine) message(ctx context.Context, d store.Delivery, ev domain.Event) (Message, *Outcome) {
	if d.Template == "" {
		return Message{Subject: ev.Type}, nil
	}
	data, err := e.data(ctx, d, ev)
	if err != nil {
		return Message{}, &Outcome{Result: "transient", Detail: "gather message data: " + err.Error()}
	}
	if d.Template == kindDeliveryFailed {
		return failureMessage(data), nil
	}
	if e.render == nil {
		return Message{}, &Outcome{Result: "permanent", Detail: "no template renderer is configured"}
	}
	msg, err := e.render.Render(d.Template, data)
	if err != nil {
		return Message{}, &Outcome{Result: "permanent", Detail: "render " + d.Template + ": " + err.Error()}
	}
	return msg, nil
}

// send delivers msg through a channel. id is the delivery id (webhook-id, Message-ID).
func (e *Engine) send(ctx context.Context, ch store.NotifyChannel, id, recipient string, ev domain.Event, msg Message) Outcome {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
	defer cancel()
	secrets, err := e.openSecrets(ch)
	if err != nil {
		return Outcome{Result: "permanent", Detail: err.Error()}
	}
	switch ch.Kind {
	case channelLog:
		e.log.Info("notification", "channel", ch.Name, "delivery", id, "event", ev.Type, "to", recipient, "subject", msg.Subject)
		return Outcome{Result: "delivered", Detail: "logged"}
	case channelEmail:
		if e.email == nil {
			return Outcome{Result: "permanent", Detail: "email is not available in this server"}
		}
		var cfg EmailConfig
		if err := json.Unmarshal(ch.Config, &cfg); err != nil {
			return Outcome{Result: "permanent", Detail: "email channel config: " + err.Error()}
		}
		pw := ""
		if len(secrets) > 0 {
			pw = secrets[0]
		}
		return outcome(e.email.SendEmail(ctx, cfg, pw, Email{ID: id, To: []string{recipient}, Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML}), "accepted")
	case channelSlack:
		if e.slack == nil {
			return Outcome{Result: "permanent", Detail: "Slack is not available in this server"}
		}
		if len(secrets) == 0 {
			return Outcome{Result: "permanent", Detail: "the Slack channel has no webhook URL"}
		}
		return outcome(e.slack.PostSlack(ctx, secrets[0], msg), "ok")
	case channelHook:
		var cfg WebhookConfig
		if err := json.Unmarshal(ch.Config, &cfg); err != nil || cfg.URL == "" {
			return Outcome{Result: "permanent", Detail: "webhook channel has no URL"}
		}
		res, err := e.webhook.Post(ctx, cfg.URL, secrets, webhook.Payload{ID: id, Type: ev.Type, OrgID: ev.OrgID, At: ev.At,
			Subject: msg.Subject, Data: eventData(ev)})
		var pe *webhook.PostError
		if errors.As(err, &pe) {
			detail := pe.Body
			if pe.Status == 0 {
				detail = pe.Error()
			}
			return classify(pe.Permanent, pe.Status, detail, pe.RetryAfter)
		}
		if err != nil {
			return Outcome{Result: "transient", Detail: err.Error()}
		}
		return Outcome{Result: "delivered", Status: res.Status, Detail: truncate(res.Body, 200)}
	}
	return Outcome{Result: "permanent", Detail: "unknown channel kind " + ch.Kind}
}

func classify(permanent bool, status int, detail string, retryAfter time.Duration) Outcome {
	r := "transient"
	if permanent {
		r = "permanent"
	}
	return Outcome{Result: r, Status: status, Detail: detail, RetryAfter: retryAfter}
}

// outcome maps a sender's error (a *SendError, or anything else: transient).
func outcome(err error, ok string) Outcome {
	if err == nil {
		return Outcome{Result: "delivered", Detail: ok}
	}
	var se *SendError
	if errors.As(err, &se) {
		return classify(se.Permanent, se.Status, se.Error(), se.RetryAfter)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Outcome{Result: "transient", Detail: "the receiver did not answer in time"}
	}
	return Outcome{Result: "transient", Detail: err.Error()}
}

// eventData is what a webhook's data carries: the event's subject and payload, without
// any key that could hold a secret.
func eventData(ev domain.Event) json.RawMessage {
	m := map[string]any{}
	if err := json.Unmarshal(ev.Payload, &m); err != nil || m == nil {
		m = map[string]any{}
	}
	for k := range m {
		if msgtemplates.SecretField(k) {
			delete(m, k)
		}
	}
	m["subject_type"], m["subject_id"], m["event_id"] = ev.SubjectType, ev.SubjectID, ev.ID
	b, _ := json.Marshal(m)
	return b
}

// failureMessage tells the admins a message could not be delivered (rendered here: it
// is about the notification system itself, not a template kind of its own).
func failureMessage(d Data) Message {
	what, reason, to := d.Fields["event_type"], d.Fields["reason"], d.Fields["recipient"]
	subject := fmt.Sprintf("[%s] A notification could not be delivered", d.OrgName)
	text := fmt.Sprintf("Lanyard could not deliver the %s notification to %s through %s: %s\n\nSee it and replay it: %s%s\n",
		what, to, d.Fields["channel_kind"], reason, d.PublicURL, d.Link)
	h := fmt.Sprintf(`<p style="font-family:sans-serif">Lanyard could not deliver the <b>%s</b> notification to %s through %s: %s</p><p><a href="%s">See it and replay it</a></p>`,
		html.EscapeString(what), html.EscapeString(to), html.EscapeString(d.Fields["channel_kind"]), html.EscapeString(reason),
		html.EscapeString(d.PublicURL+d.Link))
	return Message{Subject: subject, Text: text, HTML: h, SlackText: strings.TrimSpace(text)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
