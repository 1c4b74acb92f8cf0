#!/bin/bash
# A host-only bridge with NAT to the outside, like libvirt's "default"
# network on virbr0: kvbr0 holds 10.77.0.1/24, dnsmasq gives guests DHCP
# leases and DNS on it, and the host masquerades their traffic out of
# whichever interface its routes pick. Guests reach the outside; the
# outside does not reach the guests.
#
#   examples/nat-host.sh [--dry-run] up|down|status
#
# Then: kvmini run ... --net tap=tap0,bridge=kvbr0
# Settings (environment): KVBR=kvbr0, KVNET=10.77.0.1/24 (the host's
# address on the bridge and the guests' subnet), KVDHCP=FIRST,LAST (the
# lease range; default: the rest of the subnet), NAT_BACKEND=auto|nft|
# iptables (auto: nft when installed), STATE_DIR=/run/kvmini-nat.
# --dry-run prints the commands and changes nothing.
set -euo pipefail

KVBR=${KVBR:-kvbr0}
KVNET=${KVNET:-10.77.0.1/24}
KVDHCP=${KVDHCP:-}
NAT_BACKEND=${NAT_BACKEND:-auto}
STATE_DIR=${STATE_DIR:-/run/kvmini-nat}
DRY=0
CMD=

usage() {
	echo "usage: $0 [--dry-run] up|down|status" >&2
	exit 2
}
die() {
	echo "nat-host: $*" >&2
	exit 1
}
run() {
	if [ "$DRY" = 1 ]; then
		echo "$*"
	else
		"$@"
	fi
}

while [ $# -gt 0 ]; do
	case "$1" in
	-n | --dry-run) DRY=1 ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	up | down | status) [ -z "$CMD" ] || usage; CMD=$1 ;;
	*) usage ;;
	esac
	shift
done
[ -n "$CMD" ] || usage
command -v ip >/dev/null || die "needs the ip command (iproute2)"
[ "$DRY" = 1 ] || [ "$CMD" = status ] || [ "$(id -u)" = 0 ] || die "needs root (or try --dry-run)"

ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int2ip() {
	echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"
}

[[ "$KVNET" =~ ^([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)/([0-9]+)$ ]] ||
	die "KVNET=$KVNET: expected ADDRESS/PREFIX, e.g. 10.77.0.1/24"
HOST=${BASH_REMATCH[1]}
PREFIX=${BASH_REMATCH[2]}
if [ "$PREFIX" -lt 8 ] || [ "$PREFIX" -gt 30 ]; then die "KVNET=$KVNET: prefix must be 8 to 30"; fi
mask=$(((0xffffffff << (32 - PREFIX)) & 0xffffffff))
host=$(ip2int "$HOST")
net=$((host & mask))
bcast=$((net | (~mask & 0xffffffff)))
if [ "$host" -eq "$net" ] || [ "$host" -eq "$bcast" ]; then die "KVNET=$KVNET: not a host address"; fi
SUBNET=$(int2ip $net)/$PREFIX
MASK=$(int2ip $mask)
if [ -n "$KVDHCP" ]; then
	DHCP_RANGE=$KVDHCP
elif [ $((host + 1)) -lt "$bcast" ]; then
	DHCP_RANGE=$(int2ip $((host + 1))),$(int2ip $((bcast - 1)))
else
	DHCP_RANGE=$(int2ip $((net + 1))),$(int2ip $((host - 1)))
fi
# nft identifiers and iptables chain names take letters, digits and '_'.
TAG=$(echo "$KVBR" | tr -c 'a-zA-Z0-9_\n' '_')
STATE=$STATE_DIR/$KVBR

nft_rules() {
	cat <<EOF
table ip kvmini_nat_$TAG {
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr $SUBNET ip daddr != $SUBNET ip daddr != { 224.0.0.0/24, 255.255.255.255 } masquerade
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "$KVBR" ip saddr != $SUBNET drop
		oifname "$KVBR" ct state established,related accept
		oifname "$KVBR" iifname != "$KVBR" drop
	}
}
EOF
}

iptables_up() {
	local nat=KVMINI_NAT_$TAG fwd=KVMINI_FWD_$TAG
	run iptables -w -t nat -N "$nat"
	run iptables -w -t nat -A "$nat" -d "$SUBNET" -j RETURN
	run iptables -w -t nat -A "$nat" -d 224.0.0.0/24 -j RETURN
	run iptables -w -t nat -A "$nat" -d 255.255.255.255/32 -j RETURN
	run iptables -w -t nat -A "$nat" -j MASQUERADE
	run iptables -w -t nat -I POSTROUTING 1 -s "$SUBNET" -j "$nat"
	run iptables -w -N "$fwd"
	run iptables -w -A "$fwd" -i "$KVBR" ! -s "$SUBNET" -j DROP
	run iptables -w -A "$fwd" -i "$KVBR" -j ACCEPT
	run iptables -w -A "$fwd" -o "$KVBR" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
	run iptables -w -A "$fwd" -o "$KVBR" -j DROP
	run iptables -w -I FORWARD 1 -j "$fwd"
}

iptables_down() {
	local nat=KVMINI_NAT_$TAG fwd=KVMINI_FWD_$TAG
	run iptables -w -t nat -D POSTROUTING -s "$1" -j "$nat" || true
	run iptables -w -t nat -F "$nat" || true
	run iptables -w -t nat -X "$nat" || true
	run iptables -w -D FORWARD -j "$fwd" || true
	run iptables -w -F "$fwd" || true
	run iptables -w -X "$fwd" || true
}

up() {
	command -v dnsmasq >/dev/null || die "needs dnsmasq (apt-get install dnsmasq-base)"
	local backend=$NAT_BACKEND
	if [ "$backend" = auto ]; then
		if command -v nft >/dev/null; then backend=nft; else backend=iptables; fi
	fi
	case "$backend" in
	nft | iptables) command -v "$backend" >/dev/null || die "needs $backend (apt-get install ${backend/nft/nftables})" ;;
	*) die "NAT_BACKEND=$backend: expected auto, nft or iptables" ;;
	esac
	! ip link show dev "$KVBR" >/dev/null 2>&1 || die "$KVBR exists already (nat-host.sh down first?)"

	local forward_was
	forward_was=$(cat /proc/sys/net/ipv4/ip_forward)
	run mkdir -p "$STATE_DIR"
	run ip link add name "$KVBR" type bridge stp_state 0 forward_delay 0
	run ip addr add "$HOST/$PREFIX" dev "$KVBR"
	run ip link set dev "$KVBR" up
	# The host routes between kvbr0 and its uplink; that is all NAT is.
	run sysctl -qw net.ipv4.ip_forward=1
	if [ "$backend" = nft ]; then
		if [ "$DRY" = 1 ]; then
			echo "nft -f - <<'EOF'"
			nft_rules
			echo "EOF"
		else
			nft_rules | nft -f -
		fi
	else
		iptables_up
	fi
	# As libvirt runs it: only on kvbr0's address, nothing read from
	# /etc/dnsmasq.conf, leases and pid in the state directory. DNS
	# queries go to the host's own resolvers (/etc/resolv.conf).
	run dnsmasq --conf-file=/dev/null --strict-order --bind-interfaces \
		--interface="$KVBR" --except-interface=lo --listen-address="$HOST" \
		--dhcp-range="$DHCP_RANGE,$MASK,12h" --dhcp-no-override --dhcp-authoritative \
		--dhcp-leasefile="$STATE.leases" --pid-file="$STATE.pid" \
		--log-facility="$STATE.log"
	if [ "$DRY" = 0 ]; then
		printf 'backend=%s\nforward_was=%s\nsubnet=%s\n' "$backend" "$forward_was" "$SUBNET" >"$STATE.conf"
		echo "nat-host: $KVBR up: $HOST/$PREFIX, DHCP $DHCP_RANGE, NAT with $backend"
		echo "nat-host: guests: kvmini run ... --net tap=tap0,bridge=$KVBR"
	fi
}

down() {
	local backend=nft forward_was=1 subnet=$SUBNET
	if [ -f "$STATE.conf" ]; then
		backend=$(sed -n 's/^backend=//p' "$STATE.conf")
		forward_was=$(sed -n 's/^forward_was=//p' "$STATE.conf")
		subnet=$(sed -n 's/^subnet=//p' "$STATE.conf")
	elif ! ip link show dev "$KVBR" >/dev/null 2>&1; then
		echo "nat-host: $KVBR is not up"
		return 0
	fi
	if [ -f "$STATE.pid" ]; then
		local pid
		pid=$(cat "$STATE.pid")
		run kill "$pid" 2>/dev/null || true
		if [ "$DRY" = 0 ]; then
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	if [ "$backend" = nft ]; then
		run nft delete table ip "kvmini_nat_$TAG" 2>/dev/null || true
	else
		iptables_down "$subnet" 2>/dev/null
	fi
	run ip link del dev "$KVBR" 2>/dev/null || true
	# Forwarding goes back off only if it was off and no other bridge of
	# ours needs it; Docker or a router set-up may have turned it on too.
	local others
	others=$(find "$STATE_DIR" -maxdepth 1 -name '*.conf' ! -name "$KVBR.conf" 2>/dev/null | head -1)
	if [ "$forward_was" = 0 ] && [ -z "$others" ]; then
		run sysctl -qw net.ipv4.ip_forward=0
	fi
	run rm -f "$STATE.conf" "$STATE.pid" "$STATE.leases" "$STATE.log"
	[ "$DRY" = 1 ] || echo "nat-host: $KVBR down"
}

status() {
	if ! ip link show dev "$KVBR" >/dev/null 2>&1; then
		echo "nat-host: $KVBR is not up"
		return 1
	fi
	ip -br addr show dev "$KVBR"
	echo "ports: $(ip -o link show master "$KVBR" | awk -F': ' '{print $2}' | sed 's/@.*//' | tr '\n' ' ')"
	echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward)"
	[ -f "$STATE.conf" ] && sed 's/^/state: /' "$STATE.conf"
	[ -f "$STATE.leases" ] && awk '{print "lease:", $3, $2, $4}' "$STATE.leases"
	return 0
}

"$CMD"
