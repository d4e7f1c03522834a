// Package agenttransport holds the HTTP/2 and gRPC transport settings of the agent channel
// in one place: the control plane's agent API, the agent, the load simulator and the
// no-work ceiling server (bench/agentceil) all take them from here, so a benchmark's
// ceiling is measured with exactly the settings the product runs.
package agenttransport

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Buffer and window sizes, shared by both ends.
const (
	// BufferSize is the per-connection read and write buffer. gRPC's 32 KiB default costs
	// ~75 KB per idle stream; 8 KiB still holds a heartbeat or a delta report in one read.
	BufferSize = 8 << 10
	// StreamWindow and ConnWindow are fixed flow-control windows. Fixing them turns off
	// bandwidth-delay probing: a ping frame per message received is a write and a read on
	// both ends, for messages of a few KB. 256 KiB still carries a full inventory.
	StreamWindow = 256 << 10
	ConnWindow   = 1 << 20
)

// ServerOptions are the agent API's transport settings; callers add credentials,
// interceptors and the message size cap.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		KeepaliveParams(), KeepalivePolicy(),
		// An agent needs its stream plus a unary call or two; a handshake that stalls is dropped.
		grpc.MaxConcurrentStreams(32), grpc.ConnectionTimeout(20 * time.Second),
		// No read buffer on the server: the framer reads the TLS connection directly,
		// which already holds the current record decrypted, so a buffer would only copy it
		// again and pin 8 KiB per idle connection (the largest item of an idle stream's
		// heap in a profile at 3,000 streams).
		grpc.ReadBufferSize(0), grpc.WriteBufferSize(BufferSize),
		// A shared write buffer is taken from a pool for each flush and returned after it,
		// instead of being held by every idle connection: 10,000 idle streams would
		// otherwise pin 10,000 write buffers.
		grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(StreamWindow), grpc.InitialConnWindowSize(ConnWindow),
	}
}

// KeepaliveParams: the server pings an idle connection every 2 minutes and drops it when
// the ping is not answered in 20 s (a laptop that went to sleep).
func KeepaliveParams() grpc.ServerOption {
	return grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second})
}

// KeepalivePolicy lets clients ping no more often than every 20 s, with or without a stream.
func KeepalivePolicy() grpc.ServerOption {
	return grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true})
}

// DialOptions are the agent's side of the same settings (credentials are the caller's).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(StreamWindow),
		grpc.WithInitialConnWindowSize(ConnWindow),
		grpc.WithReadBufferSize(BufferSize),
		grpc.WithWriteBufferSize(BufferSize),
		grpc.WithSharedWriteBuffer(true),
	}
}

// Listen opens the agent API's TCP listener, with TCP keepalive off. gRPC sets
// TCP_USER_TIMEOUT on every server connection to the keepalive Timeout (20 s); with Go's
// default TCP keepalive (a probe after 15 s idle, then one every 15 s) a single probe or
// its ACK lost aborts a healthy connection at the next probe, since by then nothing was
// heard for longer than the user timeout with a probe unanswered. 10,000 connections
// opened within a second probe together, and on loopback the burst overflows the
// kernel's backlog (net.core.netdev_max_backlog): a third of the ceiling's streams died
// that way 30 s after opening. A stream's liveness is its heartbeats (every 30 s) and
// gRPC's HTTP/2 pings (after 2 minutes without a read, 20 s to answer), which do not
// depend on one packet.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
