#!/bin/bash
# Builds the two initramfs images of the nested end-to-end test (docs/testing-e2e.md):
#   OUTDIR/guest-initrd.cpio.gz  busybox + guest-init + e2fsprogs' mke2fs, ethtool and a
#                                udhcpc script (+ virtio/ext4 modules, loaded with
#                                kvmini_modules=1 or a disk or net action)
#   OUTDIR/testhost.cpio.gz      busybox, kvm/net/9p modules, the kvmini binary with every
#                                library ldd lists (same paths), the guest kernel, the guest
#                                initramfs, an uncompressed vmlinux (PVH boot), e2fsck,
#                                ethtool, testhost-init; for the qcow2-nfs cases the NFS modules and,
#                                where installed, the NFS userland, iproute2's ip, qemu-img
#                                and qemu-io
#   OUTDIR/vmlinux               the ELF vmlinux taken out of KERNEL (cached)
#   OUTDIR/kernel                the path of KERNEL (the test host boots the same kernel)
#
# usage: build-images.sh OUTDIR KVMINI_BINARY [KERNEL]
# KERNEL defaults to the newest /boot/vmlinuz-* that has /lib/modules/VERSION.
# Extra binaries to put into the test host (with their libraries): KVMINI_E2E_EXTRA_BINS,
# a space-separated list of paths; each lands in /usr/local/bin. Extra data files at
# their own paths: KVMINI_E2E_EXTRA_FILES, space-separated.
# No network; needs busybox (static), cpio, gzip, xz, modinfo (kmod), ldd, od.
# Exit status: 0 built, 1 error, 77 something needed is missing (message on stderr).
set -euo pipefail

die() { echo "build-images: $*" >&2; exit 1; }
missing() { echo "build-images: $*" >&2; exit 77; }
log() { [ -n "${KVMINI_E2E_QUIET:-}" ] || echo "build-images: $*" >&2; }

[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 OUTDIR KVMINI_BINARY [KERNEL]" >&2; exit 2; }
OUT=$1
KVMINI=$2
KERNEL=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)

[ -x "$KVMINI" ] || die "kvmini binary '$KVMINI' is missing or not executable"
for t in cpio gzip xz modinfo ldd od; do
	command -v "$t" >/dev/null || missing "'$t' not found (Debian: cpio gzip xz-utils kmod libc-bin coreutils)"
done

# --- which kernel -----------------------------------------------------------------------
if [ -z "$KERNEL" ]; then
	for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
		if [ -d "/lib/modules/${k#/boot/vmlinuz-}/kernel" ]; then KERNEL=$k; break; fi
	done
	[ -n "$KERNEL" ] || missing "no /boot/vmlinuz-* with matching /lib/modules (Debian: linux-image-amd64)"
fi
[ -r "$KERNEL" ] || missing "kernel '$KERNEL' is not readable"
# The kernel's version: from the file name, else from the bzImage header (kernel_version).
KVER=
case "$(basename "$KERNEL")" in vmlinuz-*) KVER=${KERNEL##*/vmlinuz-} ;; esac
if [ -z "$KVER" ] || [ ! -d "/lib/modules/$KVER" ]; then
	vo=$(od -An -tu2 -j$((0x20e)) -N2 "$KERNEL" | tr -d ' ')
	KVER=$(dd if="$KERNEL" bs=1 skip=$((vo + 0x200)) count=128 2>/dev/null | tr '\0' ' ' | cut -d' ' -f1)
fi
MODDIR=/lib/modules/$KVER
[ -d "$MODDIR" ] || missing "no modules for kernel $KVER in $MODDIR"

# --- busybox ----------------------------------------------------------------------------
BUSYBOX=
for b in /bin/busybox /usr/bin/busybox /usr/lib/initramfs-tools/bin/busybox; do
	[ -x "$b" ] && { BUSYBOX=$b; break; }
done
[ -n "$BUSYBOX" ] || missing "busybox not found (Debian: busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	missing "$BUSYBOX is dynamically linked; install busybox-static"
fi
BB_APPLETS=" $("$BUSYBOX" --list | tr '\n' ' ') "
for applet in timeout insmod poweroff reboot setsid cttyhack sed grep dmesg; do
	case "$BB_APPLETS" in *" $applet "*) ;; *) missing "busybox lacks the '$applet' applet" ;; esac
done

# e2fsprogs: mke2fs for the guest, e2fsck for the test host (the disk cases).
MKE2FS=$(command -v mke2fs || echo /sbin/mke2fs)
E2FSCK=$(command -v e2fsck || echo /sbin/e2fsck)
[ -x "$MKE2FS" ] && [ -x "$E2FSCK" ] || missing "mke2fs/e2fsck not found (Debian: e2fsprogs)"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# --- helpers ----------------------------------------------------------------------------
# install_busybox ROOT: busybox at /bin/busybox and /bin/sh; each /init first runs
# "busybox --install -s" to create the other applet links (thousands of ln forks here
# would cost seconds).
install_busybox() {
	local root=$1
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
	cp "$BUSYBOX" "$root/bin/busybox"
	ln -sf busybox "$root/bin/sh"
}

# Module resolution: prints the module names in load order (dependencies first),
# each once, skipping built-in ones.
declare -A MOD_SEEN
mod_order() {
	local m d deps
	for m in "$@"; do
		m=${m//-/_}
		[ -n "${MOD_SEEN[$m]:-}" ] && continue
		MOD_SEEN[$m]=1
		local f
		f=$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null | head -1) || true
		if [ -z "$f" ]; then
			echo "build-images: warning: module $m not found for $KVER" >&2
			continue
		fi
		case "$f" in "(builtin)") continue ;; esac
		deps=$(modinfo -k "$KVER" -F depends "$m" 2>/dev/null | head -1 | tr ',' ' ')
		for d in $deps; do mod_order "$d"; done
		echo "$m"
	done
}

# install_modules ROOT ORDERFILE NAME...: copies the modules (decompressed: busybox insmod
# takes plain .ko files only) to ROOT/lib/modules/NAME.ko and writes their load order.
install_modules() {
	local root=$1 order=$2 m f
	shift 2
	MOD_SEEN=()
	mkdir -p "$root/lib/modules"
	: >"$root/$order"
	for m in $(mod_order "$@"); do
		f=$(modinfo -k "$KVER" -F filename "$m" | head -1)
		case "$f" in
		*.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
		*.ko.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
		*.ko.zst) command -v zstd >/dev/null || missing "zstd needed to unpack $f"
			zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
		*) die "unknown module file $f" ;;
		esac
		echo "$m" >>"$root/$order"
	done
}

# copy_with_libs ROOT BINARY DEST: the binary at DEST, its libraries at their own paths.
copy_with_libs() {
	local root=$1 bin=$2 dest=$3 lib
	mkdir -p "$root/$(dirname "$dest")"
	cp -L "$bin" "$root/$dest"
	# ldd prints "name => /path (addr)", "/path (addr)" or "name (addr)" (vdso).
	for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[ -e "$lib" ] || continue
		mkdir -p "$root/$(dirname "$lib")"
		cp -L "$lib" "$root/$lib"
	done
}

# newc cpio entry (header + name); used for the device node a non-root user cannot create.
cpio_entry() { # NAME MODE(octal) RDEVMAJOR RDEVMINOR
	local name=$1 mode=$2 maj=$3 min=$4 namesize hdr pad
	namesize=$((${#name} + 1))
	hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		0 $((8#$mode)) 0 0 1 0 0 0 0 "$maj" "$min" "$namesize" 0)
	printf '%s%s\0' "$hdr" "$name"
	pad=$(( (4 - (110 + namesize) % 4) % 4 ))
	[ $pad -eq 0 ] || head -c $pad /dev/zero
}
# A tiny uncompressed archive with /dev and /dev/console; the kernel accepts archives
# concatenated in front of the compressed one (as with early microcode).
dev_console_cpio() {
	{
		cpio_entry dev 040755 0 0
		cpio_entry dev/console 020600 5 1
		cpio_entry TRAILER!!! 0 0 0
	} >"$1"
}

# cpio_gz ROOT LEVEL: a gzipped newc archive of ROOT on stdout, all files owned by root.
cpio_gz() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -n -"$2"
}

# pack ROOT OUT.cpio.gz [gzip level] [more archives to append...]
pack() {
	local root=$1 out=$2 level=${3:-6}
	shift 3 || shift $#
	dev_console_cpio "$out.tmp"
	cpio_gz "$root" "$level" >>"$out.tmp"
	[ $# -eq 0 ] || cat "$@" >>"$out.tmp"
	mv "$out.tmp" "$out"
}

# --- vmlinux from the bzImage (cached) --------------------------------------------------
# The setup header gives setup_sects (0x1f1), payload_offset (0x248, relative to the
# protected-mode code at (setup_sects+1)*512) and payload_length (0x24c). Debian's
# payload is an XZ stream of the (stripped) ELF vmlinux, followed by 4 size bytes.
extract_vmlinux() {
	local k=$1 dst=$2 setup po pl off magic
	setup=$(od -An -tu1 -j$((0x1f1)) -N1 "$k" | tr -d ' ')
	[ "$setup" -eq 0 ] && setup=4
	po=$(od -An -tu4 -j$((0x248)) -N4 "$k" | tr -d ' ')
	pl=$(od -An -tu4 -j$((0x24c)) -N4 "$k" | tr -d ' ')
	off=$(( (setup + 1) * 512 + po ))
	magic=$(od -An -tx1 -j"$off" -N6 "$k" | tr -d ' ')
	case "$magic" in
	fd377a585a00) tail -c +$((off + 1)) "$k" | head -c "$pl" | xz -dc --single-stream >"$dst.tmp" ;;
	1f8b*) tail -c +$((off + 1)) "$k" | head -c "$pl" | gzip -dc >"$dst.tmp" 2>/dev/null || true ;;
	*) echo "build-images: warning: unknown payload compression ($magic); no vmlinux" >&2
		return 1 ;;
	esac
	[ "$(od -An -tx1 -N4 "$dst.tmp" | tr -d ' ')" = 7f454c46 ] ||
		{ echo "build-images: warning: payload of $k is not an ELF" >&2; rm -f "$dst.tmp"; return 1; }
	mv "$dst.tmp" "$dst"
}
# The guest kernels go into their own archive, appended to the test host's and rebuilt
# only when KERNEL changes (compressing 60 MiB costs seconds).
if [ ! -s "$OUT/guest-kernels.cpio.gz" ] || [ "$KERNEL" -nt "$OUT/guest-kernels.cpio.gz" ] ||
	[ "$(cat "$OUT/guest-kernels.src" 2>/dev/null)" != "$KERNEL" ]; then
	log "extracting vmlinux from $KERNEL"
	rm -f "$OUT/vmlinux" "$OUT/guest-kernels.src" "$OUT/guest-kernels.cpio.gz"
	K=$OUT/kernels-root
	rm -rf "$K"
	mkdir -p "$K/guest"
	cp "$KERNEL" "$K/guest/vmlinuz"
	if extract_vmlinux "$KERNEL" "$OUT/vmlinux"; then cp "$OUT/vmlinux" "$K/guest/vmlinux"; fi
	cpio_gz "$K" 1 >"$OUT/guest-kernels.cpio.gz.tmp"
	mv "$OUT/guest-kernels.cpio.gz.tmp" "$OUT/guest-kernels.cpio.gz"
	rm -rf "$K"
	echo "$KERNEL" >"$OUT/guest-kernels.src"
fi

GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	virtio_blk failover net_failover virtio_net crc16 mbcache jbd2 crc32c_generic ext4
	button evdev isofs"
HOST_MODULES="irqbypass ccp kvm kvm_amd tun llc stp bridge veth
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	netfs fscache 9pnet 9pnet_virtio 9p"
# NFSv4.2 server (nfsd) and client (nfsv4); v4 locks travel in the NFS protocol itself,
# so no lockd/statd userland is needed (lockd.ko is a dependency of both modules).
NFS_MODULES="sunrpc grace lockd nfs_acl auth_rpcgss nfsd nfs nfsv4"

# --- guest initramfs --------------------------------------------------------------------
log "guest initramfs (kernel $KVER)"
G=$OUT/guest-root
rm -rf "$G"
mkdir -p "$G"/{proc,sys,dev,tmp,run,mnt,root,etc}
install_busybox "$G"
install_modules "$G" lib/modules/kvmini.order $GUEST_MODULES
# e2fsprogs' mke2fs (busybox's makes ext2 only), called by its full path: busybox's
# applet is /sbin/mke2fs.
copy_with_libs "$G" "$MKE2FS" /usr/sbin/mke2fs
[ ! -e /etc/mke2fs.conf ] || cp /etc/mke2fs.conf "$G/etc/"
# ethtool for the net cases (offloads on and off); they report a skip without it.
ETHTOOL=$(command -v ethtool || echo /usr/sbin/ethtool)
if [ -x "$ETHTOOL" ]; then
	copy_with_libs "$G" "$ETHTOOL" /usr/sbin/ethtool
else
	log "no ethtool: the net offload cases will skip (Debian: ethtool)"
fi
# udhcpc only talks DHCP; a script applies the lease. This one also leaves the lease in
# /tmp/lease.IFACE for guest-init to print.
mkdir -p "$G/usr/share/udhcpc" "$G/etc/udhcpc"
cat >"$G/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/sh
# udhcpc's hook: $1 is the event, the lease is in the environment.
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	# $subnet is dotted; ip wants a prefix length
	bits=0
	for o in $(echo "$subnet" | tr . ' '); do
		while [ "$o" -gt 0 ]; do bits=$((bits + (o & 1))); o=$((o >> 1)); done
	done
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/$bits" ${broadcast:+broadcast $broadcast} dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	echo "ip=$ip mask=$subnet router=$router dns=$(echo $dns | tr ' ' ',') server=$serverid lease=$lease" \
		>"/tmp/lease.$interface"
	;;
esac
exit 0
SCRIPT
chmod 755 "$G/usr/share/udhcpc/default.script"
ln -sf /usr/share/udhcpc/default.script "$G/etc/udhcpc/default.script"
cp "$HERE/guest-init" "$G/init"
chmod 755 "$G/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$G/etc/passwd"
echo "root:x:0:" >"$G/etc/group"
echo "$KVER" >"$G/etc/kvmini-kernel"
pack "$G" "$OUT/guest-initrd.cpio.gz" 6

# --- test host initramfs ----------------------------------------------------------------
log "test host initramfs"
H=$OUT/testhost-root
rm -rf "$H"
mkdir -p "$H"/{proc,sys,dev,tmp,run,mnt,root,etc,share,guest,e2e}
install_busybox "$H"
install_modules "$H" lib/modules/testhost.order $HOST_MODULES
copy_with_libs "$H" "$KVMINI" /usr/local/bin/kvmini
# kvmini-img beside it (BUILDDIR/img/kvmini-img): the demo makes its disk with it.
KVMINI_IMG=$(dirname "$KVMINI")/img/kvmini-img
[ -x "$KVMINI_IMG" ] && copy_with_libs "$H" "$KVMINI_IMG" /usr/local/bin/kvmini-img
copy_with_libs "$H" "$E2FSCK" /usr/local/bin/e2fsck
# ethtool for the outside machine's end of the net cases' LAN (offloads off there too)
[ ! -x "$ETHTOOL" ] || copy_with_libs "$H" "$ETHTOOL" /usr/local/sbin/ethtool
# The qcow2-nfs-* cases: a kernel NFS server and two clients in network namespaces of
# the test host. Their modules are loaded by the cases (lib/modules/nfs.order), not at
# boot; the userland comes from Debian's nfs-kernel-server (rpc.nfsd, rpc.mountd,
# exportfs), nfs-common (mount.nfs) and iproute2 (ip netns: busybox's ip has none), and
# qemu-utils' qemu-img and qemu-io check that QEMU and kvmini refuse each other. Each is
# optional here: without them the cases skip and say what is missing.
install_modules "$H" lib/modules/nfs.order $NFS_MODULES
for b in /usr/sbin/rpc.nfsd /usr/sbin/rpc.mountd /usr/sbin/exportfs /sbin/mount.nfs; do
	if [ -x "$b" ]; then copy_with_libs "$H" "$b" "$b"; else log "no $b: the qcow2-nfs cases will skip"; fi
done
[ ! -e "$H/sbin/mount.nfs" ] || ln -sf mount.nfs "$H/sbin/mount.nfs4"
IPROUTE=$(command -v ip || echo /sbin/ip)
[ ! -x "$IPROUTE" ] || ! "$IPROUTE" -V >/dev/null 2>&1 || copy_with_libs "$H" "$IPROUTE" /usr/local/sbin/ip
for b in qemu-img qemu-io; do
	p=$(command -v $b) && copy_with_libs "$H" "$p" "/usr/local/bin/$b"
done
# libtirpc reads its transports from /etc/netconfig; rpc.mountd and rpc.nfsd look up
# services and protocols.
for f in /etc/netconfig /etc/services /etc/protocols; do
	[ ! -e "$f" ] || cp -L "$f" "$H/$f"
done
for b in ${KVMINI_E2E_EXTRA_BINS:-}; do
	copy_with_libs "$H" "$b" "/usr/local/bin/$(basename "$b")"
done
for f in ${KVMINI_E2E_EXTRA_FILES:-}; do
	mkdir -p "$H/$(dirname "$f")"
	cp -L "$f" "$H/$f"
done
cp "$OUT/guest-initrd.cpio.gz" "$H/guest/initrd.cpio.gz"
printf 'this is not a kernel\n' >"$H/guest/not-a-kernel"
cp "$HERE/testhost-init" "$H/init"
chmod 755 "$H/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$H/etc/passwd"
echo "root:x:0:" >"$H/etc/group"
pack "$H" "$OUT/testhost.cpio.gz" 1 "$OUT/guest-kernels.cpio.gz"
rm -rf "$G" "$H"
echo "$KERNEL" >"$OUT/kernel"
log "done: $OUT/guest-initrd.cpio.gz $OUT/testhost.cpio.gz (kernel $KERNEL)"
