package apple

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/micromdm/nanolib/storage/kv/kvtxn"
	kvtest "github.com/micromdm/nanolib/storage/kv/test"
	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/plist"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestSQLiteBucketConformance(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	kvtest.TestBucketSimple(t, ctx, &sqliteBucket{db: db.SQL, name: "simple"})
	kvtest.TestKeysTraversing(t, ctx, &sqliteBucket{db: db.SQL, name: "keys"})
	kvtest.TestTxnSimple(t, ctx, kvtxn.New(&sqliteBucket{db: db.SQL, name: "txn"}))
	kvtest.TestKVTxnKeys(t, ctx, kvtxn.New(&sqliteBucket{db: db.SQL, name: "txnkeys"}))
}

func TestCommandSpecs(t *testing.T) {
	sha := strings.Repeat("a", 64)
	tests := []struct {
		name    string
		spec    CommandSpec
		wantErr string
		want    map[string]any // keys expected under Command
	}{
		{"lock with pin", CommandSpec{RequestType: ReqDeviceLock, PIN: "123456", Message: "hi"}, "", map[string]any{"PIN": "123456", "Message": "hi"}},
		{"lock bad pin", CommandSpec{RequestType: ReqDeviceLock, PIN: "12ab56"}, "6 digits", nil},
		{"erase", CommandSpec{RequestType: ReqEraseDevice, PIN: "000001"}, "", map[string]any{"ObliterationBehavior": "Default"}},
		{"remove profile needs id", CommandSpec{RequestType: ReqRemoveProfile}, "identifier", nil},
		{"install profile needs payload", CommandSpec{RequestType: ReqInstallProfile}, "payload", nil},
		{"device info queries", CommandSpec{RequestType: ReqDeviceInformation}, "", map[string]any{"Queries": nil}},
		{"unknown", CommandSpec{RequestType: "Shutdown"}, "unsupported", nil},
		{"ent app http refused", CommandSpec{RequestType: ReqInstallEntApp, ManifestURL: "http://x/m.plist"}, "https", nil},
		{"ent app needs url", CommandSpec{RequestType: ReqInstallEntApp}, "manifest URL or a package URL", nil},
		{"ent app manifest url", CommandSpec{RequestType: ReqInstallEntApp, ManifestURL: "https://x/m.plist"}, "", map[string]any{"ManifestURL": "https://x/m.plist"}},
		{"agent package inline manifest", InstallAgentSpec("https://x/agent.pkg", sha, 1234, "1.2.3"), "", map[string]any{"Manifest": nil, "InstallAsManaged": true}},
		{"inline manifest needs sha", CommandSpec{RequestType: ReqInstallEntApp, PackageURL: "https://x/a.pkg", BundleID: "b"}, "SHA-256", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := BuildCommand("UUID-1", tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := mdm.DecodeCommand(raw)
			if err != nil || cmd.CommandUUID != "UUID-1" || cmd.Command.RequestType != tc.spec.RequestType {
				t.Fatalf("decode: %+v %v", cmd, err)
			}
			var env struct{ Command map[string]any }
			if err := plist.Unmarshal(raw, &env); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				got, ok := env.Command[k]
				if !ok || (v != nil && got != v) {
					t.Fatalf("Command[%s] = %v, want %v (%s)", k, got, v, raw)
				}
			}
			if tc.spec.PackageURL != "" && !strings.Contains(string(raw), "software-package") {
				t.Fatalf("inline manifest missing asset: %s", raw)
			}
		})
	}
}

func TestGeneratePIN(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := GeneratePIN()
		if err != nil || !validPIN(p) {
			t.Fatalf("pin %q %v", p, err)
		}
		seen[p] = true
	}
	if len(seen) < 190 {
		t.Fatalf("PINs repeat too often: %d distinct of 200", len(seen))
	}
}

func TestClassifyAPNsReason(t *testing.T) {
	tests := []struct {
		status int
		reason string
		want   PushErrorClass
	}{
		{410, "Unregistered", PushBadToken},
		{400, "BadDeviceToken", PushBadToken},
		{400, "DeviceTokenNotForTopic", PushBadToken},
		{403, "BadCertificate", PushBadCert},
		{403, "ExpiredProviderToken", PushBadCert},
		{429, "TooManyRequests", PushRetry},
		{503, "ServiceUnavailable", PushRetry},
		{500, "", PushRetry},
		{410, "", PushBadToken},
		{400, "PayloadEmpty", PushBadRequest},
	}
	for _, tc := range tests {
		if got := ClassifyAPNsReason(tc.status, tc.reason); got != tc.want {
			t.Errorf("%d %s = %s, want %s", tc.status, tc.reason, got, tc.want)
		}
	}
}

func TestPushProviderAgainstFakeAPNs(t *testing.T) {
	srv := fakeapns.New()
	defer srv.Close()
	topic := "com.apple.mgmt.External.unit"
	certPEM, keyPEM, err := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParsePushCert(certPEM, keyPEM)
	if err != nil || info.Topic != topic {
		t.Fatalf("parse push cert: %+v %v", info, err)
	}
	pair, err := (&pushCertStoreless{certPEM, keyPEM}).pair()
	if err != nil {
		t.Fatal(err)
	}
	var observed atomic.Int32
	f := &PushProviderFactory{BaseURL: srv.URL(), RootCAs: srv.RootCAs(), Workers: 3, Expiration: time.Hour,
		Observe: func(string, string, error) { observed.Add(1) }}
	p, err := f.NewPushProvider(pair)
	if err != nil {
		t.Fatal(err)
	}
	var pushes []*mdm.Push
	for i := 0; i < 20; i++ {
		pu := &mdm.Push{PushMagic: "magic", Topic: topic}
		pu.Token = []byte{byte(i), 1, 2, 3}
		pushes = append(pushes, pu)
	}
	srv.Fail(pushes[5].Token.String(), http.StatusGone, "Unregistered")
	res, err := p.Push(context.Background(), pushes)
	if err != nil || len(res) != 20 || observed.Load() != 20 {
		t.Fatalf("push: %d results, %d observed, %v", len(res), observed.Load(), err)
	}
	var pe *PushError
	if r := res[pushes[5].Token.String()]; r == nil || r.Err == nil || !asPushErr(r.Err, &pe) || pe.Class != PushBadToken {
		t.Fatalf("failed token result = %+v", r)
	}
	if r := res[pushes[0].Token.String()]; r == nil || r.Err != nil || r.Id == "" {
		t.Fatalf("ok token result = %+v", r)
	}
	for _, got := range srv.Pushes() {
		exp := got.Expiration
		if got.PushType != "mdm" || got.Topic != topic || got.PushMagic != "magic" || exp == "" || !strings.HasPrefix(got.ClientCN, "APSP:") {
			t.Fatalf("push on the wire = %+v", got)
		}
	}
	if _, err := ParsePushCert(certPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("encrypted key: %v", err)
	}
}

func TestEnrollmentProfileRoundTrip(t *testing.T) {
	id, err := GenerateIdentity("Acme", 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildEnrollmentProfile(ProfileParams{ServerURL: "https://x/mdm"}); err == nil {
		t.Fatal("profile without topic/challenge built")
	}
	raw, err := BuildEnrollmentProfile(ProfileParams{Org: "Acme", ServerURL: "https://l/mdm/connect", CheckInURL: "https://l/mdm/checkin",
		SCEPURL: "https://l/scep", Topic: "com.apple.mgmt.External.x", Challenge: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignProfile(raw, id)
	if err != nil {
		t.Fatal(err)
	}
	inner, signer, err := UnwrapSignedProfile(signed)
	if err != nil || signer == nil || signer.Subject.CommonName != "Lanyard MDM server" {
		t.Fatalf("unwrap: %v %v", signer, err)
	}
	p, err := ParseEnrollmentProfile(inner)
	if err != nil {
		t.Fatal(err)
	}
	if p.SCEP.Challenge != "c1" || p.SCEP.URL != "https://l/scep" || p.SCEP.KeyUsage != 5 || p.SCEP.Keysize != 2048 ||
		p.MDM.ServerURL != "https://l/mdm/connect" || p.MDM.CheckInURL != "https://l/mdm/checkin" || p.MDM.Topic != "com.apple.mgmt.External.x" ||
		!p.MDM.SignMessage || p.MDM.AccessRights != AccessRightsAll || !p.MDM.CheckOutWhenRemoved || p.MDM.IdentityCertificateUUID == "" {
		t.Fatalf("parsed profile = %+v", p)
	}
	tampered := append([]byte(nil), signed...)
	i := strings.Index(string(tampered), "c1")
	tampered[i] = 'X'
	if _, _, err := UnwrapSignedProfile(tampered); err == nil {
		t.Fatal("tampered profile verified")
	}
	certs, keys, _ := MarshalIdentity(id)
	back, err := UnmarshalIdentity(certs, keys)
	if err != nil || !back.CACert.Equal(id.CACert) || back.ServerKey.N.Cmp(id.ServerKey.N) != 0 {
		t.Fatalf("identity round trip: %v", err)
	}
}

func TestBaselineAndDrift(t *testing.T) {
	base, err := Baseline("Acme", BaselineOptions{ScreenLockMinutes: 60})
	if err != nil || len(base) != 5 {
		t.Fatalf("baseline: %d %v", len(base), err)
	}
	for _, p := range base {
		if p.Identifier == BaselineIdentifierPrefix+"screenlock" && !strings.Contains(string(p.Plist), "<integer>900</integer>") {
			t.Fatalf("screen lock not capped at 15 min: %s", p.Plist)
		}
	}
	again, _ := Baseline("Acme", BaselineOptions{})
	if again[0].UUID != base[0].UUID {
		t.Fatal("baseline UUIDs are not stable")
	}
	list := &ProfileListResult{}
	for _, p := range base[1:] {
		list.ProfileList = append(list.ProfileList, struct {
			PayloadIdentifier  string
			PayloadUUID        string
			PayloadDisplayName string
			PayloadVersion     int
		}{PayloadIdentifier: p.Identifier, PayloadUUID: p.UUID})
	}
	list.ProfileList[0].PayloadUUID = "old"
	drift := CompareProfiles(base, list)
	if len(drift) != 2 || drift[0].Reason == drift[1].Reason {
		t.Fatalf("drift = %+v", drift)
	}
}

type pushCertStoreless struct{ cert, key []byte }

func (p *pushCertStoreless) pair() (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(p.cert, p.key)
	return &c, err
}

func asPushErr(err error, target **PushError) bool { return errors.As(err, target) }
