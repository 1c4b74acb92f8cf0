#!/bin/bash
# The classic bridged host (libvirt's "host bridge", often br0): the uplink
# becomes a port of br0, br0 takes over the uplink's addresses and routes,
# and each guest's TAP joins br0, so guests sit on the LAN like any other
# machine and get their addresses from the LAN's DHCP server.
#
#   examples/bridge-host.sh [--dry-run] [--bridge BR] UPLINK          set up
#   examples/bridge-host.sh [--dry-run] [--bridge BR] --undo UPLINK   undo
#
# Then: kvmini run ... --net tap=tap0,bridge=br0
# --dry-run prints the commands and changes nothing. The set-up lasts until
# the next reboot; docs/networking.md ("Host set-ups") shows how to make it
# permanent, and why Wi-Fi cannot be the uplink.
set -euo pipefail

BR=br0
DRY=0
UNDO=0
UPLINK=

usage() {
	echo "usage: $0 [--dry-run] [--bridge BR] [--undo] UPLINK" >&2
	exit 2
}
die() {
	echo "bridge-host: $*" >&2
	exit 1
}
warn() { echo "bridge-host: warning: $*" >&2; }
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
	--undo) UNDO=1 ;;
	--bridge) [ $# -ge 2 ] || usage; BR=$2; shift ;;
	--bridge=*) BR=${1#*=} ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bridge-host: unknown option $1" >&2; usage ;;
	*) [ -z "$UPLINK" ] || usage; UPLINK=$1 ;;
	esac
	shift
done
[ -n "$UPLINK" ] || usage
command -v ip >/dev/null || die "needs the ip command (iproute2)"
[ "$DRY" = 1 ] || [ "$(id -u)" = 0 ] || die "needs root (or try --dry-run)"
ip link show dev "$UPLINK" >/dev/null 2>&1 || die "no interface called $UPLINK"

# The bridge UPLINK is a port of, or nothing.
master_of() {
	ip -o link show dev "$1" | sed -n 's/.* master \([^ ]*\) .*/\1/p'
}

# Addresses to move from $1: every global IPv4 one (a DHCP lease too, or
# the host is cut off until its DHCP client runs again), and the IPv6 ones
# set by hand; autoconfigured IPv6 addresses come back on their own.
addresses() {
	ip -o -4 addr show dev "$1" scope global | awk '{print "-4", $4}'
	ip -o -6 addr show dev "$1" scope global | grep -v -e ' dynamic' -e ' temporary' |
		awk '{print "-6", $4}' || true
}

# Routes through $1 that its addresses do not bring back by themselves
# (the default route above all), as "ip route" prints them, without the
# flags "ip route add" does not take.
routes() {
	local fam
	for fam in -4 -6; do
		ip "$fam" route show dev "$1" | grep -v -e 'proto kernel' -e 'proto ra' \
			-e '^fe80::' -e '^multicast' |
			sed -e 's/ linkdown//' -e 's/ dead//' -e 's/ pref medium//' \
				-e "s/^/$fam /" || true
	done
}

# Moves addresses and routes from interface $1 to interface $2.
move_config() {
	local from=$1 to=$2 fam addr route
	local addrs rts
	addrs=$(addresses "$from")
	rts=$(routes "$from")
	while read -r fam addr; do
		[ -n "$addr" ] || continue
		run ip "$fam" addr del "$addr" dev "$from"
		if [ "$fam" = -4 ]; then
			run ip -4 addr add "$addr" brd + dev "$to"
		else
			run ip -6 addr add "$addr" dev "$to"
		fi
	done <<<"$addrs"
	while read -r fam route; do
		[ -n "$route" ] || continue
		# shellcheck disable=SC2086 # a route is several words
		run ip "$fam" route replace $route dev "$to"
	done <<<"$rts"
}

# A dropped SSH session must not stop us half-way: between enslaving the
# uplink and moving its addresses the host is briefly off the network.
trap '' HUP

if [ "$UNDO" = 1 ]; then
	[ "$(master_of "$UPLINK")" = "$BR" ] || die "$UPLINK is not a port of $BR"
	others=$(ip -o link show master "$BR" | awk -F': ' '{print $2}' | sed 's/@.*//' |
		grep -vx "$UPLINK" || true)
	[ -z "$others" ] || warn "$BR still has ports besides $UPLINK (guests' TAPs?): $(tr '\n' ' ' <<<"$others")"
	run ip link set dev "$UPLINK" nomaster
	move_config "$BR" "$UPLINK"
	run ip link del dev "$BR"
	[ "$DRY" = 1 ] || echo "bridge-host: $BR removed; $UPLINK has its addresses and routes back"
	exit 0
fi

[ ! -e "/sys/class/net/$UPLINK/wireless" ] ||
	die "$UPLINK is Wi-Fi: an access point only takes frames from the MAC that joined it, so guests cannot be bridged onto it (use examples/nat-host.sh)"
master=$(master_of "$UPLINK")
if [ "$master" = "$BR" ]; then
	echo "bridge-host: $UPLINK is already a port of $BR"
	exit 0
fi
[ -z "$master" ] || die "$UPLINK is already a port of $master"
! ip link show dev "$BR" >/dev/null 2>&1 || die "$BR exists already (is it another set-up's?)"
ip -d link show dev "$UPLINK" | grep -q '^ *bridge ' && die "$UPLINK is a bridge itself"

# br0 takes the uplink's MAC: DHCP reservations and switch port security
# keep matching the host, and the bridge never changes its MAC when a
# guest's TAP joins or leaves.
mac=$(ip -o link show dev "$UPLINK" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$mac" ] || die "$UPLINK is not an Ethernet interface"
if ip -o -4 addr show dev "$UPLINK" scope global | grep -q ' dynamic'; then
	dhcp=1
else
	dhcp=0
fi

run ip link add name "$BR" address "$mac" type bridge stp_state 0 forward_delay 0
run ip link set dev "$UPLINK" master "$BR"
run ip link set dev "$BR" up
move_config "$UPLINK" "$BR"

[ "$DRY" = 1 ] && exit 0
echo "bridge-host: $BR holds $UPLINK's addresses and routes: $(ip -o -4 addr show dev "$BR" | awk '{print $4}' | tr '\n' ' ')"
echo "bridge-host: guests: kvmini run ... --net tap=tap0,bridge=$BR"
[ "$dhcp" = 0 ] ||
	warn "$UPLINK's address came from DHCP, and its DHCP client still watches $UPLINK: run it on $BR instead, or make the set-up permanent (docs/networking.md)"
if command -v nmcli >/dev/null && nmcli -t -f DEVICE,STATE device 2>/dev/null | grep -q "^$UPLINK:connected"; then
	warn "NetworkManager manages $UPLINK and may undo this: make the bridge in NetworkManager instead (docs/networking.md)"
fi
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ]; then
	warn "br_netfilter sends bridged frames through iptables' FORWARD chain: a DROP policy there (Docker sets one) cuts guests off (docs/networking.md)"
fi
