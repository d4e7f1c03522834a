package apple_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakedep"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestADE: a Mac bought for a new hire is in the (fake) ABM account; Lanyard syncs it,
// assigns the ADE profile to its serial, and when the Mac enrolls from Setup Assistant it
// is linked to that hire and released with DeviceConfigured.
func TestADE(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dep := fakedep.New()
		t.Cleanup(dep.Close)
		h := newHarness(t, db, func(c *apple.Config) { c.DEPURL = dep.URL() })
		hire := storetest.Employee(t, db, h.org.ID, "Grace")
		const serial = "C02ADE00001"
		dep.AddDevice(serial, "MacBook Air")
		dep.AddDevice("C02ADE00002", "MacBook Pro")

		certPEM, err := h.svc.CreateADEKeypair(ctx, h.org.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// A token encrypted to another certificate is refused.
		otherCert, _, _ := macsim.SelfSigned("not ours")
		bad, _ := dep.MakeServerToken(otherCert)
		if _, err := h.svc.UploadADEToken(ctx, h.org.ID, bad, ""); err == nil {
			t.Fatal("token for another certificate accepted")
		}
		p7m, err := dep.MakeServerToken(cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.UploadADEToken(ctx, h.org.ID, p7m, ""); err != nil {
			t.Fatalf("upload token: %v", err)
		}

		n, err := h.svc.SyncADE(ctx, h.org.ID)
		if err != nil || n != 2 {
			t.Fatalf("sync = %d, %v", n, err)
		}
		d, err := db.MDMGetDEP(ctx, h.org.ID)
		if err != nil || d.Cursor != "2" {
			t.Fatalf("cursor not persisted: %+v %v", d, err)
		}
		// A second sync starts from the stored cursor and sees nothing new.
		dep.AddDevice("C02ADE00003", "Mac mini")
		if n, err := h.svc.SyncADE(ctx, h.org.ID); err != nil || n != 1 {
			t.Fatalf("incremental sync = %d, %v", n, err)
		}

		// The lifecycle workflow's call for a new hire.
		if err := h.svc.AssignADEProfile(ctx, h.org.ID, serial, hire.ID); err != nil {
			t.Fatalf("assign: %v", err)
		}
		prof := dep.AssignedProfile(serial)
		if prof == "" {
			t.Fatal("profile not assigned at ABM")
		}
		if u, _ := dep.Profile(prof)["url"].(string); u != h.srv.URL+"/mdm/ade/enroll" {
			t.Fatalf("ADE profile url = %q", u)
		}
		if err := h.svc.AssignADEProfile(ctx, h.org.ID, "NOT-IN-ABM", hire.ID); err == nil {
			t.Fatal("serial outside the ABM account was assigned")
		}

		// First boot: Setup Assistant fetches the profile, the Mac enrolls.
		mac := h.newMac(serial)
		if _, err := macsim.New("UNKNOWN-SERIAL").FetchADEProfile(ctx, h.srv.URL+"/mdm/ade/enroll"); err == nil {
			t.Fatal("unknown serial got an ADE profile")
		}
		profile, err := mac.FetchADEProfile(ctx, h.srv.URL+"/mdm/ade/enroll")
		if err != nil {
			t.Fatal(err)
		}
		if err := mac.Enroll(ctx, profile); err != nil {
			t.Fatal(err)
		}
		h.idle(mac)
		e := h.enrollment(mac.UDID)
		if e.EmployeeID != hire.ID {
			t.Fatalf("enrollment employee = %q, want the hire %q", e.EmployeeID, hire.ID)
		}
		dev, err := db.GetDevice(ctx, h.org.ID, e.DeviceID)
		if err != nil || dev.AssignedEmployeeID != hire.ID || dev.SerialNumber != serial {
			t.Fatalf("device = %+v, %v", dev, err)
		}
		configured := false
		for _, r := range mac.Received() {
			if r.RequestType == apple.ReqDeviceConfigured {
				configured = true
			}
		}
		if !configured {
			t.Fatal("Setup Assistant never released with DeviceConfigured")
		}
	})
}
