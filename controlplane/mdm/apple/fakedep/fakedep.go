// Package fakedep is an Apple Business Manager (DEP) API for tests: real HTTP on
// 127.0.0.1 with the OAuth1 session handshake, device fetch/sync with cursors, profile
// definition and assignment. MakeServerToken builds the encrypted .p7m server token ABM
// would let an admin download.
package fakedep

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/smallstep/pkcs7"
)

// Device is a device in the fake ABM account.
type Device struct {
	SerialNumber  string `json:"serial_number"`
	Model         string `json:"model"`
	Description   string `json:"description,omitempty"`
	DeviceFamily  string `json:"device_family,omitempty"`
	OS            string `json:"os,omitempty"`
	ProfileStatus string `json:"profile_status,omitempty"`
	ProfileUUID   string `json:"profile_uuid,omitempty"`
	OpType        string `json:"op_type,omitempty"`
	OpDate        string `json:"op_date,omitempty"`
}

// Server is the fake ABM API.
type Server struct {
	srv *httptest.Server

	ConsumerKey string

	mu       sync.Mutex
	session  string
	devices  []Device // in op order
	profiles map[string]map[string]any
	assigned map[string]string // serial → profile uuid
	calls    map[string]int
}

// New starts the fake.
func New() *Server {
	s := &Server{ConsumerKey: "CK_" + uuid.NewString()[:8], profiles: map[string]map[string]any{}, assigned: map[string]string{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// URL is the API base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddDevice adds a device to the account (an "added" op).
func (s *Server) AddDevice(serial, model string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices = append(s.devices, Device{SerialNumber: serial, Model: model, DeviceFamily: "Mac", OS: "OSX",
		ProfileStatus: "empty", OpType: "added", OpDate: time.Now().UTC().Format(time.RFC3339)})
}

// AssignedProfile returns the profile UUID assigned to serial ("" if none).
func (s *Server) AssignedProfile(serial string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assigned[serial]
}

// Profile returns a defined profile.
func (s *Server) Profile(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[id]
}

// Calls counts requests per path.
func (s *Server) Calls(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[path] }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	s.mu.Unlock()
	if r.URL.Path == "/session" {
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "OAuth ") || !strings.Contains(auth, `oauth_consumer_key="`+s.ConsumerKey+`"`) || !strings.Contains(auth, "oauth_signature=") {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.session = uuid.NewString()
		tok := s.session
		s.mu.Unlock()
		writeJSON(w, map[string]string{"auth_session_token": tok})
		return
	}
	s.mu.Lock()
	ok := s.session != "" && r.Header.Get("X-ADM-Auth-Session") == s.session
	s.mu.Unlock()
	if !ok {
		http.Error(w, "UNAUTHORIZED", http.StatusUnauthorized)
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /account":
		writeJSON(w, map[string]any{"server_name": "Lanyard test", "server_uuid": "S1", "org_name": "Test Org"})
	case "POST /profile":
		var p map[string]any
		if json.NewDecoder(r.Body).Decode(&p) != nil || p["url"] == nil {
			http.Error(w, "BAD_REQUEST", http.StatusBadRequest)
			return
		}
		id := strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", ""))
		s.mu.Lock()
		s.profiles[id] = p
		s.mu.Unlock()
		writeJSON(w, map[string]any{"profile_uuid": id, "devices": map[string]string{}})
	case "PUT /profile/devices":
		var req struct {
			ProfileUUID string   `json:"profile_uuid"`
			Devices     []string `json:"devices"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "BAD_REQUEST", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		out := map[string]string{}
		if _, ok := s.profiles[req.ProfileUUID]; !ok {
			s.mu.Unlock()
			http.Error(w, "PROFILE_NOT_FOUND", http.StatusBadRequest)
			return
		}
		for _, serial := range req.Devices {
			out[serial] = "NOT_ACCESSIBLE"
			for i, d := range s.devices {
				if d.SerialNumber == serial {
					s.assigned[serial] = req.ProfileUUID
					s.devices[i].ProfileUUID, s.devices[i].ProfileStatus = req.ProfileUUID, "assigned"
					out[serial] = "SUCCESS"
				}
			}
		}
		s.mu.Unlock()
		writeJSON(w, map[string]any{"profile_uuid": req.ProfileUUID, "devices": out})
	case "POST /server/devices", "POST /devices/sync":
		var req struct {
			Cursor string `json:"cursor"`
			Limit  int    `json:"limit"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		start := 0
		if req.Cursor != "" {
			n, err := strconv.Atoi(req.Cursor)
			if err != nil {
				http.Error(w, `{"code":"INVALID_CURSOR"}`, http.StatusBadRequest)
				return
			}
			start = n
		}
		limit := req.Limit
		if limit <= 0 {
			limit = 100
		}
		s.mu.Lock()
		if start > len(s.devices) {
			start = len(s.devices)
		}
		end := min(start+limit, len(s.devices))
		page := append([]Device(nil), s.devices[start:end]...)
		more := end < len(s.devices)
		s.mu.Unlock()
		if r.URL.Path == "/server/devices" && start == end && req.Cursor != "" {
			http.Error(w, `{"code":"EXHAUSTED_CURSOR"}`, http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]any{"devices": page, "cursor": strconv.Itoa(end), "more_to_follow": more,
			"fetched_until": time.Now().UTC().Format(time.RFC3339)})
	default:
		http.Error(w, "NOT_FOUND", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF8")
	_ = json.NewEncoder(w).Encode(v)
}

// MakeServerToken builds the .p7m server token ABM hands out: the OAuth tokens as JSON,
// wrapped in a MIME message, encrypted (CMS) to the MDM server's certificate, in an
// S/MIME envelope.
func (s *Server) MakeServerToken(cert *x509.Certificate) ([]byte, error) {
	toks, err := json.Marshal(map[string]any{
		"consumer_key": s.ConsumerKey, "consumer_secret": "CS_" + uuid.NewString()[:8],
		"access_token": "AT_" + uuid.NewString()[:8], "access_secret": "AS_" + uuid.NewString()[:8],
		"access_token_expiry": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return nil, err
	}
	inner := "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\r\n" + string(toks) + "\r\n-----END MESSAGE-----\r\n"
	enc, err := pkcs7.Encrypt([]byte(inner), []*x509.Certificate{cert})
	if err != nil {
		return nil, fmt.Errorf("encrypt token: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
	b64 := base64.StdEncoding.EncodeToString(enc)
	for len(b64) > 76 {
		b.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	b.WriteString(b64 + "\r\n")
	return b.Bytes(), nil
}
