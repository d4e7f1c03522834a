// Package cli is lanyardctl: a thin client of the REST API. Each area lives in its own
// file and adds itself in newRoot.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// app is shared by every subcommand.
type app struct {
	out    io.Writer
	asJSON bool
	client func() (*Client, error)
}

// Run executes lanyardctl with args.
func Run(ctx context.Context, args []string, out io.Writer) error {
	root := newRoot(out)
	root.SetArgs(args)
	root.SetOut(out)
	return root.ExecuteContext(ctx)
}

func newRoot(out io.Writer) *cobra.Command {
	a := &app{out: out}
	a.client = func() (*Client, error) {
		s, err := loadSettings()
		if err != nil {
			return nil, err
		}
		return newClient(s), nil
	}
	root := &cobra.Command{
		Use:           "lanyardctl",
		Short:         "Manage Lanyard from the terminal",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&a.asJSON, "json", false, "print JSON instead of a table")
	root.AddCommand(
		a.loginCmd(),
		a.orgCmd(),
		a.tokensCmd(),
		a.employeesCmd(),
		a.devicesCmd(),
		a.auditCmd(),
		a.notificationsCmd(),
	)
	for _, extra := range extraCommands {
		root.AddCommand(extra(a))
	}
	return root
}

// extraCommands lets capability files register their command trees without editing
// newRoot (each adds itself in an init-free way: append in a var block of its file).
var extraCommands []func(a *app) *cobra.Command

func (a *app) loginCmd() *cobra.Command {
	var url, token string
	cmd := &cobra.Command{
		Use:   "login --url URL --token TOKEN",
		Short: "Save the API URL and token (checked against the server) to the config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" || token == "" {
				return fmt.Errorf("both --url and --token are required")
			}
			s := Settings{URL: strings.TrimRight(url, "/"), Token: token}
			var org struct {
				Name string `json:"name"`
				Plan string `json:"plan"`
			}
			if err := newClient(s).Do(cmd.Context(), http.MethodGet, "/api/v1/org", nil, nil, &org); err != nil {
				return fmt.Errorf("login check failed: %w", err)
			}
			p, err := saveSettings(s)
			if err != nil {
				return err
			}
			a.printf("logged in to %s (%s, plan %s); settings saved to %s\n", s.URL, org.Name, org.Plan, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "control plane URL, e.g. http://localhost:8080")
	cmd.Flags().StringVar(&token, "token", "", "API token")
	return cmd
}

// print writes v as JSON with --json, else as a table of headers and rows.
func (a *app) print(v any, headers []string, rows [][]string) error {
	if a.asJSON {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(escAll(headers), "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(escAll(r), "\t"))
	}
	return tw.Flush()
}

func escAll(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = Esc(c)
	}
	return out
}

// printKV writes one object as "key: value" lines, or JSON.
func (a *app) printKV(v any, pairs [][2]string) error {
	if a.asJSON {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", Esc(p[0]), Esc(p[1]))
	}
	return tw.Flush()
}

// run adapts an API call to cobra: it loads the saved login first.
func (a *app) run(fn func(ctx context.Context, c *Client, args []string) error) func(cmd *cobra.Command, args []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, args)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
