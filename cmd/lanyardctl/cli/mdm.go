package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// The Apple MDM commands register themselves in extraCommands.
var _ = func() bool {
	extraCommands = append(extraCommands, (*app).mdmCmd)
	return true
}()

type mdmCommandView struct {
	ID          string     `json:"id"`
	DeviceID    string     `json:"device_id"`
	UDID        string     `json:"udid"`
	RequestType string     `json:"request_type"`
	State       string     `json:"state"`
	Source      string     `json:"source"`
	Error       string     `json:"error"`
	NotNowCount int        `json:"not_now_count"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	PushError   string     `json:"push_error"`
	Existed     bool       `json:"existed"`
}

type mdmEnrollmentView struct {
	UDID         string     `json:"udid"`
	DeviceID     string     `json:"device_id"`
	EmployeeID   string     `json:"employee_id"`
	SerialNumber string     `json:"serial_number"`
	Model        string     `json:"model"`
	OSVersion    string     `json:"os_version"`
	Status       string     `json:"status"`
	Drift        string     `json:"drift"`
	LastSeenAt   *time.Time `json:"last_seen_at"`
}

func (a *app) mdmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mdm", Short: "Apple MDM: push certificate, enrollment links, Mac commands, ADE"}

	var certFile, keyFile string
	pushUpload := &cobra.Command{
		Use: "push-cert-upload --cert FILE --key FILE", Short: "Upload or renew the APNs push certificate (same topic)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			var st struct {
				Topic    string    `json:"topic"`
				NotAfter time.Time `json:"not_after"`
				Warning  string    `json:"warning"`
			}
			body := map[string]string{"certificate_pem": string(certPEM), "private_key_pem": string(keyPEM)}
			if err := c.Do(ctx, http.MethodPut, "/api/v1/mdm/push-certificate", nil, body, &st); err != nil {
				return err
			}
			return a.printKV(st, [][2]string{{"topic", st.Topic}, {"expires", st.NotAfter.Format(time.DateOnly)}, {"warning", orDash(st.Warning)}})
		}),
	}
	pushUpload.Flags().StringVar(&certFile, "cert", "", "PEM certificate from identity.apple.com")
	pushUpload.Flags().StringVar(&keyFile, "key", "", "unencrypted PEM private key")

	pushShow := &cobra.Command{
		Use: "push-cert", Short: "Show the APNs push certificate topic and expiry", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var st struct {
				Topic    string    `json:"topic"`
				NotAfter time.Time `json:"not_after"`
				Expired  bool      `json:"expired"`
				Warning  string    `json:"warning"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/mdm/push-certificate", nil, nil, &st); err != nil {
				return err
			}
			return a.printKV(st, [][2]string{{"topic", st.Topic}, {"expires", st.NotAfter.Format(time.DateOnly)},
				{"expired", strconv.FormatBool(st.Expired)}, {"warning", orDash(st.Warning)}})
		}),
	}

	var linkEmployee string
	var linkTTL int
	link := &cobra.Command{
		Use: "enroll-link [--employee ID]", Short: "Create a Mac enrollment link (per employee)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var l struct {
				ID         string    `json:"id"`
				EmployeeID string    `json:"employee_id"`
				URL        string    `json:"url"`
				ExpiresAt  time.Time `json:"expires_at"`
			}
			body := map[string]any{"employee_id": linkEmployee, "ttl_hours": linkTTL}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/mdm/enrollment-links", nil, body, &l); err != nil {
				return err
			}
			return a.printKV(l, [][2]string{{"url", l.URL}, {"employee", orDash(l.EmployeeID)}, {"expires", l.ExpiresAt.Format(time.RFC3339)}})
		}),
	}
	link.Flags().StringVar(&linkEmployee, "employee", "", "employee id the Mac is for")
	link.Flags().IntVar(&linkTTL, "ttl-hours", 0, "link lifetime in hours (default 14 days)")

	var enrLimit int
	enrollments := &cobra.Command{
		Use: "enrollments", Short: "List Macs enrolled in MDM", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[mdmEnrollmentView](ctx, c, "/api/v1/mdm/enrollments", nil, enrLimit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, e := range items {
				rows = append(rows, []string{e.SerialNumber, e.DeviceID, orDash(e.EmployeeID), orDash(e.Model), orDash(e.OSVersion), e.Status, e.Drift, fmtTime(e.LastSeenAt)})
			}
			return a.print(items, []string{"SERIAL", "DEVICE", "EMPLOYEE", "MODEL", "OS", "STATUS", "DRIFT", "LAST SEEN"}, rows)
		}),
	}
	enrollments.Flags().IntVar(&enrLimit, "limit", 0, "stop after this many (0: all)")

	var msg, idem, manifest, ident string
	var confirm bool
	send := &cobra.Command{
		Use:   "command DEVICE_ID REQUEST_TYPE",
		Short: "Send an MDM command (DeviceLock, EraseDevice, RestartDevice, DeviceInformation, SecurityInfo, ProfileList, RemoveProfile, InstallEnterpriseApplication)",
		Args:  cobra.ExactArgs(2),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			body := map[string]any{"request_type": args[1], "message": msg, "idempotency_key": idem, "confirm": confirm,
				"manifest_url": manifest, "identifier": ident}
			var v mdmCommandView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/mdm/devices/"+url.PathEscape(args[0])+"/commands", nil, body, &v); err != nil {
				return err
			}
			pairs := [][2]string{{"id", v.ID}, {"request_type", v.RequestType}, {"state", v.State}}
			if v.Existed {
				pairs = append(pairs, [2]string{"note", "same idempotency key: existing command"})
			}
			if v.PushError != "" {
				pairs = append(pairs, [2]string{"push_error", v.PushError})
			}
			return a.printKV(v, pairs)
		}),
	}
	send.Flags().StringVar(&msg, "message", "", "lock screen message (DeviceLock)")
	send.Flags().StringVar(&idem, "idempotency-key", "", "repeat-safe key")
	send.Flags().BoolVar(&confirm, "confirm", false, "required for DeviceLock and EraseDevice")
	send.Flags().StringVar(&manifest, "manifest-url", "", "https manifest URL (InstallEnterpriseApplication)")
	send.Flags().StringVar(&ident, "identifier", "", "profile identifier (RemoveProfile)")

	var cmdLimit int
	commands := &cobra.Command{
		Use: "commands DEVICE_ID", Short: "List a Mac's MDM commands", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			items, err := listAll[mdmCommandView](ctx, c, "/api/v1/mdm/devices/"+url.PathEscape(args[0])+"/commands", nil, cmdLimit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, v := range items {
				rows = append(rows, []string{v.ID, v.RequestType, v.State, v.Source, strconv.Itoa(v.NotNowCount), v.CreatedAt.Format(time.RFC3339), orDash(v.Error)})
			}
			return a.print(items, []string{"ID", "TYPE", "STATE", "SOURCE", "NOTNOW", "CREATED", "ERROR"}, rows)
		}),
	}
	commands.Flags().IntVar(&cmdLimit, "limit", 0, "stop after this many (0: all)")

	pin := &cobra.Command{
		Use: "pin COMMAND_ID", Short: "Reveal the PIN of a DeviceLock or EraseDevice (admin; audited)", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v struct {
				CommandID string `json:"command_id"`
				PIN       string `json:"pin"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/mdm/commands/"+url.PathEscape(args[0])+"/pin", nil, nil, &v); err != nil {
				return err
			}
			return a.printKV(v, [][2]string{{"command", v.CommandID}, {"pin", v.PIN}})
		}),
	}

	cmd.AddCommand(pushUpload, pushShow, link, enrollments, send, commands, pin, a.adeCmd())
	return cmd
}

func (a *app) adeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ade", Short: "Automated Device Enrollment through Apple Business Manager"}
	var out string
	keypair := &cobra.Command{
		Use: "keypair [--out FILE]", Short: "Create the certificate to upload to Apple Business Manager", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var v struct {
				CertificatePEM string `json:"certificate_pem"`
			}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/mdm/ade/keypair", nil, map[string]any{}, &v); err != nil {
				return err
			}
			if out == "" {
				_, err := fmt.Fprint(a.out, v.CertificatePEM)
				return err
			}
			if err := os.WriteFile(out, []byte(v.CertificatePEM), 0o644); err != nil {
				return err
			}
			_, err := a.printf("certificate written to %s: upload it in Apple Business Manager, then download the server token\n", out)
			return err
		}),
	}
	keypair.Flags().StringVar(&out, "out", "", "write the PEM certificate to this file")

	token := &cobra.Command{
		Use: "token FILE.p7m", Short: "Upload the ABM server token", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var v struct {
				ExpiresAt time.Time `json:"expires_at"`
			}
			if err := c.Do(ctx, http.MethodPut, "/api/v1/mdm/ade/token", nil, map[string]string{"token_p7m": string(b)}, &v); err != nil {
				return err
			}
			return a.printKV(v, [][2]string{{"token_expires", v.ExpiresAt.Format(time.DateOnly)}})
		}),
	}
	syncCmd := &cobra.Command{
		Use: "sync", Short: "Sync the ABM device list now", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var v struct {
				Devices int `json:"devices"`
			}
			if err := c.Do(ctx, http.MethodPost, "/api/v1/mdm/ade/sync", nil, map[string]any{}, &v); err != nil {
				return err
			}
			return a.printKV(v, [][2]string{{"devices", strconv.Itoa(v.Devices)}})
		}),
	}
	var emp string
	assign := &cobra.Command{
		Use: "assign SERIAL [--employee ID]", Short: "Assign the ADE profile to a Mac for a hire", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			if err := c.Do(ctx, http.MethodPost, "/api/v1/mdm/ade/assignments", nil, map[string]string{"serial_number": args[0], "employee_id": emp}, nil); err != nil {
				return err
			}
			_, err := a.printf("ADE profile assigned to %s\n", args[0])
			return err
		}),
	}
	assign.Flags().StringVar(&emp, "employee", "", "employee the Mac is for")
	cmd.AddCommand(keypair, token, syncCmd, assign)
	return cmd
}
