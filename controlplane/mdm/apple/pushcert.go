package apple

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Push certificate errors.
var (
	// ErrPushCertExpired: pushes stop until an admin uploads the renewed certificate.
	ErrPushCertExpired = errors.New("APNs push certificate expired")
	// ErrNoPushCert: the org has not uploaded a push certificate yet.
	ErrNoPushCert = errors.New("no APNs push certificate uploaded")
	// ErrTopicChanged: a "renewal" with another topic would strand every enrolled Mac
	// (the profile's Topic can never change); renew the same certificate at Apple.
	ErrTopicChanged = errors.New("push certificate topic differs from the current one")
)

// PushCertWarnDays is how long before expiry /readyz and the API warn.
const PushCertWarnDays = 30

func pushKeyAAD(orgID string) string { return "mdm:push_key:" + orgID }

// UploadPushCert stores an org's APNs certificate and key (sealed), reading topic and
// expiry from the certificate. A renewal must keep the topic while Macs are enrolled.
func (s *Service) UploadPushCert(ctx context.Context, orgID, actor string, certPEM, keyPEM []byte) (*PushCertInfo, error) {
	info, err := ParsePushCert(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if !info.NotAfter.After(s.cfg.Now()) {
		return nil, fmt.Errorf("%w on %s: renew it at identity.apple.com first", ErrPushCertExpired, info.NotAfter.Format(time.DateOnly))
	}
	old, err := s.db.MDMGetPushCert(ctx, orgID)
	switch {
	case err == nil && old.Topic != info.Topic:
		n, cerr := s.db.MDMCountEnrollments(ctx, orgID)
		if cerr != nil {
			return nil, cerr
		}
		if n > 0 {
			return nil, fmt.Errorf("%w (%s → %s) and %d Macs are enrolled with the old topic: renew the existing certificate instead of creating a new one",
				ErrTopicChanged, old.Topic, info.Topic, n)
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	sealed, err := s.keys.Seal(keyPEM, pushKeyAAD(orgID))
	if err != nil {
		return nil, fmt.Errorf("seal push key: %w", err)
	}
	err = s.db.MDMPutPushCert(ctx, store.MDMPushCert{OrgID: orgID, Topic: info.Topic, NotAfter: info.NotAfter,
		CertPEM: string(certPEM), KeySealed: sealed, UpdatedBy: actor})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// PushCertStatus is the API view of an org's push certificate.
type PushCertStatus struct {
	Topic    string    `json:"topic"`
	NotAfter time.Time `json:"not_after"`
	Expired  bool      `json:"expired"`
	Warning  string    `json:"warning,omitempty"`
}

func (s *Service) pushCertStatus(c store.MDMPushCert) PushCertStatus {
	now := s.cfg.Now()
	st := PushCertStatus{Topic: c.Topic, NotAfter: c.NotAfter, Expired: !c.NotAfter.After(now)}
	left := c.NotAfter.Sub(now)
	switch {
	case st.Expired:
		st.Warning = fmt.Sprintf("APNs push certificate %s expired on %s: Macs get no commands until it is renewed (same topic) and uploaded",
			c.Topic, c.NotAfter.Format(time.DateOnly))
	case left < PushCertWarnDays*24*time.Hour:
		st.Warning = fmt.Sprintf("APNs push certificate %s expires in %d days (%s): renew it at identity.apple.com and upload it",
			c.Topic, int(left.Hours()/24), c.NotAfter.Format(time.DateOnly))
	}
	return st
}

// ReadyWarnings is a readiness warning check for /readyz: one line per push certificate
// that expires within PushCertWarnDays or has expired. Signature matches
// api.WarningCheck.
func (s *Service) ReadyWarnings(ctx context.Context) []string {
	certs, err := s.db.MDMListPushCerts(ctx)
	if err != nil {
		return []string{"mdm: cannot read push certificates: " + err.Error()}
	}
	var out []string
	for _, c := range certs {
		if st := s.pushCertStatus(c); st.Warning != "" {
			out = append(out, "org "+c.OrgID+": "+st.Warning)
		}
	}
	return out
}

// pushCertStore serves nanomdm's push service from our table, where the key is sealed;
// nanomdm's own push_certs table (unencrypted keys) is never used.
type pushCertStore struct{ s *Service }

func (p *pushCertStore) token(c store.MDMPushCert) string {
	return strconv.FormatInt(c.UpdatedAt.UnixNano(), 10)
}

func (p *pushCertStore) IsPushCertStale(ctx context.Context, topic, staleToken string) (bool, error) {
	c, err := p.s.db.MDMGetPushCertByTopic(ctx, topic)
	if err != nil {
		return true, nil
	}
	return p.token(c) != staleToken || !c.NotAfter.After(p.s.cfg.Now()), nil
}

func (p *pushCertStore) RetrievePushCert(ctx context.Context, topic string) (*tls.Certificate, string, error) {
	c, err := p.s.db.MDMGetPushCertByTopic(ctx, topic)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("%w for topic %s", ErrNoPushCert, topic)
	}
	if err != nil {
		return nil, "", err
	}
	if !c.NotAfter.After(p.s.cfg.Now()) {
		return nil, "", fmt.Errorf("%w: topic %s expired on %s; upload the renewed certificate",
			ErrPushCertExpired, topic, c.NotAfter.Format(time.DateOnly))
	}
	key, err := p.s.keys.Open(c.KeySealed, pushKeyAAD(c.OrgID))
	if err != nil {
		return nil, "", fmt.Errorf("open push key: %w", err)
	}
	pair, err := tls.X509KeyPair([]byte(c.CertPEM), key)
	if err != nil {
		return nil, "", fmt.Errorf("push key pair: %w", err)
	}
	return &pair, p.token(c), nil
}
