/* What one --net option asked for (parsed by net/net_config.c; nothing
 * here has touched the host yet). Grammar in docs/cli.md; QEMU's -netdev
 * user syntax for the slirp options.
 *
 * The default MAC is 46 random bits from getrandom() with the locally
 * administered bit set and the multicast bit clear, never starting with
 * 0xfe (that first byte is the host side of a TAP, net/tap.c). Not QEMU's
 * 52:54:00:12:34:56 (+ NIC index): that is the same on every VM, so two
 * VMs on one bridge would fight over one address. With 46 random bits, a
 * clash among n NICs on one LAN is about n^2 / 2^47 likely. The price: the
 * MAC changes with every start of kvmini, so a guest that must keep its
 * address (DHCP reservations, udev interface names) is given mac=. */
#ifndef KVMINI_NET_CONFIG_H
#define KVMINI_NET_CONFIG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_NICS   8
#define NET_MAX_HOSTFWD   16
#define NET_MAX_QUEUES    16    /* TAP queue pairs (IFF_MULTI_QUEUE) */
#define NET_RULE_MAX      96    /* longest hostfwd rule text kept for messages */

enum net_kind { NET_TAP, NET_USER };

/* hostfwd=tcp|udp:[HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT */
struct net_hostfwd {
	bool udp;
	struct in_addr host_addr;   /* INADDR_ANY when left out */
	uint16_t host_port;
	struct in_addr guest_addr;  /* the DHCP address (net's .15) when left out */
	uint16_t guest_port;
	char text[NET_RULE_MAX];    /* the rule as written, for error messages */
};

struct net_config {
	enum net_kind kind;
	uint8_t mac[6];             /* given with mac=, or generated (see mac_set) */
	bool mac_set;               /* mac= was given */
	/* TAP */
	char ifname[IFNAMSIZ];      /* tap=NAME */
	char bridge[IFNAMSIZ];      /* bridge=BR, empty: none */
	unsigned queues;            /* queues=N: queue pairs; 0 = 1 */
	bool main_loop;             /* iothread=main: served on the main loop, not a
				     * thread per queue pair (docs/networking.md) */
	/* user (libslirp); defaults as QEMU: 10.0.2.0/24, host .2, DNS .3,
	 * DHCP from .15. All in network byte order. */
	struct in_addr net, mask;
	struct in_addr host, dns, dhcp_start;
	bool restrict_;             /* restrict=on: no outside connections */
	bool ipv6;                  /* ipv6=on (the default) */
	unsigned nhostfwd;
	struct net_hostfwd hostfwd[NET_MAX_HOSTFWD];
};

/* Parses the text of one --net option into *c (all defaults filled in,
 * including a generated MAC unless mac= is given). Returns 0; -EINVAL
 * after printing one line "--net: ..." that names the bad part (a
 * malformed hostfwd rule, a bad CIDR, an unknown key, ...); or the -errno
 * of getrandom() when no MAC could be generated (not a usage error). */
int net_config_parse(struct net_config *c, const char *text);
/* The same without printing: on -EINVAL, why (NET_WHY_MAX bytes) says
 * what is wrong, for a caller that names the source itself (a definition
 * file's line). */
#define NET_WHY_MAX 512
int net_config_parse_why(struct net_config *c, const char *text, char *why);
/* The NIC as a definition file's [net] section body: "key = value" lines
 * in a fixed order, every default filled in; the mac line only when mac=
 * was given (a generated one changes at every start, docs/config.md).
 * Parsing it back gives the same config. */
void net_config_show(const struct net_config *c, FILE *f);

/* One hostfwd rule alone (also for the control socket later): syntax
 * only; whether guest_addr lies inside the guest's net is the caller's to
 * check. Returns 0, or -EINVAL after printing one line
 * "hostfwd rule 'RULE': why" (net_config_parse prefixes it with --net). */
int net_hostfwd_parse(struct net_hostfwd *f, const char *rule, struct in_addr guest_default);

/* Formats a MAC as aa:bb:cc:dd:ee:ff into buf (18 bytes). */
void net_mac_format(const uint8_t mac[6], char buf[18]);

#endif
