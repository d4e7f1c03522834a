package apple

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	depclient "github.com/micromdm/nanodep/client"
	"github.com/micromdm/nanodep/godep"
	depsync "github.com/micromdm/nanodep/sync"
	"github.com/micromdm/nanodep/tokenpki"
	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

func depName(orgID string) string { return "org-" + orgID }

func depKeyAAD(orgID string) string    { return "mdm:dep_key:" + orgID }
func depTokensAAD(orgID string) string { return "mdm:dep_tokens:" + orgID }

// CreateADEKeypair makes the keypair Apple Business Manager encrypts the server token to,
// and returns the certificate PEM the admin uploads to ABM.
func (s *Service) CreateADEKeypair(ctx context.Context, orgID string) ([]byte, error) {
	key, cert, err := tokenpki.SelfSignedRSAKeypair("lanyard-"+orgID, 365)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	sealed, err := s.keys.Seal(keyPEM, depKeyAAD(orgID))
	if err != nil {
		return nil, err
	}
	if err := s.db.MDMPutDEPKeypair(ctx, orgID, depName(orgID), string(certPEM), sealed); err != nil {
		return nil, err
	}
	return certPEM, nil
}

// UploadADEToken decrypts an ABM server token (.p7m) with our keypair and stores the
// OAuth tokens sealed. baseURL overrides Apple's DEP API host (empty keeps it).
func (s *Service) UploadADEToken(ctx context.Context, orgID string, p7m []byte, baseURL string) (time.Time, error) {
	dep, err := s.db.MDMGetDEP(ctx, orgID)
	if err != nil {
		return time.Time{}, err
	}
	keyPEM, err := s.keys.Open(dep.TokenPKIKeySealed, depKeyAAD(orgID))
	if err != nil {
		return time.Time{}, fmt.Errorf("open abm key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode([]byte(dep.TokenPKICertPEM))
	if kb == nil || cb == nil {
		return time.Time{}, errors.New("abm keypair is damaged: create a new one")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	js, err := tokenpki.DecryptTokenJSON(p7m, cert, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("this server token was not encrypted to Lanyard's ABM certificate (download it again after uploading the certificate): %w", err)
	}
	var toks depclient.OAuth1Tokens
	if err := json.Unmarshal(js, &toks); err != nil || !toks.Valid() {
		return time.Time{}, errors.New("server token does not hold valid OAuth tokens")
	}
	sealed, err := s.keys.Seal(js, depTokensAAD(orgID))
	if err != nil {
		return time.Time{}, err
	}
	if err := s.db.MDMPutDEPTokens(ctx, orgID, sealed, toks.AccessTokenExpiry); err != nil {
		return time.Time{}, err
	}
	if baseURL != "" {
		if err := s.db.MDMSetDEPBaseURL(ctx, orgID, baseURL); err != nil {
			return time.Time{}, err
		}
	}
	return toks.AccessTokenExpiry, nil
}

// depStore adapts our tables to nanodep's storage interfaces.
type depStore struct{ s *Service }

func (d depStore) RetrieveAuthTokens(ctx context.Context, name string) (*depclient.OAuth1Tokens, error) {
	dep, err := d.s.db.MDMGetDEPByName(ctx, name)
	if err != nil {
		return nil, err
	}
	if dep.TokensSealed == "" {
		return nil, errors.New("no ABM server token uploaded")
	}
	js, err := d.s.keys.Open(dep.TokensSealed, depTokensAAD(dep.OrgID))
	if err != nil {
		return nil, err
	}
	var t depclient.OAuth1Tokens
	return &t, json.Unmarshal(js, &t)
}

func (d depStore) RetrieveConfig(ctx context.Context, name string) (*depclient.Config, error) {
	dep, err := d.s.db.MDMGetDEPByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if dep.BaseURL == "" {
		if d.s.cfg.DEPURL != "" {
			return &depclient.Config{BaseURL: d.s.cfg.DEPURL}, nil
		}
		return nil, nil
	}
	return &depclient.Config{BaseURL: dep.BaseURL}, nil
}

func (d depStore) RetrieveCursor(ctx context.Context, name string) (string, error) {
	dep, err := d.s.db.MDMGetDEPByName(ctx, name)
	if err != nil {
		return "", err
	}
	return dep.Cursor, nil
}

func (d depStore) StoreCursor(ctx context.Context, name, cursor string) error {
	return d.s.db.MDMSetDEPCursor(ctx, name, cursor)
}

func (s *Service) depClient() *godep.Client {
	opts := []godep.Option{godep.WithUserAgent("lanyard/1")}
	if s.cfg.DEPClient != nil {
		opts = append(opts, godep.WithClient(s.cfg.DEPClient))
	}
	return godep.NewClient(depStore{s}, opts...)
}

// ensureADEProfile defines the org's ADE profile at ABM once; its URL is our
// /mdm/ade/enroll endpoint.
func (s *Service) ensureADEProfile(ctx context.Context, orgID string) (string, error) {
	dep, err := s.db.MDMGetDEP(ctx, orgID)
	if err != nil {
		return "", err
	}
	if dep.ProfileUUID != "" {
		return dep.ProfileUUID, nil
	}
	org, err := s.db.GetOrg(ctx, orgID)
	if err != nil {
		return "", err
	}
	t, url, name := true, s.cfg.BaseURL+"/mdm/ade/enroll", org.Name+" (Lanyard)"
	resp, err := s.depClient().DefineProfile(ctx, depName(orgID), &godep.ProfileJson{
		ProfileName: &name, Url: &url, IsSupervised: &t, IsMandatory: &t, AwaitDeviceConfigured: &t,
		IsMdmRemovable: false, OrgMagic: orgID,
	})
	if err != nil {
		return "", fmt.Errorf("define ADE profile at ABM: %w", err)
	}
	if resp.ProfileUuid == nil || *resp.ProfileUuid == "" {
		return "", errors.New("ABM defined the ADE profile without a UUID")
	}
	if err := s.db.MDMSetDEPProfile(ctx, orgID, *resp.ProfileUuid); err != nil {
		return "", err
	}
	return *resp.ProfileUuid, nil
}

// AssignADEProfile assigns the org's ADE profile to a Mac's serial at ABM and links the
// serial to the employee, so the Mac enrolls itself at first boot and joins that hire.
// The lifecycle workflow calls it when a Mac is bought for a new hire.
func (s *Service) AssignADEProfile(ctx context.Context, orgID, serial, employeeID string) error {
	if serial == "" {
		return errors.New("serial number required")
	}
	if employeeID != "" {
		if _, err := s.db.GetEmployee(ctx, orgID, employeeID); err != nil {
			return err
		}
	}
	prof, err := s.ensureADEProfile(ctx, orgID)
	if err != nil {
		return err
	}
	resp, err := s.depClient().AssignProfile(ctx, depName(orgID), prof, serial)
	if err != nil {
		return fmt.Errorf("assign ADE profile at ABM: %w", err)
	}
	if st := resp.Devices[serial]; st != "SUCCESS" {
		return fmt.Errorf("ABM refused the profile for %s: %s", serial, st)
	}
	return s.db.MDMAssignDEPDevice(ctx, orgID, serial, employeeID, prof)
}

// SyncADE runs one ABM device fetch/sync pass (cursor persisted) and records the devices.
// It returns how many device records it saw.
func (s *Service) SyncADE(ctx context.Context, orgID string) (int, error) {
	seen := 0
	cb := func(ctx context.Context, _ bool, resp *godep.FetchDeviceResponseJson) error {
		for _, d := range resp.Devices {
			seen++
			if err := s.db.MDMUpsertDEPDevice(ctx, store.MDMDEPDevice{OrgID: orgID, SerialNumber: d.SerialNumber, Model: d.Model,
				Description: deref(d.Description), OpType: string(deref(d.OpType)), ProfileStatus: string(deref(d.ProfileStatus)),
				ProfileUUID: deref(d.ProfileUuid)}); err != nil {
				return err
			}
		}
		return nil
	}
	syncer := depsync.NewSyncer(s.depClient(), depName(orgID), depStore{s}, depsync.WithCallback(cb), depsync.WithLogger(nanoLogger{s.log}))
	if err := syncer.Run(ctx); err != nil {
		return seen, fmt.Errorf("abm sync: %w", err)
	}
	return seen, nil
}

// adeEmployeeForSerial links a Mac enrolling through ADE to the hire its serial was
// assigned to.
func (s *Service) adeEmployeeForSerial(ctx context.Context, orgID, serial string) string {
	d, err := s.db.MDMGetDEPDevice(ctx, orgID, serial)
	if err != nil {
		return ""
	}
	return d.EmployeeID
}

// machineInfo is what a Mac in Setup Assistant POSTs to the ADE profile URL.
type machineInfo struct {
	UDID    string
	SERIAL  string
	PRODUCT string
	VERSION string
}

// serveADEProfile answers a Mac in Setup Assistant: the body is a CMS-signed MachineInfo
// plist. The CMS signature is verified; its chain is Apple's device CA, which we do not
// pin, so the serial must also be in an org's ABM account. The answer is the signed
// enrollment profile with a one-time challenge bound to the serial's hire.
func (s *Service) serveADEProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body := http.MaxBytesReader(w, r.Body, 1<<20)
	raw := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := body.Read(buf)
		raw = append(raw, buf[:n]...)
		if err != nil {
			break
		}
	}
	p7, err := pkcs7.Parse(raw)
	if err != nil || p7.Verify() != nil {
		http.Error(w, "machine info must be a signed CMS message", http.StatusBadRequest)
		return
	}
	var mi machineInfo
	if err := plist.Unmarshal(p7.Content, &mi); err != nil || mi.SERIAL == "" {
		http.Error(w, "malformed machine info", http.StatusBadRequest)
		return
	}
	orgID, err := s.db.MDMFindDEPDeviceOrg(ctx, mi.SERIAL)
	if err != nil {
		s.log.Warn("ADE enrollment from a serial in no ABM account", "serial", mi.SERIAL)
		http.Error(w, "this Mac is not assigned to this server", http.StatusForbidden)
		return
	}
	prof, err := s.EnrollmentProfile(ctx, orgID, s.adeEmployeeForSerial(ctx, orgID, mi.SERIAL), "ade")
	if err != nil {
		s.log.Error("ADE enrollment profile", "err", err)
		http.Error(w, "enrollment is temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", ProfileContentType)
	_, _ = w.Write(prof)
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}
