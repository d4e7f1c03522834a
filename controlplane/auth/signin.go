package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Steps a challenge can lead to.
const (
	NeedTOTP        = "totp"
	NeedTOTPSetup   = "totp_setup"
	NeedSetPassword = "set_password"
)

// needsTOTP: owners and admins can wipe devices and manage people, so a password alone
// never signs them in.
func needsTOTP(r domain.Role) bool { return r == domain.RoleOwner || r == domain.RoleAdmin }

// SignInPassword checks an email and password. orgID may be "" when the person does not
// know it: if the password matches in several organizations the Step lists them (Orgs)
// and the caller asks again with one. Unknown emails cost the same time as known ones.
func (s *Service) SignInPassword(ctx context.Context, orgID, email, password string, m ClientMeta) (Step, error) {
	email = store.NormalizeEmail(email)
	if err := s.allow(m, email); err != nil {
		s.log.Warn("sign-in rate limited", "component", "auth", "ip", m.IP)
		return Step{}, err
	}
	cands, err := s.db.FindUsersByEmail(ctx, orgID, email)
	if err != nil {
		return Step{}, err
	}
	now := s.clock()
	if len(cands) == 0 {
		s.burnHash(password)
		if orgID != "" {
			s.audit(ctx, orgID, "user.sign_in_failed", "user", "", meta(m, map[string]any{"email": email, "method": "password", "reason": "unknown email"}))
		} else {
			s.log.Info("sign-in failed: unknown email", "component", "auth", "ip", m.IP)
		}
		return Step{}, ErrBadCredentials
	}
	var matched, wrong []User
	var locked error
	for _, u := range cands {
		if u.Locked(now) {
			s.burnHash(password)
			locked = lockedError{until: *u.LockedUntil}
			s.audit(userCtx(ctx, u), u.OrgID, "user.sign_in_failed", "user", u.ID, meta(m, map[string]any{"method": "password", "reason": "locked"}))
			continue
		}
		if s.checkPassword(u, password) {
			matched = append(matched, u)
		} else {
			wrong = append(wrong, u)
		}
	}
	// A person with different passwords in two orgs who signs in without naming one is not
	// failing in the other: failures count only when no account matched.
	if len(matched) == 0 {
		for _, u := range wrong {
			if err := s.failed(ctx, u, "password", "wrong password", m); err != nil {
				locked = err
			}
		}
	}
	switch {
	case len(matched) == 0 && locked != nil && len(cands) == 1:
		return Step{}, locked
	case len(matched) == 0:
		return Step{}, ErrBadCredentials
	case len(matched) > 1:
		var st Step
		for _, u := range matched {
			o, err := s.db.GetOrg(ctx, u.OrgID)
			if err != nil {
				return Step{}, err
			}
			st.Orgs = append(st.Orgs, OrgChoice{ID: o.ID, Name: o.Name})
		}
		return st, nil
	}
	return s.firstFactorDone(ctx, matched[0], "password", m)
}

// failed counts a failed attempt against u and audits it; it returns the lock error when
// this failure locked the account.
func (s *Service) failed(ctx context.Context, u User, method, reason string, m ClientMeta) error {
	uctx := userCtx(ctx, u)
	s.audit(uctx, u.OrgID, "user.sign_in_failed", "user", u.ID, meta(m, map[string]any{"method": method, "reason": reason}))
	until, err := s.db.RecordSignInFailure(ctx, u.OrgID, u.ID, s.clock(), MaxFailures, LockoutFor)
	if err != nil {
		s.log.Error("record sign-in failure", "component", "auth", "user_id", u.ID, "err", err)
		return nil
	}
	if until == nil {
		return nil
	}
	s.audit(uctx, u.OrgID, "user.locked", "user", u.ID, meta(m, map[string]any{"until": until, "failures": MaxFailures}))
	return lockedError{until: *until}
}

// firstFactorDone decides what follows a password or a sign-in link: TOTP, TOTP setup
// (owners and admins without it), or a session.
func (s *Service) firstFactorDone(ctx context.Context, u User, method string, m ClientMeta) (Step, error) {
	switch {
	case u.TOTPEnabled:
		ch, err := s.challenge(ctx, u, NeedTOTP, "")
		return Step{Challenge: ch, Need: NeedTOTP}, err
	case needsTOTP(u.Role):
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.issuer, AccountName: u.Email})
		if err != nil {
			return Step{}, fmt.Errorf("generate totp secret: %w", err)
		}
		sealed, err := s.sealTOTP(u.ID, key.Secret())
		if err != nil {
			return Step{}, err
		}
		ch, err := s.challenge(ctx, u, NeedTOTPSetup, sealed)
		return Step{Challenge: ch, Need: NeedTOTPSetup, TOTPURL: key.URL(), TOTPSecret: key.Secret()}, err
	}
	sess, err := s.startSession(ctx, u, method, m, nil, sessionOpts{})
	if err != nil {
		return Step{}, err
	}
	return Step{Session: &sess}, nil
}

func (s *Service) challenge(ctx context.Context, u User, need, data string) (string, error) {
	tok := randomToken()
	now := s.clock()
	err := s.db.CreateOneTimeToken(ctx, store.OneTimeToken{TokenHash: store.HashToken(tok), Kind: store.OneTimeChallenge, UserID: u.ID,
		OrgID: u.OrgID, Need: need, Data: data, CreatedAt: now, ExpiresAt: now.Add(ChallengeTTL)})
	return tok, err
}

// liveUser loads the user a one-time token names, refusing removed, disabled and locked ones.
func (s *Service) liveUser(ctx context.Context, orgID, id string) (User, error) {
	u, err := s.db.GetUser(ctx, orgID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.Active()) {
		return u, ErrNoSession
	}
	if err != nil {
		return u, err
	}
	if u.Locked(s.clock()) {
		return u, lockedError{until: *u.LockedUntil}
	}
	return u, nil
}

// SignInLink starts a sign-in from a one-time link (an invitation or a link from
// NewSignInLink). The link works once; a person without a password sets one next.
func (s *Service) SignInLink(ctx context.Context, linkToken string, m ClientMeta) (Step, error) {
	if err := s.allow(m, ""); err != nil {
		return Step{}, err
	}
	t, err := s.db.UseOneTimeToken(ctx, store.HashToken(strings.TrimSpace(linkToken)), s.clock(), store.OneTimeInvitation, store.OneTimeSignInLink)
	if errors.Is(err, store.ErrOneTimeUsed) {
		s.log.Info("sign-in link refused: unknown, used or expired", "component", "auth", "ip", m.IP)
		return Step{}, linkError{}
	}
	if err != nil {
		return Step{}, err
	}
	u, err := s.liveUser(ctx, t.OrgID, t.UserID)
	if errors.Is(err, ErrNoSession) {
		return Step{}, linkError{}
	}
	if err != nil {
		return Step{}, err
	}
	s.audit(userCtx(ctx, u), u.OrgID, "user.sign_in_link_used", "user", u.ID, meta(m, map[string]any{"kind": t.Kind}))
	if u.PasswordHash == "" {
		ch, err := s.challenge(ctx, u, NeedSetPassword, "")
		return Step{Challenge: ch, Need: NeedSetPassword}, err
	}
	return s.firstFactorDone(ctx, u, "link", m)
}

// peekChallenge returns a live challenge for need and its user.
func (s *Service) peekChallenge(ctx context.Context, challenge string, needs ...string) (store.OneTimeToken, User, error) {
	t, err := s.db.PeekOneTimeToken(ctx, store.HashToken(strings.TrimSpace(challenge)), s.clock(), store.OneTimeChallenge)
	if errors.Is(err, store.ErrOneTimeUsed) {
		return t, User{}, ErrChallengeExpired
	}
	if err != nil {
		return t, User{}, err
	}
	ok := false
	for _, n := range needs {
		ok = ok || n == t.Need
	}
	if !ok {
		return t, User{}, ErrChallengeExpired
	}
	u, err := s.liveUser(ctx, t.OrgID, t.UserID)
	if errors.Is(err, ErrNoSession) {
		return t, u, ErrChallengeExpired
	}
	return t, u, err
}

// useChallenge spends a challenge; losing a race with another use is ErrChallengeExpired.
func (s *Service) useChallenge(ctx context.Context, t store.OneTimeToken) error {
	_, err := s.db.UseOneTimeToken(ctx, t.TokenHash, s.clock(), store.OneTimeChallenge)
	if errors.Is(err, store.ErrOneTimeUsed) {
		return ErrChallengeExpired
	}
	return err
}

// SetPassword sets the first password of an invited person (challenge from SignInLink).
func (s *Service) SetPassword(ctx context.Context, challenge, password string, m ClientMeta) (Step, error) {
	t, u, err := s.peekChallenge(ctx, challenge, NeedSetPassword)
	if err != nil {
		return Step{}, err
	}
	if err := CheckPasswordPolicy(password, u.Email); err != nil {
		return Step{}, err
	}
	hash, err := HashPassword(password, s.argon)
	if err != nil {
		return Step{}, err
	}
	if err := s.useChallenge(ctx, t); err != nil {
		return Step{}, err
	}
	if err := s.db.SetUserPassword(userCtx(ctx, u), u.OrgID, u.ID, hash); err != nil {
		return Step{}, err
	}
	u.PasswordHash = hash
	return s.firstFactorDone(ctx, u, "invitation", m)
}

// VerifyTOTP completes a totp or totp_setup challenge. For totp a recovery code works in
// place of the code (once). Recovery codes are returned only when TOTP was just set up.
// A wrong code counts towards the lockout; the challenge stays usable until it expires.
func (s *Service) VerifyTOTP(ctx context.Context, challenge, code string, m ClientMeta) (Session, []string, error) {
	t, u, err := s.peekChallenge(ctx, challenge, NeedTOTP, NeedTOTPSetup)
	if err != nil {
		return Session{}, nil, err
	}
	if err := s.allow(m, u.Email); err != nil {
		return Session{}, nil, err
	}
	code = normalizeCode(code)
	now := s.clock()
	if t.Need == NeedTOTPSetup {
		secret, err := s.openTOTP(u.ID, t.Data)
		if err != nil {
			return Session{}, nil, err
		}
		step := matchTOTP(secret, code, now)
		if step == 0 {
			if lerr := s.failed(ctx, u, "totp_setup", "wrong code", m); lerr != nil {
				return Session{}, nil, lerr
			}
			return Session{}, nil, badCodeError{}
		}
		if err := s.useChallenge(ctx, t); err != nil {
			return Session{}, nil, err
		}
		sealed, err := s.sealTOTP(u.ID, secret)
		if err != nil {
			return Session{}, nil, err
		}
		codes, hashes := newRecoveryCodes(u.ID)
		if err := s.db.EnableUserTOTP(userCtx(ctx, u), u.OrgID, u.ID, sealed, step, hashes); err != nil {
			return Session{}, nil, err
		}
		sess, err := s.startSession(ctx, u, "password+totp", m, nil, sessionOpts{})
		return sess, codes, err
	}
	ok, method, err := s.checkSecondFactor(ctx, u, code, now)
	if err != nil {
		return Session{}, nil, err
	}
	if !ok {
		if lerr := s.failed(ctx, u, "totp", "wrong code", m); lerr != nil {
			return Session{}, nil, lerr
		}
		return Session{}, nil, badCodeError{}
	}
	if err := s.useChallenge(ctx, t); err != nil {
		return Session{}, nil, err
	}
	sess, err := s.startSession(ctx, u, method, m, nil, sessionOpts{})
	return sess, nil, err
}

// checkSecondFactor accepts a current TOTP code not used before, or an unused recovery code.
func (s *Service) checkSecondFactor(ctx context.Context, u User, code string, now time.Time) (bool, string, error) {
	if !u.TOTPEnabled {
		return false, "", nil
	}
	if len(code) == 6 {
		secret, err := s.openTOTP(u.ID, u.TOTPSecretSealed)
		if err != nil {
			return false, "", err
		}
		step := matchTOTP(secret, code, now)
		if step == 0 || step <= u.TOTPLastStep {
			return false, "", nil
		}
		ok, err := s.db.UseTOTPStep(ctx, u.ID, step)
		return ok, "password+totp", err
	}
	if len(code) == 10 {
		ok, err := s.db.UseRecoveryCode(userCtx(ctx, u), u.OrgID, u.ID, hashRecoveryCode(u.ID, code))
		return ok, "password+recovery_code", err
	}
	return false, "", nil
}

// SignInOIDC signs in a person the organization's identity provider vouched for. The email
// must belong to a user of the org (invited first); the provider's own MFA stands in for
// TOTP. The session's last proof (for revealing secrets) is authTime, when the provider
// last authenticated the person, never later than now; zero (no auth_time) counts as no
// recent proof, so a reveal asks for a re-authentication that makes the provider ask.
func (s *Service) SignInOIDC(ctx context.Context, orgID, issuer, subject, email string, authTime time.Time, m ClientMeta) (Session, error) {
	email = store.NormalizeEmail(email)
	if err := s.allow(m, email); err != nil {
		return Session{}, err
	}
	us, err := s.db.FindUsersByEmail(ctx, orgID, email)
	if err != nil {
		return Session{}, err
	}
	// Refusals are not audited here: the SSO flow audits every refusal it answers, with its
	// reason code, and auditing here too wrote each "no such user" twice.
	if len(us) != 1 || orgID == "" {
		return Session{}, ErrBadCredentials
	}
	u := us[0]
	if !u.Active() {
		return Session{}, ErrBadCredentials
	}
	if u.Locked(s.clock()) {
		return Session{}, lockedError{until: *u.LockedUntil}
	}
	proof := authTime
	if now := s.clock(); proof.After(now) {
		proof = now
	}
	return s.startSession(ctx, u, "oidc", m, map[string]any{"issuer": issuer, "subject": subject}, sessionOpts{Proof: &proof})
}
