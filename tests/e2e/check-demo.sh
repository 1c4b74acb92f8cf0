#!/bin/bash
# The README's first command, in the form CI can run: scripts/demo.sh's guest booted by
# run-e2e.sh --demo script in the nested test host, and what it must show: the qcow2
# disk with ext4, the NIC's DHCP lease from libslirp, a download through the NAT, the
# page fetched through hostfwd, a clean image afterwards and kvmini's status 0.
#
# usage: check-demo.sh BUILDDIR    exit 0 pass, 1 fail, 77 cannot run here (as run-e2e.sh)
# The demo is rerun once only when the test host itself died (no "TESTHOST: done",
# platform.md section 4); any other failure fails.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 BUILDDIR" >&2; exit 2; }
out=$1/e2e/logs/demo-check.out
mkdir -p "$(dirname "$out")"

for attempt in 1 2; do
	"$HERE/run-e2e.sh" --demo script "$1" >"$out" 2>&1
	st=$?
	[ $st -eq 77 ] && { tail -n 3 "$out"; exit 77; }
	tr -d '\r' <"$out" >"$out.txt"
	grep -q '^TESTHOST: done' "$out.txt" && break
	echo "check-demo: the test host died (attempt $attempt); last lines:"
	tail -n 8 "$out.txt" | sed 's/^/check-demo:   /'
done

ok=1
# Not anchored: a kernel message or the test host's own output can start in the middle of
# a console line.
want() {
	if grep -q -E -- "$1" "$out.txt"; then
		echo "ok: $2"
	else
		echo "FAIL: $2 (no line matching '$1')"
		ok=0
	fi
}
want '^TESTHOST:   \[disk\]$' "the VM's definition file, shown"
want "^TESTHOST:   hostfwd = tcp:127\\.0\\.0\\.1:8022-10\\.0\\.2\\.15:80$" "its NIC's port forward, normalised"
want '^TESTHOST: kvmini run --config /tmp/demo-vm.conf' "the guest booted from the definition"
want 'Hello from Linux .*, booted by kvmini\.' "the guest's greeting"
want "  disk: +/dev/vda, 256 MiB, virtio-blk, 2 queue\\(s\\), serial 'kvmini-demo'" "the qcow2 disk as /dev/vda"
want '  /mnt: +ext4 on /dev/vda' "ext4 made and mounted on it"
want "  network: eth0 .*virtio-net, 10\\.0\\.2\\.15/24 by DHCP from kvmini's libslirp \\(gateway 10\\.0\\.2\\.2\\)" "the NIC's DHCP lease"
want "Hello from the host: this came through kvmini's NAT" "a download through the NAT"
want "TESTHOST: while the guest ran, wget http://127\\.0\\.0\\.1:8022/ .* got: Hello from a guest of kvmini \\(10\\.0\\.2\\.15/24" "the guest's page through hostfwd"
want 'page served to the host' "the guest saw the fetch"
want '^TESTHOST:   state: running$' "the control socket's status while the guest ran"
want '^TESTHOST:   eth0: rx [1-9][0-9]* frames \([1-9][0-9]* bytes\), tx [1-9][0-9]* frames' "the control socket's NIC counters"
want '^TESTHOST:   disk0 /tmp/demo-disk.qcow2: [0-9]+ reads .*, [1-9][0-9]* writes' "the control socket's disk counters"
want 'No errors were found on the image\.' "kvmini-img check of the image afterwards"
want 'TESTHOST: kvmini exited with status 0' "kvmini's exit status 0"
[ $st -eq 0 ] || { echo "FAIL: run-e2e.sh --demo script exited $st"; ok=0; }
if [ $ok = 0 ]; then
	echo "check-demo: the demo's output ($out):"
	grep -v '^\[' "$out.txt" | tail -n 40 | sed 's/^/  | /'
	exit 1
fi
echo "check-demo: PASS"
