package apple

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/nanomdm/service"
	"github.com/micromdm/plist"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// listener is Lanyard's part of the check-in chain. It runs synchronously around the
// nanomdm core: check-ins go to the core first (so we see committed state), command
// results are recorded in our intent table first (so repairs queued from a ProfileList
// answer are fetched in the same round trip).
type listener struct {
	service.CheckinAndCommandService // nanomdm core
	s                                *Service
}

func deviceCtx(r *mdm.Request, udid string) context.Context {
	return domain.WithActor(r.Context(), domain.Actor{ID: "device:" + udid})
}

// authExtra are Authenticate keys nanomdm's type does not keep.
type authExtra struct {
	Model       string
	ModelName   string
	OSVersion   string
	DeviceName  string
	ProductName string
}

func (l *listener) Authenticate(r *mdm.Request, m *mdm.Authenticate) error {
	if err := l.CheckinAndCommandService.Authenticate(r, m); err != nil {
		return err
	}
	if m.UserID != "" || m.EnrollmentID != "" || m.UDID == "" {
		return nil // user channels and User Enrollment carry no device of their own
	}
	ctx := deviceCtx(r, m.UDID)
	if r.Certificate == nil {
		return service.NewHTTPStatusError(http.StatusBadRequest, errors.New("authenticate without identity certificate"))
	}
	orgID, employeeID, err := l.s.db.MDMGetSCEPCert(ctx, r.Certificate.SerialNumber.Text(16))
	if errors.Is(err, store.ErrNotFound) {
		return service.NewHTTPStatusError(http.StatusBadRequest, fmt.Errorf("identity certificate was not issued by Lanyard's SCEP: %w", err))
	}
	if err != nil {
		return err
	}
	var extra authExtra
	_ = plist.Unmarshal(m.Raw, &extra)
	model := extra.Model
	if extra.ModelName != "" {
		model = extra.ModelName
	}
	if employeeID == "" {
		employeeID = l.s.adeEmployeeForSerial(ctx, orgID, m.SerialNumber)
	}
	notAfter := r.Certificate.NotAfter.UTC()
	var prev *store.MDMEnrollment
	if p, err := l.s.db.MDMGetEnrollment(ctx, m.UDID); err == nil {
		prev = &p
	}
	e, err := l.s.db.MDMAuthenticate(ctx, store.MDMEnrollment{
		UDID: m.UDID, OrgID: orgID, EmployeeID: employeeID, SerialNumber: m.SerialNumber, Model: model,
		OSVersion: extra.OSVersion, DeviceName: extra.DeviceName, Topic: m.Topic, IdentityNotAfter: &notAfter,
	})
	if err != nil {
		return fmt.Errorf("lanyard authenticate: %w", err)
	}
	// An erased Mac comes back only by enrolling again.
	l.s.confirmErasesOnReenroll(ctx, prev, e)
	l.s.forgetTouch(m.UDID)
	return nil
}

// tokenExtra holds the ADE flag of TokenUpdate.
type tokenExtra struct {
	AwaitingConfiguration bool
}

func (l *listener) TokenUpdate(r *mdm.Request, m *mdm.TokenUpdate) error {
	if err := l.CheckinAndCommandService.TokenUpdate(r, m); err != nil {
		return err
	}
	if m.UserID != "" || m.EnrollmentID != "" || m.UDID == "" {
		return nil
	}
	ctx := deviceCtx(r, m.UDID)
	e, first, err := l.s.db.MDMSetEnrolled(ctx, m.UDID)
	if err != nil {
		return fmt.Errorf("lanyard token update: %w", err)
	}
	if !first {
		return nil
	}
	var extra tokenExtra
	_ = plist.Unmarshal(m.Raw, &extra)
	l.s.onEnrolled(ctx, e, extra.AwaitingConfiguration)
	return nil
}

func (l *listener) CheckOut(r *mdm.Request, m *mdm.CheckOut) error {
	if err := l.CheckinAndCommandService.CheckOut(r, m); err != nil {
		return err
	}
	if m.UserID != "" || m.UDID == "" {
		return nil
	}
	return l.s.db.MDMCheckOut(deviceCtx(r, m.UDID), m.UDID)
}

func (l *listener) CommandAndReportResults(r *mdm.Request, res *mdm.CommandResults) (*mdm.Command, error) {
	if res.UserID != "" || res.EnrollmentID != "" || res.UDID == "" {
		return l.CheckinAndCommandService.CommandAndReportResults(r, res)
	}
	udid := res.UDID
	ctx := deviceCtx(r, udid)
	if res.Status != "Idle" && res.CommandUUID != "" {
		if err := l.s.handleResult(ctx, udid, res); err != nil {
			return nil, err
		}
	} else if res.Status == "Idle" {
		l.s.maybeCheckProfiles(ctx, udid)
	}
	cmd, err := l.CheckinAndCommandService.CommandAndReportResults(r, res)
	// Skip commands whose intent ended (expired or canceled): answer them to the core on
	// the Mac's behalf so one dead command never blocks the queue (pitfall 6).
	for i := 0; err == nil && cmd != nil && i < 16; i++ {
		c, sent, gerr := l.s.db.MDMFetchedByWire(ctx, cmd.CommandUUID)
		if sent {
			l.s.syncDeviceCommand(ctx, c)
		}
		if gerr == nil && c.Source == SourceDeviceCommand && !store.MDMTerminal(c.State) {
			// Canceled or expired through the shared command API: end our intent too.
			if dc, err := l.s.db.GetDeviceCommandByID(ctx, c.UUID); err == nil && dc.Terminal() {
				if cc, err := l.s.db.MDMCancelCommand(ctx, c.OrgID, c.UUID); err == nil {
					c = cc
				}
			}
		}
		if gerr != nil || !store.MDMTerminal(c.State) {
			break
		}
		cmd, err = l.CheckinAndCommandService.CommandAndReportResults(r, &mdm.CommandResults{
			Enrollment: res.Enrollment, CommandUUID: cmd.CommandUUID, Status: "Error",
		})
	}
	l.s.touch(ctx, udid)
	return cmd, err
}

// touch records last contact at most once a minute per Mac (keeps Idle polls cheap).
func (s *Service) touch(ctx context.Context, udid string) {
	now := s.cfg.Now()
	s.touchMu.Lock()
	last, ok := s.touched[udid]
	if ok && now.Sub(last) < time.Minute {
		s.touchMu.Unlock()
		return
	}
	s.touched[udid] = now
	s.touchMu.Unlock()
	if err := s.db.MDMTouch(ctx, udid, now, now.Add(s.cfg.RepushInterval)); err != nil {
		s.log.Warn("record mdm contact", "udid", udid, "err", err)
	}
}

func (s *Service) forgetTouch(udid string) {
	s.touchMu.Lock()
	delete(s.touched, udid)
	delete(s.profileChecked, udid)
	delete(s.posture, udid)
	s.touchMu.Unlock()
}

func errorChainText(ec []mdm.ErrorChain) string {
	var parts []string
	for _, e := range ec {
		d := e.USEnglishDescription
		if d == "" {
			d = e.LocalizedDescription
		}
		parts = append(parts, fmt.Sprintf("%s %d: %s", e.ErrorDomain, e.ErrorCode, d))
	}
	return strings.Join(parts, "; ")
}
