#!/bin/sh
# A short test=blkbench run as a functional test (not a measurement):
#
#   run-blkbench.sh VMM GUEST [--size MIB] [run-guest.sh options]...
#
# Makes a sparse raw image of MIB MiB (default 64) in $BLK_TMPDIR (default
# /var/tmp: QEMU's cache=none needs O_DIRECT, which tmpfs lacks) and runs
# run-guest.sh VMM GUEST --test blkbench --disk IMG with the other options
# passed through (--cpus, --append "blk_queues=2 qd=8 ios=2000", --expect,
# --timeout, ...). It fails when run-guest.sh does: the guest fails on a
# request that does not complete with OK and on a queue that stops
# completing (blk_timeout), and run-guest.sh on a guest that hangs (--timeout).
# The image is all zeros: blkbench does not check data, test=blk does.
# Exits 77 (skipped) when run-guest.sh does.
set -u

die() { echo "run-blkbench: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: run-blkbench.sh VMM GUEST [--size MIB] [run-guest.sh options]"
vmm=$1 guest=$2
shift 2
size=64
if [ $# -ge 2 ] && [ "$1" = --size ]; then
	size=$2
	shift 2
fi

here=$(dirname "$0")
dir=$(mktemp -d "${BLK_TMPDIR:-/var/tmp}/run-blkbench.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$dir"' EXIT INT TERM
img=$dir/disk.img
truncate -s "${size}M" "$img" || die "cannot create $img"
"$here/run-guest.sh" "$vmm" "$guest" --test blkbench --disk "$img" \
	--expect "microguest: bench end" "$@"
