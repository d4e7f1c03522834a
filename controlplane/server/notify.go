package server

// Notification wiring (controlplane/notify). The engine consumes the outbox on every
// replica (Start), serves /api/v1/notifications/* (Routes), renders through the
// repository's templates and sends through the SMTP, Slack and webhook clients. New hires'
// enrollment links come from the installers (agent download) and Apple MDM (Mac
// enrollment link), the same sources onboarding uses.

import (
	"context"
	"errors"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/senders"
	"github.com/lanyardhq/lanyard/controlplane/notify/slack"
	"github.com/lanyardhq/lanyard/controlplane/notify/templates"
	"github.com/lanyardhq/lanyard/controlplane/store"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

// notifyDeps are the parts of a notification engine that differ between a server and a
// test (senders pointed at fakes).
type notifyDeps struct {
	Render notify.Renderer
	Email  notify.EmailSender
	Slack  notify.SlackSender
}

func buildNotify(d Deps, nd notifyDeps, mdm *apple.Service, inst *installersvc.Service) *notify.Engine {
	return notify.New(notify.Deps{DB: d.DB, Keys: d.Keyring, Logger: d.Logger, Render: nd.Render, Email: nd.Email, Slack: nd.Slack,
		Enroll: enrollLinks(d, mdm, inst),
		Config: notify.Config{PublicURL: d.Config.PublicURL, MaxAttempts: d.Config.NotifyMaxAttempts, Workers: d.Config.NotifyWorkers,
			SendTimeout: d.Config.NotifySendTimeout}})
}

// enrollLinks gives a new hire the agent installer for the platform of each laptop
// assigned to them, and the Mac enrollment link when one is a Mac (both when nothing is
// assigned yet, so the message is useful whatever arrives).
func enrollLinks(d Deps, mdm *apple.Service, inst *installersvc.Service) notify.EnrollLinks {
	return func(ctx context.Context, orgID, employeeID string) (string, string, error) {
		devs, _, err := d.DB.ListDevices(ctx, orgID, store.DeviceFilter{EmployeeID: employeeID}, store.Page{Limit: 20})
		if err != nil {
			return "", "", err
		}
		mac, other := len(devs) == 0, domain.Platform("")
		for _, dv := range devs {
			if dv.Platform == domain.PlatformMacOS {
				mac = true
			} else if dv.Platform == domain.PlatformWindows || dv.Platform == domain.PlatformLinux {
				other = dv.Platform
			}
		}
		if len(devs) == 0 {
			other = domain.PlatformWindows
		}
		var installer, enroll string
		if other != "" {
			if l, err := installerLink(ctx, inst, orgID, other); err == nil {
				installer = l.URL
			} else {
				d.Logger.Warn("no installer link for a new hire's email", "component", "notify", "org_id", orgID, "err", err)
			}
		}
		if mac && mdm != nil {
			// A Mac link before the APNs certificate is uploaded answers "MDM is not set up
			// yet": never mail a new hire a link that does not work.
			if _, err := d.DB.MDMGetPushCert(ctx, orgID); errors.Is(err, store.ErrNotFound) {
				d.Logger.Warn("no Mac enrollment link for a new hire's email: MDM has no APNs certificate yet", "component", "notify", "org_id", orgID)
				return installer, "", nil
			} else if err != nil {
				return installer, "", err
			}
			l, err := mdm.CreateEnrollLink(ctx, orgID, employeeID, "system:notify", 0)
			if err != nil {
				return installer, "", err
			}
			enroll = l.URL
		}
		return installer, enroll, nil
	}
}

// notifySenders are the production renderer and senders: the repository's templates,
// SMTP through notify/mail (the system's trusted roots) and Slack through notify/slack.
func notifySenders(d Deps) (notifyDeps, error) {
	set, err := templates.Load()
	if err != nil {
		return notifyDeps{}, err
	}
	return notifyDeps{Render: senders.Templates{Set: set}, Email: senders.Mail{}, Slack: senders.Slack{Client: slack.New(nil)}}, nil
}

// seedNotify gives the demo org its default rules and a log channel, so `make run`
// shows every prompt as a log line ("notification ...") without any setup.
func (s *Server) seedNotify(ctx context.Context, org domain.Org) error {
	if s.caps == nil || s.caps.notify == nil {
		return nil
	}
	if err := s.caps.notify.SeedDefaults(ctx, org.ID); err != nil {
		return err
	}
	chs, err := store.ListNotifyChannels(ctx, s.DB.SQL, org.ID)
	if err != nil {
		return err
	}
	hasLog := false
	for _, c := range chs {
		hasLog = hasLog || c.Kind == "log"
	}
	if !hasLog {
		if _, err := s.caps.notify.CreateChannel(ctx, org.ID, notify.ChannelInput{Name: "Demo log", Kind: "log"}); err != nil {
			return err
		}
	}
	return s.seedDemoEmail(ctx, org)
}
