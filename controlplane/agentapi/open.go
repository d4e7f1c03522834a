package agentapi

import (
	"context"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
)

// Open loads (or creates, on the first start) the agent CA with its keys sealed by sealer
// (the server's *secrets.Keyring) and builds the agent channel. The returned *Server
// provides Start(ctx) (both gRPC listeners and the delivery loops), Routes() (admin API),
// DeviceDetails (the "tracking" view on GET /api/v1/devices/{id}) and Commands (for
// RegisterChannel by the MDM capability). sealer also seals the recovery keys agents
// escrow.
func Open(ctx context.Context, db *store.DB, sealer pki.Sealer, cfg Config) (*Server, error) {
	ca, err := pki.Open(ctx, db, sealer, pki.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if cfg.Sealer == nil {
		cfg.Sealer = sealer
	}
	return New(db, ca, cfg)
}
