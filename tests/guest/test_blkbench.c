/* test=blkbench: virtio-blk throughput with up to qd requests in flight,
 * polled. Command line:
 *   bench=randread|randwrite|seqread|seqwrite (default randread)
 *   bs=BYTES (multiple of 512, default 4096)   qd=N (1..128, default 1)
 *   ios=N (requests to complete, default 10000) seed=N (offsets, default 1)
 *   span=SECTORS (use only the first SPAN sectors; default the whole disk)
 * plus the driver's blk_qsize, event_idx, blk_kick, blk_refuse, ...
 *
 * Output, for bench/blk_bench.py:
 *   microguest: bench start
 *   microguest: bench end
 *   microguest: bench op=randread bs=4096 qd=32 ios=20000 tsc=T kicks=K
 *               kicks_skipped=S tsc_hz=H (one line)
 * The host times the interval between the "bench start" and "bench end"
 * lines as they arrive on the console: that is robust on every VMM and
 * needs no TSC frequency. tsc is the guest's rdtsc delta over the same
 * loop; tsc_hz is CPUID 0x15/0x16's idea of the TSC frequency (0 when the
 * VMM does not say). */
#include "vblk.h"

#define MAX_QD 128

static struct vblk blk;
static struct vblk_req reqs[MAX_QD];

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static uint64_t tsc_hz_cpuid(void)
{
	uint32_t a, b, c, d;
	cpuid(0, &a, &b, &c, &d);
	uint32_t max = a;
	if (max >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d);
		if (a && b && c)
			return (uint64_t)c * b / a;
	}
	if (max >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d);
		if (a & 0xffff)
			return (uint64_t)(a & 0xffff) * 1000000;
	}
	return 0;
}

static uint64_t rng_state;
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static void test_blkbench(void)
{
	char op[16];
	if (!cmdline_get("bench", op, sizeof(op)))
		memcpy(op, "randread", 9);
	bool rnd, wr;
	if (strcmp(op, "randread") == 0)
		rnd = true, wr = false;
	else if (strcmp(op, "randwrite") == 0)
		rnd = true, wr = true;
	else if (strcmp(op, "seqread") == 0)
		rnd = false, wr = false;
	else if (strcmp(op, "seqwrite") == 0)
		rnd = false, wr = true;
	else
		fail("bench=%s: want randread, randwrite, seqread or seqwrite", op);
	uint64_t bs = cmdline_get_u64("bs", 4096);
	uint64_t qd = cmdline_get_u64("qd", 1);
	uint64_t ios = cmdline_get_u64("ios", 10000);
	rng_state = cmdline_get_u64("seed", 1) * 0x9e3779b97f4a7c15ull | 1;
	CHECK(bs >= 512 && bs % 512 == 0 && bs <= (16u << 20), "bs=%lu: want a multiple of 512 up to 16 MiB", bs);
	CHECK(qd >= 1 && qd <= MAX_QD, "qd=%lu: want 1..%u", qd, MAX_QD);

	struct vblk_opts o;
	vblk_opts_from_cmdline(&o);
	vblk_init(&blk, &o);
	CHECK(!wr || !vblk_has(&blk, VIRTIO_BLK_F_RO), "bench=%s on a read-only disk", op);
	uint64_t span = cmdline_get_u64("span", blk.capacity);
	if (span > blk.capacity)
		span = blk.capacity;
	uint64_t spb = bs / 512, nblocks = span / spb;
	CHECK(nblocks >= 1, "bench: disk of %lu sectors is smaller than bs=%lu", span, bs);
	CHECK(qd * 3 <= blk.qsize, "bench: qd=%lu needs %lu descriptors, queue has %u",
	      qd, qd * 3, blk.qsize);

	/* Buffers, touched now so the timed loop takes no first-touch faults. */
	uint8_t *bufs = mem_alloc(qd * bs, 4096);
	for (uint64_t *w = (uint64_t *)bufs, i = 0; i < qd * bs / 8; i++)
		w[i] = rng();
	uint32_t type = wr ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	uint64_t seqpos = 0, submitted = 0, done = 0, errors = 0;

	say("bench start");
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < qd && submitted < ios; i++) {
		uint64_t blkno = rnd ? rng() % nblocks : seqpos++ % nblocks;
		vblk_req_set(&reqs[i], type, blkno * spb, bufs + i * bs, (uint32_t)bs);
		reqs[i].seg = 0;
		reqs[i].tag = i;
		CHECK(vblk_submit(&blk, &reqs[i]), "bench: ring full at start");
		submitted++;
	}
	vblk_kick(&blk);
	uint64_t tlast = rdtsc();
	while (done < ios) {
		struct vblk_req *r = vblk_poll(&blk);
		if (!r) {
			if (rdtsc() - tlast > blk.timeout_tsc)
				fail("bench: no completion for a while (%lu of %lu done)", done, ios);
			continue;
		}
		do {
			done++;
			if (r->status != VIRTIO_BLK_S_OK)
				errors++;
			if (submitted < ios) {
				uint64_t blkno = rnd ? rng() % nblocks : seqpos++ % nblocks;
				vblk_req_set(r, type, blkno * spb, r->buf, (uint32_t)bs);
				CHECK(vblk_submit(&blk, r), "bench: ring full");
				submitted++;
			}
		} while ((r = vblk_poll(&blk)));
		vblk_kick(&blk);
		tlast = rdtsc();
	}
	uint64_t t1 = rdtsc();
	say("bench end");
	say("bench op=%s bs=%lu qd=%lu ios=%lu tsc=%lu kicks=%lu kicks_skipped=%lu errors=%lu tsc_hz=%lu event_idx=%u",
	    op, bs, qd, done, t1 - t0, blk.kicks, blk.kicks_skipped, errors, tsc_hz_cpuid(),
	    vblk_has(&blk, VIRTIO_F_RING_EVENT_IDX) ? 1u : 0u);
	CHECK(errors == 0, "bench: %lu requests failed", errors);
}
GUEST_TEST("blkbench", test_blkbench, "virtio-blk benchmark: bench=randread|randwrite|seqread|seqwrite bs= qd= ios=");
