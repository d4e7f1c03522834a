package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki/identity"
)

// authDB adapts Lanyard's store to step-ca's db.AuthDB (which has no contexts), so
// revocation, issued certificates and used tokens live in our own tables.
type authDB struct{ ca *CA }

var _ db.AuthDB = (*authDB)(nil)

const dbTimeout = 10 * time.Second

func dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}

func (d *authDB) IsRevoked(sn string) (bool, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	c, err := d.ca.st.GetAgentCert(ctx, serialFromDecimal(sn))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.RevokedAt != nil, nil
}

func (d *authDB) IsSSHRevoked(string) (bool, error) { return false, nil }

func (d *authDB) Revoke(rci *db.RevokedCertificateInfo) error {
	ctx, cancel := dbCtx()
	defer cancel()
	return d.ca.st.RevokeAgentCert(ctx, serialFromDecimal(rci.Serial), rci.Reason, time.Now())
}

func (d *authDB) RevokeSSH(*db.RevokedCertificateInfo) error {
	return errors.New("pki: SSH certificates are not supported")
}

func (d *authDB) GetCertificate(sn string) (*x509.Certificate, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	c, err := d.ca.st.GetAgentCert(ctx, serialFromDecimal(sn))
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(c.DER)
}

func (d *authDB) UseToken(id, _ string) (bool, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	return d.ca.st.UsePKIToken(ctx, id, time.Now())
}

func (d *authDB) IsSSHHost(string) (bool, error)          { return false, nil }
func (d *authDB) GetSSHHostPrincipals() ([]string, error) { return nil, nil }
func (d *authDB) Shutdown() error                         { return nil }

// StoreCertificateChain records every issued agent certificate (step-ca calls it after
// signing, found by type assertion).
func (d *authDB) StoreCertificateChain(p provisioner.Interface, chain ...*x509.Certificate) error {
	return d.store(p, chain[0])
}

// StoreRenewedCertificate records a renewed certificate.
func (d *authDB) StoreRenewedCertificate(_ *x509.Certificate, chain ...*x509.Certificate) error {
	return d.store(nil, chain[0])
}

func (d *authDB) store(p provisioner.Interface, leaf *x509.Certificate) error {
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return err
	}
	name := ProvisionerName
	if p != nil {
		name = p.GetName()
	}
	ctx, cancel := dbCtx()
	defer cancel()
	return d.ca.st.InsertAgentCert(ctx, store.AgentCert{
		Serial: SerialHex(leaf), OrgID: id.OrgID, AgentID: id.AgentID, Provisioner: name, DER: leaf.Raw,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
	})
}
