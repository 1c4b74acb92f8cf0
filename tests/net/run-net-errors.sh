#!/bin/bash
# kvmini run --net with bad input: each case must end with exit status 2 and
# one error line naming the culprit, before any guest runs.
#   run-net-errors.sh KVMINI GUEST
# Runs in a private network namespace (unshare -n) so the TAP and bridge
# cases cannot touch the host's links. Exits 77 (skipped) without root or
# /dev/kvm.
set -u
kvmini=$1 guest=$2
skip() { echo "run-net-errors: SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (TAP, bridges, network namespaces)"
[ -e /dev/kvm ] || skip "no /dev/kvm"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
if [ "${KVMINI_NETNS_INNER:-}" != 1 ]; then
	KVMINI_NETNS_INNER=1 exec unshare -n "$0" "$@"
fi
ip link set lo up

fails=0
# expect STATUS TEXT ARGS...: runs kvmini with ARGS, wants STATUS and TEXT in stderr.
expect() {
	local want=$1 text=$2
	shift 2
	local err
	err=$(timeout 20 "$kvmini" run --kernel "$guest" --debug-exit --console none \
		--cmdline test=basic "$@" 2>&1 >/dev/null)
	local rc=$?
	local lines
	lines=$(printf '%s\n' "$err" | grep -c .)
	if [ "$rc" -ne "$want" ] || ! printf '%s' "$err" | grep -qF -- "$text" || [ "$lines" -gt 1 ]; then
		echo "FAIL: $* -> exit $rc (want $want), stderr: $err"
		fails=$((fails + 1))
	else
		echo "ok: $* -> exit $rc: $err"
	fi
}

# A host port already taken (by a listener in this namespace).
python3 -c 'import socket,time,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 2222)); s.listen(); sys.stdout.write("up\n"); sys.stdout.flush(); time.sleep(60)' >/tmp/kvmini-neterr.$$ &
holder=$!
trap 'kill $holder 2>/dev/null; rm -f /tmp/kvmini-neterr.$$' EXIT
for _ in $(seq 50); do grep -q up /tmp/kvmini-neterr.$$ 2>/dev/null && break; sleep 0.1; done
expect 2 "tcp::2222-:22" --net user,hostfwd=tcp::2222-:22
expect 2 "tcp::99999-:22" --net user,hostfwd=tcp::99999-:22
expect 2 "hostfwd rule 'sctp::1-:2'" --net user,hostfwd=sctp::1-:2
expect 2 "net=10.0.2.0/33" --net user,net=10.0.2.0/33
expect 2 "bogus" --net user,bogus=1
expect 2 "mac=" --net user,mac=01:00:00:00:00:01
expect 2 "nosuchbr" --net tap=kvterr0,bridge=nosuchbr
ip link add kvterr-veth type veth peer name kvterr-peer
expect 2 "kvterr-veth" --net tap=kvterr-veth
# A TAP held by another kvmini.
"$kvmini" run --kernel "$guest" --console none --cmdline "test=console_flood lines=100000" \
	--net tap=kvterr1 >/dev/null 2>&1 &
first=$!
for _ in $(seq 50); do ip link show kvterr1 >/dev/null 2>&1 && break; sleep 0.1; done
expect 2 "in use" --net tap=kvterr1
kill $first; wait $first 2>/dev/null
# kvmini created kvterr1: it is gone after exit.
if ip link show kvterr1 >/dev/null 2>&1; then
	echo "FAIL: kvterr1 still exists after kvmini exited"
	fails=$((fails + 1))
fi
[ "$fails" -eq 0 ] && echo "run-net-errors: PASS" || { echo "run-net-errors: $fails failed"; exit 1; }
