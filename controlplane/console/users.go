package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Users and tokens: the people who administer the organization (the auth service's
// /api/v1/users routes) and the API tokens scripts use (/api/v1/tokens). One-time values
// (an invitation link, a token secret) are shown once, on the page answering the form.

func userPages() []page {
	return []page{{Pattern: "GET /users", Handler: usersPage}}
}

func tokenPages() []page { return nil }

var roleChoices = []domain.Role{domain.RoleViewer, domain.RoleIT, domain.RoleAdmin, domain.RoleOwner}

func userActions() []action {
	toUsers := fixed("/users")
	return []action{
		{Name: "invite user", Form: "POST /users", API: "POST /api/v1/users",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "email") == "" {
					return nil, badRequest("Type the email of the person to invite.")
				}
				return map[string]string{"email": form(r, "email"), "name": form(r, "name"), "role": form(r, "role")}, nil
			}, Sample: map[string]string{"email": "new.admin@example.com", "name": "New Admin", "role": "viewer"}, Done: userInvited},
		{Name: "change user role", Form: "POST /users/{id}/role", API: "PATCH /api/v1/users/{id}",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				role := form(r, "role")
				return map[string]*string{"role": &role}, nil
			}, Sample: map[string]string{"role": "it"}, Done: back(toUsers, "Role changed.")},
		{Name: "remove user", Form: "POST /users/{id}/remove", API: "DELETE /api/v1/users/{id}",
			Done: back(toUsers, "User removed; their tokens and sessions are revoked.")},
		{Name: "revoke user sessions", Form: "POST /users/{id}/revoke-sessions", API: "POST /api/v1/users/{id}/revoke-sessions",
			Done: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
				var out struct {
					Revoked int `json:"revoked"`
				}
				_ = json.Unmarshal(raw, &out)
				return c.done(w, r, "/users", fmt.Sprintf("Signed out everywhere: %d session(s) ended.", out.Revoked))
			}},
		{Name: "new sign-in link", Form: "POST /users/{id}/sign-in-link", API: "POST /api/v1/users/{id}/sign-in-link", Done: userInvited},
	}
}

func tokenActions() []action {
	return []action{
		{Name: "mint token", Form: "POST /tokens", API: "POST /api/v1/tokens",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				days, err := formInt(r, "expires_in_days")
				if err != nil {
					return nil, err
				}
				return map[string]any{"name": form(r, "name"), "role": form(r, "role"), "expires_in_days": days}, nil
			}, Sample: map[string]string{"name": "ci", "role": "viewer", "expires_in_days": "30"}, Done: tokenMinted},
		{Name: "revoke token", Form: "POST /tokens/{id}/revoke", API: "DELETE /api/v1/tokens/{id}",
			Done: back(fixed("/users"), "Token revoked.")},
	}
}

// userView is a console user as GET /api/v1/users lists them.
type userView struct {
	ID           string      `json:"id"`
	Email        string      `json:"email"`
	Name         string      `json:"name"`
	Role         domain.Role `json:"role"`
	Status       string      `json:"status"`
	TOTPEnabled  bool        `json:"totp_enabled"`
	LastSignInAt *time.Time  `json:"last_sign_in_at,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
}

type usersView struct {
	Users  part[api.List[userView]]
	Tokens part[api.List[store.Token]]
	Roles  []domain.Role
	Me     string
	// Shown once, on the answer to the form that made them.
	Invitation *invitationView
	Minted     *mintedView
}

type invitationView struct {
	User      userView  `json:"user"`
	Link      string    `json:"link"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

type mintedView struct {
	Token  store.Token `json:"token"`
	Secret string      `json:"secret"`
}

func (c *Console) loadUsers(r *http.Request, rq *request) (usersView, error) {
	v := usersView{Roles: roleChoices, Me: rq.P.UserID}
	var err error
	if c.hasRoute("GET /api/v1/users") {
		if v.Users, err = load[api.List[userView]](c, r, rq, "/api/v1/users?limit=200"); err != nil {
			return v, err
		}
	} else {
		v.Users.Refused = "People who sign in to the console arrive with the sign-in service; until then, use API tokens."
	}
	if v.Tokens, err = load[api.List[store.Token]](c, r, rq, "/api/v1/tokens?limit=200"); err != nil {
		return v, err
	}
	return v, nil
}

func (c *Console) hasRoute(key string) bool {
	_, ok := c.routes[key]
	return ok
}

func usersPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v, err := c.loadUsers(r, rq)
	if err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "users", "", "Users and tokens", "users", v)
}

func userInvited(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var inv invitationView
	if err := json.Unmarshal(raw, &inv); err != nil {
		return fmt.Errorf("decode invitation: %w", err)
	}
	if inv.URL == "" && inv.Link != "" {
		inv.URL = (&url.URL{Scheme: schemeOf(r), Host: r.Host, Path: inv.Link}).String()
	}
	v, err := c.loadUsers(r, rq)
	if err != nil {
		return err
	}
	v.Invitation = &inv
	return c.render(w, rq, http.StatusOK, "users", "", "Users and tokens", "users", v)
}

func tokenMinted(c *Console, w http.ResponseWriter, r *http.Request, rq *request, raw json.RawMessage) error {
	var m mintedView
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode token: %w", err)
	}
	v, err := c.loadUsers(r, rq)
	if err != nil {
		return err
	}
	v.Minted = &m
	return c.render(w, rq, http.StatusOK, "users", "", "Users and tokens", "users", v)
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
