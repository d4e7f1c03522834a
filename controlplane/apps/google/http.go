package google

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

// apiError is Google's JSON error body.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Errors  []struct {
			Reason  string `json:"reason"`
			Domain  string `json:"domain"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"error"`
}

// throttleReasons are 403 reasons that mean "slow down", not "forbidden".
var throttleReasons = map[string]bool{"rateLimitExceeded": true, "userRateLimitExceeded": true, "quotaExceeded": true}

// do sends one request with hc and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, hc *http.Client, op, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("google: %s: encode: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("google: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return c.transportError(op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &apps.TargetError{App: c.app, Op: op, Status: resp.StatusCode, Kind: apps.ErrUnavailable, Err: err}
	}
	if resp.StatusCode >= 300 {
		return c.statusError(op, resp, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return &apps.TargetError{App: c.app, Op: op, Status: resp.StatusCode, Kind: apps.ErrRejected, Detail: "undecodable response", Err: err}
		}
	}
	return nil
}

// transportError classes a failure without an HTTP answer from the API: the
// token endpoint's refusal (oauth2.RetrieveError) or the network.
func (c *Client) transportError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &apps.TargetError{App: c.app, Op: op + ": token", Code: re.ErrorCode, Detail: strings.TrimSpace(re.ErrorDescription)}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		if te.Code == "" { // the JWT grant does not parse the body; Google's is {"error","error_description"}
			var b struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &b) == nil {
				te.Code, te.Detail = b.Error, strings.TrimSpace(b.Description)
			}
		}
		switch {
		case te.Status == http.StatusTooManyRequests || te.Status >= 500:
			te.Kind = apps.ErrUnavailable
		default: // invalid_grant (revoked key, subject not delegated), unauthorized_client, bad scopes
			te.Kind = apps.ErrAuth
		}
		return te
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("google: %s: %w", op, err)
	}
	return &apps.TargetError{App: c.app, Op: op, Err: err}
}

func (c *Client) statusError(op string, resp *http.Response, data []byte) error {
	te := &apps.TargetError{App: c.app, Op: op, Status: resp.StatusCode, Kind: apps.ClassifyStatus(resp.StatusCode)}
	var ae apiError
	if json.Unmarshal(data, &ae) == nil && (ae.Error.Message != "" || len(ae.Error.Errors) > 0) {
		te.Detail = strings.TrimSpace(ae.Error.Message)
		if len(ae.Error.Errors) > 0 {
			te.Code = ae.Error.Errors[0].Reason
		} else {
			te.Code = ae.Error.Status
		}
	} else {
		te.Detail = strings.TrimSpace(string(data[:min(len(data), 300)]))
	}
	if resp.StatusCode == http.StatusForbidden && throttleReasons[te.Code] {
		te.Kind = apps.ErrUnavailable
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			te.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			te.RetryAfter = max(time.Until(t), 0)
		}
	}
	return te
}
