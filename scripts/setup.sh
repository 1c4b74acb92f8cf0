#!/bin/bash
# Installs what kvmini needs to build and test, from Debian's packages only.
# Idempotent: packages already present are not touched. Needs root for apt-get.
set -euo pipefail

BUILD_PKGS="meson ninja-build gcc pkg-config liburing-dev libslirp-dev libcmocka-dev zlib1g-dev libzstd-dev libjson-c-dev libinih-dev libisofs-dev"
TEST_PKGS="qemu-system-x86 qemu-utils fio gnuplot-nox acpica-tools genisoimage linux-image-amd64 busybox-static cpio kmod xz-utils e2fsprogs nfs-kernel-server nfs-common iproute2 dnsmasq-base nftables iptables ethtool"

missing=()
for p in $BUILD_PKGS $TEST_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "setup: missing packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
