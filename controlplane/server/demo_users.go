package server

import (
	"context"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The demo's admins: an owner to sign in as, and a second admin so a wipe can get its
// second approval from a different person.
const (
	DemoOwnerEmail       = "owner@demo.example"
	DemoSecondAdminEmail = "second.admin@demo.example"
)

// demoUsers makes sure the demo's people exist (idempotent) and returns the owner.
func (s *Server) demoUsers(ctx context.Context, org domain.Org) (store.User, error) {
	owner, err := s.Auth.EnsureUser(ctx, org.ID, DemoOwnerEmail, "Demo Owner", domain.RoleOwner)
	if err != nil {
		return owner, fmt.Errorf("demo owner: %w", err)
	}
	if _, err := s.Auth.EnsureUser(ctx, org.ID, DemoSecondAdminEmail, "Second Admin", domain.RoleAdmin); err != nil {
		return owner, fmt.Errorf("demo second admin: %w", err)
	}
	return owner, nil
}

// DemoOwnerSignInLink mints a fresh one-time sign-in link (path) for the demo owner; the
// banner of `make run` prints it. The first use sets a password and TOTP (owners need it).
func (s *Server) DemoOwnerSignInLink(ctx context.Context, org domain.Org) (string, error) {
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:demo"})
	us, err := s.DB.FindUsersByEmail(ctx, org.ID, DemoOwnerEmail)
	if err != nil {
		return "", err
	}
	if len(us) == 0 {
		return "", fmt.Errorf("demo owner %s does not exist: run SeedDemo first", DemoOwnerEmail)
	}
	return s.Auth.NewSignInLink(ctx, org.ID, us[0].ID, 0)
}
