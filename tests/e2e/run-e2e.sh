#!/bin/bash
# End-to-end test: kvmini boots Debian's stock kernel on real (nested) KVM.
# See docs/testing-e2e.md for how it works.
#
# usage: run-e2e.sh [--cases a,b,c] [--keep] [--timeout SECS] [--verbose-guest] BUILDDIR
#        run-e2e.sh --shell host|guest BUILDDIR      (interactive, no assertions)
#        run-e2e.sh --demo shell|script BUILDDIR     (scripts/demo.sh: the demo guest on
#            the console; exit 0 when kvmini exited 0)
#        run-e2e.sh --reparse [--cases a,b,c] BUILDDIR
#            checks the console logs of the last run again, without booting anything
#            (for working on the assertions)
#
# BUILDDIR holds the kvmini binary (override: KVMINI_E2E_BINARY). Writes
# BUILDDIR/e2e/logs/ (console logs, per-case output) and BUILDDIR/e2e/images/ (removed
# after the run unless --keep). Prints one line per case, PASS name / FAIL name: why /
# SKIP name: why, and last "N passed, N failed, N skipped".
# Exit: 0 no failure, 1 a failure, 2 usage, 77 cannot run here (all skipped).
# Environment: KVMINI_E2E_BUDGET (seconds for all test host runs, default 1700),
# KVMINI_E2E_KERNEL (test host and guest kernel, default newest /boot/vmlinuz-*),
# QEMU (default qemu-system-x86_64), KVMINI_E2E_QEMU_ARGS (extra test host QEMU arguments).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ALL_CASES=$(sed -n 's/^ALL_CASES="\(.*\)"$/\1/p' "$HERE/testhost-init")

usage() {
	echo "usage: $0 [--cases a,b,c] [--keep] [--timeout SECS] [--verbose-guest] BUILDDIR" >&2
	echo "       $0 --shell host|guest BUILDDIR" >&2
	echo "       $0 --demo shell|script BUILDDIR" >&2
	echo "cases: $ALL_CASES" >&2
	exit 2
}

CASES=$ALL_CASES
KEEP=0
REPARSE=0
VERBOSE_GUEST=0
SHELL_MODE=
DEMO_MODE=
CASE_TIMEOUT=180
# All test host runs together stay below meson's 1800 s (tests/e2e/meson.build).
BUDGET=${KVMINI_E2E_BUDGET:-1700}
BUILDDIR=
while [ $# -gt 0 ]; do
	case "$1" in
	--cases) [ $# -ge 2 ] || usage; CASES=$(echo "$2" | tr ',' ' '); shift 2 ;;
	--cases=*) CASES=$(echo "${1#--cases=}" | tr ',' ' '); shift ;;
	--keep) KEEP=1; shift ;;
	--reparse) REPARSE=1; shift ;;
	--verbose-guest) VERBOSE_GUEST=1; shift ;;
	--timeout) [ $# -ge 2 ] || usage; CASE_TIMEOUT=$2; shift 2 ;;
	--shell) [ $# -ge 2 ] || usage; SHELL_MODE=$2; shift 2 ;;
	--demo) [ $# -ge 2 ] || usage; DEMO_MODE=$2; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "run-e2e: unknown option $1" >&2; usage ;;
	*) [ -z "$BUILDDIR" ] || usage; BUILDDIR=$1; shift ;;
	esac
done
[ -n "$BUILDDIR" ] || usage
case "$SHELL_MODE" in "" | host | guest) ;; *) usage ;; esac
[ -z "$SHELL_MODE" ] || [ $REPARSE = 0 ] || usage
case "$DEMO_MODE" in "" | shell | script) ;; *) usage ;; esac
[ -z "$DEMO_MODE" ] || { [ -z "$SHELL_MODE" ] && [ $REPARSE = 0 ]; } || usage
case "$CASE_TIMEOUT" in '' | *[!0-9]*) usage ;; esac
for c in $CASES; do
	case " $ALL_CASES " in *" $c "*) ;; *) echo "run-e2e: unknown case '$c'" >&2; usage ;; esac
done
[ -n "$CASES" ] || usage
# disk-verify and disk-intx boot the images that disk-write filled in the same test host.
case " $CASES " in *" disk-verify "* | *" disk-intx "*) CASES="$CASES disk-write" ;; esac
# qcow2-nfs-qemu reports what qcow2-nfs-lock measured while its guest wrote on NFS.
case " $CASES " in *" qcow2-nfs-qemu "*) CASES="$CASES qcow2-nfs-lock" ;; esac
# Cases run in ALL_CASES order, each once.
CASES=$(for c in $ALL_CASES; do case " $CASES " in *" $c "*) echo "$c" ;; esac; done | tr '\n' ' ')

# Results go out twice: as TAP ("1..N", "ok N - name", for scripts/test-summary.py) and
# as the PASS/FAIL/SKIP lines people read.
skip_all() {
	local c n=0
	echo "1..$(echo $CASES | wc -w)"
	for c in $CASES; do
		n=$((n + 1))
		echo "ok $n - $c # SKIP $1"
		echo "SKIP $c: $1"
	done
	echo "0 passed, 0 failed, $n skipped"
	exit 77
}

BUILDDIR=$(cd "$BUILDDIR" 2>/dev/null && pwd) || { echo "run-e2e: no directory $BUILDDIR" >&2; exit 2; }
KVMINI=${KVMINI_E2E_BINARY:-$BUILDDIR/kvmini}
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || skip_all "$QEMU not found (Debian: qemu-system-x86)"
[ -x "$KVMINI" ] || { echo "run-e2e: no kvmini binary at $KVMINI" >&2; exit 1; }

WORK=$BUILDDIR/e2e
IMAGES=$WORK/images
LOGS=$WORK/logs
mkdir -p "$IMAGES" "$LOGS"

# One nested QEMU at a time on this machine: it needs both cores to itself.
if command -v flock >/dev/null; then
	exec 9>"${TMPDIR:-/tmp}/kvmini-e2e.lock"
	flock 9
fi

t0=$(date +%s)
build_images() {
	local msg st
	msg=$("$HERE/build-images.sh" "$IMAGES" "$KVMINI" ${KVMINI_E2E_KERNEL:-} 2>&1)
	st=$?
	if [ $st -eq 77 ]; then
		skip_all "$(echo "$msg" | tail -1 | sed 's/^build-images: //')"
	elif [ $st -ne 0 ]; then
		echo "$msg" >&2
		echo "run-e2e: building the images failed" >&2
		exit 1
	fi
	KERNEL=$(cat "$IMAGES/kernel")
	echo "run-e2e: images built in $(($(date +%s) - t0)) s; kernel $KERNEL" >&2
}
KERNEL=
[ $REPARSE = 1 ] || build_images

qemu_cmd=("$QEMU" -accel tcg -cpu max -smp 2 -m 3G -no-reboot -nic none
	-kernel "$KERNEL" -initrd "$IMAGES/testhost.cpio.gz")

# The qcow2 cases: images made here, shared with the test host over 9p
# (SHARE), checked here afterwards with qemu-img, e2fsck and debugfs.
SHARE=$WORK/share
qcow2_prepare() {
	local t
	rm -rf "$SHARE"
	mkdir -p "$SHARE/tree/base"
	for t in qemu-img mke2fs e2fsck debugfs; do command -v $t >/dev/null || return 0; done
	head -c $((3 * 1048576)) /dev/urandom >"$SHARE/tree/base/keep.bin"
	echo "base file, to be changed" >"$SHARE/tree/base/change.txt"
	echo "base file, to be removed" >"$SHARE/tree/base/remove.txt"
	sha256sum "$SHARE/tree/base/keep.bin" | cut -d' ' -f1 >"$SHARE/keep.sha256"
	mke2fs -q -t ext4 -F -d "$SHARE/tree" "$SHARE/base.raw" 64M || return 0
	rm -rf "$SHARE/tree"
	sha256sum "$SHARE/base.raw" | cut -d' ' -f1 >"$SHARE/base.sha256"
	# -b base.raw: relative to the overlay's folder, so it resolves in the test host too.
	for t in overlay lock1 lock2; do
		(cd "$SHARE" && qemu-img create -q -f qcow2 -b base.raw -F raw $t.qcow2) || return 0
	done
}
case " $CASES " in *" qcow2-"*)
	if [ $REPARSE = 0 ]; then qcow2_prepare; fi
	qemu_cmd+=(-virtfs "local,path=$SHARE,mount_tag=share,security_model=none") ;;
esac
# shellcheck disable=SC2206
extra=(${KVMINI_E2E_QEMU_ARGS:-})

if [ -n "$DEMO_MODE" ]; then
	demolog=$LOGS/demo-console.log
	if [ "$DEMO_MODE" = shell ]; then
		# A terminal: QEMU's stdio must stay the terminal itself (raw mode).
		"${qemu_cmd[@]}" "${extra[@]}" -display none -monitor none \
			-chardev stdio,id=con,signal=off,logfile="$demolog" -serial chardev:con \
			-append "console=ttyS0 quiet panic=-1 e2e_demo=shell"
	else
		timeout -k 10 600 "${qemu_cmd[@]}" "${extra[@]}" -display none -monitor none \
			-chardev stdio,id=con,signal=off,logfile="$demolog" -serial chardev:con \
			-append "console=ttyS0 quiet panic=-1 e2e_demo=script" </dev/null
	fi
	[ $KEEP = 1 ] || rm -rf "$IMAGES"
	st=$(tr -d '\r' <"$demolog" | sed -n 's/.*TESTHOST: kvmini exited with status \([0-9]*\).*/\1/p' | tail -n 1)
	[ "$st" = 0 ] && exit 0
	echo "run-e2e: demo failed (kvmini status: ${st:-none}); console log $demolog" >&2
	exit 1
fi

if [ -n "$SHELL_MODE" ]; then
	echo "run-e2e: booting the test host with a shell ($SHELL_MODE); 'poweroff -f' leaves" >&2
	"${qemu_cmd[@]}" "${extra[@]}" -display none -monitor none \
		-chardev stdio,id=con,signal=off -serial chardev:con \
		-append "console=ttyS0 quiet panic=-1 e2e_shell=$SHELL_MODE"
	st=$?
	[ $KEEP = 1 ] || rm -rf "$IMAGES"
	exit $st
fi

# case_limit NAME: the test host's own time limit for one case, plus its SIGTERM grace.
case_limit() {
	case "$1" in
	reboot-restart) echo $((CASE_TIMEOUT * 2 + 25)) ;;
	bad-kernel | cpus0 | disk-missing | disk-dir | disk-badkey | disk-badvalue) echo 55 ;;
	disk-write) echo $((CASE_TIMEOUT + 145)) ;;
	# the first NFS case sets up the server and the mounts (grace period included)
	qcow2-nfs-lock) echo $((CASE_TIMEOUT + 205)) ;;
	qcow2-nfs-qemu) echo 30 ;;
	qcow2-nfs-share) echo $((CASE_TIMEOUT + 145)) ;;
	qcow2-lock) echo $((CASE_TIMEOUT * 2 + 25)) ;;
	*) echo $((CASE_TIMEOUT + 25)) ;;
	esac
}

# boot_testhost LOG CASES...: one test host run, limited by the cases' own limits and by
# what is left of BUDGET; returns QEMU's status.
boot_testhost() {
	local log=$1 c limit=90 left list
	shift
	for c in "$@"; do limit=$((limit + $(case_limit "$c"))); done
	left=$((BUDGET - ($(date +%s) - t0)))
	[ $limit -le $left ] || limit=$left
	[ $limit -ge 60 ] || limit=60
	list=$(echo "$@" | tr ' ' ',')
	echo "run-e2e: test host running cases $list (limit $limit s), console log $log" >&2
	timeout -k 10 "$limit" "${qemu_cmd[@]}" "${extra[@]}" -nographic \
		-append "console=ttyS0 quiet panic=-1 e2e_cases=$list e2e_timeout=$CASE_TIMEOUT e2e_guest_verbose=$VERBOSE_GUEST" \
		</dev/null >"$log" 2>&1
}

# parse LOG DIR: splits the console protocol (see testhost-init) into DIR/NAME.case,
# DIR/NAME.out, DIR/NAME.err, DIR/NAME.dmesg; DIR/NAME.end marks a complete report.
parse() {
	tr -d '\r' <"$1" | awk -v dir="$2" '
	/^CASE [^ ]+ rc=/ { f = dir "/" $2 ".case"; print > f; close(f); next }
	/^CASE-END / { f = dir "/" $2 ".end"; print "" > f; close(f); next }
	substr($0, 1, 1) == " " {
		s = substr($0, 2); p = index(s, "|"); if (p < 2) next
		name = substr(s, 1, p - 1); rest = substr(s, p + 1); q = index(rest, "|")
		stream = substr(rest, 1, q - 1)
		if (stream !~ /^(out|err|dmesg|host|trace|first)$/ || substr(rest, q + 1, 1) != " ") next
		print substr(rest, q + 2) >> (dir "/" name "." stream)
	}'
}

CASEDIR=$LOGS/cases
rm -rf "$CASEDIR"
[ $REPARSE = 1 ] || rm -f "$LOGS"/console-*.log
mkdir -p "$CASEDIR"

pending=$CASES
host_died=0
for attempt in 1 2; do
	log=$LOGS/console-$attempt.log
	if [ $REPARSE = 1 ]; then
		[ -e "$log" ] || break
	else
		t1=$(date +%s)
		boot_testhost "$log" $pending
		qst=$?
		echo "run-e2e: test host run $attempt took $(($(date +%s) - t1)) s (qemu status $qst)" >&2
	fi
	tmp=$CASEDIR/run$attempt
	mkdir -p "$tmp"
	parse "$log" "$tmp"
	# Keep only complete reports; a case cut off by the test host's death runs again.
	left=
	for c in $pending; do
		if [ -e "$tmp/$c.end" ] && [ -e "$tmp/$c.case" ]; then
			for s in case out err dmesg host trace first; do
				[ -e "$tmp/$c.$s" ] && mv "$tmp/$c.$s" "$CASEDIR/$c.$s"
			done
		else
			left="$left $c"
		fi
	done
	rm -rf "$tmp"
	if tr -d '\r' <"$log" | grep -q '^TESTHOST: done'; then
		host_died=0
		break
	fi
	host_died=1
	echo "run-e2e: the test host died (no 'TESTHOST: done'); last console lines:" >&2
	tr -d '\r' <"$log" | tail -n 15 | sed 's/^/run-e2e:   /' >&2
	pending=$left
	# disk-verify and disk-intx need disk-write's images, which died with the test host.
	case " $pending " in *" disk-verify "* | *" disk-intx "*)
		case " $pending " in *" disk-write "*) ;; *) pending="disk-write $pending" ;; esac ;;
	esac
	case " $pending " in *" qcow2-nfs-qemu "*)
		case " $pending " in *" qcow2-nfs-lock "*) ;; *) pending="qcow2-nfs-lock $pending" ;; esac ;;
	esac
	[ -n "$pending" ] || break
	if [ $REPARSE = 0 ] && [ $((BUDGET - ($(date +%s) - t0))) -lt 200 ]; then
		echo "run-e2e: no time left to rerun" >&2
		break
	fi
	[ $attempt = 1 ] && [ $REPARSE = 0 ] && echo "run-e2e: rerunning once:$pending" >&2
done

firstlog=$LOGS/console-1.log
no_kvm=
if ! tr -d '\r' <"$firstlog" | grep -q '^TESTHOST: kvm ok' &&
	tr -d '\r' <"$firstlog" | grep -q '^TESTHOST: FAIL'; then
	no_kvm=$(tr -d '\r' <"$firstlog" | grep -m1 '^TESTHOST: FAIL' | sed 's/^TESTHOST: FAIL //')
fi

# --- assertions --------------------------------------------------------------------------
field() { # field NAME KEY: a key=value from the CASE line
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$CASEDIR/$1.case" | head -1
}
count() { # count NAME STREAM REGEX
	local n
	n=$(grep -c -E -- "$3" "$CASEDIR/$1.$2" 2>/dev/null) || true
	echo "${n:-0}"
}
stderr_hint() {
	local l
	l=$(grep -v '^[[:space:]]*$' "$CASEDIR/$1.err" 2>/dev/null | tail -n 1)
	[ -z "$l" ] || echo " (stderr: ${l:0:160})"
}
guest_hint() {
	local l
	l=$(grep -v '^[[:space:]]*$' "$CASEDIR/$1.out" 2>/dev/null | tail -n 1)
	[ -z "$l" ] && echo " (no guest output)" || echo " (last guest line: ${l:0:160})"
}

PASSED=0 FAILED=0 SKIPPED=0 NTAP=0
pass() { NTAP=$((NTAP + 1)); echo "ok $NTAP - $1"; echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { NTAP=$((NTAP + 1)); echo "not ok $NTAP - $1"; echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }
skip() { NTAP=$((NTAP + 1)); echo "ok $NTAP - $1 # SKIP $2"; echo "SKIP $1: $2"; SKIPPED=$((SKIPPED + 1)); }

# expect_boot NAME ACTION MIN_MARKERS MAX_MARKERS: a guest that booted and ended normally.
# Prints a reason and returns 1 on failure.
expect_boot() {
	local c=$1 action=$2 min=$3 max=$4 rc timedout markers
	rc=$(field "$c" rc) timedout=$(field "$c" timedout) markers=$(count "$c" out 'KVMINI-GUEST: init reached')
	if [ "$timedout" = 1 ]; then
		echo "timed out after $(field "$c" secs) s, guest reached init $markers time(s)$(guest_hint "$c")"
		return 1
	fi
	if [ "$markers" -lt "$min" ]; then
		echo "guest never reached init (exit status $rc)$(stderr_hint "$c")$(guest_hint "$c")"
		return 1
	fi
	if [ "$markers" -gt "$max" ]; then
		echo "guest booted $markers times, expected $max (exit status $rc)"
		return 1
	fi
	if [ "$(count "$c" out "KVMINI-GUEST: action=$action")" -lt 1 ]; then
		echo "guest did not reach its $action step$(guest_hint "$c")"
		return 1
	fi
	if [ "$rc" != 0 ]; then
		echo "exit status $rc, expected 0$(stderr_hint "$c")$(guest_hint "$c")"
		return 1
	fi
	return 0
}

# expect_usage NAME: exit status 2 with exactly one line on stderr.
expect_usage() {
	local c=$1 rc lines
	rc=$(field "$c" rc)
	lines=$(grep -c -v '^[[:space:]]*$' "$CASEDIR/$c.err" 2>/dev/null) || true
	if [ "$rc" != 2 ]; then
		echo "exit status $rc, expected 2$(stderr_hint "$c")"
		return 1
	fi
	if [ "${lines:-0}" != 1 ]; then
		echo "expected one line on stderr, got ${lines:-0}$(stderr_hint "$c")"
		return 1
	fi
	return 0
}

# kv NAME STREAM KEY: the value of the first "KEY=value" word in a stream of the case
# (the guest's lines start with "KVMINI-GUEST: ").
kv() {
	sed -n "s/^\(KVMINI-GUEST: \)\{0,1\}$3=\([^ ]*\).*/\2/p" "$CASEDIR/$1.$2" 2>/dev/null | head -1
}
# guest_disk NAME DEV: the guest's "disk DEV bytes=... ro=... queues=... serial=..." line.
guest_disk() {
	sed -n "s/^KVMINI-GUEST: disk $2 //p" "$CASEDIR/$1.out" 2>/dev/null | head -1
}

# check_disk_write: prints what is wrong, nothing when all is right.
check_disk_write() {
	local c=disk-write want v ndisks
	want="bytes=$((100 * 1048576 + 7 * 512)) ro=0 queues=2 serial=kvmini-vda"
	v=$(guest_disk $c vda)
	[ "$v" = "$want" ] || { echo "guest sees vda as '$v', expected '$want'"; return; }
	v=$(guest_disk $c vdb)
	[ "$v" = "bytes=67108864 ro=1 queues=2 serial=kvmini-src" ] ||
		{ echo "guest sees the readonly=on disk vdb as '$v', expected ro=1 and 64 MiB"; return; }
	[ -n "$(guest_disk $c vdc)" ] || { echo "guest has no vdc (third disk)"; return; }
	ndisks=$(count $c out '^KVMINI-GUEST: disk vd')
	[ "$ndisks" = 3 ] || { echo "guest sees $ndisks virtio disks, expected 3"; return; }
	for step in copy discard mkfs umount; do
		v=$(kv $c out "$step rc")
		[ "$v" = 0 ] || { echo "guest step '$step' failed (rc=${v:-none})$(guest_hint $c)"; return; }
	done
	v=$(kv $c out "ro-write rc")
	case "$v" in '' | 0) echo "a guest write to the readonly=on disk did not fail (rc=${v:-none})"; return ;; esac
	v=$(kv $c out src-sha256)
	[ -n "$v" ] && [ "$v" = "$(kv $c host src-sha256-before)" ] ||
		{ echo "guest read the source disk as sha256 $v, the host file is $(kv $c host src-sha256-before)"; return; }
	[ "$(kv $c host src-sha256-after)" = "$v" ] ||
		{ echo "the readonly=on image changed on the host"; return; }
	[ "$(kv $c host vda-sha256)" = "$v" ] ||
		{ echo "host file vda.img holds sha256 $(kv $c host vda-sha256) in its first 64 MiB, the guest wrote $v"; return; }
	[ "$(kv $c host vda-discarded-sha256)" = "$(kv $c host zero-16m-sha256)" ] ||
		{ echo "the 16 MiB the guest discarded do not read as zeros on the host"; return; }
	v=$(kv $c host vda-alloc-kib)
	[ -n "$v" ] && [ "$v" -ge 65536 ] && [ "$v" -le 69632 ] ||
		{ echo "vda.img has ${v:-?} KiB allocated, expected 64 MiB (+ at most 4 MiB): the discard did not punch a hole"; return; }
	[ "$(kv $c host vda-bytes)" = $((100 * 1048576 + 7 * 512)) ] ||
		{ echo "vda.img changed size: $(kv $c host vda-bytes)"; return; }
	[ -n "$(kv $c out ext4-sum)" ] || echo "guest printed no ext4 checksum$(guest_hint $c)"
}

# check_disk_verify NAME: disk-verify, or disk-intx (the same with pci=nomsi)
check_disk_verify() {
	local c=$1 v msi ioapic
	msi=$(sed -n 's/^KVMINI-GUEST: virtio-irqs msi=\([0-9]*\) ioapic=\([0-9]*\)$/\1/p' "$CASEDIR/$c.out")
	ioapic=$(sed -n 's/^KVMINI-GUEST: virtio-irqs msi=\([0-9]*\) ioapic=\([0-9]*\)$/\2/p' "$CASEDIR/$c.out")
	if [ $c = disk-intx ]; then
		[ "$msi" = 0 ] && [ "${ioapic:-0}" -ge 1 ] ||
			{ echo "with pci=nomsi the virtio interrupts are not INTx through the IOAPIC (msi=${msi:-?} ioapic=${ioapic:-?})"; return; }
	else
		[ "${msi:-0}" -ge 1 ] ||
			{ echo "the virtio devices use no MSI-X vectors (msi=${msi:-?} ioapic=${ioapic:-?})"; return; }
	fi
	v=$(kv $c out vda-sha256)
	[ -n "$v" ] && [ "$v" = "$(kv disk-write out src-sha256)" ] ||
		{ echo "after a second boot the guest reads vda as sha256 ${v:-none}, it wrote $(kv disk-write out src-sha256)"; return; }
	v=$(kv $c out ext4-sum)
	[ -n "$v" ] && [ "$v" = "$(kv disk-write out ext4-sum)" ] ||
		{ echo "after a second boot the ext4 files sum to ${v:-none}, written as $(kv disk-write out ext4-sum)$(guest_hint $c)"; return; }
	v=$(kv $c host e2fsck-rc)
	[ "$v" = 0 ] || echo "e2fsck -fn on the host found problems (rc=${v:-none}): $(grep '^e2fsck: ' "$CASEDIR/$c.host" | tail -n 2 | tr '\n' ' ')"
}

# check_qcow2_ext4: the overlay the guest wrote, checked on this machine.
check_qcow2_ext4() {
	local c=qcow2-ext4 v o=$SHARE/overlay.out.qcow2 raw=$SHARE/flat.raw
	[ "$(kv $c host copied-back)" = 1 ] || { echo "the images did not come back out of the test host"; return; }
	v=$(kv $c out keep-sha256)
	[ "$v" = "$(cat "$SHARE/keep.sha256")" ] || { echo "guest read base/keep.bin as sha256 $v, the base has $(cat "$SHARE/keep.sha256")"; return; }
	[ "$(kv $c out 'qcow2-umount rc')" = 0 ] || { echo "guest umount failed$(guest_hint $c)"; return; }
	qemu-img check -f qcow2 "$o" >"$CASEDIR/$c.qcheck" 2>&1 ||
		{ echo "qemu-img check of the overlay: $(grep -v '^$' "$CASEDIR/$c.qcheck" | head -2 | tr '\n' ' ')"; return; }
	[ "$(sha256sum "$SHARE/base.out.raw" | cut -d' ' -f1)" = "$(cat "$SHARE/base.sha256")" ] ||
		{ echo "the base image changed in the test host"; return; }
	[ "$(sha256sum "$SHARE/base.raw" | cut -d' ' -f1)" = "$(cat "$SHARE/base.sha256")" ] ||
		{ echo "the base image in the share changed"; return; }
	# The copied-back overlay names base.raw relative to itself: the share's base.
	qemu-img convert -O raw "$o" "$raw" || { echo "qemu-img convert -O raw of the overlay failed"; return; }
	e2fsck -fn "$raw" >"$CASEDIR/$c.fsck" 2>&1 || { echo "e2fsck -fn on the flattened overlay: $(tail -n 2 "$CASEDIR/$c.fsck" | tr '\n' ' ')"; return; }
	v=$(debugfs -R "cat /new/data.bin" "$raw" 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$v" = "$(kv $c out data-sha256)" ] || { echo "new/data.bin on the host has sha256 $v, the guest wrote $(kv $c out data-sha256)"; return; }
	v=$(debugfs -R "cat /base/keep.bin" "$raw" 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$v" = "$(cat "$SHARE/keep.sha256")" ] || { echo "base/keep.bin changed: $v"; return; }
	[ "$(debugfs -R "cat /base/change.txt" "$raw" 2>/dev/null)" = "changed by the guest" ] || { echo "base/change.txt does not hold the guest's text"; return; }
	[ "$(debugfs -R "cat /new/f7" "$raw" 2>/dev/null)" = "guest file 7" ] || { echo "new/f7 is wrong"; return; }
	debugfs -R "stat /base/remove.txt" "$raw" 2>&1 | grep -q 'File not found' || { echo "base/remove.txt is still there"; return; }
}

# in_use_refusal NAME PREFIX: PREFIX-rc=1, PREFIX-lines=1 and the line says "in use"
in_use_refusal() {
	[ "$(kv $1 host $2-rc)" = 1 ] && [ "$(kv $1 host $2-lines)" = 1 ] &&
		grep -q "^$2-err: .*in use" "$CASEDIR/$1.host" && return 0
	echo "status $(kv $1 host $2-rc), $(kv $1 host $2-lines) stderr line(s), expected 1 and one 'in use' line: $(grep "^$2-err" "$CASEDIR/$1.host" | head -2 | tr '\n' ' ')"
	return 1
}

# check_nfs_lock: two NFS client hosts, one writer.
check_nfs_lock() {
	local c=qcow2-nfs-lock v
	[ "$(kv $c host nfs-clients)" = 2 ] ||
		{ echo "the NFS server sees $(kv $c host nfs-clients) client(s), expected 2 (host A and host B)"; return; }
	[ "$(kv $c out keep-sha256)" = "$(cat "$SHARE/keep.sha256")" ] ||
		{ echo "host A's guest read base/keep.bin as sha256 $(kv $c out keep-sha256) over NFS, the base has $(cat "$SHARE/keep.sha256")"; return; }
	[ "$(kv $c out 'qcow2-umount rc')" = 0 ] || { echo "host A's guest: umount failed$(guest_hint $c)"; return; }
	[ "$(kv $c host writer-alive-before)" = 1 ] && [ "$(kv $c host writer-alive-after)" = 1 ] ||
		{ echo "host A's kvmini was not running while host B tried the image (before $(kv $c host writer-alive-before), after $(kv $c host writer-alive-after))"; return; }
	v=$(in_use_refusal $c conflict) || { echo "kvmini on host B while host A writes: $v"; return; }
	v=$(in_use_refusal $c base-conflict) ||
		{ echo "kvmini on host B writing the base that host A reads (delegated to host A: $(kv $c host base-delegated)): $v"; return; }
	[ "$(kv $c host check-b-rc)" = 0 ] ||
		{ echo "kvmini-img check on host B after host A's guest: status $(kv $c host check-b-rc): $(grep '^check-b: ' "$CASEDIR/$c.host" | head -3 | tr '\n' ' ')"; return; }
	v=$(kv $c host x-sha256-server)
	[ -n "$v" ] && [ "$(kv $c host x-sha256-a)" = "$v" ] && [ "$(kv $c host x-sha256-b)" = "$v" ] ||
		echo "the overlay reads differently on host A ($(kv $c host x-sha256-a)), host B ($(kv $c host x-sha256-b)) and the server ($v)"
}

# check_nfs_qemu: QEMU on one NFS host, kvmini on the other.
check_nfs_qemu() {
	local c=qcow2-nfs-qemu v
	[ "$(kv qcow2-nfs-lock host writer-alive-after)" = 1 ] ||
		{ echo "host A's kvmini was not running while qemu-img info ran on host B"; return; }
	[ "$(kv $c host qemu-info-rc)" != 0 ] && grep -q '^qemu-info-err: .*Failed to get shared "write" lock' "$CASEDIR/$c.host" ||
		{ echo "qemu-img info on host B while kvmini on host A writes: status $(kv $c host qemu-info-rc), expected a failure with 'Failed to get shared \"write\" lock': $(grep '^qemu-info-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
	[ "$(kv $c host qemu-io-locks)" -ge 4 ] 2>/dev/null ||
		{ echo "qemu-io on host B took $(kv $c host qemu-io-locks) lock(s) in /proc/locks, expected at least 4: $(grep '^qemu-io-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
	v=$(in_use_refusal $c kvmini-vs-qemu) || { echo "kvmini on host A while qemu-io on host B writes: $v"; return; }
	[ "$(kv $c host qemu-io-alive)" = 1 ] || echo "qemu-io ended before kvmini on host A had tried the image"
}

# check_nfs_share: one base, two overlays, two NFS hosts at once.
check_nfs_share() {
	local c=qcow2-nfs-share v k
	k=$(cat "$SHARE/keep.sha256")
	[ "$(kv $c out keep-sha256)" = "$k" ] && [ "$(kv $c out 'qcow2-umount rc')" = 0 ] ||
		{ echo "host A's guest: keep.bin sha256 $(kv $c out keep-sha256) (base: $k), umount rc $(kv $c out 'qcow2-umount rc')$(guest_hint $c)"; return; }
	[ "$(kv $c host b-rc)" = 0 ] && [ "$(kv $c host b-markers)" = 1 ] ||
		{ echo "host B's kvmini on its overlay: status $(kv $c host b-rc) after $(kv $c host b-markers) boot(s): $(grep '^b-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
	[ "$(kv $c host b-keep-sha256)" = "$k" ] && [ "$(kv $c host 'b-qcow2-umount rc')" = 0 ] ||
		{ echo "host B's guest: keep.bin sha256 $(kv $c host b-keep-sha256) (base: $k), umount rc $(kv $c host 'b-qcow2-umount rc')"; return; }
	[ "$(kv $c host probe-rc)" = 2 ] && grep -q '^probe-err: .*too small' "$CASEDIR/$c.host" ||
		{ echo "host B's kvmini on s2.qcow2 while host A's guest ran: status $(kv $c host probe-rc), expected 2 (memory too small, after opening the disks): $(grep '^probe-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
	[ "$(kv $c host both-running)" = 1 ] || { echo "host A's guest was not running while host B opened the base"; return; }
	v=$(cat "$SHARE/base.sha256")
	for k in before after a b; do
		[ "$(kv $c host base-sha256-$k)" = "$v" ] ||
			{ echo "the base on NFS ($k) has sha256 $(kv $c host base-sha256-$k), made as $v"; return; }
	done
	for k in s1 s2; do
		[ "$(kv $c host check-$k-rc)" = 0 ] ||
			{ echo "kvmini-img check of $k.qcow2: status $(kv $c host check-$k-rc): $(grep "^check-$k: " "$CASEDIR/$c.host" | head -3 | tr '\n' ' ')"; return; }
	done
}

check_case() {
	local c=$1 why='' rc
	if [ ! -e "$CASEDIR/$c.case" ]; then
		if [ -n "$no_kvm" ]; then
			fail "$c" "test host has no KVM: $no_kvm (see $firstlog)"
		elif [ $host_died = 1 ]; then
			fail "$c" "the test host died twice before this case finished (see $LOGS/console-*.log)"
		else
			fail "$c" "no result in the console log (see $LOGS/console-*.log)"
		fi
		return
	fi
	rc=$(field "$c" rc)
	if [ "$rc" = skip ]; then
		skip "$c" "$(field "$c" reason)"
		return
	fi
	if [ "$rc" = error ]; then
		fail "$c" "$(field "$c" reason) (see $CASEDIR/$c.host)"
		return
	fi
	case "$c" in
	boot | vmlinux-pvh)
		why=$(expect_boot "$c" poweroff 1 1) ;;
	smp2)
		why=$(expect_boot "$c" poweroff 1 1)
		if [ -z "$why" ] && [ "$(count "$c" out 'KVMINI-GUEST: cpus=2$')" -lt 1 ]; then
			why="guest does not see 2 CPUs: $(grep -m1 'KVMINI-GUEST: cpus=' "$CASEDIR/$c.out")"
		fi ;;
	reboot-noreboot)
		why=$(expect_boot "$c" reboot 1 1) ;;
	reboot-restart)
		local markers sig ids
		markers=$(count "$c" out 'KVMINI-GUEST: init reached')
		sig=$(field "$c" signal)
		ids=$(grep -o 'KVMINI-GUEST: boot-id=.*' "$CASEDIR/$c.out" 2>/dev/null | sort -u | wc -l)
		if [ "$markers" -lt 2 ]; then
			why="guest reached init $markers time(s), expected a second boot after its reboot (exit status $rc, timed out: $(field "$c" timedout))$(stderr_hint "$c")$(guest_hint "$c")"
		elif [ "$ids" -lt 2 ]; then
			why="the guest reached init $markers times but printed $ids distinct boot id(s)"
		elif [ "$sig" != TERM ]; then
			why="kvmini did not exit within 20 s of SIGTERM (status $rc)"
		elif [ "$rc" != 0 ]; then
			why="exit status $rc after SIGTERM, expected 0$(stderr_hint "$c")"
		fi ;;
	bad-kernel | cpus0 | disk-missing | disk-dir | disk-badkey | disk-badvalue)
		why=$(expect_usage "$c") ;;
	disk-write)
		why=$(expect_boot "$c" disk-write 1 1)
		[ -n "$why" ] || why=$(check_disk_write) ;;
	triple-fault)
		if [ "$(count "$c" out 'KVMINI-GUEST: action=reboot')" -lt 1 ]; then
			why="guest did not reach its reboot step$(guest_hint "$c")"
		elif [ "$rc" != 1 ]; then
			why="exit status $rc, expected 1 after the guest's triple fault$(stderr_hint "$c")"
		elif [ "$(count "$c" err 'vCPU 0: triple fault')" != 1 ]; then
			why="stderr does not say 'vCPU 0: triple fault'$(stderr_hint "$c")"
		elif [ "$(count "$c" err '^ *rip [0-9a-f]{16} ')" != 1 ]; then
			why="stderr has no register dump$(stderr_hint "$c")"
		elif [ "$(count "$c" out 'KVMINI-GUEST: init reached')" != 1 ]; then
			why="the guest booted again after its triple fault"
		fi ;;
	disk-verify | disk-intx)
		why=$(expect_boot "$c" disk-verify 1 1)
		[ -n "$why" ] || why=$(check_disk_verify "$c") ;;
	qcow2-ext4)
		why=$(expect_boot "$c" qcow2-ext4 1 1)
		[ -n "$why" ] || why=$(check_qcow2_ext4) ;;
	qcow2-lock)
		why=$(expect_boot "$c" poweroff 1 1)
		if [ -z "$why" ]; then
			if [ "$(kv $c host conflict-rc)" != 1 ] || [ "$(kv $c host conflict-lines)" != 1 ] ||
				! grep -q '^conflict-err: .*in use' "$CASEDIR/$c.host"; then
				why="a second writer of one image: status $(kv $c host conflict-rc), $(kv $c host conflict-lines) stderr line(s), expected 1 and one 'in use' line: $(grep '^conflict-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"
			elif [ "$(kv $c host share-rc)" != 2 ] || ! grep -q '^share-err: .*too small' "$CASEDIR/$c.host"; then
				why="kvmini on another overlay of the same base while the guest ran: status $(kv $c host share-rc), expected 2 (memory too small, after opening the disks): $(grep '^share-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"
			elif [ "$(kv $c host overlap)" != 1 ]; then
				why="the guest was not running any more when the other overlay was opened"
			elif [ "$(kv $c host second-rc)" != 0 ] || [ "$(kv $c host second-markers)" != 1 ]; then
				why="the guest on the other overlay of the same base ended with status $(kv $c host second-rc) after $(kv $c host second-markers) boot(s)"
			fi
		fi ;;
	qcow2-nfs-lock)
		why=$(expect_boot "$c" qcow2-ext4 1 1)
		[ -n "$why" ] || why=$(check_nfs_lock) ;;
	qcow2-nfs-qemu)
		why=$(check_nfs_qemu) ;;
	qcow2-nfs-share)
		why=$(expect_boot "$c" qcow2-ext4 1 1)
		[ -n "$why" ] || why=$(check_nfs_share) ;;
	trace-exits)
		why=$(expect_boot "$c" poweroff 1 1)
		if [ -z "$why" ]; then
			cat "$CASEDIR/$c.out" "$CASEDIR/$c.err" 2>/dev/null | grep -v 'KVMINI-GUEST' >"$CASEDIR/$c.table"
			if ! grep -q -i -E '^[[:space:]]*exit' "$CASEDIR/$c.table"; then
				why="no exit table header (a line starting with 'exit') in kvmini's output"
			elif ! grep -q -i -w 'io' "$CASEDIR/$c.table"; then
				why="exit table has no 'io' row"
			fi
		fi ;;
	*)
		why="no assertions for this case" ;;
	esac
	if [ -z "$why" ]; then pass "$c"; else fail "$c" "$why"; fi
	local rerun
	rerun=$(field "$c" rerun)
	[ -z "$rerun" ] || echo "NOTE $c ran twice: its first attempt ended in the emulated CPU's known fault ($rerun; first attempt in $CASEDIR/$c.first)"
}

echo "1..$(echo $CASES | wc -w)"
for c in $CASES; do check_case "$c"; done
echo "run-e2e: logs in $LOGS (per case: $CASEDIR/NAME.{case,out,err,dmesg}); total $(($(date +%s) - t0)) s" >&2
[ $KEEP = 1 ] || rm -rf "$IMAGES"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ $FAILED -eq 0 ] || exit 1
[ $PASSED -gt 0 ] || exit 77
exit 0
