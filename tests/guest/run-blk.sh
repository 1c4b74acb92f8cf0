#!/bin/sh
# The micro-guest's virtio-blk test, guest and host side:
#
#   run-blk.sh VMM GUEST [--size MIB] [--append WORDS] [--timeout SECS]
#
# 1. makes a raw image of MIB MiB (default 16) filled with a host pattern
#    (blk_image.py, seed H) in $BLK_TMPDIR (default /var/tmp: the QEMU run
#    uses cache=none, which tmpfs does not support);
# 2. runs run-guest.sh VMM GUEST --test blk --disk IMG with
#    "blk_hostseed=H blk_seed=G blk_capacity=N blk_serial=microguest-blk WORDS";
# 3. checks the image on the host: the guest's data range holds pattern G,
#    its discard/write-zeroes ranges are zero, every other sector still holds
#    pattern H, the size is unchanged (blk_image.py check).
# VMM is the kvmini binary or "qemu". Exits 77 (skipped) when run-guest.sh
# does, or without python3.
set -u

die() { echo "run-blk: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: run-blk.sh VMM GUEST [--size MIB] [--append WORDS] [--timeout SECS]"
vmm=$1 guest=$2
shift 2
size=16 append='' timeout_s=60
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done

here=$(dirname "$0")
command -v python3 >/dev/null 2>&1 || { echo "run-blk: SKIP: no python3"; exit 77; }
dir=$(mktemp -d "${BLK_TMPDIR:-/var/tmp}/run-blk.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$dir"' EXIT INT TERM
img=$dir/disk.img
hostseed=$(( $$ % 1000 + 1 ))
seed=$(( hostseed + 1000 ))
sectors=$(( size * 2048 ))

python3 "$here/blk_image.py" create "$img" "$size" "$hostseed" || die "cannot create $img"
"$here/run-guest.sh" "$vmm" "$guest" --test blk --disk "$img" --keep-log "$dir/console.txt" \
	--timeout "$timeout_s" \
	--append "blk_hostseed=$hostseed blk_seed=$seed blk_capacity=$sectors blk_serial=microguest-blk${append:+ $append}" \
	--expect "microguest: blk capacity=$sectors sectors" \
	--expect "microguest: blk data sectors" \
	--expect "microguest: blk errors:" \
	--expect "microguest: blk reset:"
rc=$?
[ $rc -eq 0 ] || exit $rc
python3 "$here/blk_image.py" check "$img" "$size" "$hostseed" "$dir/console.txt" || exit 1
echo "run-blk: PASS"
