package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Keyring seals connector tokens (secrets.Keyring).
type Keyring interface {
	Sealer
	Opener
}

// WithKeys sets the keyring used to seal app connector tokens.
func WithKeys(k Keyring) Option { return func(e *Engine) { e.keys = k } }

// Routes returns the lifecycle admin API. Plan gates: procurement and asset routes need
// `hr`; workflows, tasks, retrievals and offboarding need `essentials` (automation); app
// rules and connectors need `essentials` (app_access); warehouses, intake, stock counts
// and receiving a retrieval at a warehouse need `pro` (warehousing).
func (e *Engine) Routes() []api.Route {
	wf, tk, pr, rt, wh, as, ap := "Workflows", "Tasks", "Procurement", "Retrievals", "Warehousing", "Assets", "App access"
	auto, proc, assets, wares, appAcc := domain.FeatureAutomation, domain.FeatureProcurement, domain.FeatureAssets, domain.FeatureWarehousing, domain.FeatureAppAccess
	page := api.PageParams()
	return []api.Route{
		{Method: "GET", Path: "/api/v1/workflows", Summary: "List lifecycle workflows", Tag: wf, Role: domain.RoleViewer, Feature: auto,
			Query: append([]api.Param{api.EnumParam("state", "workflow state", "scheduled", "running", "paused", "failed", "succeeded", "cancelled"),
				api.EnumParam("kind", "workflow kind", "onboarding", "offboarding"), {Name: "employee_id", Description: "employee"}}, page...),
			Response: api.List[store.Workflow]{}, Handler: e.hListWorkflows},
		{Method: "POST", Path: "/api/v1/workflows", Summary: "Start an onboarding or offboarding by hand", Tag: wf, Role: domain.RoleIT,
			Feature: auto, Request: startRequest{}, Response: store.Workflow{}, Status: http.StatusCreated, Handler: e.hStart},
		{Method: "GET", Path: "/api/v1/workflows/{id}", Summary: "Get a workflow with its steps and tasks", Tag: wf, Role: domain.RoleViewer,
			Feature: auto, Resource: "workflow", Response: WorkflowView{}, Handler: e.hGetWorkflow},
		{Method: "POST", Path: "/api/v1/workflows/{id}/pause", Summary: "Pause a workflow", Tag: wf, Role: domain.RoleIT, Feature: auto,
			Resource: "workflow", Request: reasonRequest{}, Response: WorkflowView{}, Handler: e.hPause},
		{Method: "POST", Path: "/api/v1/workflows/{id}/resume", Summary: "Resume a paused workflow", Tag: wf, Role: domain.RoleIT, Feature: auto,
			Resource: "workflow", Response: WorkflowView{}, Handler: e.hResume},
		{Method: "POST", Path: "/api/v1/workflows/{id}/cancel", Summary: "Cancel a workflow (reports what already ran)", Tag: wf,
			Role: domain.RoleIT, Feature: auto, Resource: "workflow", Request: reasonRequest{}, Response: CancelReport{}, Handler: e.hCancel},
		{Method: "POST", Path: "/api/v1/workflows/{id}/unlock", Summary: "Unlock the devices a cancelled offboarding locked (agent: unlock command; Mac: PIN instruction)",
			Tag: wf, Role: domain.RoleIT, Feature: auto, Resource: "workflow", Response: UnlockReport{}, Handler: e.hUnlock},
		{Method: "POST", Path: "/api/v1/workflows/{id}/steps/{step}/retry", Summary: "Retry a failed step", Tag: wf, Role: domain.RoleIT,
			Feature: auto, Resource: "workflow", Response: WorkflowView{}, Handler: e.hRetry},
		{Method: "POST", Path: "/api/v1/workflows/{id}/steps/{step}/skip", Summary: "Skip a step (reason required)", Tag: wf,
			Role: domain.RoleIT, Feature: auto, Resource: "workflow", Request: reasonRequest{}, Response: WorkflowView{}, Handler: e.hSkip},
		{Method: "GET", Path: "/api/v1/tasks", Summary: "List manual tasks", Tag: tk, Role: domain.RoleViewer, Feature: auto,
			Query: append([]api.Param{api.EnumParam("state", "task state", "open", "done", "cancelled"), {Name: "workflow_id", Description: "workflow"},
				{Name: "assignee", Description: "assignee"}}, page...), Response: api.List[store.LifecycleTask]{}, Handler: e.hListTasks},
		{Method: "POST", Path: "/api/v1/tasks/{id}/complete", Summary: "Complete a manual task", Tag: tk, Role: domain.RoleIT, Feature: auto,
			Resource: "task", Request: noteRequest{}, Response: store.LifecycleTask{}, Handler: e.hCompleteTask},
		{Method: "POST", Path: "/api/v1/employees/{id}/offboard", Summary: "Offboard an employee now, or preview it with dry_run", Tag: wf,
			Role: domain.RoleIT, Feature: auto, Resource: "employee", Request: offboardRequest{}, Response: DryRun{}, Handler: e.hOffboard},
		{Method: "GET", Path: "/api/v1/employees/{id}/offboard/dry-run", Summary: "Show what an offboarding would do, changing nothing", Tag: wf,
			Role: domain.RoleViewer, Feature: auto, Resource: "employee", Response: DryRun{}, Handler: e.hDryRun},

		{Method: "GET", Path: "/api/v1/procurement/orders", Summary: "List procurement orders", Tag: pr, Role: domain.RoleViewer, Feature: proc,
			Query:    append([]api.Param{api.EnumParam("state", "order state", "ordered", "shipped", "delivered")}, page...),
			Response: api.List[store.ProcurementOrder]{}, Handler: e.hListOrders},
		{Method: "POST", Path: "/api/v1/procurement/orders", Summary: "Create a procurement order", Tag: pr, Role: domain.RoleIT, Feature: proc,
			Request: OrderInput{}, Response: store.ProcurementOrder{}, Status: http.StatusCreated, Handler: e.hCreateOrder},
		{Method: "GET", Path: "/api/v1/procurement/orders/{id}", Summary: "Get a procurement order", Tag: pr, Role: domain.RoleViewer,
			Feature: proc, Resource: "procurement_order", Response: store.ProcurementOrder{}, Handler: e.hGetOrder},
		{Method: "POST", Path: "/api/v1/procurement/orders/{id}/ship", Summary: "Record an order shipped (tracking number)", Tag: pr,
			Role: domain.RoleIT, Feature: proc, Resource: "procurement_order", Request: trackingRequest{}, Response: store.ProcurementOrder{}, Handler: e.hShipOrder},
		{Method: "POST", Path: "/api/v1/procurement/orders/{id}/deliver", Summary: "Record an order delivered (serial number)", Tag: pr,
			Role: domain.RoleIT, Feature: proc, Resource: "procurement_order", Request: DeliveryInput{}, Response: store.ProcurementOrder{}, Handler: e.hDeliverOrder},

		{Method: "GET", Path: "/api/v1/retrievals", Summary: "List laptop retrievals", Tag: rt, Role: domain.RoleViewer, Feature: auto,
			Query: append([]api.Param{api.EnumParam("state", "retrieval state", "requested", "kit_sent", "in_transit", "received", "cancelled"),
				{Name: "employee_id", Description: "employee"}}, page...), Response: api.List[store.Retrieval]{}, Handler: e.hListRetrievals},
		{Method: "GET", Path: "/api/v1/retrievals/{id}", Summary: "Get a retrieval", Tag: rt, Role: domain.RoleViewer, Feature: auto,
			Resource: "retrieval", Response: store.Retrieval{}, Handler: e.hGetRetrieval},
		{Method: "POST", Path: "/api/v1/retrievals/{id}/kit-sent", Summary: "Record the return kit shipped to the employee", Tag: rt,
			Role: domain.RoleIT, Feature: auto, Resource: "retrieval", Request: trackingRequest{}, Response: store.Retrieval{}, Handler: e.hKitSent},
		{Method: "POST", Path: "/api/v1/retrievals/{id}/in-transit", Summary: "Record the box on its way back", Tag: rt, Role: domain.RoleIT,
			Feature: auto, Resource: "retrieval", Request: trackingRequest{}, Response: store.Retrieval{}, Handler: e.hInTransit},
		{Method: "POST", Path: "/api/v1/retrievals/{id}/cancel", Summary: "Cancel an open retrieval", Tag: rt, Role: domain.RoleIT,
			Feature: auto, Resource: "retrieval", Response: store.Retrieval{}, Handler: e.hCancelRetrieval},
		{Method: "POST", Path: "/api/v1/retrievals/{id}/receive", Summary: "Receive the device, at a warehouse with an intake record (pro) or at the office",
			Tag: rt, Role: domain.RoleIT, Feature: auto, Resource: "retrieval", Request: IntakeInput{}, Response: store.Retrieval{}, Handler: e.hReceive},

		{Method: "GET", Path: "/api/v1/warehouses", Summary: "List storage locations", Tag: wh, Role: domain.RoleViewer, Feature: wares,
			Response: api.List[store.Warehouse]{}, Handler: e.hListWarehouses},
		{Method: "POST", Path: "/api/v1/warehouses", Summary: "Create a storage location", Tag: wh, Role: domain.RoleAdmin, Feature: wares,
			Request: warehouseRequest{}, Response: store.Warehouse{}, Status: http.StatusCreated, Handler: e.hCreateWarehouse},
		{Method: "POST", Path: "/api/v1/warehouses/{id}/intake", Summary: "Take an unassigned device into a warehouse", Tag: wh,
			Role: domain.RoleIT, Feature: wares, Resource: "warehouse", Request: intakeRequest{}, Response: store.Intake{}, Status: http.StatusCreated,
			Handler: e.hIntake},
		{Method: "GET", Path: "/api/v1/warehouse-stock", Summary: "Stored devices per location, equipment type and state", Tag: wh,
			Role: domain.RoleViewer, Feature: wares, Response: api.List[store.StockCount]{}, Handler: e.hStock},
		{Method: "GET", Path: "/api/v1/warehouse-storage", Summary: "Stored devices per month and location (billing)", Tag: wh,
			Role: domain.RoleViewer, Feature: wares, Query: []api.Param{{Name: "from", Description: "YYYY-MM", Pattern: `^[0-9]{4}-[0-9]{2}$`}, {Name: "to", Description: "YYYY-MM (exclusive)", Pattern: `^[0-9]{4}-[0-9]{2}$`}},
			Response: api.List[MonthlyStorage]{}, Handler: e.hStorage},
		{Method: "GET", Path: "/api/v1/devices/{id}/intakes", Summary: "A device's warehouse intake records", Tag: wh, Role: domain.RoleViewer,
			Feature: wares, Resource: "device", Response: api.List[store.Intake]{}, Handler: e.hDeviceIntakes},

		{Method: "POST", Path: "/api/v1/assets/assign", Summary: "Assign an equipment type + serial to an employee", Tag: as, Role: domain.RoleIT,
			Feature: assets, Request: AssignInput{}, Response: domain.Device{}, Handler: e.hAssignAsset},
		{Method: "GET", Path: "/api/v1/assets/export", Summary: "Export devices as CSV", Tag: as, Role: domain.RoleViewer, Feature: assets,
			Handler: e.hExport},
		{Method: "POST", Path: "/api/v1/assets/import", Summary: "Import devices from CSV (all rows or none; row-level error report)", Tag: as,
			Role: domain.RoleIT, Feature: assets, Query: []api.Param{api.BoolParam("dry_run", "true to validate only")},
			Response: ImportReport{}, Handler: e.hImport},

		{Method: "GET", Path: "/api/v1/apps/connectors", Summary: "List app connectors", Tag: ap, Role: domain.RoleAdmin, Feature: appAcc,
			Response: api.List[store.AppConnector]{}, Handler: e.hListConnectors},
		{Method: "POST", Path: "/api/v1/apps/connectors", Summary: "Create or replace an app connector (kind, settings and auth checked by the kind's builder)", Tag: ap, Role: domain.RoleAdmin,
			Feature: appAcc, Request: connectorRequest{}, Response: store.AppConnector{}, Status: http.StatusCreated, Handler: e.hSaveConnector},
		{Method: "GET", Path: "/api/v1/apps/orphans", Summary: "App accounts reconciliation could not match: an active account of a terminated person (suspended again) or of nobody in HR",
			Tag: ap, Role: domain.RoleAdmin, Feature: appAcc, Query: []api.Param{{Name: "all", Description: "true: include orphans a later pass found resolved"}}, Response: api.List[store.AppOrphan]{}, Handler: e.hListOrphans},
		{Method: "POST", Path: "/api/v1/apps/reconcile", Summary: "Reconcile every app that can list its accounts now (the periodic job does it every 6 hours)",
			Tag: ap, Role: domain.RoleAdmin, Feature: appAcc, Response: ReconcileReport{}, Handler: e.hReconcileNow},
		{Method: "DELETE", Path: "/api/v1/apps/connectors/{app}", Summary: "Remove a connector", Tag: ap, Role: domain.RoleAdmin,
			Feature: appAcc, Handler: e.hDeleteConnector, Status: http.StatusNoContent},
		{Method: "GET", Path: "/api/v1/apps/rules", Summary: "List app rules", Tag: ap, Role: domain.RoleViewer, Feature: appAcc,
			Response: api.List[apps.Rule]{}, Handler: e.hListRules},
		{Method: "POST", Path: "/api/v1/apps/rules", Summary: "Add a rule mapping department / role / member type to apps", Tag: ap,
			Role: domain.RoleAdmin, Feature: appAcc, Request: apps.Rule{}, Response: apps.Rule{}, Status: http.StatusCreated, Handler: e.hCreateRule},
		{Method: "DELETE", Path: "/api/v1/apps/rules/{id}", Summary: "Remove a rule", Tag: ap, Role: domain.RoleAdmin, Feature: appAcc,
			Resource: "app_rule", Handler: e.hDeleteRule, Status: http.StatusNoContent},
		{Method: "GET", Path: "/api/v1/employees/{id}/apps", Summary: "Apps the rules give an employee", Tag: ap, Role: domain.RoleViewer,
			Feature: appAcc, Resource: "employee", Response: api.List[apps.Grant]{}, Handler: e.hEmployeeApps},
	}
}

type startRequest struct {
	Kind       Kind       `json:"kind"`
	EmployeeID string     `json:"employee_id"`
	RunAt      *time.Time `json:"run_at,omitempty"`
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

type noteRequest struct {
	Note string `json:"note" maxlen:"4000" text:"multiline"`
}

type offboardRequest struct {
	DryRun bool `json:"dry_run"`
	// Confirm must be the employee's id to start a real offboarding (it removes app
	// access and locks devices).
	Confirm string `json:"confirm,omitempty"`
}

type trackingRequest struct {
	TrackingNumber string `json:"tracking_number"`
}

type warehouseRequest struct {
	Name    string         `json:"name"`
	Address domain.Address `json:"address"`
}

type intakeRequest struct {
	DeviceID string `json:"device_id"`
	IntakeInput
}

type connectorRequest struct {
	App string `json:"app" doc:"application name used in rules"`
	// Kind picks the Builder: scim, and the native kinds the server wires.
	Kind    string `json:"kind" doc:"connector kind: scim (default), or a native kind the server wires (google, entra, okta, github, slack)"`
	BaseURL string `json:"base_url" maxlen:"2048" doc:"the provider's API base URL; required for scim"`
	// Settings is the kind's own JSON (scim: username, token_url, client_id, scopes).
	Settings json.RawMessage `json:"settings,omitempty" maxlen:"16384" doc:"the kind's own settings (scim: username for basic auth; token_url, client_id, scopes for oauth)"`
	Auth     string          `json:"auth_kind,omitempty" doc:"what token is: bearer (default), basic or oauth" enum:"bearer,basic,oauth"`
	// Token is the secret: bearer token, basic password or OAuth client secret. Sealed at rest.
	Token      string `json:"token" maxlen:"8192" doc:"the secret (bearer token, basic password or OAuth client secret); sealed at rest, never returned"`
	RevokeMode string `json:"revoke_mode" doc:"deactivate (suspend, default) or delete"`
}

// specValidator builds a connector from a configuration to refuse a bad one on save
// (StoreAppDirectory implements it with the server's Builders).
type specValidator interface {
	Validate(ctx context.Context, s apps.Spec) error
}

// WorkflowView is a workflow with its tasks.
type WorkflowView struct {
	store.Workflow
	Tasks []store.LifecycleTask `json:"tasks"`
}

func orgOf(r *http.Request) string { return api.PrincipalFrom(r.Context()).OrgID }

func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return api.Decode(r, v)
}

func (e *Engine) view(r *http.Request, id string) (WorkflowView, error) {
	w, err := e.db.GetWorkflow(r.Context(), orgOf(r), id)
	if err != nil {
		return WorkflowView{}, err
	}
	ts, _, err := e.db.ListTasks(r.Context(), orgOf(r), store.TaskFilter{WorkflowID: id}, store.Page{Limit: store.MaxLimit})
	if ts == nil {
		ts = []store.LifecycleTask{}
	}
	return WorkflowView{Workflow: w, Tasks: ts}, err
}

func (e *Engine) writeView(w http.ResponseWriter, r *http.Request, id string) error {
	v, err := e.view(r, id)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, v)
}

func (e *Engine) hListWorkflows(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	items, next, err := e.db.ListWorkflows(r.Context(), orgOf(r), store.WorkflowFilter{State: q.Get("state"), Kind: q.Get("kind"),
		EmployeeID: q.Get("employee_id")}, pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (e *Engine) hStart(w http.ResponseWriter, r *http.Request) error {
	var req startRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if req.Kind != KindOnboarding && req.Kind != KindOffboarding {
		return api.Unprocessable("kind must be onboarding or offboarding")
	}
	o := StartOptions{Kind: req.Kind, EmployeeID: req.EmployeeID, Reason: "started by " + domain.ActorFrom(r.Context()).ID}
	if req.RunAt != nil {
		o.RunAt = *req.RunAt
	}
	wf, err := e.StartWorkflow(r.Context(), orgOf(r), o)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, wf)
}

func (e *Engine) hGetWorkflow(w http.ResponseWriter, r *http.Request) error {
	return e.writeView(w, r, r.PathValue("id"))
}

func (e *Engine) hPause(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	if err := e.Pause(r.Context(), orgOf(r), r.PathValue("id"), req.Reason); err != nil {
		return err
	}
	return e.writeView(w, r, r.PathValue("id"))
}

func (e *Engine) hResume(w http.ResponseWriter, r *http.Request) error {
	if err := e.Resume(r.Context(), orgOf(r), r.PathValue("id")); err != nil {
		return err
	}
	return e.writeView(w, r, r.PathValue("id"))
}

func (e *Engine) hCancel(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	rep, err := e.Cancel(r.Context(), orgOf(r), r.PathValue("id"), req.Reason)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rep)
}

func (e *Engine) hUnlock(w http.ResponseWriter, r *http.Request) error {
	rep, err := e.UnlockDevices(r.Context(), orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rep)
}

func (e *Engine) hRetry(w http.ResponseWriter, r *http.Request) error {
	if err := e.Retry(r.Context(), orgOf(r), r.PathValue("id"), r.PathValue("step")); err != nil {
		return err
	}
	return e.writeView(w, r, r.PathValue("id"))
}

func (e *Engine) hSkip(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return api.Unprocessable("a reason is required to skip a step")
	}
	if err := e.Skip(r.Context(), orgOf(r), r.PathValue("id"), r.PathValue("step"), req.Reason); err != nil {
		return err
	}
	return e.writeView(w, r, r.PathValue("id"))
}

func (e *Engine) hListTasks(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	items, next, err := e.db.ListTasks(r.Context(), orgOf(r), store.TaskFilter{State: q.Get("state"), WorkflowID: q.Get("workflow_id"),
		Assignee: q.Get("assignee")}, pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (e *Engine) hCompleteTask(w http.ResponseWriter, r *http.Request) error {
	var req noteRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	t, err := e.CompleteTask(r.Context(), orgOf(r), r.PathValue("id"), req.Note)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, t)
}

func (e *Engine) hDryRun(w http.ResponseWriter, r *http.Request) error {
	dr, err := e.DryRunOffboarding(r.Context(), orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, dr)
}

func (e *Engine) hOffboard(w http.ResponseWriter, r *http.Request) error {
	var req offboardRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	// A real offboarding answers with the plan too, without asking the apps first.
	dr, err := e.dryRun(r.Context(), orgOf(r), r.PathValue("id"), req.DryRun)
	if err != nil || req.DryRun {
		if err != nil {
			return err
		}
		return api.JSON(w, http.StatusOK, dr)
	}
	if req.Confirm != r.PathValue("id") {
		return api.Unprocessable("offboarding removes app access and locks every device: set confirm to the employee id, or dry_run to preview")
	}
	wf, err := e.StartWorkflow(r.Context(), orgOf(r), StartOptions{Kind: KindOffboarding, EmployeeID: r.PathValue("id"),
		Reason: "offboarded by " + domain.ActorFrom(r.Context()).ID})
	if err != nil {
		return err
	}
	dr.Existing = &wf
	return api.JSON(w, http.StatusOK, dr)
}

func (e *Engine) hListOrders(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := e.db.ListOrders(r.Context(), orgOf(r), r.URL.Query().Get("state"), pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (e *Engine) hCreateOrder(w http.ResponseWriter, r *http.Request) error {
	var req OrderInput
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	o, err := e.CreateOrder(r.Context(), orgOf(r), req)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, o)
}

func (e *Engine) hGetOrder(w http.ResponseWriter, r *http.Request) error {
	o, err := store.GetOrder(r.Context(), e.db.SQL, orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, o)
}

func (e *Engine) hShipOrder(w http.ResponseWriter, r *http.Request) error {
	var req trackingRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	o, err := e.ShipOrder(r.Context(), orgOf(r), r.PathValue("id"), req.TrackingNumber)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, o)
}

func (e *Engine) hDeliverOrder(w http.ResponseWriter, r *http.Request) error {
	var req DeliveryInput
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	o, err := e.DeliverOrder(r.Context(), orgOf(r), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, o)
}

func (e *Engine) hListRetrievals(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	items, next, err := store.ListRetrievals(r.Context(), e.db.SQL, orgOf(r), store.RetrievalFilter{State: q.Get("state"),
		EmployeeID: q.Get("employee_id")}, pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (e *Engine) hGetRetrieval(w http.ResponseWriter, r *http.Request) error {
	rt, err := store.GetRetrieval(r.Context(), e.db.SQL, orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rt)
}

func (e *Engine) hKitSent(w http.ResponseWriter, r *http.Request) error {
	var req trackingRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	rt, err := e.KitSent(r.Context(), orgOf(r), r.PathValue("id"), req.TrackingNumber)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rt)
}

func (e *Engine) hInTransit(w http.ResponseWriter, r *http.Request) error {
	var req trackingRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	rt, err := e.InTransit(r.Context(), orgOf(r), r.PathValue("id"), req.TrackingNumber)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rt)
}

func (e *Engine) hCancelRetrieval(w http.ResponseWriter, r *http.Request) error {
	rt, err := e.CancelRetrieval(r.Context(), orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rt)
}

func refused(err error) error {
	var ref *IntakeRefusedError
	if errors.As(err, &ref) {
		return api.Unprocessable(ref.Error()).With("reasons", ref.Reasons).With("intake_id", ref.Intake.ID)
	}
	return err
}

func (e *Engine) hReceive(w http.ResponseWriter, r *http.Request) error {
	var req IntakeInput
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	if p := api.PrincipalFrom(r.Context()); req.WarehouseID != "" && !p.Org.Plan.Allows(domain.FeatureWarehousing) {
		return api.PlanRequired(domain.FeatureWarehousing, p.Org.Plan)
	}
	rt, err := e.Receive(r.Context(), orgOf(r), r.PathValue("id"), req)
	if err != nil {
		return refused(err)
	}
	return api.JSON(w, http.StatusOK, rt)
}

func (e *Engine) hListWarehouses(w http.ResponseWriter, r *http.Request) error {
	items, err := e.db.ListWarehouses(r.Context(), orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hCreateWarehouse(w http.ResponseWriter, r *http.Request) error {
	var req warehouseRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" {
		return api.Unprocessable("name is required")
	}
	wh := store.Warehouse{OrgID: orgOf(r), Name: strings.TrimSpace(req.Name), Address: req.Address}
	if err := e.db.InsertWarehouse(r.Context(), &wh); err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, wh)
}

func (e *Engine) hIntake(w http.ResponseWriter, r *http.Request) error {
	var req intakeRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	req.IntakeInput.WarehouseID = r.PathValue("id")
	in, err := e.IntakeDevice(r.Context(), orgOf(r), req.DeviceID, req.IntakeInput)
	if err != nil {
		return refused(err)
	}
	return api.JSON(w, http.StatusCreated, in)
}

func (e *Engine) hStock(w http.ResponseWriter, r *http.Request) error {
	items, err := e.db.StockCounts(r.Context(), orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hStorage(w http.ResponseWriter, r *http.Request) error {
	parse := func(name string, def time.Time) (time.Time, error) {
		s := r.URL.Query().Get(name)
		if s == "" {
			return def, nil
		}
		t, err := time.Parse("2006-01", s)
		if err != nil {
			return t, api.BadRequest(name + " must be YYYY-MM")
		}
		return t, nil
	}
	now := e.clock.Now()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	from, err := parse("from", thisMonth.AddDate(0, -11, 0))
	if err != nil {
		return err
	}
	to, err := parse("to", thisMonth.AddDate(0, 1, 0))
	if err != nil {
		return err
	}
	items, err := e.StorageByMonth(r.Context(), orgOf(r), from, to)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hDeviceIntakes(w http.ResponseWriter, r *http.Request) error {
	if _, err := e.db.GetDevice(r.Context(), orgOf(r), r.PathValue("id")); err != nil {
		return err
	}
	items, err := e.db.ListIntakes(r.Context(), orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hAssignAsset(w http.ResponseWriter, r *http.Request) error {
	var req AssignInput
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if _, err := e.db.GetEmployee(r.Context(), orgOf(r), req.EmployeeID); err != nil {
		return err
	}
	d, err := e.AssignAsset(r.Context(), orgOf(r), req)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, d)
}

func (e *Engine) hExport(w http.ResponseWriter, r *http.Request) error {
	var buf bytes.Buffer
	if err := e.ExportDevicesCSV(r.Context(), orgOf(r), &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="devices.csv"`)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

func (e *Engine) hImport(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20+1))
	if err != nil {
		return api.BadRequest("cannot read body")
	}
	if len(body) > 8<<20 {
		return api.BadRequest("CSV larger than 8 MiB")
	}
	rep, err := e.ImportDevicesCSV(r.Context(), orgOf(r), bytes.NewReader(body), r.URL.Query().Get("dry_run") == "true")
	if err != nil {
		return err
	}
	status := http.StatusOK
	if len(rep.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return api.JSON(w, status, rep)
}

func (e *Engine) hListConnectors(w http.ResponseWriter, r *http.Request) error {
	items, err := e.db.ListAppConnectors(r.Context(), orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (e *Engine) hSaveConnector(w http.ResponseWriter, r *http.Request) error {
	var req connectorRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	req.App = strings.TrimSpace(req.App)
	if req.App == "" {
		return api.Unprocessable("app is required").With("field", "app")
	}
	if req.Kind == "" {
		req.Kind = "scim"
	}
	if req.Auth == "" {
		req.Auth = apps.AuthBearer
	}
	settings := "{}"
	if len(req.Settings) > 0 && string(req.Settings) != "null" {
		var obj map[string]any
		if json.Unmarshal(req.Settings, &obj) != nil {
			return api.Unprocessable("settings must be a JSON object").With("field", "settings")
		}
		settings = string(req.Settings)
	}
	// Build it once: a config the kind's Builder refuses is refused here, naming the
	// field, rather than at the first offboarding.
	v, ok := e.apps.(specValidator)
	if !ok {
		return api.Unavailable("no connector builders configured")
	}
	spec := apps.Spec{App: req.App, Kind: req.Kind, BaseURL: req.BaseURL, Settings: json.RawMessage(settings), Auth: req.Auth, Secret: []byte(req.Token)}
	if err := v.Validate(r.Context(), spec); err != nil {
		var fe *apps.FieldError
		if errors.As(err, &fe) {
			return api.Unprocessable(err.Error()).With("field", fe.Field)
		}
		if errors.Is(err, ErrUnknownKind) {
			return api.Unprocessable(err.Error()).With("field", "kind")
		}
		return api.Unprocessable(err.Error())
	}
	if req.RevokeMode == "" {
		req.RevokeMode = string(apps.RevokeDeactivate)
	}
	if req.RevokeMode != string(apps.RevokeDeactivate) && req.RevokeMode != string(apps.RevokeDelete) {
		return api.Unprocessable("revoke_mode must be deactivate or delete")
	}
	c := store.AppConnector{OrgID: orgOf(r), App: req.App, Kind: req.Kind, BaseURL: req.BaseURL, RevokeMode: req.RevokeMode,
		Settings: settings, AuthKind: req.Auth}
	if req.Token != "" {
		if e.keys == nil {
			return api.Unavailable("no keyring configured to store the token")
		}
		sealed, err := e.keys.Seal([]byte(req.Token), TokenAAD(c.OrgID, c.App))
		if err != nil {
			return err
		}
		c.TokenSealed = sealed
	}
	if err := e.db.UpsertAppConnector(r.Context(), &c); err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, c)
}

func (e *Engine) hDeleteConnector(w http.ResponseWriter, r *http.Request) error {
	if err := e.db.DeleteAppConnector(r.Context(), orgOf(r), r.PathValue("app")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) hListRules(w http.ResponseWriter, r *http.Request) error {
	rules, err := StoreAppDirectory{DB: e.db}.Rules(r.Context(), orgOf(r))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(rules, ""))
}

func (e *Engine) hCreateRule(w http.ResponseWriter, r *http.Request) error {
	var req apps.Rule
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return api.Unprocessable(err.Error())
	}
	b, _ := json.Marshal(req.Apps)
	row := store.AppRule{OrgID: orgOf(r), Department: req.Department, Role: req.Role, MemberType: req.MemberType, Apps: string(b)}
	if err := e.db.InsertAppRule(r.Context(), &row); err != nil {
		return err
	}
	req.ID = row.ID
	return api.JSON(w, http.StatusCreated, req)
}

func (e *Engine) hDeleteRule(w http.ResponseWriter, r *http.Request) error {
	if err := e.db.DeleteAppRule(r.Context(), orgOf(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) hEmployeeApps(w http.ResponseWriter, r *http.Request) error {
	emp, err := e.db.GetEmployee(r.Context(), orgOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	rules, err := StoreAppDirectory{DB: e.db}.Rules(r.Context(), orgOf(r))
	if err != nil {
		return err
	}
	g := apps.Evaluate(rules, apps.Subject{Departments: emp.HR.Departments, Role: emp.HR.Title, MemberType: string(emp.HR.MemberType)})
	return api.JSON(w, http.StatusOK, api.NewList(g, ""))
}
