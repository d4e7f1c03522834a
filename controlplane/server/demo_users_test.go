package server

import (
	"context"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The demo has two admins (so a wipe can be approved by a different person), its owner
// token belongs to the owner, and every start mints a working one-time link for the owner.
func TestDemoUsersAndOwnerLink(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Demo = true
	ctx := context.Background()
	s, err := New(ctx, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.DB.Close()
	var token string
	var org domain.Org
	for range 2 { // idempotent: `make run` seeds at every start
		if org, token, err = s.SeedDemo(ctx); err != nil {
			t.Fatal(err)
		}
	}
	users, _, err := s.DB.ListUsers(ctx, org.ID, false, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]domain.Role{}
	for _, u := range users {
		roles[u.Email] = u.Role
	}
	if len(users) != 2 || roles[DemoOwnerEmail] != domain.RoleOwner || roles[DemoSecondAdminEmail] != domain.RoleAdmin {
		t.Fatalf("demo users %+v", users)
	}
	tok, err := s.DB.AuthenticateToken(ctx, token)
	if err != nil || tok.Owner == nil || tok.Owner.Email != DemoOwnerEmail {
		t.Fatalf("demo token %+v %v", tok, err)
	}
	link, err := s.DemoOwnerSignInLink(ctx, org)
	if err != nil || !strings.HasPrefix(link, "/signin/link/") {
		t.Fatalf("link %q %v", link, err)
	}
	st, err := s.Auth.SignInLink(ctx, strings.TrimPrefix(link, "/signin/link/"), auth.ClientMeta{IP: "127.0.0.1"})
	if err != nil || st.Need != auth.NeedSetPassword {
		t.Fatalf("owner link: %+v %v", st, err)
	}
}
