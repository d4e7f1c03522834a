package server

// The demo's local inbox: with --demo, an SMTP server (notify/fakesmtp: real SMTP with
// STARTTLS and AUTH, on loopback) runs in this process, the demo org's email channel points
// at it, and GET /demo/inbox shows what it received, so a person trying `make run` sees
// the enrollment, retrieval and admin mail without setting anything up.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"html/template"
	"net/http"
	"slices"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/fakesmtp"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// DemoInboxPath is where the demo inbox is served.
const DemoInboxPath = "/demo/inbox"

// demoInbox is the in-process SMTP server of `make run` and its credentials.
type demoInbox struct {
	smtp     *fakesmtp.Server
	password string
}

func startDemoInbox() (*demoInbox, error) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	pw := hex.EncodeToString(b)
	srv, err := fakesmtp.Start(context.Background(), fakesmtp.Options{Username: "lanyard-demo", Password: pw})
	if err != nil {
		return nil, err
	}
	return &demoInbox{smtp: srv, password: pw}, nil
}

// Mount serves the inbox page (loopback demo only: the server binds 127.0.0.1 in make run).
func (d *demoInbox) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+DemoInboxPath, d.serve)
}

var inboxPage = template.Must(template.New("inbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo inbox · Lanyard</title></head>
<body style="font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem">
<h1>Demo inbox</h1>
<p>Every email the demo organization sends lands here (an SMTP server inside this process). Newest first; reload to refresh.</p>
{{range .}}<article style="border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0">
<p><b>{{.Subject}}</b><br>To: {{range .To}}{{.}} {{end}} · {{.At.Format "Mon 2 Jan 15:04:05 MST"}} · {{.MessageID}}</p>
<pre style="white-space:pre-wrap">{{.Text}}</pre></article>
{{else}}<p>No mail yet. Hire someone (the demo's Justworks) or terminate someone, and reload.</p>{{end}}
</body></html>`))

func (d *demoInbox) serve(w http.ResponseWriter, r *http.Request) {
	ms := d.smtp.Messages()
	slices.Reverse(ms)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = inboxPage.Execute(w, ms)
}

// seedDemoEmail points the demo org's email channel at the inbox (a new port and password
// each start, so the channel is updated every time).
func (s *Server) seedDemoEmail(ctx context.Context, org domain.Org) error {
	in := s.caps.demoInbox
	if in == nil {
		return nil
	}
	cfg := &notify.EmailConfig{Host: "127.0.0.1", Port: in.smtp.Port(), Username: "lanyard-demo", From: "Lanyard Demo <it@demo.example>"}
	chs, err := store.ListNotifyChannels(ctx, s.DB.SQL, org.ID)
	if err != nil {
		return err
	}
	for _, c := range chs {
		if c.Kind == "email" && c.Name == "Demo inbox" {
			_, err := s.caps.notify.UpdateChannel(ctx, org.ID, c.ID, notify.ChannelInput{Email: cfg, Secret: in.password})
			return err
		}
	}
	_, err = s.caps.notify.CreateChannel(ctx, org.ID, notify.ChannelInput{Name: "Demo inbox", Kind: "email", Email: cfg, Secret: in.password})
	return err
}

// DemoInboxURL is the demo inbox's address ("" without --demo), for the banner.
func (s *Server) DemoInboxURL(base string) string {
	if s.caps.demoInbox == nil {
		return ""
	}
	return base + DemoInboxPath
}
