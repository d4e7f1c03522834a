package fakejustworks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
)

func token(t *testing.T, s *Server) string {
	t.Helper()
	code := s.Authorize("http://127.0.0.1/cb", []string{"member.detail:read", "member.employment:read", "company.basic:read"})
	resp, err := http.PostForm(s.URL()+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://127.0.0.1/cb"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if resp.StatusCode != 200 || v["expires_at"] == nil || v["scope"] == nil {
		t.Fatalf("token %d %v", resp.StatusCode, v)
	}
	return v["access_token"].(string)
}

func get(t *testing.T, s *Server, tok, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, v
}

func ids(v map[string]any) []string {
	var out []string
	for _, it := range v["items"].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(300, 7, GenOptions{}), Generate(300, 7, GenOptions{})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different members")
	}
	if reflect.DeepEqual(a, Generate(300, 8, GenOptions{})) {
		t.Fatal("different seeds, same members")
	}
	kinds := map[string]int{}
	for _, m := range a {
		kinds[m.Type]++
		if !m.Active {
			kinds["inactive"]++
		}
	}
	for _, k := range []string{"employee", "contractor", "international_employee", "inactive"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s in %v", k, kinds)
		}
	}
	for _, m := range Generate(50, 1, GenOptions{AllActiveUS: true}) {
		if !m.Active || m.Type != "employee" || m.EmploymentTerminationDate != "" {
			t.Fatalf("AllActiveUS gave %+v", m)
		}
	}
}

func TestPagingSemantics(t *testing.T) {
	for _, ordering := range []string{"updated_at", "offset"} {
		t.Run(ordering, func(t *testing.T) {
			s, err := Start(Options{Ordering: ordering})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Load(Generate(30, 1, GenOptions{AllActiveUS: true}))
			tok := token(t, s)
			st, p1 := get(t, s, tok, "/v1/members?limit=10")
			if st != 200 || len(ids(p1)) != 10 {
				t.Fatalf("page1 %d %v", st, p1)
			}
			first := ids(p1)[0]
			// Mutate a member already seen, then continue.
			if _, err := s.UpdateMember(first, func(m *Member) { m.JobTitle = "Moved" }, true); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, id := range ids(p1) {
				seen[id]++
			}
			cur := p1["next_cursor"].(string)
			for cur != "" {
				st, p := get(t, s, tok, "/v1/members?limit=10&cursor="+url.QueryEscape(cur))
				if st != 200 {
					t.Fatalf("status %d", st)
				}
				for _, id := range ids(p) {
					seen[id]++
				}
				cur, _ = p["next_cursor"].(string)
			}
			if len(seen) != 30 {
				t.Fatalf("saw %d distinct", len(seen))
			}
			if ordering == "updated_at" && seen[first] != 2 {
				t.Fatalf("edited member seen %d times, want 2 (keyset on updated_at)", seen[first])
			}
			// Stale cursor.
			s.InvalidateCursors()
			if st, v := get(t, s, tok, "/v1/members?limit=10&cursor="+url.QueryEscape(p1["next_cursor"].(string))); st != 400 {
				t.Fatalf("stale cursor %d %v", st, v)
			}
			// Bad limit and garbage cursor.
			if st, _ := get(t, s, tok, "/v1/members?limit=101"); st != 400 {
				t.Fatalf("limit 101: %d", st)
			}
			if st, _ := get(t, s, tok, "/v1/members?cursor=zz"); st != 400 {
				t.Fatalf("bad cursor: %d", st)
			}
		})
	}
}

func TestAuthErrorsAndScheduledTermination(t *testing.T) {
	s, err := Start(Options{AccessTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Load(Generate(3, 1, GenOptions{AllActiveUS: true}))
	tok := token(t, s)
	if st, _ := get(t, s, "nope", "/v1/company"); st != 401 {
		t.Fatalf("bad token %d", st)
	}
	id := MemberID(2)
	today := s.Now().Format(time.DateOnly)
	if _, err := s.ScheduleTermination(id, today); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Member(id); !m.Active {
		t.Fatal("terminated before the day ended")
	}
	s.Advance(25 * time.Hour) // the access token has expired too
	if st, _ := get(t, s, tok, "/v1/members/"+id); st != 401 {
		t.Fatalf("expired token %d", st)
	}
	if m, _ := s.Member(id); m.Active {
		t.Fatal("termination did not take effect")
	}
	fresh := token(t, s)
	s.LeaveCompany()
	if st, v := get(t, s, fresh, "/v1/company"); st != 403 || v["error"].(map[string]any)["code"] != "company_inactive" {
		t.Fatalf("company left: %d %v", st, v)
	}
}

func TestWebhookDelivery(t *testing.T) {
	secret := []byte("whsec")
	var mu sync.Mutex
	var got []string
	var bad int
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := justworks.HMACVerifier{Secrets: [][]byte{secret}}.Verify(r.Header, body, time.Now())
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			bad++
			w.WriteHeader(401)
			return
		}
		ev, _ := justworks.ParseWebhook(body)
		got = append(got, ev.ProviderType+":"+ev.ID)
		w.WriteHeader(204)
	}))
	defer recv.Close()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Load(Generate(3, 1, GenOptions{AllActiveUS: true}))
	s.Subscribe(recv.URL, secret)
	ctx := context.Background()

	s.ScheduleTermination(MemberID(1), "2099-01-01")
	s.CancelTermination(MemberID(1))
	s.SetChaos(Chaos{Duplicates: 1, Reverse: true})
	res := s.Flush(ctx)
	if len(res) != 4 || len(got) != 4 {
		t.Fatalf("deliveries %v got %v", res, got)
	}
	if !strings.HasPrefix(got[0], "member.employment_state.termination_canceled") || got[0] != got[1] {
		t.Fatalf("order/dupes %v", got)
	}
	// Wrong secret and stale timestamps are rejected and retried later.
	for _, c := range []Chaos{{WrongSecret: true}, {StaleBy: time.Hour}} {
		s.SetChaos(c)
		s.RenameDepartment("dep_eng", "Platform")
		if res := s.Flush(ctx); len(res) != 1 || res[0].Status != 401 {
			t.Fatalf("%+v: %+v", c, res)
		}
		if s.Pending() != 1 {
			t.Fatalf("failed event not kept for retry: %d", s.Pending())
		}
		s.SetChaos(Chaos{})
		if res := s.Flush(ctx); len(res) != 1 || res[0].Status != 204 {
			t.Fatalf("redelivery %+v", res)
		}
	}
	if bad != 2 {
		t.Fatalf("bad %d", bad)
	}
	// Tampered body via Deliver.
	body := s.NewEvent("member.profile.updated", Member{ID: "m"})
	if d := s.Deliver(ctx, recv.URL, secret, body, DeliverOptions{TamperBody: true}); d.Status != 401 {
		t.Fatalf("tampered %+v", d)
	}
}

func TestSimulateOnlyInTour(t *testing.T) {
	var got []string
	var mu sync.Mutex
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get(justworks.SignatureHeader)+" "+string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	for _, tour := range []bool{false, true} {
		s, err := Start(Options{Tour: tour})
		if err != nil {
			t.Fatal(err)
		}
		id := s.Subscribe(recv.URL, []byte("k"))
		tok := token(t, s)
		req, _ := http.NewRequest("POST", s.URL()+"/v1/webhooks/"+id+"/simulate", strings.NewReader(`{"payload_override":{"id":"evt_sim","event_type":"member.profile.updated","data":{"id":"mem_x"}}}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[bool]int{false: 404, true: 200}[tour]
		if resp.StatusCode != want {
			t.Fatalf("tour=%v: status %d", tour, resp.StatusCode)
		}
		s.Close()
	}
	if len(got) != 1 || !strings.Contains(got[0], "evt_sim") || strings.HasPrefix(got[0], " ") {
		t.Fatalf("simulated deliveries %q", got)
	}
}

// The cursor faults hand out the cursors they promise: the same one forever,
// or A→B→A, for as many pages as asked, then page normally.
func TestCursorFaults(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Load(Generate(50, 1, GenOptions{AllActiveUS: true}))
	tok := token(t, s)
	page := func(cur string) string {
		t.Helper()
		path := "/v1/members?limit=10"
		if cur != "" {
			path += "&cursor=" + url.QueryEscape(cur)
		}
		st, p := get(t, s, tok, path)
		if st != 200 {
			t.Fatalf("%s: %d %v", path, st, p)
		}
		next, _ := p["next_cursor"].(string)
		return next
	}
	t.Run("stuck", func(t *testing.T) {
		s.SetCursorFault(CursorFault{Mode: CursorStuck, Pages: 3})
		a := page("")
		for i := 0; i < 3; i++ {
			if got := page(a); got != a {
				t.Fatalf("stuck page %d: next %q, want %q", i, got, a)
			}
		}
		if got := page(a); got == a || got == "" {
			t.Fatalf("after the fault's pages: next %q", got)
		}
	})
	t.Run("cycle", func(t *testing.T) {
		s.SetCursorFault(CursorFault{Mode: CursorCycle})
		a := page("")
		b := page(a)
		if b == "" || b == a {
			t.Fatalf("b %q", b)
		}
		for i := 0; i < 3; i++ {
			if got := page(b); got != a {
				t.Fatalf("b → %q, want a", got)
			}
			if got := page(a); got != b {
				t.Fatalf("a → %q, want b", got)
			}
		}
	})
	t.Run("cleared", func(t *testing.T) {
		s.SetCursorFault(CursorFault{})
		n, cur := 0, page("")
		for ; cur != ""; n++ {
			cur = page(cur)
		}
		if n != 4 {
			t.Fatalf("%d more pages after the first, want 4", n)
		}
	})
}
