package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// SCIMSettings are a SCIM connector's own settings (app_connectors.settings).
type SCIMSettings struct {
	// Username is the basic-auth user (auth basic); the secret is the password.
	Username string `json:"username,omitempty"`
	// TokenURL, ClientID and Scopes are the OAuth client-credentials grant (auth
	// oauth); the secret is the client secret.
	TokenURL string   `json:"token_url,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// FieldError is a configuration a Builder refused, naming the field at fault so the
// API can say which one (problem+json).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// BuildSCIM is the Builder for kind "scim".
func BuildSCIM(_ context.Context, s Spec) (Connector, error) {
	if s.BaseURL == "" {
		return nil, &FieldError{"base_url", "a SCIM connector needs the service provider's base URL"}
	}
	if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &FieldError{"base_url", "must be an http(s) URL"}
	}
	var set SCIMSettings
	if len(bytes.TrimSpace(s.Settings)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(s.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&set); err != nil {
			return nil, &FieldError{"settings", fmt.Sprintf("not SCIM settings: %v", err)}
		}
	}
	var opts []SCIMOption
	if s.HTTPClient != nil {
		opts = append(opts, WithHTTPClient(s.HTTPClient))
	}
	token := ""
	switch s.Auth {
	case "", AuthBearer:
		token = string(s.Secret)
	case AuthBasic:
		if set.Username == "" {
			return nil, &FieldError{"settings.username", "basic auth needs a username"}
		}
		opts = append(opts, WithBasicAuth(set.Username, string(s.Secret)))
	case AuthOAuth:
		if u, err := url.Parse(set.TokenURL); set.TokenURL == "" || err != nil || u.Host == "" {
			return nil, &FieldError{"settings.token_url", "OAuth client credentials need the token endpoint URL"}
		}
		if set.ClientID == "" {
			return nil, &FieldError{"settings.client_id", "OAuth client credentials need a client id"}
		}
		if len(s.Secret) == 0 {
			return nil, &FieldError{"token", "OAuth client credentials need the client secret"}
		}
		opts = append(opts, WithOAuth2(set.TokenURL, set.ClientID, string(s.Secret), set.Scopes...))
	default:
		return nil, &FieldError{"auth", fmt.Sprintf("unknown auth kind %q (bearer, basic or oauth)", s.Auth)}
	}
	return NewSCIMClient(s.App, s.BaseURL, token, opts...), nil
}
