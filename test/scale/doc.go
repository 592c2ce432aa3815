// Package scale holds the drift-scan benchmark of driftless against
// Ansible: the same declared state (files, packages, services) on the same
// fleet of real test hosts, scanned by driftless (one batched remote call
// per host over a pooled SSH connection) and by `ansible-playbook --check
// --diff`. The benchmark and its helpers live in the package's test files;
// README.md says how to run it and records the figures measured.
package scale
