package notify

import (
	"database/sql"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Routes is the notifications admin API: channels (admin), rules (admin), deliveries
// (viewer reads, IT replays).
func (e *Engine) Routes() []api.Route {
	tag := "Notifications"
	page := api.PageParams()
	return []api.Route{
		{Method: "GET", Path: "/api/v1/notifications/channels", Summary: "List notification channels (secrets are never returned)", Tag: tag,
			Role: domain.RoleAdmin, Response: api.List[store.NotifyChannel]{}, Handler: e.hListChannels},
		{Method: "POST", Path: "/api/v1/notifications/channels", Summary: "Add a channel: email (SMTP), slack (incoming webhook), webhook (signed) or log",
			Tag: tag, Role: domain.RoleAdmin, Request: ChannelInput{}, Response: store.NotifyChannel{}, Status: http.StatusCreated, Handler: e.hCreateChannel},
		{Method: "GET", Path: "/api/v1/notifications/channels/{id}", Summary: "Get a channel", Tag: tag, Role: domain.RoleAdmin,
			Resource: "notify_channel", Response: store.NotifyChannel{}, Handler: e.hGetChannel},
		{Method: "PATCH", Path: "/api/v1/notifications/channels/{id}", Summary: "Change a channel (fields left out stay; a new secret replaces the old)",
			Tag: tag, Role: domain.RoleAdmin, Resource: "notify_channel", Request: ChannelInput{}, Response: store.NotifyChannel{}, Handler: e.hUpdateChannel},
		{Method: "DELETE", Path: "/api/v1/notifications/channels/{id}", Summary: "Remove a channel and the rules that name it", Tag: tag,
			Role: domain.RoleAdmin, Resource: "notify_channel", Status: http.StatusNoContent, Handler: e.hDeleteChannel},
		{Method: "POST", Path: "/api/v1/notifications/channels/{id}/test", Summary: "Send a test message now and report the receiver's answer",
			Tag: tag, Role: domain.RoleAdmin, Resource: "notify_channel", Request: testRequest{}, Response: Outcome{}, Handler: e.hTestChannel},
		{Method: "POST", Path: "/api/v1/notifications/channels/{id}/rotate-secret", Summary: "Replace a webhook's signing secret; the old one keeps signing beside it for a while",
			Tag: tag, Role: domain.RoleAdmin, Resource: "notify_channel", Request: rotateRequest{}, Response: store.NotifyChannel{}, Handler: e.hRotate},

		{Method: "GET", Path: "/api/v1/notifications/rules", Summary: "List notification rules (which events reach whom)", Tag: tag,
			Role: domain.RoleViewer, Response: api.List[store.NotifyRule]{}, Handler: e.hListRules},
		{Method: "POST", Path: "/api/v1/notifications/rules", Summary: "Add a rule: event types to admins by role, an address, a channel or the employee",
			Tag: tag, Role: domain.RoleAdmin, Request: RuleInput{}, Response: store.NotifyRule{}, Status: http.StatusCreated, Handler: e.hCreateRule},
		{Method: "DELETE", Path: "/api/v1/notifications/rules/{id}", Summary: "Remove a rule", Tag: tag, Role: domain.RoleAdmin,
			Resource: "notify_rule", Status: http.StatusNoContent, Handler: e.hDeleteRule},

		{Method: "GET", Path: "/api/v1/notifications/deliveries", Summary: "List deliveries (one per event, channel and recipient) with their state",
			Tag: tag, Role: domain.RoleViewer, QueryOf: DeliveryQuery{}, Query: page, Response: api.List[store.Delivery]{}, Handler: e.hListDeliveries},
		{Method: "GET", Path: "/api/v1/notifications/deliveries/{id}", Summary: "Get a delivery with every attempt and the receiver's answers",
			Tag: tag, Role: domain.RoleViewer, Resource: "notify_delivery", Response: DeliveryView{}, Handler: e.hGetDelivery},
		{Method: "POST", Path: "/api/v1/notifications/deliveries/{id}/replay", Summary: "Queue a failed or dead delivery again (same id, so receivers can deduplicate)",
			Tag: tag, Role: domain.RoleIT, Resource: "notify_delivery", Response: DeliveryView{}, Handler: e.hReplay},
	}
}

// DeliveryQuery filters the delivery list.
type DeliveryQuery struct {
	State     string `query:"state" enum:"pending,sending,delivered,failed,dead" doc:"delivery state"`
	ChannelID string `query:"channel_id" doc:"channel"`
	EventID   string `query:"event_id" doc:"outbox event"`
	EventType string `query:"event_type" doc:"event type, e.g. task.created"`
	Dead      bool   `query:"dead" doc:"true: the dead letter list (same as state=dead)"`
}

// DeliveryView is a delivery with its attempts.
type DeliveryView struct {
	store.Delivery
	History []store.DeliveryAttempt `json:"history"`
}

// RuleInput adds a rule.
type RuleInput struct {
	Events    []string `json:"events"`
	Audience  string   `json:"audience" enum:"admins,address,channel,employee"`
	MinRole   string   `json:"min_role,omitempty" enum:"owner,admin,it,viewer"`
	ChannelID string   `json:"channel_id,omitempty"`
	Address   string   `json:"address,omitempty" maxlen:"320"`
}

type testRequest struct {
	// To is the recipient of a test email (default: the caller's own address).
	To string `json:"to,omitempty" maxlen:"320"`
}

type rotateRequest struct {
	Secret string `json:"secret" maxlen:"4096"`
	// KeepOld is how long the previous secret keeps signing, e.g. "24h" (default 24h).
	KeepOld string `json:"keep_old,omitempty" maxlen:"20"`
}

func orgOf(r *http.Request) string { return api.PrincipalFrom(r.Context()).OrgID }

func (e *Engine) hListChannels(w http.ResponseWriter, r *http.Request) error {
	cs, err := store.ListNotifyChannels(r.Context(), e.db.SQL, orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(nonNil(cs), ""))
}

func (e *Engine) hCreateChannel(w http.ResponseWriter, r *http.Request) error {
	var in ChannelInput
	if err := api.Decode(r, &in); err != nil {
		return err
	}
	c, err := e.CreateChannel(r.Context(), orgOf(r), in)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, c)
}

func (e *Engine) hGetChannel(w http.ResponseWriter, r *http.Request) error {
	c, err := store.GetNotifyChannel(r.Context(), e.db.SQL, orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (e *Engine) hUpdateChannel(w http.ResponseWriter, r *http.Request) error {
	var in ChannelInput
	if err := api.Decode(r, &in); err != nil {
		return err
	}
	c, err := e.UpdateChannel(r.Context(), orgOf(r), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (e *Engine) hDeleteChannel(w http.ResponseWriter, r *http.Request) error {
	if err := e.DeleteChannel(r.Context(), orgOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) hTestChannel(w http.ResponseWriter, r *http.Request) error {
	var in testRequest
	if r.ContentLength != 0 {
		if err := api.Decode(r, &in); err != nil {
			return err
		}
	}
	if in.To == "" {
		in.To = api.PrincipalFrom(r.Context()).UserEmail
	}
	out, err := e.TestChannel(r.Context(), orgOf(r), r.PathValue("id"), in.To)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, out)
}

func (e *Engine) hRotate(w http.ResponseWriter, r *http.Request) error {
	var in rotateRequest
	if err := api.Decode(r, &in); err != nil {
		return err
	}
	var keep time.Duration
	if in.KeepOld != "" {
		d, err := time.ParseDuration(in.KeepOld)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			return api.BadRequest("keep_old must be a duration up to 720h, e.g. 24h")
		}
		keep = d
	}
	c, err := e.RotateSecret(r.Context(), orgOf(r), r.PathValue("id"), in.Secret, keep)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (e *Engine) hListRules(w http.ResponseWriter, r *http.Request) error {
	rs, err := store.ListNotifyRules(r.Context(), e.db.SQL, orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(nonNil(rs), ""))
}

// CreateRule validates and adds a rule.
func (e *Engine) CreateRule(r *http.Request, in RuleInput) (store.NotifyRule, error) {
	ctx, org := r.Context(), orgOf(r)
	rule := store.NotifyRule{OrgID: org, Events: in.Events, Audience: in.Audience, MinRole: in.MinRole, ChannelID: in.ChannelID,
		Address: strings.TrimSpace(in.Address)}
	if len(in.Events) == 0 {
		return rule, api.BadRequest("events: name at least one event type, or \"*\" for all")
	}
	known := KnownEvents()
	for _, ev := range in.Events {
		if ev != "*" && !slices.Contains(known, ev) && !strings.Contains(ev, ".") {
			return rule, api.BadRequest(fmt.Sprintf("events: %q is not an event type (e.g. task.created)", ev))
		}
	}
	switch in.Audience {
	case audienceAdmins:
		if in.MinRole != "" && !domain.Role(in.MinRole).Valid() {
			return rule, api.BadRequest("min_role must be owner, admin, it or viewer")
		}
	case audienceAddress:
		if !strings.Contains(rule.Address, "@") {
			return rule, api.BadRequest("address: an email address is required for audience address")
		}
	case audienceChannel, audienceEmployee:
	default:
		return rule, api.BadRequest("audience must be admins, address, channel or employee")
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := e.rulesOf(ctx, tx, org); err != nil { // defaults first, so a first custom rule adds to them
			return err
		}
		if rule.ChannelID != "" {
			if _, err := store.GetNotifyChannel(ctx, tx, org, rule.ChannelID); err != nil {
				return fmt.Errorf("%w: channel_id names no channel of this organization", store.ErrInvalidInput)
			}
		}
		if err := store.InsertNotifyRule(ctx, tx, &rule); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, org, "notify.rule.created", "notify_rule", rule.ID, nil, rule))
	})
	return rule, err
}

func (e *Engine) hCreateRule(w http.ResponseWriter, r *http.Request) error {
	var in RuleInput
	if err := api.Decode(r, &in); err != nil {
		return err
	}
	rule, err := e.CreateRule(r, in)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, rule)
}

func (e *Engine) hDeleteRule(w http.ResponseWriter, r *http.Request) error {
	ctx, org, id := r.Context(), orgOf(r), r.PathValue("id")
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := store.MarkNotifyOrgSeeded(ctx, tx, org); err != nil { // a deleted default stays deleted
			return err
		}
		if err := store.DeleteNotifyRule(ctx, tx, org, id); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, org, "notify.rule.deleted", "notify_rule", id, nil, nil))
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) hListDeliveries(w http.ResponseWriter, r *http.Request) error {
	var q DeliveryQuery
	if err := api.DecodeQuery(r, &q); err != nil {
		return err
	}
	p, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	if q.Dead {
		q.State = store.DeliveryDead
	}
	ds, next, err := store.ListDeliveries(r.Context(), e.db.SQL, orgOf(r), store.DeliveryFilter{State: q.State, ChannelID: q.ChannelID,
		EventID: q.EventID, EventType: q.EventType}, p)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(nonNil(ds), next))
}

// View reads a delivery with its attempts.
func (e *Engine) View(r *http.Request, id string) (DeliveryView, error) {
	d, err := store.GetDelivery(r.Context(), e.db.SQL, orgOf(r), id)
	if err != nil {
		return DeliveryView{}, err
	}
	atts, err := store.DeliveryAttempts(r.Context(), e.db.SQL, id)
	return DeliveryView{Delivery: d, History: nonNil(atts)}, err
}

func (e *Engine) hGetDelivery(w http.ResponseWriter, r *http.Request) error {
	v, err := e.View(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, v)
}

func (e *Engine) hReplay(w http.ResponseWriter, r *http.Request) error {
	ctx, org, id := r.Context(), orgOf(r), r.PathValue("id")
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := store.ReplayDelivery(ctx, tx, org, id); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, org, "notify.delivery.replayed", "notify_delivery", id, nil, nil))
	})
	if err != nil {
		return err
	}
	signal(e.sendKick)
	v, err := e.View(r, id)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
