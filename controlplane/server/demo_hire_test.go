package server

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/notify/fakesmtp"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// A hire in Justworks reaches the new hire's personal inbox before the start date (in
// make run: the demo's in-process SMTP server, over STARTTLS + AUTH), and every link in
// that mail works against the running server.
func TestDemoHireGetsAWorkingEnrollmentLink(t *testing.T) {
	d := startDemo(t)
	// An org whose MDM is set up (an APNs certificate uploaded), so the mail carries the Mac
	// enrollment link; without one Lanyard leaves that link out rather than send a dead one.
	if err := d.s.DB.MDMPutPushCert(d.ctx, store.MDMPushCert{OrgID: d.org.ID, Topic: "com.apple.mgmt.External.demo",
		NotAfter: time.Now().AddDate(1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	personal := "new.hire.test@example.org"
	d.s.caps.demoJustworks.AddMember(fakejustworks.Member{Name: &fakejustworks.Name{GivenName: "Noor", FamilyName: "Hire"}, Active: true,
		Type: "W2", JobTitle: "Engineer", EmploymentStartDate: time.Now().AddDate(0, 0, 10).Format(time.DateOnly),
		Emails: []fakejustworks.Email{{Type: "PERSONAL", Address: personal}, {Type: "WORK", Address: "noor.hire@" + demoGoogleDomain}}})
	ctx, cancel := context.WithTimeout(d.ctx, 90*time.Second)
	defer cancel()
	var mail fakesmtp.Received
	if _, err := d.s.caps.demoInbox.smtp.WaitFor(ctx, func(ms []fakesmtp.Received) bool {
		for _, m := range ms {
			if len(m.To) == 1 && m.To[0] == personal && strings.Contains(m.Subject, "set up your laptop") {
				mail = m
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	public := strings.TrimRight(d.s.Config.PublicURL, "/")
	links := regexp.MustCompile(regexp.QuoteMeta(public)+`/[^\s"<>]+`).FindAllString(mail.Text, -1)
	if len(links) == 0 {
		t.Fatalf("no link under %s in:\n%s", public, mail.Text)
	}
	for _, l := range links {
		// The public URL names the production host; the test server listens elsewhere.
		resp, err := http.Get(d.base + strings.TrimPrefix(l, public))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", l, resp.StatusCode)
		}
	}
}
