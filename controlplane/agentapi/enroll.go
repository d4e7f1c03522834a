package agentapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

type enrollService struct {
	agentv1.UnimplementedEnrollmentServiceServer
	s *Server
}

// ErrSecretRejectedMessage is what an agent shows when its enrollment secret is refused.
const ErrSecretRejectedMessage = "enrollment secret rejected (unknown, revoked, expired or used up): download a fresh installer, or ask IT for a new enrollment secret"

func (e *enrollService) ExchangeSecret(ctx context.Context, req *agentv1.ExchangeSecretRequest) (*agentv1.ExchangeSecretResponse, error) {
	secret := strings.TrimSpace(req.GetEnrollmentSecret())
	if secret == "" {
		return nil, status.Error(codes.InvalidArgument, "enrollment_secret is required")
	}
	if len(req.GetHostname()) > 255 || len(req.GetSerialNumber()) > 64 || len(req.GetHardwareUuid()) > 64 || len(req.GetPlatform()) > 32 {
		return nil, status.Error(codes.InvalidArgument, "a field is too long")
	}
	// The store picks the identity (a usable serial, else the hardware UUID) and normalizes
	// both, as it does for every report (domain.IdentifyDevice).
	a := store.Agent{Hostname: req.GetHostname(), SerialNumber: req.GetSerialNumber(),
		HardwareUUID: req.GetHardwareUuid(), Platform: req.GetPlatform(), AgentVersion: req.GetAgentVersion()}
	if _, err := e.s.db.ExchangeEnrollmentSecret(ctx, enrollment.Hash(secret), &a); err != nil {
		if errors.Is(err, store.ErrSecretRejected) {
			e.s.cfg.Logger.Info("enrollment secret rejected", "reason", err.Error())
			// One message for unknown, revoked, expired and used-up secrets, so a caller
			// learns nothing about which; it tells the person at the machine what to do.
			return nil, status.Error(codes.Unauthenticated, ErrSecretRejectedMessage)
		}
		return nil, grpcError(err)
	}
	tok, exp, err := e.s.ca.MintToken(identity.Agent{OrgID: a.OrgID, AgentID: a.ID})
	if err != nil {
		return nil, grpcError(err)
	}
	e.s.cfg.Logger.Info("enrollment secret exchanged", "org_id", a.OrgID, "agent_id", a.ID, "hostname", a.Hostname)
	return &agentv1.ExchangeSecretResponse{Token: tok, ExpiresAt: timestamppb.New(exp), AgentId: a.ID}, nil
}

func (e *enrollService) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	if req.GetToken() == "" {
		return nil, status.Error(codes.InvalidArgument, "token is required")
	}
	if _, err := pki.ParseCSR(req.GetCsrDer()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	id, err := pki.PeekToken(req.GetToken())
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "enrollment token rejected")
	}
	ag, err := e.s.db.GetAgentByID(ctx, id.AgentID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (ag.OrgID != id.OrgID || ag.RevokedAt != nil)) {
		return nil, status.Error(codes.Unauthenticated, "enrollment token rejected")
	}
	if err != nil {
		return nil, grpcError(err)
	}
	iss, err := e.s.ca.Sign(ctx, req.GetToken(), req.GetCsrDer())
	switch {
	case errors.Is(err, pki.ErrBadCSR):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, pki.ErrTokenRejected):
		e.s.cfg.Logger.Info("enrollment token rejected", "agent_id", id.AgentID, "err", err)
		return nil, status.Error(codes.Unauthenticated, "enrollment token rejected")
	case err != nil:
		return nil, grpcError(err)
	}
	if err := e.s.db.MarkAgentEnrolled(ctx, ag.OrgID, ag.ID); err != nil {
		return nil, grpcError(err)
	}
	e.s.cfg.Logger.Info("agent enrolled", "org_id", ag.OrgID, "agent_id", ag.ID, "serial", pki.SerialHex(iss.Leaf()))
	return &agentv1.EnrollResponse{AgentId: ag.ID, OrgId: ag.OrgID, Certificate: e.s.bundle(iss)}, nil
}

func (s *Server) bundle(iss pki.Issued) *agentv1.CertificateBundle {
	leaf := iss.Leaf()
	b := &agentv1.CertificateBundle{
		RootsDer: [][]byte{s.ca.Root().Raw}, NotBefore: timestamppb.New(leaf.NotBefore), NotAfter: timestamppb.New(leaf.NotAfter),
		RenewAfter: timestamppb.New(pki.RenewAfter(leaf)), Serial: pki.SerialHex(leaf),
	}
	for _, c := range iss.Chain {
		b.ChainDer = append(b.ChainDer, c.Raw)
	}
	return b
}

// grpcError maps store and domain errors to gRPC codes in one place; unknown errors are
// Internal and their text stays in the log.
func grpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, store.ErrInvalidInput):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, "internal error")
}

// RenewExpired gives a device whose certificate lapsed while it was off a new one, without
// a new enrollment secret (see pki.CA.RenewExpired for what the caller proves).
func (e *enrollService) RenewExpired(ctx context.Context, req *agentv1.RenewExpiredRequest) (*agentv1.RenewResponse, error) {
	refused := status.Error(codes.Unauthenticated, "certificate not accepted")
	// The agent record is read only once the CA has verified the chain, the expiry window
	// and the key: a forged certificate naming some agent gets the same refusal whether
	// that agent exists, is revoked or not.
	var ag store.Agent
	iss, err := e.s.ca.RenewExpired(ctx, req.GetChainDer(), req.GetCsrDer(), e.s.cfg.RenewGrace, time.Now(),
		func(ctx context.Context, id identity.Agent) error {
			var err error
			ag, err = e.s.db.GetAgentByID(ctx, id.AgentID)
			switch {
			case errors.Is(err, store.ErrNotFound) || (err == nil && ag.OrgID != id.OrgID):
				return refused
			case err != nil:
				return grpcError(err)
			case ag.RevokedAt != nil:
				return errRevoked // an offboarded agent stays out
			}
			return nil
		})
	switch {
	case errors.Is(err, pki.ErrBadCSR):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, pki.ErrNotExpired):
		return nil, status.Error(codes.FailedPrecondition, "the certificate has not expired: renew it over the agent API")
	case errors.Is(err, pki.ErrExpiredTooLong):
		return nil, status.Error(codes.Unauthenticated, "the certificate expired too long ago: enroll again with a fresh installer or a new enrollment secret")
	case errors.Is(err, pki.ErrRevoked):
		return nil, errRevoked
	case errors.Is(err, pki.ErrNotOurs):
		e.s.cfg.Logger.Info("expired-certificate renewal refused", "err", err)
		return nil, refused
	case err != nil:
		return nil, grpcError(err)
	}
	e.s.cfg.Logger.Info("expired certificate renewed", "org_id", ag.OrgID, "agent_id", ag.ID, "serial", pki.SerialHex(iss.Leaf()))
	return &agentv1.RenewResponse{Certificate: e.s.bundle(iss)}, nil
}
