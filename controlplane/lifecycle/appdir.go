package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
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

// StoreAppDirectory reads rules and connectors from the database and builds each
// connector with the Builder of its kind (wired in controlplane/server).
type StoreAppDirectory struct {
	DB       *store.DB
	Keys     Opener
	Builders map[string]apps.Builder
	Client   *http.Client // nil: each connector's default
}

// ErrUnknownKind means no Builder is wired for a connector's kind.
var ErrUnknownKind = errors.New("unknown connector kind")

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
		conn, err := d.Build(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		reg[c.App] = conn
		modes[c.App] = apps.RevokeMode(c.RevokeMode)
	}
	return reg, modes, nil
}

// Build opens c's sealed secret and builds its connector.
func (d StoreAppDirectory) Build(ctx context.Context, c store.AppConnector) (apps.Connector, error) {
	var secret []byte
	if c.TokenSealed != "" {
		if d.Keys == nil {
			return nil, fmt.Errorf("connector %s: no keyring to open its secret", c.App)
		}
		b, err := d.Keys.Open(c.TokenSealed, TokenAAD(c.OrgID, c.App))
		if err != nil {
			return nil, fmt.Errorf("connector %s secret: %w", c.App, err)
		}
		secret = b
	}
	return BuildConnector(ctx, d.Builders, apps.Spec{App: c.App, Kind: c.Kind, BaseURL: c.BaseURL, Settings: json.RawMessage(c.Settings),
		Auth: c.AuthKind, Secret: secret, HTTPClient: d.Client})
}

// Validate builds s once and drops the connector: a bad configuration fails here.
func (d StoreAppDirectory) Validate(ctx context.Context, s apps.Spec) error {
	s.HTTPClient = d.Client
	_, err := BuildConnector(ctx, d.Builders, s)
	return err
}

// BuildConnector builds s with the Builder of its kind ("" is scim, the first kind).
func BuildConnector(ctx context.Context, builders map[string]apps.Builder, s apps.Spec) (apps.Connector, error) {
	if s.Kind == "" {
		s.Kind = "scim"
	}
	b, ok := builders[s.Kind]
	if !ok {
		return nil, fmt.Errorf("connector %s: kind %q: %w", s.App, s.Kind, ErrUnknownKind)
	}
	conn, err := b(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", s.App, err)
	}
	return conn, nil
}
