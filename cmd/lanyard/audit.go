package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	auditsvc "github.com/lanyardhq/lanyard/controlplane/auditchain/service"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// auditCmd is `lanyard admin audit`: verify the tamper-evident audit log, export the key
// that verifies its checkpoints, sign a checkpoint now (docs/audit.md).
func auditCmd() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "Verify the tamper-evident audit log and manage its signed checkpoints"}

	var org, pubFile string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk every organization's audit hash chain and checkpoints; exit 1 naming the first bad row",
		Long: `Walks each organization's audit chain (or only --org) and its signed checkpoints, and
prints one line per organization. On the first row that was edited, deleted, inserted or
reordered, a log truncated after a checkpoint, or a checkpoint whose signature does not
verify, it names it on one line and exits 1.

Checkpoint signatures are checked with the keys the server keyring vouches for, or with
--public-key (a PEM file from 'lanyard admin audit public-key' kept off this machine),
which is the check to trust if the keyring may be in the wrong hands too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return withDB(cmd, func(db *store.DB) error {
				keys, err := trustedKeys(cmd.Context(), cfg, db, pubFile)
				if err != nil {
					return err
				}
				return runVerify(cmd, db, keys, org)
			})
		},
	}
	verify.Flags().StringVar(&org, "org", "", "organization id (default: every organization)")
	verify.Flags().StringVar(&pubFile, "public-key", "", "PEM file of trusted checkpoint keys (default: the keys this server's keyring opens)")

	publicKey := &cobra.Command{
		Use:   "public-key",
		Short: "Print the PEM public keys that verify audit checkpoints (keep a copy off this machine)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAuditService(cmd, true, func(svc *auditsvc.Service) error {
				keys := svc.PublicKeys()
				if len(keys) == 0 {
					return errors.New("no audit signing key yet: start the server once (it creates one)")
				}
				for _, k := range keys {
					fmt.Fprint(cmd.OutOrStdout(), k.PEM)
				}
				return nil
			})
		},
	}

	var cpOrg string
	checkpoint := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of each organization's audit chain now (after verifying the rows since the last one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAuditService(cmd, false, func(svc *auditsvc.Service) error {
				if cpOrg != "" {
					c, err := svc.Checkpoint(cmd.Context(), cpOrg, true)
					if err != nil {
						return err
					}
					printCheckpoint(cmd, cpOrg, c)
					return nil
				}
				n, err := svc.CheckpointDue(cmd.Context(), true)
				fmt.Fprintf(cmd.OutOrStdout(), "%d checkpoints signed\n", n)
				return err
			})
		},
	}
	checkpoint.Flags().StringVar(&cpOrg, "org", "", "organization id (default: every organization)")

	audit.AddCommand(verify, publicKey, checkpoint)
	return audit
}

func printCheckpoint(cmd *cobra.Command, org string, c *auditchain.Checkpoint) {
	if c == nil {
		fmt.Fprintf(cmd.OutOrStdout(), "org %s: nothing new since the last checkpoint\n", org)
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "org %s: checkpoint %s at seq %d hash %s (key %s)\n", org, c.ID, c.Seq, c.Hash, c.KeyID)
}

// trustedKeys returns the checkpoint keys to trust: those in pubFile, else those whose
// private half this server's keyring opens. It never creates a key or a keyring.
func trustedKeys(ctx context.Context, cfg config.Config, db *store.DB, pubFile string) (map[string]ed25519.PublicKey, error) {
	if pubFile != "" {
		b, err := os.ReadFile(pubFile)
		if err != nil {
			return nil, fmt.Errorf("read public keys: %w", err)
		}
		return auditsvc.ParsePublicKeys(b)
	}
	svc, err := openAuditService(ctx, cfg, db, true)
	if err != nil {
		return nil, err
	}
	return svc.Keys(), nil
}

func openAuditService(ctx context.Context, cfg config.Config, db *store.DB, readOnly bool) (*auditsvc.Service, error) {
	if _, err := os.Stat(cfg.KeyFile); err != nil {
		return nil, fmt.Errorf("keyring %s: %w (pass --public-key to verify without it)", cfg.KeyFile, err)
	}
	kr, err := secrets.LoadOrCreate(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	return auditsvc.Open(ctx, auditsvc.Config{Store: db, Sealer: kr, Logger: server.NewLogger(cfg), ReadOnly: readOnly})
}

func withAuditService(cmd *cobra.Command, readOnly bool, fn func(*auditsvc.Service) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	return withDB(cmd, func(db *store.DB) error {
		svc, err := openAuditService(cmd.Context(), cfg, db, readOnly)
		if err != nil {
			return err
		}
		return fn(svc)
	})
}

// runVerify prints one line per org and fails with the first broken org's line.
func runVerify(cmd *cobra.Command, db *store.DB, keys map[string]ed25519.PublicKey, org string) error {
	orgs := []string{org}
	if org != "" {
		if _, err := db.GetOrg(cmd.Context(), org); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no organization with id %s", org)
		} else if err != nil {
			return err
		}
	} else {
		var err error
		if orgs, err = db.AuditChainOrgs(cmd.Context()); err != nil {
			return err
		}
	}
	v := &auditchain.Verifier{Src: db, Keys: keys}
	var broken []string
	for _, id := range orgs {
		rep, err := v.Verify(cmd.Context(), id)
		if err != nil {
			return err
		}
		if !rep.OK {
			broken = append(broken, rep.String())
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), rep.String())
	}
	switch len(broken) {
	case 0:
		return nil
	case 1:
		return errors.New(broken[0])
	default:
		return fmt.Errorf("%s (and %d more organizations: %s)", broken[0], len(broken)-1, strings.Join(broken[1:], "; "))
	}
}
