package agentapi

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ActionRequest is the body of POST /api/v1/devices/{id}/actions.
type ActionRequest struct {
	// Type is lock, unlock, wipe, message or collect_inventory. unlock undoes an agent
	// lock (Linux, Windows); a Mac locked through MDM is unlocked at the Mac with its PIN.
	Type string `json:"type" enum:"lock,unlock,wipe,message,collect_inventory"`
	// Params: lock {message}, message {title, body}.
	Params map[string]string `json:"params,omitempty"`
	// Confirm must equal the device's serial number for a wipe.
	Confirm string `json:"confirm,omitempty"`
	// IdempotencyKey makes retries safe (also read from the Idempotency-Key header).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// ExpiresInSeconds bounds how long the command may wait for delivery (default 72 h).
	ExpiresInSeconds int `json:"expires_in_seconds,omitempty"`
}

// RevokeRequest is the body of the revoke endpoints.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
	// RevokeAgents also revokes every agent enrolled with the secret (default true for
	// revoke, false for rotate).
	RevokeAgents *bool `json:"revoke_agents,omitempty"`
}

// SecretRequest creates an enrollment secret.
type SecretRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	MaxUses   int        `json:"max_uses,omitempty"`
}

// SecretCreated is returned once, with the plaintext.
type SecretCreated struct {
	Secret store.EnrollmentSecret `json:"secret"`
	// Plaintext is shown only in this response.
	Plaintext string `json:"plaintext"`
	// CAFingerprint is the root fingerprint agents pin (ca_fingerprint_sha256).
	CAFingerprint string `json:"ca_fingerprint_sha256"`
}

// CAView describes the agent CA.
type CAView struct {
	RootPEM     string `json:"root_pem"`
	SHA256      string `json:"sha256"`
	AgentAddr   string `json:"agent_addr"`
	EnrollAddr  string `json:"enroll_addr"`
	Provisioner string `json:"provisioner"`
}

// RevokedAgents lists the agents a revocation cut off.
type RevokedAgents struct {
	AgentIDs []string `json:"agent_ids"`
}

// Routes returns the admin API routes of the agent channel.
func (s *Server) Routes() []api.Route {
	f := domain.FeatureDeviceTracking
	tag := "Agents"
	return []api.Route{
		{Method: "POST", Path: "/api/v1/devices/{id}/actions", Summary: "Send lock, unlock, wipe, message or collect_inventory to a device (wipe needs confirm = serial; wipe and unlock need admin)",
			Tag: tag, Role: domain.RoleIT, Feature: f, Resource: "device", Request: ActionRequest{}, Response: store.DeviceCommand{}, Status: http.StatusCreated,
			Handler: s.postAction},
		{Method: "GET", Path: "/api/v1/devices/{id}/actions", Summary: "List a device's commands", Tag: tag, Role: domain.RoleViewer, Feature: f,
			Resource: "device", Query: api.PageParams(), Response: api.List[store.DeviceCommand]{}, Handler: devicePage(s, s.db.ListDeviceCommands)},
		{Method: "GET", Path: "/api/v1/device-actions/{id}", Summary: "Get one device command", Tag: tag, Role: domain.RoleViewer, Feature: f,
			Resource: "device_action", Response: store.DeviceCommand{}, Handler: s.getAction},
		{Method: "POST", Path: "/api/v1/device-actions/{id}/approve", Summary: "Approve a wipe waiting for a second admin", Tag: tag, Role: domain.RoleAdmin,
			Feature: f, Resource: "device_action", Response: store.DeviceCommand{}, Handler: s.approveAction},
		{Method: "POST", Path: "/api/v1/device-actions/{id}/cancel", Summary: "Cancel a command not yet sent", Tag: tag, Role: domain.RoleIT,
			Feature: f, Resource: "device_action", Response: store.DeviceCommand{}, Handler: s.cancelAction},
		{Method: "GET", Path: "/api/v1/devices/{id}/tracking", Summary: "Agent tracking of a device (last seen, online, review and conflict flags, inventory, posture)",
			Tag: tag, Role: domain.RoleViewer, Feature: f, Resource: "device", Response: TrackingView{}, Handler: s.getTracking},
		{Method: "GET", Path: "/api/v1/devices/{id}/recovery-keys", Summary: "Reveal a device's escrowed BitLocker recovery passwords (audited)",
			Tag: tag, Role: domain.RoleAdmin, Feature: f, Resource: "device", Response: api.List[RecoveryKeyView]{}, Reauth: true, Handler: s.getRecoveryKeys},
		{Method: "POST", Path: "/api/v1/devices/{id}/review", Summary: "Mark a device flagged for review (unknown serial, hardware-UUID identity, serial conflict) as reviewed",
			Tag: tag, Role: domain.RoleIT, Feature: f, Resource: "device", Request: ReviewRequest{}, Response: store.DeviceTracking{}, Handler: s.resolveReview},
		{Method: "GET", Path: "/api/v1/devices/{id}/inventory-history", Summary: "What changed in a device's inventory, and when", Tag: tag,
			Role: domain.RoleViewer, Feature: f, Resource: "device", Query: api.PageParams(),
			Response: api.List[store.InventoryChange]{}, Handler: devicePage(s, s.db.ListInventoryHistory)},
		{Method: "GET", Path: "/api/v1/devices/{id}/agents", Summary: "Agents linked to a device", Tag: tag, Role: domain.RoleViewer, Feature: f,
			Resource: "device", Response: api.List[store.Agent]{}, Handler: s.deviceAgents},
		{Method: "POST", Path: "/api/v1/devices/{id}/revoke-agents", Summary: "Revoke every agent certificate of a device and cut its streams",
			Tag: tag, Role: domain.RoleAdmin, Feature: f, Resource: "device", Request: RevokeRequest{}, Response: RevokedAgents{}, Handler: s.revokeDeviceAgents},
		{Method: "GET", Path: "/api/v1/enrollment-secrets", Summary: "List agent enrollment secrets (hashes only)", Tag: tag, Role: domain.RoleAdmin,
			Feature: f, Query: api.PageParams(), Response: api.List[store.EnrollmentSecret]{}, Handler: s.listSecrets},
		{Method: "POST", Path: "/api/v1/enrollment-secrets", Summary: "Create an agent enrollment secret (plaintext shown once)", Tag: tag,
			Role: domain.RoleAdmin, Feature: f, Request: SecretRequest{}, Response: SecretCreated{}, Status: http.StatusCreated, Handler: s.createSecret},
		{Method: "POST", Path: "/api/v1/enrollment-secrets/{id}/rotate", Summary: "Replace a secret with a new one (old one revoked)", Tag: tag,
			Role: domain.RoleAdmin, Feature: f, Resource: "enrollment_secret", Request: RevokeRequest{}, Response: SecretCreated{}, Status: http.StatusCreated,
			Handler: s.rotateSecret},
		{Method: "POST", Path: "/api/v1/enrollment-secrets/{id}/revoke", Summary: "Revoke a secret and (by default) the agents enrolled with it",
			Tag: tag, Role: domain.RoleAdmin, Feature: f, Resource: "enrollment_secret", Request: RevokeRequest{}, Response: store.EnrollmentSecret{},
			Handler: s.revokeSecret},
		{Method: "GET", Path: "/api/v1/agent-ca", Summary: "The agent CA root and its fingerprint", Tag: tag, Role: domain.RoleViewer, Feature: f,
			Response: CAView{}, Handler: s.getCA},
	}
}

// DeviceDetails adds the tracking view to GET /api/v1/devices/{id} under "tracking".
func (s *Server) DeviceDetails(ctx context.Context, orgID, deviceID string) (string, any, error) {
	t, err := s.trackingView(ctx, orgID, deviceID)
	if err != nil {
		return "tracking", nil, err
	}
	return "tracking", t, nil
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req ActionRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	}
	if req.Type == store.CommandWipe && !p.Role.AtLeast(domain.RoleAdmin) {
		return api.Forbidden("a wipe needs the admin role")
	}
	if req.Type == store.CommandUnlock && !p.Role.AtLeast(domain.RoleAdmin) {
		return api.Forbidden("an unlock needs the admin role")
	}
	if req.ExpiresInSeconds < 0 || req.ExpiresInSeconds > 30*24*3600 {
		return api.BadRequest("expires_in_seconds must be between 0 and 2592000")
	}
	cmd, created, err := s.Commands.Submit(r.Context(), p.Org, r.PathValue("id"), SubmitRequest{Type: req.Type, Params: req.Params,
		Confirm: req.Confirm, IdempotencyKey: req.IdempotencyKey, TTL: time.Duration(req.ExpiresInSeconds) * time.Second})
	switch {
	case errors.Is(err, ErrConfirmMismatch) && strings.TrimSpace(req.Confirm) == "":
		return api.Unprocessable(`a wipe needs "confirm": "<the device's serial number>"`)
	case errors.Is(err, ErrConfirmMismatch):
		// Typed, but not this device's serial: say so, or the admin retypes what they typed.
		return api.Unprocessable(`"confirm" does not match this device's serial number; type the serial shown on the device page`)
	case errors.Is(err, ErrUnlockOverMDM):
		return api.Conflict(err.Error())
	case err != nil:
		return err
	}
	if !created {
		if cmd.DeviceID != r.PathValue("id") || cmd.Type != req.Type {
			return api.Conflict("the idempotency key was already used for another command")
		}
		return api.JSON(w, http.StatusOK, cmd)
	}
	return api.JSON(w, http.StatusCreated, cmd)
}

// devicePage serves one page of something kept per device, once the device is known to be
// the caller's org's (another org's device is 404, not an empty page).
func devicePage[T any](s *Server, list func(ctx context.Context, orgID, deviceID string, p store.Page) ([]T, string, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := api.PrincipalFrom(r.Context())
		pg, err := api.PageFrom(r)
		if err != nil {
			return err
		}
		if _, err := s.db.GetDevice(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
			return err
		}
		items, next, err := list(r.Context(), p.OrgID, r.PathValue("id"), pg)
		if err != nil {
			return err
		}
		return api.JSON(w, http.StatusOK, api.NewList(items, next))
	}
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) error {
	c, err := s.db.GetDeviceCommand(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (s *Server) approveAction(w http.ResponseWriter, r *http.Request) error {
	c, err := s.Commands.Approve(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if errors.Is(err, ErrSelfApproval) {
		return api.Forbidden(err.Error())
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (s *Server) cancelAction(w http.ResponseWriter, r *http.Request) error {
	c, err := s.Commands.Cancel(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (s *Server) getTracking(w http.ResponseWriter, r *http.Request) error {
	t, err := s.trackingView(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, t)
}

func (s *Server) deviceAgents(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	if _, err := s.db.GetDevice(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		return err
	}
	items, err := s.db.ListAgentsForDevice(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}

func (s *Server) revokeDeviceAgents(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req RevokeRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if _, err := s.db.GetDevice(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		return err
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "revoked by " + p.Actor()
	}
	ids, err := s.RevokeDevice(r.Context(), p.OrgID, r.PathValue("id"), reason)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	return api.JSON(w, http.StatusOK, RevokedAgents{AgentIDs: ids})
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := s.db.ListEnrollmentSecrets(r.Context(), api.PrincipalFrom(r.Context()).OrgID, pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func (s *Server) mint(r *http.Request, o enrollment.Options) (SecretCreated, error) {
	plain, sec, err := enrollment.Mint(r.Context(), s.db, api.PrincipalFrom(r.Context()).OrgID, o)
	if errors.Is(err, enrollment.ErrInvalid) {
		return SecretCreated{}, api.BadRequest(err.Error())
	}
	if err != nil {
		return SecretCreated{}, err
	}
	return SecretCreated{Secret: sec, Plaintext: plain, CAFingerprint: s.ca.RootFingerprint()}, nil
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) error {
	var req SecretRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	out, err := s.mint(r, enrollment.Options{Name: req.Name, ExpiresAt: req.ExpiresAt, MaxUses: req.MaxUses})
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, out)
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req RevokeRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	old, err := s.db.GetEnrollmentSecret(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if old.RevokedAt != nil {
		return api.Conflict("the secret is already revoked")
	}
	out, err := s.mint(r, enrollment.Options{Name: old.Name, ExpiresAt: old.ExpiresAt, MaxUses: old.MaxUses})
	if err != nil {
		return err
	}
	if err := s.revokeSecretAndAgents(r.Context(), p.OrgID, old.ID, req.RevokeAgents != nil && *req.RevokeAgents); err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, out)
}

func (s *Server) revokeSecret(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req RevokeRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	all := req.RevokeAgents == nil || *req.RevokeAgents
	if err := s.revokeSecretAndAgents(r.Context(), p.OrgID, r.PathValue("id"), all); err != nil {
		return err
	}
	sec, err := s.db.GetEnrollmentSecret(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, sec)
}

// revokeSecretAndAgents revokes a secret and, with agents, the agents enrolled with it,
// cutting their streams on every replica.
func (s *Server) revokeSecretAndAgents(ctx context.Context, orgID, id string, agents bool) error {
	_, ids, err := s.db.RevokeEnrollmentSecretAgents(ctx, orgID, id, agents)
	if err != nil {
		return err
	}
	s.revokedLocally(ctx, ids)
	return nil
}

func (s *Server) getCA(w http.ResponseWriter, r *http.Request) error {
	v := CAView{RootPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Root().Raw})), SHA256: s.ca.RootFingerprint(),
		AgentAddr: s.cfg.AgentAddr, EnrollAddr: s.cfg.EnrollAddr, Provisioner: "agents"}
	return api.JSON(w, http.StatusOK, v)
}
