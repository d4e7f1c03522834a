package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
)

// The checks find what they are for: an image without alt text is a critical axe
// violation, and an inline script under a strict CSP is a recorded CSP violation.
func TestChecksDetectViolations(t *testing.T) {
	b := Start(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>t</h1>
<img src="/x.png"><script>document.title = "ran"</script></main></body></html>`)
	}))
	defer srv.Close()
	tab := b.NewTab(t)
	tab.Do(chromedp.Navigate(srv.URL), chromedp.WaitReady(chromedp.CSS("main")))
	vs, err := tab.Violations()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vs {
		if v.ID == "image-alt" && v.Impact == "critical" {
			found = true
		}
	}
	if !found {
		t.Errorf("axe did not report image-alt: %+v", vs)
	}
	csp, err := tab.CSPViolations()
	if err != nil || len(csp) == 0 {
		t.Errorf("inline script not recorded as a CSP violation: %v %v", csp, err)
	}
}
