package server

import "context"

// capability builds one capability from the shared dependencies. What it returns is
// inspected for optional interfaces:
//
//	Routes() []api.Route                 admin API routes
//	Mount(*http.ServeMux)                other HTTP endpoints (webhooks, MDM, SCEP)
//	Start(ctx) error                     a background loop (gRPC server, push loop); runs until ctx ends
//	Ready(ctx) error                     fails /readyz
//	Warnings(ctx) []string               shown on /readyz
//	DeviceDetails(ctx, org, id)          adds a view to GET /devices/{id}
//
// Register River workers on d.JobRegistry while building; enqueue through d.Jobs.
type capability struct {
	name  string
	build func(ctx context.Context, d *Deps) (any, error)
}

// capabilities lists every capability in build order; a later one may find an earlier
// one in d.Built. Add one line per capability.
var capabilities = []capability{}
