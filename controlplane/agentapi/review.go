package agentapi

import (
	"net/http"

	"github.com/lanyardhq/lanyard/controlplane/api"
)

// ReviewRequest is the body of POST /api/v1/devices/{id}/review.
type ReviewRequest struct {
	// Note says what was checked (kept in the audit log), e.g. "label on the case matches".
	Note string `json:"note,omitempty" maxlen:"4000" text:"multiline"`
}

// resolveReview clears a device's review flags once an admin has checked it (see
// docs/device-actions/identity.md) and returns the tracking view.
func (s *Server) resolveReview(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req ReviewRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	if len(req.Note) > 1024 {
		return api.BadRequest("note is longer than 1024 characters")
	}
	if err := s.db.ResolveDeviceReview(r.Context(), p.OrgID, r.PathValue("id"), req.Note); err != nil {
		return err
	}
	t, err := s.db.GetDeviceTracking(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, t)
}
