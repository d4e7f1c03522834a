//go:build windows

package allowcmd

import "os"

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func env() []string {
	keep := []string{"SystemRoot", "windir", "ProgramData", "ProgramFiles", "TEMP", "TMP", "ComputerName"}
	var out []string
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}
