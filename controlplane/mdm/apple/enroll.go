package apple

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	kitlog "github.com/go-kit/kit/log"
	scepserver "github.com/micromdm/scep/v2/server"
	"github.com/smallstep/scep"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// DeviceCertDays is the validity of a device identity issued over SCEP.
const DeviceCertDays = 365

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// EnrollLink is a freshly created enrollment link; URL carries the only copy of its
// secret.
type EnrollLink struct {
	store.MDMEnrollLink
	URL string `json:"url"`
}

// CreateEnrollLink makes a per-employee enrollment link (employeeID may be empty for an
// unassigned Mac). Each download of the profile mints its own one-time SCEP challenge.
func (s *Service) CreateEnrollLink(ctx context.Context, orgID, employeeID, actor string, ttl time.Duration) (EnrollLink, error) {
	if ttl <= 0 {
		ttl = 14 * 24 * time.Hour
	}
	if employeeID != "" {
		if _, err := s.db.GetEmployee(ctx, orgID, employeeID); err != nil {
			return EnrollLink{}, err
		}
	}
	token := randomToken(32)
	l := store.MDMEnrollLink{OrgID: orgID, EmployeeID: employeeID, CreatedBy: actor, ExpiresAt: s.cfg.Now().Add(ttl).UTC()}
	if err := s.db.MDMCreateEnrollLink(ctx, &l, sha256hex(token)); err != nil {
		return EnrollLink{}, err
	}
	return EnrollLink{MDMEnrollLink: l, URL: s.cfg.BaseURL + "/enroll/" + token}, nil
}

func (s *Service) serveEnrollProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	link, err := s.db.MDMGetEnrollLinkByHash(ctx, sha256hex(r.PathValue("token")), s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "This enrollment link is unknown, expired or revoked. Ask IT for a new one.", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("enrollment link", "err", err)
		http.Error(w, "enrollment is temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	prof, err := s.EnrollmentProfile(ctx, link.OrgID, link.EmployeeID, link.ID)
	if errors.Is(err, ErrNoPushCert) {
		http.Error(w, "MDM is not set up yet: an admin must upload the APNs push certificate.", http.StatusConflict)
		return
	}
	if err != nil {
		s.log.Error("enrollment profile", "err", err)
		http.Error(w, "enrollment is temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", ProfileContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="lanyard-enroll.mobileconfig"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(prof)
}

// EnrollmentProfile renders a signed enrollment profile with a new one-time SCEP
// challenge bound to the org (and employee).
func (s *Service) EnrollmentProfile(ctx context.Context, orgID, employeeID, linkID string) ([]byte, error) {
	pc, err := s.db.MDMGetPushCert(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoPushCert
	}
	if err != nil {
		return nil, err
	}
	org, err := s.db.GetOrg(ctx, orgID)
	if err != nil {
		return nil, err
	}
	challenge := randomToken(24)
	if err := s.db.MDMCreateChallenge(ctx, sha256hex(challenge), orgID, linkID, employeeID, s.cfg.Now().Add(s.cfg.ChallengeTTL)); err != nil {
		return nil, err
	}
	raw, err := BuildEnrollmentProfile(ProfileParams{
		Org: org.Name, ServerURL: s.serverURL(), CheckInURL: s.checkInURL(), SCEPURL: s.scepURL(),
		Topic: pc.Topic, Challenge: challenge, Subject: "Lanyard " + orgID,
	})
	if err != nil {
		return nil, err
	}
	return SignProfile(raw, s.id)
}

// scepHandler serves /scep: micromdm/scep's server on the MDM CA, with a signer that
// consumes a one-time challenge and records the issued certificate in our store.
func (s *Service) scepHandler() (http.Handler, error) {
	signer := scepserver.CSRSignerContextFunc(func(ctx context.Context, m *scep.CSRReqMessage) (*x509.Certificate, error) {
		if m == nil || m.CSR == nil {
			return nil, errors.New("scep: empty CSR")
		}
		if err := m.CSR.CheckSignature(); err != nil {
			return nil, fmt.Errorf("scep: CSR signature: %w", err)
		}
		orgID, employeeID, err := s.db.MDMConsumeChallenge(ctx, sha256hex(m.ChallengePassword), s.cfg.Now())
		if err != nil {
			s.log.Warn("scep request refused", "err", err)
			return nil, errors.New("scep: invalid, used or expired challenge")
		}
		crt, err := s.id.IssueDeviceCert(&x509.Certificate{Subject: m.CSR.Subject}, m.CSR.PublicKey, DeviceCertDays)
		if err != nil {
			return nil, fmt.Errorf("scep: sign: %w", err)
		}
		if err := s.db.MDMPutSCEPCert(ctx, crt.SerialNumber.Text(16), orgID, employeeID, crt.Subject.String(), crt.NotAfter, crt.Raw); err != nil {
			return nil, err
		}
		return crt, nil
	})
	svc, err := scepserver.NewService(s.id.CACert, s.id.CAKey, signer, scepserver.WithLogger(kitlog.NewNopLogger()))
	if err != nil {
		return nil, fmt.Errorf("scep service: %w", err)
	}
	return scepserver.MakeHTTPHandler(scepserver.MakeServerEndpoints(svc), svc, kitlog.NewNopLogger()), nil
}
