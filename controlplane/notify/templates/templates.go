// Package templates renders notification messages from templates kept in the repository
// (kinds/*.tmpl). Each kind is written once, as text: a subject, a title, a body and a
// button label. The HTML mail and the Slack blocks are built from the same pieces, so the
// three always say the same thing. Every link is absolute under the organisation's
// public URL, times are in the organisation's zone, and nothing a caller marks as a
// secret (a field whose name says secret, token, PIN, password) can reach a message.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/slack"
)

// Kinds of message. Admin prompts first, then the employee's own mail.
const (
	Hire                 = "hire"
	Termination          = "termination"
	TaskCreated          = "task_created"
	TaskOverdue          = "task_overdue"
	WipeApprovalPending  = "wipe_approval_pending"
	TerminationsHeld     = "terminations_held"
	CommandFailed        = "command_failed"
	HRConnectionEnded    = "hr_connection_ended"
	HRSyncFailing        = "hr_sync_failing"
	APNsExpiring         = "apns_expiring"
	DeviceSilent         = "device_silent"
	DeviceNoncompliant   = "device_noncompliant"
	Digest               = "digest"
	Test                 = "test"
	EnrollInstructions   = "enroll_instructions"
	RetrievalInstruction = "retrieval_instructions"
	RetrievalReminder    = "retrieval_reminder"
)

// requirements says what each kind cannot be rendered without: a person, a device, and
// fields. A missing one is an error naming it, never a message with a hole in it.
var requirements = map[string]struct {
	person, device bool
	fields         []string
	anyField       []string // at least one of these
	employee       bool     // the employee's own mail: no console link
}{
	Hire:                 {person: true},
	Termination:          {person: true},
	TaskCreated:          {fields: []string{"task"}},
	TaskOverdue:          {fields: []string{"task"}},
	WipeApprovalPending:  {device: true},
	TerminationsHeld:     {fields: []string{"count"}},
	CommandFailed:        {device: true, fields: []string{"command", "state"}},
	HRConnectionEnded:    {},
	HRSyncFailing:        {fields: []string{"failures"}},
	APNsExpiring:         {fields: []string{"days"}},
	DeviceSilent:         {device: true, fields: []string{"days"}},
	DeviceNoncompliant:   {device: true},
	Digest:               {},
	Test:                 {},
	EnrollInstructions:   {person: true, anyField: []string{"enroll_url", "installer_url"}, employee: true},
	RetrievalInstruction: {person: true, employee: true},
	RetrievalReminder:    {person: true, employee: true},
}

// Data is what a message is about.
type Data struct {
	OrgName   string
	Location  *time.Location // nil: UTC
	PublicURL string         // https://lanyard.acme.example
	At        time.Time
	Person    *Person
	Device    *Device
	// Link is the item's path in the console ("/people/emp_1"); rendered as PublicURL+Link.
	Link string
	// Fields are kind-specific facts ("task", "count", "days", "enroll_url", ...). A
	// field ending in _url must be a link under PublicURL.
	Fields map[string]string
	Items  []Item
}

// Person is who a message is about (or to).
type Person struct {
	Name, FirstName, Email string
	StartDate              *time.Time
	Title                  string
}

// Device is the device a message is about.
type Device struct{ Name, Serial, Model, OS string }

// Item is one line of a list (the digest, held terminations); Link is a console path.
type Item struct{ Title, Link, Detail string }

// Rendered is one message in every form a channel needs.
type Rendered struct {
	Subject, Text, HTML string
	Slack               slack.Message
}

//go:embed kinds/*.tmpl layout.html
var files embed.FS

// Set is the parsed templates: Load once at start, render from any goroutine.
type Set struct {
	kinds  map[string]*template.Template
	layout *htmltemplate.Template
}

// Load parses every kind and the HTML layout.
func Load() (*Set, error) {
	names, err := fs.Glob(files, "kinds/*.tmpl")
	if err != nil {
		return nil, err
	}
	s := &Set{kinds: map[string]*template.Template{}}
	for _, f := range names {
		kind := strings.TrimSuffix(path.Base(f), ".tmpl")
		if _, ok := requirements[kind]; !ok {
			return nil, fmt.Errorf("templates: %s has no requirements entry", f)
		}
		t, err := template.New(kind).Option("missingkey=zero").Funcs(textFuncs).ParseFS(files, f)
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", f, err)
		}
		for _, part := range []string{"subject", "title", "body", "button"} {
			if t.Lookup(part) == nil {
				return nil, fmt.Errorf("templates: %s defines no %q", f, part)
			}
		}
		s.kinds[kind] = t
	}
	for kind := range requirements {
		if s.kinds[kind] == nil {
			return nil, fmt.Errorf("templates: kind %s has no kinds/%s.tmpl", kind, kind)
		}
	}
	if s.layout, err = htmltemplate.New("layout.html").ParseFS(files, "layout.html"); err != nil {
		return nil, fmt.Errorf("templates: layout: %w", err)
	}
	return s, nil
}

// Kinds lists every kind, sorted.
func (s *Set) Kinds() []string {
	out := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// textFuncs are the functions templates may call; date and when are placeholders that
// each Render replaces with ones bound to the organisation's zone.
var textFuncs = template.FuncMap{
	"date":   func(*time.Time) string { return "" },
	"when":   func(time.Time) string { return "" },
	"title":  func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
	"plural": plural,
}

func plural(n, one, many string) string {
	if v, err := strconv.Atoi(n); err == nil && v == 1 {
		return one
	}
	return many
}

// SecretField reports a field name that may hold a secret: such a field is refused here
// and dropped from webhook payloads (notify), so a producer's mistake cannot put a PIN or
// a token in someone's inbox or a SIEM. The one rule for both.
func SecretField(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"secret", "token", "password", "passcode", "passphrase", "credential"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(k, func(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' }) {
		if part == "pin" || part == "key" || part == "otp" {
			return true
		}
	}
	return false
}

// Render renders kind with d.
func (s *Set) Render(kind string, d Data) (Rendered, error) {
	t, ok := s.kinds[kind]
	req, known := requirements[kind]
	if !ok || !known {
		return Rendered{}, fmt.Errorf("templates: unknown kind %q", kind)
	}
	base, err := publicBase(d.PublicURL)
	if err != nil {
		return Rendered{}, err
	}
	if d.Location == nil {
		d.Location = time.UTC
	}
	if d.Fields == nil {
		d.Fields = map[string]string{}
	}
	if err := check(kind, req.person, req.device, req.fields, req.anyField, d, base); err != nil {
		return Rendered{}, err
	}
	loc := d.Location
	t, err = t.Clone()
	if err != nil {
		return Rendered{}, err
	}
	t.Funcs(template.FuncMap{
		"date": func(p *time.Time) string {
			if p == nil {
				return "a date to be confirmed"
			}
			return p.In(loc).Format("Monday 2 January 2006")
		},
		"when": func(x time.Time) string { return x.In(loc).Format("Mon 2 Jan, 15:04 MST") },
	})
	part := func(name string) (string, error) {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, name, d); err != nil {
			return "", fmt.Errorf("templates: %s/%s: %w", kind, name, err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	var subject, title, body, button string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"subject", &subject}, {"title", &title}, {"body", &body}, {"button", &button}} {
		if *p.dst, err = part(p.name); err != nil {
			return Rendered{}, err
		}
	}
	subject = strings.Join(strings.Fields(subject), " ") // one line: a header cannot hold a newline
	link := ""
	switch {
	case kind == EnrollInstructions:
		link = d.Fields["enroll_url"]
		if link == "" {
			link = d.Fields["installer_url"]
		}
	case req.employee:
		// Employees have no console: their mail carries instructions, not a link in.
	case d.Link != "":
		if link, err = under(base, d.Link); err != nil {
			return Rendered{}, err
		}
	}
	items := make([]item, 0, len(d.Items))
	for _, it := range d.Items {
		l := ""
		if it.Link != "" {
			if l, err = under(base, it.Link); err != nil {
				return Rendered{}, err
			}
		}
		items = append(items, item{Title: it.Title, Detail: it.Detail, URL: l})
	}
	footer := "Sent by Lanyard for " + d.OrgName + " · " + d.At.In(loc).Format("Mon 2 Jan 2006, 15:04 MST")

	var text strings.Builder
	text.WriteString(title + "\n\n" + body + "\n")
	for _, it := range items {
		text.WriteString("\n- " + it.Title)
		if it.Detail != "" {
			text.WriteString(": " + it.Detail)
		}
		if it.URL != "" {
			text.WriteString(" <" + it.URL + ">")
		}
	}
	if len(items) > 0 {
		text.WriteString("\n")
	}
	if link != "" && button != "" {
		text.WriteString("\n" + button + ": " + link + "\n")
	}
	text.WriteString("\n-- \n" + footer + "\n")

	var html bytes.Buffer
	if err := s.layout.Execute(&html, layoutData{Title: title, Paragraphs: strings.Split(body, "\n\n"), Items: items,
		Button: button, Link: link, Footer: footer, OrgName: d.OrgName}); err != nil {
		return Rendered{}, fmt.Errorf("templates: %s/html: %w", kind, err)
	}

	buttonURL := link
	if button == "" {
		buttonURL = ""
	}
	blocks := slack.SectionBlocks(title, body, button, buttonURL, nil, nil)
	for _, it := range items {
		line := "• " + slack.Escape(it.Title)
		if it.URL != "" {
			line = "• <" + it.URL + "|" + slack.Escape(it.Title) + ">"
		}
		if it.Detail != "" {
			line += " — " + slack.Escape(it.Detail)
		}
		blocks = append(blocks, slack.Section(line))
	}
	blocks = append(blocks, slack.Context(slack.Escape(footer)))
	return Rendered{Subject: subject, Text: text.String(), HTML: html.String(),
		Slack: slack.Fit(slack.Message{Text: subject, Blocks: blocks})}, nil
}

type item struct{ Title, Detail, URL string }

type layoutData struct {
	Title      string
	Paragraphs []string
	Items      []item
	Button     string
	Link       string
	Footer     string
	OrgName    string
}

func check(kind string, person, device bool, fields, anyField []string, d Data, base *url.URL) error {
	var missing []string
	if person && (d.Person == nil || d.Person.Name == "") {
		missing = append(missing, "person")
	}
	if device && (d.Device == nil || d.Device.Serial == "") {
		missing = append(missing, "device")
	}
	for _, f := range fields {
		if strings.TrimSpace(d.Fields[f]) == "" {
			missing = append(missing, "field "+f)
		}
	}
	if len(anyField) > 0 && !slices.ContainsFunc(anyField, func(f string) bool { return d.Fields[f] != "" }) {
		missing = append(missing, "one of "+strings.Join(anyField, ", "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("templates: %s needs %s", kind, strings.Join(missing, ", "))
	}
	for k, v := range d.Fields {
		if SecretField(k) {
			return fmt.Errorf("templates: %s: field %q may hold a secret and is never rendered", kind, k)
		}
		if strings.HasSuffix(k, "_url") && v != "" {
			if _, err := under(base, v); err != nil {
				return fmt.Errorf("templates: %s: field %s: %w", kind, k, err)
			}
		}
	}
	return nil
}

func publicBase(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("templates: public URL %q must be an absolute http(s) URL", s)
	}
	return u, nil
}

// under resolves a console path (or an absolute URL) and refuses anything that would
// point outside the public URL: a message never sends a person elsewhere.
func under(base *url.URL, ref string) (string, error) {
	if strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		u := *base
		p, q, _ := strings.Cut(ref, "?")
		u.Path = strings.TrimRight(base.Path, "/") + p
		u.RawQuery = q
		return u.String(), nil
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme != base.Scheme || u.Host != base.Host || !strings.HasPrefix(u.Path, strings.TrimRight(base.Path, "/")+"/") && u.Path != base.Path {
		return "", fmt.Errorf("link %q is not under the public URL %s", ref, base)
	}
	return u.String(), nil
}
