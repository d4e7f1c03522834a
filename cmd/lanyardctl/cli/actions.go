package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	extraDeviceCommands = append(extraDeviceCommands, (*app).lockCmd, (*app).unlockCmd, (*app).wipeCmd, (*app).messageCmd,
		(*app).collectInventoryCmd, (*app).actionsCmd, (*app).actionCmd, (*app).approveActionCmd, (*app).revokeAgentsCmd,
		(*app).recoveryKeysCmd)
	return true
}()

// actionView is a device command as the API returns it (the fields the CLI prints;
// --json prints the server's whole answer).
type actionView struct {
	ID             string        `json:"id"`
	DeviceID       string        `json:"device_id"`
	Type           string        `json:"type"`
	State          string        `json:"state"`
	Channel        string        `json:"channel"`
	TargetSerial   string        `json:"target_serial"`
	IdempotencyKey string        `json:"idempotency_key"`
	CreatedBy      string        `json:"created_by"`
	ApprovedBy     string        `json:"approved_by"`
	Error          string        `json:"error"`
	Evidence       *evidenceView `json:"evidence"`
	CreatedAt      time.Time     `json:"created_at"`
	SentAt         *time.Time    `json:"sent_at"`
	ReceivedAt     *time.Time    `json:"received_at"`
	StartedAt      *time.Time    `json:"started_at"`
	CompletedAt    *time.Time    `json:"completed_at"`
	ConfirmedAt    *time.Time    `json:"confirmed_at"`
	Confirmation   string        `json:"confirmation"`
	ExpiresAt      time.Time     `json:"expires_at"`
	raw            json.RawMessage
}

// evidenceView is what the device checked (the API's evidence object).
type evidenceView struct {
	Verified     bool        `json:"verified"`
	SerialNumber string      `json:"serial_number"`
	HardwareUUID string      `json:"hardware_uuid"`
	Checks       []checkView `json:"checks"`
	WipeMethod   string      `json:"wipe_method"`
	FinalAction  string      `json:"final_action"`
	Mode         struct {
		DryRun           bool `json:"dry_run"`
		SerialOverridden bool `json:"serial_overridden"`
	} `json:"mode"`
}

type checkView struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Observed string `json:"observed"`
	Expected string `json:"expected"`
}

// UnmarshalJSON keeps the server's answer for --json.
func (v *actionView) UnmarshalJSON(b []byte) error {
	type plain actionView
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*v = actionView(p)
	v.raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON prints the server's answer as it came.
func (v actionView) MarshalJSON() ([]byte, error) {
	if len(v.raw) > 0 {
		return v.raw, nil
	}
	type plain actionView
	return json.Marshal(plain(v))
}

func fmtRFC(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// stateLine is the state with what qualifies it: a simulated or unverified result, a
// confirmed erase.
func stateLine(v actionView) string {
	s := v.State
	switch {
	case v.State == "simulated":
		s += " (a dry-run or test agent: nothing counts as done)"
	case v.State == "done" && v.Confirmation != "":
		s += " (erase confirmed: " + v.Confirmation + ")"
	case v.State == "done" && v.Type == "wipe" && v.Channel == "mdm":
		s += " (the Mac acknowledged; erase not confirmed yet)"
	case v.State == "done" && v.Evidence != nil && v.Evidence.WipeMethod == "best_effort":
		s += " (best effort: files removed, no crypto-erase)"
	}
	return s
}

// checkLines renders each check on its own line: "ok   name: found X (want Y)".
func checkLines(ev *evidenceView) [][2]string {
	if ev == nil {
		return nil
	}
	verified := "no"
	if ev.Verified {
		verified = "yes"
	}
	id := ev.SerialNumber
	if id == "" {
		id = ev.HardwareUUID
	}
	out := [][2]string{{"evidence verified", verified}, {"measured on", orDash(id)}}
	if ev.WipeMethod != "" {
		out = append(out, [2]string{"wipe method", ev.WipeMethod})
	}
	if ev.FinalAction != "" {
		out = append(out, [2]string{"then", ev.FinalAction})
	}
	if len(ev.Checks) == 0 {
		out = append(out, [2]string{"checks", "none"})
	}
	for _, c := range ev.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		line := mark + " " + c.Name
		if c.Observed != "" {
			line += ": found " + c.Observed
		}
		if c.Expected != "" {
			line += " (want " + c.Expected + ")"
		}
		out = append(out, [2]string{"check", line})
	}
	return out
}

func (a *app) printAction(v actionView) error {
	pairs := [][2]string{{"id", v.ID}, {"device", v.DeviceID}, {"type", v.Type}, {"state", stateLine(v)}, {"channel", v.Channel},
		{"target serial", orDash(v.TargetSerial)}, {"idempotency key", orDash(v.IdempotencyKey)}, {"approved by", orDash(v.ApprovedBy)},
		{"reason", orDash(v.Error)}, {"sent", fmtRFC(v.SentAt)}, {"received", fmtRFC(v.ReceivedAt)}, {"started", fmtRFC(v.StartedAt)},
		{"completed", fmtRFC(v.CompletedAt)}}
	if v.ConfirmedAt != nil {
		pairs = append(pairs, [2]string{"confirmed", fmtRFC(v.ConfirmedAt) + " (" + v.Confirmation + ")"})
	}
	pairs = append(pairs, [2]string{"expires", v.ExpiresAt.Format(time.RFC3339)})
	pairs = append(pairs, checkLines(v.Evidence)...)
	return a.printKV(v, pairs)
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

func (a *app) unlockCmd() *cobra.Command {
	var key string
	var exp time.Duration
	cmd := &cobra.Command{
		Use: "unlock DEVICE_ID", Short: "Undo an agent lock (Linux, Windows; admin). A Mac locked through MDM is unlocked at the Mac with its PIN",
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			return a.sendAction(ctx, c, args[0], withExpiry(map[string]any{"type": "unlock"}, exp), key)
		}),
	}
	actionFlags(cmd, &key, &exp)
	return cmd
}

// evidenceSummary is the one-line evidence column: "3/3 ok", "1/2 ok, unverified".
func evidenceSummary(ev *evidenceView) string {
	if ev == nil {
		return "-"
	}
	ok := 0
	for _, c := range ev.Checks {
		if c.OK {
			ok++
		}
	}
	s := fmt.Sprintf("%d/%d ok", ok, len(ev.Checks))
	if !ev.Verified {
		s += ", unverified"
	}
	return s
}

func (a *app) actionsCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use: "actions DEVICE_ID", Short: "List a device's commands, their states, reasons and evidence", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			items, err := listAll[actionView](ctx, c, "/api/v1/devices/"+url.PathEscape(args[0])+"/actions", nil, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, v := range items {
				rows = append(rows, []string{v.ID, v.Type, v.State, v.Channel, v.CreatedAt.Format(time.RFC3339), evidenceSummary(v.Evidence), orDash(v.Error)})
			}
			return a.print(items, []string{"ID", "TYPE", "STATE", "CHANNEL", "CREATED", "CHECKS", "REASON"}, rows)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")
	return cmd
}

func (a *app) actionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "action ACTION_ID", Short: "Show one device command: state, reason, timestamps and every check the device reported", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v actionView
			if err := c.Do(ctx, http.MethodGet, "/api/v1/device-actions/"+url.PathEscape(args[0]), nil, nil, &v); err != nil {
				return err
			}
			return a.printAction(v)
		}),
	}
}

// recoveryKeyView is an escrowed recovery key as revealed by the API.
type recoveryKeyView struct {
	ID               string    `json:"id"`
	Kind             string    `json:"kind"`
	Volume           string    `json:"volume"`
	ProtectorID      string    `json:"protector_id"`
	RecoveryPassword string    `json:"recovery_password"`
	EscrowedAt       time.Time `json:"escrowed_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func (a *app) recoveryKeysCmd() *cobra.Command {
	return &cobra.Command{
		Use: "recovery-keys DEVICE_ID", Short: "Reveal a device's escrowed BitLocker recovery passwords (admin; audited)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			items, err := listAll[recoveryKeyView](ctx, c, "/api/v1/devices/"+url.PathEscape(args[0])+"/recovery-keys", nil, 0)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, k := range items {
				rows = append(rows, []string{k.Volume, k.ProtectorID, k.RecoveryPassword, k.UpdatedAt.Format(time.RFC3339)})
			}
			if len(items) == 0 && !a.asJSON {
				_, err := a.println("no recovery key escrowed for this device")
				return err
			}
			return a.print(items, []string{"VOLUME", "PROTECTOR", "RECOVERY PASSWORD", "ESCROWED"}, rows)
		}),
	}
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
