package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// startSession creates a session with a fresh id (never one the browser presented, so a
// planted cookie cannot become signed in) and audits user.signed_in. carry, when set, is
// the session this one replaces: it keeps that session's start and absolute expiry.
// sessionOpts: Carry is the session a rotation replaces (its lifetime carries over and no
// sign-in is recorded); Proof, when set, is the sign-in proof time to record instead of now.
type sessionOpts struct {
	Carry *store.UserSession
	Proof *time.Time
}

func (s *Service) startSession(ctx context.Context, u User, method string, m ClientMeta, extra map[string]any, o sessionOpts) (Session, error) {
	now := s.clock()
	id := randomToken()
	row := store.UserSession{TokenHash: store.HashToken(id), UserID: u.ID, OrgID: u.OrgID, CSRF: randomToken(), CreatedAt: now,
		LastSeenAt: now, ExpiresAt: now.Add(AbsoluteTimeout), ReauthAt: now, IP: m.IP, UserAgent: truncate(m.UserAgent, 400)}
	if o.Proof != nil {
		row.ReauthAt = *o.Proof
	}
	if o.Carry != nil {
		row.CreatedAt, row.ExpiresAt = o.Carry.CreatedAt, o.Carry.ExpiresAt
	}
	if err := s.db.CreateSession(ctx, &row); err != nil {
		return Session{}, err
	}
	if o.Carry == nil {
		if err := s.db.RecordSignIn(ctx, u.ID, now); err != nil {
			return Session{}, err
		}
		details := meta(m, map[string]any{"method": method, "session_id": row.ID})
		for k, v := range extra {
			details[k] = v
		}
		s.audit(userCtx(ctx, u), u.OrgID, "user.signed_in", "user", u.ID, details)
	}
	return sessionOf(id, row, u), nil
}

func sessionOf(id string, row store.UserSession, u User) Session {
	return Session{ID: id, CSRF: row.CSRF, UserID: u.ID, OrgID: u.OrgID, Email: u.Email, Name: u.Name, Role: u.Role,
		ReauthAt: row.ReauthAt, ExpiresAt: row.ExpiresAt, publicID: row.ID}
}

// live returns the session row and user for a cookie value if the session is still good:
// not revoked, within its absolute lifetime and its idle timeout, its user still active.
func (s *Service) live(ctx context.Context, sessionID string) (store.UserSession, User, error) {
	if sessionID == "" {
		return store.UserSession{}, User{}, ErrNoSession
	}
	row, err := s.db.SessionByHash(ctx, store.HashToken(sessionID))
	if errors.Is(err, store.ErrNotFound) {
		return row, User{}, ErrNoSession
	}
	if err != nil {
		return row, User{}, err
	}
	now := s.clock()
	if row.RevokedAt != nil || !now.Before(row.ExpiresAt) || now.Sub(row.LastSeenAt) >= IdleTimeout {
		return row, User{}, ErrNoSession
	}
	u, err := s.db.GetUser(ctx, row.OrgID, row.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.Active()) {
		return row, u, ErrNoSession
	}
	return row, u, err
}

// Authenticate returns the live session for a cookie value (idle 30 min, absolute 12 h;
// revoked or expired → ErrNoSession), with the person's current role.
func (s *Service) Authenticate(ctx context.Context, sessionID string) (Session, error) {
	row, u, err := s.live(ctx, sessionID)
	if err != nil {
		return Session{}, err
	}
	// The idle clock moves at most once a minute: one write per minute per person, not one
	// per request.
	if now := s.clock(); now.Sub(row.LastSeenAt) >= touchEvery {
		if err := s.db.TouchSession(ctx, row.ID, now); err != nil {
			return Session{}, err
		}
		row.LastSeenAt = now
	}
	return sessionOf(sessionID, row, u), nil
}

// Reauthenticate proves the person again (password, and TOTP when enabled) before a
// sensitive reveal. The session is replaced by one with a new id and a fresh ReauthAt; its
// absolute expiry stays. Failures count towards the lockout.
func (s *Service) Reauthenticate(ctx context.Context, sessionID, password, totpCode string, m ClientMeta) (Session, error) {
	row, u, err := s.live(ctx, sessionID)
	if err != nil {
		return Session{}, err
	}
	if err := s.allow(m, u.Email); err != nil {
		return Session{}, err
	}
	now := s.clock()
	if u.Locked(now) {
		s.burnHash(password)
		return Session{}, lockedError{until: *u.LockedUntil}
	}
	if !s.checkPassword(u, password) {
		if lerr := s.failed(ctx, u, "reauth", "wrong password", m); lerr != nil {
			return Session{}, lerr
		}
		return Session{}, ErrBadCredentials
	}
	if u.TOTPEnabled {
		ok, _, err := s.checkSecondFactor(ctx, u, normalizeCode(totpCode), now)
		if err != nil {
			return Session{}, err
		}
		if !ok {
			if lerr := s.failed(ctx, u, "reauth", "wrong code", m); lerr != nil {
				return Session{}, lerr
			}
			return Session{}, badCodeError{}
		}
	}
	sess, err := s.startSession(ctx, u, "reauth", m, nil, sessionOpts{Carry: &row})
	if err != nil {
		return Session{}, err
	}
	if _, err := s.db.RevokeSession(ctx, row.ID, now); err != nil {
		return Session{}, err
	}
	s.audit(userCtx(ctx, u), u.OrgID, "user.reauthenticated", "user", u.ID, meta(m, map[string]any{"session_id": sess.publicID,
		"replaces": row.ID}))
	return sess, nil
}

// SignOut revokes the session; a stolen copy of the cookie is worthless afterwards.
// Signing out an unknown or ended session is not an error.
func (s *Service) SignOut(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return nil
	}
	row, err := s.db.SessionByHash(ctx, store.HashToken(sessionID))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	revoked, err := s.db.RevokeSession(ctx, row.ID, s.clock())
	if err != nil || !revoked {
		return err
	}
	ctx = domain.WithActor(ctx, domain.Actor{ID: "user:" + row.UserID, UserID: row.UserID, RequestID: domain.ActorFrom(ctx).RequestID})
	s.audit(ctx, row.OrgID, "user.signed_out", "user", row.UserID, map[string]any{"session_id": row.ID})
	return nil
}

// Principal is the API caller for a session (Via "session"), with the person's current
// role read from the users table, so a demotion applies to open sessions at once.
func (s *Service) Principal(ctx context.Context, sess Session) (api.Principal, error) {
	pid := sess.publicID
	if pid == "" {
		row, err := s.db.SessionByHash(ctx, store.HashToken(sess.ID))
		if errors.Is(err, store.ErrNotFound) {
			return api.Principal{}, ErrNoSession
		}
		if err != nil {
			return api.Principal{}, err
		}
		pid = row.ID
	}
	u, err := s.db.GetUser(ctx, sess.OrgID, sess.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.Active()) {
		return api.Principal{}, ErrNoSession
	}
	if err != nil {
		return api.Principal{}, err
	}
	org, err := s.db.GetOrg(ctx, u.OrgID)
	if err != nil {
		return api.Principal{}, fmt.Errorf("principal: %w", err)
	}
	return api.Principal{OrgID: u.OrgID, Org: org, Role: u.Role, UserID: u.ID, UserEmail: u.Email, SessionID: pid, Via: "session",
		ReauthAt: sess.ReauthAt}, nil
}

// EnsureUser returns the org's user with this email, creating it (no password yet) when
// there is none. An existing user keeps their role and name.
func (s *Service) EnsureUser(ctx context.Context, orgID, email, name string, role domain.Role) (User, error) {
	email = store.NormalizeEmail(email)
	if email == "" {
		return User{}, fmt.Errorf("%w: an email is required", store.ErrInvalidInput)
	}
	us, err := s.db.FindUsersByEmail(ctx, orgID, email)
	if err != nil {
		return User{}, err
	}
	if len(us) > 0 {
		return us[0], nil
	}
	u := User{OrgID: orgID, Email: email, Name: name, Role: role}
	if err := s.db.CreateUser(ctx, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

// NewSignInLink makes a one-time sign-in link for a user (an invitation when they have no
// password yet) and returns its path, "/signin/link/<token>". The token is stored hashed.
func (s *Service) NewSignInLink(ctx context.Context, orgID, userID string, ttl time.Duration) (string, error) {
	u, err := s.db.GetUser(ctx, orgID, userID)
	if err != nil {
		return "", err
	}
	if !u.Active() {
		return "", fmt.Errorf("%w: user %s has been removed", store.ErrConflict, userID)
	}
	if u.Email == "" {
		return "", fmt.Errorf("%w: give the user an email before sending a sign-in link", store.ErrConflict)
	}
	if ttl <= 0 || ttl > InvitationTTL {
		ttl = InvitationTTL
	}
	kind := store.OneTimeSignInLink
	if u.PasswordHash == "" {
		kind = store.OneTimeInvitation
	}
	tok := randomToken()
	now := s.clock()
	if err := s.db.CreateOneTimeToken(ctx, store.OneTimeToken{TokenHash: store.HashToken(tok), Kind: kind, UserID: u.ID, OrgID: u.OrgID,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
		return "", err
	}
	s.audit(ctx, orgID, "user.sign_in_link_created", "user", u.ID, map[string]any{"kind": kind, "expires_at": now.Add(ttl)})
	return linkPathPrefix + tok, nil
}

// LinkURL is the absolute form of a link path, for people to click.
func (s *Service) LinkURL(path string) string { return s.pub + path }
