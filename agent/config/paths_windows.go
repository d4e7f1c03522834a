package config

import (
	"os"
	"path/filepath"
)

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// DefaultPath is where the agent reads its configuration file.
func DefaultPath() string { return filepath.Join(programData(), "Lanyard", "agent.json") }

// DefaultStateDir holds the device key, certificate and offline queue.
func DefaultStateDir() string { return filepath.Join(programData(), "Lanyard", "state") }
