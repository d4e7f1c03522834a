package identity

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	a := Agent{OrgID: "org-1", AgentID: "0192abcd-ef"}
	got, err := ParseURI(a.URI())
	if err != nil || got != a {
		t.Fatalf("ParseURI(%s) = %+v, %v", a.URI(), got, err)
	}
	if a.DNSName() != "0192abcd-ef.agents.lanyard.internal" {
		t.Fatalf("DNSName = %s", a.DNSName())
	}
}

func TestParseURIRejects(t *testing.T) {
	for name, raw := range map[string]string{
		"other scheme":       "https://lanyard/org/a/agent/b",
		"other trust domain": "spiffe://evil/org/a/agent/b",
		"short path":         "spiffe://lanyard/org/a",
		"wrong words":        "spiffe://lanyard/tenant/a/agent/b",
		"empty id":           "spiffe://lanyard/org//agent/b",
		"bad characters":     "spiffe://lanyard/org/a%2Fb/agent/c",
		"extra segment":      "spiffe://lanyard/org/a/agent/b/c",
	} {
		t.Run(name, func(t *testing.T) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseURI(u); err == nil {
				t.Fatalf("ParseURI(%s) accepted", raw)
			}
		})
	}
}

func TestFromCertificate(t *testing.T) {
	a := Agent{OrgID: "o", AgentID: "x"}
	other, _ := url.Parse("spiffe://lanyard/org/o/agent/y")
	tests := []struct {
		name string
		uris []*url.URL
		ok   bool
	}{
		{"one", []*url.URL{a.URI()}, true},
		{"none", nil, false},
		{"two", []*url.URL{a.URI(), other}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromCertificate(&x509.Certificate{URIs: tc.uris})
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && got != a {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestNewKeyAndCSR(t *testing.T) {
	key, der, err := NewKeyAndCSR("host")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if key.Curve.Params().Name != "P-256" {
		t.Fatalf("curve %s", key.Curve.Params().Name)
	}
}
