package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// The device actions (agent or MDM channel, chosen by the server) add themselves under
// `lanyardctl devices`.
var _ = func() bool {
	extraDeviceCommands = append(extraDeviceCommands, (*app).lockCmd, (*app).wipeCmd, (*app).messageCmd,
		(*app).collectInventoryCmd, (*app).actionsCmd, (*app).approveActionCmd, (*app).revokeAgentsCmd)
	return true
}()

// actionView is a device command as the API returns it.
type actionView struct {
	ID             string     `json:"id"`
	DeviceID       string     `json:"device_id"`
	Type           string     `json:"type"`
	State          string     `json:"state"`
	Channel        string     `json:"channel"`
	TargetSerial   string     `json:"target_serial"`
	IdempotencyKey string     `json:"idempotency_key"`
	CreatedBy      string     `json:"created_by"`
	ApprovedBy     string     `json:"approved_by"`
	Error          string     `json:"error"`
	CreatedAt      time.Time  `json:"created_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
}

func (a *app) printAction(v actionView) error {
	done := "-"
	if v.CompletedAt != nil {
		done = v.CompletedAt.Format(time.RFC3339)
	}
	return a.printKV(v, [][2]string{{"id", v.ID}, {"device", v.DeviceID}, {"type", v.Type}, {"state", v.State}, {"channel", v.Channel},
		{"target serial", v.TargetSerial}, {"idempotency key", orDash(v.IdempotencyKey)}, {"approved by", orDash(v.ApprovedBy)},
		{"error", orDash(v.Error)}, {"completed", done}, {"expires", v.ExpiresAt.Format(time.RFC3339)}})
}

// newIdempotencyKey makes retries of one CLI invocation safe by default.
func newIdempotencyKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "ctl-" + hex.EncodeToString(b)
}

// sendAction posts one action; key "" gets a fresh idempotency key.
func (a *app) sendAction(ctx context.Context, c *Client, deviceID string, body map[string]any, key string) error {
	if key == "" {
		key = newIdempotencyKey()
	}
	body["idempotency_key"] = key
	var v actionView
	if err := c.Do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(deviceID)+"/actions", nil, body, &v); err != nil {
		return err
	}
	return a.printAction(v)
}

func actionFlags(cmd *cobra.Command, key *string, expires *time.Duration) {
	cmd.Flags().StringVar(key, "idempotency-key", "", "make a retried request safe (default: a new key per call)")
	cmd.Flags().DurationVar(expires, "expires-in", 0, "give up if not delivered within this time (default 72h)")
}

func withExpiry(body map[string]any, d time.Duration) map[string]any {
	if d > 0 {
		body["expires_in_seconds"] = int(d / time.Second)
	}
	return body
}

func (a *app) lockCmd() *cobra.Command {
	var msg, key string
	var exp time.Duration
	cmd := &cobra.Command{
		Use: "lock DEVICE_ID", Short: "Lock a device (agent, or MDM for enrolled Macs)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			body := map[string]any{"type": "lock"}
			if msg != "" {
				body["params"] = map[string]string{"message": msg}
			}
			return a.sendAction(ctx, c, args[0], withExpiry(body, exp), key)
		}),
	}
	cmd.Flags().StringVar(&msg, "message", "", "text shown on the lock screen where supported")
	actionFlags(cmd, &key, &exp)
	return cmd
}

func (a *app) wipeCmd() *cobra.Command {
	var confirm, key string
	var exp time.Duration
	cmd := &cobra.Command{
		Use: "wipe DEVICE_ID --confirm SERIAL", Short: "Erase a device; --confirm must repeat its serial number", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			if confirm == "" {
				return fmt.Errorf("--confirm SERIAL is required: type the device's serial number to confirm the wipe")
			}
			return a.sendAction(ctx, c, args[0], withExpiry(map[string]any{"type": "wipe", "confirm": confirm}, exp), key)
		}),
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the device's serial number")
	actionFlags(cmd, &key, &exp)
	return cmd
}

func (a *app) messageCmd() *cobra.Command {
	var title, body, key string
	var exp time.Duration
	cmd := &cobra.Command{
		Use: "message DEVICE_ID --body TEXT", Short: "Show a message on a device", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			return a.sendAction(ctx, c, args[0], withExpiry(map[string]any{"type": "message",
				"params": map[string]string{"title": title, "body": body}}, exp), key)
		}),
	}
	cmd.Flags().StringVar(&title, "title", "", "message title")
	cmd.Flags().StringVar(&body, "body", "", "message text (required)")
	actionFlags(cmd, &key, &exp)
	return cmd
}

func (a *app) collectInventoryCmd() *cobra.Command {
	var key string
	var exp time.Duration
	cmd := &cobra.Command{
		Use: "collect-inventory DEVICE_ID", Short: "Ask a device for a fresh full inventory", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			return a.sendAction(ctx, c, args[0], withExpiry(map[string]any{"type": "collect_inventory"}, exp), key)
		}),
	}
	actionFlags(cmd, &key, &exp)
	return cmd
}

func (a *app) actionsCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use: "actions DEVICE_ID", Short: "List a device's commands and their states", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			items, err := listAll[actionView](ctx, c, "/api/v1/devices/"+url.PathEscape(args[0])+"/actions", nil, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, v := range items {
				rows = append(rows, []string{v.ID, v.Type, v.State, v.Channel, v.CreatedAt.Format(time.RFC3339), orDash(v.Error)})
			}
			return a.print(items, []string{"ID", "TYPE", "STATE", "CHANNEL", "CREATED", "ERROR"}, rows)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")
	return cmd
}

func (a *app) approveActionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "approve-action ACTION_ID", Short: "Approve a wipe waiting for a second admin", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v actionView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/device-actions/"+url.PathEscape(args[0])+"/approve", nil, nil, &v); err != nil {
				return err
			}
			return a.printAction(v)
		}),
	}
}

func (a *app) revokeAgentsCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: "revoke-agents DEVICE_ID", Short: "Revoke the device's agent certificates and cut its streams", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v struct {
				AgentIDs []string `json:"agent_ids"`
			}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(args[0])+"/revoke-agents", nil,
				map[string]string{"reason": reason}, &v); err != nil {
				return err
			}
			return a.printKV(v, [][2]string{{"revoked agents", strconv.Itoa(len(v.AgentIDs))}})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (audited)")
	return cmd
}
