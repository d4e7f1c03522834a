package apple

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// API request and response bodies.
type (
	PushCertUpload struct {
		CertificatePEM string `json:"certificate_pem" maxlen:"65536" text:"multiline"`
		PrivateKeyPEM  string `json:"private_key_pem" maxlen:"65536" text:"multiline"`
	}
	EnrollLinkRequest struct {
		EmployeeID string `json:"employee_id,omitempty"`
		TTLHours   int    `json:"ttl_hours,omitempty"`
	}
	CommandRequest struct {
		// RequestType: DeviceLock, EraseDevice, RestartDevice, DeviceInformation,
		// SecurityInfo, ProfileList, InstallProfile, RemoveProfile,
		// InstallEnterpriseApplication.
		RequestType string `json:"request_type"`
		Message     string `json:"message,omitempty"`
		Identifier  string `json:"identifier,omitempty"`
		ManifestURL string `json:"manifest_url,omitempty" maxlen:"2048"`
		// PackageURL/PackageSHA256/PackageSize/BundleVersion install a .pkg (e.g. the
		// agent package from the installers) without a hosted manifest.
		PackageURL     string `json:"package_url,omitempty" maxlen:"2048"`
		PackageSHA256  string `json:"package_sha256,omitempty"`
		PackageSize    int64  `json:"package_size,omitempty"`
		BundleID       string `json:"bundle_id,omitempty"`
		BundleVersion  string `json:"bundle_version,omitempty"`
		ProfileBase64  string `json:"profile_base64,omitempty" maxlen:"1000000" text:"multiline"`
		IdempotencyKey string `json:"idempotency_key,omitempty"`
		// Confirm must be true for EraseDevice and DeviceLock.
		Confirm bool `json:"confirm,omitempty"`
	}
	CommandView struct {
		store.MDMCommand
		PushError string `json:"push_error,omitempty"`
		Existed   bool   `json:"existed,omitempty"`
	}
	CommandList struct {
		Items      []store.MDMCommand `json:"items"`
		NextCursor string             `json:"next_cursor,omitempty"`
	}
	EnrollmentList struct {
		Items      []store.MDMEnrollment `json:"items"`
		NextCursor string                `json:"next_cursor,omitempty"`
	}
	PINView struct {
		CommandID string `json:"command_id"`
		PIN       string `json:"pin"`
	}
	ADEKeypairView struct {
		CertificatePEM string `json:"certificate_pem"`
	}
	ADETokenUpload struct {
		// TokenP7M is the server token file downloaded from ABM (text).
		TokenP7M string `json:"token_p7m" maxlen:"1000000" text:"multiline"`
	}
	ADETokenView struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	ADESyncView struct {
		Devices int `json:"devices"`
	}
	ADEAssignRequest struct {
		SerialNumber string `json:"serial_number"`
		EmployeeID   string `json:"employee_id,omitempty"`
	}
	// DeviceMDM is the MDM view attached to GET /devices/{id}.
	DeviceMDM struct {
		Enrollment   store.MDMEnrollment `json:"enrollment"`
		OpenCommands []store.MDMCommand  `json:"open_commands"`
	}
)

// Routes returns the admin API of the Apple MDM (all under /api/v1/mdm, plan feature mdm).
func (s *Service) Routes() []api.Route {
	f := domain.FeatureMDM
	return []api.Route{
		{Method: "PUT", Path: "/api/v1/mdm/push-certificate", Summary: "Upload or renew the APNs push certificate (the topic must stay the same)",
			Tag: "mdm", Role: domain.RoleAdmin, Feature: f, Request: PushCertUpload{}, Response: PushCertStatus{}, Handler: s.putPushCert},
		{Method: "GET", Path: "/api/v1/mdm/push-certificate", Summary: "APNs push certificate topic and expiry, with a warning 30 days before expiry",
			Tag: "mdm", Role: domain.RoleViewer, Feature: f, Response: PushCertStatus{}, Handler: s.getPushCert},
		{Method: "POST", Path: "/api/v1/mdm/enrollment-links", Summary: "Create a per-employee Mac enrollment link",
			Tag: "mdm", Role: domain.RoleIT, Feature: f, Request: EnrollLinkRequest{}, Response: EnrollLink{}, Status: http.StatusCreated, Handler: s.postEnrollLink},
		{Method: "GET", Path: "/api/v1/mdm/enrollments", Summary: "List MDM-enrolled Macs",
			Tag: "mdm", Role: domain.RoleViewer, Feature: f, Response: EnrollmentList{}, Query: api.PageParams(), Handler: s.listEnrollments},
		{Method: "POST", Path: "/api/v1/mdm/devices/{id}/commands", Summary: "Send an MDM command to a Mac (lock and erase need confirm; erase needs admin)",
			Tag: "mdm", Role: domain.RoleIT, Feature: f, Resource: "device", Request: CommandRequest{}, Response: CommandView{}, Status: http.StatusAccepted, Handler: s.postCommand},
		{Method: "GET", Path: "/api/v1/mdm/devices/{id}/commands", Summary: "List a Mac's MDM commands and their states",
			Tag: "mdm", Role: domain.RoleViewer, Feature: f, Resource: "device", Response: CommandList{}, Query: api.PageParams(), Handler: s.listCommands},
		{Method: "GET", Path: "/api/v1/mdm/commands/{id}", Summary: "Get one MDM command",
			Tag: "mdm", Role: domain.RoleViewer, Feature: f, Resource: "mdm_command", Response: store.MDMCommand{}, Handler: s.getCommand},
		{Method: "POST", Path: "/api/v1/mdm/commands/{id}/cancel", Summary: "Cancel an MDM command that has not been answered",
			Tag: "mdm", Role: domain.RoleIT, Feature: f, Resource: "mdm_command", Response: store.MDMCommand{}, Handler: s.cancelCommand},
		{Method: "GET", Path: "/api/v1/mdm/commands/{id}/pin", Summary: "Reveal the PIN of a DeviceLock or EraseDevice (audited)",
			Tag: "mdm", Role: domain.RoleAdmin, Feature: f, Resource: "mdm_command", Response: PINView{}, Reauth: true, Handler: s.getPIN},
		{Method: "GET", Path: "/api/v1/mdm/ade", Summary: "Apple Business Manager connection: token expiry, profile, last sync",
			Tag: "mdm", Role: domain.RoleViewer, Feature: f, Response: store.MDMDEP{}, Handler: s.getADE},
		{Method: "POST", Path: "/api/v1/mdm/ade/keypair", Summary: "Create the keypair whose certificate is uploaded to Apple Business Manager",
			Tag: "mdm", Role: domain.RoleAdmin, Feature: f, Response: ADEKeypairView{}, Status: http.StatusCreated, Handler: s.postADEKeypair},
		{Method: "PUT", Path: "/api/v1/mdm/ade/token", Summary: "Upload the ABM server token (.p7m), decrypted with Lanyard's key",
			Tag: "mdm", Role: domain.RoleAdmin, Feature: f, Request: ADETokenUpload{}, Response: ADETokenView{}, Handler: s.putADEToken},
		{Method: "POST", Path: "/api/v1/mdm/ade/sync", Summary: "Sync the devices of the ABM account now",
			Tag: "mdm", Role: domain.RoleIT, Feature: f, Response: ADESyncView{}, Handler: s.postADESync},
		{Method: "POST", Path: "/api/v1/mdm/ade/assignments", Summary: "Assign the ADE profile to a serial for an employee (auto-enrollment at first boot)",
			Tag: "mdm", Role: domain.RoleIT, Feature: f, Request: ADEAssignRequest{}, Status: http.StatusNoContent, Handler: s.postADEAssign},
	}
}

func (s *Service) putPushCert(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req PushCertUpload
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	info, err := s.UploadPushCert(r.Context(), p.OrgID, p.Actor(), []byte(req.CertificatePEM), []byte(req.PrivateKeyPEM))
	switch {
	case errors.Is(err, ErrTopicChanged):
		return api.Conflict(err.Error())
	case errors.Is(err, store.ErrConflict):
		return api.Conflict(err.Error())
	case err != nil && (errors.Is(err, ErrPushCertExpired) || !isInternal(err)):
		return api.Unprocessable(err.Error())
	case err != nil:
		return err
	}
	return api.JSON(w, http.StatusOK, s.pushCertStatus(store.MDMPushCert{Topic: info.Topic, NotAfter: info.NotAfter}))
}

// isInternal tells store failures from validation failures of ParsePushCert.
func isInternal(err error) bool {
	return errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), "seal") || strings.Contains(err.Error(), "store push cert")
}

func (s *Service) getPushCert(w http.ResponseWriter, r *http.Request) error {
	c, err := s.db.MDMGetPushCert(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no APNs push certificate uploaded yet")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, s.pushCertStatus(c))
}

func (s *Service) postEnrollLink(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req EnrollLinkRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if req.TTLHours < 0 || req.TTLHours > 24*90 {
		return api.BadRequest("ttl_hours must be between 1 and 2160")
	}
	if _, err := s.db.MDMGetPushCert(r.Context(), p.OrgID); errors.Is(err, store.ErrNotFound) {
		return api.Conflict("upload the APNs push certificate before creating enrollment links")
	}
	l, err := s.CreateEnrollLink(r.Context(), p.OrgID, req.EmployeeID, p.Actor(), time.Duration(req.TTLHours)*time.Hour)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, l)
}

func page(r *http.Request) (store.Page, error) {
	p := store.Page{Cursor: r.URL.Query().Get("cursor")}
	if l := r.URL.Query().Get("limit"); l != "" {
		var n int
		if _, err := fmt.Sscanf(l, "%d", &n); err != nil || n < 1 || n > 200 {
			return p, api.BadRequest("limit must be 1..200")
		}
		p.Limit = n
	}
	return p, nil
}

func (s *Service) listEnrollments(w http.ResponseWriter, r *http.Request) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	items, next, err := s.db.MDMListEnrollments(r.Context(), api.PrincipalFrom(r.Context()).OrgID, pg)
	if err != nil {
		return err
	}
	if items == nil {
		items = []store.MDMEnrollment{}
	}
	return api.JSON(w, http.StatusOK, EnrollmentList{Items: items, NextCursor: next})
}

// deviceEnrollment resolves the Mac of an org's device, 404 otherwise.
func (s *Service) deviceEnrollment(ctx context.Context, orgID, deviceID string) (store.MDMEnrollment, error) {
	if _, err := s.db.GetDevice(ctx, orgID, deviceID); err != nil {
		return store.MDMEnrollment{}, err
	}
	e, err := s.db.MDMGetEnrollmentByDevice(ctx, orgID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return e, api.Conflict("this device is not enrolled in Apple MDM")
	}
	return e, err
}

func (s *Service) postCommand(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req CommandRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	spec := CommandSpec{RequestType: req.RequestType, Message: req.Message, Identifier: req.Identifier, ManifestURL: req.ManifestURL,
		PackageURL: req.PackageURL, PackageSHA256: req.PackageSHA256, PackageSize: req.PackageSize, BundleID: req.BundleID, BundleVersion: req.BundleVersion}
	if spec.PackageURL != "" && spec.BundleID == "" {
		spec.BundleID = AgentPackageBundleID
	}
	if req.ProfileBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(req.ProfileBase64)
		if err != nil {
			return api.BadRequest("profile_base64 is not base64")
		}
		spec.Payload = b
	}
	switch req.RequestType {
	case ReqDeviceConfigured:
		return api.BadRequest("DeviceConfigured is sent by Lanyard during ADE enrollment")
	case ReqEraseDevice:
		if !p.Role.AtLeast(domain.RoleAdmin) {
			return api.Forbidden("erasing a Mac needs the admin role")
		}
		fallthrough
	case ReqDeviceLock:
		if !req.Confirm {
			return api.BadRequest(req.RequestType+" is destructive: send \"confirm\": true").With("field", "confirm")
		}
	}
	if err := spec.Validate(); err != nil {
		return api.BadRequest(err.Error())
	}
	e, err := s.deviceEnrollment(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	res, err := s.Enqueue(r.Context(), e, spec, EnqueueOptions{IdempotencyKey: req.IdempotencyKey, Source: "admin"})
	if err != nil {
		return err
	}
	v := CommandView{MDMCommand: res.Command, Existed: res.Existed}
	if res.PushError != nil {
		v.PushError = res.PushError.Error()
	}
	return api.JSON(w, http.StatusAccepted, v)
}

func (s *Service) listCommands(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	if _, err := s.db.GetDevice(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	items, next, err := s.db.MDMListCommands(r.Context(), p.OrgID, r.PathValue("id"), pg)
	if err != nil {
		return err
	}
	if items == nil {
		items = []store.MDMCommand{}
	}
	return api.JSON(w, http.StatusOK, CommandList{Items: items, NextCursor: next})
}

func (s *Service) orgCommand(r *http.Request) (store.MDMCommand, error) {
	c, err := s.db.MDMGetCommand(r.Context(), r.PathValue("id"))
	if err != nil {
		return c, err
	}
	if c.OrgID != api.PrincipalFrom(r.Context()).OrgID {
		return c, api.NotFound("no such command")
	}
	return c, nil
}

func (s *Service) getCommand(w http.ResponseWriter, r *http.Request) error {
	c, err := s.orgCommand(r)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (s *Service) cancelCommand(w http.ResponseWriter, r *http.Request) error {
	c, err := s.db.MDMCancelCommand(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, c)
}

func (s *Service) getPIN(w http.ResponseWriter, r *http.Request) error {
	c, err := s.orgCommand(r)
	if err != nil {
		return err
	}
	if c.SecretSealed == "" {
		return api.NotFound("this command has no PIN")
	}
	pin, err := s.RevealPIN(c)
	if err != nil {
		return err
	}
	p := api.PrincipalFrom(r.Context())
	if err := store.WriteAudit(r.Context(), s.db.SQL, store.AuditFor(r.Context(), p.OrgID, "mdm.pin.revealed", "device", c.DeviceID, nil,
		map[string]any{"command_id": c.UUID, "request_type": c.RequestType, "user_id": p.UserID, "via": p.Via})); err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, PINView{CommandID: c.UUID, PIN: pin})
}

func (s *Service) getADE(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db.MDMGetDEP(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("Apple Business Manager is not connected")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, d)
}

func (s *Service) postADEKeypair(w http.ResponseWriter, r *http.Request) error {
	pemBytes, err := s.CreateADEKeypair(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, ADEKeypairView{CertificatePEM: string(pemBytes)})
}

func (s *Service) putADEToken(w http.ResponseWriter, r *http.Request) error {
	var req ADETokenUpload
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	exp, err := s.UploadADEToken(r.Context(), api.PrincipalFrom(r.Context()).OrgID, []byte(req.TokenP7M), "")
	if errors.Is(err, store.ErrNotFound) {
		return api.Conflict("create the ABM keypair first (POST /api/v1/mdm/ade/keypair)")
	}
	if err != nil {
		return api.Unprocessable(err.Error())
	}
	return api.JSON(w, http.StatusOK, ADETokenView{ExpiresAt: exp})
}

func (s *Service) postADESync(w http.ResponseWriter, r *http.Request) error {
	n, err := s.SyncADE(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return api.Conflict("Apple Business Manager is not connected")
	}
	if err != nil {
		return api.Unavailable(err.Error())
	}
	return api.JSON(w, http.StatusOK, ADESyncView{Devices: n})
}

func (s *Service) postADEAssign(w http.ResponseWriter, r *http.Request) error {
	var req ADEAssignRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if req.SerialNumber == "" {
		return api.BadRequest("serial_number is required")
	}
	err := s.AssignADEProfile(r.Context(), api.PrincipalFrom(r.Context()).OrgID, req.SerialNumber, req.EmployeeID)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return api.Unprocessable(err.Error())
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeviceDetails adds the MDM view to GET /api/v1/devices/{id} (api.DeviceDetailer).
func (s *Service) DeviceDetails(ctx context.Context, orgID, deviceID string) (string, any, error) {
	e, err := s.db.MDMGetEnrollmentByDevice(ctx, orgID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	open, err := s.db.MDMOpenCommands(ctx, e.UDID)
	if err != nil {
		return "", nil, err
	}
	if open == nil {
		open = []store.MDMCommand{}
	}
	return "apple_mdm", DeviceMDM{Enrollment: e, OpenCommands: open}, nil
}

// Mount serves the device-facing endpoints (capability hook).
func (s *Service) Mount(mux *http.ServeMux) {
	mux.Handle("/mdm/", s.handler)
	mux.Handle("/scep", s.handler)
	mux.Handle("/enroll/", s.handler)
}

// Start runs the re-push loop (capability hook).
func (s *Service) Start(ctx context.Context) error {
	defer s.Close()
	return s.Run(ctx)
}

// Warnings is the /readyz warning hook (push certificate expiry).
func (s *Service) Warnings(ctx context.Context) []string { return s.ReadyWarnings(ctx) }
