package server

// Single sign-on wiring (controlplane/auth/oidc). With --demo an in-process fake OpenID
// Provider (controlplane/auth/fakeoidc) serves the demo admins, and seedSSO points the
// demo organization at it.

import (
	"context"
	"fmt"
	"github.com/lanyardhq/lanyard/internal/localpath"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// oidcSignIn is what single sign-on needs from the auth service.
type oidcSignIn interface {
	SignInOIDC(ctx context.Context, orgID, issuer, subject, email string, authTime time.Time, m auth.ClientMeta) (auth.Session, error)
}

// buildSSO builds the SSO relying party handing verified people to signIn; with --demo it
// also starts the fake provider it returns (it lives as long as the process).
func buildSSO(d Deps, signIn oidcSignIn) (*oidc.Service, *fakeoidc.Server, error) {
	publicURL := strings.TrimRight(d.Config.PublicURL, "/")
	var fake *fakeoidc.Server
	if d.Config.Demo {
		var err error
		if fake, err = fakeoidc.StartDemo(context.Background(), "127.0.0.1:0", publicURL+oidc.CallbackPath); err != nil {
			return nil, nil, err
		}
	}
	svc, err := oidc.New(oidc.Config{Store: d.DB, Keys: d.Keyring, PublicURL: publicURL,
		Start: sessionStarter(signIn, strings.HasPrefix(publicURL, "https://")), Logger: d.Logger})
	if err != nil {
		return nil, fake, err
	}
	return svc, fake, nil
}

// sessionStarter opens a console session for a person SSO vouched for: the auth service
// finds the admin by org and email (and binds issuer+subject), then the session cookie is
// set and the browser goes home. On error nothing is written; SSO redirects to /signin.
func sessionStarter(a oidcSignIn, secure bool) oidc.SessionStarter {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, v oidc.Vouched) error {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		sess, err := a.SignInOIDC(ctx, v.OrgID, v.Issuer, v.Subject, v.Email, v.AuthTime, auth.ClientMeta{IP: ip, UserAgent: r.UserAgent()})
		if err != nil {
			return err
		}
		auth.SetSessionCookie(w, r, sess, secure)
		http.Redirect(w, r, localpath.Safe(v.Next), http.StatusSeeOther)
		return nil
	}
}

// seedSSO configures the demo organization for single sign-on through the fake provider
// (a new fake each start: new port, new client secret), allowing the demo.example domain.
func (s *Server) seedSSO(ctx context.Context, org domain.Org) error {
	fake := s.caps.demoOIDC
	if fake == nil {
		return nil
	}
	c, ok := fake.Client(fakeoidc.DemoClientID)
	if !ok {
		return fmt.Errorf("the demo OIDC provider has no client %s", fakeoidc.DemoClientID)
	}
	_, err := s.caps.sso.Configure(ctx, org.ID, oidc.ConfigRequest{Issuer: fake.Issuer(), ClientID: c.ID, ClientSecret: c.Secret,
		AllowedDomains: []string{"demo.example"}, Enabled: true})
	if err != nil {
		return fmt.Errorf("configure demo SSO: %w", err)
	}
	return nil
}

// DemoSSOSignInURL is the link that signs in to the demo org through the fake provider
// ("" without --demo), for the demo banner.
func (s *Server) DemoSSOSignInURL(orgID string) string {
	if s.caps.demoOIDC == nil {
		return ""
	}
	return s.caps.sso.SignInURL(orgID)
}
