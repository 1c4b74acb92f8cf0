#!/bin/sh
# A short test=blkbench run as a functional test (not a measurement):
#
#   run-blkbench.sh VMM GUEST [--size MIB] [--layout L] [--cluster BYTES]
#                   [run-guest.sh options]...
#
# Makes the disk in $BLK_TMPDIR (default /var/tmp: QEMU's cache=none needs
# O_DIRECT, which tmpfs lacks): by default (--layout raw-zero) a sparse raw
# image of MIB MiB (default 64); --layout qcow2 a fresh qcow2 and
# qcow2-backed-raw / qcow2-backed-qcow2 / qcow2-compressed-base a qcow2 overlay
# on a base filled with a host pattern (blk-layout.sh), --cluster its cluster
# size. Then runs run-guest.sh VMM GUEST --test blkbench --disk IMG with the
# other options passed through (--cpus, --append "blk_queues=2 qd=8
# ios=2000", --expect, --timeout, ...). It fails when run-guest.sh does: the
# guest fails on a request that does not complete with OK and on a queue that
# stops completing (blk_timeout), and run-guest.sh on a guest that hangs
# (--timeout).
# On a qcow2 layout the host then checks the image (blk-layout.sh: qemu-img
# check clean, base unchanged, flattened with qemu-img convert -O raw) and,
# for bench=randwrite|seqwrite, its data (blk_image.py bench-check: every
# block the guest wrote holds one of its buffers, every other sector the
# base's bytes). A raw run does not check data: test=blk does.
# Exits 77 (skipped) when run-guest.sh does, or for qcow2 without qemu-img.
set -u

die() { echo "run-blkbench: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: run-blkbench.sh VMM GUEST [--size MIB] [--layout L] [--cluster BYTES] [run-guest.sh options]"
vmm=$1 guest=$2
shift 2
size=64 layout=raw-zero cluster=''
while [ $# -ge 2 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--layout) layout=$2; shift 2 ;;
	--cluster) cluster=$2; shift 2 ;;
	*) break ;;
	esac
done
# The guest's command-line words, for the data check (the last --append wins,
# as in run-guest.sh).
words='' prev=''
for a in "$@"; do
	[ "$prev" = --append ] && words=$a
	prev=$a
done

here=$(dirname "$0")
dir=$(mktemp -d "${BLK_TMPDIR:-/var/tmp}/run-blkbench.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$dir"' EXIT INT TERM
case $layout in raw-zero) ;; *)
	command -v python3 >/dev/null 2>&1 || { echo "run-blkbench: SKIP: no python3"; exit 77; } ;;
esac
. "$here/blk-layout.sh"
layout_prepare "$layout" "$size" $(( $$ % 1000 + 1 )) "$cluster"
"$here/run-guest.sh" "$vmm" "$guest" --test blkbench --disk "$disk" --format "$format" \
	--expect "microguest: bench end" "$@"
rc=$?
[ $rc -eq 0 ] || exit $rc
[ "$format" = qcow2 ] || exit 0
layout_check || exit 1
case " $words " in
*" bench=randwrite "* | *" bench=seqwrite "*)
	python3 "$here/blk_image.py" bench-check "$flat" "$size" "$content" "$words" $pattern || exit 1 ;;
esac
echo "run-blkbench: PASS"
