// Package packaging holds tests of what ships besides the code: the
// systemd unit (checked by systemd-analyze against a freshly built
// binary, and run unchanged under real systemd in a container), the
// Dockerfile (its build steps give a static binary; a real
// `docker build` when an engine answers), the monitoring files (every
// metric the dashboard and the alert rules use is exported by a running
// daemon), and the documentation (README and docs link to files that
// exist, and mention only commands and flags the binary has).
//
// The package has no code besides this comment: everything is in its
// tests, which build ./cmd/driftless the way the Dockerfile does.
package packaging
