package server

import (
	"reflect"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/config"
)

// TestInstallerBuilderAddresses: installers bake agent-urls as the agent's address list
// (its first entry also as grpc_address, for the enrollment port), and agent-url alone
// stays the single grpc_address it always was.
func TestInstallerBuilderAddresses(t *testing.T) {
	cases := []struct {
		name       string
		cfg        config.Config
		single     string
		list       []string
		enrollment string
		enrollList []string
	}{
		{"agent-url only", config.Config{AgentURL: "cp.example:9443"}, "cp.example:9443", nil, "cp.example:9444", nil},
		{"one agent-urls entry", config.Config{AgentURL: "a.example:8443", AgentURLs: " lb.example:8443 "}, "lb.example:8443", nil, "lb.example:8444", nil},
		{"replicas", config.Config{AgentURL: "a.example:8443", AgentURLs: "a.example:8443, b.example:8443,a.example:8443"},
			"a.example:8443", []string{"a.example:8443", "b.example:8443"}, "a.example:8444", []string{"a.example:8444", "b.example:8444"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewInstallerBuilder(tc.cfg, nil, func() string { return "" }, nil, nil)
			if b.GRPCAddress != tc.single || !reflect.DeepEqual(b.GRPCAddresses, tc.list) || b.EnrollmentAddress != tc.enrollment ||
				!reflect.DeepEqual(b.EnrollmentAddresses, tc.enrollList) {
				t.Fatalf("grpc %q, list %v, enrollment %q, list %v", b.GRPCAddress, b.GRPCAddresses, b.EnrollmentAddress, b.EnrollmentAddresses)
			}
		})
	}
}
