package cli

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

var _ = func() bool {
	extraCommands = append(extraCommands, (*app).enrollmentSecretsCmd)
	return true
}()

type secretView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	MaxUses    int        `json:"max_uses"`
	Uses       int        `json:"uses"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

type secretCreated struct {
	Secret        secretView `json:"secret"`
	Plaintext     string     `json:"plaintext"`
	CAFingerprint string     `json:"ca_fingerprint_sha256"`
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func (a *app) printCreatedSecret(v secretCreated) error {
	return a.printKV(v, [][2]string{{"id", v.Secret.ID}, {"name", v.Secret.Name}, {"secret", v.Plaintext + "   (shown once: store it now)"},
		{"ca_fingerprint_sha256", v.CAFingerprint}, {"expires", timeOrDash(v.Secret.ExpiresAt)}, {"max uses", strconv.Itoa(v.Secret.MaxUses)}})
}

func (a *app) enrollmentSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "enrollment-secrets", Short: "Manage agent enrollment secrets"}
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List secrets (never their plaintext)", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[secretView](ctx, c, "/api/v1/enrollment-secrets", nil, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, s := range items {
				state := "active"
				if s.RevokedAt != nil {
					state = "revoked"
				} else if s.ExpiresAt != nil && time.Now().After(*s.ExpiresAt) {
					state = "expired"
				}
				uses := strconv.Itoa(s.Uses)
				if s.MaxUses > 0 {
					uses += "/" + strconv.Itoa(s.MaxUses)
				}
				rows = append(rows, []string{s.ID, s.Name, s.Prefix + "…", state, uses, timeOrDash(s.ExpiresAt), timeOrDash(s.LastUsedAt)})
			}
			return a.print(items, []string{"ID", "NAME", "PREFIX", "STATE", "USES", "EXPIRES", "LAST USED"}, rows)
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")

	var name string
	var maxUses int
	var expiresIn time.Duration
	create := &cobra.Command{
		Use: "create --name NAME", Short: "Create a secret; its plaintext is shown once", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]any{"name": name, "max_uses": maxUses}
			if expiresIn > 0 {
				body["expires_at"] = time.Now().Add(expiresIn).UTC()
			}
			var v secretCreated
			if err := c.Do(ctx, http.MethodPost, "/api/v1/enrollment-secrets", nil, body, &v); err != nil {
				return err
			}
			return a.printCreatedSecret(v)
		}),
	}
	create.Flags().StringVar(&name, "name", "", "what the secret is for (e.g. an installer build)")
	create.Flags().IntVar(&maxUses, "max-uses", 0, "enrollments allowed (0: unlimited)")
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "expire after this long (0: never)")

	var rotateAgents bool
	rotate := &cobra.Command{
		Use: "rotate ID", Short: "Replace a secret with a new one; the old one stops working", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v secretCreated
			if err := c.Do(ctx, http.MethodPost, "/api/v1/enrollment-secrets/"+url.PathEscape(args[0])+"/rotate", nil,
				map[string]any{"revoke_agents": rotateAgents}, &v); err != nil {
				return err
			}
			return a.printCreatedSecret(v)
		}),
	}
	rotate.Flags().BoolVar(&rotateAgents, "revoke-agents", false, "also revoke the agents enrolled with the old secret")

	var keepAgents bool
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a secret and (unless --keep-agents) the agents enrolled with it", Args: cobra.ExactArgs(1),
		RunE: a.run(func(ctx context.Context, c *Client, args []string) error {
			var v secretView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/enrollment-secrets/"+url.PathEscape(args[0])+"/revoke", nil,
				map[string]any{"revoke_agents": !keepAgents}, &v); err != nil {
				return err
			}
			return a.printKV(v, [][2]string{{"id", v.ID}, {"name", v.Name}, {"revoked", timeOrDash(v.RevokedAt)}})
		}),
	}
	revoke.Flags().BoolVar(&keepAgents, "keep-agents", false, "keep the agents already enrolled with this secret")
	cmd.AddCommand(list, create, rotate, revoke)
	return cmd
}
