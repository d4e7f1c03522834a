// Package e2e holds the agent's end-to-end test: a real `lanyard serve` and
// a real `lanyard-agent` process on loopback (see e2e_test.go). It has no
// non-test code.
package e2e
