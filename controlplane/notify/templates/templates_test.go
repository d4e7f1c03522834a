package templates_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the templates")

const public = "https://lanyard.acme.example"

func load(t *testing.T) *templates.Set {
	t.Helper()
	s, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sample is realistic data for each kind, as the engine would fill it.
func sample(kind string) templates.Data {
	ny, _ := time.LoadLocation("America/New_York")
	start := time.Date(2026, 12, 14, 9, 0, 0, 0, ny)
	d := templates.Data{OrgName: "Acme Robotics", Location: ny, PublicURL: public, At: time.Date(2026, 12, 3, 15, 4, 0, 0, time.UTC),
		Person: &templates.Person{Name: "Ada Lovelace", FirstName: "Ada", Email: "ada@acme.example", StartDate: &start, Title: "Engineer"},
		Device: &templates.Device{Name: "MacBook Pro 14", Serial: "C02XK1ZZMD6T", Model: "Mac15,6", OS: "macOS 15.2"},
		Link:   "/people/emp_1", Fields: map[string]string{}}
	f := d.Fields
	switch kind {
	case templates.Termination:
		f["last_day"] = "Friday 11 December"
	case templates.TaskCreated, templates.TaskOverdue:
		f["task"], f["detail"], f["due"] = "Collect the badge", "Ada works on site; collect her badge at the front desk.", "Fri 11 Dec, 17:00 EST"
		d.Link = "/workflows/wf_1"
	case templates.WipeApprovalPending:
		f["requested_by"], d.Link = "Sam Osei", "/devices/dev_1"
	case templates.TerminationsHeld:
		f["count"], f["window"], d.Link = "14", "10 minutes", "/hr/held"
		d.Items = []templates.Item{{Title: "Ada Lovelace", Link: "/people/emp_1", Detail: "Engineer"}, {Title: "Alan Turing", Link: "/people/emp_2"}}
	case templates.CommandFailed:
		f["command"], f["state"], f["reason"], d.Link = "lock", "expired", "the device did not come online within 72 hours", "/devices/dev_1"
	case templates.HRConnectionEnded:
		f["reason"], d.Link = "the Justworks grant was revoked", "/justworks"
	case templates.HRSyncFailing:
		f["failures"], f["last_error"], d.Link = "5", "Justworks answered 503", "/justworks"
	case templates.APNsExpiring:
		f["days"], f["expires"], d.Link = "7", "Thursday 10 December 2026", "/settings/apple"
	case templates.DeviceSilent:
		f["days"], f["last_seen"], d.Link = "9", "Tue 24 Nov", "/devices/dev_1"
	case templates.DeviceNoncompliant:
		f["failed"], d.Link = "disk encryption off, firewall off", "/devices/dev_1"
	case templates.Digest:
		f["summary"], d.Link = "3 things need a person today.", "/"
		d.Items = []templates.Item{{Title: "Collect the badge", Link: "/workflows/wf_1", Detail: "due today"}, {Title: "Wipe of C02XK1ZZMD6T awaits approval", Link: "/devices/dev_1"}}
	case templates.Test:
		f["channel"], f["requested_by"], d.Link = "IT alerts", "Sam Osei", "/settings/notifications"
	case templates.EnrollInstructions:
		f["enroll_url"], f["installer_url"] = public+"/enroll/mac/tok_abc", public+"/installers/agent?link=lnk_1"
	case templates.RetrievalInstruction, templates.RetrievalReminder:
		f["kit_tracking"], f["return_address"], f["due"] = "1Z999AA10123456784", "Acme IT, 500 Main St, Brooklyn NY 11201", "Friday 18 December"
	}
	return d
}

// Every kind renders, and the result is the reviewed golden file: a change to a template
// shows up as a diff (go test ./controlplane/notify/templates -update rewrites them).
func TestEveryKindMatchesItsGolden(t *testing.T) {
	s := load(t)
	if len(s.Kinds()) != 17 {
		t.Fatalf("kinds: %v", s.Kinds())
	}
	for _, kind := range s.Kinds() {
		t.Run(kind, func(t *testing.T) {
			r, err := s.Render(kind, sample(kind))
			if err != nil {
				t.Fatal(err)
			}
			slackJSON, _ := json.MarshalIndent(r.Slack, "", "  ")
			got := "Subject: " + r.Subject + "\n\n===== text\n" + r.Text + "\n===== html\n" + r.HTML + "\n===== slack\n" + string(slackJSON) + "\n"
			file := filepath.Join("testdata", kind+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != got {
				t.Errorf("%s is stale; review and rerun with -update. Got:\n%s", file, got)
			}
		})
	}
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>)|]+`)

// Every link in every form points under the public URL; times carry the org's zone.
func TestLinksAndTimes(t *testing.T) {
	s := load(t)
	for _, kind := range s.Kinds() {
		r, err := s.Render(kind, sample(kind))
		if err != nil {
			t.Fatal(err)
		}
		slackJSON, _ := json.Marshal(r.Slack)
		for _, body := range []string{r.Text, r.HTML, string(slackJSON)} {
			for _, l := range linkRE.FindAllString(body, -1) {
				if !strings.HasPrefix(l, public+"/") {
					t.Errorf("%s: link %q is not under %s", kind, l, public)
				}
			}
		}
		if !strings.Contains(r.Text, "10:04 EST") {
			t.Errorf("%s: footer time not in the org's zone: %s", kind, r.Text)
		}
		if strings.ContainsAny(r.Subject, "\r\n") {
			t.Errorf("%s: subject spans lines", kind)
		}
	}
	// An admin prompt links to its item; the employee's retrieval mail has no console link.
	if r, _ := s.Render(templates.WipeApprovalPending, sample(templates.WipeApprovalPending)); !strings.Contains(r.Text, public+"/devices/dev_1") {
		t.Errorf("no link to the device: %s", r.Text)
	}
	if r, _ := s.Render(templates.RetrievalInstruction, sample(templates.RetrievalInstruction)); strings.Contains(r.Text, "/people/") {
		t.Errorf("an employee got a console link: %s", r.Text)
	}
}

func TestRefusals(t *testing.T) {
	s := load(t)
	for name, tc := range map[string]struct {
		kind string
		mut  func(*templates.Data)
		want string
	}{
		"unknown kind":           {"nope", func(*templates.Data) {}, "unknown kind"},
		"no person":              {templates.Hire, func(d *templates.Data) { d.Person = nil }, "needs person"},
		"no device":              {templates.CommandFailed, func(d *templates.Data) { d.Device = nil }, "needs device"},
		"missing field":          {templates.TerminationsHeld, func(d *templates.Data) { delete(d.Fields, "count") }, "field count"},
		"no enrollment link":     {templates.EnrollInstructions, func(d *templates.Data) { d.Fields = map[string]string{} }, "one of enroll_url, installer_url"},
		"a PIN field":            {templates.CommandFailed, func(d *templates.Data) { d.Fields["pin"] = "123456" }, "secret"},
		"a token field":          {templates.EnrollInstructions, func(d *templates.Data) { d.Fields["enroll_token"] = "tok" }, "secret"},
		"a recovery key":         {templates.DeviceSilent, func(d *templates.Data) { d.Fields["recovery_key"] = "ABCD" }, "secret"},
		"a link elsewhere":       {templates.EnrollInstructions, func(d *templates.Data) { d.Fields["enroll_url"] = "https://evil.example/enroll" }, "not under the public URL"},
		"a lookalike host":       {templates.EnrollInstructions, func(d *templates.Data) { d.Fields["installer_url"] = "https://lanyard.acme.example.evil.example/x" }, "not under"},
		"a protocol-relative":    {templates.Digest, func(d *templates.Data) { d.Link = "//evil.example/" }, "not under"},
		"an item link elsewhere": {templates.Digest, func(d *templates.Data) { d.Items[0].Link = "https://evil.example/" }, "not under"},
		"no public URL":          {templates.Test, func(d *templates.Data) { d.PublicURL = "" }, "public URL"},
	} {
		t.Run(name, func(t *testing.T) {
			d := sample(tc.kind)
			tc.mut(&d)
			_, err := s.Render(tc.kind, d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// A hostile name is text everywhere: escaped in HTML and in Slack's mrkdwn.
func TestHostileNamesStayText(t *testing.T) {
	s := load(t)
	d := sample(templates.Termination)
	d.Person.Name = `<script>alert(1)</script> <https://evil.example|click>`
	r, err := s.Render(templates.Termination, d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Errorf("HTML not escaped: %s", r.HTML)
	}
	slackJSON, _ := json.Marshal(r.Slack)
	if strings.Contains(string(slackJSON), "<https://evil.example|click>") {
		t.Errorf("mrkdwn link injected: %s", slackJSON)
	}
}
