package apple

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// PushNow pushes the given Macs and records each outcome with its backoff. It returns
// the error per UDID (nil entries are omitted).
func (s *Service) PushNow(ctx context.Context, es []store.MDMEnrollment) map[string]error {
	out := map[string]error{}
	if len(es) == 0 {
		return out
	}
	ids := make([]string, 0, len(es))
	byID := map[string]store.MDMEnrollment{}
	for _, e := range es {
		ids = append(ids, e.UDID)
		byID[e.UDID] = e
	}
	resps, perr := s.pusher.Push(ctx, ids)
	now := s.cfg.Now()
	for _, id := range ids {
		var err error
		if r, ok := resps[id]; ok && r != nil {
			err = r.Err
		} else if perr != nil {
			err = perr
		}
		e := byID[id]
		next := now.Add(s.backoff(e.PushFailures))
		msg := ""
		if err != nil {
			out[id] = err
			msg = err.Error()
			var pe *PushError
			switch {
			case errors.As(err, &pe) && pe.Class == PushBadToken:
				// Dead token: wait for the Mac's next TokenUpdate rather than hammering APNs.
				next = now.Add(24 * time.Hour)
			case errors.Is(err, ErrPushCertExpired), errors.Is(err, ErrNoPushCert), errors.As(err, &pe) && pe.Class == PushBadCert:
				next = now.Add(time.Hour)
			}
			s.log.Warn("push failed", "udid", id, "err", err)
		}
		if rerr := s.db.MDMRecordPush(ctx, id, msg, &next); rerr != nil {
			s.log.Warn("record push", "udid", id, "err", rerr)
		}
	}
	return out
}

// backoff doubles the re-push period with every unanswered push, capped at 1 h.
func (s *Service) backoff(unanswered int) time.Duration {
	d := s.cfg.RepushInterval
	for i := 0; i < unanswered && d < time.Hour; i++ {
		d *= 2
	}
	if d > time.Hour {
		d = time.Hour
	}
	return d
}

// RepushOnce expires overdue commands, confirms erases whose Mac went silent, and re-pushes every Mac with open (queued, sent or
// NotNow) commands whose backoff has elapsed. It returns how many Macs were pushed.
func (s *Service) RepushOnce(ctx context.Context) (int, error) {
	expired, err := s.db.MDMExpireCommands(ctx, s.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("expire commands: %w", err)
	}
	for _, c := range expired {
		s.syncDeviceCommand(ctx, c)
		s.log.Warn("command expired: the Mac never answered", "command_id", c.UUID, "request_type", c.RequestType, "udid", c.UDID)
	}
	s.confirmSilentErases(ctx)
	if err := s.renewIdentities(ctx); err != nil {
		s.log.Error("identity renewal", "err", err)
	}
	total := 0
	for {
		es, err := s.db.MDMEnrollmentsToRepush(ctx, s.cfg.Now(), 500)
		if err != nil {
			return total, fmt.Errorf("list macs to re-push: %w", err)
		}
		if len(es) == 0 {
			return total, nil
		}
		s.PushNow(ctx, es)
		total += len(es)
		if len(es) < 500 {
			return total, nil
		}
	}
}

// Run runs the re-push loop until ctx ends. Across replicas on one Postgres each runs it;
// the backoff columns keep them from pushing the same Mac twice in a period.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RepushInterval)
	defer t.Stop()
	ade := time.NewTicker(s.cfg.ADESyncInterval)
	defer ade.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ade.C:
			s.syncAllADE(ctx)
		case <-t.C:
			if n, err := s.RepushOnce(ctx); err != nil {
				s.log.Error("re-push loop", "err", err)
			} else if n > 0 {
				s.log.Info("re-pushed macs with pending commands", "count", n)
			}
		}
	}
}

// syncAllADE runs one ABM device sync for every org with a server token.
func (s *Service) syncAllADE(ctx context.Context) {
	orgs, err := s.db.MDMListDEPOrgs(ctx)
	if err != nil {
		s.log.Error("list ABM connections", "err", err)
		return
	}
	for _, org := range orgs {
		if n, err := s.SyncADE(ctx, org); err != nil {
			s.log.Warn("ABM sync", "org_id", org, "err", err)
		} else if n > 0 {
			s.log.Info("ABM sync", "org_id", org, "devices", n)
		}
	}
}

// IdentityRenewBefore is how long before its SCEP identity expires a Mac is sent a fresh
// enrollment profile (macOS does not renew on its own). Installing it makes the Mac run
// SCEP again and re-Authenticate; open commands are then re-issued.
const IdentityRenewBefore = 30 * 24 * time.Hour

func (s *Service) renewIdentities(ctx context.Context) error {
	now := s.cfg.Now()
	es, err := s.db.MDMEnrollmentsToRenew(ctx, now, now.Add(IdentityRenewBefore), 200)
	if err != nil {
		return err
	}
	for _, e := range es {
		prof, err := s.EnrollmentProfile(ctx, e.OrgID, e.EmployeeID, "renewal")
		if err != nil {
			s.log.Warn("identity renewal profile", "udid", e.UDID, "err", err)
			continue
		}
		if _, err := s.Enqueue(ctx, e, CommandSpec{RequestType: ReqInstallProfile, Payload: prof}, EnqueueOptions{Source: "system"}); err != nil {
			s.log.Warn("identity renewal", "udid", e.UDID, "err", err)
			continue
		}
		if err := s.db.MDMMarkRenewal(ctx, e.UDID, now); err != nil {
			return err
		}
		s.log.Info("identity renewal sent", "udid", e.UDID, "identity_not_after", e.IdentityNotAfter)
	}
	return nil
}
