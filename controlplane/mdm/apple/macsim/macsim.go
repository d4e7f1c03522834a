// Package macsim is a simulated Mac for tests and benchmarks: it downloads an enrollment
// profile (or asks for one over ADE), gets its identity over SCEP with the profile's
// challenge, sends Authenticate and TokenUpdate signed with Mdm-Signature, polls with
// Idle when woken by a push (or a timer), and answers commands with Acknowledged, Error
// or NotNow, keeping the state a real Mac would (installed profiles, lock, erase).
package macsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	kitlog "github.com/go-kit/kit/log"
	"github.com/google/uuid"
	"github.com/micromdm/plist"
	scepclient "github.com/micromdm/scep/v2/client"
	"github.com/micromdm/scep/v2/cryptoutil/x509util"
	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
)

// Answer is how the Mac answers one command.
type Answer string

const (
	Ack    Answer = "Acknowledged"
	Error  Answer = "Error"
	NotNow Answer = "NotNow"
	// Ignore: the Mac takes the command and never answers (stops the session).
	Ignore Answer = "Ignore"
)

// Received is a command the Mac got.
type Received struct {
	UUID        string
	RequestType string
	Raw         []byte
	Answer      Answer
}

// Mac is one simulated Mac. Exported fields may be set before Enroll.
type Mac struct {
	UDID      string
	Serial    string
	Model     string
	OSVersion string
	Client    *http.Client

	FileVault, Firewall, SIP bool

	key        *rsa.PrivateKey
	cert       *x509.Certificate
	serverURL  string
	checkInURL string
	topic      string
	token      []byte
	pushMagic  string

	mu       sync.Mutex
	policy   map[string][]Answer // request type → queued answers (default Ack)
	profiles map[string]string   // installed: identifier → PayloadUUID
	received []Received
	locked   bool
	lockPIN  string
	renewal  *apple.ParsedEnrollmentProfile
	renewals int
	erased   bool
	awaiting bool

	sessMu  sync.Mutex
	wakeMu  sync.Mutex
	pending bool
	running bool
	idle    *sync.Cond // guarded by wakeMu; see idleCond
	errs    []error
	onDone  func(Received)
	onAcked func(Received)
}

// New returns a Mac with a random UDID.
func New(serial string) *Mac {
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	return &Mac{
		UDID: strings.ToUpper(uuid.NewString()), Serial: serial, Model: "Mac15,3", OSVersion: "15.1",
		Client: http.DefaultClient, FileVault: true, Firewall: true, SIP: true,
		policy: map[string][]Answer{}, profiles: map[string]string{},
		token: tok, pushMagic: strings.ToUpper(uuid.NewString()),
	}
}

// Token returns the hex push token (what APNs sees in the URL).
func (m *Mac) Token() string { return hex.EncodeToString(m.token) }

// Identity returns the SCEP-issued identity.
func (m *Mac) Identity() (*x509.Certificate, *rsa.PrivateKey) { return m.cert, m.key }

// SetIdentity replaces the identity (tests of forged or foreign certificates).
func (m *Mac) SetIdentity(c *x509.Certificate, k *rsa.PrivateKey) { m.cert, m.key = c, k }

// AnswerNext queues answers for the next commands of a request type.
func (m *Mac) AnswerNext(requestType string, answers ...Answer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policy[requestType] = append(m.policy[requestType], answers...)
}

// OnAnswer calls fn after each answered command (benchmarks measure with it).
func (m *Mac) OnAnswer(fn func(Received)) { m.mu.Lock(); m.onDone = fn; m.mu.Unlock() }

// OnAcked calls fn after the server has taken the Mac's answer to a command (the answer's
// HTTP round trip finished); benchmarks measure command latency with it.
func (m *Mac) OnAcked(fn func(Received)) { m.mu.Lock(); m.onAcked = fn; m.mu.Unlock() }

// RemoveProfile simulates a user or another tool removing an installed profile (drift).
func (m *Mac) RemoveProfile(identifier string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.profiles, identifier)
}

// Profiles returns the installed profile identifiers → UUIDs.
func (m *Mac) Profiles() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, v := range m.profiles {
		out[k] = v
	}
	return out
}

// Locked reports the lock state and PIN.
func (m *Mac) Locked() (bool, string) { m.mu.Lock(); defer m.mu.Unlock(); return m.locked, m.lockPIN }

// Erased reports whether an EraseDevice was acknowledged.
func (m *Mac) Erased() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.erased }

// Received returns every command received so far.
func (m *Mac) Received() []Received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Received(nil), m.received...)
}

// Errors returns errors from background sessions.
func (m *Mac) Errors() []error {
	m.wakeMu.Lock()
	defer m.wakeMu.Unlock()
	return append([]error(nil), m.errs...)
}

// FetchProfile downloads an enrollment profile from an enrollment link.
func (m *Mac) FetchProfile(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profile download: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if ct := resp.Header.Get("Content-Type"); ct != apple.ProfileContentType {
		return nil, fmt.Errorf("profile content type %q", ct)
	}
	return b, nil
}

// FetchADEProfile POSTs a signed MachineInfo to the ADE profile URL, as Setup Assistant does.
func (m *Mac) FetchADEProfile(ctx context.Context, url string) ([]byte, error) {
	body, err := plist.Marshal(map[string]string{"UDID": m.UDID, "SERIAL": m.Serial, "PRODUCT": m.Model, "VERSION": "24B83", "LANGUAGE": "en"})
	if err != nil {
		return nil, err
	}
	k, c, err := selfSigned("Apple iPhone Device CA (simulated)")
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		return nil, err
	}
	if err := sd.AddSigner(c, k, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	signed, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(signed))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/pkcs7-signature")
	resp, err := m.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ADE profile: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	m.awaiting = true
	return b, nil
}

// Enroll installs the profile: SCEP with its challenge, then Authenticate and TokenUpdate.
func (m *Mac) Enroll(ctx context.Context, profile []byte) error {
	p, err := m.SCEP(ctx, profile)
	if err != nil {
		return err
	}
	return m.Checkin(ctx, p)
}

// SCEP gets the identity certificate with the profile's challenge and returns the parsed
// profile.
func (m *Mac) SCEP(ctx context.Context, profile []byte) (*apple.ParsedEnrollmentProfile, error) {
	inner, _, err := apple.UnwrapSignedProfile(profile)
	if err != nil {
		return nil, err
	}
	p, err := apple.ParseEnrollmentProfile(inner)
	if err != nil {
		return nil, err
	}
	if !p.MDM.SignMessage {
		return nil, errors.New("profile does not ask for SignMessage")
	}
	cert, key, err := scepEnroll(ctx, p.SCEP.URL, p.SCEP.Challenge, m.Serial)
	if err != nil {
		return nil, err
	}
	m.cert, m.key = cert, key
	return p, nil
}

// SetServer points the Mac at MDM URLs without a profile (benchmarks enroll Macs whose
// identity was issued directly).
func (m *Mac) SetServer(serverURL, checkInURL, topic string) {
	m.serverURL, m.checkInURL, m.topic = serverURL, checkInURL, topic
}

// Checkin sends Authenticate and TokenUpdate with the MDM payload of the profile.
func (m *Mac) Checkin(ctx context.Context, p *apple.ParsedEnrollmentProfile) error {
	m.serverURL, m.checkInURL, m.topic = p.MDM.ServerURL, p.MDM.CheckInURL, p.MDM.Topic
	if m.checkInURL == "" {
		m.checkInURL = m.serverURL
	}
	if err := m.Authenticate(ctx); err != nil {
		return err
	}
	return m.TokenUpdate(ctx)
}

// Authenticate sends the Authenticate check-in.
func (m *Mac) Authenticate(ctx context.Context) error {
	_, err := m.checkin(ctx, map[string]any{
		"MessageType": "Authenticate", "UDID": m.UDID, "Topic": m.topic, "SerialNumber": m.Serial,
		"Model": m.Model, "ModelName": "MacBook Pro", "OSVersion": m.OSVersion, "DeviceName": "Sim " + m.Serial,
		"BuildVersion": "24B83", "ProductName": m.Model,
	})
	return err
}

// TokenUpdate sends a TokenUpdate with a fresh push token.
func (m *Mac) TokenUpdate(ctx context.Context) error {
	msg := map[string]any{
		"MessageType": "TokenUpdate", "UDID": m.UDID, "Topic": m.topic, "Token": m.token, "PushMagic": m.pushMagic,
	}
	if m.awaiting {
		msg["AwaitingConfiguration"] = true
	}
	_, err := m.checkin(ctx, msg)
	return err
}

// CheckOut sends CheckOut (profile removed).
func (m *Mac) CheckOut(ctx context.Context) error {
	_, err := m.checkin(ctx, map[string]any{"MessageType": "CheckOut", "UDID": m.UDID, "Topic": m.topic})
	return err
}

func (m *Mac) checkin(ctx context.Context, msg map[string]any) ([]byte, error) {
	body, err := plist.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return m.Do(ctx, m.checkInURL, body, true)
}

// HTTPError is a non-200 answer.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("mdm server: %d %s", e.Status, e.Body) }

// Do sends a signed MDM request (PUT, like a real Mac) and returns the body.
func (m *Mac) Do(ctx context.Context, url string, body []byte, checkin bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if checkin {
		req.Header.Set("Content-Type", "application/x-apple-aspen-mdm-checkin")
	}
	if m.cert != nil {
		sig, err := SignMessage(body, m.cert, m.key)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Mdm-Signature", sig)
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return b, nil
}

// SignMessage makes the Mdm-Signature header: a base64 detached CMS signature of body.
func SignMessage(body []byte, cert *x509.Certificate, key *rsa.PrivateKey) (string, error) {
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		return "", err
	}
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		return "", err
	}
	sd.Detach()
	sig, err := sd.Finish()
	return base64.StdEncoding.EncodeToString(sig), err
}

// Session polls once: Idle, then answers commands until the server has none.
func (m *Mac) Session(ctx context.Context) error {
	m.sessMu.Lock()
	defer m.sessMu.Unlock()
	report := map[string]any{"UDID": m.UDID, "Status": "Idle"}
	var last *Received
	for i := 0; i < 1000; i++ {
		body, err := plist.Marshal(report)
		if err != nil {
			return err
		}
		resp, err := m.Do(ctx, m.serverURL, body, false)
		if err != nil {
			return err
		}
		if last != nil {
			m.mu.Lock()
			fn := m.onAcked
			m.mu.Unlock()
			if fn != nil {
				fn(*last)
			}
			last = nil
		}
		if len(bytes.TrimSpace(resp)) == 0 {
			return m.renewIfAsked(ctx)
		}
		next, stop, err := m.answer(resp)
		if err != nil {
			return err
		}
		if stop {
			return nil
		}
		m.mu.Lock()
		rec := m.received[len(m.received)-1]
		m.mu.Unlock()
		last = &rec
		report = next
	}
	return errors.New("session did not end after 1000 commands")
}

// renewIfAsked installs a re-sent enrollment profile the way macOS does: a new SCEP
// identity, then Authenticate and TokenUpdate with it.
func (m *Mac) renewIfAsked(ctx context.Context) error {
	m.mu.Lock()
	p := m.renewal
	m.renewal = nil
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	cert, key, err := scepEnroll(ctx, p.SCEP.URL, p.SCEP.Challenge, m.Serial)
	if err != nil {
		return fmt.Errorf("identity renewal: %w", err)
	}
	m.cert, m.key = cert, key
	m.mu.Lock()
	m.renewals++
	m.mu.Unlock()
	return m.Checkin(ctx, p)
}

// Renewals counts identity renewals done through a re-sent enrollment profile.
func (m *Mac) Renewals() int { m.mu.Lock(); defer m.mu.Unlock(); return m.renewals }

// Wake is what a push does: run a session now, or once more after the current one.
func (m *Mac) Wake() {
	m.wakeMu.Lock()
	if m.running {
		m.pending = true
		m.wakeMu.Unlock()
		return
	}
	m.running = true
	m.wakeMu.Unlock()
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := m.Session(ctx)
			cancel()
			m.wakeMu.Lock()
			if err != nil {
				m.errs = append(m.errs, err)
			}
			if !m.pending {
				m.running = false
				m.idleCond().Broadcast()
				m.wakeMu.Unlock()
				return
			}
			m.pending = false
			m.wakeMu.Unlock()
		}
	}()
}

// Wait blocks until no background session started by Wake is running. A push may start
// another right after; a WaitGroup would panic when that Add races the Wait.
func (m *Mac) Wait() {
	m.wakeMu.Lock()
	defer m.wakeMu.Unlock()
	for m.running {
		m.idleCond().Wait()
	}
}

// idleCond is signalled when the background session stops; wakeMu must be held.
func (m *Mac) idleCond() *sync.Cond {
	if m.idle == nil {
		m.idle = sync.NewCond(&m.wakeMu)
	}
	return m.idle
}

type command struct {
	CommandUUID string
	Command     struct {
		RequestType string
		Payload     []byte
		Identifier  string
		PIN         string
		Queries     []string
	}
}

func (m *Mac) answer(raw []byte) (map[string]any, bool, error) {
	var c command
	if err := plist.Unmarshal(raw, &c); err != nil {
		return nil, false, fmt.Errorf("decode command: %w", err)
	}
	rt := c.Command.RequestType
	m.mu.Lock()
	ans := Ack
	if q := m.policy[rt]; len(q) > 0 {
		ans, m.policy[rt] = q[0], q[1:]
	}
	rec := Received{UUID: c.CommandUUID, RequestType: rt, Raw: raw, Answer: ans}
	m.received = append(m.received, rec)
	onDone := m.onDone
	m.mu.Unlock()
	if ans == Ignore {
		return nil, true, nil
	}
	out := map[string]any{"UDID": m.UDID, "CommandUUID": c.CommandUUID, "Status": string(ans)}
	if ans == Error {
		out["ErrorChain"] = []map[string]any{{"ErrorCode": 12345, "ErrorDomain": "MCMDMErrorDomain",
			"LocalizedDescription": "simulated failure", "USEnglishDescription": "simulated failure"}}
	}
	if ans == Ack {
		if err := m.apply(c, out); err != nil {
			out["Status"] = string(Error)
			out["ErrorChain"] = []map[string]any{{"ErrorCode": 1, "ErrorDomain": "macsim", "USEnglishDescription": err.Error()}}
		}
	}
	if onDone != nil {
		onDone(rec)
	}
	return out, false, nil
}

// apply performs an acknowledged command and fills its response keys.
func (m *Mac) apply(c command, out map[string]any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch c.Command.RequestType {
	case "DeviceInformation":
		out["QueryResponses"] = map[string]any{
			"SerialNumber": m.Serial, "UDID": m.UDID, "OSVersion": m.OSVersion, "BuildVersion": "24B83",
			"ModelName": "MacBook Pro", "Model": m.Model, "ProductName": m.Model, "DeviceName": "Sim " + m.Serial,
			"IsAppleSilicon": true,
		}
	case "SecurityInfo":
		out["SecurityInfo"] = map[string]any{
			"FDE_Enabled": m.FileVault, "SystemIntegrityProtectionEnabled": m.SIP,
			"FirewallSettings": map[string]any{"FirewallEnabled": m.Firewall},
		}
	case "ProfileList":
		var list []map[string]any
		for id, u := range m.profiles {
			list = append(list, map[string]any{"PayloadIdentifier": id, "PayloadUUID": u, "PayloadVersion": 1})
		}
		if list == nil {
			list = []map[string]any{}
		}
		out["ProfileList"] = list
	case "InstallProfile":
		inner, _, err := apple.UnwrapSignedProfile(c.Command.Payload)
		if err != nil {
			return err
		}
		var p struct {
			PayloadIdentifier string
			PayloadUUID       string
		}
		if err := plist.Unmarshal(inner, &p); err != nil || p.PayloadIdentifier == "" {
			return fmt.Errorf("bad profile: %v", err)
		}
		if ep, err := apple.ParseEnrollmentProfile(inner); err == nil {
			if ep.MDM.ServerURL != m.serverURL || ep.MDM.Topic != m.topic {
				return errors.New("an enrollment profile may not change ServerURL or Topic")
			}
			m.renewal = ep // applied once this session ends
		}
		m.profiles[p.PayloadIdentifier] = p.PayloadUUID
	case "RemoveProfile":
		delete(m.profiles, c.Command.Identifier)
	case "DeviceLock":
		if len(c.Command.PIN) != 6 {
			return errors.New("DeviceLock needs a 6-digit PIN on macOS")
		}
		m.locked, m.lockPIN = true, c.Command.PIN
	case "EraseDevice":
		m.erased = true
	case "DeviceConfigured":
		m.awaiting = false
	}
	return nil
}

// scepEnroll runs the SCEP exchange a Mac's SCEP payload performs.
func scepEnroll(ctx context.Context, url, challenge, cn string) (*x509.Certificate, *rsa.PrivateKey, error) {
	cl, err := scepclient.New(url, kitlog.NewNopLogger())
	if err != nil {
		return nil, nil, err
	}
	resp, certNum, err := cl.GetCACert(ctx, "")
	if err != nil {
		return nil, nil, fmt.Errorf("GetCACert: %w", err)
	}
	var caCerts []*x509.Certificate
	if certNum > 1 {
		caCerts, err = scep.CACerts(resp)
	} else {
		caCerts, err = x509.ParseCertificates(resp)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("GetCACert: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	csrDER, err := x509util.CreateCertificateRequest(rand.Reader, &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}},
		ChallengePassword:  challenge,
	}, key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	selfDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	self, _ := x509.ParseCertificate(selfDER)
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{
		MessageType: scep.PKCSReq, Recipients: caCerts, SignerKey: key, SignerCert: self,
		CSRReqMessage: &scep.CSRReqMessage{ChallengePassword: challenge},
	})
	if err != nil {
		return nil, nil, err
	}
	respBytes, err := cl.PKIOperation(ctx, msg.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("PKIOperation: %w", err)
	}
	rm, err := scep.ParsePKIMessage(respBytes, scep.WithCACerts(caCerts))
	if err != nil {
		return nil, nil, err
	}
	if rm.PKIStatus != scep.SUCCESS {
		return nil, nil, fmt.Errorf("%w: status %s, failInfo %s", ErrSCEPRefused, rm.PKIStatus, rm.FailInfo)
	}
	if err := rm.DecryptPKIEnvelope(self, key); err != nil {
		return nil, nil, err
	}
	return rm.CertRepMessage.Certificate, key, nil
}

// ErrSCEPRefused: the SCEP server answered FAILURE (e.g. a used challenge).
var ErrSCEPRefused = errors.New("scep request refused")

func selfSigned(cn string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return key, c, err
}

// SelfSigned returns a self-signed RSA identity (a certificate from "another CA").
func SelfSigned(cn string) (*x509.Certificate, *rsa.PrivateKey, error) {
	k, c, err := selfSigned(cn)
	return c, k, err
}
