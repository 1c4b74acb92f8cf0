/* virtio-net (virtio/net.c) through the virtio-pci transport (virtio/pci.c),
 * against a hostile guest driver and a misbehaving backend.
 *
 * A fake VM without /dev/kvm, as tests/unit/virtio_net_test.c builds it: a
 * struct vm with vm_fd = -1, the PCI bus, config cycles on 0xCF8/0xCFC, MMIO
 * to the BAR, kicks as MMIO writes to the notify area (forwarded to the
 * queue's eventfd). Guest RAM is 512 KiB between two 1 MiB PROT_NONE guards,
 * so any access outside it faults. The device is created, started and freed
 * anew for every input.
 *
 * The backend is one of the unit test's two fakes:
 * - pull (TAP): one SOCK_SEQPACKET socketpair per queue pair (1 or 2);
 *   frames "waiting on the TAP" are written into the peer end with a 12-byte
 *   header of any content (or bare, without vnet_hdr); send and recv can be
 *   told to fail (-EAGAIN, -EIO, -EFAULT, ...) for the next N calls, and the
 *   peer can hang up. By default the pairs are served on this thread's event
 *   loop (iothread=main), which the harness runs until it is idle after
 *   every step: the whole run is deterministic. Mode bit 2 serves them on
 *   the device's own I/O threads instead (iothread=pair), and the harness
 *   waits for the device to settle after kicks.
 * - push (libslirp): its "loop" is this thread's loop too; frames for the
 *   guest are handed to the attached port directly, of any length, and
 *   optionally one frame is answered from inside send.
 *
 * Checked after every step (deterministic modes) or where noted:
 *   - the device writes guest RAM only inside the used rings of the enabled
 *     queues and the buffers of device-writable descriptors it was given
 *     (every chain it could pop is walked before the device runs; a chain
 *     whose writable buffers overlap descriptor tables or rings switches
 *     this check off for the rest of the input), and never outside RAM
 *     (the guards, all modes);
 *   - per queue, used->idx never moves further than the chains the driver
 *     made available (the sum of its avail->idx steps), and at most the
 *     queue size of chains is popped and not yet used;
 *   - the backend (all modes) gets only frames with a valid header: the
 *     header is a device copy, not guest memory; flags only NEEDS_CSUM, and
 *     then CSUM negotiated and csum_start + csum_offset + 2 <= len; a GSO
 *     type only TCPV4/TCPV6 with HOST_TSO4/6, NEEDS_CSUM and gso_size; ECN
 *     only with HOST_ECN; hdr_len <= len; num_buffers 0; and no frame is
 *     longer than 65550 bytes with HOST_TSO, MTU + 18 without (or without
 *     GSO when MTU was negotiated); every buffer of an iovec lies in RAM;
 *     calls come from the thread that serves the pair;
 *   - the device never spins: the loop goes idle within DRAIN_MAX rounds.
 * Checked while the driver behaved (no raw descriptor, avail or RAM
 * writes, no common-config writes, no reuse of buffers still in flight):
 *   - every used element names a chain the driver posted and did not get
 *     back yet, RX chains the device had to refuse come back with length 0
 *     and good ones never do (but when multiqueue switches their pair off
 *     and they cannot be unpopped); TX used lengths are 0;
 *   - a received frame is exactly one frame the backend delivered, in order
 *     per queue pair, spread over num_buffers elements all full but the
 *     last; its header is the backend's (pull with vnet_hdr; flags cleared
 *     without GUEST_CSUM) or zero, with num_buffers right;
 *   - the backend gets exactly the TX chains the documented rules accept
 *     (docs/networking.md), each once and with the guest's bytes, in order;
 *   - control commands: ack and used length as the spec says for each
 *     class/command (an independent implementation of the rules);
 *     MAC_ADDR_SET shows in the config space;
 *   - no lost wake-up: a driver that kicked whenever the device asked for
 *     it has its TX and control rings emptied, and RX does not stall while
 *     frames wait and the posted buffers would hold one;
 *   - the device's counters add up with what the fake backend did.
 * At the end of every input (after a reset and virtio_net_free): no
 * thread, fd or (in the plain replay, with glibc's tcache off) heap byte
 * more than before; LeakSanitizer does the heap when fuzzing.
 *
 * Input layout (little-endian):
 *   0      u8  mode: bit 0 push backend (else pull); 1 pull: two queue pairs
 *              (MQ offered); 2 pull: an I/O thread per pair; 3 pull: no
 *              vnet header; 4 pull: backend takes no offloads; 5 driver
 *              features raw (else masked with the device's); 6 push: answer
 *              each sent frame from inside send; 7 no driver init before
 *              the first op
 *   1..4   u32 driver features, bits 0-31 (VERSION_1 always added)
 *   5      u8  log2 queue sizes (mod 9): bits 0-3 RX, 4-7 TX
 *   6      u8  bits 0-3 log2 ctrl queue size; bits 4-7 queues left disabled
 *              (4: RX, 5: TX, 6: ctrl, 7: pair 1)
 *   7      u8  unused
 *   8...   ops of 16 bytes {u8 op, q, a, b; u16 c, d; u32 e, f}, at most
 *          MAX_OPS; what each does is in run_op() below.
 * tests/fuzz/gen_corpus.py writes the seeds in this format. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/pci.h"
#include "fuzz.h"
#include "net/backend.h"
#include "net/net_config.h"
#include "virtio/net.h"
#include "virtio/virtio.h"
#include "vmm/eventloop.h"
#include "vmm/irq.h"
#include "vmm/vm.h"

/* ---- guest memory map ---------------------------------------------------- */

#define RAM_SIZE   0x80000u
#define GUARD      0x100000u
#define PAGES      (RAM_SIZE / 4096)
#define RING(q)    (0x4000u * (q))             /* desc; avail +0x1000; used +0x2000 */
#define AVAIL(q)   (RING(q) + 0x1000u)
#define USED(q)    (RING(q) + 0x2000u)
#define IND_BASE   0x14000u                    /* 8 KiB of indirect tables per queue */
#define IND_SIZE   0x2000u
#define CTRL_BASE  0x1e000u
#define CTRL_SIZE  0x2000u
#define TX_BASE    0x20000u
#define TX_SIZE    0x20000u
#define RX_BASE    0x40000u
#define RX_SIZE    0x40000u
#define OUTSIDE    0x40000000u                 /* not RAM */
#define MAXQ       5
#define MAXPAIRS   2

/* The harness's own loops are not what the fuzzer should explore (and
 * cost most of the time when instrumented): no coverage for them. */
#ifdef __clang__   /* clang 14 has no no_sanitize_coverage, but this */
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif
/* Bulk work on the harness's own buffers, bounds checked by hand. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ASAN __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef NO_ASAN
#define NO_ASAN
#endif

#define HDR_SIZE   8
#define OP_SIZE    16
#define MAX_OPS    128
#define DRAIN_MAX  4096
#define MAX_FRAMES 2048                        /* per direction and input */
#define GSO_MAX    65550u
#define MTU_FRAME  1518u

/* virtio numbers (spec), as the unit test writes them */
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define ST_RUNNING (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)
#define F_CSUM 0
#define F_GUEST_CSUM 1
#define F_MTU 3
#define F_GUEST_TSO4 7
#define F_GUEST_TSO6 8
#define F_GUEST_UFO 10
#define F_HOST_TSO4 11
#define F_HOST_TSO6 12
#define F_HOST_ECN 13
#define F_MRG_RXBUF 15
#define F_CTRL_VQ 17
#define F_CTRL_RX 18
#define F_GUEST_ANNOUNCE 21
#define F_MQ 22
#define F_CTRL_MAC_ADDR 23
#define F_INDIRECT 28
#define F_EVENT_IDX 29
#define F_VERSION_1 32
#define BIT(n) (1ULL << (n))
#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4
#define HDR 12

enum { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0c, MSIX = 0x10, STATUS = 0x14,
       QSEL = 0x16, QSIZE = 0x18, QMSIX = 0x1a, QENABLE = 0x1c, QNOFF = 0x1e,
       QDESC = 0x20, QDRIVER = 0x28, QDEVICE = 0x30, CC_LEN = 0x38 };

enum { K_NONE, K_RX, K_TX, K_CTRL };

/* What the harness knows about a chain it posted, by head. */
struct rec {
	bool live;
	uint8_t kind;
	uint16_t ndesc;           /* descriptors of the queue's table it holds */
	bool refuse;              /* RX: the device must give it back with length 0 */
	unsigned mq_epoch;        /* RX: h.mq_lowered when it was posted */
	uint8_t nseg;
	struct { uint32_t gpa, len; } seg[12];   /* RX: device-writable bytes, in order */
	uint64_t wlen;
	bool expect_send;         /* TX: the rules accept it */
	uint32_t flen;            /* TX: frame bytes after the 12-byte header */
	int32_t key;              /* TX: frame key, -1 when its bytes carry none */
	uint8_t expect_len, expect_ack;   /* ctrl */
	uint32_t ack_gpa;
	uint8_t ctrl_what;        /* 1 MAC_ADDR_SET ok, 2 VQ_PAIRS_SET ok */
	uint8_t mac[6];
	uint16_t pairs;
};

struct qstate {
	bool enabled;             /* set up by the harness before DRIVER_OK */
	uint16_t size;
	uint16_t avail_idx;       /* what the harness last published */
	uint16_t used_seen;       /* used elements the harness has looked at */
	uint16_t next_desc;
	uint32_t ind_next;
	bool owed_kick;           /* skipped a kick the device asked for */
	unsigned inflight;
	uint8_t busy[256];        /* descriptor index held by a live chain */
	struct rec rec[256];
	/* used->idx against avail->idx, the device's view (all modes but
	 * the threaded one). */
	bool tr_en;
	const volatile void *tr_avail;
	uint16_t tr_avail_last, tr_used_last;
	uint64_t tr_a, tr_u;
};

struct frame_rec {
	uint32_t len;
	uint8_t hdr[HDR];
	uint8_t pair;
	bool delivered;
};

struct sendlog {
	unsigned n;
	struct { uint32_t len; int32_t key; } e[512];
};

struct ivs {
	unsigned n;
	bool overflow;
	struct { uint32_t lo, hi; } v[8192];
};

static struct h {
	/* the VM */
	struct vm vm;
	struct pci_bus pbus;
	struct virtio_net *n;
	struct virtio_dev *vd;
	struct event_loop loop;
	uint8_t *ram, *snap;
	unsigned slot;
	uint64_t bar;
	uint32_t common, isr, devcfg, notify, notify_mult;
	uint8_t msix_cap;
	/* the mode */
	bool push, threaded, vnet_hdr, offloads, echo;
	unsigned pairs, nq;
	pthread_t main_thread;
	/* the driver */
	uint64_t dev_features, neg;   /* neg: accepted by FEATURES_OK, 0 if not */
	bool running, failed, failed_ever;
	bool fatal;                   /* a fatal backend error was set up */
	unsigned active_pairs;
	unsigned mq_lowered;          /* VQ_PAIRS_SET commands posted that switch pairs off */
	bool mac_known;
	uint8_t mac[6];
	struct qstate qs[MAXQ];
	uint32_t tx_next, rx_next, ctrl_next;   /* bump allocators (offsets) */
	bool tampered;                /* the driver broke the rules: fewer checks */
	bool map_ok;
	bool reset_pending;
	bool device_ran;              /* it may have written guest RAM since the last look */
	bool work;                    /* threaded: the last op may have given the device work */
	uint8_t touched[PAGES];       /* pages to clear for the next input */
	bool all_touched;
	/* guest writes allowed to the device, and what it must not write */
	struct ivs allowed, tables;
	/* frames */
	unsigned ntx, nrxf;
	struct frame_rec rxf[MAX_FRAMES];
	struct { uint32_t len; uint8_t hdr[HDR]; uint8_t pair; } tx[MAX_FRAMES];
	int last_rx_key[MAXPAIRS];
	uint64_t frames_seen;
	/* the backend */
	struct net_backend be;
	int dev[MAXPAIRS], peer[MAXPAIRS];
	struct net_port port;
	bool attached;
	pthread_mutex_t blk;          /* what follows, in the threaded mode */
	unsigned send_eagain, send_err, recv_eagain, recv_err;
	int send_err_code, recv_err_code;
	uint64_t sends_ok, sends_dropped, recv_frames, recv_toobig, recv_errs;
	uint64_t given;               /* push: frames handed to the port */
	struct sendlog log[MAXPAIRS];
	uint64_t offloads_set;
	uint8_t sbuf[MAXPAIRS][GSO_MAX + 64], wbuf[MAXPAIRS][GSO_MAX + 64];
	unsigned threads0;
	FILE *devnull;
} h;

#define FRAME_MAX  0x1ffffu                  /* the longest frame an op makes */
static int verbose = -1;
static uint8_t fbuf[FRAME_MAX + 64], gbuf[FRAME_MAX + 64], want_rx[FRAME_MAX + 64];
static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* ---- little helpers ---------------------------------------------------------- */

NO_COVERAGE static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
NO_COVERAGE static uint32_t ld32(const uint8_t *p) { return (uint32_t)ld16(p) | (uint32_t)ld16(p + 2) << 16; }

NO_COVERAGE static bool in_ram(uint64_t gpa, uint64_t len) { return gpa <= RAM_SIZE && len <= RAM_SIZE - gpa; }

NO_COVERAGE static bool host_in_ram(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)h.ram;
	return a >= lo && a - lo <= RAM_SIZE && len <= RAM_SIZE - (a - lo);
}

NO_COVERAGE static uint32_t host_off(const volatile void *p) { return (uint32_t)((const volatile uint8_t *)p - h.ram); }

/* The guest writes RAM: the shadow copy follows, so that every difference
 * between the two is something the device wrote. */
NO_COVERAGE static void gw(uint64_t gpa, const void *p, size_t len)
{
	if (!in_ram(gpa, len) || !len)
		return;
	memcpy(h.ram + gpa, p, len);
	memcpy(h.snap + gpa, p, len);
	for (uint64_t pg = gpa / 4096; pg <= (gpa + len - 1) / 4096; pg++)
		h.touched[pg] = 1;
}

NO_COVERAGE static void gw16(uint64_t gpa, uint16_t v) { uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) }; gw(gpa, b, 2); }

NO_COVERAGE static void gw_desc(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t b[16];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(addr >> (8 * i));
	for (int i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(len >> (8 * i));
	b[12] = (uint8_t)flags;
	b[13] = (uint8_t)(flags >> 8);
	b[14] = (uint8_t)next;
	b[15] = (uint8_t)(next >> 8);
	gw(gpa, b, 16);
}

NO_COVERAGE static uint16_t r16(uint64_t gpa) { return __atomic_load_n((uint16_t *)(h.ram + gpa), __ATOMIC_ACQUIRE); }
NO_COVERAGE static uint32_t r32(uint64_t gpa) { uint32_t v; memcpy(&v, h.ram + gpa, 4); return v; }

/* What the driver negotiated, as the device sees it (frozen from
 * FEATURES_OK to the reset, so any thread may read it). */
static bool has(unsigned bit) { return (h.vd->driver_features >> bit) & 1; }

NO_COVERAGE static uint32_t fhash(uint32_t s)
{
	s ^= 0x9e3779b9u;
	s *= 0x85ebca6bu;
	s ^= s >> 13;
	s *= 0xc2b2ae35u;
	s ^= s >> 16;
	return s;
}

/* Frame bytes: a 16-bit key and its 32-bit hash first, so that a frame
 * found anywhere can be told apart from garbage, then a pattern. */
NO_COVERAGE NO_ASAN static void make_frame(uint8_t *b, uint32_t key, size_t len)
{
	uint8_t k7 = (uint8_t)(key * 7);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(k7 + (uint8_t)(i * 13) + (uint8_t)(i >> 8));
	if (len >= 6) {
		uint32_t c = fhash(key);
		b[0] = (uint8_t)key;
		b[1] = (uint8_t)(key >> 8);
		for (int i = 0; i < 4; i++)
			b[2 + i] = (uint8_t)(c >> (8 * i));
	}
}

NO_COVERAGE static int frame_key(const uint8_t *b, size_t len)
{
	if (len < 6)
		return -1;
	uint32_t k = ld16(b);
	return fhash(k) == ld32(b + 2) ? (int)k : -1;
}

/* want: scratch space of len bytes. */
NO_COVERAGE NO_ASAN static bool frame_is(const uint8_t *b, uint32_t key, size_t len, uint8_t *want)
{
	make_frame(want, key, len);
	for (size_t i = 0; i < len; i++)
		if (b[i] != want[i])
			return false;
	return true;
}

/* Whether a 4 KiB page of guest RAM differs from its shadow copy. */
NO_COVERAGE NO_ASAN static bool page_differs(const uint8_t *a, const uint8_t *b)
{
	const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
	for (unsigned i = 0; i < 512; i += 8) {
		uint64_t d = 0;
		for (unsigned k = 0; k < 8; k++)
			d |= x[i + k] ^ y[i + k];
		if (d)
			return true;
	}
	return false;
}

NO_COVERAGE static unsigned count_dir(const char *path)
{
	DIR *d = opendir(path);
	unsigned n = 0;
	FUZZ_CHECK(d);
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Whether mallinfo2() counts freed small chunks as free at once (glibc's
 * tcache off), as fuzz_cli_disk.c checks. */
/* Threads of this process (field 20 of /proc/self/stat). */
NO_COVERAGE static unsigned thread_count(void)
{
	char b[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	FUZZ_CHECK(n > 0);
	b[n] = 0;
	const char *p = strrchr(b, ')');   /* the name may hold spaces */
	FUZZ_CHECK(p);
	for (int field = 2; field < 20 && p; field++)
		p = strchr(p + 1, ' ');
	FUZZ_CHECK(p);
	return (unsigned)strtoul(p + 1, NULL, 10);
}

NO_COVERAGE static bool heap_count_exact(void)
{
	void *volatile p;
	size_t before = mallinfo2().uordblks;
	p = malloc(24);
	free(p);
	return mallinfo2().uordblks == before;
}

/* ---- intervals of guest RAM ---------------------------------------------------------- */

NO_COVERAGE static void iv_add(struct ivs *s, uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return;
	/* first interval with v.hi >= lo */
	unsigned a = 0, b = s->n;
	while (a < b) {
		unsigned m = (a + b) / 2;
		if (s->v[m].hi < lo)
			a = m + 1;
		else
			b = m;
	}
	unsigned z = a;
	while (z < s->n && s->v[z].lo <= hi)
		z++;
	if (z == a + 1) {   /* grows one interval */
		if (s->v[a].lo > lo)
			s->v[a].lo = (uint32_t)lo;
		if (s->v[a].hi < hi)
			s->v[a].hi = (uint32_t)hi;
		return;
	}
	if (z > a) {   /* merge [a, z) */
		if (s->v[a].lo < lo)
			lo = s->v[a].lo;
		if (s->v[z - 1].hi > hi)
			hi = s->v[z - 1].hi;
		s->v[a].lo = (uint32_t)lo;
		s->v[a].hi = (uint32_t)hi;
		memmove(&s->v[a + 1], &s->v[z], (s->n - z) * sizeof(s->v[0]));
		s->n -= z - a - 1;
		return;
	}
	if (s->n == sizeof(s->v) / sizeof(s->v[0])) {
		s->overflow = true;
		return;
	}
	memmove(&s->v[a + 1], &s->v[a], (s->n - a) * sizeof(s->v[0]));
	s->v[a].lo = (uint32_t)lo;
	s->v[a].hi = (uint32_t)hi;
	s->n++;
}

NO_COVERAGE static bool iv_has(const struct ivs *s, uint64_t x)
{
	unsigned a = 0, b = s->n;
	while (a < b) {
		unsigned m = (a + b) / 2;
		if (s->v[m].hi <= x)
			a = m + 1;
		else
			b = m;
	}
	return a < s->n && s->v[a].lo <= x;
}

NO_COVERAGE static bool iv_overlap(const struct ivs *x, const struct ivs *y)
{
	unsigned i = 0, j = 0;
	while (i < x->n && j < y->n) {
		if (x->v[i].hi <= y->v[j].lo)
			i++;
		else if (y->v[j].hi <= x->v[i].lo)
			j++;
		else
			return true;
	}
	return false;
}

/* ---- port I/O, config cycles, MMIO ---------------------------------------------------- */

static void pio(uint16_t port, uint32_t *v, unsigned len, bool wr)
{
	uint8_t b[4] = { 0 };
	if (wr)
		for (unsigned i = 0; i < len; i++)
			b[i] = (uint8_t)(*v >> (8 * i));
	bus_dispatch(&h.vm.pio, port, b, len, wr);
	if (!wr) {
		*v = 0;
		for (unsigned i = 0; i < len; i++)
			*v |= (uint32_t)b[i] << (8 * i);
	}
}

static uint32_t cfg_rd(unsigned slot, unsigned off, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (off & 0xfc), v;
	pio(0xcf8, &a, 4, true);
	pio((uint16_t)(0xcfc + (off & 3)), &v, len, false);
	return v;
}

static void cfg_wr(unsigned slot, unsigned off, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (off & 0xfc);
	pio(0xcf8, &a, 4, true);
	pio((uint16_t)(0xcfc + (off & 3)), &v, len, true);
}

static uint64_t mmio_rd(uint64_t off, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;
	FUZZ_CHECK(bus_dispatch(&h.vm.mmio, h.bar + off, b, len, false));
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void mmio_wr(uint64_t off, uint64_t v, unsigned len)
{
	uint8_t b[8];
	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	FUZZ_CHECK(bus_dispatch(&h.vm.mmio, h.bar + off, b, len, true));
}

static uint64_t cc_rd(unsigned f, unsigned len) { return mmio_rd(h.common + f, len); }
static void cc_wr(unsigned f, uint64_t v, unsigned len) { mmio_wr(h.common + f, v, len); }
static uint8_t status(void) { return (uint8_t)cc_rd(STATUS, 1); }

static void discover(void)
{
	h.slot = 0;
	for (unsigned s = 0; s < 32; s++)
		if (cfg_rd(s, 0, 4) == (0x1041u << 16 | 0x1af4u))
			h.slot = s;
	FUZZ_CHECK(h.slot != 0);
	uint32_t lo = cfg_rd(h.slot, 0x10, 4), hi = cfg_rd(h.slot, 0x14, 4);
	h.bar = ((uint64_t)hi << 32) | (lo & ~0xfu);
	cfg_wr(h.slot, 0x04, 0x0006, 2);
	unsigned found = 0, n = 0;
	for (uint8_t p = (uint8_t)cfg_rd(h.slot, 0x34, 1); p && n < 48; n++) {
		uint8_t id = (uint8_t)cfg_rd(h.slot, p, 1);
		if (id == 0x11)
			h.msix_cap = p;
		if (id == 0x09) {
			uint8_t type = (uint8_t)cfg_rd(h.slot, p + 3u, 1);
			uint32_t off = cfg_rd(h.slot, p + 8u, 4);
			switch (type) {
			case 1: h.common = off; break;
			case 2: h.notify = off; h.notify_mult = cfg_rd(h.slot, p + 16u, 4); break;
			case 3: h.isr = off; break;
			case 4: h.devcfg = off; break;
			}
			found |= 1u << type;
		}
		p = (uint8_t)cfg_rd(h.slot, p + 1u, 1);
	}
	FUZZ_CHECK(found == 0x1e);
	h.vd = h.pbus.devs[h.slot]->opaque;
	FUZZ_CHECK(h.vd);
}

/* ---- what the device may write: walk everything it could pop ---------------------------- */

NO_COVERAGE static void mark(uint64_t addr, uint64_t len)
{
	if (len && in_ram(addr, len))
		iv_add(&h.allowed, addr, addr + len);
}

NO_COVERAGE static void walk_indirect(uint64_t addr, uint32_t len)
{
	if (!len || len % 16 || len / 16 > VIRTQ_MAX_CHAIN || !in_ram(addr, len))
		return;
	iv_add(&h.tables, addr, addr + len);
	/* Every writable entry, however the chain runs through the table. */
	for (uint32_t j = 0; j < len / 16; j++) {
		const uint8_t *d = h.ram + addr + 16 * j;
		uint16_t fl = ld16(d + 12);
		if ((fl & D_WRITE) && !(fl & D_INDIRECT))
			mark(ld32(d) | (uint64_t)ld32(d + 4) << 32, ld32(d + 8));
	}
}

/* Marks what the device may write for queue q: its used ring and the
 * writable buffers of every chain it could pop now. The walk from one
 * descriptor on is always the same, so a descriptor seen once per scan is
 * not followed again. */
NO_COVERAGE static void walk_queue(unsigned q)
{
	static uint8_t seen[VIRTQ_MAX_SIZE];
	struct virtq *vq = &h.vd->queues[q].vq;
	if (!vq->enabled)
		return;
	uint16_t size = vq->size;
	uint32_t d_off = host_off(vq->desc), a_off = host_off(vq->avail), u_off = host_off(vq->used);
	iv_add(&h.tables, d_off, d_off + 16ull * size);
	iv_add(&h.tables, a_off, a_off + 6 + 2ull * size);
	mark(u_off, 6 + 8ull * size);
	uint16_t pend = (uint16_t)(r16(a_off + 2) - vq->last_avail);
	if (pend > size)
		return;   /* the device refuses the ring */
	memset(seen, 0, size);
	for (uint16_t k = 0; k < pend; k++) {
		uint16_t idx = ld16(h.ram + a_off + 4 + 2 * ((vq->last_avail + k) & (size - 1)));
		for (unsigned steps = 0; idx < size && !seen[idx] && steps < size; steps++) {
			seen[idx] = 1;
			const uint8_t *d = h.ram + d_off + 16u * idx;
			uint64_t addr = ld32(d) | (uint64_t)ld32(d + 4) << 32;
			uint32_t len = ld32(d + 8);
			uint16_t fl = ld16(d + 12);
			if (fl & D_INDIRECT) {
				walk_indirect(addr, len);
				break;
			}
			if (fl & D_WRITE)
				mark(addr, len);
			if (!(fl & D_NEXT))
				break;
			idx = ld16(d + 14);
		}
	}
}

static void track_queues(void);

/* Before anything that may run the device on this thread. */
NO_COVERAGE static void device_about_to_run(void)
{
	track_queues();
	h.device_ran = true;
	if (h.threaded || !h.map_ok)
		return;
	for (unsigned q = 0; q < h.nq; q++)
		walk_queue(q);
	if (h.allowed.overflow || h.tables.overflow || iv_overlap(&h.allowed, &h.tables))
		h.map_ok = false;
}

/* Every byte the device changed since the last look lies where it may
 * write. Then the shadow copy takes the changes. */
NO_COVERAGE static void check_memory(void)
{
	if (h.threaded || !h.device_ran)
		return;
	h.device_ran = false;
	for (uint32_t off = 0; off < RAM_SIZE; off += 4096) {
		if (!page_differs(h.ram + off, h.snap + off))
			continue;
		h.touched[off / 4096] = 1;
		for (uint32_t i = off; i < off + 4096;) {
			if (h.ram[i] == h.snap[i]) {
				i++;
				continue;
			}
			if (!h.map_ok) {
				memcpy(h.snap + off, h.ram + off, 4096);
				break;
			}
			/* The interval that allows it, whose bytes all may change. */
			unsigned a = 0, b = h.allowed.n;
			while (a < b) {
				unsigned m = (a + b) / 2;
				if (h.allowed.v[m].hi <= i)
					a = m + 1;
				else
					b = m;
			}
			if (a == h.allowed.n || h.allowed.v[a].lo > i) {
				fprintf(stderr, "fuzz_virtio_net: the device wrote GPA %#x (%#x -> %#x)\n",
					i, h.snap[i], h.ram[i]);
				FUZZ_CHECK(!"device writes only used rings and writable buffers");
			}
			uint32_t end = h.allowed.v[a].hi < off + 4096 ? h.allowed.v[a].hi : off + 4096;
			memcpy(h.snap + i, h.ram + i, end - i);
			i = end;
		}
	}
}

/* ---- used->idx against avail->idx ------------------------------------------------------------ */

NO_COVERAGE static void track_queues(void)
{
	if (h.threaded || !h.vd)
		return;
	for (unsigned q = 0; q < h.nq; q++) {
		struct qstate *s = &h.qs[q];
		struct virtq *vq = &h.vd->queues[q].vq;
		if (!vq->enabled) {
			s->tr_en = false;
			continue;
		}
		uint16_t a = r16(host_off(vq->avail) + 2);
		if (!s->tr_en || s->tr_avail != (const volatile void *)vq->avail) {
			s->tr_en = true;
			s->tr_avail = vq->avail;
			s->tr_avail_last = a;
			s->tr_used_last = vq->used_idx;
			s->tr_a = (uint16_t)(a - vq->used_idx);
			s->tr_u = 0;
		}
		s->tr_a += (uint16_t)(a - s->tr_avail_last);
		s->tr_avail_last = a;
		s->tr_u += (uint16_t)(vq->used_idx - s->tr_used_last);
		s->tr_used_last = vq->used_idx;
		/* What the device's own copy of used->idx says is in guest RAM
		 * too, unless the guest wrote over it. */
		FUZZ_CHECK(s->tr_u <= s->tr_a);
		FUZZ_CHECK((uint16_t)(vq->last_avail - vq->used_idx) <= vq->size);
	}
}

/* ---- the fake backends -------------------------------------------------------------------------- */

NO_COVERAGE static void check_thread(void)
{
	if (h.threaded)
		FUZZ_CHECK(!pthread_equal(pthread_self(), h.main_thread));
	else
		FUZZ_CHECK(evloop_on_owner(&h.loop));
}

/* A frame from the guest: the header and length rules, and the bytes.
 * Returns its key (-1: none). */
NO_COVERAGE static int check_tx_frame(unsigned qp, const struct iovec *iov, unsigned n)
{
	const uint8_t *hd = NULL;
	unsigned first = 0;
	if (h.vnet_hdr) {
		FUZZ_CHECK(n >= 1 && iov[0].iov_len == HDR);
		/* The copy the device checked, never guest memory. */
		FUZZ_CHECK(!host_in_ram(iov[0].iov_base, 1));
		hd = iov[0].iov_base;
		first = 1;
	}
	FUZZ_CHECK(n - first <= VIRTQ_MAX_CHAIN);
	uint64_t flen = 0;
	for (unsigned i = first; i < n; i++) {
		if (iov[i].iov_len)
			FUZZ_CHECK(host_in_ram(iov[i].iov_base, iov[i].iov_len));
		flen += iov[i].iov_len;
	}
	bool host_gso = has(F_HOST_TSO4) || has(F_HOST_TSO6);
	FUZZ_CHECK(flen >= 1);
	FUZZ_CHECK(flen <= (host_gso ? GSO_MAX : MTU_FRAME));
	if (hd) {
		uint8_t fl = hd[0], gso = hd[1] & 0x7f;
		bool ecn = hd[1] & 0x80;
		FUZZ_CHECK(!(fl & ~1u));
		if (fl & 1) {
			FUZZ_CHECK(has(F_CSUM));
			FUZZ_CHECK((uint32_t)ld16(hd + 6) + ld16(hd + 8) + 2 <= flen);
		}
		if (gso) {
			FUZZ_CHECK((gso == 1 && has(F_HOST_TSO4)) || (gso == 4 && has(F_HOST_TSO6)));
			FUZZ_CHECK(fl & 1);
			FUZZ_CHECK(ld16(hd + 4) != 0);
			FUZZ_CHECK(!ecn || has(F_HOST_ECN));
		} else {
			FUZZ_CHECK(!ecn);
			if (has(F_MTU))
				FUZZ_CHECK(flen <= MTU_FRAME);
		}
		FUZZ_CHECK(ld16(hd + 2) <= flen);
		FUZZ_CHECK(ld16(hd + 10) == 0);
	} else if (has(F_MTU)) {
		FUZZ_CHECK(flen <= MTU_FRAME);
	}
	uint8_t *b = h.sbuf[qp];
	iov_to_buf(iov + first, n - first, 0, b, flen);
	int key = frame_key(b, flen);
	if (key < 0 || h.tampered)
		return key;
	/* One of ours: what the guest put in its buffers. */
	FUZZ_CHECK((unsigned)key < h.ntx);
	FUZZ_CHECK(h.tx[key].len == flen);
	FUZZ_CHECK(h.tx[key].pair == qp);
	FUZZ_CHECK(frame_is(b, (uint32_t)key, flen, h.wbuf[qp]));
	if (hd)
		FUZZ_CHECK(memcmp(hd, h.tx[key].hdr, 10) == 0);
	return key;
}

NO_COVERAGE static void log_send(unsigned qp, uint64_t len, int key)
{
	struct sendlog *l = &h.log[qp];
	if (l->n < sizeof(l->e) / sizeof(l->e[0])) {
		l->e[l->n].len = (uint32_t)len;
		l->e[l->n].key = key;
		l->n++;
	} else {
		h.tampered = true;   /* more than the harness keeps track of */
	}
}

static void push_frame(uint32_t len);

static int fb_send(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned n)
{
	FUZZ_CHECK(qp < be->queue_pairs);
	check_thread();
	int key = check_tx_frame(qp, iov, n);
	uint64_t len = iov_size(iov, n) - (h.vnet_hdr ? HDR : 0);
	int r = 0;
	pthread_mutex_lock(&h.blk);
	if (h.send_eagain) {
		h.send_eagain--;
		r = -EAGAIN;
	} else if (h.send_err) {
		h.send_err--;
		r = h.send_err_code;
	}
	if (r == 0)
		h.sends_ok++;
	else if (r != -EAGAIN || h.push)
		h.sends_dropped++;
	/* A pull backend's -EAGAIN is sent again later: not an outcome. */
	if (r != -EAGAIN || h.push)
		log_send(qp, len, key);
	pthread_mutex_unlock(&h.blk);
	/* libslirp answers ARP and DHCP from inside its input. */
	if (h.push && h.echo && h.attached && r == 0)
		push_frame(len < 1514 ? (uint32_t)len : 1514);
	return r;
}

static ssize_t fb_recv(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned n)
{
	FUZZ_CHECK(qp < be->queue_pairs);
	check_thread();
	FUZZ_CHECK(n >= 1 && n <= 1024);
	for (unsigned i = 0; i < n; i++) {
		FUZZ_CHECK(iov[i].iov_len > 0);
		FUZZ_CHECK(host_in_ram(iov[i].iov_base, iov[i].iov_len));
		if (!h.threaded && h.map_ok) {
			uint32_t o = host_off(iov[i].iov_base);
			FUZZ_CHECK(iv_has(&h.allowed, o) && iv_has(&h.allowed, o + iov[i].iov_len - 1));
		}
	}
	ssize_t r;
	pthread_mutex_lock(&h.blk);
	if (h.recv_eagain) {
		h.recv_eagain--;
		r = -EAGAIN;
	} else if (h.recv_err) {
		h.recv_err--;
		r = h.recv_err_code;
		if (r == -EFAULT || r == -EMSGSIZE)
			h.recv_toobig++;
		else if (r == -EIO || r == -ENOMEM)
			h.recv_errs++;
	} else {
		struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
		r = recvmsg(h.dev[qp], &m, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0)
			r = -errno;
		else if (r > 0)
			h.recv_frames++;
	}
	pthread_mutex_unlock(&h.blk);
	return r;
}

static int fb_fd(struct net_backend *be, unsigned qp)
{
	return qp < be->queue_pairs ? h.dev[qp] : -EINVAL;
}

static int fb_set_offloads(struct net_backend *be, uint64_t f)
{
	check_thread();
	/* The driver's features at the start, nothing at the stop. */
	FUZZ_CHECK(f == 0 || f == h.vd->driver_features);
	h.offloads_set = f;
	return 0;
}

static void fb_attach(struct net_backend *be, const struct net_port *port)
{
	FUZZ_CHECK(evloop_on_owner(be->loop));
	if (port) {
		FUZZ_CHECK(!h.attached);
		h.port = *port;
		h.attached = true;
	} else {
		h.attached = false;
	}
}

static const struct net_backend_ops pull_ops = {
	.send = fb_send, .recv = fb_recv, .fd = fb_fd, .set_offloads = fb_set_offloads,
};
static const struct net_backend_ops push_ops = { .send = fb_send, .attach = fb_attach };

/* A frame of len bytes for the guest, from the push backend (its loop is
 * this thread). */
static void push_frame(uint32_t len)
{
	static uint8_t b[140000];
	if (!h.attached || h.nrxf >= MAX_FRAMES || len > sizeof(b))
		return;
	unsigned seq = h.nrxf++;
	struct frame_rec *f = &h.rxf[seq];
	memset(f, 0, sizeof(*f));
	f->len = len;
	make_frame(b, 0x8000u | seq, len);
	h.given++;
	h.port.receive(h.port.ctx, b, len);
}

/* ---- the driver: rings ------------------------------------------------------------------------ */

struct gdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
};

NO_COVERAGE static bool kick_wanted(unsigned q, uint16_t old_idx)
{
	struct qstate *s = &h.qs[q];
	if (has(F_EVENT_IDX)) {
		uint16_t ev = r16(USED(q) + 4 + 8u * s->size);
		return (uint16_t)(s->avail_idx - ev - 1) < (uint16_t)(s->avail_idx - old_idx);
	}
	return !(r16(USED(q)) & 1);
}

static void kick(unsigned q, unsigned width, unsigned skew)
{
	h.work = true;
	uint64_t off = h.notify + (uint64_t)q * h.notify_mult + skew;
	mmio_wr(off, q, width);
	if (q < h.nq)
		h.qs[q].owed_kick = false;
}

/* What a driver does after posting: kick if the device asked for it (or
 * always, or never). */
static void maybe_kick(unsigned q, uint16_t old, bool never, bool always)
{
	bool want = kick_wanted(q, old);
	if (never) {
		if (want)
			h.qs[q].owed_kick = true;
		return;
	}
	if (want || always)
		kick(q, 2, 0);
}

/* Memory for buffers: a bump allocator per area. Wrapping around while a
 * chain that may use the memory is in flight makes buffers shared, so the
 * content checks stop. */
static uint64_t alloc(uint32_t *next, uint32_t base, uint32_t size, uint32_t len, bool busy)
{
	if (len > size)
		len = size;
	if (*next + len > size) {
		if (busy)
			h.tampered = true;
		*next = 0;
	}
	uint64_t g = base + *next;
	*next += (len + 15) & ~15u;
	return g;
}

NO_COVERAGE static bool kind_busy(int kind)
{
	for (unsigned q = 0; q < h.nq; q++)
		for (unsigned i = 0; i < h.qs[q].size && h.qs[q].inflight; i++)
			if (h.qs[q].rec[i].live && h.qs[q].rec[i].kind == kind)
				return true;
	return false;
}

/* Lays a chain out in queue q's table (or in an indirect table) and
 * records it. Returns its head, or -1 when the driver would not post it. */
static int post_chain(unsigned q, const struct gdesc *d, unsigned n, bool indirect, bool reuse,
		      int kind)
{
	struct qstate *s = &h.qs[q];
	uint16_t size = s->size;
	unsigned ndesc = indirect ? 1 : n;
	if (n == 0 || n > 16 || (!indirect && n > size))
		return -1;
	for (unsigned i = 0; i < ndesc; i++)
		if (s->busy[(s->next_desc + i) % size]) {
			if (!reuse)
				return -1;
			h.tampered = true;
		}
	uint16_t head = s->next_desc;
	if (indirect) {
		if (s->ind_next + 16 * n > IND_SIZE) {
			if (s->inflight)
				h.tampered = true;
			s->ind_next = 0;
		}
		uint64_t t = IND_BASE + IND_SIZE * (uint64_t)q + s->ind_next;
		s->ind_next += 16 * n;
		for (unsigned i = 0; i < n; i++)
			gw_desc(t + 16 * i, d[i].addr, d[i].len,
				(uint16_t)(d[i].flags | (i + 1 < n ? D_NEXT : 0)), (uint16_t)(i + 1));
		gw_desc(RING(q) + 16u * head, t, 16 * n, D_INDIRECT, 0);
	} else {
		for (unsigned i = 0; i < n; i++) {
			uint16_t idx = (uint16_t)((head + i) % size);
			gw_desc(RING(q) + 16u * idx, d[i].addr, d[i].len,
				(uint16_t)(d[i].flags | (i + 1 < n ? D_NEXT : 0)),
				(uint16_t)((idx + 1) % size));
		}
	}
	for (unsigned i = 0; i < ndesc; i++)
		s->busy[(head + i) % size] = 1;
	s->next_desc = (uint16_t)((head + ndesc) % size);
	struct rec *r = &s->rec[head];
	if (r->live)
		s->inflight--;
	memset(r, 0, sizeof(*r));
	r->live = true;
	r->kind = (uint8_t)kind;
	r->ndesc = (uint16_t)ndesc;
	s->inflight++;
	return head;
}

NO_COVERAGE static void publish(unsigned q, uint16_t head)
{
	struct qstate *s = &h.qs[q];
	gw16(AVAIL(q) + 4 + 2u * (s->avail_idx % s->size), head);
	s->avail_idx++;
	gw16(AVAIL(q) + 2, s->avail_idx);
}

NO_COVERAGE static void retire(unsigned q, uint16_t head)
{
	struct qstate *s = &h.qs[q];
	struct rec *r = &s->rec[head];
	for (unsigned i = 0; i < r->ndesc; i++)
		s->busy[(head + i) % s->size] = 0;
	r->live = false;
	s->inflight--;
}

/* ---- driver init and reset --------------------------------------------------------------------- */

static uint64_t device_features(void)
{
	cc_wr(DFSEL, 0, 4);
	uint64_t f = cc_rd(DF, 4);
	cc_wr(DFSEL, 1, 4);
	return f | cc_rd(DF, 4) << 32;
}

static void write_driver_features(uint64_t f)
{
	cc_wr(GFSEL, 0, 4);
	cc_wr(GF, (uint32_t)f, 4);
	cc_wr(GFSEL, 1, 4);
	cc_wr(GF, (uint32_t)(f >> 32), 4);
}

static void msix_enable(void)
{
	unsigned nvec = (cfg_rd(h.slot, h.msix_cap + 2u, 2) & 0x7ff) + 1;
	for (unsigned v = 0; v < nvec; v++) {
		uint64_t e = 0x4000 + 16u * v;
		mmio_wr(e + 0, 0xfee00000u, 4);
		mmio_wr(e + 4, 0, 4);
		mmio_wr(e + 8, 0x30 + v, 4);
		mmio_wr(e + 12, 0, 4);
	}
	cfg_wr(h.slot, h.msix_cap + 2u, 0x8000, 2);
}

/* The harness's side of a device reset: nothing is in flight any more. */
NO_COVERAGE static void forget_queues(void)
{
	for (unsigned q = 0; q < MAXQ; q++) {
		struct qstate *s = &h.qs[q];
		memset(s->busy, 0, sizeof(s->busy));
		for (unsigned i = 0; i < 256; i++)
			s->rec[i].live = false;
		s->inflight = 0;
		s->enabled = false;
		s->owed_kick = false;
		s->tr_en = false;
	}
	for (unsigned p = 0; p < MAXPAIRS; p++)
		h.log[p].n = 0;
	h.running = h.failed = false;
	h.neg = 0;
	h.active_pairs = 1;
	h.mac_known = false;
	h.reset_pending = true;
}

static void reset_device(void)
{
	device_about_to_run();
	cc_wr(STATUS, 0, 1);
	FUZZ_CHECK(status() == 0);
	forget_queues();
}

static void queue_setup(unsigned q, uint16_t size, uint64_t desc)
{
	static const uint8_t zero[0x4000];
	struct qstate *s = &h.qs[q];
	gw(RING(q), zero, sizeof(zero));
	cc_wr(QSEL, q, 2);
	cc_wr(QSIZE, size, 2);
	s->size = (uint16_t)cc_rd(QSIZE, 2);
	cc_wr(QMSIX, q + 1, 2);
	cc_wr(QDESC, desc, 8);
	cc_wr(QDRIVER, AVAIL(q), 8);
	cc_wr(QDEVICE, USED(q), 8);
	FUZZ_CHECK(cc_rd(QNOFF, 2) == q);
	cc_wr(QENABLE, 1, 2);
	s->enabled = cc_rd(QENABLE, 2) == 1;
	s->avail_idx = s->used_seen = s->next_desc = 0;
	s->ind_next = 0;
}

/* flags: 1 raw features; 2 no DRIVER_OK; 4 DRIVER_OK without FEATURES_OK;
 * 8 a status write that clears bits afterwards; 16 queue (which) set up
 * misaligned or outside RAM; 32 no MSI-X (INTx). */
static void driver_init(uint32_t fword, uint8_t sizes, uint8_t ctl, unsigned flags, unsigned which)
{
	reset_device();
	cc_wr(STATUS, ST_ACK, 1);
	cc_wr(STATUS, ST_ACK | ST_DRIVER, 1);
	uint64_t want = fword | BIT(F_VERSION_1);
	if (!(flags & 1))
		want &= h.dev_features;
	if (flags & 4) {
		/* DRIVER_OK before the features were accepted (3.1.1). */
		write_driver_features(want);
		cc_wr(STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK, 1);
		FUZZ_CHECK(!h.vd->started);
		return;
	}
	write_driver_features(want);
	cc_wr(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK, 1);
	if (!(status() & ST_FEATURES_OK)) {
		FUZZ_CHECK(want & ~h.dev_features);   /* refused only what we do not offer */
		return;
	}
	FUZZ_CHECK(!(want & ~h.dev_features));
	h.neg = want;
	if (!(flags & 32))
		msix_enable();
	cc_wr(MSIX, 0, 2);
	unsigned lrx = (sizes & 15) % 9, ltx = (sizes >> 4) % 9, lctl = (ctl & 15) % 9;
	for (unsigned q = 0; q < h.nq; q++) {
		bool is_ctrl = q == h.nq - 1, is_rx = !is_ctrl && !(q & 1);
		unsigned skip = is_ctrl ? 0x40 : is_rx ? 0x10 : 0x20;
		if ((ctl & skip) || (!is_ctrl && q >= 2 && (ctl & 0x80)))
			continue;
		uint64_t desc = RING(q);
		if ((flags & 16) && q == which % h.nq)
			desc = (which & 8) ? OUTSIDE : desc + 8;
		queue_setup(q, (uint16_t)(1u << (is_ctrl ? lctl : is_rx ? lrx : ltx)), desc);
	}
	if (flags & 2)
		return;
	device_about_to_run();
	cc_wr(STATUS, ST_RUNNING, 1);
	uint8_t st = status();
	FUZZ_CHECK(st & ST_DRIVER_OK);
	h.running = h.vd->started && !(st & ST_NEEDS_RESET);
	h.active_pairs = 1;
	if (flags & 8) {
		/* A driver may not clear bits; the device keeps them. */
		cc_wr(STATUS, ST_ACK, 1);
		FUZZ_CHECK(status() == st);
	}
	/* An I/O thread per pair, or none. */
	if (h.vd->started)
		FUZZ_CHECK(thread_count() == h.threads0 + (h.threaded ? h.pairs : 0));
	if (h.running && h.push)
		FUZZ_CHECK(h.attached);
	if (h.running && !h.push)
		FUZZ_CHECK(h.offloads_set == h.neg);
}

/* ---- the driver: what it posts ------------------------------------------------------------------- */

/* The rules of docs/networking.md for a TX chain whose readable bytes are
 * out_len long and start with header hd: does the backend get it? */
NO_COVERAGE static bool tx_expect(const uint8_t *hd, uint64_t out_len)
{
	if (out_len <= HDR)
		return false;
	uint64_t flen = out_len - HDR;
	uint8_t fl = hd[0], gso = hd[1] & 0x7f;
	bool ecn = hd[1] & 0x80;
	bool host_gso = has(F_HOST_TSO4) || has(F_HOST_TSO6);
	if (flen > (host_gso ? GSO_MAX : MTU_FRAME))
		return false;
	if (!gso && has(F_MTU) && flen > MTU_FRAME)
		return false;
	if (fl & ~1u)
		return false;
	if ((fl & 1) && (!has(F_CSUM) || (uint64_t)ld16(hd + 6) + ld16(hd + 8) + 2 > flen))
		return false;
	if (ld16(hd + 2) > flen)
		return false;
	if (!gso)
		return !ecn;
	if (!((gso == 1 && has(F_HOST_TSO4)) || (gso == 4 && has(F_HOST_TSO6))))
		return false;
	return (!ecn || has(F_HOST_ECN)) && (fl & 1) && ld16(hd + 4) != 0;
}

/* op TX: q bit 0 pair, q >> 1 garbage num_buffers; header flags a, gso
 * type b, hdr_len c, gso_size d, csum_start e & 0xffff, csum_offset
 * e >> 16; f bits 0-16 frame length, 17-19 frame pieces - 1, 20 header
 * and frame in the same descriptors, 21 indirect, 22 no kick, 23 header
 * descriptor writable, 24 a writable descriptor at the end, 25 a
 * zero-length descriptor after the header, 26 last piece outside RAM, 27
 * header split in two, 28-31 header descriptor that many bytes short. */
static void op_tx(const uint8_t *o)
{
	unsigned pair = o[1] % h.pairs, q = 2 * pair + 1;
	struct qstate *s = &h.qs[q];
	uint16_t c = ld16(o + 4), d = ld16(o + 6);
	uint32_t e = ld32(o + 8), f = ld32(o + 12);
	if (!s->enabled || h.ntx >= MAX_FRAMES)
		return;
	uint8_t hd[HDR] = { o[2], o[3], (uint8_t)c, (uint8_t)(c >> 8), (uint8_t)d, (uint8_t)(d >> 8),
			    (uint8_t)e, (uint8_t)(e >> 8), (uint8_t)(e >> 16), (uint8_t)(e >> 24),
			    (uint8_t)(o[1] >> 1), 0 };
	uint32_t flen = f & 0x1ffff, pieces = 1 + ((f >> 17) & 7), short_by = f >> 28;
	bool merged = f >> 20 & 1, indirect = f >> 21 & 1, nokick = f >> 22 & 1,
	     hdr_w = f >> 23 & 1, extra_w = f >> 24 & 1, zero = f >> 25 & 1, outside = f >> 26 & 1,
	     split = f >> 27 & 1;
	uint32_t hb = HDR - (short_by > HDR ? HDR : short_by);
	if (hb + flen > TX_SIZE)
		flen = TX_SIZE - hb;
	unsigned key = h.ntx;
	uint64_t g = alloc(&h.tx_next, TX_BASE, TX_SIZE, hb + flen, kind_busy(K_TX));
	memcpy(fbuf, hd, hb);
	make_frame(fbuf + hb, key, flen);
	gw(g, fbuf, hb + flen);

	struct gdesc dl[16];
	unsigned nd = 0;
	uint32_t pos = 0, body = hb + flen;
	if (!merged) {
		if (split && hb > 5) {
			dl[nd++] = (struct gdesc){ g, 5, hdr_w ? D_WRITE : 0 };
			dl[nd++] = (struct gdesc){ g + 5, hb - 5, hdr_w ? D_WRITE : 0 };
		} else {
			dl[nd++] = (struct gdesc){ g, hb, hdr_w ? D_WRITE : 0 };
		}
		pos = hb;
	}
	if (zero)
		dl[nd++] = (struct gdesc){ OUTSIDE, 0, 0 };
	unsigned firstpiece = nd;
	for (uint32_t i = 0; i < pieces; i++) {
		uint32_t a = pos + (body - pos) * i / pieces, z = pos + (body - pos) * (i + 1) / pieces;
		dl[nd++] = (struct gdesc){ g + a, z - a, (merged && i == 0 && hdr_w) ? D_WRITE : 0 };
	}
	bool bad_addr = false;
	if (outside)
		for (unsigned i = nd; i-- > firstpiece;)
			if (dl[i].len) {
				dl[i].addr = OUTSIDE;
				bad_addr = true;
				break;
			}
	if (extra_w)
		dl[nd++] = (struct gdesc){ g, 16, D_WRITE };

	/* What virtq_pop makes of it: readable bytes before the first
	 * writable descriptor; readable after writable is refused. */
	bool refused = bad_addr || (indirect && !has(F_INDIRECT)), seen_w = false;
	uint64_t out = 0;
	for (unsigned i = 0; i < nd; i++) {
		if (dl[i].flags & D_WRITE)
			seen_w = true;
		else if (seen_w)
			refused = true;
		else
			out += dl[i].len;
	}
	uint16_t old = s->avail_idx;
	int head = post_chain(q, dl, nd, indirect, false, K_TX);
	if (head < 0)
		return;
	/* The header the device reads: the first 12 readable bytes. */
	uint8_t eff[HDR];
	memcpy(eff, h.ram + g, HDR);
	struct rec *r = &s->rec[head];
	r->expect_send = !refused && tx_expect(eff, out);
	r->flen = out > HDR ? (uint32_t)(out - HDR) : 0;
	r->key = (hb == HDR && !hdr_w && flen >= 6) ? (int32_t)key : -1;
	h.tx[key].len = flen;
	memcpy(h.tx[key].hdr, hd, HDR);
	h.tx[key].hdr[10] = h.tx[key].hdr[11] = 0;
	h.tx[key].pair = (uint8_t)pair;
	h.ntx++;
	publish(q, (uint16_t)head);
	maybe_kick(q, old, nokick, false);
}

/* op RX_POST: q pair; a + 1 chains (at most 64) of c | (b >> 7) << 16
 * bytes each (plus i * (d >> 8) for chain i), b bits 0-2 pieces - 1, 3
 * indirect, 4 all read-only, 5 last piece outside RAM, 6 a zero-length
 * descriptor; d bit 0 no kick, 1 reuse descriptors still in flight, 2
 * first piece read-only, 3 always kick. */
static void op_rx_post(const uint8_t *o)
{
	unsigned pair = o[1] % h.pairs, q = 2 * pair;
	struct qstate *s = &h.qs[q];
	if (!s->enabled)
		return;
	uint8_t b = o[3];
	uint16_t d = ld16(o + 6);
	unsigned n = 1 + (o[2] & 63), pieces = 1 + (b & 7);
	uint32_t len0 = ld16(o + 4) | (uint32_t)(b >> 7) << 16;
	bool indirect = b >> 3 & 1, ro = b >> 4 & 1, outside = b >> 5 & 1, zero = b >> 6 & 1;
	bool nokick = d & 1, reuse = d >> 1 & 1, first_ro = d >> 2 & 1, always = d >> 3 & 1;
	uint16_t old = s->avail_idx;
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = (len0 + i * (uint32_t)(d >> 8)) & 0x1ffff;
		uint64_t g = alloc(&h.rx_next, RX_BASE, RX_SIZE, len, kind_busy(K_RX));
		if (len > RX_SIZE)
			len = RX_SIZE;
		struct gdesc dl[16];
		unsigned nd = 0;
		for (uint32_t k = 0; k < pieces; k++) {
			uint32_t a = len * k / pieces, z = len * (k + 1) / pieces;
			uint16_t fl = (ro || (first_ro && k == 0)) ? 0 : D_WRITE;
			dl[nd++] = (struct gdesc){ g + a, z - a, fl };
			if (zero && k == 0)
				dl[nd++] = (struct gdesc){ OUTSIDE, 0, D_WRITE };
		}
		bool bad_addr = false;
		if (outside)
			for (unsigned k = nd; k-- > 0;)
				if (dl[k].len) {
					dl[k].addr = OUTSIDE;
					bad_addr = true;
					break;
				}
		int head = post_chain(q, dl, nd, indirect, reuse, K_RX);
		if (head < 0)
			break;
		struct rec *r = &s->rec[head];
		r->mq_epoch = h.mq_lowered;
		bool seen_w = false, order = false;
		for (unsigned k = 0; k < nd; k++) {
			if (dl[k].flags & D_WRITE) {
				seen_w = true;
				r->wlen += dl[k].len;
				if (dl[k].len)
					r->seg[r->nseg++] = (typeof(r->seg[0])){ (uint32_t)dl[k].addr, dl[k].len };
			} else if (seen_w) {
				order = true;
			}
		}
		r->refuse = bad_addr || order || (indirect && !has(F_INDIRECT)) ||
			    r->wlen <= (has(F_MRG_RXBUF) ? HDR - 1 : HDR);
		publish(q, (uint16_t)head);
	}
	maybe_kick(q, old, nokick, always);
}

/* The spec's answer to a control command (5.1.6.5), written apart from
 * virtio/net.c: data are the dlen bytes after {class, command}. */
NO_COVERAGE static uint8_t ctrl_expect(uint8_t cls, uint8_t cmd, const uint8_t *data, size_t dlen, struct rec *r)
{
	switch (cls) {
	case 0:   /* RX: PROMISC, ALLMULTI */
		return has(F_CTRL_RX) && dlen == 1 && cmd <= 1 ? 0 : 1;
	case 1:   /* MAC */
		if (cmd == 0 && has(F_CTRL_RX)) {   /* TABLE_SET: two {le32 n; n MACs} */
			size_t off = 0;
			for (int t = 0; t < 2; t++) {
				if (dlen - off < 4)
					return 1;
				uint32_t cnt = ld32(data + off);
				off += 4;
				if (cnt > (dlen - off) / 6)
					return 1;
				off += 6 * (size_t)cnt;
			}
			return off == dlen ? 0 : 1;
		}
		if (cmd == 1 && has(F_CTRL_MAC_ADDR) && dlen == 6) {
			r->ctrl_what = 1;
			memcpy(r->mac, data, 6);
			return 0;
		}
		return 1;
	case 3:   /* ANNOUNCE_ACK */
		return cmd == 0 && has(F_GUEST_ANNOUNCE) && dlen == 0 ? 0 : 1;
	case 4: { /* MQ VQ_PAIRS_SET */
		if (cmd != 0 || !has(F_MQ) || dlen != 2)
			return 1;
		uint16_t v = ld16(data);
		if (v < 1 || v > h.pairs)
			return 1;
		r->ctrl_what = 2;
		r->pairs = v;
		if (v < h.pairs)
			h.mq_lowered++;
		return 0;
	}
	}
	return 1;
}

/* op CTRL: class a, command b, c & 0x1ff data bytes (e, f, then a
 * pattern); d bit 0 header and data in one descriptor, 1 no ack, 2 ack
 * read-only, 3 ack zero-length, 4 ack two bytes, 5 data writable, 6 no
 * kick, 7 indirect, 8 data is a MAC table of e & 0x7f and f & 0x7f
 * entries, (c >> 9) & 31 bytes longer, or if c >> 14 shorter. */
static void op_ctrl(const uint8_t *o)
{
	unsigned q = h.nq - 1;
	struct qstate *s = &h.qs[q];
	if (!s->enabled)
		return;
	uint8_t cls = o[2], cmd = o[3];
	uint16_t c = ld16(o + 4), d = ld16(o + 6);
	uint32_t e = ld32(o + 8), f = ld32(o + 12);
	static uint8_t buf[2 + 2048 + 8];
	size_t dlen;
	buf[0] = cls;
	buf[1] = cmd;
	uint8_t *data = buf + 2;
	if (d & 0x100) {
		uint32_t nuc = e & 0x7f, nmc = f & 0x7f;
		size_t p = 0;
		for (int t = 0; t < 2; t++) {
			uint32_t cnt = t ? nmc : nuc;
			memcpy(data + p, &cnt, 4);
			p += 4;
			for (uint32_t i = 0; i < 6 * cnt; i++)
				data[p++] = (uint8_t)(i * 11 + t);
		}
		size_t adj = (c >> 9) & 31;
		dlen = (c >> 14) ? (adj < p ? p - adj : 0) : p + adj;
		for (size_t i = p; i < dlen; i++)
			data[i] = (uint8_t)i;
	} else {
		dlen = c & 0x1ff;
		for (size_t i = 0; i < dlen; i++)
			data[i] = i < 4 ? (uint8_t)(e >> (8 * i)) : i < 8 ? (uint8_t)(f >> (8 * (i - 4)))
					: (uint8_t)(i * 37 + cls);
	}
	bool merged = d & 1, noack = d >> 1 & 1, ack_ro = d >> 2 & 1, ack_zero = d >> 3 & 1,
	     ack2 = d >> 4 & 1, data_w = d >> 5 & 1, nokick = d >> 6 & 1, indirect = d >> 7 & 1;
	uint32_t acklen = ack_zero ? 0 : ack2 ? 2 : 1;
	uint64_t g = alloc(&h.ctrl_next, CTRL_BASE, CTRL_SIZE, (uint32_t)(2 + dlen + 2),
			   kind_busy(K_CTRL));
	uint64_t ack = g + 2 + dlen;
	uint8_t ackb[2] = { 0xee, 0xee };
	gw(g, buf, 2 + dlen);
	gw(ack, ackb, 2);
	struct gdesc dl[4];
	unsigned nd = 0;
	if (merged) {
		dl[nd++] = (struct gdesc){ g, (uint32_t)(2 + dlen), data_w ? D_WRITE : 0 };
	} else {
		dl[nd++] = (struct gdesc){ g, 2, 0 };
		if (dlen)
			dl[nd++] = (struct gdesc){ g + 2, (uint32_t)dlen, data_w ? D_WRITE : 0 };
	}
	if (!noack)
		dl[nd++] = (struct gdesc){ ack, acklen, ack_ro ? 0 : D_WRITE };
	/* What the device sees: readable bytes, then writable ones. */
	static uint8_t outb[2 + 2048 + 8];
	size_t out = 0;
	unsigned nin = 0;
	bool order = false;
	uint32_t last_in_len = 0;
	uint64_t last_in = 0;
	for (unsigned i = 0; i < nd; i++) {
		if (dl[i].flags & D_WRITE) {
			nin++;
			last_in = dl[i].addr;
			last_in_len = dl[i].len;
		} else if (nin) {
			order = true;
		} else {
			memcpy(outb + out, h.ram + dl[i].addr, dl[i].len);
			out += dl[i].len;
		}
	}
	uint16_t old = s->avail_idx;
	int head = post_chain(q, dl, nd, indirect, false, K_CTRL);
	if (head < 0)
		return;
	struct rec *r = &s->rec[head];
	bool refused = order || (indirect && !has(F_INDIRECT));
	if (refused || nin == 0 || last_in_len == 0 || out < 2) {
		r->expect_len = 0;
	} else {
		r->expect_len = 1;
		r->ack_gpa = (uint32_t)(last_in + last_in_len - 1);
		r->expect_ack = ctrl_expect(outb[0], outb[1], outb + 2, out - 2, r);
	}
	publish(q, (uint16_t)head);
	maybe_kick(q, old, nokick, false);
}

/* op BACKEND_FRAME: pull: 1 + ((q >> 1) & 7) frames for pair q & 1 with
 * header {flags a, gso type b, hdr_len c, gso_size d, csum e, num_buffers
 * f >> 17}; push: that many frames for the port; f & 0x1ffff bytes each. */
static void op_frame(const uint8_t *o)
{
	unsigned count = 1 + ((o[1] >> 1) & 7), pair = o[1] % h.pairs;
	uint16_t c = ld16(o + 4), d = ld16(o + 6);
	uint32_t e = ld32(o + 8), f = ld32(o + 12), len = f & 0x1ffff;
	for (unsigned i = 0; i < count; i++) {
		if (h.push) {
			device_about_to_run();
			push_frame(len);
			continue;
		}
		if (h.peer[pair] < 0 || h.nrxf >= MAX_FRAMES)
			return;
		unsigned seq = h.nrxf;
		struct frame_rec *fr = &h.rxf[seq];
		uint8_t hd[HDR] = { o[2], o[3], (uint8_t)c, (uint8_t)(c >> 8), (uint8_t)d,
				    (uint8_t)(d >> 8), (uint8_t)e, (uint8_t)(e >> 8), (uint8_t)(e >> 16),
				    (uint8_t)(e >> 24), (uint8_t)(f >> 17), (uint8_t)(f >> 25) };
		size_t hl = h.vnet_hdr ? HDR : 0;
		memcpy(fbuf, hd, hl);
		make_frame(fbuf + hl, 0x8000u | seq, len);
		if (send(h.peer[pair], fbuf, hl + len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(hl + len))
			return;   /* the TAP's queue is full */
		h.work = true;
		memset(fr, 0, sizeof(*fr));
		fr->len = len;
		memcpy(fr->hdr, hd, HDR);
		fr->pair = (uint8_t)pair;
		h.nrxf++;
	}
}

/* op BACKEND_CTL: a & 7: 0 the next b sends say -EAGAIN; 1 the next b
 * sends fail with (c & 3) -EIO, -ENOBUFS, -EPIPE, -EINVAL; 2 the next b
 * recvs say -EAGAIN; 3 the next b recvs fail with (c % 7) -EIO, -EFAULT,
 * -EMSGSIZE, -EINTR, -EBADF, -ENOMEM, 0 (peer closed); 4 the peer of
 * pair q & 1 hangs up; 5 push: echo = b & 1. */
static void op_backend(const uint8_t *o)
{
	static const int send_codes[4] = { -EIO, -ENOBUFS, -EPIPE, -EINVAL };
	static const int recv_codes[7] = { -EIO, -EFAULT, -EMSGSIZE, -EINTR, -EBADF, -ENOMEM, 0 };
	uint8_t b = o[3];
	uint16_t c = ld16(o + 4);
	pthread_mutex_lock(&h.blk);
	switch (o[2] & 7) {
	case 0: h.send_eagain = b; break;
	case 1: h.send_err = b; h.send_err_code = send_codes[c & 3]; break;
	case 2: h.recv_eagain = b; break;
	case 3: h.recv_err = b; h.recv_err_code = recv_codes[c % 7]; break;
	case 4: {
		unsigned p = o[1] % h.pairs;
		if (!h.push && h.peer[p] >= 0) {
			close(h.peer[p]);
			h.peer[p] = -1;
			h.fatal = true;   /* the device fails the pair, or will */
		}
		break;
	}
	case 5: h.echo = b & 1; break;
	}
	if ((o[2] & 7) == 3 && b && (h.recv_err_code == -EBADF || h.recv_err_code == 0))
		h.fatal = true;
	if ((o[2] & 7) == 1 && b && h.send_err_code == -EPIPE)
		h.fatal = true;
	pthread_mutex_unlock(&h.blk);
}

/* ---- after each step: what the device returned --------------------------------------------------- */

NO_COVERAGE static void check_rx_used(unsigned q, uint16_t from, uint16_t n)
{
	struct qstate *s = &h.qs[q];
	unsigned pair = q / 2;
	bool full_hdr = h.push || !h.vnet_hdr, mrg = has(F_MRG_RXBUF);
	for (uint16_t i = 0; i < n;) {
		uint64_t el = USED(q) + 4 + 8u * ((uint16_t)(from + i) % s->size);
		uint32_t id = r32(el), len = r32(el + 4);
		if (!(id < s->size && s->rec[id].live && s->rec[id].kind == K_RX))
			fprintf(stderr, "fuzz_virtio_net: queue %u used element %u: head %u (len %u), "
				"which the driver did not make available or already got back\n",
				q, (unsigned)(uint16_t)(from + i), id, len);
		FUZZ_CHECK(id < s->size && s->rec[id].live && s->rec[id].kind == K_RX);
		struct rec *r0 = &s->rec[id];
		if (r0->refuse) {
			FUZZ_CHECK(len == 0);
			retire(q, (uint16_t)id);
			i++;
			continue;
		}
		if (len == 0) {
			/* A good chain goes back unused only when multiqueue
			 * switched its pair off (and it could not be unpopped). */
			FUZZ_CHECK(pair >= 1 && h.mq_lowered > r0->mq_epoch);
			retire(q, (uint16_t)id);
			i++;
			continue;
		}
		FUZZ_CHECK(len >= HDR && len <= r0->wlen);
		/* The header is in the first buffer (MRG: each holds >= 12). */
		uint8_t hd[HDR];
		size_t got = 0;
		for (unsigned k = 0; k < r0->nseg && got < HDR; k++) {
			uint32_t l = r0->seg[k].len < HDR - got ? r0->seg[k].len : (uint32_t)(HDR - got);
			memcpy(hd + got, h.ram + r0->seg[k].gpa, l);
			got += l;
		}
		FUZZ_CHECK(got == HDR);
		uint16_t nb = ld16(hd + 10);
		FUZZ_CHECK(nb >= 1 && (mrg || nb == 1));
		FUZZ_CHECK(nb <= n - i);   /* all of a frame's elements at once */
		size_t total = 0;
		for (uint16_t j = 0; j < nb; j++) {
			uint64_t ej = USED(q) + 4 + 8u * ((uint16_t)(from + i + j) % s->size);
			uint32_t idj = r32(ej), lj = r32(ej + 4);
			FUZZ_CHECK(idj < s->size && s->rec[idj].live && s->rec[idj].kind == K_RX);
			struct rec *rj = &s->rec[idj];
			FUZZ_CHECK(!rj->refuse);
			FUZZ_CHECK(lj >= 1 && lj <= rj->wlen);
			if (j + 1 < nb)
				FUZZ_CHECK(lj == rj->wlen);   /* full, but for the last */
			FUZZ_CHECK(total + lj <= HDR + FRAME_MAX);
			for (unsigned k = 0, left = lj; k < rj->nseg && left; k++) {
				uint32_t l = rj->seg[k].len < left ? rj->seg[k].len : left;
				memcpy(gbuf + total, h.ram + rj->seg[k].gpa, l);
				total += l;
				left -= l;
			}
			retire(q, (uint16_t)idj);
		}
		FUZZ_CHECK(total > HDR);
		/* A push frame was refused over 65550 bytes; a pull backend's
		 * frame gets to the guest when its buffers hold it. */
		if (h.push)
			FUZZ_CHECK(total <= HDR + GSO_MAX);
		if (!has(F_GUEST_CSUM))
			FUZZ_CHECK(gbuf[0] == 0);
		if (full_hdr)
			for (int k = 0; k < 10; k++)
				FUZZ_CHECK(gbuf[k] == 0);
		size_t flen = total - HDR;
		if (!h.push)
			FUZZ_CHECK(flen >= 14);   /* runts are dropped */
		int key = frame_key(gbuf + HDR, flen);
		if (flen >= 6) {
			/* Every frame the backend has carries its key. */
			FUZZ_CHECK(key >= 0x8000 && (unsigned)(key - 0x8000) < h.nrxf);
			struct frame_rec *fr = &h.rxf[key - 0x8000];
			FUZZ_CHECK(!fr->delivered);
			FUZZ_CHECK(fr->len == flen && fr->pair == pair);
			FUZZ_CHECK(key > h.last_rx_key[pair]);   /* in order */
			FUZZ_CHECK(frame_is(gbuf + HDR, (uint32_t)key, flen, want_rx));
			if (!full_hdr) {
				FUZZ_CHECK(memcmp(gbuf + 1, fr->hdr + 1, 9) == 0);
				FUZZ_CHECK(gbuf[0] == (has(F_GUEST_CSUM) ? fr->hdr[0] : 0));
			}
			fr->delivered = true;
			h.last_rx_key[pair] = key;
		}
		h.frames_seen++;
		i = (uint16_t)(i + nb);
	}
}

NO_COVERAGE static void check_tx_used(unsigned q, uint16_t from, uint16_t n)
{
	struct qstate *s = &h.qs[q];
	struct sendlog *l = &h.log[q / 2];
	unsigned taken = 0;
	pthread_mutex_lock(&h.blk);
	for (uint16_t i = 0; i < n; i++) {
		uint64_t el = USED(q) + 4 + 8u * ((uint16_t)(from + i) % s->size);
		uint32_t id = r32(el), len = r32(el + 4);
		FUZZ_CHECK(id < s->size && s->rec[id].live && s->rec[id].kind == K_TX);
		FUZZ_CHECK(len == 0);
		struct rec *r = &s->rec[id];
		if (r->expect_send) {
			/* Sent, and in the order the driver posted. */
			FUZZ_CHECK(taken < l->n);
			FUZZ_CHECK(l->e[taken].len == r->flen);
			FUZZ_CHECK(l->e[taken].key == r->key);
			taken++;
		}
		retire(q, (uint16_t)id);
	}
	memmove(l->e, l->e + taken, (l->n - taken) * sizeof(l->e[0]));
	l->n -= taken;
	pthread_mutex_unlock(&h.blk);
}

NO_COVERAGE static void check_ctrl_used(unsigned q, uint16_t from, uint16_t n)
{
	struct qstate *s = &h.qs[q];
	for (uint16_t i = 0; i < n; i++) {
		uint64_t el = USED(q) + 4 + 8u * ((uint16_t)(from + i) % s->size);
		uint32_t id = r32(el), len = r32(el + 4);
		FUZZ_CHECK(id < s->size && s->rec[id].live && s->rec[id].kind == K_CTRL);
		struct rec *r = &s->rec[id];
		FUZZ_CHECK(len == r->expect_len);
		if (len) {
			FUZZ_CHECK(h.ram[r->ack_gpa] == r->expect_ack);
			if (r->expect_ack == 0 && r->ctrl_what == 1) {
				h.mac_known = true;
				memcpy(h.mac, r->mac, 6);
			}
			if (r->expect_ack == 0 && r->ctrl_what == 2)
				h.active_pairs = r->pairs;
		}
		retire(q, (uint16_t)id);
	}
}

NO_COVERAGE static void check_used(void)
{
	if (h.tampered) {
		for (unsigned p = 0; p < MAXPAIRS; p++)
			h.log[p].n = 0;
		return;
	}
	for (unsigned q = 0; q < h.nq; q++) {
		struct qstate *s = &h.qs[q];
		if (!s->enabled)
			continue;
		uint16_t now = r16(USED(q) + 2), n = (uint16_t)(now - s->used_seen);
		FUZZ_CHECK(n <= s->inflight);
		if (!n)
			continue;
		if (q == h.nq - 1)
			check_ctrl_used(q, s->used_seen, n);
		else if (q & 1)
			check_tx_used(q, s->used_seen, n);
		else
			check_rx_used(q, s->used_seen, n);
		s->used_seen = now;
	}
	if (!h.threaded) {
		/* Every send so far belongs to a used element. */
		for (unsigned p = 0; p < h.pairs; p++)
			FUZZ_CHECK(h.log[p].n == 0);
	}
	if (h.mac_known && h.running) {
		for (unsigned i = 0; i < 6; i++)
			FUZZ_CHECK(mmio_rd(h.devcfg + i, 1) == h.mac[i]);
	}
}

NO_COVERAGE static uint64_t push_pending(void)
{
	struct virtio_net_stats st;
	virtio_net_get_stats(h.n, &st);
	uint64_t out = st.rx_frames + st.rx_dropped_no_buffers + st.rx_too_big + st.rx_dropped_reset;
	FUZZ_CHECK(out <= h.given);
	return h.given - out;
}

/* A driver that kicked whenever the device asked for it loses no wake-up. */
NO_COVERAGE static void check_liveness(void)
{
	if (h.threaded || h.tampered || !h.running || h.failed)
		return;
	for (unsigned p = 0; p < h.pairs && p < h.active_pairs; p++) {
		struct qstate *t = &h.qs[2 * p + 1], *r = &h.qs[2 * p];
		if (t->enabled && !t->owed_kick)
			FUZZ_CHECK(h.vd->queues[2 * p + 1].vq.last_avail == t->avail_idx);
		if (!r->enabled || r->owed_kick)
			continue;
		uint64_t space = 0;
		unsigned good = 0;
		for (unsigned i = 0; i < r->size; i++)
			if (r->rec[i].live && !r->rec[i].refuse) {
				space += r->rec[i].wlen;
				good++;
			}
		bool pending;
		uint64_t need;
		if (h.push) {
			pending = push_pending() > 0;
			need = HDR + GSO_MAX;
		} else {
			int v = 0;
			FUZZ_CHECK(ioctl(h.dev[p], FIONREAD, &v) == 0);
			pending = v > 0;
			bool gg = has(F_GUEST_TSO4) || has(F_GUEST_TSO6) || has(F_GUEST_UFO);
			need = HDR + (gg ? GSO_MAX : MTU_FRAME);
		}
		if (pending && (has(F_MRG_RXBUF) ? space >= need : good >= 1)) {
			fprintf(stderr, "fuzz_virtio_net: pair %u: frames wait, %u buffers (%llu bytes) "
				"posted\n", p, good, (unsigned long long)space);
			FUZZ_CHECK(!"RX does not stall while buffers are posted");
		}
	}
	struct qstate *c = &h.qs[h.nq - 1];
	if (c->enabled && !c->owed_kick)
		FUZZ_CHECK(h.vd->queues[h.nq - 1].vq.last_avail == c->avail_idx);
}

/* The threaded mode: wait until the device has looked at its kicks and
 * nothing moved for a little while (at most a few ms). */
NO_COVERAGE static void settle(void)
{
	uint64_t prev = ~0ull;
	if (!h.vd->started)
		return;
	for (int i = 0; i < 100; i++) {
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
		struct virtio_net_stats st;
		virtio_net_get_stats(h.n, &st);
		uint64_t sig = st.rx_frames * 3 + st.tx_frames * 5 + st.rx_kicks * 7 + st.tx_kicks * 11 +
			       st.ctrl_cmds * 13 + st.backend_wakeups * 17 + st.rx_bad_chain * 19;
		bool kicks = false;
		for (unsigned q = 0; q < h.nq; q++) {
			struct pollfd pf = { .fd = h.vd->queues[q].kick_fd, .events = POLLIN };
			if (poll(&pf, 1, 0) == 1)
				kicks = true;
			sig = sig * 31 + r16(USED(q) + 2);
		}
		if (!kicks && sig == prev)
			break;
		prev = sig;
	}
}

/* Runs the device until it has nothing left to do. */
static void drain(void)
{
	if (h.threaded) {
		if (h.work)
			settle();
		h.work = false;
		return;
	}
	/* Kicks are eventfd writes: the device runs only in here (and in
	 * the MMIO writes and port calls marked with device_about_to_run). */
	struct pollfd pf = { .fd = h.loop.epfd, .events = POLLIN };
	if (poll(&pf, 1, 0) != 1)
		return;
	device_about_to_run();
	for (int i = 0;; i++) {
		int n = evloop_run_once(&h.loop, 0);
		FUZZ_CHECK(n >= 0);
		if (n == 0)
			break;
		FUZZ_CHECK(i < DRAIN_MAX);   /* no busy loop */
	}
}

static void after_op(void)
{
	drain();
	check_memory();
	track_queues();
	uint8_t st = status();
	if (st & ST_NEEDS_RESET) {
		h.failed = true;
		/* A started device that failed may have lost frames without
		 * counting them (the counters only promise the rest). */
		if (h.vd->started)
			h.failed_ever = true;
	}
	check_used();
	check_liveness();
	if (h.reset_pending) {
		/* Nothing may be written to the old rings or buffers now. */
		h.allowed.n = h.tables.n = 0;
		h.allowed.overflow = h.tables.overflow = false;
		h.reset_pending = false;
	}
}

/* ---- the ops --------------------------------------------------------------------------------------- */

static void run_op(const uint8_t *o)
{
	uint8_t a = o[2], b = o[3];
	uint16_t c = ld16(o + 4), d = ld16(o + 6);
	uint32_t e = ld32(o + 8), f = ld32(o + 12);
	switch (o[0] % 16) {
	case 0:
	case 14:
		op_tx(o);
		break;
	case 1:
	case 15:
		op_rx_post(o);
		break;
	case 2: { /* KICK queue q (any, also past the last), width 1 << (a & 3), at a >> 2 & 3 */
		unsigned q = o[1] % (h.nq + 2);
		kick(q, 1u << (a & 3), (a >> 2) & 3);
		break;
	}
	case 3:
		op_ctrl(o);
		break;
	case 4: { /* MSIX: vector c of queue q (or the config vector); a bit 0: MSI-X control
		   * enable a & 2, function mask a & 4; bit 3: mask table entry c (a >> 4 & 1) */
		unsigned t = o[1] % (h.nq + 1);
		if (t < h.nq) {
			cc_wr(QSEL, t, 2);
			cc_wr(QMSIX, c, 2);
		} else {
			cc_wr(MSIX, c, 2);
		}
		if (a & 1)
			cfg_wr(h.slot, h.msix_cap + 2u, (a & 2 ? 0x8000u : 0) | (a & 4 ? 0x4000u : 0), 2);
		if (a & 8)
			mmio_wr(0x4000 + 16u * (c % (h.nq + 1)) + 12, (a >> 4) & 1, 4);
		break;
	}
	case 5: /* RESET: status 0; unless a & 1, init again with features e, sizes b, c &
		 * 0xff as header byte 6, flags a >> 1 (driver_init), hostile queue d */
		if (a & 1)
			reset_device();
		else
			driver_init(e, b, (uint8_t)c, a >> 1, d);
		break;
	case 6: { /* AVAIL of queue q: a & 1 ? idx = c : idx += c; a & 2: ring slot idx + b = d;
		   * a & 4: kick */
		unsigned q = o[1] % h.nq;
		struct qstate *s = &h.qs[q];
		if (!s->size)
			break;
		h.tampered = true;
		s->avail_idx = (a & 1) ? c : (uint16_t)(s->avail_idx + c);
		gw16(AVAIL(q) + 2, s->avail_idx);
		if (a & 2)
			gw16(AVAIL(q) + 4 + 2u * ((uint16_t)(s->avail_idx + b) % s->size), d);
		if (a & 4)
			kick(q, 2, 0);
		break;
	}
	case 7: { /* RAW_DESC in queue q's table, entry c (a & 1: its indirect area); address
		   * by b & 3 (TX area, RX area, raw e, anywhere in RAM) + e; length f (b & 4:
		   * f & 0xffff); flags a >> 1 & 7; next d; b & 8 publish c, b & 16 kick */
		unsigned q = o[1] % h.nq;
		struct qstate *s = &h.qs[q];
		if (!s->size)
			break;
		h.tampered = true;
		uint64_t at = (a & 1) ? IND_BASE + IND_SIZE * (uint64_t)q + (16u * c) % IND_SIZE
				      : RING(q) + 16u * (c % 256);
		static const uint32_t base[4] = { TX_BASE, RX_BASE, 0, 0 };
		static const uint32_t span[4] = { TX_SIZE, RX_SIZE, 0, RAM_SIZE };
		uint64_t addr = span[b & 3] ? base[b & 3] + e % span[b & 3] : e;
		gw_desc(at, addr, (b & 4) ? (f & 0xffff) : f, (a >> 1) & 7, d);
		if (b & 8)
			publish(q, (uint16_t)(c % s->size));
		if (b & 16)
			kick(q, 2, 0);
		break;
	}
	case 8:
		op_frame(o);
		break;
	case 9:
		op_backend(o);
		break;
	case 10: /* SETTLE (threaded), and read ISR */
		h.work = true;
		mmio_rd(h.isr, 1);
		break;
	case 11: { /* CC_WRITE: common config at c % 0x38, width 1 << (a & 3), value e | f << 32 */
		unsigned w = 1u << (a & 3), off = c % CC_LEN;
		h.tampered = true;
		h.work = true;
		device_about_to_run();
		if (off + w > CC_LEN)
			off = CC_LEN - w;
		bool was = h.vd->started;
		mmio_wr(h.common + off, e | (uint64_t)f << 32, w);
		if (status() == 0 || (was && !h.vd->started))
			forget_queues();
		h.running = h.vd->started;
		h.neg = h.vd->started ? h.vd->driver_features : h.neg;
		break;
	}
	case 12: { /* CFG_READ: device config at c % 32, common config at d % 0x38, width 1 << (a & 3) */
		unsigned w = 1u << (a & 3);
		mmio_rd(h.devcfg + c % 32, w);
		unsigned off = d % CC_LEN;
		mmio_rd(h.common + (off + w > CC_LEN ? CC_LEN - w : off), w);
		break;
	}
	case 13: { /* GUEST_WRITE: 4 bytes e at f in (b & 3) RAM, queue q's rings, TX area, RX area */
		static const uint32_t base[4] = { 0, 0, TX_BASE, RX_BASE };
		static const uint32_t span[4] = { RAM_SIZE, 0x4000, TX_SIZE, RX_SIZE };
		uint32_t bs = (b & 3) == 1 ? RING(o[1] % h.nq) : base[b & 3];
		uint8_t v[4] = { (uint8_t)e, (uint8_t)(e >> 8), (uint8_t)(e >> 16), (uint8_t)(e >> 24) };
		h.tampered = true;
		gw(bs + (f % span[b & 3] & ~3u), v, 4);
		break;
	}
	}
}

/* ---- one input ----------------------------------------------------------------------------------- */

static void setup(uint8_t mode)
{
	memset(&h.vm, 0, sizeof(h.vm));
	memset(&h.pbus, 0, sizeof(h.pbus));
	h.n = NULL;
	h.vd = NULL;
	h.vm.kvm_fd = h.vm.vm_fd = h.vm.stop_fd = -1;
	h.vm.ram = h.ram;
	h.vm.ram_size = h.vm.ram_low = RAM_SIZE;
	/* The RAM the last input changed (all of it after a threaded one,
	 * whose device writes are not tracked). */
	for (unsigned pg = 0; pg < PAGES; pg++)
		if (h.all_touched || h.touched[pg]) {
			memset(h.ram + 4096 * pg, 0, 4096);
			memset(h.snap + 4096 * pg, 0, 4096);
		}
	memset(h.touched, 0, sizeof(h.touched));
	bus_init(&h.vm.pio, "pio");
	bus_init(&h.vm.mmio, "mmio");
	FUZZ_CHECK(irq_routing_init(&h.vm) == 0);
	FUZZ_CHECK(pci_bus_init(&h.pbus, &h.vm) == 0);
	h.vm.pci = &h.pbus;
	FUZZ_CHECK(evloop_init(&h.loop) == 0);

	h.push = mode & 1;
	h.pairs = !h.push && (mode & 2) ? 2 : 1;
	h.threaded = !h.push && (mode & 4);
	h.vnet_hdr = !h.push && !(mode & 8);
	h.offloads = h.vnet_hdr && !(mode & 16);
	h.echo = h.push && (mode & 64);
	h.all_touched = h.threaded;
	h.nq = 2 * h.pairs + 1;
	memset(h.qs, 0, sizeof(h.qs));
	h.tx_next = h.rx_next = h.ctrl_next = 0;
	h.tampered = h.failed = h.failed_ever = h.running = h.reset_pending = h.fatal = false;
	h.map_ok = true;
	h.allowed.n = h.tables.n = 0;
	h.allowed.overflow = h.tables.overflow = false;
	h.ntx = h.nrxf = 0;
	h.last_rx_key[0] = h.last_rx_key[1] = -1;
	h.frames_seen = 0;
	h.attached = false;
	h.send_eagain = h.send_err = h.recv_eagain = h.recv_err = 0;
	h.sends_ok = h.sends_dropped = h.recv_frames = h.recv_toobig = h.recv_errs = h.given = 0;
	h.log[0].n = h.log[1].n = 0;
	h.offloads_set = 0;
	h.neg = 0;
	h.active_pairs = 1;
	h.mq_lowered = 0;
	h.mac_known = false;

	struct net_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.mac, MAC, 6);
	cfg.mac_set = true;
	cfg.kind = h.push ? NET_USER : NET_TAP;
	cfg.queues = h.pairs;
	cfg.main_loop = !h.push && !h.threaded;
	h.be = (struct net_backend){ .ops = h.push ? &push_ops : &pull_ops,
				     .kind = h.push ? "user" : "tap", .queue_pairs = h.pairs,
				     .vnet_hdr = h.vnet_hdr, .offloads = h.offloads,
				     .loop = h.threaded ? NULL : &h.loop };
	strcpy(h.be.name, h.push ? "user" : "fuzztap0");
	h.dev[0] = h.dev[1] = h.peer[0] = h.peer[1] = -1;
	for (unsigned i = 0; !h.push && i < h.pairs; i++) {
		int sv[2];
		FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
		h.dev[i] = sv[0];
		h.peer[i] = sv[1];
	}
	FUZZ_CHECK(virtio_net_create(&h.n, &h.vm, &cfg, &h.be, 0) == 0);
	discover();
	h.dev_features = device_features();
	/* No offloads without a vnet header to carry them. */
	if (!h.offloads)
		FUZZ_CHECK(!(h.dev_features & (BIT(F_CSUM) | BIT(F_HOST_TSO4) | BIT(F_GUEST_TSO4))));
}

static void finish(void)
{
	after_op();
	reset_device();
	check_memory();
	FUZZ_CHECK(!h.attached);
	FUZZ_CHECK(h.offloads_set == 0);
	struct virtio_net_stats st;
	virtio_net_get_stats(h.n, &st);
	virtio_net_print_stats(h.devnull, h.n);   /* --trace-exits, on any counters */
	if (verbose)
		fprintf(stderr, "fuzz_virtio_net: %s%s, %u pair(s); rx %llu frames (%llu checked), tx %llu "
			"(%llu backend calls ok, %llu dropped); rx_too_big %llu rx_bad_chain %llu "
			"rx_backend_errors %llu rx_no_buffers %llu rx_reset %llu; tx_bad_header %llu "
			"tx_too_big %llu tx_empty %llu tx_bad_chain %llu; ctrl %llu (%llu bad); %s%s%s\n",
			h.push ? "push" : "pull", h.threaded ? " threaded" : "", h.pairs,
			(unsigned long long)st.rx_frames, (unsigned long long)h.frames_seen,
			(unsigned long long)st.tx_frames, (unsigned long long)h.sends_ok,
			(unsigned long long)h.sends_dropped, (unsigned long long)st.rx_too_big,
			(unsigned long long)st.rx_bad_chain, (unsigned long long)st.rx_backend_errors,
			(unsigned long long)st.rx_dropped_no_buffers, (unsigned long long)st.rx_dropped_reset,
			(unsigned long long)st.tx_bad_header, (unsigned long long)st.tx_too_big,
			(unsigned long long)st.tx_empty, (unsigned long long)st.tx_bad_chain,
			(unsigned long long)st.ctrl_cmds, (unsigned long long)st.ctrl_bad,
			h.tampered ? "tampered " : "", h.map_ok ? "" : "no-write-map ",
			h.failed_ever ? "failed" : "");
	/* In the threaded mode a failure may come and go unseen. */
	if (!h.failed_ever && !(h.threaded && (h.fatal || h.tampered))) {
		FUZZ_CHECK(st.tx_frames == h.sends_ok);
		FUZZ_CHECK(st.tx_dropped == h.sends_dropped);
		if (h.push) {
			FUZZ_CHECK(push_pending() == 0);
		} else {
			FUZZ_CHECK(st.rx_frames + st.rx_too_big + st.rx_backend_errors ==
				   h.recv_frames + h.recv_toobig + h.recv_errs);
		}
		if (!h.tampered && !h.threaded)
			FUZZ_CHECK(st.rx_frames == h.frames_seen);
	}
	virtio_net_free(h.n);
	h.n = NULL;
	h.vd = NULL;
	pci_bus_free(&h.pbus);
	irq_routing_free(&h.vm);
	bus_free(&h.vm.pio);
	bus_free(&h.vm.mmio);
	evloop_close(&h.loop);
	for (unsigned i = 0; i < MAXPAIRS; i++) {
		if (h.dev[i] >= 0)
			close(h.dev[i]);
		if (h.peer[i] >= 0)
			close(h.peer[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once, exact;
	if (size < HDR_SIZE)
		return 0;
	if (!once) {
		uint8_t *m = mmap(NULL, RAM_SIZE + 2 * GUARD, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		FUZZ_CHECK(m != MAP_FAILED);
		FUZZ_CHECK(mprotect(m + GUARD, RAM_SIZE, PROT_READ | PROT_WRITE) == 0);
		h.ram = m + GUARD;
		h.snap = calloc(1, RAM_SIZE);
		FUZZ_CHECK(h.snap);
		pthread_mutex_init(&h.blk, NULL);
		h.main_thread = pthread_self();
		/* settle() sleeps 20 us at a time: not 70. */
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
		exact = heap_count_exact();
		verbose = getenv("KVMINI_FUZZ_VERBOSE") != NULL;
		h.devnull = fopen("/dev/null", "we");
		FUZZ_CHECK(h.devnull);
		setvbuf(h.devnull, NULL, _IONBF, 0);   /* no buffer allocated later */
		once = true;
	}
	unsigned threads0 = thread_count(), fds0 = count_dir("/proc/self/fd");
	h.threads0 = threads0;
	size_t heap0 = mallinfo2().uordblks;
	uint8_t mode = data[0];

	setup(mode);
	if (!(mode & 0x80))
		driver_init(ld32(data + 1), data[5], data[6], (mode >> 5) & 1, 0);
	after_op();
	size_t nops = (size - HDR_SIZE) / OP_SIZE;
	for (size_t i = 0; i < nops && i < MAX_OPS; i++) {
		run_op(data + HDR_SIZE + OP_SIZE * i);
		after_op();
	}
	finish();

	/* One thread fewer may show a moment late in /proc: wait for it. */
	for (int t = 0; t < 1000 && thread_count() != threads0; t++) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	FUZZ_CHECK(thread_count() == threads0);
	FUZZ_CHECK(count_dir("/proc/self/fd") == fds0);
	if (exact && !h.threaded)
		FUZZ_CHECK(mallinfo2().uordblks == heap0);
	return 0;
}
