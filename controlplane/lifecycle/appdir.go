package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Opener decrypts sealed connector tokens (secrets.Keyring implements it).
type Opener interface {
	Open(sealed, aad string) ([]byte, error)
}

// Sealer encrypts connector tokens (secrets.Keyring implements it).
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
}

// StoreAppDirectory reads rules and connectors from the database.
type StoreAppDirectory struct {
	DB     *store.DB
	Keys   Opener
	Client *http.Client // nil: the SCIM client's default
}

// TokenAAD binds a sealed token to its org and app.
func TokenAAD(orgID, app string) string { return "app-connector:" + orgID + ":" + app }

// Rules implements AppDirectory.
func (d StoreAppDirectory) Rules(ctx context.Context, orgID string) ([]apps.Rule, error) {
	rows, err := d.DB.ListAppRules(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]apps.Rule, 0, len(rows))
	for _, r := range rows {
		rule := apps.Rule{ID: r.ID, Department: r.Department, Role: r.Role, MemberType: r.MemberType}
		if err := json.Unmarshal([]byte(r.Apps), &rule.Apps); err != nil {
			return nil, fmt.Errorf("app rule %s: %w", r.ID, err)
		}
		out = append(out, rule)
	}
	return out, nil
}

// Connectors implements AppDirectory.
func (d StoreAppDirectory) Connectors(ctx context.Context, orgID string) (apps.Registry, map[string]apps.RevokeMode, error) {
	rows, err := d.DB.ListAppConnectors(ctx, orgID)
	if err != nil {
		return nil, nil, err
	}
	reg := apps.Registry{}
	modes := map[string]apps.RevokeMode{}
	for _, c := range rows {
		token := ""
		if c.TokenSealed != "" {
			if d.Keys == nil {
				return nil, nil, fmt.Errorf("connector %s: no keyring to open its token", c.App)
			}
			b, err := d.Keys.Open(c.TokenSealed, TokenAAD(orgID, c.App))
			if err != nil {
				return nil, nil, fmt.Errorf("connector %s token: %w", c.App, err)
			}
			token = string(b)
		}
		var opts []apps.SCIMOption
		if d.Client != nil {
			opts = append(opts, apps.WithHTTPClient(d.Client))
		}
		switch c.Kind {
		case "scim", "":
			reg[c.App] = apps.NewSCIMClient(c.App, c.BaseURL, token, opts...)
		default:
			return nil, nil, fmt.Errorf("connector %s: unknown kind %q: %w", c.App, c.Kind, apps.ErrNotSupported)
		}
		modes[c.App] = apps.RevokeMode(c.RevokeMode)
	}
	return reg, modes, nil
}
