# Sourced by run-blk.sh and run-blkbench.sh (POSIX sh): the disk image layouts
# the virtio-blk tests run on, and the host-side checks of a qcow2 image after
# the run. Needs $dir (the test's scratch folder), $here (tests/guest) and a
# die() function.
#
#   layout_prepare LAYOUT SIZE_MIB HOSTSEED [CLUSTER_BYTES]
#     LAYOUT is one of
#       raw                   raw image, every sector the host pattern HOSTSEED
#       raw-zero              sparse all-zero raw image
#       qcow2                 fresh qcow2 (qemu-img create -f qcow2): all zeros
#       qcow2-backed-raw      qcow2 overlay (qemu-img create -b base.raw -F raw)
#                             on a raw base holding the host pattern
#       qcow2-backed-qcow2    the same on a qcow2 base (qemu-img convert -O qcow2)
#       qcow2-compressed-base the same on a compressed qcow2 base
#                             (qemu-img convert -c -O qcow2; checked to have
#                             compressed clusters); the host pattern is the
#                             compressible one (blk_pattern=repeat)
#     CLUSTER_BYTES sets the cluster size of the image the guest writes (qcow2
#     layouts only). Sets: disk (the file to attach), format (raw|qcow2),
#     content (what the guest should find before it writes: HOSTSEED or
#     "zero"), base (the backing file or ""), base_sha (its sha256),
#     pattern ("repeat" for the compressible pattern, else "").
#     Exits 77 (skipped) for a qcow2 layout without qemu-img.
#
#   layout_check
#     For qcow2 layouts: qemu-img check of the image (and of a qcow2 base) must
#     be clean (status 0, no errors, no leaks); the overlay must still name its
#     base; the base must be byte-identical to before. Then
#     qemu-img convert -O raw flattens the image (base included) into
#     $dir/flat.raw. Sets: flat (the raw file the content check reads: the
#     image itself for raw layouts). Returns 1 on a failure (message printed).

layout_prepare() {
	layout=$1 l_mib=$2 l_seed=$3 l_cluster=${4:-}
	base='' base_sha='' content=$l_seed format=qcow2 disk=$dir/disk.qcow2 pattern=''
	[ "$layout" != qcow2-compressed-base ] || pattern=repeat
	l_copt=
	[ -z "$l_cluster" ] || l_copt="-o cluster_size=$l_cluster"
	case $layout in
	raw | raw-zero) ;;
	qcow2 | qcow2-backed-raw | qcow2-backed-qcow2 | qcow2-compressed-base)
		command -v qemu-img >/dev/null 2>&1 ||
			{ echo "blk-layout: SKIP: qemu-img is not installed (Debian: qemu-utils)"; exit 77; }
		;;
	*) die "unknown layout $layout" ;;
	esac
	case $layout in
	raw)
		format=raw disk=$dir/disk.img
		python3 "$here/blk_image.py" create "$disk" "$l_mib" "$l_seed" || die "cannot create $disk"
		;;
	raw-zero)
		format=raw disk=$dir/disk.img content=zero
		truncate -s "${l_mib}M" "$disk" || die "cannot create $disk"
		;;
	qcow2)
		content=zero
		# shellcheck disable=SC2086 # $l_copt is empty or two words
		qemu-img create -q -f qcow2 $l_copt "$disk" "${l_mib}M" || die "qemu-img create failed"
		;;
	*)
		python3 "$here/blk_image.py" create "$dir/base.raw" "$l_mib" "$l_seed" $pattern ||
			die "cannot create $dir/base.raw"
		l_bfmt=raw base=$dir/base.raw
		case $layout in
		qcow2-backed-qcow2)
			qemu-img convert -q -f raw -O qcow2 "$dir/base.raw" "$dir/base.qcow2" || die "qemu-img convert failed"
			l_bfmt=qcow2 base=$dir/base.qcow2 ;;
		qcow2-compressed-base)
			qemu-img convert -q -c -f raw -O qcow2 "$dir/base.raw" "$dir/base.qcow2" ||
				die "qemu-img convert -c failed"
			l_bfmt=qcow2 base=$dir/base.qcow2
			# The pattern is incompressible, so most clusters would be stored
			# uncompressed: make sure the base really has compressed ones.
			l_pct=$(qemu-img check "$base" | sed -n 's/.* \([0-9.]*\)% compressed clusters.*/\1/p')
			echo "blk-layout: base $base: ${l_pct:-?}% compressed clusters"
			case ${l_pct:-0} in 0 | 0.0 | 0.00) die "qemu-img convert -c made no compressed cluster" ;; esac
			;;
		esac
		[ "$base" = "$dir/base.raw" ] || rm -f "$dir/base.raw"
		# shellcheck disable=SC2086
		qemu-img create -q -f qcow2 $l_copt -b "$base" -F "$l_bfmt" "$disk" ||
			die "qemu-img create of the overlay failed"
		base_sha=$(sha256sum "$base" | cut -d' ' -f1)
		;;
	esac
	echo "blk-layout: $layout: disk $disk format=$format${base:+ base $base}${l_cluster:+ cluster_size=$l_cluster}"
}

layout_check() {
	flat=$disk
	[ "$format" = qcow2 ] || return 0
	l_ok=0
	qemu-img check -f qcow2 "$disk" >"$dir/check.txt" 2>&1
	l_rc=$?
	sed 's/^/blk-layout: qemu-img check: /' "$dir/check.txt"
	if [ $l_rc -ne 0 ] || ! grep -q '^No errors were found on the image' "$dir/check.txt"; then
		echo "blk-layout: FAIL: qemu-img check $disk: status $l_rc, not clean"
		l_ok=1
	fi
	if [ -n "$base" ]; then
		case $base in *.qcow2)
			qemu-img check -q -f qcow2 "$base" ||
				{ echo "blk-layout: FAIL: qemu-img check of the base $base"; l_ok=1; } ;;
		esac
		l_b=$(qemu-img info -U --output=json "$disk" | sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p' | head -1)
		[ "$l_b" = "$base" ] ||
			{ echo "blk-layout: FAIL: overlay's backing file is now '$l_b', want '$base'"; l_ok=1; }
		[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sha" ] ||
			{ echo "blk-layout: FAIL: the base image $base changed"; l_ok=1; }
	fi
	flat=$dir/flat.raw
	qemu-img convert -q -O raw "$disk" "$flat" ||
		{ echo "blk-layout: FAIL: qemu-img convert -O raw $disk"; return 1; }
	return $l_ok
}
