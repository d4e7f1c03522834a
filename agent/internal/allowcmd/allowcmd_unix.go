//go:build !windows

package allowcmd

import "os"

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// env is a fixed minimal environment: no inherited LD_PRELOAD, PATH or locale.
func env() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C"}
}
