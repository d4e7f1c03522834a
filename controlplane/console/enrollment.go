package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// Enrollment: agent installers per OS, Mac enrollment links, and the enrollment secrets
// agents present on first contact. New secrets, links and installer URLs are shown on the
// page answering the form, once.

func enrollmentPages() []page {
	return []page{{Pattern: "GET /enrollment", Handler: enrollmentPage}}
}

func enrollmentActions() []action {
	revokeBody := func(c *Console, r *http.Request, rq *request) (any, error) {
		req := agentapi.RevokeRequest{Reason: form(r, "reason")}
		if r.PostFormValue("keep_agents") == "on" {
			f := false
			req.RevokeAgents = &f
		}
		return req, nil
	}
	return []action{
		{Name: "installer link", Form: "POST /enrollment/installers", API: "POST /api/v1/installers/links",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "platform") == "" {
					return nil, badRequest("Choose the operating system.")
				}
				return installersvc.LinkRequest{Platform: form(r, "platform"), Arch: form(r, "arch"), Fresh: r.PostFormValue("fresh") == "on"}, nil
			}, Sample: map[string]string{"platform": "linux-deb", "arch": "amd64"}, Done: installerLinked},
		{Name: "Mac enrollment link", Form: "POST /enrollment/mac-links", API: "POST /api/v1/mdm/enrollment-links",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				who, err := c.resolveEmployee(r, rq, form(r, "employee"))
				if err != nil {
					return nil, err
				}
				days, err := formInt(r, "days")
				if err != nil {
					return nil, err
				}
				return apple.EnrollLinkRequest{EmployeeID: who, TTLHours: days * 24}, nil
			}, Sample: map[string]string{"days": "14"}, Done: macLinked},
		{Name: "create enrollment secret", Form: "POST /enrollment/secrets", API: "POST /api/v1/enrollment-secrets",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "name") == "" {
					return nil, badRequest("Name the secret after where it goes (e.g. \"Windows fleet\").")
				}
				uses, err := formInt(r, "max_uses")
				if err != nil {
					return nil, err
				}
				req := agentapi.SecretRequest{Name: form(r, "name"), MaxUses: uses}
				days, err := formInt(r, "days")
				if err != nil {
					return nil, err
				}
				if days > 0 {
					t := time.Now().AddDate(0, 0, days)
					req.ExpiresAt = &t
				}
				return req, nil
			}, Sample: map[string]string{"name": "laptops", "days": "30"}, Done: secretMinted},
		{Name: "rotate enrollment secret", Form: "POST /enrollment/secrets/{id}/rotate", API: "POST /api/v1/enrollment-secrets/{id}/rotate",
			Body: revokeBody, Done: secretMinted},
		{Name: "revoke enrollment secret", Form: "POST /enrollment/secrets/{id}/revoke", API: "POST /api/v1/enrollment-secrets/{id}/revoke",
			Body: revokeBody, Sample: map[string]string{"reason": "leaked"}, Done: back(fixed("/enrollment"), "Secret revoked.")},
	}
}

type enrollmentView struct {
	Installers part[installersvc.Platforms]
	Secrets    part[api.List[store.EnrollmentSecret]]
	Enrolled   part[apple.EnrollmentList]
	HasMDM     bool
	// Shown once, on the answer to the form that made them.
	Link    *installersvc.Link
	MacLink *apple.EnrollLink
	Secret  *agentapi.SecretCreated
}

func (c *Console) loadEnrollment(r *http.Request, rq *request) (enrollmentView, error) {
	var v enrollmentView
	var err error
	if v.Installers, err = load[installersvc.Platforms](c, r, rq, "/api/v1/installers"); err != nil {
		return v, err
	}
	if v.Secrets, err = load[api.List[store.EnrollmentSecret]](c, r, rq, "/api/v1/enrollment-secrets?limit=100"); err != nil {
		return v, err
	}
	if v.HasMDM = c.hasRoute("GET /api/v1/mdm/enrollments"); v.HasMDM {
		if v.Enrolled, err = load[apple.EnrollmentList](c, r, rq, "/api/v1/mdm/enrollments?limit=20"); err != nil {
			return v, err
		}
	}
	return v, nil
}

func enrollmentPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v, err := c.loadEnrollment(r, rq)
	if err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "enrollment", "", "Enrollment", "enrollment", v)
}

func installerLinked(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var l installersvc.Link
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("decode installer link: %w", err)
	}
	v, err := c.loadEnrollment(r, rq)
	if err != nil {
		return err
	}
	// The link is built from the public URL; the download button uses its path so it
	// works on whatever address this browser reached the console at.
	if u, err := url.Parse(l.URL); err == nil {
		l.URL = u.RequestURI()
	}
	v.Link = &l
	return c.render(w, rq, http.StatusOK, "enrollment", "", "Enrollment", "enrollment", v)
}

func macLinked(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var l apple.EnrollLink
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("decode enrollment link: %w", err)
	}
	v, err := c.loadEnrollment(r, rq)
	if err != nil {
		return err
	}
	v.MacLink = &l
	return c.render(w, rq, http.StatusOK, "enrollment", "", "Enrollment", "enrollment", v)
}

func secretMinted(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var s agentapi.SecretCreated
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode secret: %w", err)
	}
	v, err := c.loadEnrollment(r, rq)
	if err != nil {
		return err
	}
	v.Secret = &s
	return c.render(w, rq, http.StatusOK, "enrollment", "", "Enrollment", "enrollment", v)
}
