package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// The SSO commands register themselves in extraCommands.
var _ = func() bool {
	extraCommands = append(extraCommands, (*app).ssoCmd)
	return true
}()

type ssoView struct {
	Issuer          string    `json:"issuer"`
	ClientID        string    `json:"client_id"`
	ClientSecretSet bool      `json:"client_secret_set"`
	AllowedDomains  []string  `json:"allowed_domains"`
	Enabled         bool      `json:"enabled"`
	RedirectURI     string    `json:"redirect_uri"`
	SignInURL       string    `json:"sign_in_url"`
	UpdatedBy       string    `json:"updated_by"`
	UpdatedAt       time.Time `json:"updated_at"`
}

type ssoTestView struct {
	OK                    bool     `json:"ok"`
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserInfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	SigningKeys           int      `json:"signing_keys"`
	Error                 string   `json:"error"`
	Warnings              []string `json:"warnings"`
}

func (a *app) printSSO(v ssoView) error {
	return a.printKV(v, [][2]string{
		{"issuer", v.Issuer}, {"client id", v.ClientID}, {"client secret", map[bool]string{true: "set", false: "-"}[v.ClientSecretSet]},
		{"allowed domains", orDash(strings.Join(v.AllowedDomains, ", "))}, {"enabled", fmt.Sprint(v.Enabled)},
		{"redirect URI (register at the provider)", v.RedirectURI}, {"sign-in link", v.SignInURL},
		{"updated", v.UpdatedAt.Local().Format(time.DateTime) + " by " + orDash(v.UpdatedBy)},
	})
}

func (a *app) ssoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sso", Short: "Single sign-on (OpenID Connect): show, set, test, delete"}

	show := &cobra.Command{Use: "show", Short: "Show the organization's SSO provider", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var v ssoView
			if err := c.Do(ctx, http.MethodGet, "/api/v1/sso", nil, nil, &v); err != nil {
				return err
			}
			return a.printSSO(v)
		})}

	var issuer, clientID, secretFile string
	var domains []string
	var enabled bool
	set := &cobra.Command{
		Use:   "set [--issuer URL] [--client-id ID] [--client-secret-file FILE|-] [--domains a.com,b.com] [--enabled]",
		Short: "Create or change the SSO provider; flags left out keep their current value",
		Long: "The client secret is read from a file (or stdin with -), never from the command line, and is\n" +
			"never shown again. See docs/sso.md for the values of Google Workspace, Okta and Entra ID.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var cur ssoView
			err = c.Do(ctx, http.MethodGet, "/api/v1/sso", nil, nil, &cur)
			var apiErr *APIError
			if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound) {
				return err
			}
			body := map[string]any{"issuer": cur.Issuer, "client_id": cur.ClientID, "allowed_domains": cur.AllowedDomains, "enabled": cur.Enabled}
			f := cmd.Flags()
			if f.Changed("issuer") {
				body["issuer"] = issuer
			}
			if f.Changed("client-id") {
				body["client_id"] = clientID
			}
			if f.Changed("domains") {
				body["allowed_domains"] = domains
			}
			if f.Changed("enabled") {
				body["enabled"] = enabled
			}
			if secretFile != "" {
				var raw []byte
				if secretFile == "-" {
					raw, err = io.ReadAll(io.LimitReader(os.Stdin, 8192))
				} else {
					raw, err = os.ReadFile(secretFile)
				}
				if err != nil {
					return fmt.Errorf("read the client secret: %w", err)
				}
				s := strings.TrimSpace(string(raw))
				if s == "" {
					return errors.New("the client secret file is empty")
				}
				body["client_secret"] = s
			}
			var v ssoView
			if err := c.Do(ctx, http.MethodPut, "/api/v1/sso", nil, body, &v); err != nil {
				return err
			}
			return a.printSSO(v)
		},
	}
	set.Flags().StringVar(&issuer, "issuer", "", "issuer URL, exactly as the provider's discovery document says")
	set.Flags().StringVar(&clientID, "client-id", "", "OAuth client id registered at the provider")
	set.Flags().StringVar(&secretFile, "client-secret-file", "", "file holding the client secret (- reads stdin)")
	set.Flags().StringSliceVar(&domains, "domains", nil, "email domains allowed to sign in (replaces the list)")
	set.Flags().BoolVar(&enabled, "enabled", false, "allow SSO sign-ins (--enabled=false to pause them)")

	var testIssuer string
	test := &cobra.Command{Use: "test [--issuer URL]", Short: "Check discovery and signing keys (the saved issuer by default)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]string{}
			if testIssuer != "" {
				body["issuer"] = testIssuer
			}
			var v ssoTestView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/sso/test", nil, body, &v); err != nil {
				return err
			}
			if err := a.printKV(v, [][2]string{{"issuer", v.Issuer}, {"ok", fmt.Sprint(v.OK)}, {"error", orDash(v.Error)},
				{"authorization endpoint", orDash(v.AuthorizationEndpoint)}, {"token endpoint", orDash(v.TokenEndpoint)},
				{"userinfo endpoint", orDash(v.UserInfoEndpoint)}, {"signing keys", fmt.Sprint(v.SigningKeys)},
				{"warnings", orDash(strings.Join(v.Warnings, "; "))}}); err != nil {
				return err
			}
			if !v.OK {
				return errors.New("the SSO provider check failed")
			}
			return nil
		})}
	test.Flags().StringVar(&testIssuer, "issuer", "", "issuer URL to check before saving it")

	var yes bool
	del := &cobra.Command{Use: "delete --yes", Short: "Remove SSO (sign-ins in progress are cancelled)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			if !yes {
				return errors.New("admins will have to sign in with a password: add --yes to confirm")
			}
			if err := c.Do(ctx, http.MethodDelete, "/api/v1/sso", nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(a.out, "single sign-on removed")
			return nil
		})}
	del.Flags().BoolVar(&yes, "yes", false, "confirm")

	cmd.AddCommand(show, set, test, del)
	return cmd
}
