// Package e2e holds driftless's end-to-end tests: the built binary, run as
// a daemon, against a real Git server sending GitHub-style webhooks and
// real SSH hosts (systemd-nspawn machines with real systemd), asserting on
// the hosts themselves, the daemon's API and its /metrics. The package has
// no code of its own; everything is in its tests. They need root and are
// skipped in -short.
//
// The acceptance test:
//
//	go test -count=1 -run TestDeployRollbackDrift -v ./test/e2e/
//
// The benchmark from a push to 10 hosts converged (p50_ms, p99_ms; one
// iteration already makes 20 measured pushes per variant):
//
//	go test -count=1 -run '^$' -bench WebhookToConverged -benchtime 1x ./test/e2e/
//
// DRIFTLESS_E2E_DAEMON_LOG=FILE keeps the daemon's whole log of a run.
package e2e
