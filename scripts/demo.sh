#!/bin/bash
# The main job: install what is missing, build, and boot Debian's stock kernel
# with a busybox initramfs built here and a fresh 256 MiB qcow2 virtio disk
# (made by kvmini-img; ext4 at /mnt in the guest) and a virtio-net NIC on user networking
# (DHCP from libslirp, the guest's port 80 forwarded from 127.0.0.1:8022, or
# $KVMINI_DEMO_PORT), from a VM definition file (kvmini config show, then
# kvmini run --config), ending at a shell on the serial console
# (Ctrl-A x quits kvmini). Without a terminal the guest runs a few commands and
# powers off instead of waiting for input.
#
# Where this host's KVM cannot run a Linux guest (no VMX/SVM, e.g. a
# paravirtual KVM), the same boot happens inside the nested test host.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
scripts/setup.sh
scripts/build.sh "$BUILD" >/dev/null
mode=script
[ -t 0 ] && [ -t 1 ] && mode=shell

if [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
	out=$BUILD/demo
	KVMINI_E2E_QUIET=1 tests/e2e/build-images.sh "$out" "$BUILD/kvmini" >/dev/null
	kernel=$(cat "$out/kernel")
	rm -f "$out/demo-disk.qcow2"
	"$BUILD/img/kvmini-img" create -f qcow2 "$out/demo-disk.qcow2" 256M
	# NAT (libslirp) with a port forward: 127.0.0.1:$port on this host reaches the
	# guest's port 80. Without a terminal the guest serves one page; fetch it.
	port=${KVMINI_DEMO_PORT:-8022}
	if [ $mode = script ]; then
		(
			for _ in $(seq 240); do
				sleep 0.5
				exec 3<>/dev/tcp/127.0.0.1/$port 2>/dev/null || continue
				printf 'GET / HTTP/1.0\r\n\r\n' >&3
				page=$(sed -n '/^\r\{0,1\}$/,$p' <&3 | tail -n +2)
				exec 3<&-
				[ -n "$page" ] || continue
				echo "demo: GET http://127.0.0.1:$port/ (kvmini's port forward to the guest's port 80): $page"
				echo "demo: kvmini ctl $out/demo-vm.sock status (the VM's control socket):"
				"$BUILD/kvmini" ctl "$out/demo-vm.sock" status 2>&1 | grep -v '^config: \|^  \|^}' |
					sed 's/^/demo:   /'
				exit 0
			done
		) &
	fi
	# The VM's definition, in a file apart from its disk: written from a command
	# line, shown, booted with --config (kvmini config edit changes it).
	"$BUILD/kvmini" config show -- --kernel "$kernel" --initrd "$out/guest-initrd.cpio.gz" \
		--disk "path=$out/demo-disk.qcow2,serial=kvmini-demo" \
		--net "user,hostfwd=tcp:127.0.0.1:$port-:80" \
		--cpus 2 --memory 1G --api-socket "$out/demo-vm.sock" \
		--cmdline "console=ttyS0 quiet kvmini_test=demo kvmini_demo=$mode kvmini_demo_fwd=$port" \
		>"$out/demo-vm.conf"
	echo "demo: the VM's definition, $out/demo-vm.conf:"
	sed 's/^/demo:   /' "$out/demo-vm.conf"
	exec "$BUILD/kvmini" run --config "$out/demo-vm.conf"
fi
echo "kvmini: this host's KVM cannot run a Linux guest (no VMX/SVM); booting the demo inside the nested test host instead (QEMU TCG + kvm-amd, about a minute)"
exec tests/e2e/run-e2e.sh --demo "$mode" "$BUILD"
