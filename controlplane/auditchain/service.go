package auditchain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Service is the audit chain capability: the chainer (a River periodic job, so one replica
// runs it), on-demand verification, and GET /api/v1/audit/verify.
type Service struct {
	db      *store.DB
	pub     ed25519.PublicKey
	chainer *Chainer
	o       Options
}

// New opens (or on the first start creates) the checkpoint key sealed by sealer, the
// server's keyring.
func New(ctx context.Context, db *store.DB, sealer Sealer, o Options) (*Service, error) {
	o.init()
	key, err := OpenKey(ctx, db, sealer)
	if err != nil {
		return nil, err
	}
	return &Service{db: db, pub: key.Public().(ed25519.PublicKey), chainer: NewChainer(db, key, o), o: o}, nil
}

// Verify chains what is pending, then verifies orgID's chain.
func (s *Service) Verify(ctx context.Context, orgID string) (Result, error) {
	if _, err := s.chainer.ChainOnce(ctx); err != nil {
		return Result{OrgID: orgID}, err
	}
	r, err := Verify(ctx, s.db.SQL, s.pub, orgID, s.o)
	if err != nil {
		return r, fmt.Errorf("verify audit chain of org %s: %w", orgID, err)
	}
	return r, nil
}

// VerifyAll verifies every org that has audit rows, stopping at the first that fails.
func (s *Service) VerifyAll(ctx context.Context) ([]Result, error) {
	orgs, err := store.AuditOrgs(ctx, s.db.SQL)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, org := range orgs {
		r, err := s.Verify(ctx, org)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if !r.OK {
			break
		}
	}
	return out, nil
}

// ChainArgs is the periodic chaining job.
type ChainArgs struct{}

// Kind implements river.JobArgs.
func (ChainArgs) Kind() string { return "audit.chain" }

type chainWorker struct {
	river.WorkerDefaults[ChainArgs]
	s *Service
}

func (w *chainWorker) Work(ctx context.Context, _ *river.Job[ChainArgs]) error {
	_, err := w.s.chainer.ChainOnce(ctx)
	return err
}

// RegisterJobs adds the chainer as a periodic job every interval (and once at start);
// River schedules periodic jobs on its elected leader, so one replica chains.
func (s *Service) RegisterJobs(reg *jobs.Registry, every time.Duration) {
	jobs.Add(reg, &chainWorker{s: s})
	reg.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return ChainArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true, ID: "audit.chain"}))
}

// Routes is the verify endpoint.
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Method: "GET", Path: "/api/v1/audit/verify", Summary: "Verify the audit log's hash chain and signed checkpoints (names the first tampered row)",
			Tag: "Audit", Role: domain.RoleAdmin, Response: Result{}, Handler: s.verify},
	}
}

func (s *Service) verify(w http.ResponseWriter, r *http.Request) error {
	res, err := s.Verify(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, res)
}
