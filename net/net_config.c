/* --net option parsing. The text is untrusted: every mistake becomes one
 * line naming the bad part. Nothing on the host is looked at here: whether
 * a TAP or bridge exists is net/tap.c's question when the VM starts, so
 * that parsing stays the same on every machine (and in the fuzzer). */
#include "net/net_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vmm/log.h"
#include "vmm/cli.h"

/* Long enough for every key with NET_MAX_HOSTFWD rules of the longest
 * form; a longer text is a mistake, not a configuration. */
#define NET_TEXT_MAX 4096

/* Mistakes are described into why (NET_WHY_MAX bytes) for the caller to
 * report with where the text came from (an option or a file line). */
static int bad(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(char *why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, NET_WHY_MAX, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void net_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

/* Strict dotted quad: inet_aton would also take "10.1", "0x0a000001" or
 * "012.0.0.1" (octal), none of which anyone means on a command line. */
static bool parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

static const char *ip_str(uint32_t host_order, char buf[INET_ADDRSTRLEN])
{
	struct in_addr a = { .s_addr = htonl(host_order) };
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static int prefix_len(uint32_t mask)
{
	return __builtin_popcount(mask);
}

/* A netmask is ones then zeros: its complement plus one is a power of two. */
static bool mask_contiguous(uint32_t mask)
{
	uint32_t inv = ~mask;
	return (inv & (inv + 1)) == 0;
}

/* QEMU's guess when net= has no prefix (net/slirp.c), kept so that a
 * QEMU command line means the same here. It is classful and surprising
 * (10.0.3.0 alone is a /8), which docs/cli.md says. */
static uint32_t classful_mask(uint32_t a)
{
	if (!(a & 0x80000000))
		return 0xff000000;
	if ((a & 0xfff00000) == 0xac100000)
		return 0xfff00000;
	if ((a & 0xc0000000) == 0x80000000)
		return 0xffff0000;
	if ((a & 0xffff0000) == 0xc0a80000)
		return 0xffff0000;
	if ((a & 0xffff0000) == 0xc6120000)
		return 0xfffe0000;
	if ((a & 0xe0000000) == 0xe0000000)
		return 0xffffff00;
	return 0xfffffff0;
}

/* net=ADDR[/PREFIX|/NETMASK]. Returns why it is bad, or NULL. Host bits in
 * ADDR are dropped, as QEMU does. */
static const char *parse_cidr(const char *val, uint32_t *net, uint32_t *mask)
{
	char buf[64];
	if (strlen(val) >= sizeof(buf))
		return "not an IPv4 network (e.g. net=10.0.3.0/24)";
	strcpy(buf, val);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	uint32_t a, m;
	unsigned long p;
	if (!parse_ip(buf, &a))
		return "not an IPv4 network (e.g. net=10.0.3.0/24)";
	if (!slash) {
		m = classful_mask(a);
	} else if (parse_decimal(slash, 99, &p)) {
		if (p < 1 || p > 30)
			return "prefix must be 1 to 30 (a /31 or /32 leaves no room for host, DNS and guest)";
		m = 0xffffffffu << (32 - p);
	} else if (parse_ip(slash, &m)) {
		if (!mask_contiguous(m))
			return "netmask is not contiguous ones then zeros (e.g. 255.255.255.0)";
		if (prefix_len(m) < 1 || prefix_len(m) > 30)
			return "netmask must be /1 to /30 (a /31 or /32 leaves no room for host, DNS and guest)";
	} else {
		return "expected a prefix length or a netmask after '/' (e.g. /24 or /255.255.255.0)";
	}
	a &= m;
	uint8_t first = a >> 24;
	if (first == 0 || first == 127 || first >= 224)
		return "not usable for a guest network (0/8, loopback 127/8, multicast and reserved 224/3)";
	*net = a;
	*mask = m;
	return NULL;
}

/* Returns why it is bad, or NULL: colons or hyphens, two hex digits each. */
static const char *parse_mac(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		goto syntax;
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			goto syntax;
		if (i < 5 && p[2] != ':' && p[2] != '-')
			goto syntax;
		if (i > 0 && p[-1] != s[2])
			goto syntax;
		char hex[3] = { p[0], p[1], 0 };
		mac[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	if (mac[0] & 1)
		return "a multicast address (lowest bit of the first byte set) cannot be a NIC's address";
	static const uint8_t zero[6];
	if (!memcmp(mac, zero, 6))
		return "00:00:00:00:00:00 is not a valid NIC address";
	return NULL;
syntax:
	return "not a MAC address (six hex pairs, e.g. 52:54:00:12:34:56)";
}

static int mac_random(uint8_t mac[6])
{
	for (;;) {
		ssize_t n = getrandom(mac, 6, 0);
		if (n == 6)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		int err = n < 0 ? errno : EIO;
		log_err("--net: cannot generate a MAC address: getrandom: %s", strerror(err));
		return -err;
	}
	/* Locally administered (bit 1), unicast (bit 0 clear); 0xfe is the
	 * host side of a TAP (net/tap.c) and must differ from the guest's. */
	mac[0] = (mac[0] & 0xfc) | 0x02;
	if (mac[0] == 0xfe)
		mac[0] = 0xf2;
	return 0;
}

/* Interface names as the kernel takes them (dev_valid_name): 1 to 15
 * bytes, not "." or "..", no '/', ':' or whitespace. '%' is refused too:
 * the kernel would fill in a number and we would not know the name. */
static const char *check_ifname(const char *name)
{
	if (!*name)
		return "is empty";
	if (strlen(name) >= IFNAMSIZ)
		return "is longer than 15 characters (IFNAMSIZ)";
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return "is not a valid interface name";
	for (const char *p = name; *p; p++) {
		if (*p == '/' || *p == ':' || *p == '%' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return "has a character an interface name cannot have ('/', ':', '%', space)";
	}
	return NULL;
}

static const char *port_why(const char *what, const char *s, bool host)
{
	static __thread char why[160];
	unsigned long v;
	if (!parse_decimal(s, 65535, &v) || (v == 0 && !host))
		snprintf(why, sizeof(why), "bad %s port (1 to 65535)", what);
	else if (v == 0)
		/* QEMU lets the host pick one; nothing in kvmini could tell you
		 * which. */
		snprintf(why, sizeof(why), "bad host port: 0 would forward from a port the host "
					   "picks and kvmini cannot tell you (give 1 to 65535)");
	else
		return NULL;
	return why;
}

/* Returns why the rule is bad, or NULL with *f filled. */
static const char *hostfwd_parse(struct net_hostfwd *f, const char *rule,
				 struct in_addr guest_default)
{
	static const char *const syntax =
		"expected tcp|udp:[HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT";
	memset(f, 0, sizeof(*f));
	if (strlen(rule) >= NET_RULE_MAX)
		return "too long";
	strcpy(f->text, rule);

	char buf[NET_RULE_MAX];
	strcpy(buf, rule);
	char *proto = buf;
	char *haddr = strchr(proto, ':');
	if (!haddr)
		return syntax;
	*haddr++ = '\0';
	char *hport = strchr(haddr, ':');
	if (!hport)
		return syntax;
	*hport++ = '\0';
	char *gaddr = strchr(hport, '-');
	if (!gaddr)
		return "missing '-' between the host and the guest side";
	*gaddr++ = '\0';
	char *gport = strchr(gaddr, ':');
	if (!gport)
		return "missing ':' before the guest port";
	*gport++ = '\0';

	/* An empty protocol is TCP, as in QEMU. */
	if (!strcmp(proto, "udp"))
		f->udp = true;
	else if (strcmp(proto, "tcp") && *proto)
		return "bad protocol (tcp or udp)";
	uint32_t a;
	if (*haddr) {
		if (!parse_ip(haddr, &a))
			return "bad host address (an IPv4 address, or nothing for all)";
		f->host_addr.s_addr = htonl(a);
	} else {
		f->host_addr.s_addr = htonl(INADDR_ANY);
	}
	const char *why = port_why("host", hport, true);
	if (why)
		return why;
	f->host_port = (uint16_t)strtoul(hport, NULL, 10);
	if (*gaddr) {
		if (!parse_ip(gaddr, &a))
			return "bad guest address (an IPv4 address, or nothing for the DHCP address)";
		f->guest_addr.s_addr = htonl(a);
	} else {
		f->guest_addr = guest_default;
	}
	why = port_why("guest", gport, false);
	if (why)
		return why;
	f->guest_port = (uint16_t)strtoul(gport, NULL, 10);
	return NULL;
}

int net_hostfwd_parse(struct net_hostfwd *f, const char *rule, struct in_addr guest_default)
{
	const char *why = hostfwd_parse(f, rule, guest_default);
	if (!why)
		return 0;
	log_err("hostfwd rule '%.*s': %s", NET_RULE_MAX - 1, rule, why);
	return -EINVAL;
}

/* The keys each kind takes; a key given twice is refused (but hostfwd). */
enum key {
	K_MAC, K_BRIDGE, K_QUEUES, K_IOTHREAD, K_NET, K_HOST, K_DNS, K_DHCPSTART, K_HOSTFWD, K_RESTRICT, K_IPV6,
	K_COUNT
};
static const struct {
	const char *name;
	bool tap, user;
} keys[K_COUNT] = {
	[K_MAC] = { "mac", true, true },
	[K_BRIDGE] = { "bridge", true, false },
	[K_QUEUES] = { "queues", true, false },
	[K_IOTHREAD] = { "iothread", true, false },
	[K_NET] = { "net", false, true },
	[K_HOST] = { "host", false, true },
	[K_DNS] = { "dns", false, true },
	[K_DHCPSTART] = { "dhcpstart", false, true },
	[K_HOSTFWD] = { "hostfwd", false, true },
	[K_RESTRICT] = { "restrict", false, true },
	[K_IPV6] = { "ipv6", false, true },
};

/* QEMU -netdev user/tap keys kvmini does not have: named as such, so that
 * someone bringing a QEMU command line learns it is not a typo. */
static bool is_qemu_key(const char *k)
{
	static const char *const qemu[] = {
		"id", "ipv4", "ipv6-net", "ipv6-prefix", "ipv6-prefixlen", "ipv6-host",
		"ipv6-dns", "hostname", "domainname", "dnssearch", "tftp", "tftp-server-name",
		"bootfile", "smb", "smbserver", "guestfwd", "ifname", "script", "downscript",
		"br", "helper", "vhost", "vhostfd", "vhostforce", "fd", "fds", "sndbuf",
		"vnet_hdr", "poll-us", "ip", "model",
	};
	for (size_t i = 0; i < sizeof(qemu) / sizeof(qemu[0]); i++)
		if (!strcmp(k, qemu[i]))
			return true;
	return false;
}

static int unknown_key(const char *k, enum net_kind kind, char *why)
{
	for (int i = 0; i < K_COUNT; i++)
		if (!strcmp(k, keys[i].name))
			return bad(why, "key '%s' is for --net %s, not %s", k, keys[i].tap ? "tap" : "user",
				   kind == NET_TAP ? "tap" : "user");
	if (!strcmp(k, "ifname"))
		return bad(why, "key 'ifname' is QEMU's: kvmini names the TAP first, tap=NAME");
	if (!strcmp(k, "br"))
		return bad(why, "key 'br' is QEMU's bridge helper: kvmini joins a bridge itself, bridge=BR");
	if (is_qemu_key(k))
		return bad(why, "key '%s' (a QEMU option) is not supported by kvmini", k);
	return bad(why, "unknown key '%s' (--net %s takes %s)", k, kind == NET_TAP ? "tap" : "user",
		   kind == NET_TAP ? "bridge, mac, queues, iothread"
				   : "net, host, dns, dhcpstart, hostfwd, restrict, ipv6, mac");
}

static int parse_onoff(const char *k, const char *v, bool *out, char *why)
{
	if (!strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "off"))
		*out = false;
	else
		return bad(why, "%s=%s: expected on or off", k, v);
	return 0;
}

/* Why a host=, dns= or dhcpstart= address cannot be: outside the guest's
 * net, or its network or broadcast address. NULL when fine. */
static const char *in_net_why(uint32_t a, uint32_t net, uint32_t mask)
{
	if ((a & mask) != net)
		return "not inside";
	if (a == net)
		return "the network address of";
	if (a == (net | ~mask))
		return "the broadcast address of";
	return NULL;
}

/* "dns=10.0.2.3" when the user wrote it, "the default dns 10.0.2.3" when
 * we derived it: the message must name what the user can change. */
static const char *addr_label(const char *k, bool given, uint32_t a, char buf[64])
{
	char s[INET_ADDRSTRLEN];
	snprintf(buf, 64, given ? "%s=%s" : "the default %s %s", k, ip_str(a, s));
	return buf;
}

/* Everything that depends on more than one key, once all are read: the
 * addresses (net= may come after host=) and the hostfwd rules, whose
 * guest address defaults to dhcp_start. */
static int finish_user(struct net_config *c, const char *vals[K_COUNT], char **rules,
		       unsigned nrules, char *why)
{
	uint32_t net = 0x0a000200, mask = 0xffffff00, host, dns, dhcp;
	if (vals[K_NET]) {
		const char *reason = parse_cidr(vals[K_NET], &net, &mask);
		if (reason)
			return bad(why, "net=%s: %s", vals[K_NET], reason);
	}
	/* QEMU's derivation: the .2, .3, .15 of a /24, and of a wider net
	 * x.y.2.2, x.y.2.3, x.y.2.15. */
	host = net | (0x0202 & ~mask);
	dns = net | (0x0203 & ~mask);
	dhcp = net | (0x020f & ~mask);
	const struct { enum key k; uint32_t *a; } addrs[] = {
		{ K_HOST, &host }, { K_DNS, &dns }, { K_DHCPSTART, &dhcp },
	};
	for (size_t i = 0; i < 3; i++) {
		const char *v = vals[addrs[i].k];
		if (v && !parse_ip(v, addrs[i].a))
			return bad(why, "%s=%s: not an IPv4 address", keys[addrs[i].k].name, v);
	}
	char l1[64], l2[64], ns[INET_ADDRSTRLEN], gs[INET_ADDRSTRLEN];
	ip_str(net, ns);
	for (size_t i = 0; i < 3; i++) {
		enum key k = addrs[i].k;
		const char *reason = in_net_why(*addrs[i].a, net, mask);
		if (reason && vals[k])
			return bad(why, "%s: %s net %s/%d", addr_label(keys[k].name, true, *addrs[i].a, l1),
				   reason, ns, prefix_len(mask));
		if (reason)
			return bad(why, "net=%s: %s would be %s the net (give %s= or a wider net)",
				   vals[K_NET], addr_label(keys[k].name, false, *addrs[i].a, l1), reason,
				   keys[k].name);
	}
	if (dns == host)
		return bad(why, "%s is the same address as %s",
			   addr_label("dns", vals[K_DNS], dns, l1),
			   addr_label("host", vals[K_HOST], host, l2));
	if (dhcp == host || dhcp == dns)
		return bad(why, "%s is the same address as %s",
			   addr_label("dhcpstart", vals[K_DHCPSTART], dhcp, l1),
			   dhcp == host ? addr_label("host", vals[K_HOST], host, l2)
					: addr_label("dns", vals[K_DNS], dns, l2));

	c->net.s_addr = htonl(net);
	c->mask.s_addr = htonl(mask);
	c->host.s_addr = htonl(host);
	c->dns.s_addr = htonl(dns);
	c->dhcp_start.s_addr = htonl(dhcp);

	for (unsigned i = 0; i < nrules; i++) {
		struct net_hostfwd *f = &c->hostfwd[i];
		const char *err = hostfwd_parse(f, rules[i], c->dhcp_start);
		if (err)
			return bad(why, "hostfwd rule '%.*s': %s", NET_RULE_MAX - 1, rules[i], err);
		uint32_t g = ntohl(f->guest_addr.s_addr);
		const char *reason = in_net_why(g, net, mask);
		if (reason)
			return bad(why, "hostfwd rule '%s': guest address %s is %s net %s/%d", f->text,
				   ip_str(g, gs), reason, ns, prefix_len(mask));
		if (g == host || g == dns)
			return bad(why, "hostfwd rule '%s': guest address %s is the %s address, not a "
				   "guest's", f->text, ip_str(g, gs), g == host ? "host" : "dns");
		/* Two rules binding the same host socket: the second would fail
		 * to bind when the VM starts. */
		for (unsigned j = 0; j < i; j++) {
			const struct net_hostfwd *o = &c->hostfwd[j];
			if (o->udp == f->udp && o->host_port == f->host_port &&
			    (o->host_addr.s_addr == f->host_addr.s_addr ||
			     o->host_addr.s_addr == htonl(INADDR_ANY) ||
			     f->host_addr.s_addr == htonl(INADDR_ANY)))
				return bad(why, "hostfwd rule '%s': host port %s/%u is already forwarded "
					   "by '%s'", f->text, f->udp ? "udp" : "tcp", f->host_port,
					   o->text);
		}
	}
	c->nhostfwd = nrules;
	return 0;
}

static int finish_tap(struct net_config *c, const char *vals[K_COUNT], char *why)
{
	if (vals[K_BRIDGE]) {
		const char *reason = check_ifname(vals[K_BRIDGE]);
		if (reason)
			return bad(why, "bridge name '%s' %s", vals[K_BRIDGE], reason);
		if (!strcmp(vals[K_BRIDGE], c->ifname))
			return bad(why, "bridge=%s: the TAP cannot be its own bridge", vals[K_BRIDGE]);
		strcpy(c->bridge, vals[K_BRIDGE]);
	}
	if (vals[K_QUEUES]) {
		unsigned long q;
		if (!parse_decimal(vals[K_QUEUES], NET_MAX_QUEUES, &q) || q < 1)
			return bad(why, "queues=%s: must be 1 to %d", vals[K_QUEUES], NET_MAX_QUEUES);
		c->queues = (unsigned)q;
	}
	if (vals[K_IOTHREAD]) {
		if (!strcmp(vals[K_IOTHREAD], "main"))
			c->main_loop = true;
		else if (strcmp(vals[K_IOTHREAD], "pair"))
			return bad(why, "iothread=%s: expected pair or main", vals[K_IOTHREAD]);
	}
	return 0;
}

static int parse_items(struct net_config *c, char *copy, char *why)
{
	const char *vals[K_COUNT] = { 0 };
	char *rules[NET_MAX_HOSTFWD];
	unsigned nrules = 0;

	char *item = copy, *next;
	for (unsigned n = 0; item; n++, item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (!*item)
			return bad(why, "empty item (two commas, or a comma at the start or end)");
		char *v = strchr(item, '=');
		if (n == 0) {
			/* The first item says which backend. */
			if (!strcmp(item, "user")) {
				c->kind = NET_USER;
				continue;
			}
			if (v && v - item == 3 && !strncmp(item, "tap", 3)) {
				const char *reason = check_ifname(v + 1);
				if (reason)
					return bad(why, "tap name '%s' %s", v + 1, reason);
				c->kind = NET_TAP;
				strcpy(c->ifname, v + 1);
				continue;
			}
			if (!strcmp(item, "tap"))
				return bad(why, "tap needs a name: tap=NAME (e.g. tap=tap0)");
			return bad(why, "expected 'user' or 'tap=NAME' first, not '%s'", item);
		}
		if (!v)
			return bad(why, "'%s' is not key=value", item);
		*v++ = '\0';
		int k;
		for (k = 0; k < K_COUNT; k++)
			if (!strcmp(item, keys[k].name))
				break;
		if (k == K_COUNT || !(c->kind == NET_TAP ? keys[k].tap : keys[k].user))
			return unknown_key(item, c->kind, why);
		if (k == K_HOSTFWD) {
			if (nrules == NET_MAX_HOSTFWD)
				return bad(why, "hostfwd rule '%s': too many rules (at most %d)", v,
					   NET_MAX_HOSTFWD);
			rules[nrules++] = v;
			continue;
		}
		if (vals[k])
			return bad(why, "key '%s' given twice", item);
		vals[k] = v;
		int r = 0;
		const char *reason;
		switch (k) {
		case K_MAC:
			if ((reason = parse_mac(v, c->mac)))
				return bad(why, "mac=%s: %s", v, reason);
			c->mac_set = true;
			break;
		case K_RESTRICT: r = parse_onoff(item, v, &c->restrict_, why); break;
		case K_IPV6: r = parse_onoff(item, v, &c->ipv6, why); break;
		default: break;   /* checked in finish_*, once every key is known */
		}
		if (r)
			return r;
	}
	int r = c->kind == NET_TAP ? finish_tap(c, vals, why)
				    : finish_user(c, vals, rules, nrules, why);
	if (r)
		return r;
	return c->mac_set ? 0 : mac_random(c->mac);
}

int net_config_parse_why(struct net_config *c, const char *text, char *why)
{
	memset(c, 0, sizeof(*c));
	c->ipv6 = true;
	if (!text || !*text)
		return bad(why, "empty (expected user[,...] or tap=NAME[,...])");
	if (strlen(text) > NET_TEXT_MAX)
		return bad(why, "longer than %d characters", NET_TEXT_MAX);
	char *copy = strdup(text);
	if (!copy) {
		log_err("--net: out of memory");
		return -ENOMEM;
	}
	int r = parse_items(c, copy, why);
	free(copy);
	return r;
}

int net_config_parse(struct net_config *c, const char *text)
{
	char why[NET_WHY_MAX];
	int r = net_config_parse_why(c, text, why);
	if (r == -EINVAL)
		log_err("--net: %s", why);
	return r;
}

static void show_hostfwd(const struct net_hostfwd *h, FILE *f)
{
	char ha[INET_ADDRSTRLEN] = "", ga[INET_ADDRSTRLEN];
	if (h->host_addr.s_addr != htonl(INADDR_ANY))
		inet_ntop(AF_INET, &h->host_addr, ha, sizeof(ha));
	inet_ntop(AF_INET, &h->guest_addr, ga, sizeof(ga));
	fprintf(f, "hostfwd = %s:%s:%u-%s:%u\n", h->udp ? "udp" : "tcp", ha, h->host_port, ga,
		h->guest_port);
}

void net_config_show(const struct net_config *c, FILE *f)
{
	char a[INET_ADDRSTRLEN], m[18];
	if (c->kind == NET_TAP) {
		fprintf(f, "tap = %s\n", c->ifname);
		if (c->bridge[0])
			fprintf(f, "bridge = %s\n", c->bridge);
		fprintf(f, "queues = %u\n", c->queues ? c->queues : 1);
		fprintf(f, "iothread = %s\n", c->main_loop ? "main" : "pair");
	} else {
		fputs("user = on\n", f);
		fprintf(f, "net = %s/%d\n", ip_str(ntohl(c->net.s_addr), a),
			prefix_len(ntohl(c->mask.s_addr)));
		fprintf(f, "host = %s\n", ip_str(ntohl(c->host.s_addr), a));
		fprintf(f, "dns = %s\n", ip_str(ntohl(c->dns.s_addr), a));
		fprintf(f, "dhcpstart = %s\n", ip_str(ntohl(c->dhcp_start.s_addr), a));
		fprintf(f, "restrict = %s\n", c->restrict_ ? "on" : "off");
		fprintf(f, "ipv6 = %s\n", c->ipv6 ? "on" : "off");
		for (unsigned i = 0; i < c->nhostfwd; i++)
			show_hostfwd(&c->hostfwd[i], f);
	}
	if (c->mac_set) {
		net_mac_format(c->mac, m);
		fprintf(f, "mac = %s\n", m);
	}
}
