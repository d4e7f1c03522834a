package fakejustworks

import (
	"context"
	"fmt"
	"time"
)

// DemoMembers is how many members StartDemo loads.
const DemoMembers = 36

// StartDemo starts a fake Justworks for `make run` on addr ("" = 127.0.0.1:0)
// with DemoMembers generated members (seed 1) and background webhook delivery;
// it stops when ctx ends. Its ClientID/ClientSecret/URL/AuthorizeURL feed the
// Justworks provider config.
func StartDemo(ctx context.Context, addr string) (*Server, error) {
	s, err := Start(Options{Addr: addr, AutoDeliver: true, CompanyName: "Acme Demo Co", CompanyID: "co_demo"})
	if err != nil {
		return nil, fmt.Errorf("fakejustworks: start demo: %w", err)
	}
	now := time.Now().UTC().Truncate(24 * time.Hour)
	s.Load(Generate(DemoMembers, 1, GenOptions{CompanyID: "co_demo", Domain: "acme.example.com", Now: now}))
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return s, nil
}
