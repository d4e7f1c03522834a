package service

import ks "github.com/kardianos/service"

const serviceName = "lanyard-agent"

func options() ks.KeyValue {
	// Recovery actions are only configured when OnFailure is given (the
	// kardianos doc comment claims a restart default; the code sets none).
	return ks.KeyValue{
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "10s",
		"OnFailureResetPeriod":   86400, // int, not string
		"DelayedAutoStart":       true,
		"StartType":              "automatic",
	}
}

// dependencies: kardianos passes them to SCM as service names, so none.
func dependencies() []string { return nil }
