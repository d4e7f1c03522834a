package fakejustworks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
)

// AllEventTypes are the webhook event types of the spec.
var AllEventTypes = []string{
	"member.profile.created",
	"member.profile.updated",
	"member.employment_state.termination_scheduled",
	"member.employment_state.termination_canceled",
	"department.created",
	"department.updated",
	"department.deleted",
}

type subscription struct {
	id       string
	url      string
	secret   []byte
	status   string // opened, closed
	types    []string
	failures int
}

type pendingEvent struct {
	sub   *subscription
	body  []byte
	id    string
	typ   string
	tries int
}

// Event is the webhook envelope (WebhookEvent in the first-commit spec).
type Event struct {
	ID               string          `json:"id"`
	EventType        string          `json:"event_type"`
	EventCreatedAt   time.Time       `json:"event_created_at"`
	EventDeliveredAt time.Time       `json:"event_delivered_at"`
	Data             json.RawMessage `json:"data"`
}

// Chaos shapes the next deliveries (Flush and AutoDeliver).
type Chaos struct {
	Duplicates  int           // send every event this many extra times
	Shuffle     bool          // deliver a batch in a random (seeded) order
	Reverse     bool          // deliver a batch newest first
	Delay       time.Duration // wait before each delivery
	WrongSecret bool          // sign with a wrong secret
	StaleBy     time.Duration // sign with a timestamp this far in the past
	Seed        uint64
}

// SetChaos replaces the delivery chaos settings.
func (s *Server) SetChaos(c Chaos) {
	s.mu.Lock()
	s.chaos = c
	s.mu.Unlock()
}

// Subscribe registers a webhook URL with its signing secret for all event
// types (Justworks sets webhooks up on request; there is no create endpoint).
func (s *Server) Subscribe(url string, secret []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &subscription{id: randID("wh_"), url: url, secret: slices.Clone(secret), status: "opened", types: AllEventTypes}
	s.subs = append(s.subs, sub)
	return sub.id
}

// WebhookStatus returns "opened" or "closed" ("" if unknown).
func (s *Server) WebhookStatus(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.id == id {
			return sub.status
		}
	}
	return ""
}

// Pending returns how many deliveries are queued.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *Server) emitLocked(typ string, m *Member) {
	data, _ := json.Marshal(m.view([]string{"member.detail:read", "member.employment:read"}))
	s.enqueueLocked(typ, data)
}

func (s *Server) emitDepartmentLocked(typ string, d Department) {
	data, _ := json.Marshal(d)
	s.enqueueLocked(typ, data)
}

func (s *Server) enqueueLocked(typ string, data []byte) {
	if len(s.subs) == 0 {
		return
	}
	ev := Event{ID: randID("evt_"), EventType: typ, EventCreatedAt: s.nowLocked(), Data: data}
	body, _ := json.Marshal(ev)
	for _, sub := range s.subs {
		if sub.status != "opened" || !slices.Contains(sub.types, typ) {
			continue // events of a closed webhook are lost: backfill must catch them
		}
		s.pending = append(s.pending, &pendingEvent{sub: sub, body: body, id: ev.ID, typ: typ})
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Delivery is the outcome of one delivery attempt.
type Delivery struct {
	EventID   string
	EventType string
	Status    int // 0: transport error
	Err       error
}

// Flush delivers every queued event now, applying Chaos, and returns the
// attempts. Failed events stay queued (at-least-once); a webhook closes after
// MaxDeliveryFailures consecutive failures and its queue is dropped.
func (s *Server) Flush(ctx context.Context) []Delivery {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	chaos := s.chaos
	s.mu.Unlock()
	if chaos.Reverse {
		slices.Reverse(batch)
	}
	if chaos.Shuffle {
		r := rand.New(rand.NewPCG(chaos.Seed, 7))
		r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	}
	var out []Delivery
	var retry []*pendingEvent
	for _, pe := range batch {
		ok := false
		for n := 0; n <= chaos.Duplicates; n++ {
			if chaos.Delay > 0 {
				select {
				case <-ctx.Done():
					return out
				case <-time.After(chaos.Delay):
				}
			}
			d := s.send(ctx, pe.sub.url, pe.sub.secret, pe.body, chaos)
			d.EventID, d.EventType = pe.id, pe.typ
			out = append(out, d)
			ok = ok || (d.Err == nil && d.Status/100 == 2)
		}
		s.mu.Lock()
		if ok {
			pe.sub.failures = 0
		} else {
			pe.tries++
			pe.sub.failures++
			if pe.sub.failures >= s.opts.MaxDeliveryFailures {
				pe.sub.status = "closed"
			}
			if pe.sub.status == "opened" {
				retry = append(retry, pe)
			}
		}
		s.mu.Unlock()
	}
	if len(retry) > 0 {
		s.mu.Lock()
		s.pending = append(retry, s.pending...)
		s.mu.Unlock()
	}
	return out
}

func (s *Server) deliverLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.done; cancel() }()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-time.After(backoff):
		}
		res := s.Flush(ctx)
		failed := false
		for _, d := range res {
			if d.Err != nil || d.Status/100 != 2 {
				failed = true
			}
		}
		if failed {
			backoff = min(backoff*2, 5*time.Second)
		} else {
			backoff = time.Second
		}
	}
}

// DeliverOptions override signing for one Deliver call.
type DeliverOptions struct {
	Secret     []byte // default: the subscription's
	Timestamp  string // default: now, Unix seconds
	TamperBody bool   // change the body after signing
	NoHeaders  bool
}

// Deliver signs and POSTs a body to url at once (tests of signature handling).
func (s *Server) Deliver(ctx context.Context, url string, secret []byte, body []byte, o DeliverOptions) Delivery {
	if o.Secret != nil {
		secret = o.Secret
	}
	ts := o.Timestamp
	if ts == "" {
		ts = strconv.FormatInt(s.Now().Unix(), 10)
	}
	return s.post(ctx, url, secret, ts, body, o)
}

// NewEvent builds an envelope body for a member (for Deliver).
func (s *Server) NewEvent(typ string, m Member) []byte {
	data, _ := json.Marshal(m.view([]string{"member.detail:read", "member.employment:read"}))
	body, _ := json.Marshal(Event{ID: randID("evt_"), EventType: typ, EventCreatedAt: s.Now(), Data: data})
	return body
}

func (s *Server) send(ctx context.Context, url string, secret, body []byte, chaos Chaos) Delivery {
	// Stamp event_delivered_at.
	var ev map[string]any
	if json.Unmarshal(body, &ev) == nil {
		ev["event_delivered_at"] = s.Now().Format(time.RFC3339Nano)
		body, _ = json.Marshal(ev)
	}
	if chaos.WrongSecret {
		secret = []byte("not-the-secret")
	}
	ts := strconv.FormatInt(s.Now().Add(-chaos.StaleBy).Unix(), 10)
	return s.post(ctx, url, secret, ts, body, DeliverOptions{})
}

func (s *Server) post(ctx context.Context, url string, secret []byte, ts string, body []byte, o DeliverOptions) Delivery {
	sig := justworks.Sign(secret, ts, body)
	if o.TamperBody {
		body = bytes.Replace(body, []byte(`"`), []byte(`'`), 1)
		body = append(body, ' ')
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second) // jw-gws-sync's claimed timeout
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Delivery{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if !o.NoHeaders {
		req.Header.Set(justworks.SignatureHeader, sig)
		req.Header.Set(justworks.SignatureTimestampHeader, ts)
	}
	s.mu.Lock()
	s.stats.Deliveries++
	s.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Delivery{Err: fmt.Errorf("deliver: %w", err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return Delivery{Status: resp.StatusCode}
}

func (s *Server) webhookJSON(sub *subscription) map[string]any {
	return map[string]any{"id": sub.id, "url": sub.url, "status": sub.status, "event_types": sub.types}
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request, _ *accessToken) {
	status := r.URL.Query().Get("status")
	s.mu.Lock()
	defer s.mu.Unlock()
	items := []map[string]any{}
	for _, sub := range s.subs {
		if status == "" || sub.status == status {
			items = append(items, s.webhookJSON(sub))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) handleResumeWebhook(w http.ResponseWriter, r *http.Request, _ *accessToken) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.id == id {
			sub.status, sub.failures = "opened", 0
			writeJSON(w, http.StatusOK, s.webhookJSON(sub))
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "webhook not found")
}

// handleSimulate (Tour environment only) delivers a sample or overridden payload.
func (s *Server) handleSimulate(w http.ResponseWriter, r *http.Request, _ *accessToken) {
	if !s.opts.Tour {
		writeError(w, http.StatusNotFound, "not_found", "simulate is available in the Tour environment only")
		return
	}
	var req struct {
		PayloadOverride json.RawMessage `json:"payload_override"`
		URLOverride     string          `json:"url_override"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_body", err.Error())
			return
		}
	}
	id := r.PathValue("id")
	s.mu.Lock()
	var sub *subscription
	for _, x := range s.subs {
		if x.id == id {
			sub = x
		}
	}
	s.mu.Unlock()
	if sub == nil {
		writeError(w, http.StatusNotFound, "not_found", "webhook not found")
		return
	}
	body := []byte(req.PayloadOverride)
	if len(body) == 0 {
		body, _ = json.Marshal(Event{ID: randID("evt_"), EventType: "member.profile.updated", EventCreatedAt: s.Now(),
			Data: json.RawMessage(`{"id":"mem_simulated","company_id":"` + s.opts.CompanyID + `","active":true}`)})
	}
	url := sub.url
	if req.URLOverride != "" {
		url = req.URLOverride
	}
	d := s.Deliver(r.Context(), url, sub.secret, body, DeliverOptions{})
	writeJSON(w, http.StatusOK, map[string]any{"delivered_status": d.Status})
}
