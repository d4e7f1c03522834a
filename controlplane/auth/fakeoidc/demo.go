package fakeoidc

import (
	"context"
	"fmt"
)

// Demo accounts of `make run`.
const (
	DemoPassword = "demo-password"
	DemoClientID = "lanyard-demo"
)

// DemoUsers are the accounts StartDemo serves; the demo organization has admins with
// these emails.
var DemoUsers = []User{
	{Email: "owner@demo.example", Name: "Demo Owner", EmailVerified: true, Password: DemoPassword},
	{Email: "second.admin@demo.example", Name: "Second Admin", EmailVerified: true, Password: DemoPassword},
}

// StartDemo starts the demo provider on addr ("" = 127.0.0.1:0) with DemoUsers and one
// client (DemoClientID, a fresh random secret) allowed to redirect to redirectURI; it
// stops when ctx ends. Client returns the registered client for configuring SSO.
func StartDemo(ctx context.Context, addr, redirectURI string) (*Server, error) {
	s, err := Start(ctx, addr, Config{
		Users:   append([]User(nil), DemoUsers...),
		Clients: []Client{{ID: DemoClientID, Secret: randomToken(), RedirectURIs: []string{redirectURI}}},
	})
	if err != nil {
		return nil, fmt.Errorf("fakeoidc: start demo: %w", err)
	}
	return s, nil
}

// Client returns the registered client with id.
func (s *Server) Client(id string) (Client, bool) { return s.client(id) }
