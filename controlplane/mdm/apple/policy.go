package apple

import (
	"fmt"
	"sort"

	"github.com/google/uuid"
	"github.com/micromdm/plist"
)

// PolicyProfile is one configuration profile of the org baseline.
type PolicyProfile struct {
	// Identifier is the top-level PayloadIdentifier (stable across versions).
	Identifier string
	// UUID is derived from the content, so ProfileList shows whether the installed copy is
	// the current one.
	UUID string
	Name string
	// Plist is the unsigned profile.
	Plist []byte
}

// BaselineOptions tunes the org baseline. The zero value is the default baseline.
type BaselineOptions struct {
	// ScreenLockMinutes is the idle time before the screen locks; capped at 15.
	ScreenLockMinutes int
}

// baselineNamespace seeds the content-derived profile UUIDs.
var baselineNamespace = uuid.MustParse("8f6f3c2e-52b4-4f43-9c1e-6c8a6a3f0b11")

// BaselineIdentifierPrefix marks every baseline profile.
const BaselineIdentifierPrefix = "com.lanyard.baseline."

// Baseline renders the org baseline: FileVault required, Gatekeeper on, firewall on,
// screen lock after at most 15 minutes, automatic macOS updates.
func Baseline(org string, opt BaselineOptions) ([]PolicyProfile, error) {
	mins := opt.ScreenLockMinutes
	if mins <= 0 || mins > 15 {
		mins = 15
	}
	defs := []struct {
		key, name, ptype string
		content          map[string]any
	}{
		{"filevault", "FileVault required", "com.apple.MCX.FileVault2", map[string]any{
			"Enable": "On", "Defer": true, "DeferForceAtUserLoginMaxBypassAttempts": 0,
			"ShowRecoveryKey": false, "UseRecoveryKey": true,
		}},
		{"gatekeeper", "Gatekeeper on", "com.apple.systempolicy.control", map[string]any{
			"EnableAssessment": true, "AllowIdentifiedDevelopers": true,
		}},
		{"firewall", "Firewall on", "com.apple.security.firewall", map[string]any{
			"EnableFirewall": true, "BlockAllIncoming": false, "EnableStealthMode": true,
		}},
		{"screenlock", fmt.Sprintf("Screen lock after %d minutes", mins), "com.apple.screensaver", map[string]any{
			"idleTime": mins * 60, "askForPassword": true, "askForPasswordDelay": 0,
		}},
		{"updates", "Automatic macOS updates", "com.apple.SoftwareUpdate", map[string]any{
			"AutomaticCheckEnabled": true, "AutomaticDownload": true,
			"AutomaticallyInstallMacOSUpdates": true, "CriticalUpdateInstall": true,
			"ConfigDataInstall": true,
		}},
	}
	out := make([]PolicyProfile, 0, len(defs))
	for _, d := range defs {
		id := BaselineIdentifierPrefix + d.key
		inner := map[string]any{
			"PayloadType": d.ptype, "PayloadVersion": 1, "PayloadIdentifier": id + ".payload",
			"PayloadDisplayName": d.name,
		}
		for k, v := range d.content {
			inner[k] = v
		}
		// The payload UUID is derived from the inner content, the profile UUID from that.
		body, err := plist.Marshal(inner)
		if err != nil {
			return nil, err
		}
		inner["PayloadUUID"] = uuid.NewSHA1(baselineNamespace, body).String()
		profUUID := uuid.NewSHA1(baselineNamespace, append([]byte(id+org), body...)).String()
		prof := map[string]any{
			"PayloadContent":           []any{inner},
			"PayloadDisplayName":       "Lanyard baseline: " + d.name,
			"PayloadIdentifier":        id,
			"PayloadOrganization":      org,
			"PayloadScope":             "System",
			"PayloadType":              "Configuration",
			"PayloadUUID":              profUUID,
			"PayloadVersion":           1,
			"PayloadRemovalDisallowed": true,
		}
		b, err := plist.MarshalIndent(prof, "\t")
		if err != nil {
			return nil, err
		}
		out = append(out, PolicyProfile{Identifier: id, UUID: profUUID, Name: d.name, Plist: b})
	}
	return out, nil
}

// Drift is one baseline profile that is missing or outdated on a Mac.
type Drift struct {
	Identifier string `json:"identifier"`
	// Reason is "missing" or "outdated".
	Reason string `json:"reason"`
}

// CompareProfiles compares a ProfileList answer with the baseline.
func CompareProfiles(baseline []PolicyProfile, list *ProfileListResult) []Drift {
	installed := map[string]string{}
	for _, p := range list.ProfileList {
		installed[p.PayloadIdentifier] = p.PayloadUUID
	}
	var out []Drift
	for _, b := range baseline {
		u, ok := installed[b.Identifier]
		switch {
		case !ok:
			out = append(out, Drift{Identifier: b.Identifier, Reason: "missing"})
		case u != b.UUID:
			out = append(out, Drift{Identifier: b.Identifier, Reason: "outdated"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identifier < out[j].Identifier })
	return out
}
