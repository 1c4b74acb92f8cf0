/* The TAP backend (net/tap.c) against the real kernel, inside a network
 * namespace of this test process's own, so that nothing on the machine
 * changes: creating, attaching, in use, bridges, multi-queue, errors, and
 * frames both ways through the 12-byte virtio-net header. Needs
 * CAP_NET_ADMIN and CAP_SYS_ADMIN (root, as in CI); without them, or
 * without /dev/net/tun or iproute2, every test says why and is skipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "net/tap.h"

static char skip_why[256];

#define NEED_NETNS()                                                          \
	do {                                                                  \
		if (skip_why[0]) {                                            \
			fprintf(stderr, "# skipped: %s\n", skip_why);         \
			skip();                                               \
		}                                                             \
	} while (0)

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define SH(...) do { if (sh(__VA_ARGS__)) fail_msg("command failed: " __VA_ARGS__); } while (0)

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int group_setup(void **state)
{
	if (access("/dev/net/tun", R_OK | W_OK)) {
		snprintf(skip_why, sizeof(skip_why), "no usable /dev/net/tun: %s", strerror(errno));
		return 0;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWNS)) {
		snprintf(skip_why, sizeof(skip_why),
			 "cannot make a private network namespace (unshare: %s; needs root)",
			 strerror(errno));
		return 0;
	}
	/* sysfs shows the namespace it was mounted in: mount a fresh one in
	 * a private mount tree, so /sys/class/net is this namespace's. */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) ||
	    (umount2("/sys", MNT_DETACH) && errno != EINVAL) ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL)) {
		snprintf(skip_why, sizeof(skip_why), "cannot mount sysfs for the namespace: %s",
			 strerror(errno));
		return 0;
	}
	if (sh("ip -V >/dev/null 2>&1")) {
		snprintf(skip_why, sizeof(skip_why), "no ip command (install iproute2)");
		return 0;
	}
	/* No IPv6 router solicitations or MLD reports among the frames. */
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* Parses text and opens it with stderr captured into err. */
static int open_tap(struct net_backend **be, const char *text, char *err, size_t errsz)
{
	struct net_config cfg;
	assert_int_equal(net_config_parse(&cfg, text), 0);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	int rc = tap_backend_open(be, &cfg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	err[fread(err, 1, errsz - 1, tmp)] = '\0';
	fclose(tmp);
	return rc;
}

static struct net_backend *open_ok(const char *text)
{
	struct net_backend *be = NULL;
	char err[1024];
	int rc = open_tap(&be, text, err, sizeof(err));
	if (rc)
		fail_msg("'%s': %d, %s", text, rc, err);
	assert_non_null(be);
	return be;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* text must fail with rc, as a usage error, in one line holding needle. */
static void open_fails(const char *text, int rc, const char *needle)
{
	struct net_backend *be = (struct net_backend *)1;
	char err[1024];
	int got = open_tap(&be, text, err, sizeof(err));
	if (got != rc)
		fail_msg("'%s': %d (%s), expected %d; stderr '%s'", text, got, strerror(-got), rc,
			 err);
	assert_null(be);
	if (count_lines(err) != 1 || !strstr(err, needle))
		fail_msg("'%s': stderr '%s' is not one line naming '%s'", text, err, needle);
}

static bool link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

static int ifreq_ioctl(const char *name, unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
	int r = ioctl(s, req, ifr);
	close(s);
	return r;
}

static bool link_up(const char *name)
{
	struct ifreq ifr;
	assert_int_equal(ifreq_ioctl(name, SIOCGIFFLAGS, &ifr), 0);
	return ifr.ifr_flags & IFF_UP;
}

static void link_mac(const char *name, uint8_t mac[6])
{
	struct ifreq ifr;
	assert_int_equal(ifreq_ioctl(name, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
}

/* The bridge /sys/class/net/NAME/master points at, "" for none. */
static const char *master_of(const char *name)
{
	static char target[PATH_MAX];
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/master", name);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return "";
	target[n] = '\0';
	const char *slash = strrchr(target, '/');
	return slash ? slash + 1 : target;
}

static uint32_t ethtool_value(const char *name, uint32_t cmd)
{
	struct ifreq ifr;
	struct ethtool_value ev = { .cmd = cmd };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_data = (void *)&ev;
	assert_int_equal(ioctl(s, SIOCETHTOOL, &ifr), 0);
	close(s);
	return ev.data;
}

/* ---- open and close ------------------------------------------------------ */

static void test_create(void **state)
{
	NEED_NETNS();
	assert_false(link_exists("kt0"));
	struct net_backend *be = open_ok("tap=kt0,mac=02:11:22:33:44:55");
	assert_string_equal(be->kind, "tap");
	assert_string_equal(be->name, "kt0");
	assert_int_equal(be->queue_pairs, 1);
	assert_true(be->vnet_hdr);
	assert_true(be->offloads);
	assert_non_null(be->ops->send);
	assert_non_null(be->ops->recv);
	assert_non_null(be->ops->fd);
	assert_non_null(be->ops->set_offloads);
	assert_non_null(be->ops->close);
	assert_null(be->ops->attach);

	int fd = be->ops->fd(be, 0);
	assert_true(fd >= 0);
	assert_int_equal(be->ops->fd(be, 1), -EINVAL);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	struct ifreq ifr = { 0 };
	assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
	assert_string_equal(ifr.ifr_name, "kt0");
	assert_int_equal(ifr.ifr_flags & (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
					  IFF_MULTI_QUEUE),
			 IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
	int hdr = 0;
	assert_int_equal(ioctl(fd, TUNGETVNETHDRSZ, &hdr), 0);
	assert_int_equal(hdr, NET_VNET_HDR_LEN);

	assert_true(link_exists("kt0"));
	assert_true(link_up("kt0"));
	/* The host side's MAC: 0xfe, then the guest's. */
	uint8_t mac[6], want[6] = { 0xfe, 0x11, 0x22, 0x33, 0x44, 0x55 };
	link_mac("kt0", mac);
	assert_memory_equal(mac, want, 6);
	/* Not persistent: gone with kvmini's fds. */
	be->ops->close(be);
	assert_false(link_exists("kt0"));

	/* A guest MAC that starts with 0xfe itself gets a host side apart. */
	be = open_ok("tap=kt0,mac=fe:11:22:33:44:55");
	link_mac("kt0", mac);
	assert_int_equal(mac[0], 0xfa);
	be->ops->close(be);
}

static void test_in_use(void **state)
{
	NEED_NETNS();
	struct net_backend *be = open_ok("tap=kt1");
	open_fails("tap=kt1", -EBUSY, "tap kt1 is in use by another process");
	assert_true(tap_error_is_usage(-EBUSY));
	assert_true(link_exists("kt1"));   /* the failed open took nothing down */
	be->ops->close(be);
	assert_false(link_exists("kt1"));
	be = open_ok("tap=kt1");
	be->ops->close(be);

	/* A persistent one, in use. */
	SH("ip tuntap add dev kt1p mode tap");
	be = open_ok("tap=kt1p");
	open_fails("tap=kt1p", -EBUSY, "tap kt1p is in use by another process");
	be->ops->close(be);
	SH("ip link del kt1p");
}

static void test_existing_stays(void **state)
{
	NEED_NETNS();
	SH("ip tuntap add dev kt2 mode tap");
	uint8_t before[6], mac[6];
	link_mac("kt2", before);
	assert_false(link_up("kt2"));
	struct net_backend *be = open_ok("tap=kt2");
	assert_true(link_up("kt2"));
	link_mac("kt2", mac);
	assert_memory_equal(mac, before, 6);   /* not ours to change */
	be->ops->close(be);
	assert_true(link_exists("kt2"));
	assert_false(link_up("kt2"));          /* down again, as it was */

	SH("ip link set kt2 up");
	be = open_ok("tap=kt2");
	be->ops->close(be);
	assert_true(link_up("kt2"));           /* up, as it was */
	SH("ip link del kt2");
}

static void test_bridge(void **state)
{
	NEED_NETNS();
	SH("ip link add kbr0 type bridge && ip link add kbr1 type bridge");
	struct net_backend *be = open_ok("tap=kt3,bridge=kbr0");
	assert_string_equal(master_of("kt3"), "kbr0");
	be->ops->close(be);
	assert_false(link_exists("kt3"));
	assert_string_equal(master_of("kt3"), "");

	/* An existing TAP leaves the bridge again; one that was in another
	 * bridge goes back there; one already in it stays. */
	SH("ip tuntap add dev kt4 mode tap");
	be = open_ok("tap=kt4,bridge=kbr0");
	assert_string_equal(master_of("kt4"), "kbr0");
	be->ops->close(be);
	assert_true(link_exists("kt4"));
	assert_string_equal(master_of("kt4"), "");

	SH("ip link set kt4 master kbr1");
	be = open_ok("tap=kt4,bridge=kbr0");
	assert_string_equal(master_of("kt4"), "kbr0");
	be->ops->close(be);
	assert_string_equal(master_of("kt4"), "kbr1");

	SH("ip link set kt4 master kbr0");
	be = open_ok("tap=kt4,bridge=kbr0");
	be->ops->close(be);
	assert_string_equal(master_of("kt4"), "kbr0");

	/* Without bridge=, a TAP's bridge is left alone. */
	be = open_ok("tap=kt4");
	assert_string_equal(master_of("kt4"), "kbr0");
	be->ops->close(be);
	assert_string_equal(master_of("kt4"), "kbr0");
	SH("ip link del kt4 && ip link del kbr0 && ip link del kbr1");
}

static void test_bridge_errors(void **state)
{
	NEED_NETNS();
	open_fails("tap=kt5,bridge=nobr0", -ENODEV, "tap kt5: bridge nobr0 does not exist");
	assert_false(link_exists("kt5"));   /* checked before the TAP is made */
	SH("ip link add kve0 type veth peer name kve1");
	open_fails("tap=kt5,bridge=kve0", -EMEDIUMTYPE,
		   "tap kt5: kve0 is not a bridge (it is a veth interface)");
	open_fails("tap=kt5,bridge=lo", -EMEDIUMTYPE, "lo is not a bridge");
	assert_false(link_exists("kt5"));
	assert_true(tap_error_is_usage(-ENODEV));
	assert_true(tap_error_is_usage(-EMEDIUMTYPE));
	SH("ip link del kve0");
}

static void test_not_a_tap(void **state)
{
	NEED_NETNS();
	open_fails("tap=lo", -EEXIST, "an interface called lo exists and is not a TAP");
	SH("ip link add kve2 type veth peer name kve3");
	open_fails("tap=kve2", -EEXIST, "(it is a veth interface)");
	SH("ip tuntap add dev ktun0 mode tun");
	open_fails("tap=ktun0", -EEXIST, "ktun0 is a TUN device");
	assert_true(tap_error_is_usage(-EEXIST));
	assert_true(link_exists("ktun0"));
	SH("ip link del kve2 && ip link del ktun0");
}

static void test_queues(void **state)
{
	NEED_NETNS();
	struct net_backend *be = open_ok("tap=kt6,queues=2");
	assert_int_equal(be->queue_pairs, 2);
	int fd0 = be->ops->fd(be, 0), fd1 = be->ops->fd(be, 1);
	assert_true(fd0 >= 0 && fd1 >= 0 && fd0 != fd1);
	assert_int_equal(be->ops->fd(be, 2), -EINVAL);
	for (int q = 0; q < 2; q++) {
		struct ifreq ifr = { 0 };
		int fd = be->ops->fd(be, (unsigned)q), hdr = 0;
		assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
		assert_string_equal(ifr.ifr_name, "kt6");
		assert_true(ifr.ifr_flags & IFF_MULTI_QUEUE);
		assert_true(ifr.ifr_flags & IFF_VNET_HDR);
		assert_int_equal(ioctl(fd, TUNGETVNETHDRSZ, &hdr), 0);
		assert_int_equal(hdr, NET_VNET_HDR_LEN);
		assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	}
	open_fails("tap=kt6,queues=2", -EBUSY, "in use");
	be->ops->close(be);
	assert_false(link_exists("kt6"));

	be = open_ok("tap=kt6,queues=16");
	assert_int_equal(be->queue_pairs, 16);
	be->ops->close(be);

	SH("ip tuntap add dev kt7 mode tap");
	open_fails("tap=kt7,queues=2", -ECHRNG, "kt7 is single-queue");
	assert_true(tap_error_is_usage(-ECHRNG));
	SH("ip link del kt7");

	/* A multi-queue TAP takes any number of queue pairs, one included. */
	SH("ip tuntap add dev kt8 mode tap multi_queue");
	be = open_ok("tap=kt8");
	struct ifreq ifr = { 0 };
	assert_int_equal(ioctl(be->ops->fd(be, 0), TUNGETIFF, &ifr), 0);
	assert_true(ifr.ifr_flags & IFF_MULTI_QUEUE);
	be->ops->close(be);
	be = open_ok("tap=kt8,queues=4");
	assert_int_equal(be->queue_pairs, 4);
	be->ops->close(be);
	assert_true(link_exists("kt8"));
	SH("ip link del kt8");
}

/* ---- frames -------------------------------------------------------------- */

static const uint8_t guest_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };

static uint16_t ip_checksum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Waits for the UDP frame to port dport among what the TAP hands the
 * guest, skipping anything else (ARP, ...). Returns its length with
 * hdr/frame filled, or -1 after a timeout. */
static ssize_t recv_udp(struct net_backend *be, uint16_t dport, struct virtio_net_hdr_v1 *hdr,
			uint8_t *frame, size_t size)
{
	for (int tries = 0; tries < 50; tries++) {
		struct pollfd p = { .fd = be->ops->fd(be, 0), .events = POLLIN };
		if (poll(&p, 1, 2000) != 1)
			return -1;
		memset(hdr, 0x5a, sizeof(*hdr));
		struct iovec iov[2] = { { hdr, sizeof(*hdr) }, { frame, size } };
		ssize_t n = be->ops->recv(be, 0, iov, 2);
		if (n == -EAGAIN)
			continue;
		assert_true(n >= (ssize_t)sizeof(*hdr));
		n -= (ssize_t)sizeof(*hdr);
		if (n >= 42 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 17 &&
		    (frame[36] << 8 | frame[37]) == dport)
			return n;
	}
	return -1;
}

/* The kernel's UDP packet to the guest (10.99.0.2:dport), through recv. */
static void host_to_guest(struct net_backend *be, int sock, uint16_t dport, const char *payload,
			  struct virtio_net_hdr_v1 *hdr, uint8_t *frame, size_t size)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(dport) };
	inet_pton(AF_INET, "10.99.0.2", &to.sin_addr);
	assert_int_equal(sendto(sock, payload, strlen(payload), 0, (struct sockaddr *)&to,
				sizeof(to)),
			 (ssize_t)strlen(payload));
	ssize_t n = recv_udp(be, dport, hdr, frame, size);
	if (n < 0)
		fail_msg("no UDP frame to port %u came out of the TAP", dport);
	uint8_t tap_mac[6];
	link_mac("kt9", tap_mac);
	assert_memory_equal(frame, guest_mac, 6);
	assert_memory_equal(frame + 6, tap_mac, 6);
	assert_int_equal(n, 42 + (ssize_t)strlen(payload));
	assert_memory_equal(frame + 42, payload, strlen(payload));
}

/* An Ethernet frame from the guest (10.99.0.2:4444) to the host's
 * 10.99.0.1:5555; with partial, the UDP checksum is left to the host as
 * a virtio driver with VIRTIO_NET_F_CSUM does. */
static size_t guest_frame(uint8_t *f, const char *payload, bool partial)
{
	size_t plen = strlen(payload), udp_len = 8 + plen, ip_len = 20 + udp_len;
	uint8_t tap_mac[6];
	link_mac("kt9", tap_mac);
	memcpy(f, tap_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(ip_len >> 8);
	ip[3] = (uint8_t)ip_len;
	ip[8] = 64;
	ip[9] = 17;
	const uint8_t src[4] = { 10, 99, 0, 2 }, dst[4] = { 10, 99, 0, 1 };
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	uint16_t c = (uint16_t)~ip_checksum(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	uint8_t *udp = ip + 20;
	udp[0] = 4444 >> 8;
	udp[1] = 4444 & 0xff;
	udp[2] = 5555 >> 8;
	udp[3] = 5555 & 0xff;
	udp[4] = (uint8_t)(udp_len >> 8);
	udp[5] = (uint8_t)udp_len;
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, plen);
	if (partial) {
		/* The pseudo-header sum, not complemented: what the host's
		 * checksum of the rest is added to. */
		uint32_t ph = 0;
		ph += (uint32_t)(src[0] << 8 | src[1]) + (uint32_t)(src[2] << 8 | src[3]);
		ph += (uint32_t)(dst[0] << 8 | dst[1]) + (uint32_t)(dst[2] << 8 | dst[3]);
		ph += 17 + (uint32_t)udp_len;
		uint16_t p = ip_checksum(NULL, 0, ph);
		udp[6] = (uint8_t)(p >> 8);
		udp[7] = (uint8_t)p;
	}
	return 14 + ip_len;
}

static void expect_at_host(int sock, const char *payload)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1)
		fail_msg("the host never got '%s'", payload);
	char buf[256];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(sock, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	assert_int_equal(n, (ssize_t)strlen(payload));
	assert_memory_equal(buf, payload, strlen(payload));
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &from.sin_addr, a, sizeof(a));
	assert_string_equal(a, "10.99.0.2");
	assert_int_equal(ntohs(from.sin_port), 4444);
}

#define F(bit) (1ULL << (bit))

static void test_frames(void **state)
{
	NEED_NETNS();
	struct net_backend *be = open_ok("tap=kt9,mac=02:00:00:00:00:02");
	SH("ip addr add 10.99.0.1/24 dev kt9 && "
	   "ip neigh replace 10.99.0.2 lladdr 02:00:00:00:00:02 dev kt9 nud permanent");
	int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(tx >= 0 && rx >= 0);
	struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons(5555) };
	inet_pton(AF_INET, "10.99.0.1", &at.sin_addr);
	assert_int_equal(bind(rx, (struct sockaddr *)&at, sizeof(at)), 0);

	/* Nothing waiting: -EAGAIN, not a block. */
	struct virtio_net_hdr_v1 hdr;
	static uint8_t frame[65536];
	struct iovec iov[2] = { { &hdr, sizeof(hdr) }, { frame, sizeof(frame) } };
	while (be->ops->recv(be, 0, iov, 2) >= 0)
		;
	assert_int_equal(be->ops->recv(be, 0, iov, 2), -EAGAIN);
	assert_int_equal(be->ops->recv(be, 1, iov, 2), -EINVAL);

	/* To the guest, offloads off: a complete frame, flags 0. */
	host_to_guest(be, tx, 9999, "to-guest", &hdr, frame, sizeof(frame));
	assert_int_equal(hdr.flags, 0);
	assert_int_equal(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTXCSUM), 0);

	/* With GUEST_CSUM, the UDP checksum is left to the guest. */
	assert_int_equal(be->ops->set_offloads(be, F(VIRTIO_NET_F_GUEST_CSUM)), 0);
	assert_int_not_equal(ethtool_value("kt9", ETHTOOL_GTXCSUM), 0);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTSO), 0);
	host_to_guest(be, tx, 9998, "to-guest-partial", &hdr, frame, sizeof(frame));
	assert_true(hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(hdr.csum_start, 14 + 20);
	assert_int_equal(hdr.csum_offset, 6);

	/* TSO only with CSUM, as the kernel requires; every guest offload
	 * together is taken. */
	assert_int_equal(be->ops->set_offloads(be, F(VIRTIO_NET_F_GUEST_TSO4) |
						   F(VIRTIO_NET_F_GUEST_ECN)), 0);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTXCSUM), 0);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTSO), 0);
	assert_int_equal(be->ops->set_offloads(be, F(VIRTIO_NET_F_GUEST_CSUM) |
						   F(VIRTIO_NET_F_GUEST_TSO4) |
						   F(VIRTIO_NET_F_GUEST_TSO6) |
						   F(VIRTIO_NET_F_GUEST_ECN) |
						   F(VIRTIO_NET_F_GUEST_UFO)), 0);
	assert_int_not_equal(ethtool_value("kt9", ETHTOOL_GTSO), 0);
	assert_int_equal(be->ops->set_offloads(be, F(VIRTIO_NET_F_GUEST_CSUM) |
						   F(VIRTIO_NET_F_GUEST_TSO6)), 0);

	/* Back to none (a reset): complete frames again. */
	assert_int_equal(be->ops->set_offloads(be, 0), 0);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTXCSUM), 0);
	assert_int_equal(ethtool_value("kt9", ETHTOOL_GTSO), 0);
	host_to_guest(be, tx, 9997, "to-guest-again", &hdr, frame, sizeof(frame));
	assert_int_equal(hdr.flags, 0);

	/* From the guest: header first, then the frame, in pieces. */
	uint8_t out[256];
	struct virtio_net_hdr_v1 ohdr = { 0 };
	size_t len = guest_frame(out, "from-guest", false);
	struct iovec o[3] = { { &ohdr, sizeof(ohdr) }, { out, 20 }, { out + 20, len - 20 } };
	assert_int_equal(be->ops->send(be, 0, o, 3), 0);
	expect_at_host(rx, "from-guest");

	/* A header asking the host to finish the checksum. */
	len = guest_frame(out, "from-guest-partial", true);
	ohdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ohdr.csum_start = 14 + 20;
	ohdr.csum_offset = 6;
	struct iovec o2[2] = { { &ohdr, sizeof(ohdr) }, { out, len } };
	assert_int_equal(be->ops->send(be, 0, o2, 2), 0);
	expect_at_host(rx, "from-guest-partial");

	/* A header the kernel refuses: dropped with an error, nothing logged
	 * (the guest wrote it). */
	memset(&ohdr, 0, sizeof(ohdr));
	ohdr.gso_type = 0x7f;
	ohdr.gso_size = 100;
	assert_true(be->ops->send(be, 0, o2, 2) < 0);
	assert_int_equal(be->ops->send(be, 1, o2, 2), -EINVAL);

	close(tx);
	close(rx);
	be->ops->close(be);
}

/* ---- privileges ---------------------------------------------------------- */

/* In a child without CAP_NET_ADMIN, opens text; exits 0 when the result
 * is rc with needle in the one error line (or rc == 0 and it worked). */
static void without_net_admin(const char *text, int rc, const char *needle)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d))
			_exit(10);
		d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
		d[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
		if (syscall(SYS_capset, &h, d))
			_exit(11);
		struct net_config cfg;
		if (net_config_parse(&cfg, text))
			_exit(12);
		FILE *tmp = tmpfile();
		if (!tmp)
			_exit(13);
		int saved = dup(STDERR_FILENO);
		dup2(fileno(tmp), STDERR_FILENO);
		struct net_backend *be;
		int got = tap_backend_open(&be, &cfg);
		fflush(stderr);
		dup2(saved, STDERR_FILENO);
		rewind(tmp);
		char err[1024];
		err[fread(err, 1, sizeof(err) - 1, tmp)] = '\0';
		if (got != rc) {
			fprintf(stderr, "# '%s' without CAP_NET_ADMIN: %d, expected %d: %s\n", text,
				got, rc, err);
			_exit(1);
		}
		if (!rc) {
			be->ops->close(be);
			_exit(0);
		}
		if (count_lines(err) != 1 || !strstr(err, needle)) {
			fprintf(stderr, "# '%s': stderr '%s' lacks '%s'\n", text, err, needle);
			_exit(2);
		}
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("'%s' without CAP_NET_ADMIN: child status %d", text, st);
}

static void test_permission(void **state)
{
	NEED_NETNS();
	without_net_admin("tap=kt10", -EPERM,
			  "tap kt10: permission denied: creating or attaching a TAP needs "
			  "CAP_NET_ADMIN (run as root or give kvmini cap_net_admin)");
	assert_false(link_exists("kt10"));
	/* A TAP made for another user is refused; an ownerless one (what
	 * "ip tuntap add" makes) anyone may attach to, but bringing it up
	 * needs the capability; a TAP made for this user, already up, needs
	 * nothing. */
	SH("ip tuntap add dev kt11 mode tap user 12345");
	without_net_admin("tap=kt11", -EPERM, "ip tuntap add kt11 mode tap user USER");
	SH("ip tuntap add dev kt12 mode tap");
	without_net_admin("tap=kt12", -EPERM, "bringing it up needs CAP_NET_ADMIN");
	SH("ip link set kt12 up");
	without_net_admin("tap=kt12", 0, NULL);
	SH("ip tuntap add dev kt13 mode tap user %u && ip link set kt13 up", (unsigned)geteuid());
	without_net_admin("tap=kt13", 0, NULL);
	/* Joining a bridge is a change too. */
	SH("ip link add kbr2 type bridge");
	without_net_admin("tap=kt13,bridge=kbr2", -EPERM, "joining bridge kbr2 needs CAP_NET_ADMIN");
	assert_string_equal(master_of("kt13"), "");
	assert_true(tap_error_is_usage(-EPERM));
	assert_false(tap_error_is_usage(-ENOENT));
	assert_false(tap_error_is_usage(-ENOMEM));
	assert_false(tap_error_is_usage(-EOPNOTSUPP));
	SH("ip link del kt11 && ip link del kt12 && ip link del kt13 && ip link del kbr2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_in_use),
		cmocka_unit_test(test_existing_stays),
		cmocka_unit_test(test_bridge),
		cmocka_unit_test(test_bridge_errors),
		cmocka_unit_test(test_not_a_tap),
		cmocka_unit_test(test_queues),
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_permission),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
