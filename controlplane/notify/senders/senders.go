// Package senders adapts the channel packages (notify/mail, notify/slack) and the
// templates (notify/templates) to the small interfaces the notification engine declares,
// so the engine depends on none of them and the server wires them explicitly.
package senders

import (
	"context"
	"crypto/x509"
	"errors"

	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/mail"
	"github.com/lanyardhq/lanyard/controlplane/notify/slack"
	"github.com/lanyardhq/lanyard/controlplane/notify/templates"
)

// Templates adapts templates.Set to notify.Renderer.
type Templates struct{ Set *templates.Set }

func (t Templates) Render(kind string, d notify.Data) (notify.Message, error) {
	td := templates.Data{OrgName: d.OrgName, Location: d.Location, PublicURL: d.PublicURL, At: d.At, Link: d.Link, Fields: d.Fields}
	if d.Person != nil {
		td.Person = &templates.Person{Name: d.Person.Name, FirstName: d.Person.FirstName, Email: d.Person.Email, StartDate: d.Person.StartDate, Title: d.Person.Title}
	}
	if d.Device != nil {
		td.Device = &templates.Device{Name: d.Device.Name, Serial: d.Device.Serial, Model: d.Device.Model, OS: d.Device.OS}
	}
	for _, it := range d.Items {
		td.Items = append(td.Items, templates.Item{Title: it.Title, Link: it.Link, Detail: it.Detail})
	}
	r, err := t.Set.Render(kind, td)
	if err != nil {
		return notify.Message{}, err
	}
	return notify.Message{Subject: r.Subject, Text: r.Text, HTML: r.HTML, SlackText: r.Slack.Text, SlackBlocks: r.Slack.Blocks}, nil
}

// Mail adapts notify/mail to notify.EmailSender. Roots, when set, are the CAs the
// SMTP server's certificate must chain to (the demo's in-process server); nil: the system's.
type Mail struct{ Roots *x509.CertPool }

func (m Mail) SendEmail(ctx context.Context, cfg notify.EmailConfig, password string, msg notify.Email) error {
	c, err := mail.New(mail.Config{Host: cfg.Host, Port: cfg.Port, Username: cfg.Username, Password: password, From: cfg.From, TLS: cfg.TLS,
		RootCAs: m.Roots})
	if err != nil {
		return &notify.SendError{Permanent: true, Detail: err.Error(), Err: err}
	}
	err = c.Send(ctx, mail.Message{ID: msg.ID, To: msg.To, Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML})
	var se *mail.SendError
	if errors.As(err, &se) {
		return &notify.SendError{Permanent: se.Permanent, Status: se.Code, Detail: se.Error(), Err: err}
	}
	return err
}

// Slack adapts notify/slack to notify.SlackSender.
type Slack struct{ Client *slack.Client }

func (s Slack) PostSlack(ctx context.Context, hookURL string, m notify.Message) error {
	text := m.SlackText
	if text == "" {
		text = m.Subject
	}
	err := s.Client.Post(ctx, hookURL, slack.Message{Text: text, Blocks: m.SlackBlocks})
	var pe *slack.PostError
	if errors.As(err, &pe) {
		return &notify.SendError{Permanent: pe.Permanent, Status: pe.Status, Detail: pe.Error(), RetryAfter: pe.RetryAfter, Err: err}
	}
	return err
}
