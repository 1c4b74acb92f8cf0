#!/bin/bash
# End-to-end test: kvmini boots Debian's stock kernel on real (nested) KVM.
# See docs/testing-e2e.md for how it works.
#
# usage: run-e2e.sh [--cases a,b,c] [--keep] [--timeout SECS] [--verbose-guest] BUILDDIR
#        (default: the cases of ALL_CASES in testhost-init; EXTRA_CASES only when named)
#        run-e2e.sh --shell host|guest BUILDDIR      (interactive, no assertions)
#        run-e2e.sh --provision DIR BUILDDIR         (steps 4-6 of examples/provision.sh on the
#                                                     images it left in DIR: boot, SSH, shutdown)
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
# run only when named in --cases (testhost-init says why)
EXTRA_CASES=$(sed -n 's/^EXTRA_CASES="\(.*\)"$/\1/p' "$HERE/testhost-init")

usage() {
	echo "usage: $0 [--cases a,b,c] [--keep] [--timeout SECS] [--verbose-guest] BUILDDIR" >&2
	echo "       $0 --shell host|guest BUILDDIR" >&2
	echo "       $0 --demo shell|script BUILDDIR" >&2
	echo "       $0 --provision DIR BUILDDIR" >&2
	echo "cases: $ALL_CASES" >&2
	echo "only when named: $EXTRA_CASES" >&2
	exit 2
}

CASES=$ALL_CASES
KEEP=0
REPARSE=0
VERBOSE_GUEST=0
SHELL_MODE=
DEMO_MODE=
PROVISION_DIR=
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
	--provision) [ $# -ge 2 ] || usage; PROVISION_DIR=$2; shift 2 ;;
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
	case " $ALL_CASES $EXTRA_CASES " in *" $c "*) ;; *) echo "run-e2e: unknown case '$c'" >&2; usage ;; esac
done
[ -n "$CASES" ] || usage
# disk-verify and disk-intx boot the images that disk-write filled in the same test host.
case " $CASES " in *" disk-verify "* | *" disk-intx "*) CASES="$CASES disk-write" ;; esac
# qcow2-nfs-qemu reports what qcow2-nfs-lock measured while its guest wrote on NFS.
case " $CASES " in *" qcow2-nfs-qemu "*) CASES="$CASES qcow2-nfs-lock" ;; esac
# Cases run in ALL_CASES order, each once.
CASES=$(for c in $ALL_CASES $EXTRA_CASES; do case " $CASES " in *" $c "*) echo "$c" ;; esac; done | tr '\n' ' ')

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
case "${PROVISION_DIR:+provision} $CASES " in " "*" qcow2-"*)
	if [ $REPARSE = 0 ]; then qcow2_prepare; fi
	qemu_cmd+=(-virtfs "local,path=$SHARE,mount_tag=share,security_model=none") ;;
esac
# shellcheck disable=SC2206
extra=(${KVMINI_E2E_QEMU_ARGS:-})

# examples/provision.sh's images, booted in the test host: its own SSH client logs in
# through kvmini's hostfwd. Slow (Debian's systemd and cloud-init under the emulated CPU):
# on demand only, never in CI.
if [ -n "$PROVISION_DIR" ]; then
	provlog=$LOGS/provision-console.log
	for f in vmlinuz initrd.img vm1.qcow2 base.qcow2 seed.img vm1_key; do
		[ -e "$PROVISION_DIR/$f" ] || { echo "run-e2e: $PROVISION_DIR/$f missing: run examples/provision.sh first" >&2; exit 2; }
	done
	timeout -k 10 3600 "${qemu_cmd[@]}" "${extra[@]}" -display none -monitor none \
		-virtfs "local,path=$(realpath "$PROVISION_DIR"),mount_tag=share,security_model=none" \
		-chardev stdio,id=con,signal=off,logfile="$provlog" -serial chardev:con \
		-append "console=ttyS0 quiet panic=-1 e2e_provision=1" </dev/null
	[ $KEEP = 1 ] || rm -rf "$IMAGES"
	tr -d '\r' <"$provlog" | grep -q 'TESTHOST: provision PASS' && exit 0
	echo "run-e2e: provision boot failed; console log $provlog" >&2
	exit 1
fi

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
	# net-*: the first one sets up the bridge, the outside machine and the HTTP servers
	net-reboot) echo $((CASE_TIMEOUT * 2 + 85)) ;;
	net-two-guests) echo $((CASE_TIMEOUT * 2 + 145)) ;;
	control) echo $((CASE_TIMEOUT * 2 + 110)) ;;
	net-*) echo $((CASE_TIMEOUT + 85)) ;;
	*) echo $((CASE_TIMEOUT + 25)) ;;
	esac
}

# freeze_report TIMEOUT_PID: what the frozen test host's QEMU is doing, for the log: each
# thread's state and CPU time twice, 2 s apart (TCG vCPU threads that keep burning CPU are
# the emulated CPUs spinning; threads that sleep in futex waits are QEMU deadlocked), and,
# with gdb, every thread's stack.
freeze_report() {
	local q t
	q=$(pgrep -P "$1" | head -n 1)
	[ -n "$q" ] || return 0
	echo "run-e2e: QEMU $q, per thread: state, CPU ticks (user system) now and 2 s later:"
	for t in /proc/$q/task/*; do
		echo "$(cat $t/comm 2>/dev/null) $(awk '{print $3, $14, $15}' $t/stat 2>/dev/null)"
	done >/tmp/freeze.$$.a
	sleep 2
	for t in /proc/$q/task/*; do
		echo "$(awk '{print $3, $14, $15}' $t/stat 2>/dev/null) wchan=$(cat $t/wchan 2>/dev/null)"
	done | paste -d' ' /tmp/freeze.$$.a - | sed 's/^/run-e2e:   /'
	rm -f /tmp/freeze.$$.a
	command -v gdb >/dev/null || return 0
	timeout 60 gdb -p "$q" -batch -ex 'thread apply all bt 6' 2>/dev/null |
		grep -E '^(Thread|#)' | head -n 60 | sed 's/^/run-e2e:   /'
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
	local beat=${log%.log}.heartbeat
	rm -f "$beat"
	# COM1 is the console (stdio, as -nographic alone would make it), COM2 the heartbeat.
	timeout -k 10 "$limit" "${qemu_cmd[@]}" "${extra[@]}" -nographic \
		-serial mon:stdio -serial "file:$beat" \
		-append "console=ttyS0 quiet panic=-1 e2e_cases=$list e2e_timeout=$CASE_TIMEOUT e2e_guest_verbose=$VERBOSE_GUEST" \
		</dev/null >"$log" 2>&1 &
	local qpid=$! cur= since now allow stall beats=0 nbeats beat_at
	# A live test host ends every case within the case's own limit. One that stays in a
	# case a minute past it has died (platform.md section 4: a soft lockup or RCU stall
	# of the emulated machine): stop it now, so that the rerun still has the time.
	since=$(date +%s)
	beat_at=$since
	while kill -0 $qpid 2>/dev/null; do
		sleep 5
		c=$(tr -d '\r' <"$log" | sed -n 's/^CASE-START //p' | tail -n 1)
		now=$(date +%s)
		# testhost-init writes a line to its second serial port every 10 s. Once it has,
		# 90 s without one is a test host frozen in the emulator: nothing else shows it.
		nbeats=$(grep -c '^alive' "$beat" 2>/dev/null)
		[ "${nbeats:-0}" = "$beats" ] || { beats=${nbeats:-0} beat_at=$now; }
		if [ "$beats" -gt 0 ] && [ $((now - beat_at)) -gt 90 ]; then
			echo "run-e2e: the test host stopped answering in ${cur:-its boot} (no heartbeat for $((now - beat_at)) s): it is frozen, stopping it" >&2
			freeze_report $qpid >&2
			kill $qpid 2>/dev/null
			break
		fi
		[ "$c" = "$cur" ] || { cur=$c since=$now; }
		allow=180
		[ -z "$cur" ] || allow=$(($(case_limit "$cur") + 60))
		# The test host's kernel reporting a CPU stuck for a minute or more is the same
		# death, seen earlier (a case in it may still end, late, with a timeout): stop it
		# too. Shorter stalls (26 s reports, RCU stall warnings) are left alone: they may
		# pass, and stopping the host on each one cost a CI run its two attempts.
		stall=$(tr -d '\r' <"$log" | grep -m 1 -o -E 'soft lockup - CPU#[0-9]+ stuck for ([6-9][0-9]|[0-9]{3,})s! \[[^]]*\]')
		if [ -n "$stall" ]; then
			echo "run-e2e: the test host's kernel reports its CPUs stalled in ${cur:-its boot} ($stall): the test host is dying, stopping it" >&2
			kill $qpid 2>/dev/null
			break
		fi
		if [ $((now - since)) -gt $allow ]; then
			echo "run-e2e: no progress for $((now - since)) s in ${cur:-the boot of the test host}: the test host is stuck, stopping it" >&2
			kill $qpid 2>/dev/null
			break
		fi
	done
	wait $qpid
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
		if (stream !~ /^(out|err|dmesg|host|trace|hang|first)$/ || substr(rest, q + 1, 1) != " ") next
		print substr(rest, q + 2) >> (dir "/" name "." stream)
	}'
}

CASEDIR=$LOGS/cases
rm -rf "$CASEDIR"
[ $REPARSE = 1 ] || rm -f "$LOGS"/console-*.log
mkdir -p "$CASEDIR"

pending=$CASES
host_died=0
# A case the test host died in (it printed CASE-START, no complete report) runs once more;
# cases it never reached were not run at all and go to the next test host as they are
# (platform.md section 4 allows one rerun of a case, not of a test host). At most 4 boots.
declare -A cutoff=()
# Cases that share state inside one test host and are judged against each other: disk-verify
# and disk-intx read the images disk-write made (and compare with what it wrote), and
# qcow2-nfs-qemu judges what qcow2-nfs-lock measured on its NFS server. When one of a group goes
# to another test host, every case of the group that was asked for goes with it, in the
# order asked, and the reports of the ones that had passed are dropped: a report from one
# test host is never judged against another's (disk-write writes new random data on each).
CASE_GROUPS=("disk-write disk-verify disk-intx" "qcow2-nfs-lock qcow2-nfs-qemu")
with_groups() { # with_groups "CASES LEFT": the cases to run next, in CASES order
	local want=" $1 " g c m out=
	for g in "${CASE_GROUPS[@]}"; do
		for c in $g; do
			case "$want" in *" $c "*)
				for m in $g; do
					[ "${cutoff[$m]:-0}" -ge 2 ] && continue # cut off twice: failed
					case " $CASES " in *" $m "*) want="$want$m " ;; esac
				done
				break ;;
			esac
		done
	done
	for c in $CASES; do
		case "$want" in *" $c "*)
			out="$out $c"
			case " $1 " in *" $c "*) ;; *) rm -f "$CASEDIR/$c".* ;; esac ;;
		esac
	done
	echo "$out"
}
for attempt in 1 2 3 4; do
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
			for s in case out err dmesg host trace hang first; do
				[ -e "$tmp/$c.$s" ] && mv "$tmp/$c.$s" "$CASEDIR/$c.$s"
			done
		else
			tr -d '\r' <"$log" | grep -qx "CASE-START $c" && cutoff[$c]=$((${cutoff[$c]:-0} + 1))
			[ "${cutoff[$c]:-0}" -ge 2 ] || left="$left $c"
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
	echo "run-e2e: its last heartbeats (uptime, load, step, the running kvmini's last output line):" >&2
	tr -d '\r' <"${log%.log}.heartbeat" 2>/dev/null | tail -n 3 | sed 's/^/run-e2e:   /' >&2
	pending=$(with_groups "$left")
	[ -n "$pending" ] || break
	if [ $REPARSE = 0 ] && [ $((BUDGET - ($(date +%s) - t0))) -lt 200 ]; then
		echo "run-e2e: no time left to rerun" >&2
		break
	fi
	[ $REPARSE = 0 ] && echo "run-e2e: the cases left for another test host (each cut off at most once):$pending" >&2
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
fail() {
	NTAP=$((NTAP + 1))
	echo "not ok $NTAP - $1"
	echo "FAIL $1: $2"
	FAILED=$((FAILED + 1))
	fail_details "$1"
}
# fail_details NAME: what a reader of CI's log needs without the log directory: the end of
# kvmini's stderr, where its threads were when a timed-out case was stopped, the KVM trace.
fail_details() {
	local s n
	for s in err:12 hang:60 trace:15 dmesg:10; do
		n=${s#*:} s=${s%%:*}
		[ -s "$CASEDIR/$1.$s" ] || continue
		echo "  $1 $s (last $n lines):"
		tail -n "$n" "$CASEDIR/$1.$s" | cut -c1-200 | sed 's/^/  | /'
	done
}
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

# mib_diff NAME [quiet]: which MiB of vda the guest read (O_DIRECT, per MiB) other than the
# host file holds them; quiet prints nothing when all agree.
mib_diff() {
	local i bad= n=0
	for i in $(seq 0 63); do
		[ "$(kv $1 out vda-mib-$i)" = "$(kv $1 host vda-mib-$i)" ] || { bad="$bad $i"; n=$((n + 1)); }
	done
	[ $n = 0 ] && [ "${2:-}" = quiet ] && return 0
	[ $n = 0 ] && echo "its direct reads of each MiB all match the host file (so the page cache held the wrong data)" ||
		echo "$n MiB differ between its direct reads and the host file:$bad"
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
		{ echo "after a second boot the guest reads vda as sha256 ${v:-none}, it wrote $(kv disk-write out src-sha256); $(mib_diff $c)"; return; }
	[ -z "$(mib_diff $c quiet)" ] ||
		{ echo "after a second boot the guest's direct reads of vda differ from the host file: $(mib_diff $c)"; return; }
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
	[ "$(kv $c host probe-rc)" = 1 ] && grep -q '^probe-err: .*/dev/kvm is not KVM' "$CASEDIR/$c.host" ||
		{ echo "host B's kvmini on s2.qcow2 while host A's guest ran: status $(kv $c host probe-rc), expected 1 (past its disks, at the /dev/kvm that no_kvm hid): $(grep '^probe-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
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

# check_control: the control socket and the power button (testhost-init, case control).
check_control() {
	local c=control a b n
	[ "$(hk $c status-boots)" = 2 ] && [ "$(hk $c status-state)" = running ] ||
		{ echo "status on the second boot: boots $(hk $c status-boots), state $(hk $c status-state), expected 2 and running: $(grep '^ctl' "$CASEDIR/$c.host" | head -4 | tr '\n' ' ')"; return; }
	[ "$(hn $c stats-io)" -gt 0 ] && [ "$(hn $c stats-disk-reads)" -gt 0 ] ||
		{ echo "stats: io exits $(hk $c stats-io), disk reads $(hk $c stats-disk-reads), expected both above 0"; return; }
	a=$(hn $c ticks-paused-start) b=$(hn $c ticks-paused-end) n=$(hn $c ticks-resumed)
	[ "$a" -gt 0 ] && [ "$a" = "$b" ] ||
		{ echo "the guest's counter moved while paused: $a ticks, then $b after 5 s"; return; }
	[ "$n" -gt "$b" ] || { echo "the guest's counter did not go on after resume: $b, then $n"; return; }
	# The guest's clock goes on from where it paused (KVM_GET_CLOCK/KVM_SET_CLOCK): the tick
	# after the pause is about 0.5 s of guest uptime after the one before it, not the 7 s
	# the pause lasted.
	local u1 u2
	u1=$(sed -n "s/.*KVMINI-GUEST: tick $b up=\([0-9.]*\).*/\1/p" "$CASEDIR/$c.out" | head -1)
	u2=$(sed -n "s/.*KVMINI-GUEST: tick $((b + 1)) up=\([0-9.]*\).*/\1/p" "$CASEDIR/$c.out" | head -1)
	awk -v a="$u1" -v b="$u2" 'BEGIN { exit !(a != "" && b != "" && b - a < 3) }' ||
		{ echo "the guest's clock jumped over the pause: uptime $u1 at tick $b, $u2 at tick $((b + 1))"; return; }
	grep -q '^ctl status -> rc=0' "$CASEDIR/$c.host" && grep -q '^ctl-out: state: paused' "$CASEDIR/$c.host" ||
		{ echo "status while paused did not say paused"; return; }
	grep -q '^ctl shutdown --timeout 120 -> rc=0' "$CASEDIR/$c.host" ||
		{ echo "kvmini ctl shutdown failed: $(grep -A2 '^ctl shutdown' "$CASEDIR/$c.host" | tr '\n' ' ')"; return; }
	[ "$(count $c out 'KVMINI-GUEST: power-button-device=/dev/input/')" = 1 ] ||
		{ echo "the guest found no Power Button input device: $(gline $c power-button-device)"; return; }
	# EV_KEY (1) KEY_POWER (116): the event the button driver reports for Notify 0x80
	[ "$(count $c out 'KVMINI-GUEST: power button pressed \(01007400\)')" = 1 ] ||
		{ echo "the guest did not see the power button press: $(gline $c 'power button')"; return; }
	[ "$(count $c out 'KVMINI-GUEST: powering off after the power button')" = 1 ] ||
		{ echo "the guest did not power off after the button"; return; }
	[ "$(hk $c socket-after-exit)" = 0 ] || { echo "the control socket was left behind"; return; }
	# The seed kvmini seed made on the test host, as the guest's kernel reads it (isofs)
	[ "$(hk $c seed-rc)" = 0 ] || { echo "kvmini seed failed: $(grep '^seed-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"; return; }
	[ "$(count $c out 'KVMINI-GUEST: seed label=cidata$')" -ge 1 ] && [ "$(count $c out 'KVMINI-GUEST: seed mounted type=iso9660$')" -ge 1 ] ||
		{ echo "the seed disk is not an ISO 9660 volume labelled cidata in the guest: $(gline $c 'seed label') $(gline $c 'seed mount')"; return; }
	[ "$(count $c out 'KVMINI-GUEST: seed files=meta-data,user-data$')" -ge 1 ] ||
		{ echo "the seed's files in the guest: $(gline $c 'seed files')$(gline $c 'seed mount')"; return; }
	[ "$(count $c out 'KVMINI-GUEST: seed hostname=e2e-vm1$')" -ge 1 ] &&
		[ "$(count $c out 'KVMINI-GUEST: seed instance-id=iid-[0-9a-f]{32}$')" -ge 1 ] ||
		{ echo "the seed's meta-data in the guest: $(gline $c 'seed hostname') $(gline $c 'seed instance-id')"; return; }
	# the key once in meta-data (public-keys) and once in user-data (the debian user)
	[ "$(count $c out 'KVMINI-GUEST: seed key-lines=2$')" -ge 1 ] || echo "the seed's key in the guest: $(gline $c 'seed key-lines')"
}

# --- the net cases ---
# hk NAME KEY: a KEY=value word anywhere in the case's host stream (the first one)
hk() {
	grep -o -E "(^| )$2=[^ ]*" "$CASEDIR/$1.host" 2>/dev/null | head -1 | sed 's/^ //; s/^[^=]*=//'
}
# hn NAME KEY: the same as a number (0 when missing)
hn() {
	local v
	v=$(hk "$1" "$2")
	case "$v" in '' | *[!0-9]*) echo 0 ;; *) echo "$v" ;; esac
}
# gline NAME TEXT [N]: the Nth (default first) guest line that starts with TEXT
gline() {
	grep -F -- "KVMINI-GUEST: $2" "$CASEDIR/$1.out" 2>/dev/null | sed -n "${3:-1}p"
}
# wordof LINE KEY: the value of KEY=value in LINE
wordof() {
	echo " $1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"
}
# feature FEATURES BIT: one bit of the virtio feature string sysfs prints (bit 0 first)
feature() {
	echo "${1:$2:1}"
}
# mean BYTES FRAMES
mean() {
	[ "${2:-0}" -gt 0 ] 2>/dev/null && echo $(($1 / $2)) || echo 0
}
MIB=1048576
# check_lease NAME IFACE: 10.0.2.15/24 from libslirp's DHCP, router .2, DNS .3
check_lease() {
	local l a
	l=$(gline "$1" "lease $2 ")
	[ "$(wordof "$l" ip)" = 10.0.2.15 ] && [ "$(wordof "$l" mask)" = 255.255.255.0 ] &&
		[ "$(wordof "$l" router)" = 10.0.2.2 ] && [ "$(wordof "$l" dns)" = 10.0.2.3 ] ||
		{ echo "$2's DHCP lease is '${l#KVMINI-GUEST: }', expected ip=10.0.2.15 mask=255.255.255.0 router=10.0.2.2 dns=10.0.2.3 ($(gline "$1" "dhcp $2 "))"; return 1; }
	a=$(gline "$1" "net $2 operstate=")
	[ "$(wordof "$a" operstate)" = up ] && [ "$(wordof "$a" addr)" = 10.0.2.15/24 ] &&
		[ "$(wordof "$a" gw)" = 10.0.2.2 ] && [ "$(wordof "$a" resolv)" = 10.0.2.3 ] ||
		{ echo "the lease was not applied to $2: ${a#KVMINI-GUEST: }"; return 1; }
}
# check_features NAME IFACE on|off: the offloads the guest's driver accepted (virtio
# 5.1.3: CSUM 0, GUEST_CSUM 1, GUEST_TSO4 7, HOST_TSO4 11; MRG_RXBUF 15 either way)
check_features() {
	local f want b
	f=$(wordof "$(gline "$1" "net $2 mac=")" features)
	[ ${#f} -ge 32 ] || { echo "no virtio feature bits for $2 in the guest ('$f')"; return 1; }
	want=1
	[ "$3" = on ] || want=0
	for b in 0 1 7 11; do
		[ "$(feature "$f" $b)" = $want ] ||
			{ echo "$2 negotiated feature bit $b = $(feature "$f" $b), expected $want (offloads $3; features $f)"; return 1; }
	done
	[ "$(feature "$f" 15)" = 1 ] || { echo "$2 did not negotiate MRG_RXBUF (features $f)"; return 1; }
}
# check_get NAME TEXT BYTES SHA: a guest's download
check_get() {
	local l
	l=$(gline "$1" "get $2")
	[ "$(wordof "$l" rc)" = 0 ] && [ "$(wordof "$l" bytes)" = "$3" ] && [ -n "$4" ] && [ "$(wordof "$l" sha256)" = "$4" ] ||
		{ echo "the guest's download of $2: ${l#KVMINI-GUEST: } (expected rc=0 bytes=$3 sha256=$4)"; return 1; }
}
# check_fetch NAME PREFIX SERVING-LINE: the test host's download of what the guest served
check_fetch() {
	local sv=$3
	[ "$(hk "$1" "$2-rc")" = 0 ] && [ -n "$(wordof "$sv" sha256)" ] &&
		[ "$(hk "$1" "$2-bytes")" = "$(wordof "$sv" bytes)" ] && [ "$(hk "$1" "$2-sha256")" = "$(wordof "$sv" sha256)" ] ||
		{ echo "the test host's download ($2) of the guest's data: status $(hk "$1" "$2-rc"), $(hk "$1" "$2-bytes") bytes, sha256 $(hk "$1" "$2-sha256"); the guest served ${sv#KVMINI-GUEST: serving }$(grep "^$2-err" "$CASEDIR/$1.host" | head -1)"; return 1; }
}
# check_pings NAME IP
check_pings() {
	local s l
	for s in 56 1472 8000; do
		l=$(gline "$1" "ping $2 size=$s ")
		[ "$(wordof "$l" rc)" = 0 ] && [ "$(wordof "$l" received)" = 3 ] ||
			{ echo "ping -s $s $2 from the guest: ${l:-no result}"; return 1; }
	done
}
# check_tap_gone NAME [TAPKEY]: the TAP kvmini made left with it
check_tap_gone() {
	[ "$(hk "$1" "${2:-tap}-after-exit")" = 0 ] ||
		{ echo "the TAP kvmini created still exists after it exited (${2:-tap}-after-exit=$(hk "$1" "${2:-tap}-after-exit"))"; return 1; }
	[ "$(hk "$1" br0-ports)" = lan0 ] || { echo "br0 still has ports other than lan0 after kvmini exited: $(hk "$1" br0-ports)"; return 1; }
}
# trace_net NAME: "rx FRAMES BYTES tx FRAMES BYTES" from kvmini's --trace-exits virtio-net line
trace_net() {
	sed -n 's/.*virtio-net eth0 ([a-z]* [^)]*) q0: rx \([0-9]*\) frames \([0-9]*\) bytes, tx \([0-9]*\) frames \([0-9]*\) bytes.*/\1 \2 \3 \4/p' "$CASEDIR/$1.err" 2>/dev/null | head -1
}

# check_modules NAME: the guest loaded every module of its initramfs, virtio_net among them
check_modules() {
	local l n
	l=$(gline "$1" "modules loaded ")
	n=${l##* }
	[ -n "$l" ] && [ "${n%/*}" = "${n#*/}" ] || { echo "the guest's modules did not all load: ${l:-no 'modules loaded' line}$(grep 'insmod .* failed' "$CASEDIR/$1.out" | head -1)"; return 1; }
}

check_net_slirp() {
	local c=net-slirp sv v
	check_lease $c eth0 || return
	check_features $c eth0 off || return
	check_get $c 10.0.2.2:8080/slirp.bin $((4 * MIB)) "$(hk $c slirp-sha256)" || return
	sv=$(gline $c "serving ")
	check_fetch $c fwd "$sv" || return
	v=$(hk $c fwd-listener)
	[ "$v" = "$(hk $c fwd-kvmini-pid)/kvmini" ] ||
		{ echo "port 8022 is held by '$v', expected kvmini (pid $(hk $c fwd-kvmini-pid))"; return; }
	[ -n "$(gline $c next=poweroff)" ] || echo "the guest never read its next step$(guest_hint $c)"
}
info_net_slirp() {
	local c=net-slirp
	echo "INFO $c: lease $(gline $c "lease eth0 " | sed 's/^KVMINI-GUEST: lease eth0 //; s/ server=.*//'); 4 MiB from 10.0.2.2:8080 to the guest; 4 MiB through hostfwd tcp::8022-:80 to the test host in $(hk $c fwd-secs) s; features $(wordof "$(gline $c "net eth0 mac=")" features | cut -c1-16)"
}

# check_net_bridge NAME on|off
check_net_bridge() {
	local c=$1 mode=$2 sv down_mean up_mean o t
	[ "$(hk $c down-master)" = br0 ] || { echo "kvtap0 was not a port of br0 while the guest ran (tap=$(hk $c down-tap) master=$(hk $c down-master))"; return; }
	check_features $c eth0 on || return
	v=$(gline $c "net eth0 operstate=")
	[ "$(wordof "$v" operstate)" = up ] && [ "$(wordof "$v" addr)" = 192.168.77.10/24 ] ||
		{ echo "eth0 is not up with 192.168.77.10/24: ${v#KVMINI-GUEST: }"; return; }
	[ "$(wordof "$(gline $c "net eth0 mac=")" mtu)" = 1500 ] ||
		{ echo "the guest's eth0 has MTU $(wordof "$(gline $c "net eth0 mac=")" mtu), expected 1500 (the TAP's)"; return; }
	o=$(gline $c "offloads eth0 ")
	if [ $mode = on ]; then
		[ "$(wordof "$o" tso)" = on ] && [ "$(wordof "$o" tx-csum)" = on ] ||
			{ echo "ethtool in the guest: ${o#KVMINI-GUEST: }, expected tx-csum=on tso=on"; return; }
	else
		[ "$(wordof "$(gline $c ethtool-off)" rc)" = 0 ] && [ "$(wordof "$o" tso)" = off ] && [ "$(wordof "$o" tx-csum)" = off ] &&
			[ "$(wordof "$o" gso)" = off ] || { echo "ethtool -K in the guest did not turn the offloads off: ${o#KVMINI-GUEST: }"; return; }
		# the receiving side: VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET from the guest's driver
		[ "$(feature "$(wordof "$(gline $c "net eth0 mac=")" features)" 2)" = 1 ] ||
			{ echo "eth0 did not negotiate VIRTIO_NET_F_CTRL_GUEST_OFFLOADS (bit 2)"; return; }
		[ "$(wordof "$(gline $c ethtool-gro-hw-off)" rc)" = 0 ] && [ "$(wordof "$o" gro-hw)" = off ] ||
			{ echo "ethtool -K eth0 rx-gro-hw off in the guest: $(gline $c ethtool-gro-hw-off | sed 's/^KVMINI-GUEST: //'); ${o#KVMINI-GUEST: }"; return; }
	fi
	check_pings $c 192.168.77.1 || return
	check_get $c 192.168.77.1:8080/down.bin $((32 * MIB)) "$(hk $c down-sha256)" || return
	sv=$(gline $c "serving ")
	check_fetch $c up "$sv" || return
	# To the guest: everything up to the guest's "serving" (mostly the 32 MiB download);
	# from the guest: what it sent while the test host fetched its 32 MiB. Frames of at
	# most 1514 bytes cannot average more than that: a mean above 2000 needs GSO frames.
	# (How large they get depends on the senders' pacing rate, which emulation makes low:
	# means of 11,807 to 41,945 bytes were seen to the guest.)
	down_mean=$(mean "$(hk $c down-tap-tx-bytes)" "$(hk $c down-tap-tx-frames)")
	up_mean=$(mean $(($(hn $c up-tap-rx-bytes) - $(hn $c down-tap-rx-bytes))) $(($(hn $c up-tap-rx-frames) - $(hn $c down-tap-rx-frames))))
	if [ $mode = on ]; then
		[ "$down_mean" -gt 2000 ] && [ "$up_mean" -gt 2000 ] ||
			{ echo "with offloads on, the mean frame on kvtap0 is $down_mean bytes to the guest and $up_mean from it: no GSO frames (expected > 2000)"; return; }
		t=$(trace_net $c)
		set -- $t
		[ $# = 4 ] && [ "$(mean $4 $3)" -gt 2000 ] && [ "$(mean $2 $1)" -gt 2000 ] ||
			{ echo "kvmini's virtio-net counters (rx frames bytes tx frames bytes: '$t') show no frames larger than the MTU"; return; }
	else
		[ "$down_mean" -le 1514 ] && [ "$up_mean" -le 1514 ] ||
			{ echo "with offloads off, the mean frame on kvtap0 is $down_mean bytes to the guest and $up_mean from it, expected at most 1514"; return; }
	fi
	check_tap_gone $c || return
	[ -n "$(gline $c next=poweroff)" ] || echo "the guest never read its next step$(guest_hint $c)"
}
info_net_bridge() {
	local c=$1 t
	t=$(trace_net $c)
	echo "INFO $c: $(gline $c "offloads eth0 " | sed 's/^KVMINI-GUEST: //; s/ *$//'); kvtap0 mean frame to the guest $(mean "$(hn $c down-tap-tx-bytes)" "$(hn $c down-tap-tx-frames)") bytes ($(hn $c down-tap-tx-frames) frames while 32 MiB came in), from the guest $(mean $(($(hn $c up-tap-rx-bytes) - $(hn $c down-tap-rx-bytes))) $(($(hn $c up-tap-rx-frames) - $(hn $c down-tap-rx-frames)))) bytes ($(($(hn $c up-tap-rx-frames) - $(hn $c down-tap-rx-frames))) frames while 32 MiB went out, $(hk $c up-secs) s); kvmini virtio-net rx/tx frames bytes: ${t:-none}"
}

check_net_two() {
	local c=net-two-guests l sa sb v
	v=$(hk $c driver)
	[ -z "$v" ] || { echo "the test host's driver stopped: $v$(guest_hint $c)"; return; }
	[ "$(hk $c b-rc)" = 0 ] && [ "$(hk $c b-markers)" = 1 ] ||
		{ echo "guest B: status $(hk $c b-rc) after $(hk $c b-markers) boot(s): $(grep '^b|err| ' "$CASEDIR/$c.host" | grep -v '^b|err| *$' | tail -n 1)$(grep '^b|out| ' "$CASEDIR/$c.host" | tail -n 1)"; return; }
	[ "$(hk $c a-master)" = br0 ] && [ "$(hk $c b-master)" = br0 ] ||
		{ echo "the TAPs were not both in br0 (kvtap1: $(hk $c a-master), kvtap2: $(hk $c b-master))"; return; }
	# B's lines are in the host stream as "b|out| KVMINI-GUEST: ..."
	sed -n 's/^b|out| //p' "$CASEDIR/$c.host" >"$CASEDIR/$c-b.out"
	check_pings $c-b 192.168.77.11 || { echo "guest B: $(check_pings $c-b 192.168.77.11)"; return; }
	sa=$(gline $c "serving ")
	sb=$(gline $c-b "serving ")
	check_get $c-b 192.168.77.11/data.bin $((4 * MIB)) "$(wordof "$sa" sha256)" || { echo "guest B from A: $(check_get $c-b 192.168.77.11/data.bin $((4 * MIB)) "$(wordof "$sa" sha256)")"; return; }
	check_pings $c 192.168.77.12 || { echo "guest A: $(check_pings $c 192.168.77.12)"; return; }
	check_get $c 192.168.77.12/data.bin $((4 * MIB)) "$(wordof "$sb" sha256)" || { echo "guest A from B: $(check_get $c 192.168.77.12/data.bin $((4 * MIB)) "$(wordof "$sb" sha256)")"; return; }
	[ "$(hk $c tap-after-exit)" = 0 ] && [ "$(hk $c tap2-after-exit)" = 0 ] && [ "$(hk $c br0-ports)" = lan0 ] ||
		echo "TAPs left after exit: kvtap1 $(hk $c tap-after-exit), kvtap2 $(hk $c tap2-after-exit), br0 ports $(hk $c br0-ports)"
}

check_net_reboot() {
	local c=net-reboot n sv l m1 v
	v=$(hk $c driver)
	[ -z "$v" ] || { echo "the test host's driver stopped: $v$(guest_hint $c)"; return; }
	[ "$(count $c out 'KVMINI-GUEST: init reached')" = 2 ] ||
		{ echo "the guest booted $(count $c out 'KVMINI-GUEST: init reached') time(s), expected 2"; return; }
	[ "$(grep -o 'KVMINI-GUEST: boot-id=.*' "$CASEDIR/$c.out" | sort -u | wc -l)" = 2 ] || { echo "two boots with one boot id"; return; }
	for n in 1 2; do
		l=$(gline $c "lease eth0 " $n)
		[ "$(wordof "$l" ip)" = 10.0.2.15 ] && [ "$(wordof "$l" router)" = 10.0.2.2 ] ||
			{ echo "boot $n: eth0's DHCP lease is '${l#KVMINI-GUEST: }'"; return; }
		l=$(gline $c "net eth1 operstate=" $n)
		[ "$(wordof "$l" addr)" = 192.168.77.20/24 ] || { echo "boot $n: eth1 is ${l#KVMINI-GUEST: }"; return; }
		sv=$(gline $c "serving " $n)
		check_fetch $c boot$n-fwd "$sv" || { echo "boot $n, through hostfwd: $(check_fetch $c boot$n-fwd "$sv")"; return; }
		check_fetch $c boot$n-lan "$sv" || { echo "boot $n, over the LAN: $(check_fetch $c boot$n-lan "$sv")"; return; }
		[ "$(hk $c boot$n-listener)" = "$(hk $c boot$n-kvmini-pid)/kvmini" ] ||
			{ echo "boot $n: port 8023 is held by '$(hk $c boot$n-listener)', expected kvmini pid $(hk $c boot$n-kvmini-pid)"; return; }
		[ "$(hk $c boot$n-tap)" = 1 ] && [ "$(hk $c boot$n-master)" = br0 ] ||
			{ echo "boot $n: kvtap3 exists: $(hk $c boot$n-tap), master: $(hk $c boot$n-master)"; return; }
	done
	[ "$(hk $c boot1-kvmini-pid)" = "$(hk $c boot2-kvmini-pid)" ] || { echo "the two boots ran in different kvmini processes"; return; }
	[ "$(hk $c boot1-ifindex)" = "$(hk $c boot2-ifindex)" ] || { echo "kvtap3 was made again for the second boot (ifindex $(hk $c boot1-ifindex), then $(hk $c boot2-ifindex))"; return; }
	[ "$(wordof "$(gline $c "net eth1 mac=" 1)" mac)" = "$(wordof "$(gline $c "net eth1 mac=" 2)" mac)" ] ||
		{ echo "eth1's MAC changed across the reboot"; return; }
	[ -n "$(gline $c next=reboot)" ] && [ -n "$(gline $c next=poweroff)" ] || { echo "the guest did not get both next steps"; return; }
	check_tap_gone $c || return
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
			elif [ "$(kv $c host share-rc)" != 1 ] || ! grep -q '^share-err: .*/dev/kvm is not KVM' "$CASEDIR/$c.host"; then
				why="kvmini on another overlay of the same base while the guest ran: status $(kv $c host share-rc), expected 1 (past its disks, at the /dev/kvm that no_kvm hid): $(grep '^share-err' "$CASEDIR/$c.host" | head -2 | tr '\n' ' ')"
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
	net-slirp)
		why=$(expect_boot "$c" net 1 1)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_net_slirp) ;;
	net-bridge)
		why=$(expect_boot "$c" net 1 1)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_net_bridge $c on) ;;
	net-bridge-offload-off)
		why=$(expect_boot "$c" net 1 1)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_net_bridge $c off) ;;
	net-two-guests)
		why=$(expect_boot "$c" net 1 1)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_net_two) ;;
	net-reboot)
		why=$(expect_boot "$c" net 2 2)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_net_reboot) ;;
	control)
		why=$(expect_boot "$c" control 2 2)
		[ -n "$why" ] || why=$(check_modules $c)
		[ -n "$why" ] || why=$(check_control) ;;
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
	# what the net cases measured, pass or fail
	case "$c" in
	net-slirp) info_net_slirp ;;
	net-bridge | net-bridge-offload-off) info_net_bridge "$c" ;;
	esac
	local rerun
	rerun=$(field "$c" rerun)
	[ -z "$rerun" ] || echo "NOTE $c ran twice: its first attempt ended in a known fault of the emulated test host ($rerun; first attempt in $CASEDIR/$c.first)"
}

echo "1..$(echo $CASES | wc -w)"
for c in $CASES; do check_case "$c"; done
echo "run-e2e: logs in $LOGS (per case: $CASEDIR/NAME.{case,out,err,dmesg}); total $(($(date +%s) - t0)) s" >&2
[ $KEEP = 1 ] || rm -rf "$IMAGES"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ $FAILED -eq 0 ] || exit 1
[ $PASSED -gt 0 ] || exit 77
exit 0
