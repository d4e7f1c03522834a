// Package e2e holds the agent's end-to-end tests: a real `lanyard serve` on
// loopback (internal/e2etest) and a real agent, with nothing faked in
// between. It has no non-test code.
//
//   - e2e_test.go: enrollment, inventory, the dry-run flag, a lock that ends
//     simulated, revocation (a test build of lanyard-agent in dry-run).
//   - releaseagent_test.go: a release build ignores the test knobs.
//   - lock_linux_test.go: a real lock and unlock by lanyard-agent in a test
//     machine (machine_linux_test.go: a private mount and pid namespace with
//     its own /etc, /home, /var and /run), checked with pamtester, and a held
//     lock re-asserted after an agent restart and a simulated reboot.
//   - wipe_linux_test.go: a real wipe by the agent client in-process on LUKS
//     headers on loop devices; the server records it done with its evidence
//     before the (replaced) power-off.
//   - offboarding_linux_test.go: offboarding's lock step against an honest,
//     a dry-run and a killed-mid-lock agent.
//
// The tests that change accounts or disks run as root only, inside
// namespaces or on loop devices, and check afterwards that this machine's
// /etc, /home and /var/lib/extrausers are unchanged. A server they start
// that does not answer fails the test; they skip only in -short mode, when
// not root, or when a tool they need is missing.
package e2e
