package server

import (
	"net/http"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/console"
)

// mountConsole serves the API's own paths from the API and everything else from the web
// console, which reaches data only through s.API (in-process calls as the signed-in person)
// and sessions only through the auth service.
func (s *Server) mountConsole(mux *http.ServeMux, authSvc *auth.Service) error {
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, s.API)
	}
	opts := console.Options{Auth: authSvc, API: s.API, Logger: s.Logger,
		Secure: strings.HasPrefix(s.Config.PublicURL, "https://"), SSOError: oidc.ErrorMessage}
	if s.caps.demoInbox != nil {
		opts.DemoInbox = DemoInboxPath
	}
	if s.caps.sso != nil {
		// Asked before anyone is signed in (no principal to call the API as): whether an
		// org offers SSO is what its public sign-in page shows anyway.
		opts.SSOEnabled = s.caps.sso.Enabled
	}
	con, err := console.New(opts)
	if err != nil {
		return err
	}
	mux.Handle("/", con)
	return nil
}
