package lifecycle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// runCtx is what a step handler sees.
type runCtx struct {
	org   domain.Org
	w     store.Workflow
	st    store.WorkflowStep
	emp   domain.Employee
	data  wfData
	tasks []store.LifecycleTask
}

func (e *Engine) loadRun(ctx context.Context, w store.Workflow, st store.WorkflowStep) (*runCtx, error) {
	org, err := e.db.GetOrg(ctx, w.OrgID)
	if err != nil {
		return nil, err
	}
	emp, err := e.db.GetEmployee(ctx, w.OrgID, w.EmployeeID)
	if err != nil {
		return nil, err
	}
	tasks, err := store.TasksOfStep(ctx, e.db.SQL, st.ID)
	if err != nil {
		return nil, err
	}
	return &runCtx{org: org, w: w, st: st, emp: emp, data: parseData(w.Data), tasks: tasks}, nil
}

// taskFor returns the step's task about subject, if any.
func (rc *runCtx) taskFor(kind, subject string) (store.LifecycleTask, bool) {
	for _, t := range rc.tasks {
		if t.Kind == kind && t.SubjectID == subject {
			return t, true
		}
	}
	return store.LifecycleTask{}, false
}

type handler func(e *Engine, ctx context.Context, rc *runCtx) (outcome, error)

var handlers map[StepKind]handler

func init() {
	handlers = map[StepKind]handler{
		StepAllocateDevice: (*Engine).allocateDevice,
		StepAwaitDelivery:  (*Engine).awaitDelivery,
		StepAssignDevice:   (*Engine).assignDevice,
		StepEnrollDevice:   (*Engine).enrollDevice,
		StepGrantApps:      (*Engine).grantApps,
		StepAwaitCheckIn:   (*Engine).awaitCheckIn,
		StepRevokeApps:     (*Engine).revokeApps,
		StepLockDevices:    (*Engine).lockDevices,
		StepOpenRetrieval:  (*Engine).openRetrieval,
		StepAwaitReceipt:   (*Engine).awaitReceipt,
		StepWipeDevices:    (*Engine).wipeDevices,
		StepCleanDevices:   (*Engine).cleanDevices,
	}
}

func done(output any) (outcome, error) { return outcome{state: StepSucceeded, output: output}, nil }

func displayName(emp domain.Employee) string {
	return strings.TrimSpace(emp.HR.FirstName + " " + emp.HR.LastName)
}

func formatAddress(a domain.Address) string {
	parts := []string{a.Line1, a.Line2, a.City, a.State, a.PostalCode, a.Country}
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "(no address in HR)"
	}
	return strings.Join(out, ", ")
}

// ---- onboarding ----

func (e *Engine) allocateDevice(ctx context.Context, rc *runCtx) (outcome, error) {
	d := rc.data
	typ := d.EquipmentType
	if typ == "" {
		typ = e.cfg.DefaultEquipmentType
	}
	if d.DeviceID != "" || d.OrderID != "" {
		return done(map[string]any{"device_id": d.DeviceID, "order_id": d.OrderID, "source": "already_allocated"})
	}
	// The employee may already hold one (rehire, manual assignment, a crash after assign).
	held, err := store.DevicesHeldBy(ctx, e.db.SQL, rc.org.ID, rc.emp.ID)
	if err != nil {
		return outcome{}, err
	}
	for _, dev := range held {
		if dev.EquipmentType == typ && (dev.State == domain.StateAssigned || dev.State == domain.StateInUse) {
			d.DeviceID = dev.ID
			return outcome{state: StepSucceeded, data: &d,
				output: map[string]any{"source": "already_held", "device_id": dev.ID, "serial_number": dev.SerialNumber}}, nil
		}
	}
	// An order placed by an earlier attempt of this workflow?
	if o, err := store.OrderOfWorkflow(ctx, e.db.SQL, rc.org.ID, rc.w.ID); err == nil {
		d.OrderID = o.ID
		return outcome{state: StepSucceeded, data: &d, output: map[string]any{"source": "procurement", "order_id": o.ID}}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return outcome{}, err
	}
	var picked domain.Device
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		cands, err := store.StockCandidates(ctx, tx, rc.org.ID, typ, 10)
		if err != nil {
			return err
		}
		for _, c := range cands {
			dev, err := store.AssignDevice(ctx, tx, rc.org.ID, c.ID, rc.emp.ID)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return err
			}
			picked = dev
			return store.EndStorage(ctx, tx, rc.org.ID, dev.ID, e.clock.Now())
		}
		return nil
	})
	if err != nil {
		return outcome{}, err
	}
	if picked.ID != "" {
		d.DeviceID = picked.ID
		return outcome{state: StepSucceeded, data: &d, output: map[string]any{"source": "stock", "device_id": picked.ID,
			"serial_number": picked.SerialNumber}}, nil
	}
	// Nothing in stock: order one.
	o, manual, err := e.placeOrder(ctx, rc.org.ID, store.ProcurementOrder{EmployeeID: rc.emp.ID, WorkflowID: rc.w.ID,
		Vendor: "manual", Adapter: "manual", EquipmentType: typ, ShipTo: rc.emp.HR.Address})
	if err != nil {
		return outcome{}, err
	}
	d.OrderID = o.ID
	out := outcome{state: StepSucceeded, data: &d, output: map[string]any{"source": "procurement", "order_id": o.ID, "adapter": o.Adapter}}
	if manual {
		out.tasks = append(out.tasks, store.LifecycleTask{Kind: "place_order", SubjectID: o.ID,
			Title:  fmt.Sprintf("Order a %s for %s", typ, displayName(rc.emp)),
			Detail: fmt.Sprintf("No %s in stock. Order one shipped to %s, then record it shipped and delivered on procurement order %s.", typ, formatAddress(rc.emp.HR.Address), o.ID)})
	}
	return out, nil
}

// placeOrder records an order and sends it through its vendor adapter.
func (e *Engine) placeOrder(ctx context.Context, orgID string, o store.ProcurementOrder) (store.ProcurementOrder, bool, error) {
	o.OrgID = orgID
	if o.Adapter == "" {
		o.Adapter = "manual"
	}
	ad, ok := e.vendors[o.Adapter]
	if !ok {
		return o, false, Permanent(fmt.Errorf("no vendor adapter %q", o.Adapter))
	}
	if err := e.db.InTx(ctx, func(tx *sql.Tx) error { return store.InsertOrder(ctx, tx, &o) }); err != nil {
		return o, false, err
	}
	ref, manual, err := ad.PlaceOrder(ctx, o)
	if err != nil {
		return o, false, fmt.Errorf("place order with %s: %w", o.Adapter, err)
	}
	if ref != "" {
		o.VendorRef = ref
		if err := e.db.InTx(ctx, func(tx *sql.Tx) error { return store.UpdateOrder(ctx, tx, &o, o.State) }); err != nil {
			return o, manual, err
		}
	}
	return o, manual, nil
}

func (e *Engine) awaitDelivery(ctx context.Context, rc *runCtx) (outcome, error) {
	if rc.data.OrderID == "" {
		return done(map[string]any{"skipped": "device came from stock"})
	}
	o, err := store.GetOrder(ctx, e.db.SQL, rc.org.ID, rc.data.OrderID)
	if err != nil {
		return outcome{}, err
	}
	if o.State == "delivered" && o.DeviceID != "" {
		d := rc.data
		d.DeviceID = o.DeviceID
		return outcome{state: StepSucceeded, data: &d, output: map[string]any{"order_id": o.ID, "device_id": o.DeviceID,
			"tracking_number": o.TrackingNumber}}, nil
	}
	if o.State == "cancelled" {
		return outcome{}, Permanent(fmt.Errorf("procurement order %s was cancelled", o.ID))
	}
	return outcome{state: StepWaiting, recheck: e.clock.Now().Add(e.cfg.Recheck),
		output: map[string]any{"order_id": o.ID, "order_state": o.State, "tracking_number": o.TrackingNumber}}, nil
}

func (e *Engine) assignDevice(ctx context.Context, rc *runCtx) (outcome, error) {
	if rc.data.DeviceID == "" {
		return outcome{}, Permanent(errors.New("no device allocated"))
	}
	dev, err := e.db.GetDevice(ctx, rc.org.ID, rc.data.DeviceID)
	if err != nil {
		return outcome{}, err
	}
	if dev.AssignedEmployeeID == rc.emp.ID {
		return done(map[string]any{"device_id": dev.ID, "serial_number": dev.SerialNumber, "state": dev.State})
	}
	dev, err = e.db.AssignDevice(ctx, rc.org.ID, dev.ID, rc.emp.ID)
	if errors.Is(err, store.ErrConflict) {
		return outcome{}, Permanent(err)
	}
	if err != nil {
		return outcome{}, err
	}
	return done(map[string]any{"device_id": dev.ID, "serial_number": dev.SerialNumber, "state": dev.State})
}

func (e *Engine) enrollDevice(ctx context.Context, rc *runCtx) (outcome, error) {
	dev, err := e.db.GetDevice(ctx, rc.org.ID, rc.data.DeviceID)
	if err != nil {
		return outcome{}, err
	}
	if e.enroller == nil {
		if _, ok := rc.taskFor("manual_enroll", dev.ID); ok {
			return e.tasksDone(rc, "enroll", map[string]any{"method": "manual"})
		}
		return outcome{state: StepWaiting, output: map[string]any{"method": "manual"}, tasks: []store.LifecycleTask{{
			Kind: "manual_enroll", SubjectID: dev.ID, Title: fmt.Sprintf("Enroll %s %s for %s", dev.Model, dev.SerialNumber, displayName(rc.emp)),
			Detail: "No enrollment provider is configured; install the Lanyard agent or enroll the device in MDM by hand."}}}, nil
	}
	if dev.Platform == domain.PlatformMacOS && domain.NormalizeVendor(dev.Vendor) == "apple" {
		err := e.enroller.AssignADEProfile(ctx, rc.org.ID, dev.SerialNumber, rc.emp.ID)
		if err == nil {
			return done(map[string]any{"method": "ade", "serial_number": dev.SerialNumber})
		}
		if !errors.Is(err, ErrNoADE) && !errors.Is(err, apps.ErrNotSupported) {
			return outcome{}, fmt.Errorf("ADE profile for %s: %w", dev.SerialNumber, err)
		}
	}
	link, err := e.enroller.EnrollmentLink(ctx, rc.org.ID, rc.emp.ID, dev.Platform)
	if errors.Is(err, apps.ErrNotSupported) {
		if _, ok := rc.taskFor("manual_enroll", dev.ID); ok {
			return e.tasksDone(rc, "enroll", map[string]any{"method": "manual"})
		}
		return outcome{state: StepWaiting, output: map[string]any{"method": "manual", "reason": err.Error()}, tasks: []store.LifecycleTask{{
			Kind: "manual_enroll", SubjectID: dev.ID, Title: fmt.Sprintf("Enroll %s %s for %s", dev.Model, dev.SerialNumber, displayName(rc.emp)),
			Detail: "No installer download is configured for " + string(dev.Platform) + "; install the Lanyard agent by hand."}}}, nil
	}
	if err != nil {
		return outcome{}, fmt.Errorf("enrollment link: %w", err)
	}
	return done(map[string]any{"method": "link", "link": link, "platform": dev.Platform, "send_to": rc.emp.HR.WorkEmail})
}

// tasksDone is the outcome of a step that only waits for its manual tasks.
func (e *Engine) tasksDone(rc *runCtx, what string, output map[string]any) (outcome, error) {
	for _, t := range rc.tasks {
		if t.State == "open" {
			return outcome{state: StepWaiting, output: output}, nil
		}
	}
	output[what] = "done by hand"
	return done(output)
}

func person(emp domain.Employee) apps.Person {
	email := emp.HR.WorkEmail
	return apps.Person{ExternalID: emp.ID, UserName: email, Email: email, GivenName: emp.HR.FirstName, FamilyName: emp.HR.LastName,
		Title: emp.HR.Title, Department: strings.Join(emp.HR.Departments, ", ")}
}

// AppResult is one app's outcome on a workflow step.
type AppResult struct {
	apps.Result
	Error string `json:"error,omitempty"`
	// Outcome: done, retrying (a transient failure), blocked (a permanent failure
	// with a manual task) or done_by_hand (a person completed that task).
	Outcome    string `json:"outcome"`
	ManualTask string `json:"manual_task,omitempty"`
	DoneBy     string `json:"done_by,omitempty"`
	Note       string `json:"note,omitempty"`
}

// taskAppAccess is the manual task kind of an app a connector could not do.
const taskAppAccess = "manual_app_access"

func (e *Engine) grantApps(ctx context.Context, rc *runCtx) (outcome, error) {
	if !rc.data.AppAccess {
		return done(map[string]any{"skipped": "the plan did not include app access when this workflow started"})
	}
	if e.apps == nil {
		return done(map[string]any{"skipped": "no app directory configured"})
	}
	rules, err := e.apps.Rules(ctx, rc.org.ID)
	if err != nil {
		return outcome{}, err
	}
	reg, _, err := e.apps.Connectors(ctx, rc.org.ID)
	if err != nil {
		return outcome{}, err
	}
	grants := apps.Evaluate(rules, apps.Subject{Departments: rc.emp.HR.Departments, Role: rc.emp.HR.Title, MemberType: string(rc.emp.HR.MemberType)})
	p := person(rc.emp)
	return e.runApps(rc, "grant", grants, func(g apps.Grant) (apps.Result, error) {
		c, err := reg.Get(g.App)
		if err != nil {
			return apps.Result{App: g.App}, Permanent(err)
		}
		if !c.Capabilities().Provision {
			return apps.Result{App: g.App}, Permanent(fmt.Errorf("the %s connector cannot create accounts: %w", g.App, apps.ErrNotSupported))
		}
		r, err := c.Provision(ctx, p, g.Groups)
		if err != nil || r.Action != "suspended" {
			return r, err
		}
		// A suspended account of someone hired (again): reactivating it is this
		// step's explicit decision, recorded as such.
		rr, err := c.Reactivate(ctx, p)
		if err == nil {
			r.Action = rr.Action
		}
		return r, err
	})
}

// runApps runs fn for every grant and decides the step from every app's result:
// a transient failure (429, 5xx, timeout) retries the step (connectors are
// idempotent; apps already done report unchanged); a permanent one (409, 400, a
// missing group, refused credentials) gets a manual task naming the app and the
// target's reason, and blocks the step, which never reports done while an app is
// not. An app whose task is open is not called again; one whose task a person
// completed counts as done by hand.
func (e *Engine) runApps(rc *runCtx, verb string, grants []apps.Grant, fn func(apps.Grant) (apps.Result, error)) (outcome, error) {
	var out []AppResult
	var tasks []store.LifecycleTask
	var transient, blocked []string
	var wait time.Duration
	prev := previousApps(rc.st.Output)
	for _, g := range grants {
		if t, ok := rc.manualTask(taskAppAccess, g.App); ok {
			ar := prev[g.App]
			ar.App, ar.ManualTask = g.App, t.ID
			if t.State == "done" {
				ar.Outcome, ar.DoneBy, ar.Note = outcomeByHand, t.CompletedBy, t.Note
			} else {
				ar.Outcome = outcomeBlocked
				blocked = append(blocked, fmt.Sprintf("%s: %s (task %s)", g.App, orDefault(ar.Error, "not done"), t.ID))
			}
			out = append(out, ar)
			continue
		}
		r, err := fn(g)
		if r.App == "" {
			r.App = g.App
		}
		if p, ok := prev[g.App]; ok && err == nil && r.Action == "unchanged" && p.Outcome == outcomeDone {
			// A retry of the step finds what an earlier run did: keep saying what that
			// was (a reactivation on a cancelled termination reads it).
			r.Action = p.Action
		}
		ar := AppResult{Result: r, Outcome: outcomeDone}
		if err != nil {
			ar.Error = err.Error()
			if retry, after := transientApp(err); retry {
				ar.Outcome = "retrying"
				transient = append(transient, g.App)
				wait = max(wait, after)
			} else {
				ar.Outcome, ar.ManualTask = outcomeBlocked, domain.NewID()
				tasks = append(tasks, store.LifecycleTask{ID: ar.ManualTask, Kind: taskAppAccess, SubjectID: g.App,
					Title:  fmt.Sprintf("%s %s access for %s by hand", titleVerb(verb), g.App, displayName(rc.emp)),
					Detail: appAdvice(verb, g.App, err)})
				blocked = append(blocked, fmt.Sprintf("%s: %s (task %s)", g.App, ar.Error, ar.ManualTask))
			}
		}
		out = append(out, ar)
	}
	o := outcome{state: StepSucceeded, output: map[string]any{"apps": out}, tasks: tasks, retryAfter: wait}
	switch {
	case len(transient) > 0:
		// Every app's result stays on the step while it retries.
		return o, fmt.Errorf("apps unavailable: %s", strings.Join(transient, ", "))
	case len(blocked) > 0:
		o.state = StepBlocked
		o.blocked = truncateText(fmt.Sprintf("app access not done on %d of %d apps: %s; see the manual tasks", len(blocked), len(grants),
			strings.Join(blocked, "; ")), 1000)
	}
	return o, nil
}

// transientApp reports whether a connector's err is worth retrying (429, 5xx, no
// answer, or a failure before the target was reached, a store error say) and the
// target's Retry-After when it sent one. Anything else the target refused (400, 409,
// credentials, a missing group) or marked Permanent needs a person.
func transientApp(err error) (bool, time.Duration) {
	var perm permanentError
	if errors.As(err, &perm) || (!apps.IsTransient(err) && isTargetError(err)) {
		return false, 0
	}
	var te *apps.TargetError
	if errors.As(err, &te) {
		return true, te.RetryAfter
	}
	return true, 0
}

// isTargetError reports whether err came from a connector talking to its target
// (anything else, a store error say, is retried as before).
func isTargetError(err error) bool {
	var te *apps.TargetError
	return errors.As(err, &te)
}

// appAdvice is a manual task's text: the app, the target's own reason and what to do.
func appAdvice(verb, app string, err error) string {
	why := "the app refused the request"
	switch {
	case errors.Is(err, apps.ErrAuth):
		why = "the app refused Lanyard's credentials (expired, revoked or missing a scope): fix the connector's credentials"
	case errors.Is(err, apps.ErrNotSupported):
		why = "the connector cannot do this"
	}
	return fmt.Sprintf("%s: %s. The app said: %v. %s the access in %s by hand and complete this task (your name and note are recorded), or fix the cause and retry the step.",
		app, why, err, titleVerb(verb), app)
}

// previousApps is what the step's last run recorded per app.
func previousApps(output []byte) map[string]AppResult {
	var o struct {
		Apps []AppResult `json:"apps"`
	}
	m := map[string]AppResult{}
	if len(output) > 0 && json.Unmarshal(output, &o) == nil {
		for _, r := range o.Apps {
			m[r.App] = r
		}
	}
	return m
}

func (e *Engine) awaitCheckIn(ctx context.Context, rc *runCtx) (outcome, error) {
	dev, err := e.db.GetDevice(ctx, rc.org.ID, rc.data.DeviceID)
	if err != nil {
		return outcome{}, err
	}
	if dev.State == domain.StateInUse {
		return done(map[string]any{"device_id": dev.ID, "state": dev.State})
	}
	return outcome{state: StepWaiting, recheck: e.clock.Now().Add(e.cfg.Recheck), output: map[string]any{"device_id": dev.ID, "state": dev.State}}, nil
}

// ---- offboarding ----

func (e *Engine) revokeApps(ctx context.Context, rc *runCtx) (outcome, error) {
	if !rc.data.AppAccess {
		return done(map[string]any{"skipped": "the plan did not include app access when this workflow started"})
	}
	if e.apps == nil {
		return done(map[string]any{"skipped": "no app directory configured"})
	}
	reg, modes, err := e.apps.Connectors(ctx, rc.org.ID)
	if err != nil {
		return outcome{}, err
	}
	var grants []apps.Grant
	for app := range reg {
		grants = append(grants, apps.Grant{App: app})
	}
	sortGrants(grants)
	granted, err := e.grantedAccounts(ctx, rc.org.ID, rc.emp.ID)
	if err != nil {
		return outcome{}, err
	}
	return e.runApps(rc, "remove", grants, func(g apps.Grant) (apps.Result, error) {
		c := reg[g.App]
		caps := c.Capabilities()
		p := person(rc.emp)
		p.AccountID = granted[g.App]
		if modes[g.App] == apps.RevokeDelete {
			if !caps.Remove {
				return apps.Result{App: g.App}, Permanent(fmt.Errorf("the %s connector cannot delete accounts: %w", g.App, apps.ErrNotSupported))
			}
			return c.Remove(ctx, p)
		}
		if !caps.Suspend {
			return apps.Result{App: g.App}, Permanent(fmt.Errorf("the %s connector cannot suspend accounts: %w", g.App, apps.ErrNotSupported))
		}
		return c.Suspend(ctx, p)
	})
}

// grantedAccounts is the account id each app gave the employee at their latest
// onboarding (its grant step's results): an account renamed in the app since is
// still found, rather than reported absent while it is active under a new name.
func (e *Engine) grantedAccounts(ctx context.Context, orgID, employeeID string) (map[string]string, error) {
	out := map[string]string{}
	ws, _, err := e.db.ListWorkflows(ctx, orgID, store.WorkflowFilter{EmployeeID: employeeID, Kind: string(KindOnboarding)}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return nil, fmt.Errorf("onboardings of %s: %w", employeeID, err)
	}
	var latest *store.Workflow
	for i := range ws {
		if latest == nil || ws[i].CreatedAt.After(latest.CreatedAt) {
			latest = &ws[i]
		}
	}
	if latest == nil {
		return out, nil
	}
	w, err := e.db.GetWorkflow(ctx, orgID, latest.ID)
	if err != nil {
		return nil, fmt.Errorf("onboarding %s: %w", latest.ID, err)
	}
	for _, st := range w.Steps {
		if st.Kind != string(StepGrantApps) {
			continue
		}
		for app, r := range previousApps(st.Output) {
			if r.AccountID != "" {
				out[app] = r.AccountID
			}
		}
	}
	return out, nil
}

// Device outcomes on a lock or wipe step (deviceResult.Outcome).
const (
	// outcomeDone: the device proved it (verified evidence, or the Mac's Acknowledged).
	outcomeDone = "done"
	// outcomeWaiting: the command is on its way (queued, sent, received, running).
	outcomeWaiting = "waiting"
	// outcomeBlocked: the command ended without being done, or no channel reaches the
	// device; a manual task says what to do.
	outcomeBlocked = "blocked"
	// outcomeByHand: a person completed the manual task, and the audit names them.
	outcomeByHand = "done_by_hand"
)

// stateNoChannel is deviceResult.State when no command could be sent.
const stateNoChannel = "no_channel"

// deviceResult is one device's outcome on a lock or wipe step.
type deviceResult struct {
	DeviceID  string `json:"device_id"`
	Serial    string `json:"serial_number"`
	CommandID string `json:"command_id,omitempty"`
	// State is the command's state (queued … done, failed, expired, canceled, simulated),
	// or no_channel when no command could reach the device.
	State   string `json:"state"`
	Channel string `json:"channel,omitempty"`
	// Reason is why the command did not end done, from the device or the server.
	Reason string `json:"reason,omitempty"`
	// Outcome is done, waiting, blocked or done_by_hand (see the outcome constants).
	Outcome    string `json:"outcome"`
	ManualTask string `json:"manual_task,omitempty"`
	// DoneBy and Note say who completed the manual task and what they wrote.
	DoneBy string `json:"done_by,omitempty"`
	Note   string `json:"note,omitempty"`
}

// deviceResults reads the per-device results of a lock or wipe step's output.
func deviceResults(output []byte) []deviceResult {
	var out struct {
		Devices []deviceResult `json:"devices"`
	}
	_ = json.Unmarshal(output, &out)
	return out.Devices
}

// heldDevices lists the devices to lock: everything still linked to the employee.
func (e *Engine) heldDevices(ctx context.Context, orgID, employeeID string) ([]domain.Device, error) {
	held, err := store.DevicesHeldBy(ctx, e.db.SQL, orgID, employeeID)
	if err != nil {
		return nil, err
	}
	var out []domain.Device
	for _, d := range held {
		if d.State != domain.StateLost {
			out = append(out, d)
		}
	}
	return out, nil
}

// manualTask returns the step's latest task of kind about subject that was not
// cancelled (a retry cancels the tasks it supersedes).
func (rc *runCtx) manualTask(kind, subject string) (store.LifecycleTask, bool) {
	var found store.LifecycleTask
	ok := false
	for _, t := range rc.tasks {
		if t.Kind == kind && t.SubjectID == subject && t.State != "cancelled" {
			found, ok = t, true
		}
	}
	return found, ok
}

// commandKey is the idempotency key of a step's command to a device: stepID:deviceID,
// plus the retry round when an admin retried the step after that device's command
// ended without being done (a new command; the old one stays as it ended).
func commandKey(d wfData, stepID, deviceID string) string {
	k := stepID + ":" + deviceID
	if n := d.Rounds[k]; n > 0 {
		k += fmt.Sprintf(":r%d", n)
	}
	return k
}

// stepOfKey is the step id an idempotency key made by commandKey belongs to.
func stepOfKey(key string) string {
	step, _, ok := strings.Cut(key, ":")
	if !ok {
		return ""
	}
	return step
}

func titleVerb(verb string) string { return strings.ToUpper(verb[:1]) + verb[1:] }

// blockedAdvice tells the admin what to do about a command that ended state.
func blockedAdvice(verb, state string) string {
	byHand := fmt.Sprintf("%s the device by hand and complete this task (your name and note are recorded), or fix the cause and retry the step", verb)
	if verb == "wipe" {
		byHand = "erase the disk by hand (for example reinstall the OS with a new disk encryption key) and complete this task (your name and note are recorded), or fix the cause and retry the step; until then the device is not cleaned or redeployed"
	}
	switch state {
	case CommandFailed:
		return "The device could not prove the " + verb + ": " + byHand + "."
	case CommandExpired:
		return "The device never reported a result before the command expired (offline, agent stopped or removed): " + byHand + "."
	case CommandCanceled:
		return "The command was canceled before the device ran it: " + byHand + "."
	case CommandSimulated:
		return "The agent runs in dry-run mode, so nothing ran on the device. A release agent never does this: reinstall the agent (a test build or a local override is in place), then retry the step, or " + byHand + "."
	}
	return byHand + "."
}

// commandDevices runs a lock or wipe over devices: queue the command (idempotent by
// key) and read its state. Only done counts: failed, expired, canceled or simulated —
// or a device no channel reaches — blocks the step with a manual task that carries the
// device's reason; sent, received and running keep waiting. The step succeeds when
// every device is done or its manual task was completed by a person.
func (e *Engine) commandDevices(ctx context.Context, rc *runCtx, verb string, devices []string,
	send func(ctx context.Context, orgID, deviceID, key string) (Command, error)) (outcome, error) {
	var results []deviceResult
	var tasks []store.LifecycleTask
	var blocked []string
	waiting := false
	taskKind := "manual_" + verb
	for _, id := range devices {
		dev, err := e.db.GetDevice(ctx, rc.org.ID, id)
		if err != nil {
			return outcome{}, err
		}
		r := deviceResult{DeviceID: id, Serial: dev.SerialNumber}
		prev := previousResult(rc.st.Output, id)
		if t, ok := rc.manualTask(taskKind, id); ok {
			// What the device last reported stays visible next to the task.
			r.CommandID, r.State, r.Channel, r.Reason = prev.CommandID, prev.State, prev.Channel, prev.Reason
			r.ManualTask = t.ID
			if t.State == "done" {
				r.Outcome, r.DoneBy, r.Note = outcomeByHand, t.CompletedBy, t.Note
			} else {
				r.Outcome = outcomeBlocked
				blocked = append(blocked, fmt.Sprintf("%s %s (task %s)", dev.SerialNumber, orDefault(r.State, "not done"), t.ID))
			}
			results = append(results, r)
			continue
		}
		var cmd Command
		err = ErrNoChannel
		if send != nil {
			cmd, err = send(ctx, rc.org.ID, id, commandKey(rc.data, rc.st.ID, id))
		}
		var detail string
		switch {
		case errors.Is(err, ErrNoChannel):
			r.State, r.Reason = stateNoChannel, "no agent and no MDM enrollment"
			detail = fmt.Sprintf("%s %s has no agent and no MDM enrollment, so Lanyard cannot %s it. %s it by hand, then complete this task (your name and note are recorded).",
				dev.Model, dev.SerialNumber, verb, titleVerb(verb))
		case err != nil:
			return outcome{state: StepWaiting, output: map[string]any{"devices": results}}, fmt.Errorf("%s %s: %w", verb, id, err)
		default:
			r.CommandID, r.State, r.Channel, r.Reason = cmd.ID, cmd.State, cmd.Channel, cmd.Reason
			if cmd.Ended() {
				reason := orDefault(cmd.Reason, "no reason given")
				detail = fmt.Sprintf("%s of %s ended %s: %s. %s (command %s)", verb, dev.SerialNumber, cmd.State, reason,
					blockedAdvice(verb, cmd.State), cmd.ID)
			}
		}
		switch {
		case detail != "":
			// The task id is chosen here so the device's output can name it.
			r.Outcome, r.ManualTask = outcomeBlocked, domain.NewID()
			tasks = append(tasks, store.LifecycleTask{ID: r.ManualTask, Kind: taskKind, SubjectID: id,
				Title:  fmt.Sprintf("%s %s (%s) of %s by hand", titleVerb(verb), dev.Model, dev.SerialNumber, displayName(rc.emp)),
				Detail: detail})
			blocked = append(blocked, fmt.Sprintf("%s %s: %s (task %s)", dev.SerialNumber, r.State, orDefault(r.Reason, "no reason given"), r.ManualTask))
		case cmd.Done():
			r.Outcome = outcomeDone
		default:
			r.Outcome = outcomeWaiting
			waiting = true
		}
		results = append(results, r)
	}
	out := outcome{output: map[string]any{"devices": results}, tasks: tasks}
	if waiting {
		out.recheck = e.clock.Now().Add(e.cfg.CommandRecheck)
	}
	switch {
	case len(blocked) > 0:
		out.state = StepBlocked
		out.blocked = truncateText(fmt.Sprintf("%s not done on %d of %d devices: %s; see the manual tasks", verb, len(blocked), len(devices),
			strings.Join(blocked, "; ")), 1000)
	case waiting:
		out.state = StepWaiting
	default:
		out.state = StepSucceeded
	}
	return out, nil
}

// previousResult is what the step's last run recorded for a device.
func previousResult(output []byte, deviceID string) deviceResult {
	for _, r := range deviceResults(output) {
		if r.DeviceID == deviceID {
			return r
		}
	}
	return deviceResult{}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func (e *Engine) lockDevices(ctx context.Context, rc *runCtx) (outcome, error) {
	d := rc.data
	if d.Devices == nil {
		held, err := e.heldDevices(ctx, rc.org.ID, rc.emp.ID)
		if err != nil {
			return outcome{}, err
		}
		d.Devices = []string{}
		for _, dev := range held {
			d.Devices = append(d.Devices, dev.ID)
		}
	}
	var lock func(context.Context, string, string, string) (Command, error)
	if e.commands != nil {
		lock = e.commands.Lock
	}
	out, err := e.commandDevices(ctx, rc, "lock", d.Devices, lock)
	out.data = &d
	return out, err
}

func (e *Engine) openRetrieval(ctx context.Context, rc *runCtx) (outcome, error) {
	d := rc.data
	type res struct {
		DeviceID    string `json:"device_id"`
		RetrievalID string `json:"retrieval_id,omitempty"`
		Skipped     string `json:"skipped,omitempty"`
	}
	var results []res
	var tasks []store.LifecycleTask
	d.Retrievals = d.Retrievals[:0]
	for _, id := range d.Devices {
		var rid, skipped string
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			open, _, err := store.ListRetrievals(ctx, tx, rc.org.ID, store.RetrievalFilter{DeviceID: id, Open: true}, store.Page{Limit: 5})
			if err != nil {
				return err
			}
			if len(open) > 0 {
				rid = open[0].ID
				return nil
			}
			dev, err := store.GetDevice(ctx, tx, rc.org.ID, id)
			if err != nil {
				return err
			}
			switch dev.State {
			case domain.StateAssigned, domain.StateInUse:
				if _, err := store.TransitionDevice(ctx, tx, rc.org.ID, id, domain.StateRetrievalReq); err != nil {
					return err
				}
			case domain.StateRetrievalReq, domain.StateInRetrieval:
			default:
				skipped = fmt.Sprintf("device is %s", dev.State)
				return nil
			}
			next := e.clock.Now().Add(e.cfg.ReminderEvery)
			r := store.Retrieval{OrgID: rc.org.ID, EmployeeID: rc.emp.ID, DeviceID: id, WorkflowID: rc.w.ID,
				ShipTo: rc.emp.HR.Address, NextReminderAt: &next}
			if err := store.InsertRetrieval(ctx, tx, &r); err != nil {
				return err
			}
			rid = r.ID
			tasks = append(tasks, store.LifecycleTask{Kind: "ship_kit", SubjectID: r.ID,
				Title: fmt.Sprintf("Send a return kit to %s for %s", displayName(rc.emp), dev.SerialNumber),
				Detail: fmt.Sprintf("Ship a box to %s and record the kit tracking number on retrieval %s.",
					formatAddress(rc.emp.HR.Address), r.ID)})
			return nil
		})
		if err != nil {
			return outcome{}, err
		}
		if rid != "" {
			d.Retrievals = append(d.Retrievals, rid)
		}
		results = append(results, res{DeviceID: id, RetrievalID: rid, Skipped: skipped})
	}
	return outcome{state: StepSucceeded, data: &d, tasks: tasks, output: map[string]any{"retrievals": results}}, nil
}

func (e *Engine) awaitReceipt(ctx context.Context, rc *runCtx) (outcome, error) {
	now := e.clock.Now()
	recheck := now.Add(e.cfg.Recheck)
	var states []map[string]any
	waiting := false
	for _, id := range rc.data.Retrievals {
		r, err := store.GetRetrieval(ctx, e.db.SQL, rc.org.ID, id)
		if err != nil {
			return outcome{}, err
		}
		if r.State != "received" && r.State != "cancelled" {
			waiting = true
			if r.NextReminderAt != nil && !r.NextReminderAt.After(now) {
				if err := e.remind(ctx, &r); err != nil {
					return outcome{}, err
				}
			}
			if r.NextReminderAt != nil && r.NextReminderAt.Before(recheck) {
				recheck = *r.NextReminderAt
			}
		}
		states = append(states, map[string]any{"retrieval_id": r.ID, "device_id": r.DeviceID, "state": r.State,
			"reminders_sent": r.RemindersSent, "return_tracking": r.ReturnTracking})
	}
	out := map[string]any{"retrievals": states}
	if waiting {
		return outcome{state: StepWaiting, recheck: recheck, output: out}, nil
	}
	return done(out)
}

// remind records a retrieval reminder (the notification itself goes out through the
// audit/outbox consumer for notifications).
func (e *Engine) remind(ctx context.Context, r *store.Retrieval) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		from := r.State
		r.RemindersSent++
		next := e.clock.Now().Add(e.cfg.ReminderEvery)
		r.NextReminderAt = &next
		if err := store.UpdateRetrieval(ctx, tx, r, from); err != nil {
			return err
		}
		if err := writeRetrievalEvent(ctx, tx, domain.EventRetrievalReminder, *r); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, r.OrgID, "retrieval.reminder", "retrieval", r.ID, nil,
			map[string]any{"employee_id": r.EmployeeID, "reminders_sent": r.RemindersSent, "state": r.State}))
	})
}

// receivedDevices lists the devices of the workflow's retrievals that came back.
func (e *Engine) receivedDevices(ctx context.Context, rc *runCtx) ([]string, error) {
	var out []string
	for _, id := range rc.data.Retrievals {
		r, err := store.GetRetrieval(ctx, e.db.SQL, rc.org.ID, id)
		if err != nil {
			return nil, err
		}
		if r.State == "received" {
			out = append(out, r.DeviceID)
		}
	}
	return out, nil
}

func (e *Engine) wipeDevices(ctx context.Context, rc *runCtx) (outcome, error) {
	devs, err := e.receivedDevices(ctx, rc)
	if err != nil {
		return outcome{}, err
	}
	var wipe func(context.Context, string, string, string) (Command, error)
	if e.commands != nil {
		wipe = e.commands.Wipe
	}
	return e.commandDevices(ctx, rc, "wipe", devs, wipe)
}

// wipeProof says how a device of this workflow is known to be wiped: its wipe command
// ended done (the device's evidence, or the Mac's Acknowledged), or a person completed
// a manual wipe task for it (on the wipe step, or on the clean step when the wipe step
// was skipped). ok is false when nothing proves it.
func (e *Engine) wipeProof(ctx context.Context, rc *runCtx, deviceID string) (string, bool, error) {
	for _, s := range rc.w.Steps {
		if s.Kind != string(StepWipeDevices) {
			continue
		}
		prev := previousResult(s.Output, deviceID)
		if prev.CommandID != "" && e.commands != nil {
			cmd, err := e.commands.CommandStatus(ctx, rc.org.ID, prev.CommandID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return "", false, err
			}
			if err == nil && cmd.Done() {
				return fmt.Sprintf("wipe command %s done on the device", cmd.ID), true, nil
			}
		}
		ts, err := store.TasksOfStep(ctx, e.db.SQL, s.ID)
		if err != nil {
			return "", false, err
		}
		for _, t := range ts {
			if t.Kind == "manual_wipe" && t.SubjectID == deviceID && t.State == "done" {
				return fmt.Sprintf("wiped by hand by %s (task %s)", t.CompletedBy, t.ID), true, nil
			}
		}
	}
	if t, ok := rc.manualTask("manual_wipe", deviceID); ok && t.State == "done" {
		return fmt.Sprintf("wiped by hand by %s (task %s)", t.CompletedBy, t.ID), true, nil
	}
	return "", false, nil
}

func (e *Engine) cleanDevices(ctx context.Context, rc *runCtx) (outcome, error) {
	devs, err := e.receivedDevices(ctx, rc)
	if err != nil {
		return outcome{}, err
	}
	var results []map[string]any
	var tasks []store.LifecycleTask
	var unwiped []string
	waiting := false
	for _, id := range devs {
		dev, err := e.db.GetDevice(ctx, rc.org.ID, id)
		if err != nil {
			return outcome{}, err
		}
		res := map[string]any{"device_id": id, "serial_number": dev.SerialNumber}
		// A device nobody proved wiped never goes on to cleaning or redeploy.
		if dev.State == domain.StateReceived {
			proof, ok, err := e.wipeProof(ctx, rc, id)
			if err != nil {
				return outcome{}, err
			}
			if !ok {
				res["state"], res["wiped"] = dev.State, false
				if t, has := rc.manualTask("manual_wipe", id); has {
					res["manual_task"] = t.ID
				} else {
					res["manual_task"] = domain.NewID()
					tasks = append(tasks, store.LifecycleTask{ID: res["manual_task"].(string), Kind: "manual_wipe", SubjectID: id,
						Title: fmt.Sprintf("Wipe %s %s by hand before it is cleaned", dev.Model, dev.SerialNumber),
						Detail: fmt.Sprintf("Nothing proves %s was wiped (the wipe step was skipped or its command did not end done). "+
							"Erase the disk by hand, then complete this task: your name and note are recorded and only then does the device go on to cleaning and redeploy.", dev.SerialNumber)})
				}
				unwiped = append(unwiped, dev.SerialNumber)
				results = append(results, res)
				continue
			}
			res["wiped"] = proof
		}
		var state domain.DeviceState
		err = e.db.InTx(ctx, func(tx *sql.Tx) error {
			dev, err := store.GetDevice(ctx, tx, rc.org.ID, id)
			if err != nil {
				return err
			}
			t, hasTask := rc.taskFor("clean_device", id)
			switch {
			case dev.State == domain.StateReceived:
				if dev, err = store.TransitionDevice(ctx, tx, rc.org.ID, id, domain.StateCleaning); err != nil {
					return err
				}
				if !hasTask {
					tasks = append(tasks, store.LifecycleTask{Kind: "clean_device", SubjectID: id,
						Title:  fmt.Sprintf("Clean %s %s", dev.Model, dev.SerialNumber),
						Detail: "Clean and check the device, then complete this task to make it ready for redeploy."})
				}
				waiting = true
			case dev.State == domain.StateCleaning && hasTask && t.State == "done":
				if dev, err = store.TransitionDevice(ctx, tx, rc.org.ID, id, domain.StateReadyForRedeploy); err != nil {
					return err
				}
			case dev.State == domain.StateCleaning:
				waiting = true
				if !hasTask {
					tasks = append(tasks, store.LifecycleTask{Kind: "clean_device", SubjectID: id,
						Title: fmt.Sprintf("Clean %s %s", dev.Model, dev.SerialNumber)})
				}
			}
			state = dev.State
			return nil
		})
		if err != nil {
			return outcome{}, err
		}
		res["state"] = state
		results = append(results, res)
	}
	out := outcome{output: map[string]any{"devices": results}, tasks: tasks}
	switch {
	case len(unwiped) > 0:
		out.state = StepBlocked
		out.blocked = truncateText(fmt.Sprintf("not proven wiped, so not cleaned: %s; see the manual tasks", strings.Join(unwiped, ", ")), 1000)
	case waiting:
		out.state = StepWaiting
	default:
		out.state = StepSucceeded
	}
	return out, nil
}

func sortGrants(g []apps.Grant) {
	for i := 1; i < len(g); i++ {
		for j := i; j > 0 && g[j].App < g[j-1].App; j-- {
			g[j], g[j-1] = g[j-1], g[j]
		}
	}
}

// writeRetrievalEvent prompts about a retrieval in the caller's transaction, so the
// prompt exists exactly when the state change it reports does.
func writeRetrievalEvent(ctx context.Context, tx *sql.Tx, typ string, r store.Retrieval) error {
	p := domain.RetrievalPayload{RetrievalID: r.ID, EmployeeID: r.EmployeeID, DeviceID: r.DeviceID,
		KitTracking: r.KitTracking, DueAt: r.NextReminderAt}
	if typ == domain.EventRetrievalReminder {
		p.Reminder = r.RemindersSent
	}
	if r.WarehouseID != "" {
		w, err := store.GetWarehouse(ctx, tx, r.OrgID, r.WarehouseID)
		if err != nil {
			return fmt.Errorf("return address of retrieval %s: %w", r.ID, err)
		}
		p.ReturnAddress = formatAddress(w.Address)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return store.WriteEvent(ctx, tx, domain.Event{OrgID: r.OrgID, Type: typ, SubjectType: "retrieval", SubjectID: r.ID, Payload: b})
}
