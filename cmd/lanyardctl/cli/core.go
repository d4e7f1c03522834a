package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

type token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func (a *app) orgCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "orgs", Aliases: []string{"org"}, Short: "Show or change your organization"}
	cmd.AddCommand(&cobra.Command{
		Use: "get", Short: "Show the organization", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var o domain.Org
			if err := c.Do(ctx, http.MethodGet, "/api/v1/org", nil, nil, &o); err != nil {
				return err
			}
			return a.printKV(o, [][2]string{{"id", o.ID}, {"name", o.Name}, {"plan", string(o.Plan)}, {"time zone", o.TimeZone},
				{"wipe needs approval", strconv.FormatBool(o.Settings.WipeRequiresApproval)}})
		}),
	})
	var name, plan, tz string
	set := &cobra.Command{
		Use: "set", Short: "Change name, plan (owner) or time zone", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]string{}
			for k, v := range map[string]string{"name": name, "plan": plan, "time_zone": tz} {
				if v != "" {
					body[k] = v
				}
			}
			if len(body) == 0 {
				return fmt.Errorf("nothing to change: pass --name, --plan or --time-zone")
			}
			var o domain.Org
			if err := c.Do(ctx, http.MethodPatch, "/api/v1/org", nil, body, &o); err != nil {
				return err
			}
			return a.printKV(o, [][2]string{{"name", o.Name}, {"plan", string(o.Plan)}, {"time zone", o.TimeZone}})
		}),
	}
	set.Flags().StringVar(&name, "name", "", "organization name")
	set.Flags().StringVar(&plan, "plan", "", "hr, essentials or pro")
	set.Flags().StringVar(&tz, "time-zone", "", "IANA time zone")
	cmd.AddCommand(set)
	return cmd
}

func (a *app) tokensCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage API tokens"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List tokens", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[token](ctx, c, "/api/v1/tokens", nil, 0)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, t := range items {
				state := "active"
				if t.RevokedAt != nil {
					state = "revoked"
				}
				rows = append(rows, []string{t.ID, t.Name, t.Role, t.Prefix + "…", state, fmtTime(t.ExpiresAt)})
			}
			return a.print(items, []string{"ID", "NAME", "ROLE", "PREFIX", "STATE", "EXPIRES"}, rows)
		}),
	})
	var role, kind string
	var days int
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a token (the secret is printed once)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var out struct {
				Token  token  `json:"token"`
				Secret string `json:"secret"`
			}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/tokens", nil, map[string]any{"name": args[0], "role": role, "expires_in_days": days, "kind": kind}, &out); err != nil {
				return err
			}
			return a.printKV(out, [][2]string{{"id", out.Token.ID}, {"role", out.Token.Role}, {"secret (shown once)", out.Secret}})
		}),
	}
	create.Flags().StringVar(&role, "role", "viewer", "owner, admin, it or viewer")
	create.Flags().IntVar(&days, "expires-in-days", 90, "0 for no expiry")
	create.Flags().StringVar(&kind, "kind", "personal", "personal, or service for a script (you own it either way)")
	cmd.AddCommand(create, &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var t token
			if err := c.Do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(args[0]), nil, nil, &t); err != nil {
				return err
			}
			a.printf("revoked %s (%s)\n", t.ID, t.Name)
			return nil
		}),
	})
	return cmd
}

func employeeName(e domain.Employee) string {
	return strings.TrimSpace(e.HR.FirstName + " " + e.HR.LastName)
}

func (a *app) employeesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "employees", Short: "Read employees (HR fields come from the HR system)"}
	var status, dept, mtype string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List employees", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"status": status, "department": dept, "member_type": mtype} {
				if v != "" {
					q.Set(k, v)
				}
			}
			items, err := listAll[domain.Employee](ctx, c, "/api/v1/employees", q, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, e := range items {
				rows = append(rows, []string{e.ID, employeeName(e), orDash(e.HR.WorkEmail), string(e.HR.Status),
					orDash(strings.Join(e.HR.Departments, ",")), orDash(string(e.HR.MemberType))})
			}
			return a.print(items, []string{"ID", "NAME", "EMAIL", "STATUS", "DEPARTMENTS", "TYPE"}, rows)
		}),
	}
	list.Flags().StringVar(&status, "status", "", "pending, active or terminated")
	list.Flags().StringVar(&dept, "department", "", "department name")
	list.Flags().StringVar(&mtype, "type", "", "full_time, part_time or contractor")
	list.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")
	cmd.AddCommand(list, &cobra.Command{
		Use: "get EMPLOYEE", Short: "Show an employee (id or work email)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			id, err := resolveEmployee(ctx, c, args[0])
			if err != nil {
				return err
			}
			var e domain.Employee
			if err := c.Do(ctx, http.MethodGet, "/api/v1/employees/"+url.PathEscape(id), nil, nil, &e); err != nil {
				return err
			}
			start, term := "-", "-"
			if e.HR.StartDate != nil {
				start = e.HR.StartDate.String()
			}
			if e.HR.TerminationDate != nil {
				term = e.HR.TerminationDate.String()
			}
			return a.printKV(e, [][2]string{{"id", e.ID}, {"name", employeeName(e)}, {"work email", orDash(e.HR.WorkEmail)},
				{"title", orDash(e.HR.Title)}, {"status", string(e.HR.Status)}, {"departments", orDash(strings.Join(e.HR.Departments, ", "))},
				{"type", orDash(string(e.HR.MemberType))}, {"start date", start}, {"termination date", term},
				{"source", e.Source + " " + e.ExternalID}, {"equipment type", orDash(e.EquipmentType)}})
		}),
	})
	return cmd
}

func (a *app) devicesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "devices", Short: "Manage devices"}
	var state, platform, etype, emp, serial string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List devices", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "platform": platform, "equipment_type": etype, "employee_id": emp, "serial": serial} {
				if v != "" {
					q.Set(k, v)
				}
			}
			items, err := listAll[domain.Device](ctx, c, "/api/v1/devices", q, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, d := range items {
				rows = append(rows, []string{d.ID, d.SerialNumber, d.Vendor, orDash(d.Model), orDash(string(d.Platform)), d.EquipmentType,
					string(d.State), orDash(d.AssignedEmployeeID)})
			}
			return a.print(items, []string{"ID", "SERIAL", "VENDOR", "MODEL", "PLATFORM", "TYPE", "STATE", "EMPLOYEE"}, rows)
		}),
	}
	list.Flags().StringVar(&state, "state", "", "device state")
	list.Flags().StringVar(&platform, "platform", "", "macos, windows, linux, ios, other")
	list.Flags().StringVar(&etype, "type", "", "equipment type")
	list.Flags().StringVar(&emp, "employee", "", "assigned employee id")
	list.Flags().StringVar(&serial, "serial", "", "serial number")
	list.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")

	get := &cobra.Command{
		Use: "get ID", Short: "Show a device with tracking and MDM details", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var d struct {
				domain.Device
				Details map[string]json.RawMessage `json:"details"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(args[0]), nil, nil, &d); err != nil {
				return err
			}
			pairs := [][2]string{{"id", d.ID}, {"serial", d.SerialNumber}, {"vendor", d.Vendor}, {"model", orDash(d.Model)},
				{"platform", orDash(string(d.Platform))}, {"type", d.EquipmentType}, {"state", string(d.State)},
				{"employee", orDash(d.AssignedEmployeeID)}, {"notes", orDash(d.Notes)}}
			for k, v := range d.Details {
				pairs = append(pairs, [2]string{k, string(v)})
			}
			return a.printKV(d, pairs)
		}),
	}

	var cSerial, cVendor, cModel, cPlatform, cType, cState, cPurchase string
	create := &cobra.Command{
		Use: "create", Short: "Add a device to inventory", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]any{"serial_number": cSerial, "vendor": cVendor, "model": cModel, "platform": cPlatform,
				"equipment_type": cType, "state": cState}
			if cPurchase != "" {
				body["purchase_date"] = cPurchase
			}
			var d domain.Device
			if err := c.Do(ctx, http.MethodPost, "/api/v1/devices", nil, body, &d); err != nil {
				return err
			}
			return a.printKV(d, [][2]string{{"id", d.ID}, {"serial", d.SerialNumber}, {"state", string(d.State)}})
		}),
	}
	create.Flags().StringVar(&cSerial, "serial", "", "serial number (required)")
	create.Flags().StringVar(&cVendor, "vendor", "", "vendor, e.g. apple (required)")
	create.Flags().StringVar(&cModel, "model", "", "model")
	create.Flags().StringVar(&cPlatform, "platform", "", "macos, windows, linux, ios, other")
	create.Flags().StringVar(&cType, "type", "laptop", "equipment type")
	create.Flags().StringVar(&cState, "state", "", "ordered, in_transit or in_stock (default in_stock)")
	create.Flags().StringVar(&cPurchase, "purchase-date", "", "YYYY-MM-DD")

	deviceAction := func(use, short, path string, nargs int, body func(args []string) any) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(nargs),
			RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
				var d domain.Device
				if err := c.Do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(args[0])+"/"+path, nil, body(args), &d); err != nil {
					return err
				}
				return a.printKV(d, [][2]string{{"id", d.ID}, {"serial", d.SerialNumber}, {"state", string(d.State)}, {"employee", orDash(d.AssignedEmployeeID)}})
			}),
		}
	}
	assign := deviceAction("assign DEVICE_ID EMPLOYEE_ID", "Assign a device to an employee", "assign", 2,
		func(args []string) any { return map[string]string{"employee_id": args[1]} })
	unassign := deviceAction("unassign DEVICE_ID", "Take back an assigned device not yet in use", "unassign", 1,
		func([]string) any { return nil })
	transition := deviceAction("transition DEVICE_ID STATE", "Move a device to another state ("+states()+")", "transition", 2,
		func(args []string) any { return map[string]string{"state": args[1]} })
	cmd.AddCommand(list, get, create, assign, unassign, transition)
	for _, extra := range extraDeviceCommands {
		cmd.AddCommand(extra(a))
	}
	return cmd
}

// extraDeviceCommands lets capability files add `devices ...` subcommands (lock, wipe).
var extraDeviceCommands []func(a *app) *cobra.Command

func states() string {
	s := make([]string, len(domain.AllDeviceStates))
	for i, st := range domain.AllDeviceStates {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func (a *app) auditCmd() *cobra.Command {
	var actor, ttype, target, action, since string
	var limit int
	cmd := &cobra.Command{
		Use: "audit", Short: "Read the audit log", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"actor": actor, "target_type": ttype, "target_id": target, "action": action} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if since != "" {
				d, err := time.ParseDuration(since)
				if err != nil {
					return fmt.Errorf("--since wants a duration such as 24h: %w", err)
				}
				q.Set("since", time.Now().Add(-d).UTC().Format(time.RFC3339))
			}
			items, err := listAll[domain.AuditEntry](ctx, c, "/api/v1/audit", q, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, e := range items {
				rows = append(rows, []string{e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.TargetType + ":" + e.TargetID})
			}
			return a.print(items, []string{"TIME", "ACTOR", "ACTION", "TARGET"}, rows)
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "e.g. token:<id>")
	cmd.Flags().StringVar(&ttype, "target-type", "", "e.g. device")
	cmd.Flags().StringVar(&target, "target", "", "target id")
	cmd.Flags().StringVar(&action, "action", "", "e.g. device.assigned")
	cmd.Flags().StringVar(&since, "since", "", "only entries newer than this duration, e.g. 24h")
	cmd.Flags().IntVar(&limit, "limit", 200, "stop after this many (0: all)")
	return cmd
}

// resolveEmployee turns what a person types for an employee, an id or a work
// email, into the id. Every command that takes an employee uses it, so
// `employees get` and `offboard` accept the same things.
func resolveEmployee(ctx context.Context, c *Client, ref string) (string, error) {
	if !strings.Contains(ref, "@") {
		return ref, nil
	}
	var l struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/employees", url.Values{"email": {ref}}, nil, &l); err != nil {
		return "", err
	}
	switch len(l.Items) {
	case 0:
		return "", fmt.Errorf("no employee with work email %s", ref)
	case 1:
		return l.Items[0].ID, nil
	}
	return "", fmt.Errorf("%d employees have the work email %s; use the id", len(l.Items), ref)
}
