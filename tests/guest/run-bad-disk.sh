#!/bin/bash
# kvmini run with images it must refuse: each gives exit status 2 (bad or
# unsupported input) or 1 (an image another process is writing, as QEMU
# exits) and exactly one line on stderr, before the guest starts. Where root
# may make a mount namespace, these runs see /dev/null as /dev/kvm: the
# refusals (and a too small --memory) must come before kvmini touches KVM.
# Last, an image stays open (and locked) across guest reboots.
# usage: run-bad-disk.sh KVMINI GUEST
set -u
kvmini=$1 guest=$2
skip() { echo "run-bad-disk: SKIP: $*"; exit 77; }
[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
( exec 3<>/dev/kvm ) 2>/dev/null || skip "/dev/kvm cannot be opened read-write"
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null ||
	skip "qemu-img/qemu-io not installed (apt-get install qemu-utils)"
dir=$(mktemp -d "${TMPDIR:-/tmp}/bad-disk.XXXXXX") || exit 1
holder=
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$dir"' EXIT
fail=0

# no_kvm CMD...: CMD with /dev/null in place of /dev/kvm, when root may do that.
if unshare -m sh -c 'mount --bind /dev/null /dev/kvm' 2>/dev/null; then
	no_kvm() { unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' sh "$@"; }
	echo "run-bad-disk: the refusals run with /dev/null as /dev/kvm"
else
	no_kvm() { "$@"; }
	echo "run-bad-disk: SKIP (part): cannot bind-mount over /dev/kvm in a mount namespace" \
		"(not root?): the refusals run with the real /dev/kvm, their order is not checked"
fi

# case NAME WANT PATTERN ARGS...: kvmini run with ARGS must exit WANT with one
# stderr line matching PATTERN (grep -E).
case_() {
	local name=$1 want=$2 pat=$3
	shift 3
	no_kvm "$kvmini" run --kernel "$guest" --debug-exit --console none --cmdline test=basic \
		"$@" >"$dir/out" 2>"$dir/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$dir/err")
	if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -qE "$pat" "$dir/err"; then
		echo "ok   $name: exit $rc: $(cat "$dir/err")"
	else
		echo "FAIL $name: exit $rc (want $want), $lines stderr lines (want 1 matching '$pat'):"
		sed 's/^/    /' "$dir/err"
		fail=1
	fi
}
disk_() { local name=$1 want=$2 pat=$3 img=$4; case_ "$name" "$want" "$pat" --disk "path=$img"; }

be64() { printf "$(printf '\\x%02x' $(for i in 7 6 5 4 3 2 1 0; do echo $(( ($2 >> (8 * i)) & 255 )); done))" |
	dd of="$1" bs=1 seek="$3" conv=notrunc status=none; }

q=$dir/img.qcow2
qemu-img create -q -f qcow2 "$q" 16M
head -c 80 "$q" >"$dir/short.qcow2"
disk_ truncated-header 2 'too short' "$dir/short.qcow2"
cp "$q" "$dir/l1.qcow2"; be64 "$dir/l1.qcow2" $((1 << 40)) 40
disk_ l1-past-eof 2 'past the end' "$dir/l1.qcow2"
cp "$q" "$dir/bits.qcow2"; be64 "$dir/bits.qcow2" $((1 << 9)) 72
disk_ unknown-incompatible-bit 2 'incompatible feature' "$dir/bits.qcow2"
cp "$q" "$dir/cb.qcow2"; printf '\x28' | dd of="$dir/cb.qcow2" bs=1 seek=23 conv=notrunc status=none
disk_ absurd-cluster-bits 2 'cluster_bits' "$dir/cb.qcow2"
(cd "$dir" && qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 -u b.qcow2 16M &&
	qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 -u a.qcow2 16M)
disk_ backing-loop 2 'loops' "$dir/a.qcow2"
disk_ missing-backing 2 'gone.raw' "$(cd "$dir" && qemu-img create -q -f qcow2 -b gone.raw -F raw -u m.qcow2 16M && echo "$dir/m.qcow2")"

# An image QEMU is writing: exit 1, one line naming the image.
# qemu-io holds the image while its stdin (a fifo we keep open) is open. It
# prompts once it has the image; polling with qemu-img info instead would
# race it (info's shared lock makes qemu-io's open fail).
mkfifo "$dir/in"
qemu-io "$q" <"$dir/in" >"$dir/qemu-io.out" 2>&1 &
holder=$!
exec 7>"$dir/in"
held=0
for _ in $(seq 600); do
	grep -q 'qemu-io>' "$dir/qemu-io.out" 2>/dev/null && { held=1; break; }
	kill -0 $holder 2>/dev/null || break
	sleep 0.05
done
if [ $held = 1 ]; then
	disk_ in-use-by-qemu 1 'in use' "$q"
else
	echo "FAIL in-use-by-qemu: qemu-io did not open the image within 30 s: $(head -c 300 "$dir/qemu-io.out")"
	fail=1
fi
exec 7>&-
wait "$holder" 2>/dev/null
holder=

# Guest memory too small for the kernel: refused from the kernel's size alone.
case_ memory-below-8m 2 'at least 8' --memory 4M
# A 16 MiB initrd cannot sit above the kernel in 16 MiB of RAM.
head -c 16M /dev/zero >"$dir/initrd"
case_ memory-below-initrd 2 'too small for this kernel and initrd' --memory 16M --initrd "$dir/initrd"

# An image is opened once per process: after the first boot its path is gone,
# and kvmini goes on booting the guest (reboot=1: the guest resets after each
# pass) while holding the image's lock, which qemu-img info keeps running into.
img=$dir/keep.qcow2
qemu-img create -q -f qcow2 "$img" 16M
"$kvmini" run --kernel "$guest" --console "file=$dir/reboot.log" \
	--cmdline "test=basic reboot=1" --disk "path=$img,format=qcow2" \
	>"$dir/reboot.out" 2>"$dir/reboot.err" </dev/null &
vmm=$!
holder=$vmm
passes() { n=$(grep -c '^microguest: PASS' "$dir/reboot.log" 2>/dev/null); echo "${n:-0}"; }
for _ in $(seq 600); do
	[ "$(passes)" -ge 1 ] || ! kill -0 $vmm 2>/dev/null && break
	sleep 0.05
done
mv "$img" "$dir/moved.qcow2"
start=$(passes) unlocked=0
for _ in $(seq 600); do
	kill -0 $vmm 2>/dev/null && [ "$(passes)" -lt $((start + 3)) ] || break
	qemu-img info "$dir/moved.qcow2" >/dev/null 2>&1 && unlocked=$((unlocked + 1))
	sleep 0.05
done
end=$(passes)
kill -TERM $vmm 2>/dev/null
wait $vmm
rc=$?
holder=
if [ "$end" -ge $((start + 3)) ] && [ $unlocked = 0 ] && [ $rc = 0 ]; then
	echo "ok   open-across-reboots: $((end - start)) boots after the image's path went away, lock held throughout, exit $rc"
else
	echo "FAIL open-across-reboots: $((end - start)) boots (want 3) after the path went away, lock free $unlocked times, exit $rc:"
	sed 's/^/    /' "$dir/reboot.err" | tail -n 5
	fail=1
fi
[ $fail = 0 ] && echo "run-bad-disk: PASS" || echo "run-bad-disk: FAIL"
exit $fail
