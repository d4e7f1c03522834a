package server

import (
	"context"
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
	con, err := console.New(console.Options{Auth: authSvc, API: s.API, Logger: s.Logger,
		Secure: strings.HasPrefix(s.Config.PublicURL, "https://"),
		// Before anyone is signed in there is no principal to ask the API as; whether an
		// org offers SSO is what its public sign-in page shows anyway.
		SSOEnabled: func(ctx context.Context, orgID string) bool {
			c, err := s.DB.GetSSOConfig(ctx, orgID)
			return err == nil && c.Enabled
		},
		SSOError: oidc.ErrorMessage})
	if err != nil {
		return err
	}
	mux.Handle("/", con)
	return nil
}
