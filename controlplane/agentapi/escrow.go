package agentapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

var (
	volumeRe    = regexp.MustCompile(`^[A-Za-z]:$`)
	protectorRe = regexp.MustCompile(`^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$`)
	// A BitLocker recovery password: 48 digits in 8 groups of 6.
	recoveryPasswordRe = regexp.MustCompile(`^[0-9]{6}(-[0-9]{6}){7}$`)
)

// EscrowRecoveryKey stores the calling agent's BitLocker recovery password for one
// volume and protector, sealed with the server keyring (AAD: org, device, volume,
// protector), audited without the password. The agent must be linked to a device (its
// inventory report does that); the password is never logged.
func (a *agentService) EscrowRecoveryKey(ctx context.Context, req *agentv1.EscrowRecoveryKeyRequest) (*agentv1.EscrowRecoveryKeyResponse, error) {
	c := callerFrom(ctx)
	kind := strings.TrimSpace(req.GetKind())
	volume := strings.ToUpper(strings.TrimSpace(req.GetVolume()))
	protector := strings.ToUpper(strings.TrimSpace(req.GetProtectorId()))
	password := strings.TrimSpace(req.GetRecoveryPassword())
	switch {
	case kind != store.RecoveryKindBitLocker:
		return nil, status.Error(codes.InvalidArgument, `kind must be "bitlocker"`)
	case !volumeRe.MatchString(volume):
		return nil, status.Error(codes.InvalidArgument, `volume must be a drive letter such as "C:"`)
	case !protectorRe.MatchString(protector):
		return nil, status.Error(codes.InvalidArgument, "protector_id must be a braced GUID such as {6E3B1F2A-0C4D-4E5F-8A9B-0C1D2E3F4A5B}")
	case !recoveryPasswordRe.MatchString(password):
		return nil, status.Error(codes.InvalidArgument, "recovery_password must be 48 digits in 8 groups of 6, separated by dashes")
	}
	if a.s.cfg.Sealer == nil {
		return nil, status.Error(codes.FailedPrecondition, "this server has no keyring to seal recovery keys")
	}
	ag, err := a.s.db.GetAgent(ctx, c.OrgID, c.AgentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.Unauthenticated, "unknown agent")
	}
	if err != nil {
		return nil, a.s.internal("escrow recovery key", err)
	}
	if ag.DeviceID == "" {
		return nil, status.Error(codes.FailedPrecondition, "this agent is not linked to a device yet: report inventory first, then escrow")
	}
	sealed, err := a.s.cfg.Sealer.Seal([]byte(password), store.RecoveryKeyAAD(c.OrgID, ag.DeviceID, volume, protector))
	if err != nil {
		return nil, a.s.internal("seal recovery key", err)
	}
	actx := domain.WithActor(ctx, domain.Actor{ID: "agent:" + c.AgentID})
	k := store.RecoveryKey{OrgID: c.OrgID, DeviceID: ag.DeviceID, AgentID: c.AgentID, Kind: kind, Volume: volume, ProtectorID: protector,
		SecretSealed: sealed}
	if _, err := a.s.db.EscrowRecoveryKey(actx, &k); err != nil {
		return nil, a.s.internal("escrow recovery key", err)
	}
	return &agentv1.EscrowRecoveryKeyResponse{}, nil
}

// RecoveryKeyView is an escrowed recovery key revealed to an admin.
type RecoveryKeyView struct {
	store.RecoveryKey
	// RecoveryPassword is the BitLocker recovery password (48 digits).
	RecoveryPassword string `json:"recovery_password"`
}

// EscrowedKey is what the device view shows of an escrowed key (never the password).
type EscrowedKey struct {
	Kind        string    `json:"kind" enum:"bitlocker"`
	Volume      string    `json:"volume"`
	ProtectorID string    `json:"protector_id"`
	EscrowedAt  time.Time `json:"escrowed_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// TrackingView is the agent channel's view of a device (GET /api/v1/devices/{id} →
// tracking, and /devices/{id}/tracking): tracking plus the volumes whose recovery key
// Lanyard holds.
type TrackingView struct {
	store.DeviceTracking
	EscrowedRecoveryKeys []EscrowedKey `json:"escrowed_recovery_keys"`
}

func (s *Server) trackingView(ctx context.Context, orgID, deviceID string) (TrackingView, error) {
	t, err := s.db.GetDeviceTracking(ctx, orgID, deviceID)
	if err != nil {
		return TrackingView{}, err
	}
	keys, err := s.db.ListRecoveryKeys(ctx, orgID, deviceID)
	if err != nil {
		return TrackingView{}, err
	}
	v := TrackingView{DeviceTracking: t, EscrowedRecoveryKeys: []EscrowedKey{}}
	for _, k := range keys {
		v.EscrowedRecoveryKeys = append(v.EscrowedRecoveryKeys, EscrowedKey{Kind: k.Kind, Volume: k.Volume, ProtectorID: k.ProtectorID,
			EscrowedAt: k.EscrowedAt, UpdatedAt: k.UpdatedAt})
	}
	return v, nil
}

// getRecoveryKeys reveals a device's escrowed recovery passwords to an admin; the reveal
// is audited (which keys, never the passwords), like the Mac lock PIN.
func (s *Server) getRecoveryKeys(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	deviceID := r.PathValue("id")
	keys, err := s.db.ListRecoveryKeys(r.Context(), p.OrgID, deviceID)
	if err != nil {
		return err
	}
	if s.cfg.Sealer == nil && len(keys) > 0 {
		return api.Unavailable("this server has no keyring to open recovery keys")
	}
	out := make([]RecoveryKeyView, 0, len(keys))
	var ids []string
	for _, k := range keys {
		pw, err := s.cfg.Sealer.Open(k.SecretSealed, store.RecoveryKeyAAD(k.OrgID, k.DeviceID, k.Volume, k.ProtectorID))
		if err != nil {
			return err
		}
		out = append(out, RecoveryKeyView{RecoveryKey: k, RecoveryPassword: string(pw)})
		ids = append(ids, k.ID)
	}
	if err := store.WriteAudit(r.Context(), s.db.SQL, store.AuditFor(r.Context(), p.OrgID, "device.recovery_keys_revealed", "device", deviceID, nil,
		map[string]any{"key_ids": ids, "count": len(ids), "user_id": p.UserID, "via": p.Via})); err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(out, ""))
}
