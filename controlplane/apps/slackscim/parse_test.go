package slackscim

import "testing"

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		name, body, code, detail string
	}{
		{"Slack's Errors object", `{"Errors":{"description":"email_taken","code":409}}`, "email_taken", "email_taken"},
		{"RFC 7644 error", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":" userName is taken ","status":"409","scimType":"uniqueness"}`, "uniqueness", "userName is taken"},
		{"Slack's shape wins when both are there", `{"Errors":{"description":"no_such_user","code":404},"detail":"x"}`, "no_such_user", "no_such_user"},
		{"not JSON", `<html>bad gateway</html>`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := parseError(400, nil, []byte(tc.body))
			if info.Code != tc.code || info.Detail != tc.detail {
				t.Fatalf("got %+v, want code %q detail %q", info, tc.code, tc.detail)
			}
		})
	}
}
