//go:build windows

package securefs

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// ownerOnlySDDL: protected DACL (no inheritance from ProgramData), full
// access for SYSTEM and the Administrators group, inherited by children.
const ownerOnlySDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

func applyDACL(name string) error {
	sd, err := windows.SecurityDescriptorFromString(ownerOnlySDDL)
	if err != nil {
		return fmt.Errorf("securefs: parse SDDL: %w", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("securefs: DACL: %w", err)
	}
	err = windows.SetNamedSecurityInfo(name, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION,
		nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("securefs: set DACL on %s: %w", name, err)
	}
	return nil
}

func restrictDir(dir string) error { return applyDACL(dir) }

func restrictFile(_ *os.File, name string) error { return applyDACL(name) }
