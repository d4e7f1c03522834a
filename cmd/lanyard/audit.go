package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// auditCmd is `lanyard admin audit`: checks on the audit log's hash chain.
func auditCmd() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "Audit log integrity"}
	var org string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Chain pending audit rows, then verify the hash chain and signed checkpoints (exit 1 naming the first tampered row)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return withDB(cmd, func(db *store.DB) error {
				// The checkpoint key is sealed by the server's keyring: verify with the same key file.
				kr, err := secrets.LoadOrCreate(cfg.KeyFile)
				if err != nil {
					return err
				}
				svc, err := auditchain.New(cmd.Context(), db, kr, auditchain.Options{})
				if err != nil {
					return err
				}
				var results []auditchain.Result
				if org != "" {
					r, err := svc.Verify(cmd.Context(), org)
					if err != nil {
						return err
					}
					results = append(results, r)
				} else if results, err = svc.VerifyAll(cmd.Context()); err != nil {
					return err
				}
				if len(results) == 0 {
					return errors.New("no audit rows to verify")
				}
				for _, r := range results {
					if !r.OK {
						return errors.New(r.String())
					}
					fmt.Fprintln(cmd.OutOrStdout(), r.String())
				}
				return nil
			})
		},
	}
	verify.Flags().StringVar(&org, "org", "", "organization id (default: every organization with audit rows)")
	audit.AddCommand(verify)
	return audit
}
