/* --net option parsing (net/net_config.c): every path of the grammar, every
 * error (each must be one line naming the bad part), the defaults QEMU
 * users expect, and generated MACs. Errors are printed to stderr by the
 * code under test; the tests capture them. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net_config.h"

/* Runs net_config_parse with stderr captured into err. */
static int parse_captured(struct net_config *c, const char *text, char *err, size_t errsz)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	memset(c, 0xa5, sizeof(*c));   /* the parser must set every field */
	int rc = net_config_parse(c, text);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	size_t n = fread(err, 1, errsz - 1, tmp);
	err[n] = '\0';
	fclose(tmp);
	return rc;
}

static void ok(struct net_config *c, const char *text)
{
	char err[1024];
	int rc = parse_captured(c, text, err, sizeof(err));
	if (rc != 0)
		fail_msg("'%s' was refused (%d): %s", text, rc, err);
	if (err[0])
		fail_msg("'%s' printed '%s'", text, err);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* text must be refused with -EINVAL and exactly one line holding every
 * needle (NULL-terminated). */
static void refused(const char *text, ...)
{
	struct net_config c;
	char err[1024];
	int rc = parse_captured(&c, text, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("'%s' gave %d, expected -EINVAL (stderr '%s')", text, rc, err);
	if (count_lines(err) != 1)
		fail_msg("'%s': expected one line, got '%s'", text, err);
	if (!strstr(err, "kvmini: error: --net: "))
		fail_msg("'%s': '%s' does not start with the --net prefix", text, err);
	va_list ap;
	va_start(ap, text);
	for (const char *needle; (needle = va_arg(ap, const char *));)
		if (!strstr(err, needle))
			fail_msg("'%s': '%s' does not name '%s'", text, err, needle);
	va_end(ap);
}
#define REFUSED(...) refused(__VA_ARGS__, NULL)

static void assert_ip(struct in_addr a, const char *want)
{
	char s[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a, s, sizeof(s));
	if (strcmp(s, want))
		fail_msg("address %s, expected %s", s, want);
}

/* The addresses of a user network; NULL: not checked. */
struct user_addrs {
	const char *net, *mask, *host, *dns, *dhcp_start;
};

/* What text (already parsed into c) ended up with. */
static void assert_addrs(const struct net_config *c, const char *text, struct user_addrs want)
{
	const struct {
		const char *name;
		struct in_addr got;
		const char *want;
	} f[] = {
		{ "net", c->net, want.net },
		{ "mask", c->mask, want.mask },
		{ "host", c->host, want.host },
		{ "dns", c->dns, want.dns },
		{ "dhcpstart", c->dhcp_start, want.dhcp_start },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		char s[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &f[i].got, s, sizeof(s));
		if (f[i].want && strcmp(s, f[i].want))
			fail_msg("'%s': %s %s, expected %s", text, f[i].name, s, f[i].want);
	}
}

static void assert_generated_mac(const uint8_t mac[6])
{
	assert_int_equal(mac[0] & 0x02, 0x02);   /* locally administered */
	assert_int_equal(mac[0] & 0x01, 0);      /* unicast */
	assert_int_not_equal(mac[0], 0xfe);      /* the host side of a TAP */
}

/* ---- user ---------------------------------------------------------------- */

static void test_user_defaults(void **state)
{
	struct net_config c;
	ok(&c, "user");
	assert_int_equal(c.kind, NET_USER);
	assert_addrs(&c, "user", (struct user_addrs){ .net = "10.0.2.0", .mask = "255.255.255.0",
		     .host = "10.0.2.2", .dns = "10.0.2.3", .dhcp_start = "10.0.2.15" });
	assert_true(c.ipv6);
	assert_false(c.restrict_);
	assert_int_equal(c.nhostfwd, 0);
	assert_false(c.mac_set);
	assert_generated_mac(c.mac);
	assert_string_equal(c.ifname, "");
	assert_string_equal(c.bridge, "");
	assert_int_equal(c.queues, 0);
}

static void test_user_every_key(void **state)
{
	struct net_config c;
	const char *text = "user,net=10.0.3.0/24,host=10.0.3.1,dns=10.0.3.53,dhcpstart=10.0.3.100,"
			   "hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.3.50:53,"
			   "restrict=on,ipv6=off,mac=52:54:00:AB:cd:ef";
	ok(&c, text);
	assert_int_equal(c.kind, NET_USER);
	assert_addrs(&c, text, (struct user_addrs){ .net = "10.0.3.0", .mask = "255.255.255.0",
		     .host = "10.0.3.1", .dns = "10.0.3.53", .dhcp_start = "10.0.3.100" });
	assert_true(c.restrict_);
	assert_false(c.ipv6);
	assert_true(c.mac_set);
	const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	assert_memory_equal(c.mac, mac, 6);
	assert_int_equal(c.nhostfwd, 2);
	assert_false(c.hostfwd[0].udp);
	assert_ip(c.hostfwd[0].host_addr, "0.0.0.0");
	assert_int_equal(c.hostfwd[0].host_port, 2222);
	assert_ip(c.hostfwd[0].guest_addr, "10.0.3.100");   /* dhcpstart */
	assert_int_equal(c.hostfwd[0].guest_port, 22);
	assert_string_equal(c.hostfwd[0].text, "tcp::2222-:22");
	assert_true(c.hostfwd[1].udp);
	assert_ip(c.hostfwd[1].host_addr, "127.0.0.1");
	assert_int_equal(c.hostfwd[1].host_port, 5353);
	assert_ip(c.hostfwd[1].guest_addr, "10.0.3.50");
	assert_int_equal(c.hostfwd[1].guest_port, 53);

	ok(&c, "user,restrict=off,ipv6=on");
	assert_false(c.restrict_);
	assert_true(c.ipv6);
}

static void test_user_net_derivation(void **state)
{
	static const struct {
		const char *text;
		struct user_addrs want;
	} cases[] = {
		/* host, dns and dhcpstart follow net=. */
		{ "user,net=10.0.3.0/24",
		  { .host = "10.0.3.2", .dns = "10.0.3.3", .dhcp_start = "10.0.3.15" } },
		/* A dotted netmask, as QEMU takes it. */
		{ "user,net=10.0.3.0/255.255.255.0", { .net = "10.0.3.0", .mask = "255.255.255.0" } },
		/* Wider nets: QEMU's x.y.2.2, x.y.2.3, x.y.2.15. */
		{ "user,net=192.168.0.0/16",
		  { .mask = "255.255.0.0", .host = "192.168.2.2", .dns = "192.168.2.3",
		    .dhcp_start = "192.168.2.15" } },
		{ "user,net=172.16.0.0/255.240.0.0", { .mask = "255.240.0.0" } },
		{ "user,net=128.0.0.0/1,host=128.0.0.2", { .mask = "128.0.0.0" } },
		/* Host bits are dropped, as QEMU does. */
		{ "user,net=10.0.3.77/24", { .net = "10.0.3.0" } },
		/* No prefix: QEMU's classful guess. */
		{ "user,net=10.0.3.0", { .net = "10.0.0.0", .mask = "255.0.0.0", .host = "10.0.2.2" } },
		{ "user,net=172.20.0.0", { .mask = "255.240.0.0" } },
		{ "user,net=192.168.7.0", { .mask = "255.255.0.0" } },
		/* A /29 is the smallest with room for host, DNS and a guest or more. */
		{ "user,net=10.0.0.0/29,host=10.0.0.1,dns=10.0.0.2,dhcpstart=10.0.0.3",
		  { .dhcp_start = "10.0.0.3" } },
	};
	struct net_config c;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ok(&c, cases[i].text);
		assert_addrs(&c, cases[i].text, cases[i].want);
	}
	/* A hostfwd's guest address follows net= or dhcpstart= wherever it
	 * is written. */
	ok(&c, "user,hostfwd=tcp::8080-:80,net=10.9.9.0/24");
	assert_ip(c.hostfwd[0].guest_addr, "10.9.9.15");
	ok(&c, "user,hostfwd=tcp::8080-:80,dhcpstart=10.0.2.40");
	assert_ip(c.hostfwd[0].guest_addr, "10.0.2.40");
}

static void test_user_net_errors(void **state)
{
	REFUSED("user,net=10.0.2.0/31", "net=10.0.2.0/31", "prefix must be 1 to 30");
	REFUSED("user,net=10.0.2.0/32", "net=10.0.2.0/32", "prefix");
	REFUSED("user,net=10.0.2.0/0", "net=10.0.2.0/0", "prefix");
	REFUSED("user,net=10.0.2.0/33", "prefix");
	REFUSED("user,net=10.0.2.0/255.0.255.0", "net=10.0.2.0/255.0.255.0", "not contiguous");
	REFUSED("user,net=10.0.2.0/255.255.255.254", "netmask must be /1 to /30");
	REFUSED("user,net=10.0.2.0/24x", "net=10.0.2.0/24x", "after '/'");
	REFUSED("user,net=10.0.2.0/", "net=10.0.2.0/", "after '/'");
	REFUSED("user,net=10.0.2", "net=10.0.2", "not an IPv4 network");
	REFUSED("user,net=", "net=", "not an IPv4 network");
	REFUSED("user,net=010.0.2.0/24", "not an IPv4 network");
	REFUSED("user,net=127.0.0.0/8", "net=127.0.0.0/8", "loopback");
	REFUSED("user,net=224.0.0.0/24", "multicast");
	REFUSED("user,net=0.0.0.0/8", "not usable");
	REFUSED("user,net=10.0.2.0/24,net=10.0.3.0/24", "key 'net' given twice");
	/* A default that falls on the broadcast address names net= and the
	 * key that would fix it. */
	REFUSED("user,net=10.0.0.0/28", "net=10.0.0.0/28", "the default dhcpstart 10.0.0.15",
		"broadcast", "give dhcpstart=");
	REFUSED("user,net=10.0.0.0/30", "the default dns 10.0.0.3", "broadcast");

	REFUSED("user,host=10.0.3.2", "host=10.0.3.2", "not inside net 10.0.2.0/24");
	REFUSED("user,host=10.0.2.0", "host=10.0.2.0", "network address");
	REFUSED("user,dns=10.0.2.255", "dns=10.0.2.255", "broadcast address");
	REFUSED("user,dhcpstart=10.1.2.15", "dhcpstart=10.1.2.15", "not inside");
	REFUSED("user,net=10.0.3.0/24,host=10.0.2.2", "host=10.0.2.2", "not inside net 10.0.3.0/24");
	REFUSED("user,host=abc", "host=abc", "not an IPv4 address");
	REFUSED("user,dns=10.0.2.300", "dns=10.0.2.300", "not an IPv4 address");
	REFUSED("user,dhcpstart=", "dhcpstart=", "not an IPv4 address");
	REFUSED("user,dns=10.0.2.2", "dns=10.0.2.2", "same address as the default host 10.0.2.2");
	REFUSED("user,host=10.0.2.3", "the default dns 10.0.2.3", "same address as host=10.0.2.3");
	REFUSED("user,dhcpstart=10.0.2.2", "dhcpstart=10.0.2.2", "same address as");
	REFUSED("user,dns=10.0.2.9,dhcpstart=10.0.2.9", "dhcpstart=10.0.2.9", "dns=10.0.2.9");
	REFUSED("user,host=10.0.2.2,host=10.0.2.4", "key 'host' given twice");
}

/* ---- hostfwd ------------------------------------------------------------- */

static void test_hostfwd_grammar(void **state)
{
	struct net_config c;
	ok(&c, "user,hostfwd=::2222-:22");   /* no protocol: TCP, as QEMU */
	assert_false(c.hostfwd[0].udp);
	ok(&c, "user,hostfwd=tcp:0.0.0.0:1-10.0.2.15:65535,hostfwd=udp::65535-:1");
	assert_int_equal(c.hostfwd[0].host_port, 1);
	assert_int_equal(c.hostfwd[0].guest_port, 65535);
	assert_true(c.hostfwd[1].udp);
	assert_int_equal(c.hostfwd[1].host_port, 65535);
	assert_int_equal(c.hostfwd[1].guest_port, 1);
	/* The same port on TCP and UDP, or on two host addresses, is fine. */
	ok(&c, "user,hostfwd=tcp::2222-:22,hostfwd=udp::2222-:22,"
	       "hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.2:8080-:81");
	assert_int_equal(c.nhostfwd, 4);

	char text[2048] = "user";
	for (int i = 0; i < NET_MAX_HOSTFWD; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ",hostfwd=tcp::%d-:22",
			 1000 + i);
	ok(&c, text);
	assert_int_equal(c.nhostfwd, NET_MAX_HOSTFWD);
	assert_int_equal(c.hostfwd[NET_MAX_HOSTFWD - 1].host_port, 1000 + NET_MAX_HOSTFWD - 1);
	strcat(text, ",hostfwd=tcp::2000-:22");
	REFUSED(text, "hostfwd rule 'tcp::2000-:22'", "too many rules (at most 16)");
}

static void test_hostfwd_errors(void **state)
{
	REFUSED("user,hostfwd=tcp::99999-:22", "hostfwd rule 'tcp::99999-:22': bad host port");
	REFUSED("user,hostfwd=tcp::0-:22", "hostfwd rule 'tcp::0-:22': bad host port: 0 would");
	REFUSED("user,hostfwd=tcp::-:22", "hostfwd rule 'tcp::-:22': bad host port");
	REFUSED("user,hostfwd=tcp::0x16-:22", "'tcp::0x16-:22': bad host port");
	REFUSED("user,hostfwd=tcp::+22-:22", "bad host port");
	REFUSED("user,hostfwd=tcp::22-:0", "'tcp::22-:0': bad guest port");
	REFUSED("user,hostfwd=tcp::22-:65536", "'tcp::22-:65536': bad guest port");
	REFUSED("user,hostfwd=tcp::22-:", "'tcp::22-:': bad guest port");
	REFUSED("user,hostfwd=tcp::22-:22x", "bad guest port");
	REFUSED("user,hostfwd=sctp::22-:22", "'sctp::22-:22': bad protocol (tcp or udp)");
	REFUSED("user,hostfwd=TCP::22-:22", "bad protocol");
	REFUSED("user,hostfwd=tcp:1.2.3:22-:22", "'tcp:1.2.3:22-:22': bad host address");
	REFUSED("user,hostfwd=tcp:localhost:22-:22", "bad host address");
	REFUSED("user,hostfwd=tcp::22-1.2.3.4.5:22", "'tcp::22-1.2.3.4.5:22': bad guest address");
	REFUSED("user,hostfwd=tcp", "'tcp': expected tcp|udp:[HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT");
	REFUSED("user,hostfwd=tcp:22", "'tcp:22': expected tcp|udp:");
	REFUSED("user,hostfwd=", "hostfwd rule '': expected");
	REFUSED("user,hostfwd=tcp::22:22", "'tcp::22:22': missing '-'");
	REFUSED("user,hostfwd=tcp::22-22", "'tcp::22-22': missing ':' before the guest port");
	/* Guest addresses the guest cannot have. */
	REFUSED("user,hostfwd=tcp::22-10.0.3.5:22", "'tcp::22-10.0.3.5:22'",
		"guest address 10.0.3.5 is not inside net 10.0.2.0/24");
	REFUSED("user,hostfwd=tcp::22-10.0.2.255:22", "broadcast address");
	REFUSED("user,hostfwd=tcp::22-10.0.2.0:22", "network address");
	REFUSED("user,hostfwd=tcp::22-10.0.2.2:22", "guest address 10.0.2.2 is the host address");
	REFUSED("user,hostfwd=tcp::22-10.0.2.3:22", "is the dns address");
	REFUSED("user,net=10.5.0.0/24,hostfwd=tcp::22-10.0.2.15:22", "not inside net 10.5.0.0/24");
	/* Two rules on one host socket. */
	REFUSED("user,hostfwd=tcp::2222-:22,hostfwd=tcp::2222-:23",
		"hostfwd rule 'tcp::2222-:23': host port tcp/2222 is already forwarded by "
		"'tcp::2222-:22'");
	REFUSED("user,hostfwd=udp:127.0.0.1:53-:53,hostfwd=udp::53-:54", "udp/53 is already");
	REFUSED("user,hostfwd=tcp::80-:80,hostfwd=tcp:10.1.1.1:80-:81", "tcp/80 is already");
	/* A rule longer than any valid one. */
	char text[256];
	snprintf(text, sizeof(text), "user,hostfwd=tcp:%0100d", 1);
	REFUSED(text, "hostfwd rule 'tcp:000", "too long");
	/* hostfwd is for user only. */
	REFUSED("tap=tap0,hostfwd=tcp::22-:22", "key 'hostfwd' is for --net user, not tap");
}

static void test_hostfwd_parse_alone(void **state)
{
	struct net_hostfwd f;
	struct in_addr def = { .s_addr = htonl(0x0a00020f) };
	assert_int_equal(net_hostfwd_parse(&f, "udp:127.0.0.1:5000-:6000", def), 0);
	assert_true(f.udp);
	assert_ip(f.host_addr, "127.0.0.1");
	assert_int_equal(f.host_port, 5000);
	assert_ip(f.guest_addr, "10.0.2.15");
	assert_int_equal(f.guest_port, 6000);
	assert_string_equal(f.text, "udp:127.0.0.1:5000-:6000");
	/* Syntax only: the guest address is the caller's to check. */
	assert_int_equal(net_hostfwd_parse(&f, "tcp::1-192.0.2.1:2", def), 0);
	assert_ip(f.guest_addr, "192.0.2.1");

	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	int rc = net_hostfwd_parse(&f, "tcp::99999-:22", def);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	char err[512];
	err[fread(err, 1, sizeof(err) - 1, tmp)] = '\0';
	fclose(tmp);
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, "hostfwd rule 'tcp::99999-:22': bad host port"));
	assert_null(strstr(err, "--net"));
	assert_int_equal(count_lines(err), 1);
}

/* ---- tap ----------------------------------------------------------------- */

static void test_tap(void **state)
{
	struct net_config c;
	ok(&c, "tap=tap0");
	assert_int_equal(c.kind, NET_TAP);
	assert_string_equal(c.ifname, "tap0");
	assert_string_equal(c.bridge, "");
	assert_int_equal(c.queues, 0);
	assert_false(c.mac_set);
	assert_generated_mac(c.mac);
	assert_int_equal(c.nhostfwd, 0);

	ok(&c, "tap=vm1-eth0,bridge=br-lan,mac=02-00-00-00-00-01,queues=4");
	assert_string_equal(c.ifname, "vm1-eth0");
	assert_string_equal(c.bridge, "br-lan");
	assert_int_equal(c.queues, 4);
	assert_false(c.main_loop);
	struct net_config io;
	ok(&io, "tap=t0,iothread=main");
	assert_true(io.main_loop);
	ok(&io, "tap=t0,iothread=pair");
	assert_false(io.main_loop);
	assert_true(c.mac_set);
	const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	assert_memory_equal(c.mac, mac, 6);

	ok(&c, "tap=abcdefghijklmno,bridge=abcdefghijklmn0,queues=1");   /* 15 characters */
	assert_string_equal(c.ifname, "abcdefghijklmno");
	ok(&c, "tap=t,queues=16");
	assert_int_equal(c.queues, NET_MAX_QUEUES);
}

static void test_tap_errors(void **state)
{
	REFUSED("tap", "tap needs a name: tap=NAME");
	REFUSED("tap=", "tap name ''", "is empty");
	REFUSED("tap=abcdefghijklmnop", "tap name 'abcdefghijklmnop'", "longer than 15");
	REFUSED("tap=a/b", "tap name 'a/b'", "cannot have");
	REFUSED("tap=a:b", "tap name 'a:b'", "cannot have");
	REFUSED("tap=a b", "tap name 'a b'", "cannot have");
	REFUSED("tap=tap%d", "tap name 'tap%d'", "cannot have");
	REFUSED("tap=..", "tap name '..'", "not a valid interface name");
	REFUSED("tap=t0,bridge=abcdefghijklmnop", "bridge name 'abcdefghijklmnop'", "longer");
	REFUSED("tap=t0,bridge=", "bridge name ''", "is empty");
	REFUSED("tap=t0,bridge=t0", "bridge=t0", "its own bridge");
	REFUSED("tap=t0,bridge=a,bridge=b", "key 'bridge' given twice");
	REFUSED("tap=t0,queues=0", "queues=0: must be 1 to 16");
	REFUSED("tap=t0,queues=17", "queues=17: must be 1 to 16");
	REFUSED("tap=t0,iothread=disk", "iothread=disk: expected pair or main");
	REFUSED("user,iothread=main", "key 'iothread' is for --net tap");
	REFUSED("tap=t0,queues=-1", "queues=-1");
	REFUSED("tap=t0,queues=2x", "queues=2x");
	REFUSED("tap=t0,queues=", "queues=: must be");
	REFUSED("tap=t0,queues=99999999999999999999", "queues=9999");
	REFUSED("tap=t0,queues=2,queues=2", "key 'queues' given twice");
	REFUSED("tap=t0,net=10.0.2.0/24", "key 'net' is for --net user, not tap");
	REFUSED("user,bridge=br0", "key 'bridge' is for --net tap, not user");
	REFUSED("user,queues=2", "key 'queues' is for --net tap, not user");
	REFUSED("tap=t0,script=/etc/qemu-ifup", "key 'script' (a QEMU option) is not supported");
	REFUSED("tap=t0,bogus=1", "unknown key 'bogus'", "bridge, mac, queues");
	REFUSED("tap=t0,ifname=tap1", "key 'ifname' is QEMU's", "tap=NAME");
	REFUSED("tap=t0,br=br0", "key 'br' is QEMU's", "bridge=BR");
}

/* ---- keys, MACs ---------------------------------------------------------- */

static void test_key_errors(void **state)
{
	REFUSED("", "empty");
	REFUSED("bogus", "expected 'user' or 'tap=NAME' first, not 'bogus'");
	REFUSED("user=1", "expected 'user' or 'tap=NAME' first, not 'user=1'");
	REFUSED("mac=52:54:00:12:34:56,user", "first, not 'mac=52:54:00:12:34:56'");
	REFUSED("TAP=t0", "first, not 'TAP=t0'");
	REFUSED(",user", "empty item");
	REFUSED("user,", "empty item");
	REFUSED("user,,ipv6=on", "empty item");
	REFUSED("user,restrict", "'restrict' is not key=value");
	REFUSED("user,=on", "unknown key ''");
	REFUSED("user,foo=1", "unknown key 'foo'",
		"net, host, dns, dhcpstart, hostfwd, restrict, ipv6, mac");
	REFUSED("user,smb=/srv", "key 'smb' (a QEMU option) is not supported by kvmini");
	REFUSED("user,id=net0", "key 'id' (a QEMU option)");
	REFUSED("user,restrict=yes", "restrict=yes: expected on or off");
	REFUSED("user,ipv6=1", "ipv6=1: expected on or off");
	REFUSED("user,ipv6=", "ipv6=: expected on or off");
	REFUSED("user,ipv6=on,ipv6=off", "key 'ipv6' given twice");
	REFUSED("user,restrict=on,restrict=on", "key 'restrict' given twice");
	REFUSED("user,dns=10.0.2.3,dns=10.0.2.3", "key 'dns' given twice");
	REFUSED("user,dhcpstart=10.0.2.15,dhcpstart=10.0.2.16", "key 'dhcpstart' given twice");

	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "user,", 5);
	REFUSED(big, "longer than 4096 characters");

	struct net_config c;
	char err[256];
	assert_int_equal(parse_captured(&c, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(count_lines(err), 1);
}

static void test_mac(void **state)
{
	struct net_config c;
	ok(&c, "user,mac=52:54:00:12:34:56");
	const uint8_t want[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	assert_memory_equal(c.mac, want, 6);
	ok(&c, "user,mac=52-54-00-12-34-56");
	assert_memory_equal(c.mac, want, 6);
	ok(&c, "user,mac=FE:FF:FF:FF:FF:FF");   /* the user may pick anything unicast */
	assert_int_equal(c.mac[0], 0xfe);
	ok(&c, "tap=t0,mac=00:16:3e:00:00:01");  /* a globally administered one too */
	assert_int_equal(c.mac[2], 0x3e);

	const char *bad[] = { "52:54:00:12:34", "52:54:00:12:34:56:78", "5:54:00:12:34:56",
			      "52:54-00:12:34:56", "52.54.00.12.34.56", "zz:54:00:12:34:56",
			      "52:54:00:12:34:5g", "525400123456", "", "52:54:00:12:34:56 ",
			      " 52:54:00:12:34:5", "0x52:54:00:12:3:56" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "user,mac=%s", bad[i]);
		char name[64];
		snprintf(name, sizeof(name), "mac=%s: not a MAC address", bad[i]);
		REFUSED(text, name);
	}
	REFUSED("user,mac=01:00:5e:00:00:01", "mac=01:00:5e:00:00:01", "multicast");
	REFUSED("tap=t0,mac=ff:ff:ff:ff:ff:ff", "mac=ff:ff:ff:ff:ff:ff", "multicast");
	REFUSED("user,mac=33:33:00:00:00:01", "multicast");
	REFUSED("user,mac=00:00:00:00:00:00", "not a valid NIC address");
	REFUSED("user,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57", "key 'mac' given twice");
}

/* Generated MACs must differ between VMs, not only between the NICs of
 * one: each parse stands for a separate kvmini process. */
static void test_mac_random(void **state)
{
	enum { N = 256 };
	static uint8_t macs[N][6];
	struct net_config c;
	unsigned first_bytes = 0;
	for (int i = 0; i < N; i++) {
		ok(&c, i % 2 ? "user" : "tap=t0");
		assert_false(c.mac_set);
		assert_generated_mac(c.mac);
		memcpy(macs[i], c.mac, 6);
		for (int j = 0; j < i; j++)
			if (!memcmp(macs[i], macs[j], 6))
				fail_msg("parses %d and %d generated the same MAC", j, i);
		if (i && (macs[i][0] != macs[0][0] || macs[i][1] != macs[0][1] ||
			  macs[i][2] != macs[0][2]))
			first_bytes++;
	}
	/* Random from the first byte on: no fixed prefix like QEMU's 52:54:00. */
	assert_true(first_bytes > N / 2);
}

static void test_mac_format(void **state)
{
	char buf[18];
	const uint8_t m[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	net_mac_format(m, buf);
	assert_string_equal(buf, "52:54:00:ab:cd:ef");
	const uint8_t z[6] = { 0, 1, 2, 0xf0, 0x0f, 0xff };
	net_mac_format(z, buf);
	assert_string_equal(buf, "00:01:02:f0:0f:ff");

	/* A formatted MAC parses back to itself. */
	struct net_config c;
	char text[64];
	ok(&c, "tap=t0");
	net_mac_format(c.mac, buf);
	snprintf(text, sizeof(text), "user,mac=%s", buf);
	uint8_t gen[6];
	memcpy(gen, c.mac, 6);
	ok(&c, text);
	assert_memory_equal(c.mac, gen, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_defaults),
		cmocka_unit_test(test_user_every_key),
		cmocka_unit_test(test_user_net_derivation),
		cmocka_unit_test(test_user_net_errors),
		cmocka_unit_test(test_hostfwd_grammar),
		cmocka_unit_test(test_hostfwd_errors),
		cmocka_unit_test(test_hostfwd_parse_alone),
		cmocka_unit_test(test_tap),
		cmocka_unit_test(test_tap_errors),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_mac_random),
		cmocka_unit_test(test_mac_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
