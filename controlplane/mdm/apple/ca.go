package apple

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Identity is the MDM trust material: the dedicated MDM CA (RSA, required by SCEP, and
// separate from the agent CA) that issues device identities, and the server identity
// that signs enrollment profiles. The server identity has no clientAuth usage, so it can
// never pass as a device.
type Identity struct {
	CACert     *x509.Certificate
	CAKey      *rsa.PrivateKey
	ServerCert *x509.Certificate
	ServerKey  *rsa.PrivateKey
}

// CAPEM returns the CA certificate as PEM.
func (id *Identity) CAPEM() []byte { return certPEM(id.CACert) }

// GenerateIdentity makes a new MDM CA and server identity. keyBits is 2048 in tests and
// 3072 by default in production (0 = 3072).
func GenerateIdentity(org string, keyBits int) (*Identity, error) {
	if keyBits == 0 {
		keyBits = 3072
	}
	caKey, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("mdm ca key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Lanyard MDM CA", Organization: []string{org}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          skid(&caKey.PublicKey),
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("mdm ca cert: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	srvKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("mdm server key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "Lanyard MDM server", Organization: []string{org}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		SubjectKeyId: skid(&srvKey.PublicKey),
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("mdm server cert: %w", err)
	}
	srvCert, err := x509.ParseCertificate(srvDER)
	if err != nil {
		return nil, err
	}
	return &Identity{CACert: caCert, CAKey: caKey, ServerCert: srvCert, ServerKey: srvKey}, nil
}

// IssueDeviceCert signs a device identity (clientAuth) for pub, as the SCEP signer does.
func (id *Identity) IssueDeviceCert(tmpl *x509.Certificate, pub any, days int) (*x509.Certificate, error) {
	tmpl.SerialNumber = randSerial()
	tmpl.NotBefore = time.Now().Add(-10 * time.Minute)
	tmpl.NotAfter = time.Now().AddDate(0, 0, days)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.CACert, pub, id.CAKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// MarshalIdentity encodes the identity as PEM: certs in the clear, keys as PKCS#8 (the
// caller seals the key PEM before storing it).
func MarshalIdentity(id *Identity) (certs, keys []byte, err error) {
	caKey, err := x509.MarshalPKCS8PrivateKey(id.CAKey)
	if err != nil {
		return nil, nil, err
	}
	srvKey, err := x509.MarshalPKCS8PrivateKey(id.ServerKey)
	if err != nil {
		return nil, nil, err
	}
	certs = append(certPEM(id.CACert), certPEM(id.ServerCert)...)
	keys = append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKey})...)
	return certs, keys, nil
}

// UnmarshalIdentity reverses MarshalIdentity.
func UnmarshalIdentity(certs, keys []byte) (*Identity, error) {
	var cs []*x509.Certificate
	for b, rest := pem.Decode(certs); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("mdm identity cert: %w", err)
		}
		cs = append(cs, c)
	}
	var ks []*rsa.PrivateKey
	for b, rest := pem.Decode(keys); b != nil; b, rest = pem.Decode(rest) {
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("mdm identity key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("mdm identity key is not RSA")
		}
		ks = append(ks, rk)
	}
	if len(cs) != 2 || len(ks) != 2 {
		return nil, fmt.Errorf("mdm identity: want 2 certs and 2 keys, got %d and %d", len(cs), len(ks))
	}
	return &Identity{CACert: cs[0], CAKey: ks[0], ServerCert: cs[1], ServerKey: ks[1]}, nil
}

// PushCertInfo is what we read from an uploaded APNs push certificate.
type PushCertInfo struct {
	Topic    string
	NotAfter time.Time
	Subject  string
}

// ParsePushCert checks that certPEM and keyPEM form a usable APNs MDM push identity and
// returns its topic (the certificate's UID, com.apple.mgmt.External.<uuid>) and expiry.
// An encrypted key is refused with a clear message (nanomdm cannot use one).
func ParsePushCert(certPEMBytes, keyPEMBytes []byte) (*PushCertInfo, error) {
	if b, _ := pem.Decode(keyPEMBytes); b != nil && (b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "") {
		return nil, errors.New("push key is encrypted; upload the unencrypted PEM key")
	}
	pair, err := tls.X509KeyPair(certPEMBytes, keyPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("push certificate and key do not match or are not PEM: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("push certificate: %w", err)
	}
	topic := topicFromCert(leaf)
	if topic == "" {
		return nil, errors.New("push certificate has no UID topic (is it an MDM push certificate from identity.apple.com?)")
	}
	return &PushCertInfo{Topic: topic, NotAfter: leaf.NotAfter.UTC(), Subject: leaf.Subject.CommonName}, nil
}

// oidUID is the LDAP userid attribute carrying the APNs topic.
var oidUID = []int{0, 9, 2342, 19200300, 100, 1, 1}

func topicFromCert(c *x509.Certificate) string {
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidUID) {
			if s, ok := n.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func skid(pub *rsa.PublicKey) []byte {
	h := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
	return h[:]
}
