package apple

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/plist"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// cmdParams is what we keep to re-render a command (never the PIN: that is sealed).
type cmdParams struct {
	Message       string `json:"message,omitempty"`
	Identifier    string `json:"identifier,omitempty"`
	ManifestURL   string `json:"manifest_url,omitempty"`
	PackageURL    string `json:"package_url,omitempty"`
	PackageSHA256 string `json:"package_sha256,omitempty"`
	PackageSize   int64  `json:"package_size,omitempty"`
	BundleID      string `json:"bundle_id,omitempty"`
	BundleVersion string `json:"bundle_version,omitempty"`
	// Baseline names the baseline profile an InstallProfile installs (re-rendered on
	// re-issue); Payload holds any other profile.
	Baseline string `json:"baseline,omitempty"`
	Payload  []byte `json:"payload,omitempty"`
}

// EnqueueOptions qualify one command.
type EnqueueOptions struct {
	IdempotencyKey string
	Source         string // admin (default), baseline, enroll, system
	// NoPush queues without an APNs push (the Mac is online in this very request).
	NoPush bool
	// ID reuses an existing id (a device_commands row); a new UUID otherwise.
	ID string
	// ExpiresAt overrides the command TTL.
	ExpiresAt time.Time
}

// EnqueueResult is the command plus the outcome of the push that announced it.
type EnqueueResult struct {
	Command store.MDMCommand
	// Existed is true when the idempotency key matched an earlier command.
	Existed bool
	// PushError is set when the push failed; the command stays queued and the re-push
	// loop keeps trying (or the admin renews the push certificate).
	PushError error
}

func pinAAD(commandID string) string { return "mdm:command:" + commandID + ":pin" }

// Enqueue records a command's intent and hands it to nanomdm, then pushes the Mac.
func (s *Service) Enqueue(ctx context.Context, e store.MDMEnrollment, spec CommandSpec, opt EnqueueOptions) (EnqueueResult, error) {
	if err := spec.Validate(); err != nil {
		return EnqueueResult{}, err
	}
	if opt.Source == "" {
		opt.Source = "admin"
	}
	// Lanyard generates the PIN (Macs without Apple silicon or T2 need one to unlock or
	// after an erase) and escrows it sealed; it is never chosen by the caller's client.
	if (spec.RequestType == ReqDeviceLock || spec.RequestType == ReqEraseDevice) && spec.PIN == "" {
		pin, err := GeneratePIN()
		if err != nil {
			return EnqueueResult{}, err
		}
		spec.PIN = pin
	}
	id := opt.ID
	if id == "" {
		id = uuid.NewString()
	}
	c := store.MDMCommand{
		UUID: id, OrgID: e.OrgID, DeviceID: e.DeviceID, UDID: e.UDID, RequestType: spec.RequestType,
		Source: opt.Source, IdempotencyKey: opt.IdempotencyKey,
		ExpiresAt: s.cfg.Now().Add(s.cfg.CommandTTL),
	}
	if !opt.ExpiresAt.IsZero() {
		c.ExpiresAt = opt.ExpiresAt
	}
	p := cmdParams{Message: spec.Message, Identifier: spec.Identifier, ManifestURL: spec.ManifestURL, PackageURL: spec.PackageURL,
		PackageSHA256: spec.PackageSHA256, PackageSize: spec.PackageSize, BundleID: spec.BundleID, BundleVersion: spec.BundleVersion}
	if spec.RequestType == ReqInstallProfile {
		if b, ok := baselineRef(spec.Payload); ok {
			p.Baseline = b
		} else {
			p.Payload = spec.Payload
		}
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return EnqueueResult{}, err
	}
	c.Params = string(pj)
	if spec.PIN != "" {
		if c.SecretSealed, err = s.keys.Seal([]byte(spec.PIN), pinAAD(id)); err != nil {
			return EnqueueResult{}, fmt.Errorf("seal PIN: %w", err)
		}
	}
	existed, err := s.db.MDMInsertCommand(ctx, &c, opt.Source == "admin")
	if err != nil {
		return EnqueueResult{}, err
	}
	res := EnqueueResult{Command: c, Existed: existed}
	if existed {
		return res, nil
	}
	if err := s.queue(ctx, c.UDID, c.WireUUID, spec); err != nil {
		_ = s.db.MDMFailCommand(ctx, c.UUID, "could not queue: "+err.Error())
		c.State, c.Error = store.MDMCmdFailed, "could not queue: "+err.Error()
		s.syncDeviceCommand(ctx, c)
		return res, err
	}
	if !opt.NoPush {
		res.PushError = s.PushNow(ctx, []store.MDMEnrollment{e})[e.UDID]
	}
	return res, nil
}

// queue renders the command under wireUUID and puts it on nanomdm's queue.
func (s *Service) queue(ctx context.Context, udid, wireUUID string, spec CommandSpec) error {
	if spec.RequestType == ReqInstallProfile {
		if name, ok := baselineRef(spec.Payload); ok {
			b, err := s.baselineProfile(ctx, udid, name)
			if err != nil {
				return err
			}
			spec.Payload = b
		}
	}
	raw, err := BuildCommand(wireUUID, spec)
	if err != nil {
		return err
	}
	cmd, err := mdm.DecodeCommand(raw)
	if err != nil {
		return err
	}
	if _, err := s.nano.EnqueueCommand(ctx, []string{udid}, cmd); err != nil {
		return fmt.Errorf("nanomdm enqueue: %w", err)
	}
	return nil
}

// specOf rebuilds a command's spec from our intent (for re-issue).
func (s *Service) specOf(c store.MDMCommand) (CommandSpec, error) {
	var p cmdParams
	if err := json.Unmarshal([]byte(c.Params), &p); err != nil {
		return CommandSpec{}, fmt.Errorf("command %s params: %w", c.UUID, err)
	}
	spec := CommandSpec{RequestType: c.RequestType, Message: p.Message, Identifier: p.Identifier, ManifestURL: p.ManifestURL, Payload: p.Payload,
		PackageURL: p.PackageURL, PackageSHA256: p.PackageSHA256, PackageSize: p.PackageSize, BundleID: p.BundleID, BundleVersion: p.BundleVersion}
	if p.Baseline != "" {
		spec.Payload = baselineMarker(p.Baseline)
	}
	if c.SecretSealed != "" {
		pin, err := s.keys.Open(c.SecretSealed, pinAAD(c.UUID))
		if err != nil {
			return spec, fmt.Errorf("open PIN of %s: %w", c.UUID, err)
		}
		spec.PIN = string(pin)
	}
	return spec, nil
}

// RevealPIN returns the PIN of a DeviceLock or EraseDevice command.
func (s *Service) RevealPIN(c store.MDMCommand) (string, error) {
	if c.SecretSealed == "" {
		return "", errors.New("command has no PIN")
	}
	pin, err := s.keys.Open(c.SecretSealed, pinAAD(c.UUID))
	return string(pin), err
}

// onEnrolled runs once per (re-)enrollment, after the first TokenUpdate: it re-issues
// open commands that the Authenticate wiped from nanomdm's queue (a locked Mac that
// re-enrolls gets its lock again, with the same PIN), queues inventory, security info,
// the org baseline and a ProfileList, and pushes.
func (s *Service) onEnrolled(ctx context.Context, e store.MDMEnrollment, awaitingConfig bool) {
	open, err := s.db.MDMOpenCommands(ctx, e.UDID)
	if err != nil {
		s.log.Error("list open commands", "udid", e.UDID, "err", err)
	}
	for _, c := range open {
		spec, err := s.specOf(c)
		if err != nil {
			s.log.Error("re-issue command", "command_id", c.UUID, "err", err)
			continue
		}
		wire := uuid.NewString()
		if err := s.db.MDMMarkReissued(ctx, c.UUID, wire); err != nil {
			s.log.Error("re-issue command", "command_id", c.UUID, "err", err)
			continue
		}
		if err := s.queue(ctx, e.UDID, wire, spec); err != nil {
			s.log.Error("re-issue command", "command_id", c.UUID, "err", err)
			continue
		}
		s.log.Info("re-issued command after re-enrollment", "command_id", c.UUID, "request_type", c.RequestType, "udid", e.UDID)
	}
	initial := []CommandSpec{{RequestType: ReqDeviceInformation}, {RequestType: ReqSecurityInfo}}
	base, err := s.baseline(ctx, e.OrgID)
	if err != nil {
		s.log.Error("render baseline", "org_id", e.OrgID, "err", err)
	}
	for _, p := range base {
		initial = append(initial, CommandSpec{RequestType: ReqInstallProfile, Payload: baselineMarker(p.Identifier)})
	}
	initial = append(initial, CommandSpec{RequestType: ReqProfileList})
	if s.cfg.AgentPackage != nil {
		pkg, err := s.cfg.AgentPackage(ctx, e.OrgID)
		switch {
		case err != nil:
			s.log.Warn("agent package for MDM install", "org_id", e.OrgID, "err", err)
		case pkg != nil:
			initial = append(initial, InstallAgentSpec(pkg.URL, pkg.SHA256, pkg.Size, pkg.Version))
		}
	}
	if awaitingConfig {
		initial = append(initial, CommandSpec{RequestType: ReqDeviceConfigured})
	}
	for _, spec := range initial {
		src := "enroll"
		if spec.RequestType == ReqInstallProfile {
			src = "baseline"
		}
		if _, err := s.Enqueue(ctx, e, spec, EnqueueOptions{Source: src, NoPush: true}); err != nil {
			s.log.Error("queue enrollment command", "udid", e.UDID, "request_type", spec.RequestType, "err", err)
		}
	}
	s.markProfilesChecked(e.UDID)
	go func() {
		// Push after the TokenUpdate answer is on its way; the Mac then polls.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s.PushNow(pctx, []store.MDMEnrollment{e})
	}()
}

// handleResult records a Mac's answer in our intent table and applies its payload.
func (s *Service) handleResult(ctx context.Context, udid string, res *mdm.CommandResults) error {
	c, err := s.db.MDMApplyResult(ctx, res.CommandUUID, store.MDMCommandResult{Status: res.Status, Error: errorChainText(res.ErrorChain)})
	if errors.Is(err, store.ErrNotFound) {
		// Not ours (e.g. queued through nanomdm directly) or long gone: nanomdm handles it.
		s.log.Info("result for a command Lanyard does not know", "udid", udid, "command_uuid", res.CommandUUID, "status", res.Status)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record command result: %w", err)
	}
	s.syncDeviceCommand(ctx, c)
	if res.Status != "Acknowledged" {
		if res.Status != "NotNow" {
			s.log.Warn("command failed on the Mac", "udid", udid, "request_type", c.RequestType, "error", c.Error)
		}
		return nil
	}
	switch c.RequestType {
	case ReqDeviceInformation:
		var r DeviceInfoResult
		if err := plist.Unmarshal(res.Raw, &r); err != nil {
			s.log.Warn("malformed DeviceInformation answer", "udid", udid, "err", err)
			return nil
		}
		q := r.QueryResponses
		model := q.ModelName
		if model == "" {
			model = q.ProductName
		}
		return s.db.MDMUpdateInventory(ctx, udid, store.MDMInventory{SerialNumber: q.SerialNumber, Model: model, OSVersion: q.OSVersion, DeviceName: q.DeviceName})
	case ReqSecurityInfo:
		var r SecurityInfoResult
		if err := plist.Unmarshal(res.Raw, &r); err != nil {
			s.log.Warn("malformed SecurityInfo answer", "udid", udid, "err", err)
			return nil
		}
		si := r.SecurityInfo
		b, _ := json.Marshal(Posture{FileVault: si.FDEEnabled, SIP: si.SystemIntegrityProtectionEnabled, Firewall: si.FirewallSettings.FirewallEnabled})
		s.touchMu.Lock()
		same := s.posture[udid] == string(b)
		s.touchMu.Unlock()
		if same {
			return nil // unchanged since this replica last wrote it
		}
		if err := s.db.MDMSetPosture(ctx, udid, string(b)); err != nil {
			return err
		}
		s.touchMu.Lock()
		s.posture[udid] = string(b)
		s.touchMu.Unlock()
		return nil
	case ReqProfileList:
		var r ProfileListResult
		if err := plist.Unmarshal(res.Raw, &r); err != nil {
			s.log.Warn("malformed ProfileList answer", "udid", udid, "err", err)
			return nil
		}
		return s.repairDrift(ctx, c, &r)
	case ReqInstallProfile:
		return s.afterBaselineInstall(ctx, c)
	}
	return nil
}

// repairDrift compares a ProfileList with the baseline, records the drift and queues an
// InstallProfile for every missing or outdated baseline profile.
func (s *Service) repairDrift(ctx context.Context, c store.MDMCommand, list *ProfileListResult) error {
	base, err := s.baseline(ctx, c.OrgID)
	if err != nil {
		return err
	}
	drift := CompareProfiles(base, list)
	if drift == nil {
		drift = []Drift{}
	}
	dj, _ := json.Marshal(drift)
	if _, err := s.db.MDMSetDrift(ctx, c.UDID, string(dj)); err != nil {
		return err
	}
	if len(drift) == 0 {
		return nil
	}
	e, err := s.db.MDMGetEnrollment(ctx, c.UDID)
	if err != nil {
		return err
	}
	open, err := s.db.MDMOpenCommands(ctx, c.UDID)
	if err != nil {
		return err
	}
	pending := map[string]bool{}
	for _, oc := range open {
		if oc.RequestType == ReqInstallProfile {
			var p cmdParams
			_ = json.Unmarshal([]byte(oc.Params), &p)
			pending[p.Baseline] = true
		}
	}
	for _, d := range drift {
		if pending[d.Identifier] {
			continue
		}
		s.log.Info("baseline drift: repairing", "udid", c.UDID, "identifier", d.Identifier, "reason", d.Reason)
		if _, err := s.Enqueue(ctx, e, CommandSpec{RequestType: ReqInstallProfile, Payload: baselineMarker(d.Identifier)},
			EnqueueOptions{Source: "baseline", NoPush: true}); err != nil {
			return err
		}
	}
	return nil
}

// afterBaselineInstall verifies a repair: when the last open baseline install of a Mac is
// acknowledged, a ProfileList confirms the result (and clears the drift report).
func (s *Service) afterBaselineInstall(ctx context.Context, c store.MDMCommand) error {
	if c.Source != "baseline" {
		return nil
	}
	open, err := s.db.MDMOpenCommands(ctx, c.UDID)
	if err != nil {
		return err
	}
	for _, oc := range open {
		if oc.RequestType == ReqInstallProfile || oc.RequestType == ReqProfileList {
			return nil
		}
	}
	e, err := s.db.MDMGetEnrollment(ctx, c.UDID)
	if err != nil {
		return err
	}
	_, err = s.Enqueue(ctx, e, CommandSpec{RequestType: ReqProfileList}, EnqueueOptions{Source: "baseline", NoPush: true})
	return err
}

func (s *Service) markProfilesChecked(udid string) {
	s.touchMu.Lock()
	s.profileChecked[udid] = s.cfg.Now()
	s.touchMu.Unlock()
}

// maybeCheckProfiles queues a ProfileList on an Idle check-in when the last one is older
// than Config.ProfileCheckInterval, so drift is found on check-in.
func (s *Service) maybeCheckProfiles(ctx context.Context, udid string) {
	now := s.cfg.Now()
	s.touchMu.Lock()
	last, ok := s.profileChecked[udid]
	s.touchMu.Unlock()
	if !ok {
		if c, err := s.db.MDMLastCommand(ctx, udid, ReqProfileList); err == nil {
			last, ok = c.CreatedAt, true
		}
	}
	if ok && now.Sub(last) < s.cfg.ProfileCheckInterval {
		s.touchMu.Lock()
		s.profileChecked[udid] = last
		s.touchMu.Unlock()
		return
	}
	e, err := s.db.MDMGetEnrollment(ctx, udid)
	if err != nil || e.Status != "enrolled" {
		return
	}
	s.markProfilesChecked(udid)
	if _, err := s.Enqueue(ctx, e, CommandSpec{RequestType: ReqProfileList}, EnqueueOptions{Source: "baseline", NoPush: true}); err != nil {
		s.log.Warn("queue ProfileList", "udid", udid, "err", err)
	}
}

// The baseline InstallProfile payload travels through Enqueue as a marker, rendered at
// queue time, so a re-issue always sends the current baseline.
const baselineMarkerPrefix = "lanyard-baseline:"

func baselineMarker(identifier string) []byte { return []byte(baselineMarkerPrefix + identifier) }

func baselineRef(payload []byte) (string, bool) {
	if len(payload) > len(baselineMarkerPrefix) && string(payload[:len(baselineMarkerPrefix)]) == baselineMarkerPrefix {
		return string(payload[len(baselineMarkerPrefix):]), true
	}
	return "", false
}

type baselineCache struct {
	mu    sync.Mutex
	byOrg map[string][]PolicyProfile
}

func (s *Service) baseline(ctx context.Context, orgID string) ([]PolicyProfile, error) {
	s.base.mu.Lock()
	defer s.base.mu.Unlock()
	if b, ok := s.base.byOrg[orgID]; ok {
		return b, nil
	}
	org, err := s.db.GetOrg(ctx, orgID)
	if err != nil {
		return nil, err
	}
	b, err := Baseline(org.Name, BaselineOptions{})
	if err != nil {
		return nil, err
	}
	if s.base.byOrg == nil {
		s.base.byOrg = map[string][]PolicyProfile{}
	}
	s.base.byOrg[orgID] = b
	return b, nil
}

// baselineProfile returns the signed baseline profile with that identifier.
func (s *Service) baselineProfile(ctx context.Context, udid, identifier string) ([]byte, error) {
	e, err := s.db.MDMGetEnrollment(ctx, udid)
	if err != nil {
		return nil, err
	}
	base, err := s.baseline(ctx, e.OrgID)
	if err != nil {
		return nil, err
	}
	for _, p := range base {
		if p.Identifier == identifier {
			return SignProfile(p.Plist, s.id)
		}
	}
	return nil, fmt.Errorf("unknown baseline profile %q", identifier)
}

// CancelCommand cancels an open command of an org (the Mac will not get it: a queued copy
// is skipped when fetched).
func (s *Service) CancelCommand(ctx context.Context, orgID, id string) (store.MDMCommand, error) {
	return s.db.MDMCancelCommand(ctx, orgID, id)
}
