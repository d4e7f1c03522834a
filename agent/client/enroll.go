package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// EnrollOptions configure Enroll.
type EnrollOptions struct {
	Config    config.Config
	Store     Store
	Collector *inventory.Collector
	Version   string
	Logger    *slog.Logger
}

// Enroll exchanges the enrollment secret for a one-time token, generates an
// ECDSA P-256 key on this device, sends a CSR and stores the returned
// certificate chain and roots in the state directory.
func Enroll(ctx context.Context, o EnrollOptions) (Identity, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := o.Config.ValidateForEnroll(); err != nil {
		return Identity{}, err
	}
	addr, _ := o.Config.EnrollmentTarget()
	grpcAddr, err := o.Config.GRPCTarget()
	if err != nil {
		return Identity{}, err
	}
	grpcAddrs, err := o.Config.GRPCTargets()
	if err != nil {
		return Identity{}, err
	}
	tc, pc, err := enrollmentTLS(addr, o.Config.CAFingerprintSHA256, log)
	if err != nil {
		return Identity{}, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return Identity{}, fmt.Errorf("client: dial enrollment %s: %w", addr, err)
	}
	defer conn.Close()
	cl := agentv1.NewEnrollmentServiceClient(conn)

	inv, err := o.Collector.Collect(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ex, err := cl.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{
		EnrollmentSecret: o.Config.EnrollmentSecret,
		Hostname:         inv.Hostname,
		SerialNumber:     inv.Hardware.SerialNumber,
		HardwareUuid:     inv.Hardware.HardwareUUID,
		Platform:         runtime.GOOS,
		AgentVersion:     o.Version,
	})
	if err != nil {
		return Identity{}, fmt.Errorf("client: exchange enrollment secret: %w", err)
	}
	key, csr, err := identity.NewKeyAndCSR(inv.Hostname)
	if err != nil {
		return Identity{}, err
	}
	resp, err := cl.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr})
	if err != nil {
		return Identity{}, fmt.Errorf("client: enroll: %w", err)
	}
	b := resp.GetCertificate()
	if len(b.GetChainDer()) == 0 || len(b.GetRootsDer()) == 0 {
		return Identity{}, errors.New("client: enroll response without certificate chain or roots")
	}
	if err := pc.finish(o.Config.CAFingerprintSHA256, b.GetRootsDer()); err != nil {
		return Identity{}, fmt.Errorf("client: enrollment server not verified by the pinned CA: %w", err)
	}
	creds := &Credentials{Key: key, Chain: b.GetChainDer(), Roots: b.GetRootsDer()}
	if _, err := creds.TLSCertificate(); err != nil {
		return Identity{}, err
	}
	if err := o.Store.SaveCredentials(creds); err != nil {
		return Identity{}, err
	}
	id := Identity{
		AgentID: resp.GetAgentId(), OrgID: resp.GetOrgId(), GRPCAddress: grpcAddr, GRPCAddresses: grpcAddrs,
		EnrolledAt: time.Now().UTC(),
	}
	applyBundle(&id, b)
	if err := o.Store.SaveIdentity(id); err != nil {
		return Identity{}, err
	}
	log.Info("enrolled", "agent_id", id.AgentID, "org_id", id.OrgID, "not_after", id.NotAfter)
	return id, nil
}

func pinIn(pin string, lists ...[][]byte) bool {
	for _, l := range lists {
		for _, der := range l {
			if Fingerprint(der) == pin {
				return true
			}
		}
	}
	return false
}

func applyBundle(id *Identity, b *agentv1.CertificateBundle) {
	id.CertSerial = b.GetSerial()
	id.NotBefore = b.GetNotBefore().AsTime()
	id.NotAfter = b.GetNotAfter().AsTime()
	id.RenewAfter = b.GetRenewAfter().AsTime()
	if b.GetRenewAfter() == nil {
		id.RenewAfter = id.NotBefore.Add(id.NotAfter.Sub(id.NotBefore) * 2 / 3)
	}
	id.RootFingerprints = nil
	for _, r := range b.GetRootsDer() {
		id.RootFingerprints = append(id.RootFingerprints, Fingerprint(r))
	}
}
