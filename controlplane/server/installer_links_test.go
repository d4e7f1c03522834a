package server

import (
	"context"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

func TestInstallerLinks(t *testing.T) {
	cfg := testConfig(t, "")
	s, err := New(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	org := domain.Org{ID: "org"}
	if _, err := mdmAgentPackage(s.Deps, s.caps.installers)(context.Background(), org.ID); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("plain-http public URL must be refused for MDM package installs, got %v", err)
	}
	if _, err := installerLink(context.Background(), s.caps.installers, org.ID, domain.PlatformIOS); err == nil {
		t.Fatal("an iOS installer link was made")
	}
	// No agent binaries sit beside the test binary, so the real link fails with a reason
	// rather than producing a broken package.
	if _, err := installerLink(context.Background(), s.caps.installers, org.ID, domain.PlatformLinux); err == nil {
		t.Fatal("link built without agent binaries or an org")
	}
}
