#!/bin/sh
# Installs, with Debian's packages, what the test suite needs: real SSH
# hosts (openssh, iproute2, nftables, debootstrap, systemd-nspawn), a real
# Git server (git), a flat apt repository (dpkg-dev), an rpm repository
# (rpm, createrepo-c), a real Prometheus and promtool, ansible for the
# side-by-side benchmark, systemd-analyze, chromium for the status
# page's browser test, and script(1) (bsdutils) for the live progress test.
# It is idempotent: installed packages are left alone.
set -eu
pkgs="bsdutils chromium git openssh-server openssh-client nftables iproute2 debootstrap systemd systemd-container dpkg-dev rpm createrepo-c prometheus ansible ca-certificates xz-utils zip unzip time"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
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
