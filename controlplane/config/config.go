// Package config is the one place Lanyard's control-plane settings are defined. Each
// setting has a flag, a LANYARD_* environment variable and a key in the optional YAML
// file; precedence is flag > environment > file > default. docs/configuration.md is
// generated from the same table (see Markdown).
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config holds every control-plane setting. Tags: `key` is the YAML key and flag name
// (env is LANYARD_ + upper-cased key with '-' → '_'), `def` the default, `help` the text.
type Config struct {
	DataDir         string        `key:"data-dir" def:"./.lanyard" help:"directory for the SQLite database (only when database-url is empty) and the default key-file; installer builds use it as scratch and keep nothing there. The CA and installer packages are in the database"`
	DatabaseURL     string        `key:"database-url" def:"" help:"postgres://... for PostgreSQL; empty uses the embedded SQLite file <data-dir>/lanyard.db" secret:"true"`
	HTTPAddr        string        `key:"http-addr" def:"127.0.0.1:8080" help:"admin API, webhooks and Apple MDM endpoints listen here"`
	GRPCAddr        string        `key:"grpc-addr" def:"127.0.0.1:8443" help:"agent gRPC (mTLS) listener"`
	PublicURL       string        `key:"public-url" def:"http://localhost:8080" help:"URL devices and browsers use to reach http-addr (enrollment profiles, OAuth redirects)"`
	AgentRenewGrace time.Duration `key:"agent-renew-grace" def:"720h" help:"how long after its certificate expired (a device off for a holiday) an agent may still renew it by proving it holds the key; later it must enroll again"`
	EnrollRateLimit string        `key:"enroll-rate-limit" def:"2/s,120" help:"enrollment calls allowed per source address (IPv6: per /64): RATE/s,BURST, or off. Each agent makes two calls to enroll; agents retry refused calls with backoff"`
	AgentURL        string        `key:"agent-url" def:"localhost:8443" help:"host:port agents use to reach grpc-addr (baked into installers)"`
	AgentURLs       string        `key:"agent-urls" def:"" help:"comma-separated host:port of every replica's agent API (or of a load balancer), baked into installers so agents fail over between replicas; empty: agent-url alone. Each replica's agent-url is its own entry"`
	KeyFile         string        `key:"key-file" def:"" help:"keyring for secrets at rest; default <data-dir>/keyring.json (created 0600 on first start)"`
	LogLevel        string        `key:"log-level" def:"info" help:"debug, info, warn or error"`
	LogFormat       string        `key:"log-format" def:"text" help:"text or json"`
	DebugAddr       string        `key:"debug-addr" def:"" help:"serve Go profiles (/debug/pprof/) here, e.g. 127.0.0.1:6060; empty is off. Never expose it: profiles show memory contents"`

	HRReconcileInterval time.Duration `key:"hr-reconcile-interval" def:"10m" help:"how often every HR connection is reconciled"`
	HRSyncMaxPages      int           `key:"hr-sync-max-pages" def:"2000" help:"most pages one HR listing may take (100 members each); a provider that keeps returning cursors fails the run instead of looping"`
	JustworksClientID   string        `key:"justworks-client-id" def:"" help:"OAuth client id issued by Justworks"`
	JustworksSecret     string        `key:"justworks-client-secret" def:"" help:"OAuth client secret issued by Justworks" secret:"true"`
	JustworksAuthURL    string        `key:"justworks-authorize-url" def:"https://payroll.justworks.com/oauth/authorize" help:"Justworks OAuth authorize endpoint"`
	JustworksTokenURL   string        `key:"justworks-token-url" def:"https://public-api.justworks.com/oauth/token" help:"Justworks OAuth token endpoint"`
	JustworksAPIURL     string        `key:"justworks-api-url" def:"https://public-api.justworks.com" help:"Justworks Partner API base URL"`
	JustworksWebhookKey string        `key:"justworks-webhook-secret" def:"" help:"shared secret that signs Justworks webhooks" secret:"true"`

	APNsURL string `key:"apns-url" def:"https://api.push.apple.com" help:"APNs base URL (tests point it at the fake)"`
	DEPURL  string `key:"dep-url" def:"https://mdmenrollment.apple.com" help:"Apple DEP/ABM API base URL"`

	NotifyMaxAttempts int           `key:"notify-max-attempts" def:"8" help:"attempts a notification gets against a receiver that keeps failing transiently (5xx, 429, timeouts) before it goes to the dead letter list"`
	NotifyWorkers     int           `key:"notify-workers" def:"8" help:"notifications one replica sends at once"`
	NotifySendTimeout time.Duration `key:"notify-send-timeout" def:"20s" help:"how long one notification send may take (a hanging SMTP server or webhook receiver costs one attempt); a replica that dies mid-send leaves its deliveries to the others after 2x this + 5s"`

	Demo bool `key:"demo" def:"false" help:"seed a demo organization connected to an in-process fake Justworks (make run)"`
}

type field struct {
	key, env, def, help string
	secret              bool
	index               int
}

func fields() []field {
	t := reflect.TypeOf(Config{})
	out := make([]field, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("key")
		out = append(out, field{key: key, env: "LANYARD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_")),
			def: f.Tag.Get("def"), help: f.Tag.Get("help"), secret: f.Tag.Get("secret") == "true", index: i})
	}
	return out
}

// RegisterFlags adds one flag per setting to fs, plus --config.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML config file (env LANYARD_CONFIG)")
	t := reflect.TypeOf(Config{})
	for _, f := range fields() {
		fs.String(f.key, "", fmt.Sprintf("%s (env %s, default %q)", f.help, f.env, f.def))
		if t.Field(f.index).Type.Kind() == reflect.Bool {
			fs.Lookup(f.key).NoOptDefVal = "true" // --demo means --demo=true
		}
	}
}

// Load resolves the configuration from defaults, the file, the environment and fs.
func Load(fs *pflag.FlagSet) (Config, error) {
	values := map[string]string{}
	for _, f := range fields() {
		values[f.key] = f.def
	}
	file := os.Getenv("LANYARD_CONFIG")
	if fs != nil {
		if v, _ := fs.GetString("config"); v != "" {
			file = v
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Config{}, fmt.Errorf("read config file: %w", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return Config{}, fmt.Errorf("parse config file %s: %w", file, err)
		}
		for k, v := range m {
			if _, ok := values[k]; !ok {
				return Config{}, fmt.Errorf("config file %s: unknown key %q", file, k)
			}
			values[k] = fmt.Sprint(v)
		}
	}
	for _, f := range fields() {
		if v, ok := os.LookupEnv(f.env); ok {
			values[f.key] = v
		}
		if fs != nil {
			if fl := fs.Lookup(f.key); fl != nil && fl.Changed {
				values[f.key] = fl.Value.String()
			}
		}
	}
	var c Config
	rv := reflect.ValueOf(&c).Elem()
	for _, f := range fields() {
		v := values[f.key]
		dst := rv.Field(f.index)
		switch dst.Interface().(type) {
		case string:
			dst.SetString(v)
		case bool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("%s: %q is not true or false", f.key, v)
			}
			dst.SetBool(b)
		case int:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return Config{}, fmt.Errorf("%s: %q is not a positive whole number", f.key, v)
			}
			dst.SetInt(int64(n))
		case time.Duration:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return Config{}, fmt.Errorf("%s: %q is not a positive duration such as 10m", f.key, v)
			}
			dst.SetInt(int64(d))
		}
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keyring.json")
	}
	return c, c.Validate()
}

// Validate rejects settings that cannot work.
func (c Config) Validate() error {
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("database-url must start with postgres:// (leave it empty for the embedded SQLite database)")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log-format %q: want text or json", c.LogFormat)
	}
	return nil
}

// SQLitePath is where the embedded database lives.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "lanyard.db") }

// Markdown renders the settings table for docs/configuration.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
	for _, f := range fields() {
		def := f.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | %s |\n", f.key, f.env, def, f.help)
	}
	return b.String()
}
