package service

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// KeyList is the public-key response.
type KeyList struct {
	Keys []PublicKey `json:"keys"`
}

// CheckpointList is one page of checkpoints, for export off the box.
type CheckpointList struct {
	Items []auditchain.Checkpoint `json:"items"`
	// NextAfter is the after= value of the next page (0 when this was the last).
	NextAfter int64 `json:"next_after,omitempty"`
}

// CheckpointResult says whether POST /audit/checkpoints signed a new checkpoint.
type CheckpointResult struct {
	Created    bool                   `json:"created"`
	Checkpoint *auditchain.Checkpoint `json:"checkpoint,omitempty"`
}

// Routes are the audit chain's admin API routes.
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Method: "GET", Path: "/api/v1/audit/verify", Summary: "Verify the organization's audit hash chain and signed checkpoints",
			Tag: "Audit", Role: domain.RoleAdmin, Response: auditchain.Report{}, Handler: s.verify},
		{Method: "GET", Path: "/api/v1/audit/public-key", Summary: "Public keys that verify audit checkpoints",
			Tag: "Audit", Role: domain.RoleAdmin, Response: KeyList{}, Handler: s.publicKey},
		{Method: "GET", Path: "/api/v1/audit/checkpoints", Summary: "Signed audit checkpoints, oldest first (export them off the box)",
			Tag: "Audit", Role: domain.RoleAdmin, Query: []api.Param{{Name: "after", Description: "seq to start after"},
				{Name: "limit", Description: "page size (1-1000)"}}, Response: CheckpointList{}, Handler: s.listCheckpoints},
		{Method: "POST", Path: "/api/v1/audit/checkpoints", Summary: "Sign a checkpoint of the audit chain now",
			Tag: "Audit", Role: domain.RoleAdmin, Response: CheckpointResult{}, Handler: s.createCheckpoint},
	}
}

func (s *Service) verify(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Verify(r.Context(), api.PrincipalFrom(r.Context()).OrgID)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, rep)
}

func (s *Service) publicKey(w http.ResponseWriter, r *http.Request) error {
	return api.JSON(w, http.StatusOK, KeyList{Keys: s.PublicKeys()})
}

func (s *Service) listCheckpoints(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var after int64
	limit := 100
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return api.BadRequest("after must be a non-negative integer")
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return api.BadRequest("limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	cs, err := s.cfg.Store.AuditCheckpoints(r.Context(), api.PrincipalFrom(r.Context()).OrgID, after, limit+1)
	if err != nil {
		return err
	}
	out := CheckpointList{Items: cs}
	if len(cs) > limit {
		out.Items = cs[:limit]
		out.NextAfter = cs[limit-1].Seq
	}
	if out.Items == nil {
		out.Items = []auditchain.Checkpoint{}
	}
	return api.JSON(w, http.StatusOK, out)
}

func (s *Service) createCheckpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := s.Checkpoint(r.Context(), api.PrincipalFrom(r.Context()).OrgID, true)
	if err != nil {
		if errors.Is(err, ErrBroken) {
			return api.Conflict(err.Error())
		}
		return err
	}
	return api.JSON(w, http.StatusOK, CheckpointResult{Created: c != nil, Checkpoint: c})
}
