package config

// DefaultPath is where the agent reads its configuration file.
func DefaultPath() string { return "/Library/Application Support/Lanyard/agent.json" }

// DefaultStateDir holds the device key, certificate and offline queue.
func DefaultStateDir() string { return "/Library/Application Support/Lanyard/state" }
