package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "lanyard",
		Short:         "Lanyard control plane: HR-driven device lifecycle",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.RegisterFlags(root.PersistentFlags())
	root.AddCommand(serveCmd(), migrateCmd(), versionCmd(), adminCmd(), docsCmd(), installersCmd())
	return root
}

func loadConfig(cmd *cobra.Command) (config.Config, error) {
	return config.Load(cmd.Flags())
}

func serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane (admin API, agent gRPC, Apple MDM, background jobs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			logger := server.NewLogger(cfg)
			logEverywhere(logger)
			s, err := server.New(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			addr, err := s.Listen()
			if err != nil {
				s.DB.Close()
				return err
			}
			if cfg.Demo {
				org, token, err := s.SeedDemo(cmd.Context())
				if err != nil {
					s.DB.Close()
					return err
				}
				link, err := s.DemoOwnerSignInLink(cmd.Context(), org)
				if err != nil {
					s.DB.Close()
					return err
				}
				printDemoBanner(cmd, cfg, addr.String(), org, token, link, s.DemoSSOSignInURL(org.ID), s.DemoInboxURL("http://"+addr.String()))
			}
			return s.Run(cmd.Context())
		},
	}
}

func printDemoBanner(cmd *cobra.Command, cfg config.Config, addr string, org domain.Org, token, link, sso, inbox string) {
	w := cmd.OutOrStdout()
	url := cfg.PublicURL
	// The console and the sign-in link use the address the demo listens on, so the session
	// cookie is set for the host the browser opens.
	console := "http://" + addr
	fmt.Fprintf(w, `
  Lanyard is running with the demo organization %q (plan %s).

    Console       open %s/
    Admin API     %s/api/v1        (listening on %s)
    OpenAPI       %s/api/openapi.json
    Health        %s/healthz  ·  %s/readyz  ·  %s/metrics
    Data          %s (SQLite, keyring, CA)
    Demo inbox    %s   (every email the demo sends; each also appears as a "notification" log line)

  sign in as the demo owner: %s%s
  (%s; a one-time link: set a password, then scan the TOTP code; every start prints a fresh one)
  A second admin for wipe approvals: %s
  Single sign-on (the built-in demo provider; pick any demo.example person): %s

  Owner token (shown once; only its hash is stored):

    %s

  Try it (make run built bin/lanyardctl; elsewhere: make ctl):
    bin/lanyardctl login --url %s --token %s
    bin/lanyardctl devices list

  Installers: %s

`, org.Name, org.Plan, console, url, addr, url, url, url, url, cfg.DataDir, inbox, console, link, server.DemoOwnerEmail,
		server.DemoSecondAdminEmail, ssoLine(sso), token, url, token, agentStatus())
}

// ssoLine is the banner's SSO entry: the demo provider's sign-in link, or why there is none.
func ssoLine(link string) string {
	if link == "" {
		return "not configured"
	}
	return link
}

// agentTargets are the platforms `make build-agents` builds (Makefile AGENT_TARGETS).
var agentTargets = [][2]string{{"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}, {"linux", "amd64"}, {"linux", "arm64"}}

// agentStatus says which installer platforms can be served: packages are built
// from the agent binaries beside this executable, and a platform without one
// answers 503.
func agentStatus() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	dir := filepath.Dir(exe)
	var have, missing []string
	for _, t := range agentTargets {
		if _, err := os.Stat(filepath.Join(dir, installers.BinaryName(t[0], t[1]))); err == nil {
			have = append(have, t[0]+"/"+t[1])
		} else {
			missing = append(missing, t[0]+"/"+t[1])
		}
	}
	switch {
	case len(missing) == 0:
		return "agents for " + strings.Join(have, ", ") + " are in " + dir
	case len(have) == 0:
		return "no agent binaries in " + dir + ": installer downloads answer 503 until `make build-agents` (make run does it)"
	}
	return "agents for " + strings.Join(have, ", ") + " in " + dir + "; " + strings.Join(missing, ", ") +
		" answer 503 until `make build-agents`"
}

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(db *store.DB) error {
				fmt.Fprintf(cmd.OutOrStdout(), "migrations applied (%s)\n", db.Dialect)
				return nil
			})
		},
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "lanyard", server.Version) },
	}
}

func adminCmd() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Operator helpers that work on the database directly"}
	var plan, tz, ownerEmail, ownerName string
	createOrg := &cobra.Command{
		Use:   "create-org NAME",
		Short: "Create an organization with its owner: prints the owner's one-time sign-in link and an owner token for scripts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := domain.ParsePlan(plan)
			if err != nil {
				return err
			}
			if !strings.Contains(ownerEmail, "@") {
				return errors.New("--owner-email is required: the owner signs in with it")
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return withAdminDB(cmd, func(ctx context.Context, db *store.DB) error {
				o := domain.Org{Name: args[0], Plan: p, TimeZone: tz}
				if err := store.CreateOrg(ctx, db.SQL, &o); err != nil {
					return err
				}
				// Creating a user and a link needs no keyring (only TOTP secrets are sealed).
				svc := auth.New(auth.Options{DB: db, PublicURL: cfg.PublicURL})
				owner, err := svc.EnsureUser(ctx, o.ID, ownerEmail, ownerName, domain.RoleOwner)
				if err != nil {
					return err
				}
				_, secret, err := db.CreateTokenFor(ctx, store.NewToken{OrgID: o.ID, Name: "bootstrap owner", Role: domain.RoleOwner, UserID: owner.ID})
				if err != nil {
					return err
				}
				link, err := svc.NewSignInLink(ctx, o.ID, owner.ID, auth.InvitationTTL)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "org %s (%s)\nowner %s: sign in once with this link (valid 7 days, works once):\n  %s\nowner token (shown once): %s\n",
					o.ID, o.Name, owner.Email, svc.LinkURL(link), secret)
				return nil
			})
		},
	}
	createOrg.Flags().StringVar(&plan, "plan", "pro", "hr, essentials or pro")
	createOrg.Flags().StringVar(&tz, "time-zone", "UTC", "IANA time zone")
	createOrg.Flags().StringVar(&ownerEmail, "owner-email", "", "email of the organization's owner (required)")
	createOrg.Flags().StringVar(&ownerName, "owner-name", "", "the owner's name")

	var role, name string
	createToken := &cobra.Command{
		Use:   "create-token ORG_ID",
		Short: "Mint an API token for an organization (break-glass recovery when nobody can sign in)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := domain.ParseRole(role)
			if err != nil {
				return err
			}
			return withAdminDB(cmd, func(ctx context.Context, db *store.DB) error {
				if _, err := db.GetOrg(ctx, args[0]); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no organization with id %s", args[0])
				}
				_, secret, err := db.CreateToken(ctx, args[0], name, r, nil)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), secret)
				return nil
			})
		},
	}
	createToken.Flags().StringVar(&role, "role", "owner", "owner, admin, it or viewer")
	createToken.Flags().StringVar(&name, "name", "admin cli", "token name")

	rotateKey := &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new active key to the secrets keyring (old keys stay for decryption)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			k, err := secrets.Rotate(cfg.KeyFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new active key %s in %s; restart every replica with the updated file\n", k.ID, cfg.KeyFile)
			return nil
		},
	}
	orgs := &cobra.Command{
		Use:   "orgs",
		Short: "List organizations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(db *store.DB) error {
				list, err := db.ListOrgs(cmd.Context())
				if err != nil {
					return err
				}
				for _, o := range list {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", o.ID, o.Plan, o.Name)
				}
				return nil
			})
		},
	}
	admin.AddCommand(createOrg, createToken, rotateKey, orgs, backupCmd(), restoreCmd(), moveCmd(), auditCmd())
	return admin
}

// withAdminDB is withDB for commands that write: ctx names the admin CLI as
// the actor of the audit rows they write.
func withAdminDB(cmd *cobra.Command, fn func(ctx context.Context, db *store.DB) error) error {
	return withDB(cmd, func(db *store.DB) error {
		return fn(domain.WithActor(cmd.Context(), domain.Actor{ID: "system:admin-cli"}), db)
	})
}

// withDB opens the configured database, applies the migrations and runs fn.
func withDB(cmd *cobra.Command, fn func(db *store.DB) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	db, err := server.OpenDB(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := server.Migrate(cmd.Context(), db); err != nil {
		return err
	}
	return fn(db)
}
