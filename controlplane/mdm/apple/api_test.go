package apple_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestAdminAPI drives the MDM admin routes over real HTTP: push certificate upload,
// per-employee enrollment link, lock with confirmation, PIN reveal limited to admin and
// audited, plan gate, roles, tenant isolation and the OpenAPI document.
func TestAdminAPI(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db)
	a := apitest.New(t, db, api.Options{Detailers: []api.DeviceDetailer{h.svc}, Warnings: []api.WarningCheck{h.svc.Warnings}}, h.svc.Routes())
	admin, it, viewer := a.Token(h.org.ID, domain.RoleAdmin), a.Token(h.org.ID, domain.RoleIT), a.Token(h.org.ID, domain.RoleViewer)

	// Push certificate: validation errors are 422, a topic change is 409.
	if r := a.Do("PUT", "/api/v1/mdm/push-certificate", admin, apple.PushCertUpload{CertificatePEM: "junk", PrivateKeyPEM: "junk"}); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("junk cert: %d %s", r.Status, r.Body)
	}
	certPEM, keyPEM, _ := fakeapns.NewPushCert(h.topic, time.Now().Add(20*24*time.Hour))
	r := a.Do("PUT", "/api/v1/mdm/push-certificate", admin, apple.PushCertUpload{CertificatePEM: string(certPEM), PrivateKeyPEM: string(keyPEM)})
	var st apple.PushCertStatus
	r.JSON(t, &st)
	if r.Status != http.StatusOK || st.Topic != h.topic || !strings.Contains(st.Warning, "expires in") {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if r := a.Do("GET", "/readyz", "", nil); !strings.Contains(string(r.Body), "expires in") {
		t.Fatalf("/readyz lacks the push certificate warning: %s", r.Body)
	}

	// Per-employee enrollment link, then a Mac enrolls with it.
	r = a.Do("POST", "/api/v1/mdm/enrollment-links", it, apple.EnrollLinkRequest{EmployeeID: h.emp.ID, TTLHours: 24})
	var link apple.EnrollLink
	r.JSON(t, &link)
	if r.Status != http.StatusCreated || !strings.HasPrefix(link.URL, h.srv.URL+"/enroll/") {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	mac := h.newMac("C02API00001")
	prof, err := mac.FetchProfile(ctx, link.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := mac.Enroll(ctx, prof); err != nil {
		t.Fatal(err)
	}
	h.idle(mac)
	if _, err := mac.FetchProfile(ctx, h.srv.URL+"/enroll/not-a-token"); err == nil {
		t.Fatal("unknown link served a profile")
	}
	devID := h.enrollment(mac.UDID).DeviceID

	// Lock needs confirm; erase needs admin.
	path := "/api/v1/mdm/devices/" + devID + "/commands"
	if r := a.Do("POST", path, it, apple.CommandRequest{RequestType: "DeviceLock"}); r.Status != http.StatusBadRequest {
		t.Fatalf("lock without confirm: %d", r.Status)
	}
	if r := a.Do("POST", path, it, apple.CommandRequest{RequestType: "EraseDevice", Confirm: true}); r.Status != http.StatusForbidden {
		t.Fatalf("erase as it: %d", r.Status)
	}
	if r := a.Do("POST", path, it, apple.CommandRequest{RequestType: "Shutdown"}); r.Status != http.StatusBadRequest {
		t.Fatalf("unknown request type: %d", r.Status)
	}
	r = a.Do("POST", path, it, apple.CommandRequest{RequestType: "DeviceLock", Confirm: true, Message: "Call IT", IdempotencyKey: "k1"})
	var cv apple.CommandView
	r.JSON(t, &cv)
	if r.Status != http.StatusAccepted || cv.State != "queued" || cv.PushError != "" {
		t.Fatalf("lock: %d %s", r.Status, r.Body)
	}
	eventually(t, "locked", func() bool { l, _ := mac.Locked(); return l })
	h.idle(mac)

	// The PIN: admin only, audited.
	pinPath := "/api/v1/mdm/commands/" + cv.UUID + "/pin"
	if r := a.Do("GET", pinPath, it, nil); r.Status != http.StatusForbidden {
		t.Fatalf("pin as it: %d", r.Status)
	}
	r = a.Do("GET", pinPath, admin, nil)
	var pv apple.PINView
	r.JSON(t, &pv)
	if _, macPIN := mac.Locked(); r.Status != http.StatusOK || pv.PIN != macPIN {
		t.Fatalf("pin: %d %s (mac has %s)", r.Status, r.Body, macPIN)
	}
	aud, _, _ := db.ListAudit(ctx, h.org.ID, store.AuditFilter{Action: "mdm.pin.revealed"}, store.Page{})
	if len(aud) != 1 || !strings.HasPrefix(aud[0].Actor, "token:") {
		t.Fatalf("pin reveal audit = %+v", aud)
	}
	if strings.Contains(string(a.Do("GET", "/api/v1/mdm/devices/"+devID+"/commands", viewer, nil).Body), pv.PIN) {
		t.Fatal("command list leaks the PIN")
	}

	// Device view carries the MDM details.
	r = a.Do("GET", "/api/v1/devices/"+devID, viewer, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"apple_mdm"`) || !strings.Contains(string(r.Body), mac.UDID) {
		t.Fatalf("device view: %d %s", r.Status, r.Body)
	}

	// ABM: not connected yet → 404; after the keypair the view holds no secret.
	if r := a.Do("GET", "/api/v1/mdm/ade", viewer, nil); r.Status != http.StatusNotFound {
		t.Fatalf("ade before setup: %d", r.Status)
	}
	if r := a.Do("POST", "/api/v1/mdm/ade/keypair", admin, nil); r.Status != http.StatusCreated || !strings.Contains(string(r.Body), "BEGIN CERTIFICATE") {
		t.Fatalf("ade keypair: %d %s", r.Status, r.Body)
	}
	if r := a.Do("GET", "/api/v1/mdm/ade", viewer, nil); r.Status != http.StatusOK || strings.Contains(string(r.Body), "PRIVATE KEY") || strings.Contains(string(r.Body), "v1:") {
		t.Fatalf("ade view: %d %s", r.Status, r.Body)
	}
	if r := a.Do("PUT", "/api/v1/mdm/ade/token", admin, apple.ADETokenUpload{TokenP7M: "not a token"}); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad ABM token: %d %s", r.Status, r.Body)
	}

	// Plan gate: MDM is a pro feature.
	small := storetest.Org(t, db, domain.PlanEssentials)
	if r := a.Do("GET", "/api/v1/mdm/enrollments", a.Token(small.ID, domain.RoleOwner), nil); r.Status == http.StatusOK {
		t.Fatalf("essentials plan reached MDM: %d", r.Status)
	}

	t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, a, h.org.ID) })
	t.Run("isolation", func(t *testing.T) {
		other := storetest.Org(t, db, domain.PlanPro)
		apitest.CheckIsolation(t, a, a.Token(other.ID, domain.RoleOwner), apitest.Fixtures{"device": devID, "mdm_command": cv.UUID})
	})
	t.Run("openapi", func(t *testing.T) { apitest.CheckOpenAPI(t, a.API) })
}
