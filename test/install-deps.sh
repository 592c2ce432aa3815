#!/bin/sh
# Installs, with Debian's packages, what the test suite needs: real SSH
# hosts (openssh, iproute2, nftables, debootstrap, systemd-nspawn), a real
# Git server (git), a flat apt repository (dpkg-dev), an rpm repository
# (rpm, createrepo-c), a real Prometheus and promtool, ansible for the
# side-by-side benchmark, and systemd-analyze.
# It is idempotent: installed packages are left alone.
set -eu
pkgs="git openssh-server openssh-client nftables iproute2 debootstrap systemd systemd-container dpkg-dev rpm createrepo-c prometheus ansible ca-certificates xz-utils zip unzip time"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: not root; missing:$missing (tests needing them will skip)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
