#!/bin/bash
# Runs examples/bridge-host.sh and examples/nat-host.sh for real, each in
# network namespaces of its own that stand in for the machines involved,
# so the machine running the test keeps its uplink, routes and firewall:
#
#   bridge:  "lan" (10.55.0.1, the LAN's router) --veth-- "host" (uplink
#            up0, 10.55.0.10) --br0-- "guest" (10.55.0.20, a veth where a
#            guest's TAP would be)
#   nat:     "inet" (192.0.2.1, the outside) --veth-- "host" (wan0,
#            192.0.2.10, runs nat-host.sh up) --kvbr0-- "client" (a DHCP
#            client)
#
#   tests/net/run-examples.sh bridge|nat|nat-iptables
#
# Exit status 0: passed, 1: failed, 77: cannot run here (not root, no
# network namespaces, a tool missing), which meson counts as skipped.
set -euo pipefail

CASE=${1:-}
case "$CASE" in
bridge | nat | nat-iptables) ;;
*) echo "usage: $0 bridge|nat|nat-iptables" >&2; exit 2 ;;
esac
EXAMPLES=$(cd "$(dirname "$0")/../../examples" && pwd)

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	exit 1
}
pass() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, bridges, NAT rules)"
command -v ip >/dev/null || skip "no ip command (install iproute2)"

# Namespace names are global (/run/netns): the pid keeps two runs apart.
ID=$$
NS=()
cleanup() {
	local ns pid
	for ns in "${NS[@]}"; do
		# Only what this test started lives in its namespaces: dnsmasq,
		# the TCP server.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	[ -z "${TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
# mkns VAR ROLE: a namespace for ROLE, its name in VAR (not echoed: a
# command substitution's subshell would lose it from NS, and cleanup).
mkns() {
	local ns=kvt-$2-$ID
	ip netns add "$ns" 2>/dev/null || skip "cannot create network namespaces (ip netns add $ns failed)"
	NS+=("$ns")
	ip -n "$ns" link set lo up
	printf -v "$1" '%s' "$ns"
}
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}
TMP=$(mktemp -d)

# busybox gives ping and a DHCP client on a minimal Debian (busybox-static).
has_busybox() { command -v busybox >/dev/null && busybox --list 2>/dev/null | grep -qx "$1"; }
if command -v ping >/dev/null; then
	PING=(ping)
elif has_busybox ping; then
	PING=(busybox ping)
else
	skip "no ping (install busybox-static or iputils-ping)"
fi

ping_ok() {
	in_ns "$1" "${PING[@]}" -c 1 -W 2 "$2" >/dev/null 2>&1
}

test_bridge() {
	local lan host guest
	mkns lan lan
	mkns host host
	mkns guest guest
	# The host as an installer leaves it: an address and a default route
	# on its uplink (and a static IPv6 address).
	ip -n "$host" link add up0 type veth peer name lan0 netns "$lan"
	ip -n "$lan" addr add 10.55.0.1/24 dev lan0
	ip -n "$lan" link set lan0 up
	ip -n "$host" addr add 10.55.0.10/24 dev up0
	ip -n "$host" addr add 2001:db8:55::10/64 dev up0 nodad
	ip -n "$host" link set up0 up
	ip -n "$host" route add default via 10.55.0.1
	ping_ok "$host" 10.55.0.1 || fail "the test's LAN does not work before the set-up"
	local upmac
	upmac=$(ip -n "$host" -o link show up0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')

	# --dry-run prints the commands and changes nothing.
	local out
	out=$(in_ns "$host" "$EXAMPLES/bridge-host.sh" --dry-run up0)
	for want in "ip link add name br0 address $upmac type bridge" "ip link set dev up0 master br0" \
		"ip -4 addr del 10.55.0.10/24 dev up0" "ip -4 addr add 10.55.0.10/24 brd + dev br0" \
		"ip -6 addr add 2001:db8:55::10/64 dev br0" "ip -4 route replace default via 10.55.0.1 dev br0"; do
		grep -qF "$want" <<<"$out" || fail "--dry-run did not print '$want'; it printed: $out"
	done
	! ip -n "$host" link show br0 >/dev/null 2>&1 || fail "--dry-run made br0"
	ip -n "$host" -o -4 addr show dev up0 | grep -q 10.55.0.10/24 || fail "--dry-run moved the address"
	pass "bridge-host.sh --dry-run prints the set-up and changes nothing"

	in_ns "$host" "$EXAMPLES/bridge-host.sh" up0 >"$TMP/out" 2>&1 || {
		cat "$TMP/out"
		fail "bridge-host.sh up0 failed"
	}
	ip -n "$host" -o -4 addr show dev br0 | grep -q ' 10.55.0.10/24 ' || fail "br0 does not hold 10.55.0.10/24"
	ip -n "$host" -o -6 addr show dev br0 | grep -q ' 2001:db8:55::10/64 ' || fail "br0 does not hold the IPv6 address"
	[ -z "$(ip -n "$host" -o -4 addr show dev up0)" ] || fail "up0 kept its IPv4 address"
	ip -n "$host" -o link show up0 | grep -q ' master br0 ' || fail "up0 is not a port of br0"
	ip -n "$host" route show default | grep -q 'via 10.55.0.1 dev br0' || fail "the default route is not on br0: $(ip -n "$host" route)"
	ip -n "$host" -o link show br0 | grep -q "link/ether $upmac " || fail "br0 did not take up0's MAC"
	ping_ok "$host" 10.55.0.1 || fail "the host lost the LAN after the set-up"
	pass "bridge-host.sh up0: br0 holds the address and default route; the host still reaches the LAN"

	# A guest's port on br0 (a veth from a third namespace, where kvmini
	# would put the guest's TAP) is on the LAN itself: the LAN sees the
	# guest's own MAC, no NAT in between.
	ip -n "$host" link add gp0 type veth peer name eth0 netns "$guest"
	ip -n "$host" link set gp0 master br0 up
	ip -n "$guest" addr add 10.55.0.20/24 dev eth0
	ip -n "$guest" link set eth0 up
	local gmac
	gmac=$(ip -n "$guest" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	for _ in 1 2 3; do ping_ok "$guest" 10.55.0.1 && break; sleep 1; done
	ping_ok "$guest" 10.55.0.1 || fail "the guest behind br0 does not reach the LAN"
	ip -n "$lan" neigh show 10.55.0.20 | grep -q "lladdr $gmac" ||
		fail "the LAN does not see the guest's own MAC: $(ip -n "$lan" neigh)"
	pass "a port joined to br0 from another namespace reaches the LAN with its own MAC"

	out=$(in_ns "$host" "$EXAMPLES/bridge-host.sh" up0)
	grep -q "already a port of br0" <<<"$out" || fail "running it twice: $out"
	pass "running it again changes nothing"

	ip -n "$host" link del gp0
	in_ns "$host" "$EXAMPLES/bridge-host.sh" --undo up0 >"$TMP/out" 2>&1 || {
		cat "$TMP/out"
		fail "bridge-host.sh --undo up0 failed"
	}
	! ip -n "$host" link show br0 >/dev/null 2>&1 || fail "--undo left br0"
	ip -n "$host" -o -4 addr show dev up0 | grep -q ' 10.55.0.10/24 ' || fail "--undo did not give up0 its address back"
	ip -n "$host" route show default | grep -q 'via 10.55.0.1 dev up0' || fail "--undo did not give up0 the default route"
	ping_ok "$host" 10.55.0.1 || fail "the host lost the LAN after --undo"
	pass "bridge-host.sh --undo up0 gives everything back"

	# What the script must refuse.
	in_ns "$host" "$EXAMPLES/bridge-host.sh" nosuch0 >"$TMP/out" 2>&1 && fail "a missing uplink was accepted"
	grep -q "no interface called nosuch0" "$TMP/out" || fail "missing uplink: $(cat "$TMP/out")"
	in_ns "$host" "$EXAMPLES/bridge-host.sh" --undo up0 >"$TMP/out" 2>&1 && fail "--undo without a bridge was accepted"
	grep -q "up0 is not a port of br0" "$TMP/out" || fail "--undo without a bridge: $(cat "$TMP/out")"
	pass "bridge-host.sh refuses a missing uplink and an undo of nothing"
}

# A DHCP client in the client namespace: busybox udhcpc, with a script
# that applies the lease and records what it got.
write_udhcpc_script() {
	cat >"$TMP/udhcpc.sh" <<EOF
#!/bin/sh
case "\$1" in
bound|renew)
	ip addr flush dev "\$interface"
	ip addr add "\$ip/\${mask:-24}" dev "\$interface"
	for r in \$router; do ip route replace default via "\$r" dev "\$interface"; break; done
	echo "ip=\$ip router=\$router dns=\$dns" >"$TMP/lease"
	;;
esac
exit 0
EOF
	chmod +x "$TMP/udhcpc.sh"
}

test_nat() {
	local backend=$1
	command -v dnsmasq >/dev/null || skip "no dnsmasq (install dnsmasq-base)"
	if [ "$backend" = nft ]; then
		command -v nft >/dev/null || skip "no nft (install nftables)"
	else
		command -v iptables >/dev/null || skip "no iptables (install iptables)"
	fi
	command -v python3 >/dev/null || skip "no python3"
	has_busybox udhcpc || skip "no busybox udhcpc (install busybox-static)"

	local inet host client
	mkns inet inet
	mkns host nat
	mkns client client
	# The outside knows nothing of 10.77.0.0/24: only masquerading gets
	# the answers back.
	ip -n "$host" link add wan0 type veth peer name i0 netns "$inet"
	ip -n "$inet" addr add 192.0.2.1/24 dev i0
	ip -n "$inet" link set i0 up
	ip -n "$host" addr add 192.0.2.10/24 dev wan0
	ip -n "$host" link set wan0 up
	ip -n "$host" route add default via 192.0.2.1
	[ "$(in_ns "$host" cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || fail "a new namespace forwards already"

	local env=(env "STATE_DIR=$TMP/state" "NAT_BACKEND=$backend")
	local out
	out=$(in_ns "$host" "${env[@]}" "$EXAMPLES/nat-host.sh" --dry-run up)
	grep -q "dnsmasq .*--interface=kvbr0" <<<"$out" || fail "--dry-run did not print dnsmasq: $out"
	grep -q "ip addr add 10.77.0.1/24 dev kvbr0" <<<"$out" || fail "--dry-run: $out"
	if [ "$backend" = nft ]; then
		grep -q "masquerade" <<<"$out" || fail "--dry-run did not print the nft rules: $out"
	else
		grep -q "iptables -w -t nat -A KVMINI_NAT_kvbr0 -j MASQUERADE" <<<"$out" || fail "--dry-run: $out"
	fi
	! ip -n "$host" link show kvbr0 >/dev/null 2>&1 || fail "--dry-run made kvbr0"
	pass "nat-host.sh --dry-run up ($backend) prints the set-up and changes nothing"

	in_ns "$host" "${env[@]}" "$EXAMPLES/nat-host.sh" up >"$TMP/out" 2>&1 || {
		cat "$TMP/out"
		fail "nat-host.sh up failed"
	}
	ip -n "$host" -o -4 addr show dev kvbr0 | grep -q ' 10.77.0.1/24 ' || fail "kvbr0 does not hold 10.77.0.1/24"
	[ "$(in_ns "$host" cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || fail "IP forwarding is off"
	kill -0 "$(cat "$TMP/state/kvbr0.pid")" || fail "dnsmasq is not running"
	if [ "$backend" = nft ]; then
		in_ns "$host" nft list table ip kvmini_nat_kvbr0 | grep -q masquerade || fail "no nft masquerade rule"
	else
		in_ns "$host" iptables -w -t nat -S KVMINI_NAT_kvbr0 | grep -q MASQUERADE || fail "no iptables MASQUERADE rule"
	fi
	pass "nat-host.sh up ($backend): kvbr0, forwarding, NAT rules, dnsmasq"

	# A client on kvbr0 (a veth where a guest's TAP would be) asks for a
	# lease.
	ip -n "$host" link add cp0 type veth peer name eth0 netns "$client"
	ip -n "$host" link set cp0 master kvbr0 up
	ip -n "$client" link set eth0 up
	write_udhcpc_script
	in_ns "$client" busybox udhcpc -i eth0 -f -q -n -t 10 -T 1 -s "$TMP/udhcpc.sh" >"$TMP/udhcpc.out" 2>&1 || {
		cat "$TMP/udhcpc.out" "$TMP/state/kvbr0.log" 2>/dev/null
		fail "the client got no DHCP lease"
	}
	local ip router dns
	ip=$(sed -n 's/.*ip=\([^ ]*\).*/\1/p' "$TMP/lease")
	router=$(sed -n 's/.*router=\([^ ]*\).*/\1/p' "$TMP/lease")
	dns=$(sed -n 's/.*dns=\([^ ]*\).*/\1/p' "$TMP/lease")
	if ! [[ "$ip" =~ ^10\.77\.0\.([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 2 ] ||
		[ "${BASH_REMATCH[1]}" -gt 254 ]; then
		fail "the lease '$ip' is not in 10.77.0.2-254"
	fi
	[ "$router" = 10.77.0.1 ] || fail "the lease's router is '$router', not 10.77.0.1"
	[ "$dns" = 10.77.0.1 ] || fail "the lease's DNS server is '$dns', not 10.77.0.1"
	local cmac
	cmac=$(ip -n "$client" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	grep -q "$cmac $ip " "$TMP/state/kvbr0.leases" || fail "dnsmasq's lease file lacks $cmac $ip"
	pass "a client on kvbr0 gets lease $ip from dnsmasq (router and DNS 10.77.0.1)"

	# DNS from dnsmasq on 10.77.0.1: "localhost" comes from /etc/hosts, so
	# no upstream server is needed.
	in_ns "$client" python3 - <<'EOF' || fail "dnsmasq does not answer DNS on 10.77.0.1"
import socket, struct
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("10.77.0.1", 53))
r = s.recv(512)
ident, flags, qd, an = struct.unpack(">HHHH", r[:8])
assert ident == 0x1234 and flags & 0x8000 and flags & 0xf == 0 and an >= 1, (flags, an)
assert r[-4:] == bytes([127, 0, 0, 1]), r
EOF
	pass "dnsmasq answers DNS on 10.77.0.1"

	# Out through the masquerade: the outside sees the host's address.
	in_ns "$inet" python3 - "$TMP/peer" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.1", 8080))
s.listen(1)
s.settimeout(20)
c, peer = s.accept()
c.sendall(peer[0].encode())
open(sys.argv[1], "w").write(peer[0])
c.close()
EOF
	local server=$!
	local seen=
	for _ in $(seq 20); do
		seen=$(in_ns "$client" python3 -c '
import socket
s = socket.create_connection(("192.0.2.1", 8080), timeout=3)
print(s.recv(64).decode())' 2>/dev/null) && break
		sleep 0.25
	done
	wait "$server" || true
	[ -n "$seen" ] || fail "the client cannot open a TCP connection to the outside (192.0.2.1:8080)"
	[ "$seen" = 192.0.2.10 ] || fail "the outside saw $seen, not the host's 192.0.2.10: no masquerade"
	pass "the client reaches the outside over TCP, seen there as the host's 192.0.2.10"

	# The outside does not reach in: a connection to the client, even from
	# a neighbour that knows the route, is dropped by the forward rules.
	ip -n "$inet" route add 10.77.0.0/24 via 192.0.2.10
	in_ns "$client" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8081)); s.listen(1); s.settimeout(6); s.accept()' >/dev/null 2>&1 &
	local listener=$!
	sleep 0.5
	if in_ns "$inet" python3 -c "
import socket
socket.create_connection(('$ip', 8081), timeout=2)" 2>/dev/null; then
		fail "the outside opened a connection to the client behind the NAT"
	fi
	kill "$listener" 2>/dev/null || true
	wait "$listener" 2>/dev/null || true
	pass "the outside cannot open connections to the client"

	in_ns "$host" "${env[@]}" "$EXAMPLES/nat-host.sh" down >"$TMP/out" 2>&1 || {
		cat "$TMP/out"
		fail "nat-host.sh down failed"
	}
	! ip -n "$host" link show kvbr0 >/dev/null 2>&1 || fail "down left kvbr0"
	[ -z "$(ip netns pids "$host")" ] || fail "down left dnsmasq running"
	[ "$(in_ns "$host" cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || fail "down left forwarding on (it was off)"
	if [ "$backend" = nft ]; then
		! in_ns "$host" nft list table ip kvmini_nat_kvbr0 >/dev/null 2>&1 || fail "down left the nft table"
	else
		! in_ns "$host" iptables -w -t nat -S KVMINI_NAT_kvbr0 >/dev/null 2>&1 || fail "down left the iptables chain"
		in_ns "$host" iptables -w -S FORWARD | grep -q KVMINI && fail "down left the FORWARD jump"
	fi
	[ -z "$(ls -A "$TMP/state")" ] || fail "down left state files: $(ls "$TMP/state")"
	pass "nat-host.sh down removes bridge, dnsmasq, rules and forwarding"
}

case "$CASE" in
bridge) test_bridge ;;
nat) test_nat nft ;;
nat-iptables) test_nat iptables ;;
esac
echo "PASS: $CASE"
