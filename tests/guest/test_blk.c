/* test=blk: drives a modern virtio-pci virtio-blk device (vblk.c) and checks
 * its answers; the host (run-blk.sh, blk_image.py) then checks the image.
 *
 * Command line (besides vblk_opts_from_cmdline's blk_dev, blk_qsize,
 * event_idx, blk_mq, blk_kick, blk_refuse, blk_timeout):
 *   blk_seed=N       seed of the pattern the guest writes (default 1)
 *   blk_hostseed=N   seed of the pattern the host pre-filled the image with;
 *                    when given, untouched sectors are checked against it
 *   blk_qd=N         requests in flight during the data phases (default 4)
 *   blk_capacity=N   expected capacity in sectors (default: not checked)
 *   blk_serial=S     expected GET_ID serial (default: printed only)
 *   blk_discard=zero|any  after DISCARD, sectors must read zero (default) or
 *                    anything (the spec allows both)
 *   blk_check_len=0  do not check the used elements' len
 *   blk_final_flush=1  FLUSH once more at the very end (for QEMU on qcow2,
 *                    whose isa-debug-exit exit() drops the qcow2 metadata
 *                    of the last discard/write-zeroes requests otherwise)
 *   blk_pattern=repeat  word k of a sector = the same word for every k (the
 *                    pattern without the k * GOLDEN stride): compressible,
 *                    for a compressed qcow2 base (run-blk.sh)
 *
 * Console lines the host checker parses (blk_image.py):
 *   microguest: blk capacity=N sectors
 *   microguest: blk data sectors S+C seed=N      (pattern written there)
 *   microguest: blk zero sectors S+C (how)       (must read zero)
 *   microguest: blk any sectors S+C (how)        (not checked)
 * Every other sector must still hold the host's pattern.
 *
 * Pattern: sector s, seed x: 64 little-endian 64-bit words,
 *   word k = mix64((x << 40) ^ s) + k * 0x9e3779b97f4a7c15 (mod 2^64),
 * mix64 = the splitmix64 finaliser (blk_image.py has the same); with
 * blk_pattern=repeat the stride is 0 instead of 0x9e3779b97f4a7c15. */
#include "vblk.h"

#define SECTOR 512u
#define GOLDEN 0x9e3779b97f4a7c15ull
#define MAX_QD 64

/* The layout of the test on the disk, in sectors (disk >= 4 MiB). */
#define HOSTREAD_START  0
#define HOSTREAD_COUNT  256
#define DATA_START      1024
#define DATA_COUNT      2048     /* 1 MiB */
#define DISCARD_START   4096
#define DISCARD_COUNT   512
#define WZ_START        5120
#define WZ_COUNT        512
#define WZU_START       6144
#define WZU_COUNT       256
#define MIN_CAPACITY    8192

static uint64_t mix64(uint64_t z)
{
	z += GOLDEN;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t stride = GOLDEN;

static void pattern_fill(uint8_t *buf, uint64_t sector, uint32_t count, uint64_t seed)
{
	uint64_t *w = (uint64_t *)buf;
	for (uint32_t s = 0; s < count; s++) {
		uint64_t base = mix64(seed << 40 ^ (sector + s));
		for (unsigned k = 0; k < SECTOR / 8; k++)
			*w++ = base + k * stride;
	}
}

/* seed ~0: all zero. */
static void verify(const char *what, const uint8_t *buf, uint64_t sector, uint32_t count, uint64_t seed)
{
	const uint64_t *w = (const uint64_t *)buf;
	for (uint32_t s = 0; s < count; s++) {
		uint64_t base = seed == ~0ull ? 0 : mix64(seed << 40 ^ (sector + s));
		for (unsigned k = 0; k < SECTOR / 8; k++, w++) {
			uint64_t want = seed == ~0ull ? 0 : base + k * stride;
			if (*w != want)
				fail("blk %s: sector %lu word %u reads %lx, want %lx", what,
				     sector + s, k, *w, want);
		}
	}
}

static struct vblk blk;
static struct vblk_req reqs[MAX_QD];
static bool check_len = true;

static void check_done(const char *what, struct vblk_req *r)
{
	CHECK(r->status == VIRTIO_BLK_S_OK, "blk %s: type %u sector %lu len %u: status %u (%s)",
	      what, r->hdr.type, r->hdr.sector, r->len, r->status, vblk_status_name(r->status));
	uint32_t want = r->dev_writes ? r->len + 1 : 1;
	CHECK(!check_len || r->used_len == want,
	      "blk %s: type %u sector %lu: used len %u, want %u (bytes written: %s)", what,
	      r->hdr.type, r->hdr.sector, r->used_len, want, r->dev_writes ? "data + status" : "status");
}

struct chunk {
	uint16_t sectors, segs;
};

/* Moves sectors start..start+count between the disk and buf (buf mirrors
 * the range) with up to qd requests in flight, request sizes and data
 * descriptor counts cycling through sizes[]. */
static void xfer(const char *what, uint32_t type, uint64_t start, uint32_t count, uint8_t *buf,
		 const struct chunk *sizes, unsigned nsizes, unsigned qd)
{
	uint64_t next = start, end = start + count;
	unsigned k = 0, inflight = 0;
	for (unsigned i = 0; i < qd; i++)
		reqs[i].tag = 0;
	while (next < end || inflight) {
		for (unsigned i = 0; i < qd && next < end; i++) {
			struct vblk_req *r = &reqs[i];
			if (r->tag)
				continue;
			struct chunk c = sizes[k % nsizes];
			uint32_t n = c.sectors;
			if (n > end - next) {
				n = (uint32_t)(end - next);
				c.segs = 1;
			}
			if ((vblk_has(&blk, VIRTIO_BLK_F_SEG_MAX) && blk.seg_max && c.segs > blk.seg_max) ||
			    c.segs + 2u > blk.qsize)
				c.segs = 1;
			vblk_req_set(r, type, next, buf + (next - start) * SECTOR, n * SECTOR);
			r->seg = c.segs > 1 ? n / c.segs * SECTOR : 0;
			if (!vblk_submit(&blk, r))
				break;
			r->tag = 1;
			inflight++;
			next += n;
			k++;
		}
		vblk_kick(&blk);
		uint64_t t0 = rdtsc();
		struct vblk_req *r;
		while (!(r = vblk_poll(&blk))) {
			CHECK(rdtsc() - t0 < blk.timeout_tsc, "blk %s: timed out with %u requests in flight",
			      what, inflight);
			cpu_relax();
		}
		do {
			check_done(what, r);
			r->tag = 0;
			inflight--;
		} while ((r = vblk_poll(&blk)));
	}
}

static uint8_t one(uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vblk_req *r = &reqs[0];
	vblk_req_set(r, type, sector, buf, len);
	r->seg = 0;
	return vblk_sync(&blk, r);
}

static void expect_status(const char *what, uint8_t got, uint8_t want)
{
	CHECK(got == want, "blk %s: status %u (%s), want %u (%s)", what, got, vblk_status_name(got),
	      want, vblk_status_name(want));
}

/* DISCARD or WRITE_ZEROES of one segment. */
static uint8_t dwz(uint32_t type, uint64_t sector, uint32_t count, uint32_t flags)
{
	static struct vblk_dwz seg __attribute__((aligned(16)));
	seg.sector = sector;
	seg.num_sectors = count;
	seg.flags = flags;
	return one(type, 0, &seg, sizeof(seg));
}

static void zero_range(const char *how, uint32_t type, uint64_t start, uint32_t count, uint32_t flags,
		       bool must_zero, uint8_t *buf)
{
	struct vblk_req *r = &reqs[0];
	uint8_t st = dwz(type, start, count, flags);
	expect_status(how, st, VIRTIO_BLK_S_OK);
	CHECK(!check_len || r->used_len == 1, "blk %s: used len %u, want 1", how, r->used_len);
	memset(buf, 0x5a, count * SECTOR);
	static const struct chunk rd[] = { { 64, 1 } };
	xfer(how, VIRTIO_BLK_T_IN, start, count, buf, rd, 1, 4);
	if (must_zero)
		verify(how, buf, start, count, ~0ull);
	say("blk %s sectors %lu+%u (%s)", must_zero ? "zero" : "any", start, count, how);
}

static void test_blk(void)
{
	struct vblk_opts o;
	vblk_opts_from_cmdline(&o);
	vblk_init(&blk, &o);
	check_len = cmdline_get_u64("blk_check_len", 1) != 0;
	uint64_t cap = blk.capacity;
	say("blk capacity=%lu sectors", cap);
	uint64_t want_cap = cmdline_get_u64("blk_capacity", 0);
	CHECK(!want_cap || cap == want_cap, "blk: capacity %lu, blk_capacity=%lu", cap, want_cap);
	CHECK(cap >= MIN_CAPACITY, "blk: test needs at least %u sectors, disk has %lu", MIN_CAPACITY, cap);

	unsigned qd = (unsigned)cmdline_get_u64("blk_qd", 4);
	CHECK(qd >= 1 && qd <= MAX_QD, "blk_qd=%u: must be 1..%u", qd, MAX_QD);
	uint64_t seed = cmdline_get_u64("blk_seed", 1);
	char hs[24];
	bool host = cmdline_get("blk_hostseed", hs, sizeof(hs)) != NULL;
	uint64_t hostseed = cmdline_get_u64("blk_hostseed", 0);
	char mode[8];
	bool discard_zero = !cmdline_get("blk_discard", mode, sizeof(mode)) || strcmp(mode, "any") != 0;
	bool ro = vblk_has(&blk, VIRTIO_BLK_F_RO);
	if (cmdline_get("blk_pattern", mode, sizeof(mode)) && strcmp(mode, "repeat") == 0)
		stride = 0;

	uint8_t *wbuf = mem_alloc(DATA_COUNT * SECTOR, 4096);
	uint8_t *rbuf = mem_alloc(DATA_COUNT * SECTOR, 4096);

	/* 1. What the host wrote: the start and the very end of the disk. */
	static const struct chunk rd8[] = { { 8, 1 }, { 1, 1 }, { 7, 1 }, { 16, 2 } };
	xfer("read", VIRTIO_BLK_T_IN, HOSTREAD_START, HOSTREAD_COUNT, rbuf, rd8, 4, qd);
	xfer("read end", VIRTIO_BLK_T_IN, cap - 16, 16, rbuf + HOSTREAD_COUNT * SECTOR, rd8, 1, 1);
	if (host) {
		verify("read host pattern", rbuf, HOSTREAD_START, HOSTREAD_COUNT, hostseed);
		verify("read host pattern at the end", rbuf + HOSTREAD_COUNT * SECTOR, cap - 16, 16, hostseed);
		say("blk read: host pattern ok in sectors %u+%u and %lu+16", HOSTREAD_START,
		    HOSTREAD_COUNT, cap - 16);
	}

	if (ro) {
		pattern_fill(wbuf, DATA_START, 8, seed);
		expect_status("write to a read-only disk", one(VIRTIO_BLK_T_OUT, DATA_START, wbuf, 8 * SECTOR),
			      VIRTIO_BLK_S_IOERR);
		say("blk read-only: write refused");
	} else {
		/* 2. Write a pattern with mixed request sizes and segment counts,
		 * flush, read it back with other sizes. */
		static const struct chunk wr[] = {
			{ 8, 1 }, { 1, 1 }, { 16, 2 }, { 3, 3 }, { 64, 1 }, { 128, 4 },
			{ 7, 1 }, { 256, 1 }, { 16, 16 }, { 32, 1 },
		};
		pattern_fill(wbuf, DATA_START, DATA_COUNT, seed);
		xfer("write", VIRTIO_BLK_T_OUT, DATA_START, DATA_COUNT, wbuf, wr, 10, qd);
		if (vblk_has(&blk, VIRTIO_BLK_F_FLUSH)) {
			expect_status("flush", one(VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
			CHECK(!check_len || reqs[0].used_len == 1, "blk flush: used len %u, want 1",
			      reqs[0].used_len);
		}
		memset(rbuf, 0xa5, DATA_COUNT * SECTOR);
		static const struct chunk rd16[] = { { 16, 1 } };
		xfer("read back", VIRTIO_BLK_T_IN, DATA_START, DATA_COUNT, rbuf, rd16, 1, qd);
		verify("read back", rbuf, DATA_START, DATA_COUNT, seed);
		memset(rbuf, 0xa5, DATA_COUNT * SECTOR);
		static const struct chunk rd512[] = { { 512, 1 } };
		xfer("read back 256k", VIRTIO_BLK_T_IN, DATA_START, DATA_COUNT, rbuf, rd512, 1, 2);
		verify("read back 256k", rbuf, DATA_START, DATA_COUNT, seed);
		say("blk data sectors %u+%u seed=%lu", DATA_START, DATA_COUNT, seed);
		say("blk write/flush/read: %u sectors ok, qd=%u", DATA_COUNT, qd);

		/* 3. DISCARD and WRITE_ZEROES, when offered. */
		if (vblk_has(&blk, VIRTIO_BLK_F_DISCARD)) {
			uint32_t n = DISCARD_COUNT;
			if (blk.max_discard_sectors && n > blk.max_discard_sectors)
				n = blk.max_discard_sectors & ~7u;
			CHECK(n, "blk: max_discard_sectors %u", blk.max_discard_sectors);
			CHECK(!blk.discard_align || DISCARD_START % blk.discard_align == 0,
			      "blk: discard_sector_alignment %u does not divide %u", blk.discard_align, DISCARD_START);
			zero_range("discard", VIRTIO_BLK_T_DISCARD, DISCARD_START, n, 0, discard_zero, rbuf);
		}
		if (vblk_has(&blk, VIRTIO_BLK_F_WRITE_ZEROES)) {
			uint32_t n = WZ_COUNT;
			if (blk.max_wz_sectors && n > blk.max_wz_sectors)
				n = blk.max_wz_sectors;
			zero_range("write-zeroes", VIRTIO_BLK_T_WRITE_ZEROES, WZ_START, n, 0, true, rbuf);
			if (blk.wz_may_unmap) {
				n = WZU_COUNT;
				if (blk.max_wz_sectors && n > blk.max_wz_sectors)
					n = blk.max_wz_sectors;
				zero_range("write-zeroes-unmap", VIRTIO_BLK_T_WRITE_ZEROES, WZU_START, n,
					   VIRTIO_BLK_WZ_F_UNMAP, true, rbuf);
			}
		}
	}

	/* 4. GET_ID: up to 20 bytes, NUL-terminated only if shorter. */
	char id[VIRTIO_BLK_ID_BYTES + 1];
	memset(id, 0, sizeof(id));
	uint8_t st = one(VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES);
	CHECK(st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_UNSUPP, "blk get-id: status %u (%s)", st,
	      vblk_status_name(st));
	for (unsigned i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++)
		CHECK(id[i] >= 0x20 && id[i] < 0x7f, "blk get-id: byte %u is %x", i, (uint8_t)id[i]);
	say("blk serial=%s%s", id, st == VIRTIO_BLK_S_OK ? "" : " (GET_ID unsupported)");
	char want_id[VIRTIO_BLK_ID_BYTES + 1];
	if (cmdline_get("blk_serial", want_id, sizeof(want_id)))
		CHECK(st == VIRTIO_BLK_S_OK && strcmp(id, want_id) == 0, "blk get-id: serial '%s', want '%s'",
		      id, want_id);

	/* 5. Requests the device must refuse. */
	expect_status("read at capacity", one(VIRTIO_BLK_T_IN, cap, rbuf, SECTOR), VIRTIO_BLK_S_IOERR);
	expect_status("read across capacity", one(VIRTIO_BLK_T_IN, cap - 1, rbuf, 2 * SECTOR),
		      VIRTIO_BLK_S_IOERR);
	expect_status("read far past capacity", one(VIRTIO_BLK_T_IN, cap + (1ull << 40), rbuf, SECTOR),
		      VIRTIO_BLK_S_IOERR);
	if (!ro) {
		pattern_fill(wbuf, cap, 1, seed);
		expect_status("write at capacity", one(VIRTIO_BLK_T_OUT, cap, wbuf, SECTOR), VIRTIO_BLK_S_IOERR);
		expect_status("write across capacity", one(VIRTIO_BLK_T_OUT, cap - 1, wbuf, 2 * SECTOR),
			      VIRTIO_BLK_S_IOERR);
		if (vblk_has(&blk, VIRTIO_BLK_F_DISCARD))
			expect_status("discard past capacity", dwz(VIRTIO_BLK_T_DISCARD, cap - 8, 16, 0),
				      VIRTIO_BLK_S_IOERR);
		if (vblk_has(&blk, VIRTIO_BLK_F_WRITE_ZEROES))
			expect_status("write-zeroes past capacity", dwz(VIRTIO_BLK_T_WRITE_ZEROES, cap - 8, 16, 0),
				      VIRTIO_BLK_S_IOERR);
	}
	expect_status("unknown request type 0x7f", one(0x7f, 0, NULL, 0), VIRTIO_BLK_S_UNSUPP);
	say("blk errors: past-capacity requests IOERR, unknown type UNSUPP");

	/* 6. Reset, initialise again, read once more. */
	vblk_reset(&blk);
	o.quiet = true;
	vblk_init(&blk, &o);
	memset(rbuf, 0xa5, 8 * SECTOR);
	expect_status("read after reset", one(VIRTIO_BLK_T_IN, ro ? 0 : DATA_START, rbuf, 8 * SECTOR),
		      VIRTIO_BLK_S_OK);
	if (!ro)
		verify("read after reset", rbuf, DATA_START, 8, seed);
	else if (host)
		verify("read after reset", rbuf, 0, 8, hostseed);
	say("blk reset: device works after reset and re-initialisation");
	if (!ro && cmdline_get_u64("blk_final_flush", 0) && vblk_has(&blk, VIRTIO_BLK_F_FLUSH))
		expect_status("final flush", one(VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
}
GUEST_TEST("blk", test_blk, "virtio-blk (modern PCI): data, flush, discard, write-zeroes, get-id, errors");
