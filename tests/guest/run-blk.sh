#!/bin/sh
# The micro-guest's virtio-blk test, guest and host side:
#
#   run-blk.sh VMM GUEST [--size MIB] [--layout L] [--cluster BYTES]
#              [--append WORDS] [--timeout SECS]
#
# 1. makes the disk in $BLK_TMPDIR (default /var/tmp: the QEMU run uses
#    cache=none, which tmpfs does not support): by default (--layout raw) a
#    raw image of MIB MiB (default 16) filled with a host pattern
#    (blk_image.py, seed H); --layout qcow2 a fresh qcow2 (all zeros),
#    qcow2-backed-raw / qcow2-backed-qcow2 / qcow2-compressed-base a qcow2
#    overlay on a base holding pattern H (blk-layout.sh); --cluster sets the
#    qcow2 cluster size;
# 2. runs run-guest.sh VMM GUEST --test blk --disk IMG with
#    "blk_hostseed=H blk_seed=G blk_capacity=N blk_serial=microguest-blk WORDS"
#    (for a fresh qcow2, H = 2^64-1: the guest expects zeros);
# 3. checks the image on the host: for qcow2, qemu-img check is clean, the
#    base is unchanged and qemu-img convert -O raw flattens it (blk-layout.sh);
#    then in the raw bytes the guest's data range holds pattern G, its
#    discard/write-zeroes ranges are zero, every other sector still holds
#    pattern H (or zeros), the size is unchanged (blk_image.py check).
# VMM is the kvmini binary or "qemu". Exits 77 (skipped) when run-guest.sh
# does, or without python3.
set -u

die() { echo "run-blk: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: run-blk.sh VMM GUEST [--size MIB] [--append WORDS] [--timeout SECS]"
vmm=$1 guest=$2
shift 2
size=16 append='' timeout_s=60 layout=raw cluster=''
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--layout) layout=$2; shift 2 ;;
	--cluster) cluster=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done

here=$(dirname "$0")
command -v python3 >/dev/null 2>&1 || { echo "run-blk: SKIP: no python3"; exit 77; }
dir=$(mktemp -d "${BLK_TMPDIR:-/var/tmp}/run-blk.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$dir"' EXIT INT TERM
hostseed=$(( $$ % 1000 + 1 ))
seed=$(( hostseed + 1000 ))
sectors=$(( size * 2048 ))

. "$here/blk-layout.sh"
layout_prepare "$layout" "$size" "$hostseed" "$cluster"
# The guest's verify() takes seed 2^64-1 as "all zeros".
guesthost=$hostseed
[ "$content" != zero ] || guesthost=18446744073709551615
# QEMU leaves through exit() on isa-debug-exit, dropping the qcow2 metadata
# it still caches: the guest flushes once more at the end (kvmini gets no such
# help: it must write everything back when the guest ends the VM).
[ "$vmm" != qemu ] || [ "$format" != qcow2 ] || append="blk_final_flush=1${append:+ $append}"
[ -z "$pattern" ] || append="blk_pattern=$pattern${append:+ $append}"
"$here/run-guest.sh" "$vmm" "$guest" --test blk --disk "$disk" --format "$format" \
	--keep-log "$dir/console.txt" --timeout "$timeout_s" \
	--append "blk_hostseed=$guesthost blk_seed=$seed blk_capacity=$sectors blk_serial=microguest-blk${append:+ $append}" \
	--expect "microguest: blk capacity=$sectors sectors" \
	--expect "microguest: blk data sectors" \
	--expect "microguest: blk errors:" \
	--expect "microguest: blk reset:"
rc=$?
[ $rc -eq 0 ] || exit $rc
layout_check || exit 1
python3 "$here/blk_image.py" check "$flat" "$size" "$content" "$dir/console.txt" $pattern || exit 1
echo "run-blk: PASS"
