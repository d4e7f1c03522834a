package auth

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Me is the caller as the API sees them.
type Me struct {
	// User is the person behind the call (absent for a token with no owner).
	User *store.User `json:"user,omitempty"`
	// Role is the effective role: a token's role capped by its owner's.
	Role    domain.Role `json:"role" enum:"owner,admin,it,viewer"`
	Via     string      `json:"via" enum:"token,session"`
	TokenID string      `json:"token_id,omitempty"`
	Org     domain.Org  `json:"org"`
}

// InviteRequest invites a person by email.
type InviteRequest struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	Role  string `json:"role" enum:"owner,admin,it,viewer"`
}

// Invitation is an invited user and their one-time sign-in link, shown once.
type Invitation struct {
	User store.User `json:"user"`
	// Link is the path of the one-time link ("/signin/link/<token>"); URL is its absolute form.
	Link      string    `json:"link"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UserPatchRequest edits a user; absent fields stay.
type UserPatchRequest struct {
	Name *string `json:"name,omitempty"`
	// Email can change only before the user first signs in.
	Email *string `json:"email,omitempty"`
	Role  *string `json:"role,omitempty" enum:"owner,admin,it,viewer"`
}

// RevokedSessions reports how many sessions a revoke ended.
type RevokedSessions struct {
	Revoked int `json:"revoked"`
}

// Routes are the users, invitations, sessions and /me endpoints.
func (s *Service) Routes() []api.Route {
	tag := "Users"
	return []api.Route{
		{Method: "GET", Path: "/api/v1/me", Summary: "The caller: person, effective role, organization", Tag: tag, Role: domain.RoleViewer,
			Response: Me{}, Handler: s.getMe},
		{Method: "GET", Path: "/api/v1/users", Summary: "List the organization's users (admins as people)", Tag: tag, Role: domain.RoleAdmin,
			Query:    append([]api.Param{api.BoolParam("include_removed", "true to list removed users too")}, api.PageParams()...),
			Response: api.List[store.User]{}, Handler: s.listUsers},
		{Method: "POST", Path: "/api/v1/users", Summary: "Invite a person (returns their one-time sign-in link once; only an owner invites an owner)",
			Tag: tag, Role: domain.RoleAdmin, Request: InviteRequest{}, Response: Invitation{}, Status: http.StatusCreated, Handler: s.inviteUser},
		{Method: "GET", Path: "/api/v1/users/{id}", Summary: "Get a user", Tag: tag, Role: domain.RoleAdmin, Resource: "user",
			Response: store.User{}, Handler: s.getUser},
		{Method: "PATCH", Path: "/api/v1/users/{id}", Summary: "Change a user's name, role, or (before first sign-in) email; the last owner cannot be demoted",
			Tag: tag, Role: domain.RoleAdmin, Resource: "user", Request: UserPatchRequest{}, Response: store.User{}, Handler: s.patchUser},
		{Method: "DELETE", Path: "/api/v1/users/{id}", Summary: "Remove a user: revokes their tokens and sessions; the last owner cannot be removed",
			Tag: tag, Role: domain.RoleAdmin, Resource: "user", Response: store.User{}, Handler: s.removeUser},
		{Method: "POST", Path: "/api/v1/users/{id}/revoke-sessions", Summary: "Sign a user out everywhere", Tag: tag, Role: domain.RoleAdmin,
			Resource: "user", Response: RevokedSessions{}, Handler: s.revokeUserSessions},
		{Method: "POST", Path: "/api/v1/users/{id}/sign-in-link", Summary: "A new one-time sign-in link for a user (re-send an invitation, claim the migrated-tokens user)",
			Tag: tag, Role: domain.RoleAdmin, Resource: "user", Response: Invitation{}, Status: http.StatusCreated, Handler: s.userSignInLink},
		{Method: "GET", Path: "/api/v1/sessions", Summary: "The caller's own console sessions", Tag: tag, Role: domain.RoleViewer,
			Response: api.List[store.UserSession]{}, Handler: s.listSessions},
	}
}

func (s *Service) getMe(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	me := Me{Role: p.Role, Via: p.Via, TokenID: p.TokenID, Org: p.Org}
	if p.UserID != "" {
		u, err := s.db.GetUser(r.Context(), p.OrgID, p.UserID)
		if err != nil {
			return err
		}
		me.User = &u
	}
	return api.JSON(w, http.StatusOK, me)
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) error {
	pg, err := api.PageFrom(r)
	if err != nil {
		return err
	}
	items, next, err := s.db.ListUsers(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.URL.Query().Get("include_removed") == "true", pg)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, next))
}

func parseRoleField(v string) (domain.Role, error) {
	role, err := domain.ParseRole(v)
	if err != nil {
		return "", api.Unprocessable(err.Error()).With("field", "role")
	}
	return role, nil
}

// ownerOnly: only an owner grants, revokes or manages the owner role.
func ownerOnly(p api.Principal, what string) error {
	if p.Role.AtLeast(domain.RoleOwner) {
		return nil
	}
	return api.Forbidden(what+" needs the owner role; you have "+string(p.Role)).With("required_role", domain.RoleOwner)
}

func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return len(e) <= 254 && at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n<>\",;") && strings.Contains(e[at:], ".")
}

func (s *Service) inviteUser(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req InviteRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	email := store.NormalizeEmail(req.Email)
	if !validEmail(email) {
		return api.Unprocessable("email must be an address such as alex@example.com").With("field", "email")
	}
	if len(req.Name) > 200 {
		return api.Unprocessable("name is at most 200 characters").With("field", "name")
	}
	role, err := parseRoleField(req.Role)
	if err != nil {
		return err
	}
	if role == domain.RoleOwner {
		if err := ownerOnly(p, "inviting an owner"); err != nil {
			return err
		}
	}
	u := store.User{OrgID: p.OrgID, Email: email, Name: strings.TrimSpace(req.Name), Role: role}
	if err := s.db.CreateUser(r.Context(), &u); err != nil {
		return err
	}
	inv, err := s.invitation(r, u)
	if err != nil {
		return err
	}
	s.audit(r.Context(), p.OrgID, "user.invited", "user", u.ID, map[string]any{"email": u.Email, "role": u.Role, "expires_at": inv.ExpiresAt})
	return api.JSON(w, http.StatusCreated, inv)
}

func (s *Service) invitation(r *http.Request, u store.User) (Invitation, error) {
	link, err := s.NewSignInLink(r.Context(), u.OrgID, u.ID, InvitationTTL)
	if err != nil {
		return Invitation{}, err
	}
	return Invitation{User: u, Link: link, URL: s.LinkURL(link), ExpiresAt: s.clock().Add(InvitationTTL)}, nil
}

// target loads the {id} user and applies the owner rule to managing them.
func (s *Service) target(r *http.Request, what string) (store.User, error) {
	p := api.PrincipalFrom(r.Context())
	u, err := s.db.GetUser(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return u, err
	}
	if u.Role == domain.RoleOwner {
		if err := ownerOnly(p, what+" an owner"); err != nil {
			return u, err
		}
	}
	return u, nil
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.db.GetUser(r.Context(), api.PrincipalFrom(r.Context()).OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, u)
}

func (s *Service) patchUser(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	var req UserPatchRequest
	if err := api.Decode(r, &req); err != nil {
		return err
	}
	u, err := s.target(r, "changing")
	if err != nil {
		return err
	}
	patch := store.UserPatch{Name: req.Name}
	if req.Name != nil && len(*req.Name) > 200 {
		return api.Unprocessable("name is at most 200 characters").With("field", "name")
	}
	if req.Email != nil {
		if e := store.NormalizeEmail(*req.Email); !validEmail(e) {
			return api.Unprocessable("email must be an address such as alex@example.com").With("field", "email")
		}
		patch.Email = req.Email
	}
	if req.Role != nil {
		role, err := parseRoleField(*req.Role)
		if err != nil {
			return err
		}
		if role == domain.RoleOwner && u.Role != domain.RoleOwner {
			if err := ownerOnly(p, "granting the owner role"); err != nil {
				return err
			}
		}
		patch.Role = &role
	}
	out, err := s.db.PatchUser(r.Context(), p.OrgID, u.ID, patch)
	if errors.Is(err, store.ErrLastOwner) {
		return api.Conflict("this is the organization's last owner and cannot be demoted; make another user an owner first")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, out)
}

func (s *Service) removeUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.target(r, "removing")
	if err != nil {
		return err
	}
	out, err := s.db.RemoveUser(r.Context(), u.OrgID, u.ID)
	if errors.Is(err, store.ErrLastOwner) {
		return api.Conflict("this is the organization's last owner and cannot be removed; make another user an owner first")
	}
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, out)
}

func (s *Service) revokeUserSessions(w http.ResponseWriter, r *http.Request) error {
	u, err := s.target(r, "signing out")
	if err != nil {
		return err
	}
	n, err := s.db.RevokeUserSessions(r.Context(), u.OrgID, u.ID, "revoked by an admin")
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusOK, RevokedSessions{Revoked: n})
}

func (s *Service) userSignInLink(w http.ResponseWriter, r *http.Request) error {
	u, err := s.target(r, "sending a sign-in link to")
	if err != nil {
		return err
	}
	if !u.Active() {
		return api.Conflict("this user has been removed; invite them again")
	}
	if u.Email == "" {
		return api.Conflict("this user has no email yet: set one with PATCH /api/v1/users/{id} first")
	}
	inv, err := s.invitation(r, u)
	if err != nil {
		return err
	}
	return api.JSON(w, http.StatusCreated, inv)
}

func (s *Service) listSessions(w http.ResponseWriter, r *http.Request) error {
	p := api.PrincipalFrom(r.Context())
	items := []store.UserSession{}
	if p.UserID != "" {
		all, err := s.db.ListUserSessions(r.Context(), p.OrgID, p.UserID, s.clock())
		if err != nil {
			return err
		}
		for _, x := range all {
			// The idle timeout ends a session as surely as a revoke; do not list dead ones.
			if s.clock().Sub(x.LastSeenAt) >= IdleTimeout {
				continue
			}
			x.Current = x.ID == p.SessionID
			items = append(items, x)
		}
	}
	return api.JSON(w, http.StatusOK, api.NewList(items, ""))
}
