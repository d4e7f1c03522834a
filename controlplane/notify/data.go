package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	msgtemplates "github.com/lanyardhq/lanyard/controlplane/notify/templates"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Data is what a template renders (templates.Data, mirrored so this package does not
// depend on the template package's types).
type Data struct {
	OrgName   string
	Location  *time.Location
	PublicURL string
	At        time.Time
	Person    *Person
	Device    *Device
	// Link is the item's path in the console ("/people/<id>"); templates render
	// PublicURL+Link.
	Link   string
	Fields map[string]string
	Items  []Item
}

// Person is the employee an event is about.
type Person struct {
	Name, FirstName, Email string
	StartDate              *time.Time
	Title                  string
}

// Device is the device an event is about.
type Device struct{ Name, Serial, Model, OS string }

// Item is one line of a list (digest, held terminations).
type Item struct{ Title, Link, Detail string }

// data builds a delivery's template data from its event and the store's current view of
// the people and devices it names.
func (e *Engine) data(ctx context.Context, d store.Delivery, ev domain.Event) (Data, error) {
	org, err := store.GetOrg(ctx, e.db.SQL, d.OrgID)
	if err != nil {
		return Data{}, err
	}
	out := Data{OrgName: org.Name, Location: org.Location(), PublicURL: strings.TrimRight(e.cfg.PublicURL, "/"), At: ev.At, Fields: map[string]string{}}
	var payload map[string]any
	_ = json.Unmarshal(ev.Payload, &payload)
	for k, v := range payload {
		if msgtemplates.SecretField(k) {
			continue
		}
		switch x := v.(type) {
		case string:
			out.Fields[k] = x
		case float64:
			out.Fields[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out.Fields[k] = strconv.FormatBool(x)
		case []any:
			out.Items = append(out.Items, items(x)...)
		}
	}
	for dst, src := range fieldAliases[ev.Type] {
		if out.Fields[dst] == "" && out.Fields[src] != "" {
			out.Fields[dst] = out.Fields[src]
		}
	}
	empID, devID := str(payload["employee_id"]), str(payload["device_id"])
	switch ev.SubjectType {
	case "employee":
		empID = ev.SubjectID
	case "device":
		devID = ev.SubjectID
	}
	out.Link = link(ev.SubjectType, ev.SubjectID)
	if out.Link == "" {
		out.Link = sectionLinks[ev.Type]
	}
	if empID != "" {
		emp, err := store.GetEmployee(ctx, e.db.SQL, d.OrgID, empID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
		if err == nil {
			p := &Person{Name: strings.TrimSpace(emp.HR.FirstName + " " + emp.HR.LastName), FirstName: emp.HR.FirstName,
				Email: employeeAddress(emp, ev.At, out.Location), Title: emp.HR.Title}
			if emp.HR.StartDate != nil {
				t := emp.HR.StartDate.At(9, out.Location)
				p.StartDate = &t
			}
			out.Person = p
			if out.Link == "" {
				out.Link = link("employee", emp.ID)
			}
			if err := e.employeeFields(ctx, d, ev, emp, &out); err != nil {
				return out, err
			}
		}
	}
	if ev.Type == domain.EventDigestDue {
		if err := e.digest(ctx, d.OrgID, &out); err != nil {
			return out, err
		}
	}
	if devID != "" {
		dev, err := store.GetDevice(ctx, e.db.SQL, d.OrgID, devID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
		if err == nil {
			out.Device = &Device{Name: dev.Model, Serial: dev.SerialNumber, Model: dev.Model, OS: string(dev.Platform)}
			if out.Link == "" {
				out.Link = link("device", dev.ID)
			}
		}
	}
	return out, nil
}

// employeeFields adds what the employee's guidance needs: the enrollment links for a
// hire, the kit and return details for a leaver.
func (e *Engine) employeeFields(ctx context.Context, d store.Delivery, ev domain.Event, emp domain.Employee, out *Data) error {
	switch d.Template {
	case "enroll_instructions", "hire":
		if e.enroll == nil || d.ChannelKind == channelHook {
			return nil
		}
		inst, enroll, err := e.enroll(ctx, d.OrgID, emp.ID)
		if err != nil {
			return fmt.Errorf("enrollment links for %s: %w", emp.ID, err)
		}
		if inst != "" {
			out.Fields["installer_url"] = inst
		}
		if enroll != "" {
			out.Fields["enroll_url"] = enroll
		}
	case "retrieval_instructions", "retrieval_reminder", "termination":
		rs, _, err := store.ListRetrievals(ctx, e.db.SQL, d.OrgID, store.RetrievalFilter{EmployeeID: emp.ID, Open: true}, store.Page{Limit: 5})
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return nil
		}
		r := rs[len(rs)-1]
		if r.KitTracking != "" {
			out.Fields["kit_tracking"] = r.KitTracking
		}
		if r.NextReminderAt != nil {
			if _, ok := out.Fields["due"]; !ok {
				out.Fields["due"] = r.NextReminderAt.In(out.Location).Format("Mon 2 Jan, 15:04 MST")
			}
		}
		if _, ok := out.Fields["kit"]; !ok {
			out.Fields["kit"] = "a prepaid return box"
		}
	}
	return nil
}

// fieldAliases name the template field (key) a payload field (value) fills, where the
// producers' payload names (docs/events.md) differ from the templates' words.
var fieldAliases = map[string]map[string]string{
	domain.EventTaskCreated:         {"task": "title"},
	domain.EventTaskOverdue:         {"task": "title", "due": "due_at"},
	domain.EventDeviceCommandFailed: {"command": "kind"},
	domain.EventMDMAPNsExpiring:     {"days": "days_left"},
}

// sectionLinks are the console sections of events whose subject has no page of its own.
var sectionLinks = map[string]string{
	domain.EventHRTerminationsHeld: "/justworks",
	domain.EventHRConnectionEnded:  "/justworks",
	domain.EventHRSyncFailing:      "/justworks",
	domain.EventTaskCreated:        "/workflows",
	domain.EventTaskOverdue:        "/workflows",
	domain.EventMDMAPNsExpiring:    "/enrollment",
	domain.EventDigestDue:          "/",
}

// link is the console path of an event's subject ("" when it has no page).
func link(subjectType, id string) string {
	if id == "" {
		return ""
	}
	switch subjectType {
	case "employee":
		return "/people/" + id
	case "device":
		return "/devices/" + id
	case "notify_delivery":
		return "/notifications/" + id
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func items(list []any) []Item {
	var out []Item
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		it := Item{Title: firstOf(m, "title", "name"), Link: str(m["link"]), Detail: firstOf(m, "detail", "reason")}
		if it.Link == "" {
			if id := str(m["employee_id"]); id != "" {
				it.Link = link("employee", id)
			} else if id := str(m["device_id"]); id != "" {
				it.Link = link("device", id)
			}
		}
		if it.Title != "" {
			out = append(out, it)
		}
	}
	return out
}

func firstOf(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s := str(m[k]); s != "" {
			return s
		}
	}
	return ""
}

// digestItems bounds the digest's list; the counts say how many there are in all.
const digestItems = 20

// digest gathers what waits for a person, read when the digest is rendered (not when the
// event was written), so a late delivery still tells the truth: wipes awaiting a second
// admin, then open manual tasks, overdue first.
func (e *Engine) digest(ctx context.Context, orgID string, out *Data) error {
	nApprovals, approvals, err := e.db.PendingApprovals(ctx, orgID, digestItems)
	if err != nil {
		return err
	}
	for _, a := range approvals {
		out.Items = append(out.Items, Item{Title: strings.ToUpper(a.Type[:1]) + a.Type[1:] + " of " + a.SerialNumber + " awaits a second admin",
			Link: link("device", a.DeviceID), Detail: "asked " + a.CreatedAt.In(out.Location).Format("Mon 2 Jan, 15:04 MST")})
	}
	tasks, _, err := e.db.ListTasks(ctx, orgID, store.TaskFilter{State: "open"}, store.Page{Limit: digestItems})
	if err != nil {
		return err
	}
	overdue := 0
	var due, rest []Item
	for _, t := range tasks {
		it := Item{Title: t.Title, Link: "/workflows/" + t.WorkflowID}
		switch {
		case t.DueAt != nil && t.DueAt.Before(out.At):
			overdue++
			it.Detail = "overdue since " + t.DueAt.In(out.Location).Format("Mon 2 Jan, 15:04 MST")
			due = append(due, it)
		case t.DueAt != nil:
			it.Detail = "due " + t.DueAt.In(out.Location).Format("Mon 2 Jan, 15:04 MST")
			rest = append(rest, it)
		default:
			rest = append(rest, it)
		}
	}
	out.Items = append(append(out.Items, due...), rest...)
	if len(out.Items) > digestItems {
		out.Items = out.Items[:digestItems]
	}
	more := ""
	if len(tasks) == digestItems {
		more = " or more"
	}
	out.Fields["summary"] = fmt.Sprintf("%d %s awaiting a second admin; %d open %s%s (%d overdue).", nApprovals, plural(nApprovals, "wipe or lock", "wipes or locks"),
		len(tasks), plural(len(tasks), "task", "tasks"), more, overdue)
	if nApprovals == 0 && len(tasks) == 0 {
		out.Fields["summary"] = "Nothing waits for a person today."
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
