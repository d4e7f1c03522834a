package client

import "google.golang.org/grpc"

// TransportOptions are the agent's HTTP/2 settings, shared with the load simulator so
// benchmarks measure what agents send. Fixed flow-control windows turn off gRPC's
// bandwidth-delay probing: agents send small messages, and each probe is a ping frame
// (a write and a read on both ends) per message received; the control plane does the
// same on its side. 256 KiB per stream still carries a full inventory in one window.
func TransportOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(256 << 10),
		grpc.WithInitialConnWindowSize(1 << 20),
		grpc.WithReadBufferSize(8 << 10),
		grpc.WithWriteBufferSize(8 << 10),
	}
}
