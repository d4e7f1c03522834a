// Package mail sends notification email over SMTP (wneessen/go-mail): STARTTLS required
// by default, AUTH when a username is set, a text and an HTML part, and a deterministic
// Message-ID so a receiver can tell a resend from a new message. Errors say whether a
// retry can help (SendError.Permanent), which is what the notification engine needs.
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes.
const (
	TLSStartTLS = "starttls" // STARTTLS on the submission port, mandatory (the default)
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // plain text: refused unless the host is loopback
)

// Config is one SMTP relay.
type Config struct {
	Host string
	Port int // 0: 587 (465 with TLS "tls")
	// Username and Password enable AUTH (PLAIN, or LOGIN when the server offers only that).
	// Password is the opened secret: it is never logged or returned.
	Username, Password string
	From               string // "Lanyard <it@acme.example>"
	TLS                string
	RootCAs            *x509.CertPool // nil: the system pool
	ServerName         string         // nil: Host
	Timeout            time.Duration  // bounds a whole send; default 15 s
}

// Message is one email.
type Message struct {
	// ID makes the Message-ID header <ID@lanyard>: the same delivery sent twice carries
	// the same id, so a mailbox (or a test) can tell a resend.
	ID         string
	To         []string
	Subject    string
	Text, HTML string
	Headers    map[string]string
}

// SendError is a failed send.
type SendError struct {
	// Permanent: the server refused for good (5xx, a malformed address); a retry of the
	// same message cannot succeed. Otherwise the failure is temporary (4xx, no
	// connection, TLS trouble, a timeout).
	Permanent bool
	Code      int    // the SMTP reply code, 0 when there was none
	Msg       string // what went wrong, with the server's words when it answered
	Err       error
}

func (e *SendError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Code != 0 {
		return fmt.Sprintf("smtp: %s failure (%d): %s", kind, e.Code, e.Msg)
	}
	return fmt.Sprintf("smtp: %s failure: %s", kind, e.Msg)
}

func (e *SendError) Unwrap() error { return e.Err }

// Client sends through one relay.
type Client struct {
	cfg  Config
	from *netmail.Address
}

// New validates cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: host is required")
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: from %q: %w", cfg.From, err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("smtp: tls none is only allowed to a loopback host, not %q: the password and the messages would cross the network in clear", cfg.Host)
		}
	default:
		return nil, fmt.Errorf("smtp: tls %q: want starttls, tls or none", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp: port %d out of range", cfg.Port)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &Client{cfg: cfg, from: from}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m, bounded by ctx and the configured timeout.
func (c *Client) Send(ctx context.Context, m Message) error {
	if len(m.To) == 0 {
		return &SendError{Permanent: true, Msg: "no recipient"}
	}
	for _, to := range m.To {
		if _, err := netmail.ParseAddress(to); err != nil || strings.ContainsAny(to, "\r\n") {
			return &SendError{Permanent: true, Msg: fmt.Sprintf("malformed address %q", to), Err: err}
		}
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.FromFormat(c.from.Name, c.from.Address); err != nil {
		return &SendError{Permanent: true, Msg: "from: " + err.Error(), Err: err}
	}
	if err := msg.To(m.To...); err != nil {
		return &SendError{Permanent: true, Msg: "to: " + err.Error(), Err: err}
	}
	msg.Subject(m.Subject)
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID + "@lanyard")
	} else {
		msg.SetMessageID()
	}
	msg.SetDate()
	// Automated mail: no out-of-office replies to the sender (RFC 3834).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	for k, v := range m.Headers {
		msg.SetGenHeader(gomail.Header(k), v)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}

	// go-mail applies its timeout as the connection's deadline but does not watch the
	// context once connected, so the caller's deadline becomes that timeout.
	timeout := c.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	opts := []gomail.Option{gomail.WithPort(c.cfg.Port), gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(&tls.Config{RootCAs: c.cfg.RootCAs, ServerName: c.serverName(), MinVersion: tls.VersionTLS12})}
	switch c.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(c.cfg.Username), gomail.WithPassword(c.cfg.Password))
	}
	client, err := gomail.NewClient(c.cfg.Host, opts...)
	if err != nil {
		return &SendError{Permanent: true, Msg: "client: " + err.Error(), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(ctx, err)
	}
	return nil
}

func (c *Client) serverName() string {
	if c.cfg.ServerName != "" {
		return c.cfg.ServerName
	}
	return c.cfg.Host
}

// replyCode finds an SMTP reply code in an error's text ("… 535 5.7.8 …") when the
// library did not keep it as a value.
var replyCode = regexp.MustCompile(`\b([245][0-9][0-9])[ -][0-9]?`)

// classify turns go-mail's error into a SendError: the reply code decides (5xx
// permanent, 4xx temporary); no reply (dial, TLS, timeout, a dropped connection) is
// temporary.
func classify(ctx context.Context, err error) *SendError {
	out := &SendError{Msg: err.Error(), Err: err}
	if ctx.Err() != nil {
		out.Msg = "no answer in time: " + err.Error()
		return out
	}
	var tp *textproto.Error
	var se *gomail.SendError
	var ne net.Error
	switch {
	case errors.As(err, &ne):
		// A network failure: there was no reply to read a code from.
	case errors.As(err, &tp):
		out.Code = tp.Code
	case errors.As(err, &se) && se.ErrorCode() != 0:
		out.Code = se.ErrorCode()
	default:
		if m := replyCode.FindStringSubmatch(err.Error()); m != nil {
			out.Code, _ = strconv.Atoi(m[1])
		}
	}
	out.Permanent = out.Code >= 500
	return out
}
