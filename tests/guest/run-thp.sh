#!/bin/bash
# Guest RAM and transparent huge pages: by default kvmini maps guest RAM on a
# 2 MiB boundary and asks for THP (MADV_HUGEPAGE), as QEMU does; with
# --memory ...,thp=off it does not. Checked in the running VMM's
# /proc/PID/smaps: the RAM mapping (the one of exactly the guest's size) must
# start 2 MiB-aligned and say THPeligible 1, or 0 with thp=off.
# usage: run-thp.sh KVMINI GUEST
set -u
kvmini=$1 guest=$2
skip() { echo "run-thp: SKIP: $*"; exit 77; }
[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
( exec 3<>/dev/kvm ) 2>/dev/null || skip "/dev/kvm cannot be opened read-write"
mode=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
[ "$mode" = madvise ] || skip "THP mode is '${mode:-absent}', not madvise: THPeligible would not tell"
dir=$(mktemp -d "${TMPDIR:-/tmp}/run-thp.XXXXXX") || exit 1
vmm=
trap '[ -n "$vmm" ] && kill $vmm 2>/dev/null; rm -rf "$dir"' EXIT
fail=0

# check NAME MEMORY WANT: kvmini with --memory MEMORY (160 MiB), its RAM mapping
# THPeligible WANT.
check() {
	local name=$1 mem=$2 want=$3 smaps got start
	"$kvmini" run --kernel "$guest" --console "file=$dir/$name.log" --memory "$mem" \
		--cmdline "test=basic reboot=1" >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
	vmm=$!
	for _ in $(seq 200); do
		grep -q 'microguest: PASS' "$dir/$name.log" 2>/dev/null && break
		kill -0 $vmm 2>/dev/null || break
		sleep 0.05
	done
	# The guest reboots after each pass, and its RAM is mapped anew each boot:
	# look until a read falls inside a boot.
	for _ in $(seq 100); do
		smaps=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { range = $1 }
			/^Size:/ && $2 == 163840 { want = 1; print range; next }
			want && /^THPeligible:/ { print $2; want = 0 }' /proc/$vmm/smaps 2>/dev/null)
		[ -z "$smaps" ] || break
		sleep 0.02
	done
	kill -TERM $vmm 2>/dev/null
	wait $vmm
	vmm=
	start=$(echo "$smaps" | sed -n 1p | cut -d- -f1)
	got=$(echo "$smaps" | sed -n 2p)
	if [ -z "$start" ]; then
		echo "FAIL $name: no 160 MiB mapping in kvmini's smaps"
		sed 's/^/    /' "$dir/$name.err" | tail -n 3
		fail=1
	elif [ $((0x$start % 2097152)) -ne 0 ]; then
		echo "FAIL $name: guest RAM at 0x$start, not 2 MiB-aligned"
		fail=1
	elif [ "$got" != "$want" ]; then
		echo "FAIL $name: guest RAM at 0x$start has THPeligible ${got:-?}, want $want"
		fail=1
	else
		echo "ok   $name: guest RAM at 0x$start (2 MiB-aligned), THPeligible $got"
	fi
}
check default 160M 1
check thp-off 160M,thp=off 0
[ $fail = 0 ] && echo "run-thp: PASS" || echo "run-thp: FAIL"
exit $fail
