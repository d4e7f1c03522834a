package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"
)

// The app access commands (connectors, reconciliation orphans) register in extraCommands.
var _ = func() bool {
	extraCommands = append(extraCommands, (*app).appsCmd)
	return true
}()

func (a *app) appsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apps", Short: "App access: connectors and reconciliation orphans"}
	conns := &cobra.Command{Use: "connectors", Short: "List app connectors", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[map[string]any](ctx, c, "/api/v1/apps/connectors", nil, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, m := range items {
				rows = append(rows, []string{field(m, "app"), field(m, "kind"), field(m, "auth_kind"), field(m, "base_url"), field(m, "revoke_mode")})
			}
			return a.print(items, []string{"APP", "KIND", "AUTH", "BASE URL", "REVOKE"}, rows)
		})}
	var set struct {
		kind, baseURL, settings, auth, tokenEnv, revoke string
	}
	connect := &cobra.Command{Use: "connect APP", Short: "Create or replace an app connector (the kind checks its settings; the secret is read from --secret-env)",
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			body := map[string]any{"app": args[0], "kind": set.kind, "base_url": set.baseURL, "auth_kind": set.auth, "revoke_mode": set.revoke}
			if set.settings != "" {
				if !json.Valid([]byte(set.settings)) {
					return fmt.Errorf("--settings is not JSON")
				}
				body["settings"] = json.RawMessage(set.settings)
			}
			if set.tokenEnv != "" {
				v, ok := os.LookupEnv(set.tokenEnv)
				if !ok {
					return fmt.Errorf("environment variable %s is not set", set.tokenEnv)
				}
				body["token"] = v
			}
			var out map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/apps/connectors", nil, body, &out); err != nil {
				return err
			}
			return a.printKV(out, [][2]string{{"app", field(out, "app")}, {"kind", field(out, "kind")}, {"auth", field(out, "auth_kind")}})
		})}
	connect.Flags().StringVar(&set.kind, "kind", "scim", "connector kind (scim, google, entra, okta, github, slack)")
	connect.Flags().StringVar(&set.baseURL, "base-url", "", "the provider's API base URL")
	connect.Flags().StringVar(&set.settings, "settings", "", `the kind's settings as JSON, e.g. '{"username":"lanyard"}'`)
	connect.Flags().StringVar(&set.auth, "auth", "bearer", "bearer, basic or oauth")
	connect.Flags().StringVar(&set.tokenEnv, "secret-env", "", "environment variable holding the secret (token, password or client secret)")
	connect.Flags().StringVar(&set.revoke, "revoke-mode", "deactivate", "deactivate or delete")
	var all bool
	orphans := &cobra.Command{Use: "orphans", Short: "Accounts reconciliation could not match (terminated people, or nobody)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			if all {
				q.Set("all", "true")
			}
			items, err := listAll[map[string]any](ctx, c, "/api/v1/apps/orphans", q, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, m := range items {
				rows = append(rows, []string{field(m, "app"), field(m, "user_name"), field(m, "reason"), field(m, "action"),
					field(m, "first_seen_at"), field(m, "last_seen_at"), field(m, "resolved_at")})
			}
			return a.print(items, []string{"APP", "ACCOUNT", "REASON", "ACTION", "FIRST SEEN", "LAST SEEN", "RESOLVED"}, rows)
		})}
	orphans.Flags().BoolVar(&all, "all", false, "include resolved orphans")
	reconcile := &cobra.Command{Use: "reconcile", Short: "Reconcile every app that can list its accounts now", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var rep map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/apps/reconcile", nil, nil, &rep); err != nil {
				return err
			}
			return a.printKV(rep, [][2]string{{"orphans", field(rep, "orphans")}, {"new", field(rep, "new")}, {"errors", field(rep, "errors")}})
		})}
	cmd.AddCommand(conns, connect, orphans, reconcile)
	return cmd
}
