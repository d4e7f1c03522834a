package console

import (
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

type personView struct {
	Person    domain.Employee
	Managed   string // "Justworks" when the HR system owns the fields
	Devices   []deviceRow
	Apps      []apps.Grant
	AppsNote  string
	Workflows []store.Workflow
	WfNote    string
	Timeline  []domain.AuditEntry
	AuditNote string
}

// section runs one optional read of a page: a refusal (plan, role) becomes a note in that
// section instead of failing the whole page; a server error still fails it.
func section(err error) (string, error) {
	if err == nil {
		return "", nil
	}
	ce, ok := api.AsCallError(err)
	if !ok || ce.Status >= 500 {
		return "", err
	}
	if ce.Detail != "" {
		return ce.Detail, nil
	}
	return ce.Title, nil
}

func personPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	id := url.PathEscape(r.PathValue("id"))
	var v personView
	if err := c.call(r, rq, "GET", "/api/v1/employees/"+id, nil, &v.Person); err != nil {
		return err
	}
	if v.Person.Source == "justworks" {
		v.Managed = "Justworks"
	} else if v.Person.Source != "" && v.Person.Source != "manual" {
		v.Managed = humanize(v.Person.Source)
	}
	var devs countedList[deviceRow]
	if err := c.call(r, rq, "GET", "/api/v1/devices?limit=50&employee_id="+url.QueryEscape(v.Person.ID), nil, &devs); err != nil {
		return err
	}
	v.Devices = devs.Items
	var err error
	var grants api.List[apps.Grant]
	if v.AppsNote, err = section(c.call(r, rq, "GET", "/api/v1/employees/"+id+"/apps", nil, &grants)); err != nil {
		return err
	}
	v.Apps = grants.Items
	var wfs api.List[store.Workflow]
	if v.WfNote, err = section(c.call(r, rq, "GET", "/api/v1/workflows?limit=20&employee_id="+url.QueryEscape(v.Person.ID), nil, &wfs)); err != nil {
		return err
	}
	v.Workflows = wfs.Items
	var audit api.List[domain.AuditEntry]
	if v.AuditNote, err = section(c.call(r, rq, "GET", "/api/v1/audit?limit=30&target_type=employee&target_id="+url.QueryEscape(v.Person.ID), nil, &audit)); err != nil {
		return err
	}
	v.Timeline = audit.Items
	c.namePeople(r, rq)
	return c.render(w, rq, http.StatusOK, "person", "", v.Person.HR.FirstName+" "+v.Person.HR.LastName, "people", v)
}

type offboardView struct {
	Person domain.Employee
	Plan   lifecycle.DryRun
}

// offboardPage shows what an offboarding would do (the API's dry run, which changes
// nothing) with the button that schedules it.
func offboardPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	id := url.PathEscape(r.PathValue("id"))
	var v offboardView
	if err := c.call(r, rq, "GET", "/api/v1/employees/"+id, nil, &v.Person); err != nil {
		return err
	}
	if err := c.call(r, rq, "GET", "/api/v1/employees/"+id+"/offboard/dry-run", nil, &v.Plan); err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "offboard", "", "Offboard "+v.Person.HR.FirstName+" "+v.Person.HR.LastName, "people", v)
}
