// Package localpath decides whether a "next" parameter may be followed after a sign-in
// or a re-authentication: only a path on this server, never another origin (an open
// redirect would let a phishing link bounce a fresh session to an attacker's page).
package localpath

import (
	"net/url"
	"strings"
)

// Safe returns next when it is a local path worth returning to, else "/".
func Safe(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	// The sign-in and sign-out pages would loop or undo what was just done.
	if strings.HasPrefix(u.Path, "/signin") || strings.HasPrefix(u.Path, "/signout") {
		return "/"
	}
	return next
}
