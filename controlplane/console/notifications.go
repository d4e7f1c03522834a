package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Notifications (GET /api/v1/notifications/...): the deliveries with their state and
// failures, one delivery with every attempt, and the channels with a "send test" button.
// Replay and send-test are rows of the action table, so the role test covers them.

func notificationPages() []page {
	return []page{
		{Pattern: "GET /notifications", Handler: notificationsPage},
		{Pattern: "GET /notifications/{id}", Handler: notificationPage},
	}
}

func notificationActions() []action {
	return []action{
		{Name: "replay delivery", Form: "POST /notifications/{id}/replay", API: "POST /api/v1/notifications/deliveries/{id}/replay",
			Done: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
				return c.done(w, r, "/notifications/"+url.PathEscape(r.PathValue("id")), "Queued again: it is sent with the same id, so a receiver that already has it can tell.")
			}},
		{Name: "send test", Form: "POST /notifications/channels/{id}/test", API: "POST /api/v1/notifications/channels/{id}/test",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return map[string]string{"to": form(r, "to")}, nil
			}, Sample: map[string]string{"to": "it@example.com"},
			Done: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
				var out struct {
					Result string `json:"result"`
					Status int    `json:"status"`
					Detail string `json:"detail"`
				}
				_ = json.Unmarshal(raw, &out)
				msg := fmt.Sprintf("Test %s", out.Result)
				if out.Status != 0 {
					msg += fmt.Sprintf(" (%d)", out.Status)
				}
				if out.Detail != "" {
					msg += ": " + out.Detail
				}
				return c.done(w, r, "/notifications", msg)
			}},
	}
}

type notificationsView struct {
	Deliveries api.List[store.Delivery]
	Channels   []store.NotifyChannel
	CanAdmin   bool
	CanReplay  bool
	State      string
	Next       string
}

func notificationsPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := notificationsView{CanAdmin: rq.P.Role.AtLeast(domain.RoleAdmin), CanReplay: rq.P.Role.AtLeast(domain.RoleIT),
		State: r.URL.Query().Get("state")}
	q := listQuery(r, 100, "state", "channel_id", "event_type")
	if err := c.call(r, rq, "GET", "/api/v1/notifications/deliveries?"+q.Encode(), nil, &v.Deliveries); err != nil {
		return err
	}
	v.Next = nextPage(r, v.Deliveries.NextCursor)
	if v.CanAdmin {
		var chs api.List[store.NotifyChannel]
		if err := c.call(r, rq, "GET", "/api/v1/notifications/channels", nil, &chs); err != nil {
			return err
		}
		v.Channels = chs.Items
	}
	return c.render(w, rq, http.StatusOK, "notifications", "", "Notifications", "notifications", v)
}

type notificationView struct {
	Delivery  store.Delivery
	History   []store.DeliveryAttempt
	CanReplay bool
}

func notificationPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var v struct {
		store.Delivery
		History []store.DeliveryAttempt `json:"history"`
	}
	if err := c.call(r, rq, "GET", "/api/v1/notifications/deliveries/"+url.PathEscape(r.PathValue("id")), nil, &v); err != nil {
		return err
	}
	view := notificationView{Delivery: v.Delivery, History: v.History,
		CanReplay: rq.P.Role.AtLeast(domain.RoleIT) && (v.State == store.DeliveryFailed || v.State == store.DeliveryDead)}
	return c.render(w, rq, http.StatusOK, "notification", "", "Delivery "+v.ID, "notifications", view)
}
