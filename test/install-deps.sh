#!/bin/sh
# Installs, with Debian's packages, what the test suite needs: real SSH
# hosts (openssh, iproute2, nftables, debootstrap, systemd-nspawn), a real
# Git server (git), a flat apt repository (dpkg-dev), an rpm repository
# (rpm, createrepo-c), a real Prometheus and promtool, ansible for the
# side-by-side benchmark, systemd-analyze, chromium for the status
# page's browser test, script(1) (bsdutils) for the live progress test,
# age for the secrets tests, haproxy for the traffic-draining test,
# etcd-server for cluster mode (the tests start their own member on
# loopback; the package's own service is kept stopped and disabled); and
# the sops command (Go, built from its module) for SOPS fixtures.
# It is idempotent: installed packages are left alone.
set -eu
pkgs="bsdutils chromium git openssh-server openssh-client nftables iproute2 debootstrap systemd systemd-container dpkg-dev rpm createrepo-c prometheus ansible haproxy ca-certificates xz-utils zip unzip time age etcd-server"
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
# etcd-server enables an etcd service on port 2379 with data under
# /var/lib/etcd. The tests need only the binary: the service is stopped
# and disabled at every run (a later upgrade of the package may enable it
# again), under systemd or, without it, through its init script.
quiet_etcd() {
	[ "$(id -u)" = 0 ] && [ -e /etc/init.d/etcd ] || return 0
	if [ -d /run/systemd/system ]; then
		if systemctl is-enabled --quiet etcd.service 2>/dev/null || systemctl is-active --quiet etcd.service 2>/dev/null; then
			echo "install-deps: stopping and disabling the etcd-server package's own service (the tests start their own etcd)"
			systemctl disable --now etcd.service >/dev/null 2>&1 || true
		fi
		return 0
	fi
	if ls /etc/rc[2-5].d/S*etcd >/dev/null 2>&1 || /etc/init.d/etcd status >/dev/null 2>&1; then
		echo "install-deps: stopping and disabling the etcd-server package's own service (the tests start their own etcd)"
		/etc/init.d/etcd stop >/dev/null 2>&1 || true
		update-rc.d etcd disable >/dev/null 2>&1 || true
	fi
}
if [ -z "$missing" ]; then
	quiet_etcd
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
quiet_etcd
echo "install-deps: done in $(($(date +%s) - start))s"
