package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// auditCmd is `lanyard admin audit`: the tamper-evident audit chain (issue 14).
func auditCmd() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var orgID string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Link queued audit rows, then check every organization's chain (or --org's): exits non-zero naming the first bad row",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			// The keyring opens the checkpoint keys: a checkpoint only counts when signed by one.
			kr, err := secrets.LoadOrCreate(cfg.KeyFile)
			if err != nil {
				return err
			}
			return withDB(cmd, func(db *store.DB) error {
				ctx := cmd.Context()
				orgs := []string{orgID}
				if orgID == "" {
					list, err := db.ListOrgs(ctx)
					if err != nil {
						return err
					}
					orgs = orgs[:0]
					for _, o := range list {
						orgs = append(orgs, o.ID)
					}
				} else if _, err := db.GetOrg(ctx, orgID); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no organization with id %s", orgID)
				}
				c := auditchain.New(auditchain.Options{Store: db, Keyring: kr})
				var broken error
				for _, id := range orgs {
					rep, err := c.ChainAndVerify(ctx, id)
					if err != nil {
						return err
					}
					if !rep.OK {
						if broken == nil {
							broken = fmt.Errorf("audit chain broken: org %s: %s", id, rep.FirstBad)
						}
						continue
					}
					line := fmt.Sprintf("audit chain ok: org %s, %d rows, %d checkpoints", id, rep.Rows, rep.Checkpoints)
					if rep.Unchained > 0 {
						line += fmt.Sprintf(", %d rows not chained yet", rep.Unchained)
					}
					fmt.Fprintln(cmd.OutOrStdout(), line)
				}
				return broken
			})
		},
	}
	verify.Flags().StringVar(&orgID, "org", "", "verify only this organization")
	audit.AddCommand(verify)
	return audit
}
