package agentapi

import (
	"context"

	"google.golang.org/grpc/tap"

	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// A Connect handler reads its stream itself (one goroutine per stream), so it is
// blocked in Recv when the server must end the stream from outside: a revoked agent, a
// stream replaced by a newer one, shutdown. gRPC has no call that ends a server stream
// from outside its handler, but the stream's context is the one its in-tap handle
// returns, and Recv (and a Send waiting for flow control) return as soon as that
// context is done. So Connect streams get a context the server can cancel; the handler
// then returns and its status (Unauthenticated for a revoked agent) reaches the agent.

type endStreamKey struct{}

// endableStreams is the agent server's in-tap handle: a Connect stream's context can be
// cancelled by the server (endStream). Other methods are left alone.
func endableStreams(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != agentv1.AgentService_Connect_FullMethodName {
		return ctx, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return context.WithValue(ctx, endStreamKey{}, cancel), nil
}

// endStream returns the function that ends the stream with context ctx (a no-op for a
// stream without one, as in tests that build the server without the tap).
func endStream(ctx context.Context) context.CancelCauseFunc {
	if f, ok := ctx.Value(endStreamKey{}).(context.CancelCauseFunc); ok {
		return f
	}
	return func(error) {}
}
