#!/bin/bash
# examples/provision.sh [WORKDIR]: a Debian 12 cloud instance from nothing, with kvmini's
# own tools, the way virt-builder + virt-customize (or a cloud's image service) would:
#
#   1. debootstrap a minimal Debian 12 with systemd, cloud-init and openssh-server into a
#      directory, and lay it out as a raw disk image (one partition, ext4 made by mke2fs -d:
#      no loop devices, no mounts);
#   2. kvmini-img convert it to a qcow2 base, then kvmini-img create an overlay for vm1 that
#      is larger than the base (8 GiB on a 2 GiB base);
#   3. make a fresh SSH key pair and `kvmini seed` a cloud-init NoCloud volume with it
#      (hostname vm1, user debian);
#   4. boot: kvmini run with the overlay, the seed and user networking with
#      hostfwd=tcp:127.0.0.1:2222-:22, a control socket;
#   5. wait for SSH, log in with the key, show that cloud-init grew the root partition and
#      file system to the overlay's size (growpart, resize2fs) and set the hostname;
#   6. `kvmini ctl ... shutdown`: the ACPI power button; systemd powers the guest off.
#
# Needs root (debootstrap), Debian's archive (MIRROR=...), and for steps 4-6 a host whose
# KVM can run a Linux guest (VMX or SVM). Without one it stops after step 3 and says so
# (exit 77). Each step prints how long it took; docs/provisioning.md explains it all.
#
# Environment: KVMINI, KVMINI_IMG (default: build/kvmini, build/img/kvmini-img), MIRROR,
# SUITE (bookworm), SIZE (the overlay, 8G), KEEP_ROOTFS=1 (keep the debootstrap tree).
set -euo pipefail
cd "$(dirname "$0")/.."
KVMINI=$(realpath "${KVMINI:-build/kvmini}")
KVMINI_IMG=$(realpath "${KVMINI_IMG:-build/img/kvmini-img}")
W=${1:-/var/tmp/kvmini-provision}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
SIZE=${SIZE:-8G}
PORT=${PORT:-2222}

say() { echo "provision: $*"; }
die() { echo "provision: error: $*" >&2; exit 1; }
T=$(date +%s)
step_done() { local now; now=$(date +%s); say "  ($1 took $((now - T)) s)"; T=$now; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
[ -x "$KVMINI" ] && [ -x "$KVMINI_IMG" ] || die "build kvmini first (scripts/build.sh build)"
need=
for t in debootstrap:debootstrap sfdisk:fdisk mke2fs:e2fsprogs ssh-keygen:openssh-client ssh:openssh-client; do
	command -v "${t%%:*}" >/dev/null || need="$need ${t#*:}"
done
if [ -n "$need" ]; then
	say "installing$need"
	apt-get install -y -q $need >/dev/null
fi
mkdir -p "$W"
W=$(realpath "$W")
cd "$W"

# --- 1. a Debian root file system and a raw disk image ----------------------------------------
say "1/6 debootstrap $SUITE (minbase + systemd, cloud-init, openssh-server) into $W/rootfs"
if [ ! -e rootfs.done ]; then
	rm -rf rootfs rootfs.done
	# debootstrap's own resolver does not follow virtual packages (cloud-init's
	# python3-cryptography needs one), so it lays down minbase and apt does the rest.
	debootstrap --variant=minbase "$SUITE" rootfs "$MIRROR" >debootstrap.log 2>&1 ||
		{ tail -n 20 debootstrap.log >&2; die "debootstrap failed (log: $W/debootstrap.log)"; }
	mount -t proc proc rootfs/proc
	mount -t sysfs sysfs rootfs/sys
	mount --bind /dev rootfs/dev
	trap 'umount rootfs/dev rootfs/sys rootfs/proc 2>/dev/null || true' EXIT
	# No service starts inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >rootfs/usr/sbin/policy-rc.d
	chmod +x rootfs/usr/sbin/policy-rc.d
	chroot rootfs env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		systemd systemd-sysv udev dbus linux-image-amd64 initramfs-tools cloud-init \
		cloud-guest-utils openssh-server ifupdown isc-dhcp-client e2fsprogs fdisk iproute2 \
		procps sudo ca-certificates locales >>debootstrap.log 2>&1 ||
		{ tail -n 20 debootstrap.log >&2; die "apt-get install in the chroot failed (log: $W/debootstrap.log)"; }
	rm -f rootfs/usr/sbin/policy-rc.d
	umount rootfs/dev rootfs/sys rootfs/proc
	trap - EXIT
	# The root file system by label, so the same image works whatever the disk's name.
	echo "LABEL=vm-root / ext4 defaults,errors=remount-ro 0 1" >rootfs/etc/fstab
	# cloud-init: only NoCloud (the seed), no waiting for cloud metadata servers.
	# C.UTF-8 is built into glibc: cloud-init's default, en_US.UTF-8, is not generated
	# in a minbase system, and its locale module fails on it.
	printf 'datasource_list: [ NoCloud, None ]\nlocale: C.UTF-8\n' >rootfs/etc/cloud/cloud.cfg.d/90-kvmini.cfg
	# No password logins at all: the seed's key is the only way in.
	chroot rootfs passwd -l root >/dev/null
	# Serial console login is systemd's serial-getty (console=ttyS0 on the command line).
	rm -f rootfs/etc/hostname rootfs/etc/machine-id rootfs/var/lib/dbus/machine-id
	touch rootfs/etc/machine-id
	chroot rootfs apt-get clean
	touch rootfs.done
fi
kver=$(ls rootfs/boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel in rootfs/boot"
cp "rootfs/boot/vmlinuz-$kver" vmlinuz
cp "rootfs/boot/initrd.img-$kver" initrd.img
step_done "debootstrap"

say "  raw image base.raw: 2 GiB, one partition (dos label), ext4 labelled vm-root, filled by mke2fs -d"
rm -f base.raw
truncate -s 2G base.raw
echo 'start=2048, type=83' | sfdisk -q base.raw
part_sectors=$(( $(stat -c %s base.raw) / 512 - 2048 ))
mke2fs -q -t ext4 -L vm-root -E offset=$((2048 * 512)) -d rootfs base.raw $((part_sectors / 2))k
step_done "raw image"

# --- 2. a qcow2 base and an overlay larger than it ----------------------------------------------
say "2/6 $KVMINI_IMG convert -f raw -O qcow2 base.raw base.qcow2; create -b base.qcow2 vm1.qcow2 $SIZE"
rm -f base.qcow2 vm1.qcow2
"$KVMINI_IMG" convert -f raw -O qcow2 base.raw base.qcow2
"$KVMINI_IMG" create -f qcow2 -b base.qcow2 -F qcow2 vm1.qcow2 "$SIZE"
"$KVMINI_IMG" info vm1.qcow2 | sed 's/^/provision:   /'
[ "${KEEP_RAW:-0}" = 1 ] || rm -f base.raw
step_done "qcow2 base and overlay"

# --- 3. a key pair and a cloud-init seed ----------------------------------------------------------
say "3/6 ssh-keygen (vm1_key), kvmini seed --hostname vm1 --user debian -o seed.img"
rm -f vm1_key vm1_key.pub seed.img
ssh-keygen -q -t ed25519 -N '' -C "kvmini-provision@$(hostname)" -f vm1_key
"$KVMINI" seed --hostname vm1 --ssh-key vm1_key.pub --user debian -o seed.img
step_done "key and seed"

if ! { [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; }; then
	say "4/6 skipped: this host's KVM cannot run a Linux guest (no VMX/SVM);"
	say "    the images are ready in $W: boot them on a KVM host with the command below"
	echo "$KVMINI run --kernel $W/vmlinuz --initrd $W/initrd.img --cmdline 'console=ttyS0 root=LABEL=vm-root rw' --cpus 2 --memory 1G --disk path=$W/vm1.qcow2 --disk path=$W/seed.img,format=raw,readonly=on --net user,hostfwd=tcp:127.0.0.1:$PORT-:22"
	exit 77
fi

# --- 4. boot -----------------------------------------------------------------------------------------
say "4/6 kvmini run: vm1.qcow2 + seed.img, --net user,hostfwd=tcp:127.0.0.1:$PORT-:22 (console in $W/console.log)"
rm -f vm1.sock console.log
"$KVMINI" run --kernel vmlinuz --initrd initrd.img \
	--cmdline "console=ttyS0 root=LABEL=vm-root rw" --cpus 2 --memory 1G \
	--disk path=vm1.qcow2 --disk path=seed.img,format=raw,readonly=on \
	--net "user,hostfwd=tcp:127.0.0.1:$PORT-:22" --console file=console.log \
	--api-socket vm1.sock 2>kvmini.err &
vm=$!
trap 'kill $vm 2>/dev/null || true' EXIT
SSH=(ssh -q -i vm1_key -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o ConnectTimeout=5 -o BatchMode=yes debian@127.0.0.1)
for i in $(seq 1 120); do
	"${SSH[@]}" true 2>/dev/null && break
	kill -0 $vm 2>/dev/null || { cat kvmini.err >&2; die "kvmini exited before SSH answered"; }
	[ "$i" -lt 120 ] || { tail -n 30 console.log >&2; die "no SSH after 10 minutes"; }
	sleep 5
done
step_done "boot to SSH"

# --- 5. what cloud-init did ---------------------------------------------------------------------------
say "5/6 ssh -i vm1_key -p $PORT debian@127.0.0.1 (the key from the seed)"
"${SSH[@]}" 'echo "hostname: $(hostname)"; lsblk -o NAME,SIZE,TYPE,MOUNTPOINT /dev/vda; df -h /;
	cloud-init status --wait >/dev/null; cloud-init status --long;
	grep -E "WARNING|ERROR" /var/log/cloud-init.log | tail -n 5' |
	sed 's/^/provision:   /'
root_kb=$("${SSH[@]}" "df -k --output=size / | tail -n 1" | tr -d ' ')
[ "$("${SSH[@]}" hostname)" = vm1 ] || die "the guest's hostname is not vm1"
"${SSH[@]}" cloud-init status | grep -q 'status: done' || die "cloud-init did not finish cleanly"
[ "$root_kb" -gt $((4 * 1024 * 1024)) ] || die "the root file system was not grown (${root_kb} KiB)"
say "  root file system: $((root_kb / 1024)) MiB on the $SIZE overlay (the base was 2 GiB): grown"
"$KVMINI" ctl vm1.sock status | sed -n '1,5p' | sed 's/^/provision:   /'
step_done "checks"

# --- 6. an orderly shutdown through the power button ----------------------------------------------------
say "6/6 kvmini ctl vm1.sock shutdown (systemd-logind powers the guest off)"
"$KVMINI" ctl vm1.sock shutdown --timeout 120 | sed 's/^/provision:   /'
st=0
wait $vm || st=$?
trap - EXIT
[ $st = 0 ] || die "kvmini exited with status $st after the power button: $(tail -n 3 kvmini.err)"
step_done "shutdown"
say "done: kvmini exited 0; images in $W"
