package apple

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/micromdm/plist"
)

// Request types Lanyard sends.
const (
	ReqDeviceInformation = "DeviceInformation"
	ReqSecurityInfo      = "SecurityInfo"
	ReqProfileList       = "ProfileList"
	ReqInstallProfile    = "InstallProfile"
	ReqRemoveProfile     = "RemoveProfile"
	ReqDeviceLock        = "DeviceLock"
	ReqEraseDevice       = "EraseDevice"
	ReqRestartDevice     = "RestartDevice"
	ReqInstallEntApp     = "InstallEnterpriseApplication"
	ReqDeviceConfigured  = "DeviceConfigured"
)

// DeviceInfoQueries are the DeviceInformation keys Lanyard asks for.
var DeviceInfoQueries = []string{
	"SerialNumber", "UDID", "OSVersion", "BuildVersion", "ModelName", "Model", "ProductName",
	"DeviceName", "IsAppleSilicon", "PINRequiredForDeviceLock", "PINRequiredForEraseDevice",
}

// CommandSpec describes one MDM command before it gets a UUID.
type CommandSpec struct {
	RequestType string
	// PIN for DeviceLock / EraseDevice (6 digits).
	PIN string
	// Message shown on the lock screen.
	Message string
	// Payload of InstallProfile.
	Payload []byte
	// Identifier of RemoveProfile.
	Identifier string
	// ManifestURL of InstallEnterpriseApplication, or an inline manifest built from
	// PackageURL (the installers' signed .pkg download), PackageSHA256 (hex),
	// PackageSize (bytes hashed: the whole file), BundleID and BundleVersion.
	ManifestURL   string
	PackageURL    string
	PackageSHA256 string
	PackageSize   int64
	BundleID      string
	BundleVersion string
}

// AgentPackageBundleID is the bundle identifier of Lanyard's agent package.
const AgentPackageBundleID = "com.lanyard.agent"

// InstallAgentSpec is the InstallEnterpriseApplication that installs Lanyard's agent
// package (macOS acknowledges before downloading and never reports install errors, so the
// agent's own first report is the confirmation).
func InstallAgentSpec(pkgURL, sha256hex string, size int64, version string) CommandSpec {
	return CommandSpec{RequestType: ReqInstallEntApp, PackageURL: pkgURL, PackageSHA256: sha256hex, PackageSize: size,
		BundleID: AgentPackageBundleID, BundleVersion: version}
}

// Validate checks the fields the request type needs.
func (c CommandSpec) Validate() error {
	switch c.RequestType {
	case ReqDeviceInformation, ReqSecurityInfo, ReqProfileList, ReqRestartDevice, ReqDeviceConfigured:
		return nil
	case ReqDeviceLock, ReqEraseDevice:
		if c.PIN != "" && !validPIN(c.PIN) {
			return errors.New("PIN must be 6 digits")
		}
		return nil
	case ReqInstallProfile:
		if len(c.Payload) == 0 {
			return errors.New("InstallProfile needs a payload")
		}
		return nil
	case ReqRemoveProfile:
		if c.Identifier == "" {
			return errors.New("RemoveProfile needs an identifier")
		}
		return nil
	case ReqInstallEntApp:
		if c.ManifestURL == "" && c.PackageURL == "" {
			return errors.New("InstallEnterpriseApplication needs a manifest URL or a package URL")
		}
		for _, u := range []string{c.ManifestURL, c.PackageURL} {
			if u != "" && !strings.HasPrefix(u, "https://") {
				return errors.New("InstallEnterpriseApplication URLs must be https")
			}
		}
		if c.PackageURL != "" && (len(c.PackageSHA256) != 64 || c.BundleID == "") {
			return errors.New("an inline package manifest needs the package SHA-256 and bundle identifier")
		}
		return nil
	}
	return fmt.Errorf("unsupported request type %q", c.RequestType)
}

// BuildCommand renders the command plist nanomdm queues.
func BuildCommand(uuid string, c CommandSpec) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cmd := map[string]any{"RequestType": c.RequestType}
	switch c.RequestType {
	case ReqDeviceInformation:
		cmd["Queries"] = DeviceInfoQueries
	case ReqDeviceLock:
		if c.PIN != "" {
			cmd["PIN"] = c.PIN
		}
		if c.Message != "" {
			cmd["Message"] = c.Message
		}
	case ReqEraseDevice:
		if c.PIN != "" {
			cmd["PIN"] = c.PIN
		}
		cmd["ObliterationBehavior"] = "Default"
	case ReqInstallProfile:
		cmd["Payload"] = c.Payload
	case ReqRemoveProfile:
		cmd["Identifier"] = c.Identifier
	case ReqRestartDevice:
		cmd["NotifyUser"] = true
	case ReqInstallEntApp:
		if c.ManifestURL != "" {
			cmd["ManifestURL"] = c.ManifestURL
		} else {
			cmd["Manifest"] = map[string]any{"items": []any{map[string]any{
				"assets": []any{map[string]any{"kind": "software-package", "url": c.PackageURL,
					"sha256s": []string{c.PackageSHA256}, "sha256-size": c.PackageSize}},
				"metadata": map[string]any{"bundle-identifier": c.BundleID, "bundle-version": c.BundleVersion,
					"kind": "software", "title": "Lanyard agent"},
			}}}
		}
		cmd["InstallAsManaged"] = true
	}
	b, err := plist.Marshal(map[string]any{"CommandUUID": uuid, "Command": cmd})
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", c.RequestType, err)
	}
	return b, nil
}

// GeneratePIN returns a uniformly random 6-digit PIN.
func GeneratePIN() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

func validPIN(p string) bool {
	if len(p) != 6 {
		return false
	}
	for _, r := range p {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// DeviceInfoResult is the part of a DeviceInformation answer we keep.
type DeviceInfoResult struct {
	QueryResponses struct {
		SerialNumber   string
		UDID           string
		OSVersion      string
		BuildVersion   string
		ModelName      string
		Model          string
		ProductName    string
		DeviceName     string
		IsAppleSilicon bool
	}
}

// SecurityInfoResult is the part of a SecurityInfo answer we keep.
type SecurityInfoResult struct {
	SecurityInfo struct {
		FDEEnabled                       bool `plist:"FDE_Enabled"`
		FDEHasPersonalRecoveryKey        bool `plist:"FDE_HasPersonalRecoveryKey"`
		SystemIntegrityProtectionEnabled bool
		FirewallSettings                 struct {
			FirewallEnabled  bool
			BlockAllIncoming bool
			StealthMode      bool
		}
		AuthenticatedRootVolumeEnabled bool
	}
}

// ProfileListResult lists installed profiles.
type ProfileListResult struct {
	ProfileList []struct {
		PayloadIdentifier  string
		PayloadUUID        string
		PayloadDisplayName string
		PayloadVersion     int
	}
}

// Posture is the security state reported by SecurityInfo, stored on the device record.
type Posture struct {
	FileVault bool `json:"filevault"`
	SIP       bool `json:"sip"`
	Firewall  bool `json:"firewall"`
}
