package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// The HR sync commands register themselves in extraCommands.
var _ = func() bool {
	extraCommands = append(extraCommands, (*app).hrCmd)
	return true
}()

type hrConnectionView struct {
	ID                  string     `json:"id"`
	Provider            string     `json:"provider"`
	State               string     `json:"state"`
	Reason              string     `json:"reason"`
	Attention           string     `json:"attention"`
	CompanyName         string     `json:"company_name"`
	Scopes              string     `json:"scopes"`
	ImportDone          bool       `json:"import_done"`
	LastSyncAt          *time.Time `json:"last_sync_at"`
	TerminatedAt        *time.Time `json:"terminated_at"`
	ApproveTerminations bool       `json:"approve_terminations"`
}

type hrRunError struct {
	ExternalID string `json:"external_id"`
	Kind       string `json:"kind"`
	Message    string `json:"message"`
}

type hrRunView struct {
	ID         string       `json:"id"`
	Kind       string       `json:"kind"`
	Trigger    string       `json:"trigger"`
	Status     string       `json:"status"`
	Pages      int          `json:"pages"`
	Seen       int          `json:"seen"`
	Created    int          `json:"created"`
	Updated    int          `json:"updated"`
	Terminated int          `json:"terminated"`
	Skipped    int          `json:"skipped"`
	Unchanged  int          `json:"unchanged"`
	Held       int          `json:"held"`
	Errors     []hrRunError `json:"errors"`
	Error      string       `json:"error"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at"`
}

type hrStatusView struct {
	Connected  bool              `json:"connected"`
	Connection *hrConnectionView `json:"connection"`
	WebhookURL string            `json:"webhook_url"`
	CurrentRun *hrRunView        `json:"current_run"`
	LastRun    *hrRunView        `json:"last_run"`
	Employees  map[string]int    `json:"employees"`
}

func (r hrRunView) progress() string {
	return fmt.Sprintf("pages %d, seen %d: created %d, updated %d, terminated %d, skipped %d, held %d",
		r.Pages, r.Seen, r.Created, r.Updated, r.Terminated, r.Skipped, r.Held)
}

func hrTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func (a *app) hrCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "hr", Short: "HR sync with Justworks: connect, status, sync, disconnect"}

	var secret string
	var wait bool
	var timeout time.Duration
	connect := &cobra.Command{
		Use:   "connect",
		Short: "Connect Justworks (prints the URL where a Justworks admin approves access)",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var resp struct {
				ConnectionID  string    `json:"connection_id"`
				AuthorizeURL  string    `json:"authorize_url"`
				CallbackURL   string    `json:"callback_url"`
				WebhookURL    string    `json:"webhook_url"`
				WebhookSecret string    `json:"webhook_secret"`
				ExpiresAt     time.Time `json:"expires_at"`
			}
			body := map[string]string{}
			if secret != "" {
				body["webhook_secret"] = secret
			}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/hr/connection", nil, body, &resp); err != nil {
				return err
			}
			if err := a.printKV(resp, [][2]string{
				{"open this URL to approve access", resp.AuthorizeURL},
				{"redirect URL (registered with Justworks)", resp.CallbackURL},
				{"webhook URL (give to Justworks)", resp.WebhookURL},
				{"webhook signing secret", orDash(resp.WebhookSecret)},
				{"approve before", resp.ExpiresAt.Local().Format(time.DateTime)},
			}); err != nil {
				return err
			}
			if !wait {
				return nil
			}
			a.println("waiting for approval...")
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			for {
				var st hrStatusView
				if err := c.Do(ctx, http.MethodGet, "/api/v1/hr/connection", nil, nil, &st); err != nil {
					return err
				}
				if st.Connection != nil && st.Connection.ID == resp.ConnectionID {
					switch st.Connection.State {
					case "active":
						switch {
						case st.CurrentRun != nil:
							a.printf("connected to %s\n", orDash(st.Connection.CompanyName))
							return a.waitRun(ctx, c, st.CurrentRun.ID)
						case st.LastRun != nil: // the import already finished
							a.printf("connected to %s\n", orDash(st.Connection.CompanyName))
							return a.waitRun(ctx, c, st.LastRun.ID)
						}
						// Approved a moment ago; the import is about to start.
					case "terminated":
						return fmt.Errorf("connection ended: %s", st.Connection.Reason)
					}
				}
				if err := hrSleep(ctx, time.Second); err != nil {
					return fmt.Errorf("no approval within %s", timeout)
				}
			}
		}),
	}
	connect.Flags().StringVar(&secret, "webhook-secret", "", "webhook signing secret issued by Justworks (default: the server's, or a generated one)")
	connect.Flags().BoolVar(&wait, "wait", false, "wait for the approval and the initial import")
	connect.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long --wait waits")

	status := &cobra.Command{
		Use: "status", Short: "Show the connection, the running or last sync, and employee counts", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var st hrStatusView
			if err := c.Do(ctx, http.MethodGet, "/api/v1/hr/connection", nil, nil, &st); err != nil {
				return err
			}
			if st.Connection == nil {
				if a.asJSON {
					return a.printKV(st, nil)
				}
				a.println("not connected: run `lanyardctl hr connect`")
				return nil
			}
			cn := st.Connection
			pairs := [][2]string{
				{"provider", cn.Provider}, {"state", cn.State}, {"company", orDash(cn.CompanyName)}, {"scopes", orDash(cn.Scopes)},
				{"reason", orDash(cn.Reason)}, {"needs attention", orDash(cn.Attention)}, {"initial import", map[bool]string{true: "done", false: "not finished"}[cn.ImportDone]},
				{"last sync", hrTime(cn.LastSyncAt)}, {"webhook URL", orDash(st.WebhookURL)},
				{"employees", fmt.Sprintf("%d active, %d pending, %d terminated", st.Employees["active"], st.Employees["pending"], st.Employees["terminated"])},
			}
			if st.CurrentRun != nil {
				pairs = append(pairs, [2]string{"running", st.CurrentRun.Kind + " " + st.CurrentRun.ID + ": " + st.CurrentRun.progress()})
			}
			if st.LastRun != nil {
				pairs = append(pairs, [2]string{"last run", fmt.Sprintf("%s %s %s: %s", st.LastRun.Kind, st.LastRun.Status, st.LastRun.ID, st.LastRun.progress())})
			}
			return a.printKV(st, pairs)
		}),
	}

	var full, incremental, approve, waitSync bool
	syncCmd := &cobra.Command{
		Use: "sync", Short: "Start a sync now (--wait shows progress until it ends)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]any{}
			switch {
			case full && incremental:
				return errors.New("choose --full or --incremental, not both")
			case full:
				body["kind"] = "full"
			case incremental:
				body["kind"] = "incremental"
			}
			if approve {
				body["approve_terminations"] = true
			}
			var run hrRunView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/hr/connection/sync", nil, body, &run); err != nil {
				return err
			}
			if !waitSync {
				return a.printKV(run, [][2]string{{"run", run.ID}, {"kind", run.Kind}, {"status", run.Status}})
			}
			a.printf("sync %s (%s) started\n", run.ID, run.Kind)
			return a.waitRun(ctx, c, run.ID)
		}),
	}
	syncCmd.Flags().BoolVar(&full, "full", false, "read every member (not only those changed since the last sync)")
	syncCmd.Flags().BoolVar(&incremental, "incremental", false, "read only members changed since the last sync")
	syncCmd.Flags().BoolVar(&approve, "approve-terminations", false, "apply terminations the mass-termination breaker held (admin)")
	syncCmd.Flags().BoolVar(&waitSync, "wait", false, "show progress until the run ends; exit non-zero unless it succeeded")

	var limit int
	runs := &cobra.Command{
		Use: "runs", Short: "List sync runs, newest first", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var list struct {
				Items []hrRunView `json:"items"`
			}
			q := map[string][]string{"limit": {strconv.Itoa(limit)}}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/hr/sync-runs", q, nil, &list); err != nil {
				return err
			}
			rows := make([][]string, 0, len(list.Items))
			for _, r := range list.Items {
				rows = append(rows, []string{r.ID, r.Kind, r.Trigger, r.Status, r.StartedAt.Local().Format(time.DateTime),
					strconv.Itoa(r.Created), strconv.Itoa(r.Updated), strconv.Itoa(r.Terminated), strconv.Itoa(r.Skipped), strconv.Itoa(r.Held)})
			}
			return a.print(list, []string{"ID", "KIND", "TRIGGER", "STATUS", "STARTED", "CREATED", "UPDATED", "TERMINATED", "SKIPPED", "HELD"}, rows)
		}),
	}
	runs.Flags().IntVar(&limit, "limit", 20, "how many")

	runCmd := &cobra.Command{
		Use: "run ID", Short: "Show one sync run with its errors", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var r hrRunView
			if err := c.Do(ctx, http.MethodGet, "/api/v1/hr/sync-runs/"+args[0], nil, nil, &r); err != nil {
				return err
			}
			if a.asJSON {
				return a.printKV(r, nil)
			}
			if err := a.printKV(r, [][2]string{{"run", r.ID}, {"kind", r.Kind}, {"trigger", r.Trigger}, {"status", r.Status},
				{"progress", r.progress()}, {"started", r.StartedAt.Local().Format(time.DateTime)}, {"finished", hrTime(r.FinishedAt)},
				{"error", orDash(r.Error)}}); err != nil {
				return err
			}
			for _, e := range r.Errors {
				a.printf("  %s %s: %s\n", e.Kind, orDash(e.ExternalID), e.Message)
			}
			return nil
		}),
	}

	var yes bool
	disconnect := &cobra.Command{
		Use: "disconnect --yes", Short: "End the connection now and revoke access (people and devices stay)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			if !yes {
				return errors.New("disconnecting stops HR sync for the organization: add --yes to confirm")
			}
			var cn hrConnectionView
			if err := c.Do(ctx, http.MethodDelete, "/api/v1/hr/connection", nil, nil, &cn); err != nil {
				return err
			}
			return a.printKV(cn, [][2]string{{"connection", cn.ID}, {"state", cn.State}, {"reason", orDash(cn.Reason)}})
		}),
	}
	disconnect.Flags().BoolVar(&yes, "yes", false, "confirm")

	cmd.AddCommand(connect, status, syncCmd, runs, runCmd, disconnect)
	return cmd
}

// waitRun prints a progress line whenever it changes until the run ends.
func (a *app) waitRun(ctx context.Context, c *Client, id string) error {
	last := ""
	for {
		var r hrRunView
		if err := c.Do(ctx, http.MethodGet, "/api/v1/hr/sync-runs/"+id, nil, nil, &r); err != nil {
			return err
		}
		if p := r.progress(); p != last && !a.asJSON {
			a.printf("  %s\n", p)
			last = p
		}
		if r.Status != "running" {
			if a.asJSON {
				_ = a.printKV(r, nil)
			} else {
				a.printf("sync %s: %s\n", r.Status, orDash(r.Error))
				for _, e := range r.Errors {
					a.printf("  %s %s: %s\n", e.Kind, orDash(e.ExternalID), e.Message)
				}
			}
			if r.Status != "succeeded" {
				return fmt.Errorf("sync %s ended %s", r.ID, r.Status)
			}
			return nil
		}
		if err := hrSleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
}

func hrSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
