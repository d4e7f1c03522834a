package client

import (
	"google.golang.org/grpc"

	"github.com/lanyardhq/lanyard/internal/agenttransport"
)

// TransportOptions are the agent's HTTP/2 settings, shared with the load simulator so
// benchmarks measure what agents send; they live in internal/agenttransport beside the
// control plane's side of the same settings.
func TransportOptions() []grpc.DialOption { return agenttransport.DialOptions() }
