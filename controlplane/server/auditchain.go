package server

import (
	"context"

	auditsvc "github.com/lanyardhq/lanyard/controlplane/auditchain/service"
)

// buildAuditChain opens the checkpoint signing key (created sealed by the keyring on the
// first start) and registers the checkpoint job.
func buildAuditChain(ctx context.Context, d Deps) (*auditsvc.Service, error) {
	svc, err := auditsvc.Open(ctx, auditsvc.Config{Store: d.DB, Sealer: d.Keyring, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	svc.RegisterJobs(d.JobRegistry)
	return svc, nil
}
