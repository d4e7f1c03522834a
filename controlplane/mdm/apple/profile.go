package apple

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

// ProfileContentType is the MIME type macOS expects for a configuration profile.
const ProfileContentType = "application/x-apple-aspen-config"

// AccessRightsAll grants every MDM access right (Apple's AccessRights bitmask, 8191).
const AccessRightsAll = 8191

// SCEPPayloadContent is the inner dictionary of a com.apple.security.scep payload.
type SCEPPayloadContent struct {
	URL       string
	Name      string       `plist:",omitempty"`
	Subject   [][][]string `plist:",omitempty"`
	Challenge string
	Keysize   int
	KeyType   string `plist:"Key Type"`
	KeyUsage  int    `plist:"Key Usage"`
}

// SCEPPayload is the com.apple.security.scep payload.
type SCEPPayload struct {
	PayloadContent     SCEPPayloadContent
	PayloadDescription string `plist:",omitempty"`
	PayloadDisplayName string
	PayloadIdentifier  string
	PayloadType        string
	PayloadUUID        string
	PayloadVersion     int
}

// MDMPayload is the com.apple.mdm payload. ServerURL, CheckInURL and Topic can never
// change after a Mac enrolls.
type MDMPayload struct {
	AccessRights            int
	CheckInURL              string `plist:",omitempty"`
	CheckOutWhenRemoved     bool
	IdentityCertificateUUID string
	PayloadDescription      string `plist:",omitempty"`
	PayloadDisplayName      string
	PayloadIdentifier       string
	PayloadType             string
	PayloadUUID             string
	PayloadVersion          int
	ServerCapabilities      []string `plist:",omitempty"`
	ServerURL               string
	SignMessage             bool
	Topic                   string
}

// EnrollmentProfile is the top-level Configuration holding the SCEP and MDM payloads.
type EnrollmentProfile struct {
	PayloadContent      []any
	PayloadDescription  string `plist:",omitempty"`
	PayloadDisplayName  string
	PayloadIdentifier   string
	PayloadOrganization string `plist:",omitempty"`
	PayloadScope        string `plist:",omitempty"`
	PayloadType         string
	PayloadUUID         string
	PayloadVersion      int
}

// ProfileParams are the per-enrollment values of an enrollment profile.
type ProfileParams struct {
	Org        string // shown in System Settings
	ServerURL  string // https://host/mdm/connect
	CheckInURL string // https://host/mdm/checkin
	SCEPURL    string // https://host/scep
	Topic      string // the push certificate's topic
	Challenge  string // one-time SCEP challenge
	Subject    string // device certificate CN hint
}

// Profile identifiers: stable so a re-enroll replaces the old profile.
const (
	EnrollProfileIdentifier = "com.lanyard.mdm.enroll"
	mdmPayloadIdentifier    = "com.lanyard.mdm.enroll.mdm"
	scepPayloadIdentifier   = "com.lanyard.mdm.enroll.scep"
)

// BuildEnrollmentProfile renders the unsigned enrollment profile plist.
func BuildEnrollmentProfile(p ProfileParams) ([]byte, error) {
	if p.ServerURL == "" || p.SCEPURL == "" || p.Topic == "" || p.Challenge == "" {
		return nil, errors.New("enrollment profile: server URL, SCEP URL, topic and challenge are required")
	}
	scepUUID := uuid.NewString()
	subject := p.Subject
	if subject == "" {
		subject = "Lanyard MDM device"
	}
	scep := SCEPPayload{
		PayloadContent: SCEPPayloadContent{
			URL: p.SCEPURL, Name: "Lanyard MDM CA", Challenge: p.Challenge,
			Subject: [][][]string{{{"O", p.Org}}, {{"CN", subject}}},
			Keysize: 2048, KeyType: "RSA", KeyUsage: 5,
		},
		PayloadDisplayName: "Device identity (SCEP)",
		PayloadIdentifier:  scepPayloadIdentifier,
		PayloadType:        "com.apple.security.scep",
		PayloadUUID:        scepUUID,
		PayloadVersion:     1,
	}
	m := MDMPayload{
		AccessRights:            AccessRightsAll,
		CheckInURL:              p.CheckInURL,
		CheckOutWhenRemoved:     true,
		IdentityCertificateUUID: scepUUID,
		PayloadDisplayName:      "Device management",
		PayloadIdentifier:       mdmPayloadIdentifier,
		PayloadType:             "com.apple.mdm",
		PayloadUUID:             uuid.NewString(),
		PayloadVersion:          1,
		ServerCapabilities:      []string{"com.apple.mdm.per-user-connections", "com.apple.mdm.bootstraptoken"},
		ServerURL:               p.ServerURL,
		SignMessage:             true,
		Topic:                   p.Topic,
	}
	prof := EnrollmentProfile{
		PayloadContent:      []any{scep, m},
		PayloadDescription:  "Enrolls this Mac in " + p.Org + "'s device management (Lanyard).",
		PayloadDisplayName:  p.Org + " device management",
		PayloadIdentifier:   EnrollProfileIdentifier,
		PayloadOrganization: p.Org,
		PayloadScope:        "System",
		PayloadType:         "Configuration",
		PayloadUUID:         uuid.NewString(),
		PayloadVersion:      1,
	}
	b, err := plist.MarshalIndent(prof, "\t")
	if err != nil {
		return nil, fmt.Errorf("enrollment profile: %w", err)
	}
	return b, nil
}

// SignProfile wraps a profile in a non-detached CMS SignedData made with the server
// identity (chain included), so macOS shows it as verified rather than "Unsigned".
func SignProfile(profile []byte, id *Identity) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(profile)
	if err != nil {
		return nil, fmt.Errorf("sign profile: %w", err)
	}
	if err := sd.AddSignerChain(id.ServerCert, id.ServerKey, []*x509.Certificate{id.CACert}, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("sign profile: %w", err)
	}
	out, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("sign profile: %w", err)
	}
	return out, nil
}

// UnwrapSignedProfile returns the plist inside a signed profile after checking the CMS
// signature, or the input unchanged when it is a bare plist. The simulated Mac uses it.
func UnwrapSignedProfile(b []byte) (plistBytes []byte, signer *x509.Certificate, err error) {
	if len(b) > 0 && b[0] == '<' {
		return b, nil, nil
	}
	p7, err := pkcs7.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("profile is neither plist nor CMS: %w", err)
	}
	if err := p7.Verify(); err != nil {
		return nil, nil, fmt.Errorf("profile signature: %w", err)
	}
	return p7.Content, p7.GetOnlySigner(), nil
}

// ParsedEnrollmentProfile is what a device reads from the enrollment profile.
type ParsedEnrollmentProfile struct {
	SCEP SCEPPayloadContent
	MDM  MDMPayload
}

// ParseEnrollmentProfile extracts the SCEP and MDM payloads of an (unwrapped) profile.
func ParseEnrollmentProfile(b []byte) (*ParsedEnrollmentProfile, error) {
	var raw struct {
		PayloadType    string
		PayloadContent []struct {
			PayloadType string
		}
	}
	if err := plist.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("enrollment profile: %w", err)
	}
	var typed struct {
		PayloadContent []struct {
			PayloadType             string
			PayloadContent          SCEPPayloadContent `plist:",omitempty"`
			ServerURL               string
			CheckInURL              string
			Topic                   string
			SignMessage             bool
			AccessRights            int
			CheckOutWhenRemoved     bool
			IdentityCertificateUUID string
		}
	}
	if err := plist.Unmarshal(b, &typed); err != nil {
		return nil, fmt.Errorf("enrollment profile: %w", err)
	}
	out := &ParsedEnrollmentProfile{}
	var haveSCEP, haveMDM bool
	for _, p := range typed.PayloadContent {
		switch p.PayloadType {
		case "com.apple.security.scep":
			out.SCEP, haveSCEP = p.PayloadContent, true
		case "com.apple.mdm":
			out.MDM = MDMPayload{
				ServerURL: p.ServerURL, CheckInURL: p.CheckInURL, Topic: p.Topic, SignMessage: p.SignMessage,
				AccessRights: p.AccessRights, CheckOutWhenRemoved: p.CheckOutWhenRemoved,
				IdentityCertificateUUID: p.IdentityCertificateUUID, PayloadType: p.PayloadType,
			}
			haveMDM = true
		}
	}
	if raw.PayloadType != "Configuration" || !haveSCEP || !haveMDM {
		return nil, errors.New("enrollment profile: missing SCEP or MDM payload")
	}
	return out, nil
}
