#!/bin/sh
# Installs, with Debian's packages, what the test suite needs: real SSH
# hosts (openssh, iproute2, nftables, debootstrap, systemd-nspawn), a real
# Git server (git), a flat apt repository (dpkg-dev), an rpm repository
# (rpm, createrepo-c), a real Prometheus and promtool, ansible for the
# side-by-side benchmark, systemd-analyze, chromium for the status
# page's browser test, script(1) (bsdutils) for the live progress test,
# age for the secrets tests, haproxy for the traffic-draining test; and
# the sops command (Go, built from its module) for SOPS fixtures.
# It is idempotent: installed packages are left alone.
set -eu
pkgs="bsdutils chromium git openssh-server openssh-client nftables iproute2 debootstrap systemd systemd-container dpkg-dev rpm createrepo-c prometheus ansible haproxy ca-certificates xz-utils zip unzip time age"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
# sops is no Debian package: the Go command builds the version the
# secrets tests were written against into GOBIN (default ~/go/bin).
sops_version=v3.13.3
gobin=$(go env GOBIN 2>/dev/null || true)
[ -n "$gobin" ] || gobin="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
if [ -x "$gobin/sops" ] && "$gobin/sops" --version --disable-version-check 2>/dev/null | grep -q "${sops_version#v}"; then
	:
elif command -v go >/dev/null 2>&1; then
	echo "install-deps: building sops $sops_version into $gobin"
	go install "github.com/getsops/sops/v3/cmd/sops@$sops_version"
fi
if [ -z "$missing" ]; then
	echo "install-deps: every package the tests need is installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: not root; missing:$missing (tests needing them will skip, or fail in strict mode)" >&2
	exit 0
fi
echo "install-deps: installing$missing (on a fresh machine this takes a few minutes)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# apt prints a line per package fetched, unpacked and set up: progress shows.
apt-get install -y -q --no-install-recommends $missing
echo "install-deps: done in $(($(date +%s) - start))s"
