package service

import ks "github.com/kardianos/service"

const serviceName = "lanyard-agent"

// systemdUnit replaces kardianos' fixed template (RestartSec=120,
// StartLimit* in [Service]). It is written in kardianos v1.3.0's own
// template syntax ({{Key}}, {{Key | fn}}, {{range}}), not text/template.
// It matches installers/linux's packaged unit.
const systemdUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
Restart=always
RestartSec=10
StateDirectory=lanyard
StateDirectoryMode=0700
UMask=0077

[Install]
WantedBy=multi-user.target
`

func options() ks.KeyValue {
	return ks.KeyValue{"Restart": "always", "SystemdScript": systemdUnit}
}

// dependencies are set in our unit already; kardianos would otherwise add
// them to its own template only.
func dependencies() []string { return nil }
