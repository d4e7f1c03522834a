package oidc

import (
	"encoding/json"
	"testing"
)

func TestEmailVerified(t *testing.T) {
	const entra = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
	cases := []struct {
		name, claims, issuer string
		want                 bool
	}{
		{"verified", `{"email":"a@x.com","email_verified":true}`, "https://accounts.google.com", true},
		{"verified as a string", `{"email":"a@x.com","email_verified":"true"}`, "https://idp.example", true},
		{"not verified", `{"email":"a@x.com","email_verified":false}`, "https://accounts.google.com", false},
		{"string false", `{"email":"a@x.com","email_verified":"false"}`, "https://idp.example", false},
		{"claim absent", `{"email":"a@x.com"}`, "https://idp.example", false},
		{"Entra domain owner verified", `{"email":"a@x.com","xms_edov":true}`, entra, true},
		{"Entra without xms_edov", `{"email":"a@x.com"}`, entra, false},
		{"xms_edov from another issuer", `{"email":"a@x.com","xms_edov":true}`, "https://login.microsoftonline.com.evil.example/v2.0", false},
	}
	for _, tc := range cases {
		var c idClaims
		if err := json.Unmarshal([]byte(tc.claims), &c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.verified(tc.issuer); got != tc.want {
			t.Errorf("%s: verified = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDomainAllowed(t *testing.T) {
	allowed := []string{"example.com", "corp.example.com"}
	for email, want := range map[string]bool{
		"a@example.com":           true,
		"a@corp.example.com":      true,
		"a@EXAMPLE.COM":           true,
		"a@sub.example.com":       false,
		"a@example.com.evil.test": false,
		"a@notexample.com":        false,
		"example.com":             false,
		"a@b@example.com":         true, // the domain is after the last @
		"a@example.com@evil.test": false,
	} {
		if got := domainAllowed(email, allowed); got != want {
			t.Errorf("%s: %v, want %v", email, got, want)
		}
	}
}

func TestValidDomains(t *testing.T) {
	got, err := validDomains([]string{" Example.COM ", "@example.com", "corp.example.com"})
	if err != nil || len(got) != 2 || got[0] != "example.com" || got[1] != "corp.example.com" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "localhost", "*.example.com", "exa mple.com", "-x.com", "a..com", "example.com/"} {
		if _, err := validDomains([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestValidIssuer(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://accounts.google.com":                true,
		"https://example.okta.com/oauth2/default":    true,
		"https://login.microsoftonline.com/tid/v2.0": true,
		"http://127.0.0.1:5556":                      true,
		"http://localhost:5556/dex":                  true,
		"http://[::1]:5556":                          true,
		"http://idp.example.com":                     false,
		"https://idp.example.com?tenant=1":           false,
		"https://idp.example.com#x":                  false,
		"https://user:pw@idp.example.com":            false,
		"idp.example.com":                            false,
		"ftp://idp.example.com":                      false,
		"":                                           false,
	} {
		if _, err := validIssuer(raw); (err == nil) != ok {
			t.Errorf("%q: err=%v, want ok=%v", raw, err, ok)
		}
	}
}
