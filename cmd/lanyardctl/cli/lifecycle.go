package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// The lifecycle commands (workflows, tasks, offboard, assets, warehouses, retrievals,
// procurement orders) register themselves in extraCommands.
var _ = func() bool {
	extraCommands = append(extraCommands, (*app).workflowsCmd, (*app).tasksCmd, (*app).offboardCmd, (*app).assetsCmd,
		(*app).warehousesCmd, (*app).retrievalsCmd, (*app).ordersCmd)
	return true
}()

type wfStep struct {
	ID        string          `json:"id"`
	Seq       int             `json:"seq"`
	Kind      string          `json:"kind"`
	State     string          `json:"state"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	Reason    string          `json:"reason"`
	Output    json.RawMessage `json:"output"`
}

type wfTask struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Title     string `json:"title"`
	Assignee  string `json:"assignee"`
	DueAt     string `json:"due_at"`
	State     string `json:"state"`
	SubjectID string `json:"subject_id"`
}

type workflow struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`
	EmployeeID string   `json:"employee_id"`
	State      string   `json:"state"`
	RunAt      string   `json:"run_at"`
	Reason     string   `json:"reason"`
	Steps      []wfStep `json:"steps"`
	Tasks      []wfTask `json:"tasks"`
}

func (a *app) showWorkflow(w workflow) error {
	if a.asJSON {
		return a.print(w, nil, nil)
	}
	if err := a.printKV(w, [][2]string{{"id", w.ID}, {"kind", w.Kind}, {"employee", w.EmployeeID}, {"state", w.State},
		{"run at", w.RunAt}, {"reason", orDash(w.Reason)}}); err != nil {
		return err
	}
	a.println()
	var rows [][]string
	for _, s := range w.Steps {
		note := s.LastError
		if s.Reason != "" {
			note = s.Reason
		}
		rows = append(rows, []string{strconv.Itoa(s.Seq), s.Kind, s.State, strconv.Itoa(s.Attempts), orDash(note), string(s.Output)})
	}
	if err := a.print(nil, []string{"#", "STEP", "STATE", "ATTEMPTS", "ERROR/REASON", "RESULT"}, rows); err != nil {
		return err
	}
	if len(w.Tasks) > 0 {
		a.println()
		rows = rows[:0]
		for _, t := range w.Tasks {
			rows = append(rows, []string{t.ID, t.Kind, t.State, orDash(t.Assignee), orDash(t.DueAt), t.Title})
		}
		return a.print(nil, []string{"TASK", "KIND", "STATE", "ASSIGNEE", "DUE", "TITLE"}, rows)
	}
	return nil
}

func (a *app) workflowsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "workflows", Short: "Onboarding and offboarding workflows"}
	var state, kind, employee string
	list := &cobra.Command{Use: "list", Short: "List workflows", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "kind": kind, "employee_id": employee} {
				if v != "" {
					q.Set(k, v)
				}
			}
			items, err := listAll[workflow](ctx, c, "/api/v1/workflows", q, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, w := range items {
				rows = append(rows, []string{w.ID, w.Kind, w.EmployeeID, w.State, w.RunAt, orDash(w.Reason)})
			}
			return a.print(items, []string{"ID", "KIND", "EMPLOYEE", "STATE", "RUN AT", "REASON"}, rows)
		})}
	list.Flags().StringVar(&state, "state", "", "scheduled, running, paused, failed, succeeded, cancelled")
	list.Flags().StringVar(&kind, "kind", "", "onboarding or offboarding")
	list.Flags().StringVar(&employee, "employee", "", "employee id")
	get := &cobra.Command{Use: "get ID", Short: "Show a workflow's steps, results and tasks", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var w workflow
			if err := c.Do(ctx, http.MethodGet, "/api/v1/workflows/"+url.PathEscape(args[0]), nil, nil, &w); err != nil {
				return err
			}
			return a.showWorkflow(w)
		})}
	stepAction := func(use, short, action string, needReason bool) *cobra.Command {
		var reason string
		c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(2),
			RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
				if needReason && strings.TrimSpace(reason) == "" {
					return fmt.Errorf("--reason is required")
				}
				var body any
				if needReason {
					body = map[string]string{"reason": reason}
				}
				var w workflow
				if err := c.Do(ctx, http.MethodPost, "/api/v1/workflows/"+url.PathEscape(args[0])+"/steps/"+url.PathEscape(args[1])+"/"+action,
					nil, body, &w); err != nil {
					return err
				}
				return a.showWorkflow(w)
			})}
		if needReason {
			c.Flags().StringVar(&reason, "reason", "", "why the step is skipped (required, audited)")
		}
		return c
	}
	wfAction := func(use, short, action string) *cobra.Command {
		var reason string
		c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
				path := "/api/v1/workflows/" + url.PathEscape(args[0]) + "/" + action
				if action == "cancel" {
					var rep struct {
						Reason      string   `json:"reason"`
						AlreadyDone []string `json:"already_done"`
						Stopped     []string `json:"stopped"`
						Reenable    []string `json:"reenable"`
					}
					if err := c.Do(ctx, http.MethodPost, path, nil, map[string]string{"reason": reason}, &rep); err != nil {
						return err
					}
					return a.printKV(rep, [][2]string{{"cancelled", args[0]}, {"already done", orDash(strings.Join(rep.AlreadyDone, ", "))},
						{"stopped", orDash(strings.Join(rep.Stopped, ", "))}, {"to re-enable", orDash(strings.Join(rep.Reenable, "\n  "))}})
				}
				var body any
				if action == "pause" {
					body = map[string]string{"reason": reason}
				}
				var w workflow
				if err := c.Do(ctx, http.MethodPost, path, nil, body, &w); err != nil {
					return err
				}
				return a.showWorkflow(w)
			})}
		if action != "resume" {
			c.Flags().StringVar(&reason, "reason", "", "reason (audited)")
		}
		return c
	}
	cmd.AddCommand(list, get,
		stepAction("retry ID STEP", "Retry a failed step (STEP is its id or kind)", "retry", false),
		stepAction("skip ID STEP --reason TEXT", "Skip a step", "skip", true),
		wfAction("cancel ID", "Cancel a workflow; shows what already ran and how to re-enable it", "cancel"),
		wfAction("pause ID", "Pause a workflow", "pause"),
		wfAction("resume ID", "Resume a paused workflow", "resume"))
	return cmd
}

func (a *app) tasksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tasks", Short: "Manual tasks of workflows"}
	var state, workflowID, note string
	list := &cobra.Command{Use: "list", Short: "List tasks", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if workflowID != "" {
				q.Set("workflow_id", workflowID)
			}
			items, err := listAll[wfTask](ctx, c, "/api/v1/tasks", q, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, t := range items {
				rows = append(rows, []string{t.ID, t.Kind, t.State, orDash(t.Assignee), orDash(t.DueAt), t.Title})
			}
			return a.print(items, []string{"ID", "KIND", "STATE", "ASSIGNEE", "DUE", "TITLE"}, rows)
		})}
	list.Flags().StringVar(&state, "state", "open", "open, done, cancelled (empty for all)")
	list.Flags().StringVar(&workflowID, "workflow", "", "workflow id")
	complete := &cobra.Command{Use: "complete ID", Short: "Complete a task", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var t wfTask
			if err := c.Do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(args[0])+"/complete", nil, map[string]string{"note": note}, &t); err != nil {
				return err
			}
			return a.printKV(t, [][2]string{{"task", t.ID}, {"state", t.State}, {"title", t.Title}})
		})}
	complete.Flags().StringVar(&note, "note", "", "what was done")
	cmd.AddCommand(list, complete)
	return cmd
}

type dryRun struct {
	EmployeeID string `json:"employee_id"`
	Employee   string `json:"employee"`
	RunAt      string `json:"run_at"`
	Automated  bool   `json:"automated"`
	Existing   *struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"existing"`
	Steps []struct {
		Kind        string `json:"kind"`
		Description string `json:"description"`
		Targets     []struct {
			Type   string `json:"type"`
			ID     string `json:"id"`
			Name   string `json:"name"`
			Action string `json:"action"`
			Note   string `json:"note"`
		} `json:"targets"`
	} `json:"steps"`
}

func (a *app) offboardCmd() *cobra.Command {
	var dry, yes bool
	cmd := &cobra.Command{Use: "offboard EMPLOYEE", Short: "Offboard an employee (id or work email) now (--yes), or show what it would do (--dry-run)",
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			id, err := resolveEmployee(ctx, c, args[0])
			if err != nil {
				return err
			}
			args = []string{id}
			if !dry && !yes {
				return fmt.Errorf("offboarding removes app access and locks devices: pass --yes to run it, or --dry-run to preview")
			}
			var dr dryRun
			if dry {
				if err := c.Do(ctx, http.MethodGet, "/api/v1/employees/"+url.PathEscape(args[0])+"/offboard/dry-run", nil, nil, &dr); err != nil {
					return err
				}
			} else if err := c.Do(ctx, http.MethodPost, "/api/v1/employees/"+url.PathEscape(args[0])+"/offboard", nil, map[string]any{"dry_run": false, "confirm": args[0]}, &dr); err != nil {
				return err
			}
			if a.asJSON {
				return a.print(dr, nil, nil)
			}
			head := "Offboarding of %s (%s) would run at %s. Nothing was changed.\n"
			if !dry {
				head = "Offboarding of %s (%s) started at %s.\n"
			}
			a.printf(head, dr.Employee, dr.EmployeeID, dr.RunAt)
			if !dr.Automated {
				a.println("Note: the organization's plan does not include automation; it would not start by itself.")
			}
			if dr.Existing != nil {
				a.printf("Workflow: %s (%s)\n", dr.Existing.ID, dr.Existing.State)
			}
			var rows [][]string
			for i, s := range dr.Steps {
				if len(s.Targets) == 0 {
					rows = append(rows, []string{strconv.Itoa(i + 1), s.Kind, "-", "-", s.Description})
				}
				for _, t := range s.Targets {
					rows = append(rows, []string{strconv.Itoa(i + 1), s.Kind, t.Type + " " + t.Name, t.Action, orDash(t.Note)})
				}
			}
			return a.print(nil, []string{"#", "STEP", "TARGET", "ACTION", "NOTE"}, rows)
		})}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "show every step and the devices and apps it would touch, changing nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: start the offboarding now")
	return cmd
}

// postRaw sends a non-JSON body (CSV upload).
func (c *Client) postRaw(ctx context.Context, path string, q url.Values, contentType string, body []byte, out any) (int, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: HTTP %d", path, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func (a *app) assetsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "assets", Short: "Asset management: assign, CSV import and export"}
	var in struct {
		EmployeeID    string `json:"employee_id"`
		SerialNumber  string `json:"serial_number"`
		Vendor        string `json:"vendor"`
		EquipmentType string `json:"equipment_type"`
		Model         string `json:"model,omitempty"`
		Platform      string `json:"platform,omitempty"`
	}
	assign := &cobra.Command{Use: "assign", Short: "Assign an equipment type + serial to an employee", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var d map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/assets/assign", nil, in, &d); err != nil {
				return err
			}
			return a.printKV(d, [][2]string{{"device", field(d, "id")}, {"serial", field(d, "serial_number")},
				{"state", field(d, "state")}, {"employee", field(d, "assigned_employee_id")}})
		})}
	assign.Flags().StringVar(&in.EmployeeID, "employee", "", "employee id")
	assign.Flags().StringVar(&in.SerialNumber, "serial", "", "serial number")
	assign.Flags().StringVar(&in.Vendor, "vendor", "", "vendor, e.g. apple")
	assign.Flags().StringVar(&in.EquipmentType, "type", "laptop", "equipment type")
	assign.Flags().StringVar(&in.Model, "model", "", "model")
	assign.Flags().StringVar(&in.Platform, "platform", "", "macos, windows, linux, ios, other")
	var dry bool
	imp := &cobra.Command{Use: "import FILE.csv", Short: "Import devices from CSV: all rows or none, with a row-level error report",
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			q := url.Values{}
			if dry {
				q.Set("dry_run", "true")
			}
			var rep struct {
				Rows     int  `json:"rows"`
				Imported int  `json:"imported"`
				DryRun   bool `json:"dry_run"`
				Errors   []struct {
					Row     int    `json:"row"`
					Column  string `json:"column"`
					Message string `json:"message"`
				} `json:"errors"`
				Title  string `json:"title"`
				Detail string `json:"detail"`
			}
			status, err := c.postRaw(ctx, "/api/v1/assets/import", q, "text/csv", b, &rep)
			if err != nil {
				return err
			}
			if status >= 300 && len(rep.Errors) == 0 {
				return fmt.Errorf("%s: %s (HTTP %d)", rep.Title, rep.Detail, status)
			}
			if a.asJSON {
				_ = a.print(rep, nil, nil)
			} else if len(rep.Errors) > 0 {
				var rows [][]string
				for _, e := range rep.Errors {
					rows = append(rows, []string{strconv.Itoa(e.Row), orDash(e.Column), e.Message})
				}
				_ = a.print(nil, []string{"ROW", "COLUMN", "ERROR"}, rows)
			} else if rep.DryRun {
				a.printf("%d rows valid; nothing imported (dry run)\n", rep.Rows)
			} else {
				a.printf("imported %d devices\n", rep.Imported)
			}
			if len(rep.Errors) > 0 {
				return fmt.Errorf("%d errors; nothing was imported", len(rep.Errors))
			}
			return nil
		})}
	imp.Flags().BoolVar(&dry, "dry-run", false, "validate only")
	var outFile string
	exp := &cobra.Command{Use: "export", Short: "Export devices as CSV", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			b, _, err := c.Raw(ctx, "/api/v1/assets/export")
			if err != nil {
				return err
			}
			if outFile == "" || outFile == "-" {
				_, err = a.out.Write(b)
				return err
			}
			return os.WriteFile(outFile, b, 0o600)
		})}
	exp.Flags().StringVarP(&outFile, "output", "o", "", "file (default stdout)")
	cmd.AddCommand(assign, imp, exp)
	return cmd
}

type intakeFlags struct {
	DeviceID       string   `json:"device_id,omitempty"`
	WarehouseID    string   `json:"warehouse_id,omitempty"`
	Condition      string   `json:"condition"`
	PhotoURLs      []string `json:"photo_urls,omitempty"`
	Accessories    []string `json:"accessories,omitempty"`
	ActivationLock bool     `json:"activation_lock"`
	FirmwareLock   bool     `json:"firmware_lock"`
}

func (f *intakeFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Condition, "condition", "good", "new, good, fair, damaged")
	cmd.Flags().StringSliceVar(&f.PhotoURLs, "photo", nil, "photo URL (repeatable)")
	cmd.Flags().StringSliceVar(&f.Accessories, "accessory", nil, "accessory received (repeatable)")
	cmd.Flags().BoolVar(&f.ActivationLock, "activation-lock", false, "Activation Lock is still on")
	cmd.Flags().BoolVar(&f.FirmwareLock, "firmware-lock", false, "a firmware password is set")
}

func (a *app) warehousesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "warehouses", Short: "Storage locations, intake, stock and storage counts"}
	list := &cobra.Command{Use: "list", Short: "List warehouses", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[map[string]any](ctx, c, "/api/v1/warehouses", nil, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, w := range items {
				rows = append(rows, []string{field(w, "id"), field(w, "name")})
			}
			return a.print(items, []string{"ID", "NAME"}, rows)
		})}
	create := &cobra.Command{Use: "create NAME", Short: "Create a warehouse", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var w map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/warehouses", nil, map[string]string{"name": args[0]}, &w); err != nil {
				return err
			}
			return a.printKV(w, [][2]string{{"id", field(w, "id")}, {"name", field(w, "name")}})
		})}
	var f intakeFlags
	intake := &cobra.Command{Use: "intake WAREHOUSE --device ID", Short: "Take an unassigned device into a warehouse (intake rules apply)",
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var in map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/warehouses/"+url.PathEscape(args[0])+"/intake", nil, f, &in); err != nil {
				return err
			}
			return a.printKV(in, [][2]string{{"intake", field(in, "id")}, {"accepted", field(in, "accepted")}})
		})}
	intake.Flags().StringVar(&f.DeviceID, "device", "", "device id")
	f.bind(intake)
	stock := &cobra.Command{Use: "stock", Short: "Stored devices per location, equipment type and state", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var l struct {
				Items []struct {
					WarehouseID   string `json:"warehouse_id"`
					EquipmentType string `json:"equipment_type"`
					State         string `json:"state"`
					Count         int    `json:"count"`
				} `json:"items"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/warehouse-stock", nil, nil, &l); err != nil {
				return err
			}
			var rows [][]string
			for _, s := range l.Items {
				rows = append(rows, []string{s.WarehouseID, s.EquipmentType, s.State, strconv.Itoa(s.Count)})
			}
			return a.print(l.Items, []string{"WAREHOUSE", "TYPE", "STATE", "COUNT"}, rows)
		})}
	var from, to string
	storage := &cobra.Command{Use: "storage", Short: "Stored devices per month and location (billing)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			var l struct {
				Items []struct {
					Month       string `json:"month"`
					WarehouseID string `json:"warehouse_id"`
					Devices     int    `json:"devices"`
				} `json:"items"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/warehouse-storage", q, nil, &l); err != nil {
				return err
			}
			var rows [][]string
			for _, s := range l.Items {
				rows = append(rows, []string{s.Month, s.WarehouseID, strconv.Itoa(s.Devices)})
			}
			return a.print(l.Items, []string{"MONTH", "WAREHOUSE", "DEVICES"}, rows)
		})}
	storage.Flags().StringVar(&from, "from", "", "first month YYYY-MM")
	storage.Flags().StringVar(&to, "to", "", "month after the last YYYY-MM")
	cmd.AddCommand(list, create, intake, stock, storage)
	return cmd
}

func (a *app) retrievalsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "retrievals", Short: "Laptop retrievals from leaving employees"}
	var state string
	list := &cobra.Command{Use: "list", Short: "List retrievals", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			items, err := listAll[map[string]any](ctx, c, "/api/v1/retrievals", q, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, r := range items {
				rows = append(rows, []string{field(r, "id"), field(r, "employee_id"), field(r, "device_id"), field(r, "state"),
					orDash(field(r, "kit_tracking")), orDash(field(r, "return_tracking"))})
			}
			return a.print(items, []string{"ID", "EMPLOYEE", "DEVICE", "STATE", "KIT", "RETURN"}, rows)
		})}
	list.Flags().StringVar(&state, "state", "", "requested, kit_sent, in_transit, received, cancelled")
	track := func(use, short, action string) *cobra.Command {
		var tracking string
		c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
				var r map[string]any
				if err := c.Do(ctx, http.MethodPost, "/api/v1/retrievals/"+url.PathEscape(args[0])+"/"+action, nil,
					map[string]string{"tracking_number": tracking}, &r); err != nil {
					return err
				}
				return a.printKV(r, [][2]string{{"retrieval", field(r, "id")}, {"state", field(r, "state")}})
			})}
		c.Flags().StringVar(&tracking, "tracking", "", "tracking number")
		return c
	}
	var f intakeFlags
	receive := &cobra.Command{Use: "receive ID --warehouse WH", Short: "Receive the device at a warehouse (intake)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var r map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/retrievals/"+url.PathEscape(args[0])+"/receive", nil, f, &r); err != nil {
				return err
			}
			return a.printKV(r, [][2]string{{"retrieval", field(r, "id")}, {"state", field(r, "state")}})
		})}
	receive.Flags().StringVar(&f.WarehouseID, "warehouse", "", "warehouse id")
	f.bind(receive)
	cmd.AddCommand(list, track("kit-sent ID --tracking N", "Record the return kit shipped", "kit-sent"),
		track("in-transit ID --tracking N", "Record the box on its way back", "in-transit"), receive)
	return cmd
}

func (a *app) ordersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "orders", Short: "Procurement orders"}
	list := &cobra.Command{Use: "list", Short: "List orders", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[map[string]any](ctx, c, "/api/v1/procurement/orders", nil, 0)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, o := range items {
				rows = append(rows, []string{field(o, "id"), field(o, "vendor"), field(o, "equipment_type"), field(o, "state"),
					orDash(field(o, "tracking_number"))})
			}
			return a.print(items, []string{"ID", "VENDOR", "TYPE", "STATE", "TRACKING"}, rows)
		})}
	var in struct {
		EmployeeID    string `json:"employee_id,omitempty"`
		Vendor        string `json:"vendor"`
		Model         string `json:"model,omitempty"`
		EquipmentType string `json:"equipment_type"`
		PriceCents    int64  `json:"price_cents"`
	}
	create := &cobra.Command{Use: "create", Short: "Create an order (ships to the employee's HR address)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var o map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/procurement/orders", nil, in, &o); err != nil {
				return err
			}
			return a.printKV(o, [][2]string{{"order", field(o, "id")}, {"state", field(o, "state")}})
		})}
	create.Flags().StringVar(&in.EmployeeID, "employee", "", "employee id")
	create.Flags().StringVar(&in.Vendor, "vendor", "", "vendor")
	create.Flags().StringVar(&in.Model, "model", "", "model")
	create.Flags().StringVar(&in.EquipmentType, "type", "laptop", "equipment type")
	create.Flags().Int64Var(&in.PriceCents, "price-cents", 0, "price in cents")
	var tracking, serial, platform string
	ship := &cobra.Command{Use: "ship ID --tracking N", Short: "Record an order shipped", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var o map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/procurement/orders/"+url.PathEscape(args[0])+"/ship", nil,
				map[string]string{"tracking_number": tracking}, &o); err != nil {
				return err
			}
			return a.printKV(o, [][2]string{{"order", field(o, "id")}, {"state", field(o, "state")}})
		})}
	ship.Flags().StringVar(&tracking, "tracking", "", "tracking number")
	deliver := &cobra.Command{Use: "deliver ID --serial S", Short: "Record an order delivered; the device joins stock", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var o map[string]any
			if err := c.Do(ctx, http.MethodPost, "/api/v1/procurement/orders/"+url.PathEscape(args[0])+"/deliver", nil,
				map[string]string{"serial_number": serial, "platform": platform}, &o); err != nil {
				return err
			}
			return a.printKV(o, [][2]string{{"order", field(o, "id")}, {"state", field(o, "state")}, {"device", field(o, "device_id")}})
		})}
	deliver.Flags().StringVar(&serial, "serial", "", "serial number")
	deliver.Flags().StringVar(&platform, "platform", "", "macos, windows, linux, ios, other")
	cmd.AddCommand(list, create, ship, deliver)
	return cmd
}
