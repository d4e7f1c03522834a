package service

import ks "github.com/kardianos/service"

// serviceName is the launchd label (plist /Library/LaunchDaemons/com.lanyard.agent.plist).
const serviceName = "com.lanyard.agent"

func options() ks.KeyValue {
	// RunAtLoad defaults to false in kardianos: without it the daemon does
	// not start at boot.
	return ks.KeyValue{"KeepAlive": true, "RunAtLoad": true, "LogDirectory": "/Library/Logs/Lanyard"}
}

func dependencies() []string { return nil }
