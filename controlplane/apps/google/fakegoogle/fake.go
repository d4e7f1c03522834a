// Package fakegoogle is a faithful fake of the Google endpoints the google
// connector calls: the OAuth token endpoint (JWT bearer and refresh-token
// grants, with the assertion's signature, sub and scopes checked), the Admin
// SDK Directory API (users, signOut, groups, members), the Data Transfer API
// and Gmail's vacation settings, with Google's paths, query parameters,
// response shapes and error bodies (REFERENCE.md says where each comes from).
// It listens on loopback; tests inspect its state and turn its knobs.
package fakegoogle

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure the fake tenant.
type Options struct {
	Domain     string // default "example.com"
	CustomerID string // default "C0fake01"; "my_customer" is accepted too
	// Admins may be the JWT sub of an admin token (default admin@Domain).
	Admins []string
	// ServiceAccountKey is the key JSON whose public half the token endpoint
	// trusts; nil means New generates one (see Server.ServiceAccountKey).
	ServiceAccountKey []byte
	// DelegatedScopes are the scopes the domain-wide delegation grants the
	// service account (default: all five the connector uses).
	DelegatedScopes []string
	// OAuth refresh-token credential the token endpoint accepts.
	ClientID, ClientSecret, RefreshToken string
}

// User is a stored Directory user.
type User struct {
	ID                        string
	PrimaryEmail              string
	GivenName, FamilyName     string
	Suspended                 bool
	ExternalIDs               []map[string]string
	Organizations             []map[string]any
	OrgUnitPath               string
	ChangePasswordAtNextLogin bool
	HasPassword               bool
	CreationTime              time.Time
	// SuspendedAt and SignedOutAt are when the account was last suspended and signed out
	// (what a benchmark of the offboarding's access step measures).
	SuspendedAt, SignedOutAt time.Time
}

// Transfer is a recorded Data Transfer request.
type Transfer struct {
	ID, OldOwnerUserID, NewOwnerUserID string
	ApplicationDataTransfers           []map[string]any
}

// Vacation is a mailbox's auto-reply settings.
type Vacation struct {
	EnableAutoReply       bool   `json:"enableAutoReply"`
	ResponseSubject       string `json:"responseSubject,omitempty"`
	ResponseBodyPlainText string `json:"responseBodyPlainText,omitempty"`
	RestrictToContacts    bool   `json:"restrictToContacts"`
	RestrictToDomain      bool   `json:"restrictToDomain"`
}

type token struct {
	sub    string
	scopes map[string]bool
}

// Server is the running fake.
type Server struct {
	URL string
	// ServiceAccountKey is the key JSON a connector should be given; its
	// token_uri points at this fake.
	ServiceAccountKey []byte

	opts Options
	pub  *rsa.PublicKey
	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	mu        sync.Mutex
	nextID    int
	users     map[string]*User           // id → user
	groups    map[string]map[string]bool // group email → member user ids
	signOuts  map[string]int             // user id → count
	transfers []Transfer
	vacation  map[string]Vacation // email → settings
	tokens    map[string]token
	revoked   bool
	throttle  int    // next N API calls throttled
	throttleM string // "403" or "429"
	fail      int    // next N API calls answered 503
	hang      bool
	calls     []string // "METHOD path" of every API call
}

// Start runs the fake on 127.0.0.1 until ctx ends or Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	if o.CustomerID == "" {
		o.CustomerID = "C0fake01"
	}
	if len(o.Admins) == 0 {
		o.Admins = []string{"admin@" + o.Domain}
	}
	if o.DelegatedScopes == nil {
		o.DelegatedScopes = []string{
			"https://www.googleapis.com/auth/admin.directory.user",
			"https://www.googleapis.com/auth/admin.directory.user.security",
			"https://www.googleapis.com/auth/admin.directory.group",
			"https://www.googleapis.com/auth/admin.datatransfer",
			"https://www.googleapis.com/auth/gmail.settings.basic",
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: listen: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), opts: o, ln: ln, done: make(chan struct{}),
		users: map[string]*User{}, groups: map[string]map[string]bool{}, signOuts: map[string]int{},
		vacation: map[string]Vacation{}, tokens: map[string]token{}}
	key := o.ServiceAccountKey
	if key == nil {
		if key, err = NewServiceAccountKey(s.URL+"/token", "lanyard@fake-project.iam.gserviceaccount.com"); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if s.pub, err = publicKey(key); err != nil {
		ln.Close()
		return nil, err
	}
	s.ServiceAccountKey = key
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ends with Close
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// Close stops the fake and releases hung requests.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
		close(s.done)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// NewServiceAccountKey makes a service account key JSON (RSA 2048) in
// Google's download format.
func NewServiceAccountKey(tokenURI, email string) ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: key: %w", err)
	}
	return json.Marshal(map[string]string{
		"type": "service_account", "project_id": "fake-project", "private_key_id": "fakekey1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "100000000000000000001", "token_uri": tokenURI,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
}

func publicKey(keyJSON []byte) (*rsa.PublicKey, error) {
	var k struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(keyJSON, &k); err != nil {
		return nil, fmt.Errorf("fakegoogle: key json: %w", err)
	}
	b, _ := pem.Decode([]byte(k.PrivateKey))
	if b == nil {
		return nil, errors.New("fakegoogle: key json: no PEM private key")
	}
	pk, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: key: %w", err)
	}
	rk, ok := pk.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("fakegoogle: key is not RSA")
	}
	return &rk.PublicKey, nil
}

// ---- knobs ----

// Throttle answers the next n API calls with 403 userRateLimitExceeded
// (status 403) or 429 RESOURCE_EXHAUSTED with Retry-After: 7 (status 429).
func (s *Server) Throttle(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle, s.throttleM = n, strconv.Itoa(status)
}

// FailNext answers the next n API calls with 503.
func (s *Server) FailNext(n int) { s.mu.Lock(); s.fail = n; s.mu.Unlock() }

// Revoke refuses every grant (400 invalid_grant) and invalidates issued tokens.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	s.tokens = map[string]token{}
}

// Hang makes API calls wait until the client gives up (or Close).
func (s *Server) Hang(on bool) { s.mu.Lock(); s.hang = on; s.mu.Unlock() }

// ---- seeding and inspection ----

// AddUser seeds a user and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	u.ID = fmt.Sprintf("1%020d", s.nextID)
	u.PrimaryEmail = strings.ToLower(u.PrimaryEmail)
	if u.CreationTime.IsZero() {
		u.CreationTime = time.Now().UTC()
	}
	s.users[u.ID] = &u
	return u.ID
}

// AddGroup seeds an empty group.
func (s *Server) AddGroup(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[strings.ToLower(email)] = map[string]bool{}
}

// User returns a copy of the user with that email or id.
func (s *Server) User(key string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(key)
	if u == nil {
		return User{}, false
	}
	return *u, true
}

// Rename changes a user's primary email (an admin renaming them in Google).
func (s *Server) Rename(key, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.lookup(key); u != nil {
		u.PrimaryEmail = strings.ToLower(email)
	}
}

// SetSuspended turns an account off or back on, as an admin does in the Admin
// console (reconciliation tests: a leaver turned back on by hand).
func (s *Server) SetSuspended(key string, suspended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.lookup(key); u != nil {
		u.Suspended = suspended
	}
}

// SignOuts is how many times the user was signed out.
func (s *Server) SignOuts(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.lookup(key); u != nil {
		return s.signOuts[u.ID]
	}
	return 0
}

// Members returns a group's member emails, sorted.
func (s *Server) Members(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.groups[strings.ToLower(group)] {
		if u := s.users[id]; u != nil {
			out = append(out, u.PrimaryEmail)
		}
	}
	sort.Strings(out)
	return out
}

// Transfers returns the recorded Data Transfer requests.
func (s *Server) Transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transfer(nil), s.transfers...)
}

// Vacation returns a mailbox's auto-reply settings.
func (s *Server) Vacation(email string) Vacation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vacation[strings.ToLower(email)]
}

// Calls returns "METHOD path" for every API call so far.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Server) lookup(key string) *User {
	key = strings.ToLower(key)
	if u, ok := s.users[key]; ok {
		return u
	}
	for _, u := range s.users {
		if u.PrimaryEmail == key {
			return u
		}
	}
	return nil
}

// ---- token endpoint ----

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	s.mu.Lock()
	revoked := s.revoked
	s.mu.Unlock()
	var tok token
	switch r.PostForm.Get("grant_type") {
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		t, code, desc := s.checkAssertion(r.PostForm.Get("assertion"))
		if code != "" {
			oauthError(w, http.StatusBadRequest, code, desc)
			return
		}
		tok = t
	case "refresh_token":
		if s.opts.RefreshToken == "" || r.PostForm.Get("refresh_token") != s.opts.RefreshToken ||
			r.PostForm.Get("client_id") != s.opts.ClientID || r.PostForm.Get("client_secret") != s.opts.ClientSecret {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
			return
		}
		tok = token{sub: s.opts.Admins[0], scopes: map[string]bool{}}
		for _, sc := range s.opts.DelegatedScopes {
			tok.scopes[sc] = true
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	if revoked {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	access := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.tokens[access] = tok
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "expires_in": 3599, "token_type": "Bearer"})
}

// checkAssertion verifies an RS256 JWT bearer assertion as Google does: the
// signature against the service account's key, iss, aud = the token URL,
// exp/iat, scopes within the delegation, and sub in the domain.
func (s *Server) checkAssertion(a string) (token, string, string) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return token{}, "invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
	}
	sig, err := b64(parts[2])
	if err != nil {
		return token{}, "invalid_grant", "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.pub, crypto.SHA256, sum[:], sig) != nil {
		return token{}, "invalid_grant", "Invalid JWT Signature."
	}
	body, err := b64(parts[1])
	if err != nil {
		return token{}, "invalid_grant", "Invalid JWT."
	}
	var c struct {
		Iss, Scope, Aud, Sub string
		Exp, Iat             int64
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return token{}, "invalid_grant", "Invalid JWT."
	}
	now := time.Now().Unix()
	if c.Exp < now || c.Iat > now+300 || c.Exp-c.Iat > 3600 {
		return token{}, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	if c.Aud != s.URL+"/token" {
		return token{}, "invalid_grant", "Invalid JWT audience: " + c.Aud
	}
	if c.Sub == "" || !strings.HasSuffix(strings.ToLower(c.Sub), "@"+s.opts.Domain) {
		return token{}, "invalid_grant", "Invalid email or User ID"
	}
	tok := token{sub: strings.ToLower(c.Sub), scopes: map[string]bool{}}
	allowed := map[string]bool{}
	for _, sc := range s.opts.DelegatedScopes {
		allowed[sc] = true
	}
	for _, sc := range strings.Fields(c.Scope) {
		if !allowed[sc] {
			return token{}, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
		}
		tok.scopes[sc] = true
	}
	if len(tok.scopes) == 0 {
		return token{}, "invalid_scope", "Empty or missing scope not allowed."
	}
	return tok, "", ""
}
