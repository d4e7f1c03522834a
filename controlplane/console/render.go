package console

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// templates holds one template set per page file: the layout and shared parts, plus the
// page's own "title" and "content" (and any fragments htmx swaps in).
type templates struct {
	pages map[string]*template.Template
}

func parseTemplates(as *assetSet) (*templates, error) {
	funcs := template.FuncMap{
		"asset":    as.URL,
		"date":     fmtDate,
		"datetime": fmtTime,
		"ago":      ago,
		"join":     strings.Join,
		"title":    humanize,
		"pct":      pct,
		"query":    withQuery,
		"dict":     dict,
		"list":     func(s ...string) []string { return s },
		"who":      who,
	}
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse layout: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	t := &templates{pages: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		clone, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := clone.ParseFS(templateFS, f); err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", f, err)
		}
		t.pages[name] = clone
	}
	return t, nil
}

// view is what the layout renders around a page.
type view struct {
	Title    string
	Section  string // nav entry to mark current
	SignedIn bool
	Sess     auth.Session
	CSRF     string
	Nav      []navItem
	Flash    *flash
	// People names user actors for the `who` template function (empty unless the page
	// asked for names).
	People map[string]string
	Page   any
}

type navItem struct {
	Label, Path string
	Current     bool
	Built       bool
}

type flash struct {
	Kind string // "ok" or "error"
	Text string
}

// render writes a full page (or, with block set, one fragment for htmx) with status.
func (c *Console) render(w http.ResponseWriter, rq *request, status int, name, block, title, section string, data any) error {
	t, ok := c.tmpl.pages[name]
	if !ok {
		return fmt.Errorf("console: no template %q", name)
	}
	v := view{Title: title, Section: section, SignedIn: rq.SignedIn, Sess: rq.Sess, CSRF: rq.CSRF(), Flash: rq.flash, People: rq.people, Page: data}
	if rq.SignedIn {
		for _, n := range c.nav {
			pattern := "GET " + n.Path
			if n.Path == "/" {
				pattern = "GET /{$}"
			}
			v.Nav = append(v.Nav, navItem{Label: n.Label, Path: n.Path, Current: n.Section == section, Built: c.hasPage(pattern)})
		}
		if c.opts.DemoInbox != "" {
			v.Nav = append(v.Nav, navItem{Label: "Demo inbox", Path: c.opts.DemoInbox, Built: true})
		}
	}
	if block == "" {
		block = "layout"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, v); err != nil {
		return fmt.Errorf("console: render %s/%s: %w", name, block, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

func (c *Console) hasPage(pattern string) bool {
	for _, p := range c.pages {
		if p.Pattern == pattern {
			return true
		}
	}
	return false
}

// pageHandler runs a page: no-store, the session (or the sign-in redirect), CSRF on
// anything but GET, and errors rendered as readable messages.
func (c *Console) pageHandler(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		rq := &request{}
		if err := c.authenticate(w, r, rq); err != nil && !errors.Is(err, auth.ErrNoSession) {
			c.fail(w, r, rq, err)
			return
		}
		if !p.Public && !rq.SignedIn {
			c.toSignIn(w, r)
			return
		}
		if !rq.SignedIn {
			rq.PreCSRF = c.preCSRF(w, r)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !p.OwnCSRF {
			if err := checkCSRF(r, rq.CSRF()); err != nil {
				c.fail(w, r, rq, err)
				return
			}
		}
		rq.flash = takeFlash(w, r, c.opts.Secure)
		if err := p.Handler(c, w, r, rq); err != nil {
			c.fail(w, r, rq, err)
		}
	})
}

// toSignIn sends a signed-out browser to the sign-in page, remembering where it was going.
func (c *Console) toSignIn(w http.ResponseWriter, r *http.Request) {
	next := "/"
	if r.Method == http.MethodGet {
		next = safeNext(r.URL.RequestURI())
	}
	target := "/signin"
	if next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// problemView is an error rendered as a page.
type problemView struct {
	Status int
	Title  string
	Detail string
	Back   string
	Errors []string
}

// fail renders err: an API problem with its status, title and detail; a CSRF refusal as
// 403; anything else as 500 with the cause logged, not shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	pv := problemView{Back: backTo(r)}
	var he *httpError
	switch ce, isCall := api.AsCallError(err); {
	case isCall:
		pv.Status, pv.Title, pv.Detail = ce.Status, ce.Title, ce.Detail
		pv.Errors = problemErrors(ce)
	case errors.Is(err, errCSRF):
		pv.Status, pv.Title, pv.Detail = http.StatusForbidden, "Forbidden", err.Error()
	case errors.As(err, &he):
		pv.Status, pv.Title, pv.Detail = he.status, http.StatusText(he.status), he.msg
	default:
		c.log.Error("page failed", "path", r.URL.Path, "err", err)
		pv.Status, pv.Title, pv.Detail = http.StatusInternalServerError, "Something went wrong", "The server could not show this page. Try again; if it keeps failing, check the server log."
	}
	if pv.Detail == "" {
		pv.Detail = pv.Title
	}
	if r.Header.Get("HX-Request") == "true" {
		_ = c.render(w, rq, pv.Status, "error", "problem", pv.Title, "", pv)
		return
	}
	if err := c.render(w, rq, pv.Status, "error", "", pv.Title, "", pv); err != nil {
		c.log.Error("render error page", "err", err)
		http.Error(w, pv.Detail, pv.Status)
	}
}

// problemErrors lists a validation problem's per-field errors, when it has them.
func problemErrors(ce *api.CallError) []string {
	var out []string
	if list, ok := ce.Extensions["errors"].([]any); ok {
		for _, e := range list {
			switch x := e.(type) {
			case string:
				out = append(out, x)
			case map[string]any:
				var parts []string
				for _, k := range []string{"row", "field", "message", "detail"} {
					if v, ok := x[k]; ok {
						parts = append(parts, fmt.Sprint(v))
					}
				}
				out = append(out, strings.Join(parts, ": "))
			}
		}
	}
	return out
}

// httpError is a console-level refusal (bad form input before any API call).
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error { return &httpError{status: http.StatusBadRequest, msg: msg} }

func notFound(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return &httpError{status: http.StatusNotFound, msg: "There is no page at " + r.URL.Path + "."}
}

// backTo is where an error page's "Back" link goes: the page the form was on.
func backTo(r *http.Request) string {
	if ref := r.Header.Get("Referer"); ref != "" {
		if u, err := url.Parse(ref); err == nil && strings.EqualFold(u.Host, r.Host) {
			return safeNext(u.RequestURI())
		}
	}
	return "/"
}

// setFlash shows a one-time message on the next page.
func setFlash(w http.ResponseWriter, secure bool, kind, text string) {
	if len(text) > 1000 {
		text = text[:1000]
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: kind + ":" + base64.RawURLEncoding.EncodeToString([]byte(text)),
		Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode, MaxAge: 60})
}

func takeFlash(w http.ResponseWriter, r *http.Request, secure bool) *flash {
	ck, err := r.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	kind, enc, ok := strings.Cut(ck.Value, ":")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil || (kind != "ok" && kind != "error") {
		return nil
	}
	return &flash{Kind: kind, Text: string(b)}
}

func fmtDate(v any) string {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02")
	case *time.Time:
		if t == nil {
			return ""
		}
		return fmtDate(*t)
	case *domain.Date:
		if t == nil {
			return ""
		}
		return t.String()
	case fmt.Stringer:
		return t.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func fmtTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if t == nil {
			return ""
		}
		return fmtTime(*t)
	}
	return fmt.Sprint(v)
}

func ago(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "never"
		}
		t = *x
	}
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// humanize turns an identifier such as "in_stock" into "In stock".
func humanize(s any) string {
	str := strings.ReplaceAll(fmt.Sprint(s), "_", " ")
	if str == "" {
		return ""
	}
	return strings.ToUpper(str[:1]) + str[1:]
}

func pct(n, total int) int {
	if total <= 0 {
		return 0
	}
	return n * 100 / total
}

// withQuery returns base with key set to value (other parameters kept), for sort and
// pagination links.
func withQuery(base url.Values, path string, kv ...string) string {
	q := url.Values{}
	for k, v := range base {
		q[k] = append([]string(nil), v...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	if e := q.Encode(); e != "" {
		return path + "?" + e
	}
	return path
}

func dict(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}
