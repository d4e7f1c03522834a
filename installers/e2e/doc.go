// Package e2e installs a real agent .deb on the machine running the tests
// (root, dpkg) with its configuration pointing at a `lanyard serve` on
// loopback, checks that the device enrolls and reports, upgrades it in
// place (the device identity survives) and purges it (nothing is left).
//
// The container has no running systemd, so the package's postinst only
// enables the unit and says so; the test then starts the installed agent
// the way the unit would (/usr/bin/lanyard-agent run). It skips without
// root or dpkg, in -short mode, or when an agent is already installed.
package e2e
