package wiring_test

import (
	"net/http"

	"github.com/lanyardhq/lanyard/controlplane/api"
)

// httpFunc serves through an API server built after the listener exists.
type httpFunc func() *api.Server

func (f httpFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) { f().ServeHTTP(w, r) }
