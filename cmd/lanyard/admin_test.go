package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// create-org makes the owner a person: it needs their email and prints their one-time
// sign-in link and an owner token that belongs to them.
func TestCreateOrgMakesTheOwner(t *testing.T) {
	data := t.TempDir()
	if out, err := runLanyard(t, "--data-dir", data, "admin", "create-org", "Acme"); err == nil || !strings.Contains(err.Error(), "--owner-email") {
		t.Fatalf("without --owner-email: %v\n%s", err, out)
	}
	out, err := runLanyard(t, "--data-dir", data, "--public-url", "https://lanyard.acme.example", "admin", "create-org", "Acme",
		"--owner-email", "Alex@Acme.example", "--owner-name", "Alex")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	link := regexp.MustCompile(`https://lanyard\.acme\.example/signin/link/(\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`owner token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if link == nil || token == nil || !strings.Contains(out, "alex@acme.example") {
		t.Fatalf("output:\n%s", out)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tok, err := db.AuthenticateToken(ctx, token[1])
	if err != nil || tok.Role != domain.RoleOwner || tok.Owner == nil || tok.Owner.Email != "alex@acme.example" || tok.Owner.Role != domain.RoleOwner {
		t.Fatalf("owner token %+v %v", tok, err)
	}
	st, err := auth.New(auth.Options{DB: db}).SignInLink(ctx, link[1], auth.ClientMeta{IP: "127.0.0.1"})
	if err != nil || st.Need != auth.NeedSetPassword {
		t.Fatalf("owner link: %+v %v", st, err)
	}
}
