package oidc_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const chromium = "/usr/bin/chromium"

// A real headless Chromium through the fake provider's login page: the binding cookie
// survives the cross-site round trip (Lanyard on localhost, the provider on 127.0.0.1, as
// in the demo; SameSite=Lax), the session starts for a verified admin, and an unverified
// one lands on the sign-in page with the message for its code.
func TestBrowserSignIn(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no Chromium at " + chromium + " (.ci/run installs it)")
	}
	e := newEnvAt(t, storetest.NewSQLite(t), "localhost")
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox)...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // start the browser on the long-lived context
		t.Fatal(err)
	}
	signIn := func(userIndex string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		err := chromedp.Do(ctx,
			chromedp.Navigate(e.rpURL+oidc.StartPath+"?org="+e.org.ID),
			chromedp.WaitVisible(chromedp.ID("password")),
			chromedp.Click(chromedp.ID(userIndex)),
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(chromedp.ID("sign-in")))
		if err != nil {
			t.Fatal(err)
		}
	}
	wait := func(id string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID(id))); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			t.Fatalf("waiting for #%s at %s: %v\n%s", id, loc, err, e.logs.String())
		}
		txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatal(err)
		}
		return txt
	}

	signIn("user-0") // alice, verified
	wait("home")
	if calls := e.startCalls(); len(calls) != 1 || calls[0].email != "alice@example.com" || calls[0].orgID != e.org.ID {
		t.Fatalf("session starter calls %+v", calls)
	}

	signIn("user-1") // bob, unverified
	if got, want := wait("signin-error"), oidc.ErrorMessage(oidc.CodeEmailUnverified); got != want {
		t.Fatalf("sign-in page says %q, want %q", got, want)
	}
	if len(e.startCalls()) != 1 {
		t.Fatal("an unverified email started a session")
	}
}
