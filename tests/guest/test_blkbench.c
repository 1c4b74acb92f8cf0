/* test=blkbench: virtio-blk throughput with up to qd requests in flight,
 * polled. Command line:
 *   bench=randread|randwrite|seqread|seqwrite (default randread)
 *   bs=BYTES (multiple of 512, default 4096)   qd=N (1..128, default 1)
 *   ios=N (requests to complete, default 10000) seed=N (offsets, default 1)
 *   span=SECTORS (use only the first SPAN sectors; default the whole disk)
 * plus the driver's blk_queues, blk_qsize, event_idx, blk_kick, blk_refuse, ...
 *
 * With blk_queues=N the qd requests are spread round-robin over N
 * virtqueues (qd must be a multiple of N): request i lives on queue i % N
 * for the whole run, so every queue always has qd/N in flight and the host
 * side sees N independent streams, one per queue (what a multi-queue Linux
 * guest with one submitting CPU per queue looks like).
 *
 * Output, for bench/blk_bench.py:
 *   microguest: bench start
 *   microguest: bench end
 *   microguest: bench op=randread bs=4096 qd=32 queues=1 ios=20000 tsc=T
 *               kicks=K kicks_skipped=S errors=E tsc_hz=H event_idx=0|1
 *               (one line; kicks and kicks_skipped summed over the queues)
 *   microguest: bench queue Q: completed=C kicks=K kicks_skipped=S
 *               (one per queue, only with more than one queue)
 * The host times the interval between the "bench start" and "bench end"
 * lines as they arrive on the console: that is robust on every VMM and
 * needs no TSC frequency. tsc is the guest's rdtsc delta over the same
 * loop; tsc_hz is CPUID 0x15/0x16's idea of the TSC frequency (0 when the
 * VMM does not say). */
#include "vblk.h"

#define MAX_QD 128

static struct vblk blk;
static struct vblk_req reqs[MAX_QD];
static uint64_t ops_left, seqpos, nblocks, spb, errors;
static uint32_t req_type, req_bs;
static bool random_offsets;

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

/* Prepares r for the next block and submits it to queue qi (without a kick). */
static void submit_next(unsigned qi, struct vblk_req *r)
{
	uint64_t blkno = random_offsets ? rng() % nblocks : seqpos++ % nblocks;
	vblk_req_set(r, req_type, blkno * spb, r->buf, req_bs);
	CHECK(vblk_submit_q(&blk, qi, r), "bench: queue %u ring full", qi);
	ops_left--;
}

/* Takes every completion queue qi has, resubmits each request on the same
 * queue while ops remain, then kicks the queue if it got any. Returns the
 * number of completions. */
static uint64_t service_queue(unsigned qi)
{
	uint64_t n = 0;
	struct vblk_req *r;
	while ((r = vblk_poll_q(&blk, qi))) {
		n++;
		if (r->status != VIRTIO_BLK_S_OK)
			errors++;
		if (ops_left)
			submit_next(qi, r);
	}
	vblk_kick_q(&blk, qi);  /* does nothing when nothing was submitted */
	return n;
}

static void report_queues(void)
{
	for (unsigned qi = 0; blk.nqueues > 1 && qi < blk.nqueues; qi++)
		say("bench queue %u: completed=%lu kicks=%lu kicks_skipped=%lu", qi,
		    blk.q[qi].completed, blk.q[qi].kicks, blk.q[qi].kicks_skipped);
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
	CHECK(qd % o.queues == 0, "qd=%lu: want a multiple of blk_queues=%u", qd, o.queues);
	vblk_init(&blk, &o);
	CHECK(!wr || !vblk_has(&blk, VIRTIO_BLK_F_RO), "bench=%s on a read-only disk", op);
	uint64_t span = cmdline_get_u64("span", blk.capacity);
	if (span > blk.capacity)
		span = blk.capacity;
	spb = bs / 512;
	nblocks = span / spb;
	CHECK(nblocks >= 1, "bench: disk of %lu sectors is smaller than bs=%lu", span, bs);
	unsigned nq = blk.nqueues;
	uint64_t per_queue = qd / nq;
	CHECK(per_queue * 3 <= blk.qsize, "bench: qd=%lu over %u queues needs %lu descriptors per queue, queue has %u",
	      qd, nq, per_queue * 3, blk.qsize);

	/* Buffers, touched now so the timed loop takes no first-touch faults. */
	uint8_t *bufs = mem_alloc(qd * bs, 4096);
	for (uint64_t *w = (uint64_t *)bufs, i = 0; i < qd * bs / 8; i++)
		w[i] = rng();
	req_type = wr ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	req_bs = (uint32_t)bs;
	random_offsets = rnd;
	ops_left = ios;
	uint64_t done = 0;

	say("bench start");
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < qd && ops_left; i++) {
		reqs[i].buf = bufs + i * bs;
		reqs[i].seg = 0;
		reqs[i].tag = i;
		submit_next((unsigned)(i % nq), &reqs[i]);
	}
	for (unsigned qi = 0; qi < nq; qi++)
		vblk_kick_q(&blk, qi);
	uint64_t tlast = rdtsc();
	while (done < ios) {
		uint64_t n = 0;
		for (unsigned qi = 0; qi < nq; qi++)
			n += service_queue(qi);
		if (n) {
			done += n;
			tlast = rdtsc();
		} else if (rdtsc() - tlast > blk.timeout_tsc) {
			report_queues();
			fail("bench: no completion for a while (%lu of %lu done)", done, ios);
		}
	}
	uint64_t t1 = rdtsc();
	say("bench end");
	say("bench op=%s bs=%lu qd=%lu queues=%u ios=%lu tsc=%lu kicks=%lu kicks_skipped=%lu errors=%lu tsc_hz=%lu event_idx=%u",
	    op, bs, qd, nq, done, t1 - t0, blk.kicks, blk.kicks_skipped, errors, tsc_hz_cpuid(),
	    vblk_has(&blk, VIRTIO_F_RING_EVENT_IDX) ? 1u : 0u);
	report_queues();
	CHECK(errors == 0, "bench: %lu requests failed", errors);
}
GUEST_TEST("blkbench", test_blkbench,
	   "virtio-blk benchmark: bench=randread|randwrite|seqread|seqwrite bs= qd= ios= blk_queues=");
