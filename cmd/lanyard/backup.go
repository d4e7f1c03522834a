package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/backup"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/pgmove"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// backupCmd is `lanyard admin backup`: an online, consistent backup of a SQLite
// installation (docs/operations.md, Backup and restore).
func backupCmd() *cobra.Command {
	var out string
	var includeKeyring bool
	c := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Back up a SQLite installation while it runs (database snapshot, data-dir state, manifest); the keyring only with --include-keyring",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if cfg.DatabaseURL != "" {
				return errors.New("database-url is set: back up Postgres with pg_dump -Fc and the keyring file (docs/operations.md, Backup and restore)")
			}
			m, err := backup.Backup(cmd.Context(), backup.Options{DataDir: cfg.DataDir, KeyFile: cfg.KeyFile, Out: out,
				IncludeKeyring: includeKeyring, Version: server.Version})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var rows int64
			for _, n := range m.Tables {
				rows += n
			}
			fmt.Fprintf(w, "backup %s: schema %d, %d tables, %d rows, %d members\n", out, m.SchemaVersion, len(m.Tables), rows, len(m.Members))
			if includeKeyring {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %s contains the keyring (keys %s): whoever reads it can open the CA keys and every secret. Store it encrypted, apart from ordinary backups.\n",
					out, strings.Join(m.Keyring.Held, ", "))
			} else if len(m.Keyring.Needed) > 0 {
				fmt.Fprintf(w, "the keyring is NOT in the backup: restoring needs keys %s from %s; keep a copy of that file somewhere safe and separate\n",
					strings.Join(m.Keyring.Needed, ", "), cfg.KeyFile)
			} else {
				fmt.Fprintf(w, "the keyring is NOT in the backup; nothing in the database is sealed yet, but from the first start on it will be: keep a copy of %s\n", cfg.KeyFile)
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "archive to write (tar.gz, mode 0600; must not exist)")
	c.Flags().BoolVar(&includeKeyring, "include-keyring", false, "also put the keyring in the archive (it then opens every secret: keep it as safe as the keyring)")
	return c
}

func restoreCmd() *cobra.Command {
	var in, keyring string
	c := &cobra.Command{
		Use:   "restore --in FILE",
		Short: "Restore a backup into a new, empty data directory (--data-dir), verifying checksums and row counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return errors.New("--in is required")
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			m, err := backup.Restore(cmd.Context(), backup.RestoreOptions{In: in, DataDir: cfg.DataDir, KeyFile: keyring})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored the backup of %s (schema %d, %d tables) into %s; start it with: lanyard serve --data-dir %s\n",
				m.CreatedAt.Format("2006-01-02 15:04:05Z"), m.SchemaVersion, len(m.Tables), cfg.DataDir, cfg.DataDir)
			return nil
		},
	}
	c.Flags().StringVar(&in, "in", "", "backup archive made by `lanyard admin backup`")
	c.Flags().StringVar(&keyring, "keyring", "", "keyring file to install when the backup holds none")
	return c
}

// moveCmd is `lanyard admin move-to-postgres`: a stopped SQLite installation into an
// empty Postgres database, CA, agents, MDM, audit and jobs included.
func moveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "move-to-postgres --data-dir D --database-url URL",
		Short: "Copy a stopped SQLite installation (every table) into an empty Postgres database; then serve with --database-url",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if cfg.DatabaseURL == "" {
				return errors.New("--database-url is required: the Postgres database to move into")
			}
			ctx := cmd.Context()
			if _, err := os.Stat(cfg.SQLitePath()); err != nil {
				return fmt.Errorf("no SQLite installation in %s: %w", cfg.DataDir, err)
			}
			src, err := sqlite.Open(ctx, cfg.SQLitePath())
			if err != nil {
				return err
			}
			defer src.Close()
			// The Postgres installation will read the CA keys with this keyring: check it
			// opens them before anything is written.
			if err := backup.CheckKeyring(ctx, src.SQL, cfg.KeyFile); err != nil {
				return err
			}
			dst, err := postgres.Open(ctx, cfg.DatabaseURL)
			if err != nil {
				return err
			}
			defer dst.Close()
			// Both sides at this version's schema: the source as `serve` would leave it.
			for _, db := range []*store.DB{src, dst} {
				if err := server.Migrate(ctx, db); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			counts, err := pgmove.Move(ctx, src, dst, pgmove.Options{NanoMDM: apple.NanoMDMMove{Logger: server.NewLogger(cfg)},
				Progress: func(table string, n int64) {
					if n < 0 {
						fmt.Fprintf(w, "  %s\n", table)
						return
					}
					fmt.Fprintf(w, "  %-28s %8d rows\n", table, n)
				}})
			if err != nil {
				return err
			}
			var rows int64
			for _, n := range counts {
				rows += n
			}
			fmt.Fprintf(w, "moved %d rows in %d tables. The CA and every secret are in the database, sealed by the keyring %s:\n"+
				"serve with --database-url and the same --key-file (copy it, mode 0600, to every replica); %s is no longer used.\n",
				rows, len(counts), cfg.KeyFile, cfg.SQLitePath())
			return nil
		},
	}
}
