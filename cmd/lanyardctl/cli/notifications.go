package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// notificationsCmd manages channels, rules and deliveries (/api/v1/notifications).
func (a *app) notificationsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "notifications", Aliases: []string{"notify"}, Short: "Notification channels, rules, deliveries and replays"}
	cmd.AddCommand(a.notifyChannelsCmd(), a.notifyRulesCmd(), a.notifyDeliveriesCmd(), a.notifyReplayCmd(), a.notifyTestCmd())
	return cmd
}

func channelRows(cs []store.NotifyChannel) [][]string {
	rows := make([][]string, 0, len(cs))
	for _, c := range cs {
		rows = append(rows, []string{c.ID, c.Name, c.Kind, strconv.FormatBool(c.Enabled), strconv.FormatBool(c.HasSecret), string(c.Config)})
	}
	return rows
}

var channelHeaders = []string{"ID", "NAME", "KIND", "ENABLED", "SECRET SET", "CONFIG"}

func (a *app) notifyChannelsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "channels", Short: "Where notifications go: email, slack, webhook, log"}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List channels", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			cs, err := listAll[store.NotifyChannel](ctx, c, "/api/v1/notifications/channels", nil, 0)
			if err != nil {
				return err
			}
			return a.print(cs, channelHeaders, channelRows(cs))
		})})

	var in notify.ChannelInput
	var email notify.EmailConfig
	var hookURL string
	var secretEnv string
	create := &cobra.Command{Use: "create", Short: "Add a channel (the secret is read from an environment variable, never a flag)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			switch in.Kind {
			case "email":
				in.Email = &email
			case "webhook":
				in.Webhook = &notify.WebhookConfig{URL: hookURL}
			}
			generated := false
			if secretEnv != "" {
				in.Secret = envSecret(secretEnv)
				if in.Secret == "" {
					return fmt.Errorf("environment variable %s is empty", secretEnv)
				}
			} else if in.Kind == "webhook" {
				in.Secret, generated = webhook.NewSecret(), true
			}
			var out store.NotifyChannel
			if err := c.Do(ctx, http.MethodPost, "/api/v1/notifications/channels", nil, in, &out); err != nil {
				return err
			}
			if err := a.print(out, channelHeaders, channelRows([]store.NotifyChannel{out})); err != nil {
				return err
			}
			if generated {
				// Shown once, here, so the receiver can be given it; Lanyard never returns it.
				_, _ = fmt.Fprintf(a.out, "\nSigning secret (give it to the receiver; it is not shown again):\n%s\n", in.Secret)
			}
			return nil
		})}
	f := create.Flags()
	f.StringVar(&in.Name, "name", "", "channel name")
	f.StringVar(&in.Kind, "kind", "", "email, slack, webhook or log")
	f.StringVar(&email.Host, "smtp-host", "", "email: SMTP host")
	f.IntVar(&email.Port, "smtp-port", 0, "email: SMTP port (default 587)")
	f.StringVar(&email.Username, "smtp-user", "", "email: SMTP username")
	f.StringVar(&email.From, "from", "", `email: sender, e.g. "IT <it@acme.example>"`)
	f.StringVar(&email.TLS, "tls", "", "email: starttls (default), tls or none (loopback only)")
	f.StringVar(&hookURL, "url", "", "webhook: the receiver's URL")
	f.StringVar(&secretEnv, "secret-env", "", "name of the environment variable holding the secret: SMTP password, Slack webhook URL or webhook signing secret (webhook: generated when omitted)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("kind")
	cmd.AddCommand(create)

	var enable, disable bool
	set := &cobra.Command{Use: "set <id>", Short: "Enable or disable a channel, or replace its secret", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var patch notify.ChannelInput
			if enable || disable {
				v := enable
				patch.Enabled = &v
			}
			if secretEnv != "" {
				patch.Secret = envSecret(secretEnv)
			}
			var out store.NotifyChannel
			if err := c.Do(ctx, http.MethodPatch, "/api/v1/notifications/channels/"+url.PathEscape(args[0]), nil, patch, &out); err != nil {
				return err
			}
			return a.print(out, channelHeaders, channelRows([]store.NotifyChannel{out}))
		})}
	set.Flags().BoolVar(&enable, "enable", false, "enable the channel")
	set.Flags().BoolVar(&disable, "disable", false, "disable the channel")
	set.Flags().StringVar(&secretEnv, "secret-env", "", "environment variable holding a new secret")
	cmd.AddCommand(set)

	cmd.AddCommand(&cobra.Command{Use: "delete <id>", Short: "Remove a channel and the rules that name it", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			if err := c.Do(ctx, http.MethodDelete, "/api/v1/notifications/channels/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
				return err
			}
			_, _ = a.printf("channel %s removed\n", args[0])
			return nil
		})})

	var keepOld string
	rotate := &cobra.Command{Use: "rotate-secret <id>", Short: "Give a webhook a new signing secret; the old one keeps signing beside it for --keep-old",
		Args: cobra.ExactArgs(1), RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			secret := webhook.NewSecret()
			if secretEnv != "" {
				secret = envSecret(secretEnv)
			}
			var out store.NotifyChannel
			if err := c.Do(ctx, http.MethodPost, "/api/v1/notifications/channels/"+url.PathEscape(args[0])+"/rotate-secret", nil,
				map[string]string{"secret": secret, "keep_old": keepOld}, &out); err != nil {
				return err
			}
			if err := a.print(out, channelHeaders, channelRows([]store.NotifyChannel{out})); err != nil {
				return err
			}
			if secretEnv == "" {
				_, _ = fmt.Fprintf(a.out, "\nNew signing secret (not shown again):\n%s\n", secret)
			}
			return nil
		})}
	rotate.Flags().StringVar(&keepOld, "keep-old", "24h", "how long the previous secret keeps signing")
	rotate.Flags().StringVar(&secretEnv, "secret-env", "", "environment variable holding the new secret (default: generate one)")
	cmd.AddCommand(rotate)
	return cmd
}

func (a *app) notifyTestCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{Use: "test <channel-id>", Short: "Send a test message now and show the receiver's answer", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var out notify.Outcome
			if err := c.Do(ctx, http.MethodPost, "/api/v1/notifications/channels/"+url.PathEscape(args[0])+"/test", nil,
				map[string]string{"to": to}, &out); err != nil {
				return err
			}
			if err := a.print(out, []string{"RESULT", "STATUS", "DETAIL", "MS"},
				[][]string{{out.Result, strconv.Itoa(out.Status), out.Detail, strconv.FormatInt(out.DurationMS, 10)}}); err != nil {
				return err
			}
			if out.Result != "delivered" {
				return fmt.Errorf("the test message was not delivered: %s", out.Detail)
			}
			return nil
		})}
	cmd.Flags().StringVar(&to, "to", "", "email: the recipient (default: you)")
	return cmd
}

func (a *app) notifyRulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Which events reach whom"}
	rows := func(rs []store.NotifyRule) [][]string {
		out := make([][]string, 0, len(rs))
		for _, r := range rs {
			who := r.Audience
			switch r.Audience {
			case "admins":
				who += " (" + r.MinRole + "+)"
			case "address":
				who += " " + r.Address
			case "channel":
				if r.ChannelID == "" {
					who += " (all non-email)"
				} else {
					who += " " + r.ChannelID
				}
			}
			out = append(out, []string{r.ID, strings.Join(r.Events, ","), who})
		}
		return out
	}
	headers := []string{"ID", "EVENTS", "AUDIENCE"}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List rules", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			rs, err := listAll[store.NotifyRule](ctx, c, "/api/v1/notifications/rules", nil, 0)
			if err != nil {
				return err
			}
			return a.print(rs, headers, rows(rs))
		})})
	var in notify.RuleInput
	add := &cobra.Command{Use: "add", Short: "Add a rule", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var out store.NotifyRule
			if err := c.Do(ctx, http.MethodPost, "/api/v1/notifications/rules", nil, in, &out); err != nil {
				return err
			}
			return a.print(out, headers, rows([]store.NotifyRule{out}))
		})}
	add.Flags().StringSliceVar(&in.Events, "events", nil, `event types, e.g. task.created,digest.due ("*" for all)`)
	add.Flags().StringVar(&in.Audience, "audience", "", "admins, address, channel or employee")
	add.Flags().StringVar(&in.MinRole, "min-role", "", "admins: the least role (default it)")
	add.Flags().StringVar(&in.ChannelID, "channel", "", "channel: the channel (default every non-email channel); email audiences: the email channel")
	add.Flags().StringVar(&in.Address, "address", "", "address: the email address")
	cmd.AddCommand(add)
	cmd.AddCommand(&cobra.Command{Use: "delete <id>", Short: "Remove a rule", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			if err := c.Do(ctx, http.MethodDelete, "/api/v1/notifications/rules/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
				return err
			}
			_, _ = a.printf("rule %s removed\n", args[0])
			return nil
		})})
	return cmd
}

func deliveryRows(ds []store.Delivery) [][]string {
	rows := make([][]string, 0, len(ds))
	for _, d := range ds {
		rows = append(rows, []string{d.ID, d.EventType, d.ChannelKind, d.Recipient, d.State, strconv.Itoa(d.Attempts), d.LastError})
	}
	return rows
}

var deliveryHeaders = []string{"ID", "EVENT", "CHANNEL", "TO", "STATE", "ATTEMPTS", "LAST ERROR"}

func (a *app) notifyDeliveriesCmd() *cobra.Command {
	var state, channel, event, eventType string
	var dead bool
	var limit int
	cmd := &cobra.Command{Use: "deliveries [id]", Short: "List deliveries, or show one with its attempts", Args: cobra.MaximumNArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			if len(args) == 1 {
				var v notify.DeliveryView
				if err := c.Do(ctx, http.MethodGet, "/api/v1/notifications/deliveries/"+url.PathEscape(args[0]), nil, nil, &v); err != nil {
					return err
				}
				rows := make([][]string, 0, len(v.History))
				for _, at := range v.History {
					rows = append(rows, []string{strconv.Itoa(at.N), at.At.Format("2006-01-02 15:04:05"), at.Outcome, strconv.Itoa(at.Status), at.Detail})
				}
				if err := a.print(v, deliveryHeaders, deliveryRows([]store.Delivery{v.Delivery})); err != nil || a.asJSON {
					return err
				}
				_, _ = a.printf("\n")
				return a.print(nil, []string{"#", "AT", "OUTCOME", "STATUS", "RECEIVER SAID"}, rows)
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "channel_id": channel, "event_id": event, "event_type": eventType} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if dead {
				q.Set("dead", "true")
			}
			ds, err := listAll[store.Delivery](ctx, c, "/api/v1/notifications/deliveries", q, limit)
			if err != nil {
				return err
			}
			return a.print(ds, deliveryHeaders, deliveryRows(ds))
		})}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "pending, sending, delivered, failed or dead")
	f.StringVar(&channel, "channel", "", "channel id")
	f.StringVar(&event, "event", "", "outbox event id")
	f.StringVar(&eventType, "type", "", "event type")
	f.BoolVar(&dead, "dead", false, "the dead letter list")
	f.IntVar(&limit, "limit", 200, "most rows")
	return cmd
}

func (a *app) notifyReplayCmd() *cobra.Command {
	return &cobra.Command{Use: "replay <delivery-id>...", Short: "Queue failed or dead deliveries again", Args: cobra.MinimumNArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			for _, id := range args {
				var v notify.DeliveryView
				if err := c.Do(ctx, http.MethodPost, "/api/v1/notifications/deliveries/"+url.PathEscape(id)+"/replay", nil, nil, &v); err != nil {
					return fmt.Errorf("replay %s: %w", id, err)
				}
				_, _ = a.printf("%s queued again (%s)\n", v.ID, v.State)
			}
			return nil
		})}
}

// envSecret reads a secret from the environment (a flag would leave it in shell history
// and the process list).
func envSecret(name string) string { return strings.TrimSpace(os.Getenv(name)) }
