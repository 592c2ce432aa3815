// Package e2e holds driftless's end-to-end tests: the built binary, run as
// a daemon, against a real Git server sending GitHub-style webhooks and
// real SSH hosts (systemd-nspawn machines with real systemd), asserting on
// the hosts themselves, the daemon's API and its /metrics. The package has
// no code of its own; everything is in its tests.
package e2e
