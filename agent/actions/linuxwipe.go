package actions

// LinuxWipePlan locks the machine, then either crypto-erases the LUKS
// header of the root volume (all keyslots gone: the data is unreadable
// once the kernel forgets the volume key, so power off at once) or, without
// LUKS, removes user data; then powers off.
func LinuxWipePlan(f LinuxFacts) []Step {
	steps := LinuxLockPlan(f, "This device is being erased by your organization's IT department.\n")
	if f.LUKS.Encrypted && f.LUKS.Backing != "" {
		steps = append(steps, Step{
			Name: "crypto-erase:/dev/" + f.LUKS.Backing, Destructive: true,
			Argv: []string{f.Cryptsetup, "luksErase", "--batch-mode", "/dev/" + f.LUKS.Backing},
		})
	} else {
		targets := []string{f.path("/root")}
		for _, u := range f.Humans {
			if u.Home != "" && u.Home != "/" {
				targets = append(targets, f.path(u.Home))
			}
		}
		for _, t := range targets {
			steps = append(steps, Step{
				Name: "remove-user-data:" + t, Destructive: true, ContinueOnError: true,
				Argv: []string{f.Rm, "-rf", "--one-file-system", "--preserve-root", "--", t},
			})
		}
	}
	if f.live() {
		steps = append(steps, Step{Name: "power-off", Destructive: true,
			Argv: []string{f.Systemctl, "poweroff", "--force", "--force"}})
	}
	return steps
}
