package justworks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// Directory implements hris.Directory for one connection.
type Directory struct {
	p  *Provider
	ts *tokenSource
}

var (
	_ hris.Directory      = (*Directory)(nil)
	_ hris.WebhookManager = (*Directory)(nil)
)

// Directory implements hris.Provider. Directories of the same connID share
// one token state, so refreshes are single-flight per connection.
func (p *Provider) Directory(connID string, ts hris.TokenStore) hris.Directory {
	return &Directory{p: p, ts: p.source(connID, ts)}
}

// apiError is a non-2xx answer; the body is kept only for logs and for the
// few error codes we recognise.
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("status %d (%s)", e.Status, e.Code)
	}
	return fmt.Sprintf("status %d", e.Status)
}

func parseAPIError(status int, body []byte) *apiError {
	e := &apiError{Status: status}
	// The error body is undocumented (API.md §7); try the common shapes.
	var v struct {
		Error json.RawMessage `json:"error"`
		Code  string          `json:"code"`
	}
	if json.Unmarshal(body, &v) == nil {
		var obj struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &obj) == nil && obj.Code != "":
			e.Code, e.Msg = obj.Code, obj.Message
		case json.Unmarshal(v.Error, &s) == nil:
			e.Code = s
		default:
			e.Code = v.Code
		}
	}
	return e
}

func backoff(cfg Config, attempt int) time.Duration {
	d := cfg.BackoffBase << min(attempt-1, 16)
	if d > cfg.BackoffMax || d <= 0 {
		d = cfg.BackoffMax
	}
	// Full jitter on the upper half.
	return d/2 + rand.N(d/2+1)
}

// do runs one API request with auth, one forced refresh on 401, and retries of
// 429/5xx/network errors honouring Retry-After.
func (d *Directory) do(ctx context.Context, method, path string, q url.Values, out any) error {
	cfg := d.p.cfg
	u := cfg.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	refreshed := false
	var last error
	for attempt := 1; ; attempt++ {
		g, err := d.ts.token(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return fmt.Errorf("justworks: %s %s: %w", method, path, err)
		}
		req.Header.Set("Authorization", "Bearer "+g.AccessToken)
		req.Header.Set("Accept", "application/json")
		resp, err := cfg.HTTPClient.Do(req)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = fmt.Errorf("justworks: %s %s: %w", method, path, err)
		} else {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				last = fmt.Errorf("justworks: %s %s: read body: %w", method, path, rerr)
			case resp.StatusCode/100 == 2:
				if out == nil {
					return nil
				}
				if err := json.Unmarshal(body, out); err != nil {
					return fmt.Errorf("justworks: %s %s: decode: %w", method, path, err)
				}
				return nil
			case resp.StatusCode == http.StatusUnauthorized:
				if refreshed {
					return fmt.Errorf("justworks: %s %s: 401 after refresh: %w", method, path, hris.ErrReauthorize)
				}
				refreshed = true
				if _, err := d.ts.invalidate(ctx, g.AccessToken); err != nil {
					return err
				}
				attempt-- // a refresh is not a retry
				continue
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				last = fmt.Errorf("justworks: %s %s: %w: %w", method, path, parseAPIError(resp.StatusCode, body), hris.ErrUnavailable)
				if ra, ok := retryAfter(resp.Header.Get("Retry-After"), cfg.Now()); ok {
					wait = min(ra, cfg.MaxRetryAfter)
				}
			default:
				return d.classify(method, path, q, parseAPIError(resp.StatusCode, body))
			}
		}
		if attempt >= cfg.MaxAttempts {
			if !errors.Is(last, hris.ErrUnavailable) {
				last = fmt.Errorf("%w: %w", last, hris.ErrUnavailable)
			}
			return last
		}
		if wait == 0 {
			wait = backoff(cfg, attempt)
		}
		cfg.Logger.DebugContext(ctx, "retrying request", "path", path, "attempt", attempt, "wait", wait, "err", last)
		if err := cfg.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (d *Directory) classify(method, path string, q url.Values, e *apiError) error {
	switch {
	case e.Status == http.StatusNotFound && path == "/v1/company":
		return fmt.Errorf("justworks: %s %s: %w: %w", method, path, e, hris.ErrCompanyGone)
	case e.Status == http.StatusNotFound:
		return fmt.Errorf("justworks: %s %s: %w: %w", method, path, e, hris.ErrNotFound)
	case e.Status == http.StatusForbidden && isCompanyGoneCode(e.Code):
		return fmt.Errorf("justworks: %s %s: %w: %w", method, path, e, hris.ErrCompanyGone)
	case e.Status == http.StatusForbidden:
		return fmt.Errorf("justworks: %s %s: %w: %w", method, path, e, hris.ErrForbidden)
	case e.Status == http.StatusBadRequest && q.Get("cursor") != "":
		// A 400 on a request with a cursor: the cursor expired or the data
		// moved under it. The caller restarts the scan.
		return fmt.Errorf("justworks: %s %s: %w: %w", method, path, e, hris.ErrStaleCursor)
	}
	return fmt.Errorf("justworks: %s %s: %w", method, path, e)
}

// isCompanyGoneCode: how Justworks signals a company that left is undocumented
// [GUESS]; these are the codes we treat as "company gone".
func isCompanyGoneCode(c string) bool {
	switch strings.ToLower(c) {
	case "company_inactive", "company_terminated", "company_not_found", "company_deactivated":
		return true
	}
	return false
}

type memberList struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor *string           `json:"next_cursor"`
}

// ListMembers implements hris.Directory. Records that cannot be parsed are
// returned in Page.Skipped.
func (d *Directory) ListMembers(ctx context.Context, opt hris.ListOptions) (*hris.Page, error) {
	q := url.Values{}
	limit := opt.Limit
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	q.Set("limit", strconv.Itoa(limit))
	if opt.Cursor != "" {
		q.Set("cursor", opt.Cursor)
	}
	if opt.Status != "" {
		q.Set("status", opt.Status)
	}
	if !opt.UpdatedSince.IsZero() {
		q.Set("updated_at_gte", opt.UpdatedSince.UTC().Format(time.RFC3339))
	}
	var ml memberList
	if err := d.do(ctx, http.MethodGet, "/v1/members", q, &ml); err != nil {
		return nil, err
	}
	g, _ := d.ts.token(ctx)
	fields := fieldsFor(g.Scopes)
	page := &hris.Page{}
	if ml.NextCursor != nil {
		page.NextCursor = *ml.NextCursor
	}
	for _, raw := range ml.Items {
		m, unknown, err := parseMember(raw)
		d.p.noteUnknown(ctx, m, unknown)
		if err != nil {
			page.Skipped = append(page.Skipped, hris.Skipped{ExternalID: peekID(raw), Reason: err.Error()})
			continue
		}
		m.Fields = fields
		page.Items = append(page.Items, *m)
	}
	return page, nil
}

// GetMember implements hris.Directory.
func (d *Directory) GetMember(ctx context.Context, id string) (*hris.Member, error) {
	if id == "" {
		return nil, fmt.Errorf("justworks: get member: empty id: %w", hris.ErrNotFound)
	}
	var raw json.RawMessage
	if err := d.do(ctx, http.MethodGet, "/v1/members/"+url.PathEscape(id), nil, &raw); err != nil {
		return nil, err
	}
	m, unknown, err := parseMember(raw)
	if err != nil {
		return nil, fmt.Errorf("justworks: member %s: %w", id, err)
	}
	d.p.noteUnknown(ctx, m, unknown)
	g, _ := d.ts.token(ctx)
	m.Fields = fieldsFor(g.Scopes)
	return m, nil
}

// GetCompany implements hris.Directory.
func (d *Directory) GetCompany(ctx context.Context) (*hris.Company, error) {
	var c struct {
		ID          string            `json:"id"`
		DisplayName string            `json:"display_name"`
		LegalName   string            `json:"legal_name"`
		Departments []json.RawMessage `json:"departments"`
	}
	if err := d.do(ctx, http.MethodGet, "/v1/company", nil, &c); err != nil {
		return nil, err
	}
	out := &hris.Company{ID: c.ID, Name: c.DisplayName, Departments: []hris.Department{}}
	if out.Name == "" {
		out.Name = c.LegalName
	}
	for _, raw := range c.Departments {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		dep := hris.Department{ID: str(m, "id", "department_id"), Name: str(m, "name", "display_name")}
		if dep.ID != "" || dep.Name != "" {
			out.Departments = append(out.Departments, dep)
		}
	}
	return out, nil
}

// ListWebhooks implements hris.WebhookManager (POST /v1/webhooks/get, sic).
func (d *Directory) ListWebhooks(ctx context.Context, status string) ([]hris.Webhook, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	var out struct {
		Items []hris.Webhook `json:"items"`
	}
	if err := d.do(ctx, http.MethodPost, "/v1/webhooks/get", q, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// ResumeWebhook implements hris.WebhookManager.
func (d *Directory) ResumeWebhook(ctx context.Context, id string) error {
	return d.do(ctx, http.MethodPost, "/v1/webhooks/"+url.PathEscape(id)+"/resume", nil, nil)
}

// fieldsFor maps granted scopes to field groups (API.md §3: detail ⊃ basic).
// An unknown (empty) scope list is read as "everything we asked for".
func fieldsFor(scopes []string) hris.FieldGroup {
	if len(scopes) == 0 {
		return hris.FieldsBasic | hris.FieldsDetail | hris.FieldsEmployment
	}
	var f hris.FieldGroup
	for _, s := range scopes {
		switch s {
		case "member.basic:read":
			f |= hris.FieldsBasic
		case "member.detail:read":
			f |= hris.FieldsBasic | hris.FieldsDetail
		case "member.employment:read":
			f |= hris.FieldsEmployment
		}
	}
	return f
}

func peekID(raw json.RawMessage) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(bytes.TrimSpace(raw), &v) != nil {
		return ""
	}
	if s, ok := v.ID.(string); ok {
		return s
	}
	return ""
}

// noteUnknown logs each member or employment type value the mapping does not
// know, once per provider (process): the value lands on a safe default, and
// one line is enough for someone to extend the table.
func (p *Provider) noteUnknown(ctx context.Context, m *hris.Member, unknown []string) {
	if m == nil || len(unknown) == 0 {
		return
	}
	p.mu.Lock()
	var fresh []string
	for _, u := range unknown {
		if !p.unknownTypes[u] {
			p.unknownTypes[u] = true
			fresh = append(fresh, u)
		}
	}
	p.mu.Unlock()
	for _, u := range fresh {
		p.cfg.Logger.WarnContext(ctx, "unknown Justworks member type value; mapped to a default", "value", u,
			"member_id", m.ExternalID, "mapped_to", m.MemberType)
	}
}
