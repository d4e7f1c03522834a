package justworks_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
)

type memStore struct {
	mu    sync.Mutex
	g     hris.Grant
	saves int
}

func (m *memStore) Load(context.Context) (hris.Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.g, nil
}

func (m *memStore) Save(_ context.Context, g hris.Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.g = g
	m.saves++
	return nil
}

type sleepRec struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepRec) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

type env struct {
	fake  *fakejustworks.Server
	p     *justworks.Provider
	dir   hris.Directory
	store *memStore
	sleep *sleepRec
}

const redirect = "http://127.0.0.1:1/callback"

func newProvider(t *testing.T, fake *fakejustworks.Server, mut func(*justworks.Config)) (*justworks.Provider, *sleepRec) {
	t.Helper()
	sr := &sleepRec{}
	cfg := justworks.Config{
		ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret(), RedirectURL: redirect,
		BaseURL: fake.URL(), AuthorizeURL: fake.AuthorizeURL(),
		Sleep: sr.sleep, RefreshSkew: time.Minute,
	}
	if mut != nil {
		mut(&cfg)
	}
	p, err := justworks.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, sr
}

// authorize walks the consent redirect over HTTP like a browser.
func authorize(t *testing.T, p *justworks.Provider) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(p.AuthCodeURL("st4te"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		t.Fatalf("bad redirect %s", loc)
	}
	return loc.Query().Get("code")
}

func setup(t *testing.T, opts fakejustworks.Options, n int, mut func(*justworks.Config)) *env {
	t.Helper()
	fake, err := fakejustworks.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	if n > 0 {
		fake.Load(fakejustworks.Generate(n, 42, fakejustworks.GenOptions{}))
	}
	p, sr := newProvider(t, fake, mut)
	g, err := p.Exchange(context.Background(), authorize(t, p))
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{g: g}
	return &env{fake: fake, p: p, dir: p.Directory("conn1", st), store: st, sleep: sr}
}

func listAll(ctx context.Context, d hris.Directory, opt hris.ListOptions) ([]hris.Member, int, error) {
	var out []hris.Member
	pages := 0
	for {
		pg, err := d.ListMembers(ctx, opt)
		if err != nil {
			return out, pages, err
		}
		pages++
		out = append(out, pg.Items...)
		if pg.NextCursor == "" {
			return out, pages, nil
		}
		opt.Cursor = pg.NextCursor
	}
}

func TestAuthCodeURLAndExchange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn bool
	}{{"expires_at", false}, {"expires_in", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakejustworks.Options{ExpiresIn: tc.expiresIn, AccessTTL: 2 * time.Hour}, 0, nil)
			u, _ := url.Parse(e.p.AuthCodeURL("xyz"))
			q := u.Query()
			if q.Get("response_type") != "code" || q.Get("client_id") != "fake-client-id" || q.Get("redirect_uri") != redirect {
				t.Fatalf("auth url %s", u)
			}
			if got := q.Get("scope"); got != "member.detail:read member.employment:read company.basic:read" {
				t.Fatalf("scope %q", got)
			}
			g := e.store.g
			if g.AccessToken == "" || g.RefreshToken == "" {
				t.Fatalf("grant %+v", g)
			}
			if d := time.Until(g.Expiry); d < 110*time.Minute || d > 121*time.Minute {
				t.Fatalf("expiry in %s, want ~2h", d)
			}
			if !g.HasScope("member.employment:read") {
				t.Fatalf("scopes %v", g.Scopes)
			}
		})
	}
}

func TestExchangeBadCode(t *testing.T) {
	e := setup(t, fakejustworks.Options{}, 0, nil)
	_, err := e.p.Exchange(context.Background(), "code_bogus")
	if !errors.Is(err, hris.ErrReauthorize) {
		t.Fatalf("err %v", err)
	}
}

func TestPagingAndFilters(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 250, nil)
	all, pages, err := listAll(ctx, e.dir, hris.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 250 || pages != 3 {
		t.Fatalf("got %d members in %d pages", len(all), pages)
	}
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.ExternalID] {
			t.Fatalf("dup %s", m.ExternalID)
		}
		seen[m.ExternalID] = true
	}
	active, _, err := listAll(ctx, e.dir, hris.ListOptions{Status: "active", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, m := range e.fake.Members() {
		if m.Active {
			want++
		}
	}
	if len(active) != want || want == 250 {
		t.Fatalf("active %d want %d", len(active), want)
	}
	// updated_at_gte only returns what changed since.
	since := e.fake.Now().Add(-time.Second)
	for _, id := range []string{fakejustworks.MemberID(3), fakejustworks.MemberID(77)} {
		if _, err := e.fake.UpdateMember(id, func(m *fakejustworks.Member) { m.JobTitle = "Changed" }, true); err != nil {
			t.Fatal(err)
		}
	}
	changed, _, err := listAll(ctx, e.dir, hris.ListOptions{UpdatedSince: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 || changed[0].Title != "Changed" {
		t.Fatalf("changed %+v", changed)
	}
	req := e.fake.Requests()
	if last := req[len(req)-1]; !strings.Contains(last.Query, "updated_at_gte=") || !strings.Contains(last.Query, "limit=100") {
		t.Fatalf("query %q", last.Query)
	}
}

func TestTokenExpiryMidScanRefreshesOnceAndRetriesCursor(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{AccessTTL: time.Hour}, 250, nil)
	oldRefresh := e.store.g.RefreshToken
	e.fake.OnMembersPage(func(page int) {
		if page == 2 {
			e.fake.Advance(2 * time.Hour) // access token expires between pages
		}
	})
	all, _, err := listAll(ctx, e.dir, hris.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 250 {
		t.Fatalf("got %d", len(all))
	}
	if st := e.fake.Stats(); st.TokenRefreshes != 1 {
		t.Fatalf("refreshes %d", st.TokenRefreshes)
	}
	if e.store.g.RefreshToken == oldRefresh {
		t.Fatal("rotated refresh token not persisted")
	}
	var statuses []int
	reqs := e.fake.Requests()
	for _, r := range reqs {
		statuses = append(statuses, r.Status)
	}
	// The clock moves while page 2 is served, so page 3 gets the 401 and is
	// retried with the same cursor.
	if !slices.Equal(statuses, []int{200, 200, 401, 200}) || reqs[2].Query != reqs[3].Query {
		t.Fatalf("requests %+v", reqs)
	}
	// The rotated-away refresh token is dead.
	p2, _ := newProvider(t, e.fake, nil)
	_, err = p2.Directory("x", &memStore{g: hris.Grant{RefreshToken: oldRefresh}}).GetCompany(ctx)
	if !errors.Is(err, hris.ErrReauthorize) {
		t.Fatalf("old refresh token: %v", err)
	}
}

func TestRefreshSingleFlight(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 5, nil)
	e.fake.ExpireAccessTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.dir.GetMember(ctx, fakejustworks.MemberID(1+i%5))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.Stats().TokenRefreshes; n != 1 {
		t.Fatalf("refreshes %d, want 1", n)
	}
}

func TestRefreshAheadOfExpiry(t *testing.T) {
	ctx := context.Background()
	// Access tokens live 30 s; skew is a minute: every use refreshes first, without a 401.
	e := setup(t, fakejustworks.Options{AccessTTL: 30 * time.Second}, 3, nil)
	if _, err := e.dir.GetCompany(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.fake.Requests() {
		if r.Status == 401 {
			t.Fatalf("unexpected 401: %+v", r)
		}
	}
	if e.fake.Stats().TokenRefreshes != 1 || e.store.saves != 1 {
		t.Fatalf("refreshes %d saves %d", e.fake.Stats().TokenRefreshes, e.store.saves)
	}
}

func TestSecondReplicaAdoptsRotatedToken(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 3, nil)
	pB, _ := newProvider(t, e.fake, nil)
	dirB := pB.Directory("conn1", e.store) // same stored grant, separate process state
	if _, err := dirB.GetCompany(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.ExpireAccessTokens()
	if _, err := e.dir.GetCompany(ctx); err != nil { // replica A refreshes and rotates
		t.Fatal(err)
	}
	if _, err := dirB.GetCompany(ctx); err != nil { // B's cached token is dead; it adopts A's
		t.Fatalf("replica B: %v", err)
	}
	if n := e.fake.Stats().TokenRefreshes; n != 1 {
		t.Fatalf("refreshes %d", n)
	}
}

func TestGrantEnds(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		do   func(e *env)
		want error
	}{
		{"revoked in Justworks", func(e *env) { e.fake.RevokeAllGrants() }, hris.ErrReauthorize},
		{"refresh token expired", func(e *env) { e.fake.Advance(31 * 24 * time.Hour) }, hris.ErrReauthorize},
		{"revoked by us", func(e *env) {
			if err := e.p.Revoke(ctx, e.store.g); err != nil {
				panic(err)
			}
		}, hris.ErrReauthorize},
		{"company left", func(e *env) { e.fake.LeaveCompany() }, hris.ErrCompanyGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakejustworks.Options{}, 3, nil)
			if _, err := e.dir.GetCompany(ctx); err != nil {
				t.Fatal(err)
			}
			tc.do(e)
			_, err := e.dir.ListMembers(ctx, hris.ListOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRetryAfterAndBursts(t *testing.T) {
	ctx := context.Background()
	t.Run("429 honours Retry-After", func(t *testing.T) {
		e := setup(t, fakejustworks.Options{}, 10, nil)
		e.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 429, RetryAfter: "3", Times: 2})
		pg, err := e.dir.ListMembers(ctx, hris.ListOptions{})
		if err != nil || len(pg.Items) != 10 {
			t.Fatalf("page %v err %v", pg, err)
		}
		if !slices.Equal(e.sleep.d, []time.Duration{3 * time.Second, 3 * time.Second}) {
			t.Fatalf("sleeps %v", e.sleep.d)
		}
	})
	t.Run("Retry-After capped", func(t *testing.T) {
		e := setup(t, fakejustworks.Options{}, 1, func(c *justworks.Config) { c.MaxRetryAfter = time.Second })
		e.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 429, RetryAfter: "3600"})
		if _, err := e.dir.ListMembers(ctx, hris.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(e.sleep.d, []time.Duration{time.Second}) {
			t.Fatalf("sleeps %v", e.sleep.d)
		}
	})
	t.Run("5xx burst recovers with backoff", func(t *testing.T) {
		e := setup(t, fakejustworks.Options{}, 1, nil)
		e.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 503, Times: 4})
		if _, err := e.dir.ListMembers(ctx, hris.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(e.sleep.d) != 4 || e.sleep.d[3] < e.sleep.d[0] {
			t.Fatalf("sleeps %v", e.sleep.d)
		}
	})
	t.Run("5xx beyond attempts is ErrUnavailable", func(t *testing.T) {
		e := setup(t, fakejustworks.Options{}, 1, func(c *justworks.Config) { c.MaxAttempts = 3 })
		e.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 500, Times: 10})
		_, err := e.dir.ListMembers(ctx, hris.ListOptions{})
		if !errors.Is(err, hris.ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("token endpoint 503 retried", func(t *testing.T) {
		e := setup(t, fakejustworks.Options{}, 1, nil)
		e.fake.ExpireAccessTokens()
		e.fake.InjectFault(fakejustworks.Fault{Path: "/oauth/token", Status: 503})
		if _, err := e.dir.GetCompany(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStaleCursorAndNotFound(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 150, nil)
	pg, err := e.dir.ListMembers(ctx, hris.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.InvalidateCursors()
	_, err = e.dir.ListMembers(ctx, hris.ListOptions{Cursor: pg.NextCursor})
	if !errors.Is(err, hris.ErrStaleCursor) {
		t.Fatalf("err %v", err)
	}
	_, err = e.dir.GetMember(ctx, "mem_nobody")
	if !errors.Is(err, hris.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

func TestMalformedRecordsSkipped(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 5, nil)
	e.fake.PutRaw("bad_active", []byte(`{"id":"bad_active","company_id":"co_fake","active":"yes"}`))
	e.fake.PutRaw("bad_noid", []byte(`{"company_id":"co_fake","active":true}`))
	e.fake.PutRaw("bad_date", []byte(`{"id":"bad_date","company_id":"co_fake","active":true,"employment_start_date":"13/01/2026"}`))
	e.fake.PutRaw("bad_json", []byte(`[1,2]`))
	pg, err := e.dir.ListMembers(ctx, hris.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Items) != 5 || len(pg.Skipped) != 4 {
		t.Fatalf("items %d skipped %+v", len(pg.Items), pg.Skipped)
	}
	ids := []string{}
	for _, s := range pg.Skipped {
		if s.Reason == "" {
			t.Fatal("empty reason")
		}
		ids = append(ids, s.ExternalID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"", "", "bad_active", "bad_date"}) {
		t.Fatalf("skipped ids %v", ids)
	}
}

func TestNarrowScopes(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{GrantScopes: []string{"member.basic:read", "company.basic:read"}}, 3, nil)
	m, err := e.dir.GetMember(ctx, fakejustworks.MemberID(1))
	if err != nil {
		t.Fatal(err)
	}
	if m.Fields.Has(hris.FieldsDetail) || m.Fields.Has(hris.FieldsEmployment) || !m.Fields.Has(hris.FieldsBasic) {
		t.Fatalf("fields %b", m.Fields)
	}
	if !m.Address.IsZero() || m.StartDate != "" || m.WorkEmail == "" {
		t.Fatalf("member %+v", m)
	}
}

func TestCompanyAndWebhookManagement(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 0, nil)
	c, err := e.dir.GetCompany(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "co_fake" || c.Name != "Acme Fake Co" || len(c.Departments) != 7 || c.Departments[0] != (hris.Department{ID: "dep_eng", Name: "Engineering"}) {
		t.Fatalf("company %+v", c)
	}
	id := e.fake.Subscribe("http://127.0.0.1:1/nowhere", []byte("s"))
	wm := e.dir.(hris.WebhookManager)
	hooks, err := wm.ListWebhooks(ctx, "opened")
	if err != nil || len(hooks) != 1 || hooks[0].ID != id {
		t.Fatalf("hooks %+v err %v", hooks, err)
	}
	// Five failed deliveries close it.
	for i := 0; i < 5; i++ {
		e.fake.AddMember(fakejustworks.Member{Active: true})
		e.fake.Flush(ctx)
	}
	closed, err := wm.ListWebhooks(ctx, "closed")
	if err != nil || len(closed) != 1 {
		t.Fatalf("closed %+v err %v", closed, err)
	}
	if err := wm.ResumeWebhook(ctx, id); err != nil {
		t.Fatal(err)
	}
	if s := e.fake.WebhookStatus(id); s != "opened" {
		t.Fatalf("status %s", s)
	}
}

// Two replicas refresh at once: the loser's invalid_grant is resolved by the
// winner's token once it lands in the store, not by ending the grant.
func TestConcurrentReplicaRefreshRace(t *testing.T) {
	ctx := context.Background()
	e := setup(t, fakejustworks.Options{}, 3, nil)
	if _, err := e.dir.GetCompany(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.ExpireAccessTokens()
	// Replica B reads a stale grant three times before A's save is visible.
	slow := &delayedStore{memStore: e.store}
	pB, _ := newProvider(t, e.fake, nil)
	dirB := pB.Directory("conn1", slow)
	old := e.store.g
	if _, err := e.dir.GetCompany(ctx); err != nil { // A refreshes and rotates
		t.Fatal(err)
	}
	slow.stale = &old
	if _, err := dirB.GetCompany(ctx); err != nil {
		t.Fatalf("replica B gave up the grant: %v", err)
	}
}

// delayedStore returns a stale grant for the first loads after stale is set.
type delayedStore struct {
	*memStore
	mu    sync.Mutex
	stale *hris.Grant
	loads int
}

func (d *delayedStore) Load(ctx context.Context) (hris.Grant, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loads++
	if d.stale != nil && d.loads <= 3 {
		return *d.stale, nil
	}
	return d.memStore.Load(ctx)
}
