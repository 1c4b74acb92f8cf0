#!/bin/sh
# Runs the micro-guest under kvmini (or QEMU) and checks how it ended.
#
#   run-guest.sh VMM GUEST [--cpus N] [--test NAME] [--append WORDS]
#                [--status S] [--expect TEXT]... [--timeout SECS]
#                [--disk IMG [--format raw|qcow2] [--disk-opts K=V,...]]
#                [--keep-log FILE]
#
# VMM is the kvmini binary, or the word "qemu" for qemu-system-x86_64 (from
# $QEMU or PATH) on the same /dev/kvm. GUEST is microguest.elf.
# The guest command line is "test=NAME expect_cpus=N WORDS" (plus
# "unclaimed_mmio=any" for QEMU, which reads unassigned MMIO as 0).
# Passes when the VMM exits with guest status S (default 0; QEMU's
# isa-debug-exit turns S into 2*S+1), the console log has every --expect
# text, and, for S = 0, "microguest: PASS" (and "microguest: cpus=N" for the
# basic and smp tests; under kvmini, the basic test's unclaimed-access
# counts in the --trace-exits table). Exits 77, which meson counts as skipped, when
# /dev/kvm or QEMU is missing.
# --disk IMG attaches the raw image IMG as a modern virtio-blk PCI disk with
# serial "microguest-blk": kvmini --disk path=IMG,format=raw,serial=...;
# QEMU virtio-blk-pci,disable-legacy=on on a cache=none, aio=io_uring,
# discard=unmap drive (IMG must be on a file system with O_DIRECT).
# --format qcow2 attaches IMG as a qcow2 image instead (kvmini format=qcow2,
# QEMU format=qcow2; a backing file is opened by the VMM itself).
# --disk-opts adds kvmini --disk keys (queues=2,iothread=disk) or QEMU
# virtio-blk-pci properties (num-queues=2).
# --keep-log FILE copies the console log (CRs removed) to FILE.
set -u

die() { echo "run-guest: $*" >&2; exit 1; }
skip() { echo "run-guest: SKIP: $*"; exit 77; }
tag=run-guest
# shellcheck source=tests/guest/run-lib.sh
. "$(dirname "$0")/run-lib.sh"

[ $# -ge 2 ] || die "usage: run-guest.sh VMM GUEST [options]"
vmm=$1 guest=$2
shift 2
cpus=1 test=basic append='' status=0 timeout_s=30 expects='' disk='' disk_opts='' keep_log='' format=raw
nl='
'
while [ $# -gt 0 ]; do
	case $1 in
	--cpus) cpus=$2; shift 2 ;;
	--test) test=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--status) status=$2; shift 2 ;;
	--expect) expects="$expects$2$nl"; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--disk) disk=$2; shift 2 ;;
	--disk-opts) disk_opts=,$2; shift 2 ;;
	--format) format=$2; shift 2 ;;
	--keep-log) keep_log=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done

[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
( exec 3<>/dev/kvm ) 2>/dev/null || skip "/dev/kvm cannot be opened read-write by $(id -un)"
[ -f "$guest" ] || die "guest $guest not found"

dir=$(mktemp -d "${TMPDIR:-/tmp}/run-guest.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$dir"' EXIT INT TERM
log=$dir/console.log
out=$dir/vmm.out
cmdline="test=$test expect_cpus=$cpus${append:+ $append}"

if [ "$vmm" = qemu ]; then
	qemu=${QEMU:-qemu-system-x86_64}
	command -v "$qemu" >/dev/null 2>&1 || skip "$qemu is not installed"
	bios=
	[ -f /usr/share/qemu/qboot.rom ] && bios="-bios /usr/share/qemu/qboot.rom"
	cmdline="$cmdline unclaimed_mmio=any"
	want=$((status * 2 + 1))
	# shellcheck disable=SC2086 # $bios is empty or two words
	set -- "$qemu" -accel kvm -cpu qemu64 -M pc $bios -nodefaults -display none \
		-no-reboot -serial "file:$log" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-smp "$cpus" -kernel "$guest" -append "$cmdline"
	# On qcow2, QEMU's isa-debug-exit ends it by exit(), which drops the
	# metadata it has not flushed: run-blk.sh and run-blkbench.sh make the
	# guest flush at the end (blk_final_flush=1).
	[ -z "$disk" ] || set -- "$@" \
		-drive "if=none,id=d0,file=$disk,format=$format,cache=none,aio=io_uring,discard=unmap" \
		-device "virtio-blk-pci,drive=d0,disable-legacy=on,serial=microguest-blk$disk_opts"
else
	[ -x "$vmm" ] || die "kvmini $vmm not found"
	want=$status
	set -- "$vmm" run --kernel "$guest" --debug-exit --console "file=$log" \
		--cpus "$cpus" --cmdline "$cmdline" --trace-exits
	[ -z "$disk" ] || set -- "$@" --disk "path=$disk,format=$format,serial=microguest-blk$disk_opts"
fi

show_cmd "$@"
start=$(date +%s.%N)
timeout -k 5 "$timeout_s" "$@" >"$out" 2>&1
rc=$?
end=$(date +%s.%N)

judge_run "$rc" "$want" "$start" "$end"
if [ "$status" -eq 0 ]; then
	check "microguest: PASS"
	case $test in basic|smp) check "microguest: cpus=$cpus" ;; esac
fi
[ -z "$expects" ] || check_all "$expects"
# test=basic makes a known number of accesses nobody claims (test_basic.c):
# pio_reads 1-byte + one 2-byte + one 4-byte read and one write on the port,
# 5 reads and 1 write of MMIO. kvmini's --trace-exits table counts them.
if [ "$vmm" != qemu ] && [ "$test" = basic ] && [ "$rc" -eq "$want" ]; then
	reads=$(printf '%s\n' "$cmdline" | tr ' ' '\n' | sed -n 's/^pio_reads=//p')
	reads=${reads:-1000}
	count() { awk -v k="$1" -v b="$2" '$1 == k && $2 == b { print $4 }' "$out"; }
	for c in "unclaimed-read pio $((reads + 2))" "unclaimed-write pio 1" \
		 "unclaimed-read mmio 5" "unclaimed-write mmio 1"; do
		# shellcheck disable=SC2086 # split on purpose: KIND BUS COUNT
		set -- $c
		got=$(count "$1" "$2")
		if [ "$got" != "$3" ]; then
			echo "run-guest: FAIL: --trace-exits: $1 $2 = ${got:-missing}, want $3"
			ok=0
		fi
	done
fi
[ $ok -eq 1 ] || exit 1
echo "run-guest: PASS"
exit 0
