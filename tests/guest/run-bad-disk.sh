#!/bin/bash
# kvmini run with images it must refuse: each gives exit status 2 (bad or
# unsupported input) or 1 (an image another process is writing, as QEMU
# exits) and exactly one line on stderr, before the guest starts.
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

# case NAME WANT IMAGE: kvmini must exit WANT with one stderr line.
case_() {
	local name=$1 want=$2 img=$3
	"$kvmini" run --kernel "$guest" --debug-exit --console none --cmdline test=basic \
		--disk "path=$img" >"$dir/out" 2>"$dir/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$dir/err")
	if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ]; then
		echo "ok   $name: exit $rc: $(cat "$dir/err")"
	else
		echo "FAIL $name: exit $rc (want $want), $lines stderr lines:"
		sed 's/^/    /' "$dir/err"
		fail=1
	fi
}

be64() { printf "$(printf '\\x%02x' $(for i in 7 6 5 4 3 2 1 0; do echo $(( ($2 >> (8 * i)) & 255 )); done))" |
	dd of="$1" bs=1 seek="$3" conv=notrunc status=none; }

q=$dir/img.qcow2
qemu-img create -q -f qcow2 "$q" 16M
head -c 80 "$q" >"$dir/short.qcow2"
case_ truncated-header 2 "$dir/short.qcow2"
cp "$q" "$dir/l1.qcow2"; be64 "$dir/l1.qcow2" $((1 << 40)) 40
case_ l1-past-eof 2 "$dir/l1.qcow2"
cp "$q" "$dir/bits.qcow2"; be64 "$dir/bits.qcow2" $((1 << 9)) 72
case_ unknown-incompatible-bit 2 "$dir/bits.qcow2"
cp "$q" "$dir/cb.qcow2"; printf '\x28' | dd of="$dir/cb.qcow2" bs=1 seek=23 conv=notrunc status=none
case_ absurd-cluster-bits 2 "$dir/cb.qcow2"
(cd "$dir" && qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 -u b.qcow2 16M &&
	qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 -u a.qcow2 16M)
case_ backing-loop 2 "$dir/a.qcow2"
case_ missing-backing 2 "$(cd "$dir" && qemu-img create -q -f qcow2 -b gone.raw -F raw -u m.qcow2 16M && echo "$dir/m.qcow2")"

# An image QEMU is writing: exit 1, one line naming the image.
# qemu-io holds the image while its stdin (a fifo we keep open) is open.
mkfifo "$dir/in"
qemu-io "$q" <"$dir/in" >/dev/null 2>&1 &
holder=$!
exec 7>"$dir/in"
for _ in $(seq 100); do
	qemu-img info "$q" >/dev/null 2>&1 || break
	sleep 0.05
done
case_ in-use-by-qemu 1 "$q"
exec 7>&-
wait "$holder" 2>/dev/null
holder=
[ $fail = 0 ] && echo "run-bad-disk: PASS" || echo "run-bad-disk: FAIL"
exit $fail
