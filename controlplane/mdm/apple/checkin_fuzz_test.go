package apple

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/micromdm/plist"
)

// The fuzz targets here cover the plist handling Lanyard wrote around nanomdm:
// the extra check-in keys, the command results it reads, the commands it
// renders and the enrollment profile it serves. nanomdm's own parsing is not
// ours to fuzz.

// plistText reports whether s survives an XML plist: valid UTF-8 and no C0
// control other than TAB/LF (XML 1.0 cannot carry them, and CR is normalised
// on read). Every value these code paths send comes from config or from
// hygiene-checked API input, so nothing else needs to round-trip.
func plistText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
		for _, r := range s {
			if (r < 0x20 && r != '\t' && r != '\n') || r == 0xfffe || r == 0xffff {
				return false
			}
		}
	}
	return true
}

const checkinSeed = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>MessageType</key><string>Authenticate</string>
<key>UDID</key><string>0000FE00-1234</string>
<key>Model</key><string>Mac14,2</string><key>ModelName</key><string>MacBook Air</string>
<key>OSVersion</key><string>15.1</string><key>DeviceName</key><string>Ada's Mac</string>
<key>AwaitingConfiguration</key><true/>
</dict></plist>`

// FuzzCheckinExtras: the Authenticate and TokenUpdate keys Lanyard reads on top
// of nanomdm decode from any body without panicking, and what they decode to
// encodes and decodes again to the same values.
func FuzzCheckinExtras(f *testing.F) {
	f.Add([]byte(checkinSeed))
	f.Add([]byte(`<plist><dict><key>ModelName</key><integer>7</integer></dict></plist>`))
	f.Add([]byte("bplist00\xd1\x01\x02"))
	f.Add([]byte(`<plist><array><string>x</string></array></plist>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var auth authExtra
		if plist.Unmarshal(raw, &auth) == nil && plistText(auth.Model, auth.ModelName, auth.OSVersion, auth.DeviceName, auth.ProductName) {
			roundTrip(t, auth)
		}
		var tok tokenExtra
		if plist.Unmarshal(raw, &tok) == nil {
			roundTrip(t, tok)
		}
	})
}

func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	b, err := plist.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	var back T
	if err := plist.Unmarshal(b, &back); err != nil {
		t.Fatalf("%+v encodes as %q, which does not decode: %v", v, b, err)
	}
	if !reflect.DeepEqual(v, back) {
		t.Fatalf("round trip changed %+v into %+v", v, back)
	}
}

// FuzzCommandResults: the DeviceInformation, SecurityInfo and ProfileList
// answers decode from any body without panicking; a ProfileList's drift
// against a baseline names only baseline profiles, once each, sorted, and
// none that is installed at its current UUID.
func FuzzCommandResults(f *testing.F) {
	f.Add([]byte(`<plist><dict><key>QueryResponses</key><dict><key>SerialNumber</key><string>C02X</string><key>ModelName</key><string>MacBook Pro</string></dict></dict></plist>`))
	f.Add([]byte(`<plist><dict><key>SecurityInfo</key><dict><key>FDE_Enabled</key><true/><key>FirewallSettings</key><dict><key>FirewallEnabled</key><false/></dict></dict></dict></plist>`))
	f.Add([]byte(`<plist><dict><key>ProfileList</key><array><dict><key>PayloadIdentifier</key><string>com.lanyard.baseline.a</string><key>PayloadUUID</key><string>u1</string></dict><dict><key>PayloadIdentifier</key><string>com.lanyard.baseline.b</string><key>PayloadUUID</key><string>old</string></dict></array></dict></plist>`))
	f.Add([]byte(`<plist><dict><key>ProfileList</key><string>x</string></dict></plist>`))
	baseline := []PolicyProfile{{Identifier: "com.lanyard.baseline.a", UUID: "u1"}, {Identifier: "com.lanyard.baseline.b", UUID: "u2"}, {Identifier: "com.lanyard.baseline.c", UUID: "u3"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var di DeviceInfoResult
		_ = plist.Unmarshal(raw, &di)
		var si SecurityInfoResult
		_ = plist.Unmarshal(raw, &si)
		var pl ProfileListResult
		if plist.Unmarshal(raw, &pl) != nil {
			return
		}
		installed := map[string]string{}
		for _, p := range pl.ProfileList {
			installed[p.PayloadIdentifier] = p.PayloadUUID
		}
		drift := CompareProfiles(baseline, &pl)
		seen := map[string]bool{}
		for i, d := range drift {
			if i > 0 && drift[i-1].Identifier >= d.Identifier {
				t.Fatalf("drift not sorted or repeated: %+v", drift)
			}
			seen[d.Identifier] = true
		}
		for _, b := range baseline {
			u, ok := installed[b.Identifier]
			if current := ok && u == b.UUID; current == seen[b.Identifier] {
				t.Fatalf("baseline %s (installed %q, %v): drift %+v", b.Identifier, u, ok, drift)
			}
		}
	})
}

// FuzzBuildCommand: a rendered command is a plist carrying the given UUID and
// request type; a PIN in it is 6 digits; a lock message, profile identifier
// and payload come through unchanged; app install URLs are https. A spec
// Validate refuses never renders.
func FuzzBuildCommand(f *testing.F) {
	f.Add("6D3F0E0C-1111-2222-3333-444455556666", uint8(5), "123456", "Return to IT", []byte("<plist/>"), "com.lanyard.baseline", "https://lanyard.example/agent.pkg", strings.Repeat("ab", 32))
	f.Add("u", uint8(6), "12345a", "", []byte{}, "", "http://x", "")
	f.Add("u", uint8(8), "", "", []byte(nil), "", "https://x/manifest.plist", "")
	f.Add("u", uint8(200), "", "", []byte(nil), "", "", "")
	types := []string{ReqDeviceInformation, ReqSecurityInfo, ReqProfileList, ReqInstallProfile, ReqRemoveProfile,
		ReqDeviceLock, ReqEraseDevice, ReqRestartDevice, ReqInstallEntApp, ReqDeviceConfigured}
	f.Fuzz(func(t *testing.T, uuid string, typ uint8, pin, msg string, payload []byte, ident, url, sha string) {
		if !plistText(uuid, pin, msg, ident, url, sha) {
			return // see plistText
		}
		spec := CommandSpec{PIN: pin, Message: msg, Payload: payload, Identifier: ident, BundleID: AgentPackageBundleID, PackageSHA256: sha}
		spec.RequestType = "Unknown"
		if int(typ) < len(types) {
			spec.RequestType = types[typ]
		}
		if typ%2 == 0 {
			spec.ManifestURL = url
		} else {
			spec.PackageURL = url
		}
		b, err := BuildCommand(uuid, spec)
		if verr := spec.Validate(); (err == nil) != (verr == nil) {
			t.Fatalf("BuildCommand error %v, Validate error %v", err, verr)
		}
		if err != nil {
			return
		}
		var got struct {
			CommandUUID string
			Command     struct {
				RequestType string
				PIN         string
				Message     string
				Identifier  string
				Payload     []byte
				ManifestURL string
				Manifest    struct {
					Items []struct {
						Assets []struct {
							URL string `plist:"url"`
						} `plist:"assets"`
					} `plist:"items"`
				}
			}
		}
		if err := plist.Unmarshal(b, &got); err != nil {
			t.Fatalf("rendered command %q does not parse: %v", b, err)
		}
		c := got.Command
		if got.CommandUUID != uuid || c.RequestType != spec.RequestType {
			t.Fatalf("command %q / %q, want %q / %q", got.CommandUUID, c.RequestType, uuid, spec.RequestType)
		}
		if c.PIN != "" && (!validPIN(c.PIN) || c.PIN != pin) {
			t.Fatalf("PIN %q rendered from %q", c.PIN, pin)
		}
		switch spec.RequestType {
		case ReqDeviceLock:
			if c.Message != msg {
				t.Fatalf("lock message %q, want %q", c.Message, msg)
			}
		case ReqRemoveProfile:
			if c.Identifier != ident {
				t.Fatalf("identifier %q, want %q", c.Identifier, ident)
			}
		case ReqInstallProfile:
			if !bytes.Equal(c.Payload, payload) {
				t.Fatalf("payload changed")
			}
		case ReqInstallEntApp:
			urls := []string{c.ManifestURL}
			for _, it := range c.Manifest.Items {
				for _, a := range it.Assets {
					urls = append(urls, a.URL)
				}
			}
			for _, u := range urls {
				if u != "" && !strings.HasPrefix(u, "https://") {
					t.Fatalf("non-https URL %q in %s", u, b)
				}
			}
		}
	})
}

// FuzzEnrollmentProfile: a profile built from any parameters parses back to
// the same SCEP and MDM values; any other body either fails or yields an MDM
// payload.
func FuzzEnrollmentProfile(f *testing.F) {
	f.Add("Acme", "https://mdm.acme.test/mdm/connect", "https://mdm.acme.test/mdm/checkin", "https://mdm.acme.test/scep", "com.apple.mgmt.External.1", "chal", "Ada's Mac", []byte(nil))
	f.Add("", "s", "", "u", "t", "c", "", []byte(`<plist><dict><key>PayloadType</key><string>Configuration</string></dict></plist>`))
	f.Add("<&>", "x", "y", "z", "t", "c", "]]>", []byte("\x00"))
	f.Fuzz(func(t *testing.T, org, server, checkin, scepURL, topic, challenge, subject string, other []byte) {
		if p, err := ParseEnrollmentProfile(other); err == nil && (p.MDM.PayloadType != "com.apple.mdm") {
			t.Fatalf("parsed a profile without an MDM payload: %+v", p)
		}
		if !plistText(org, server, checkin, scepURL, topic, challenge, subject) {
			return
		}
		params := ProfileParams{Org: org, ServerURL: server, CheckInURL: checkin, SCEPURL: scepURL, Topic: topic, Challenge: challenge, Subject: subject}
		b, err := BuildEnrollmentProfile(params)
		if err != nil {
			if server != "" && scepURL != "" && topic != "" && challenge != "" {
				t.Fatalf("BuildEnrollmentProfile(%+v): %v", params, err)
			}
			return
		}
		p, err := ParseEnrollmentProfile(b)
		if err != nil {
			t.Fatalf("built profile does not parse: %v\n%s", err, b)
		}
		if p.MDM.ServerURL != server || p.MDM.CheckInURL != checkin || p.MDM.Topic != topic || !p.MDM.SignMessage {
			t.Fatalf("MDM payload %+v from %+v", p.MDM, params)
		}
		if p.SCEP.URL != scepURL || p.SCEP.Challenge != challenge {
			t.Fatalf("SCEP payload %+v from %+v", p.SCEP, params)
		}
		if p.MDM.IdentityCertificateUUID == "" {
			t.Fatalf("MDM payload names no identity certificate")
		}
	})
}
