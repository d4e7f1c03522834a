package agenttransport

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// TestListenNoTCPKeepalive: a connection accepted by Listen has SO_KEEPALIVE off, so the
// kernel never aborts it for one lost probe under gRPC's TCP_USER_TIMEOUT; a plain
// net.Listen connection (Go's default) has it on, which is what the test would miss.
func TestListenNoTCPKeepalive(t *testing.T) {
	ctx := context.Background()
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ours, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	for _, tc := range []struct {
		name string
		ln   net.Listener
		want int
	}{{"net.Listen", plain, 1}, {"agenttransport.Listen", ours, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tc.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := tc.ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			raw, err := sc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var v int
			var serr error
			if err := raw.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil {
				t.Fatal(err)
			}
			if serr != nil {
				t.Fatal(serr)
			}
			if v != tc.want {
				t.Fatalf("SO_KEEPALIVE = %d, want %d", v, tc.want)
			}
		})
	}
	if _, err := Listen(ctx, "127.0.0.1:notaport"); err == nil {
		t.Fatal("a bad address listened")
	}
}
