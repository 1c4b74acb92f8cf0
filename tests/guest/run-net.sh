#!/bin/sh
# Runs the micro-guest's network tests (test_net.c) under kvmini or QEMU with
# the host side they need, and checks how they ended.
#
#   run-net.sh VMM GUEST --backend tap|user [--test NAME] [--append WORDS]
#              [--expect TEXT]... [--timeout SECS] [--keep-log FILE] [--broadcast]
#              [--net-opts K=V,...]   (kvmini only: more --net keys, e.g. iothread=main)
#              [--expect-vmm TEXT]   (TEXT must be in the VMM's stdout/stderr)
#              [--peer-guest]  (kvmini, tap only: the reflector is a second
#                               kvmini guest, test=net_reflect, on its own TAP
#                               on the same bridge; it must pass too)
#              [--reboots N]   (kvmini only: the guest resets itself after each
#                               pass, reboot=1; after N passes the script sends
#                               SIGTERM, and kvmini must exit 0 within 10 s,
#                               having reported N boot ends or more)
#
# VMM is the kvmini binary or the word "qemu" (qemu-system-x86_64 from $QEMU
# or PATH, on the same /dev/kvm). GUEST is microguest.elf.
#
# --backend user (default test net_slirp): a UDP echo server on 127.0.0.1
#   (a free port, net_reflector.py udp-echo) and the NIC on user networking
#   (kvmini --net user; QEMU -netdev user); the guest gets net_udp_port=PORT
#   and reaches the server as 10.0.2.2:PORT.
# --backend tap (default test net_echo; needs root and /dev/net/tun): a
#   bridge, a network namespace and a veth pair between them; in the
#   namespace net_reflector.py reflect sends every frame of EtherType 0x88b5
#   back. The NIC's TAP joins the bridge (kvmini --net tap=T,bridge=B creates
#   it; for QEMU this script creates it and QEMU attaches with -netdev
#   tap,ifname=T,script=no,downscript=no,vhost=off). The guest gets
#   net_peer=the namespace end's MAC (--broadcast: none, so the guest sends
#   to ff:ff:ff:ff:ff:ff and the reflector answers from its own MAC).
# The NIC's MAC is 52:54:00:12:34:56 on both VMMs (net_mac= checks the
# config); kvmini runs add net_nb1=1 (num_buffers must be 1 without
# MRG_RXBUF, 5.1.6.4), QEMU runs do not (QEMU leaves it untouched).
# Everything created (processes, namespace, bridge, TAP) goes on exit, also
# on failure or a signal. Names carry this script's PID, so runs in parallel
# do not meet.
#
# Passes when the VMM exits with guest status 0 (QEMU's isa-debug-exit
# turns it into 1), the console has "microguest: PASS" and every --expect
# text. Exits 77 (skipped) without /dev/kvm, QEMU, a kvmini with --net, or,
# for tap, root and /dev/net/tun.
set -u

die() { echo "run-net: $*" >&2; exit 1; }
skip() { echo "run-net: SKIP: $*"; exit 77; }
tag=run-net
# shellcheck source=tests/guest/run-lib.sh
. "$(dirname "$0")/run-lib.sh"

[ $# -ge 2 ] || die "usage: run-net.sh VMM GUEST --backend tap|user [options]"
vmm=$1 guest=$2
shift 2
backend='' test='' append='' timeout_s=60 expects='' keep_log='' broadcast=0 net_opts='' expect_vmm='' reboots=0 peer_guest=0
nl='
'
while [ $# -gt 0 ]; do
	case $1 in
	--backend) backend=$2; shift 2 ;;
	--test) test=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--expect) expects="$expects$2$nl"; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--keep-log) keep_log=$2; shift 2 ;;
	--broadcast) broadcast=1; shift ;;
	--net-opts) net_opts=,$2; shift 2 ;;
	--expect-vmm) expect_vmm=$2; shift 2 ;;
	--reboots) reboots=$2; shift 2 ;;
	--peer-guest) peer_guest=1; shift ;;
	*) die "unknown option $1" ;;
	esac
done
case $backend in
tap) test=${test:-net_echo} ;;
user) test=${test:-net_slirp} ;;
*) die "--backend tap or --backend user" ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
mac=52:54:00:12:34:56

[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
( exec 3<>/dev/kvm ) 2>/dev/null || skip "/dev/kvm cannot be opened read-write by $(id -un)"
[ -f "$guest" ] || die "guest $guest not found"
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
if [ "$vmm" = qemu ]; then
	[ "$reboots" -eq 0 ] || die "--reboots is for kvmini"
	[ "$peer_guest" -eq 0 ] || die "--peer-guest is for kvmini"
	qemu=${QEMU:-qemu-system-x86_64}
	command -v "$qemu" >/dev/null 2>&1 || skip "$qemu is not installed"
else
	[ -x "$vmm" ] || die "kvmini $vmm not found"
	[ "$reboots" -eq 0 ] || append="reboot=1${append:+ $append}"
	"$vmm" run --help 2>&1 | grep -q -- '--net' || skip "$vmm has no --net option yet"
fi
if [ "$backend" = tap ]; then
	[ "$(id -u)" -eq 0 ] || skip "the TAP test needs root (bridges, namespaces, TAP devices)"
	[ -c /dev/net/tun ] || skip "/dev/net/tun does not exist"
	command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/run-net.XXXXXX") || die "mktemp failed"
id=$$
ns=kvmini-net-$id br=kvb$id tap=kvt$id vhost=kvv$id vpeer=kvp$id tap2=kvu$id
helper_pid='' vmm_pid='' peer_pid=''
made_ns=0 made_br=0 made_tap=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -z "$peer_pid" ] || kill "$peer_pid" 2>/dev/null
	[ -z "$peer_pid" ] || wait "$peer_pid" 2>/dev/null
	[ -z "$vmm_pid" ] || kill "$vmm_pid" 2>/dev/null  # timeout passes it on to the VMM
	[ -z "$vmm_pid" ] || wait "$vmm_pid" 2>/dev/null
	[ -z "$helper_pid" ] || kill "$helper_pid" 2>/dev/null
	[ -z "$helper_pid" ] || wait "$helper_pid" 2>/dev/null
	if [ "$made_ns" -eq 1 ]; then
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	fi
	[ "$made_tap" -eq 0 ] || ip link del "$tap" 2>/dev/null
	[ "$made_br" -eq 0 ] || ip link del "$br" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to 5 s for FILE, written by a helper once it is ready.
wait_ready() {
	i=0
	while [ ! -s "$1" ]; do
		kill -0 "$helper_pid" 2>/dev/null || die "$2 exited early: $(cat "$dir/helper.err")"
		i=$((i + 1))
		[ $i -lt 100 ] || die "$2 not ready after 5 s"
		sleep 0.05
	done
}

# no_ipv6 IFACE [ip netns exec NS]: fewer stray frames (router
# solicitations, MLD reports) for the guest to skip.
no_ipv6() {
	iface=$1
	shift
	"$@" sysctl -qw "net.ipv6.conf.$iface.disable_ipv6=1" >/dev/null 2>&1 || :
}

words="test=$test net_mac=$mac"
if [ "$backend" = user ]; then
	python3 "$here/net_reflector.py" udp-echo --ready "$dir/port" 2>"$dir/helper.err" &
	helper_pid=$!
	wait_ready "$dir/port" "the UDP echo server"
	port=$(cat "$dir/port")
	words="$words net_udp_port=$port"
	echo "run-net: UDP echo server on 127.0.0.1:$port"
else
	ip link add "$br" type bridge || die "ip link add $br type bridge failed"
	made_br=1
	no_ipv6 "$br"
	ip link set "$br" up || die "cannot bring $br up"
fi
if [ "$backend" = tap ] && [ "$peer_guest" -eq 1 ]; then
	# The other end is a second kvmini guest on the same bridge.
	peer=52:54:00:12:34:57
	"$vmm" run --kernel "$guest" --debug-exit --console "file=$dir/peer.log" --memory 64M \
		--net "tap=$tap2,bridge=$br,mac=$peer$net_opts" --trace-exits \
		--cmdline "test=net_reflect net_mac=$peer net_nb1=1" >"$dir/peer.out" 2>&1 &
	peer_pid=$!
	i=0
	until grep -q 'net: reflecting' "$dir/peer.log" 2>/dev/null; do
		kill -0 "$peer_pid" 2>/dev/null || die "the reflecting guest exited early: $(cat "$dir/peer.out" "$dir/peer.log" 2>/dev/null | tail -n 5)"
		i=$((i + 1))
		[ $i -lt 200 ] || die "the reflecting guest is not ready after 10 s"
		sleep 0.05
	done
	words="$words net_peer=$peer net_done=1"
	echo "run-net: bridge $br, reflecting guest $peer on TAP $tap2, TAP $tap"
elif [ "$backend" = tap ]; then
	ip netns add "$ns" || die "ip netns add $ns failed"
	made_ns=1
	ip link add "$vhost" type veth peer name "$vpeer" || die "ip link add veth failed"
	ip link set "$vpeer" netns "$ns" || die "cannot move $vpeer into $ns"
	no_ipv6 "$vhost"
	ip link set "$vhost" master "$br" up || die "cannot put $vhost on $br"
	no_ipv6 all ip netns exec "$ns"
	no_ipv6 "$vpeer" ip netns exec "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "$vpeer" up || die "cannot bring $vpeer up in $ns"
	ip netns exec "$ns" python3 "$here/net_reflector.py" reflect "$vpeer" --ready "$dir/peer" \
		2>"$dir/helper.err" &
	helper_pid=$!
	wait_ready "$dir/peer" "the reflector"
	peer=$(cat "$dir/peer")
	[ "$broadcast" -eq 1 ] || words="$words net_peer=$peer"
	echo "run-net: bridge $br, reflector on $vpeer ($peer) in namespace $ns, TAP $tap"
	if [ "$vmm" = qemu ]; then
		ip tuntap add dev "$tap" mode tap || die "ip tuntap add $tap failed"
		made_tap=1
		no_ipv6 "$tap"
		ip link set "$tap" master "$br" up || die "cannot put $tap on $br"
	fi
fi
log=$dir/console.log
out=$dir/vmm.out

if [ "$vmm" = qemu ]; then
	bios=
	[ -f /usr/share/qemu/qboot.rom ] && bios="-bios /usr/share/qemu/qboot.rom"
	want=1
	if [ "$backend" = user ]; then
		netdev="user,id=n0"
	else
		netdev="tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off"
	fi
	# shellcheck disable=SC2086 # $bios is empty or two words
	set -- "$qemu" -accel kvm -cpu qemu64 -M pc $bios -m 256M -nodefaults -display none \
		-no-reboot -serial "file:$log" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-netdev "$netdev" -device "virtio-net-pci,netdev=n0,disable-legacy=on,mac=$mac" \
		-kernel "$guest" -append "$words${append:+ $append}"
else
	want=0
	if [ "$backend" = user ]; then
		net="user,mac=$mac"
	else
		net="tap=$tap,bridge=$br,mac=$mac"
	fi
	net=$net$net_opts
	set -- "$vmm" run --kernel "$guest" --debug-exit --console "file=$log" --memory 256M \
		--net "$net" --trace-exits --cmdline "$words net_nb1=1${append:+ $append}"
fi

show_cmd "$@"
start=$(date +%s.%N)
# In the background and waited for: a shell runs its traps only after the
# foreground command ends, so a signal would otherwise leave everything in
# place until the timeout.
timeout -k 5 "$timeout_s" "$@" >"$out" 2>&1 &
vmm_pid=$!
passes() { n=$(tr -d '\r' <"$log" 2>/dev/null | grep -c '^microguest: PASS$'); echo "${n:-0}"; }
termed=0
if [ "$reboots" -gt 0 ]; then
	while kill -0 "$vmm_pid" 2>/dev/null && [ "$(passes)" -lt "$reboots" ]; do
		sleep 0.1
	done
	# The last boot is resetting or the next one is starting: a stop must still work.
	if kill -0 "$vmm_pid" 2>/dev/null; then
		kill -TERM "$vmm_pid"
		termed=$(date +%s)
	fi
fi
wait "$vmm_pid"
rc=$?
stopped=$(date +%s)
vmm_pid=''
end=$(date +%s.%N)

judge_run "$rc" "$want" "$start" "$end"
check "microguest: PASS"
if [ "$reboots" -gt 0 ]; then
	if [ "$(passes)" -lt "$reboots" ]; then
		echo "run-net: FAIL: $(passes) of $reboots boots passed"
		ok=0
	elif [ "$termed" -eq 0 ]; then
		echo "run-net: FAIL: the VMM exited before the SIGTERM after $reboots boots"
		ok=0
	elif [ $((stopped - termed)) -gt 10 ]; then
		echo "run-net: FAIL: the VMM took $((stopped - termed)) s to exit after SIGTERM"
		ok=0
	fi
	# --trace-exits prints its table at the end of every boot
	ends=$(grep -c '^exits: ' "$out")
	if [ "$ends" -lt "$reboots" ]; then
		echo "run-net: FAIL: the VMM reported $ends boot ends, want $reboots or more"
		ok=0
	fi
fi
if [ -n "$expect_vmm" ] && ! tr -d '\r' <"$out" | grep -qF -- "$expect_vmm"; then
	echo "run-net: FAIL: the VMM's output lacks \"$expect_vmm\""
	ok=0
fi
[ -z "$expects" ] || check_all "$expects"
if [ -n "$peer_pid" ]; then
	# the done frame ends the reflecting guest
	i=0
	while kill -0 "$peer_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -0 "$peer_pid" 2>/dev/null && { echo "run-net: FAIL: the reflecting guest did not finish"; ok=0; kill "$peer_pid"; }
	wait "$peer_pid"
	prc=$?
	peer_pid=''
	echo "--- reflecting guest: console ---"
	tr -d '\r' <"$dir/peer.log"
	echo "--- reflecting guest: vmm output ---"
	cat "$dir/peer.out"
	echo "---"
	[ "$prc" -eq 0 ] || { echo "run-net: FAIL: the reflecting guest exited $prc"; ok=0; }
	tr -d '\r' <"$dir/peer.log" | grep -q '^microguest: net: reflected [1-9][0-9]* frames' ||
		{ echo "run-net: FAIL: the reflecting guest reflected nothing"; ok=0; }
fi
kill "$helper_pid" 2>/dev/null
wait "$helper_pid" 2>/dev/null
helper_pid=''
cat "$dir/helper.err" 2>/dev/null
[ $ok -eq 1 ] || exit 1
echo "run-net: PASS"
exit 0
