/* virtio-blk over the virtio 1.x PCI transport (virtio/blk.c, virtio/pci.c),
 * driven from the guest's side without /dev/kvm.
 *
 * The fake VM and the guest driver are virtio_harness.[ch]: 4 MiB of
 * calloc'd "guest RAM", the buses and a PCI bus; the driver finds the
 * function with config cycles, walks the vendor capabilities and talks to
 * the common configuration through MMIO. A temporary raw image backs the
 * disk, so every request really goes through the I/O thread, io_uring and
 * the raw driver.
 *
 * The test builds requests in guest RAM ({type, reserved, sector}, data,
 * status) and polls the used ring. Without KVM there is no ioeventfd: a
 * kick is an MMIO write to the queue's notify address, which the transport
 * forwards to the queue's eventfd (or a write of the eventfd itself).
 *
 * Expected values come from the virtio 1.x spec (sections 2.7, 4.1, 5.2) and
 * PCI 3.0, written as numbers here rather than taken from kvmini's macros. */
#include <errno.h>
#include <fcntl.h>
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

#include "block/block.h"
#include "block/io_engine.h"
#include "virtio/blk.h"
#include "virtio_harness.h"

/* ---- guest memory map of the fake VM ---------------------------------------- */

#define RAM_SIZE   (4u << 20)
#define IMG_SIZE   (4u << 20)                 /* 8192 sectors */
#define IMG_SECTORS (IMG_SIZE / 512)
/* The rings: RING(q) (virtio_harness.h). */
#define ITABLE(q)  (RING(q) + 0x4000u)        /* indirect tables, 0x100 each */
#define HDR(q, s)  (0x80000u + 0x8000u * (q) + 32u * (s)) /* header +0, status +16 */
#define DATA       0x100000u                  /* data buffers up to 4 MiB */
#define OUTSIDE    0x10000000u                /* not RAM */

/* virtio-blk numbers (spec 5.2) */
#define F_SIZE_MAX 1
#define F_SEG_MAX 2
#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define F_MQ 12
#define F_DISCARD 13
#define F_WRITE_ZEROES 14
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define SERIAL "kvmini-disk-0"

/* A driver that works: what Linux asks for, minus MQ unless needed. */
#define BASE_FEATURES (BIT(F_VERSION_1) | BIT(F_SIZE_MAX) | BIT(F_SEG_MAX) | BIT(F_BLK_SIZE) | \
		       BIT(F_FLUSH))

static struct fx {
	struct virtio_blk *b;
	struct block *disk;      /* opened here, as vmm/run.c does, and outlives b */
	char *path;
	int host_fd;             /* the image, for checking what the device did */
} fx;

static uint8_t pat(uint64_t off) { return (uint8_t)(off * 13 + (off >> 9) * 7 + 1); }

/* ---- fixture ---------------------------------------------------------------------- */

static char *make_image(void)
{
	const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
	for (unsigned d = 0; d < 3; d++) {
		char *path;
		if (!dirs[d] || !*dirs[d] || asprintf(&path, "%s/kvmini-vblk-XXXXXX", dirs[d]) < 0)
			continue;
		int fd = mkstemp(path);
		if (fd < 0) {
			free(path);
			continue;
		}
		static uint8_t buf[IMG_SIZE];
		for (uint64_t i = 0; i < IMG_SIZE; i++)
			buf[i] = pat(i);
		bool ok = ftruncate(fd, IMG_SIZE) == 0 && pwrite(fd, buf, IMG_SIZE, 0) == IMG_SIZE;
		close(fd);
		if (ok)
			return path;
		unlink(path);
		free(path);
	}
	return NULL;
}

static int setup_with(unsigned nq, bool ro, enum disk_iothread iothread)
{
	memset(&fx, 0, sizeof(fx));
	fx.host_fd = -1;
	if (fake_vm_init(RAM_SIZE))
		return -1;
	vh.qmax = 256;
	vh.split64 = true;       /* as Linux writes them */
	fx.path = make_image();
	if (!fx.path)
		return -1;
	fx.host_fd = open(fx.path, O_RDONLY | O_CLOEXEC);
	struct disk_config dc;
	memset(&dc, 0, sizeof(dc));
	dc.block.path = fx.path;
	dc.block.format = BLOCK_FMT_RAW;
	dc.block.cache = BLOCK_CACHE_WRITEBACK;
	dc.block.readonly = ro;
	dc.iothread = iothread;
	strcpy(dc.serial, SERIAL);
	if (block_open(&fx.disk, &dc.block) || virtio_blk_create(&fx.b, &vh.vm, &dc, fx.disk, nq))
		return -1;
	discover(0x1042); /* 0x1040 + 2 (block) */
	return 0;
}

static int setup1(void **state) { (void)state; return setup_with(1, false, DISK_IOTHREAD_QUEUE); }
static int setup2(void **state) { (void)state; return setup_with(2, false, DISK_IOTHREAD_QUEUE); }
/* Two queues served by one I/O thread (iothread=disk). */
static int setup2_disk(void **state) { (void)state; return setup_with(2, false, DISK_IOTHREAD_DISK); }
static int setup_ro(void **state) { (void)state; return setup_with(1, true, DISK_IOTHREAD_QUEUE); }

static int teardown(void **state)
{
	(void)state;
	/* vmm/run.c's order: the disk first, possibly still running (its I/O
	 * threads stop and its PCI function leaves the bus), then the bus. */
	virtio_blk_free(fx.b);
	fx.b = NULL;
	if (fx.disk)
		block_close(fx.disk);
	fx.disk = NULL;
	fake_vm_free();
	if (fx.host_fd >= 0)
		close(fx.host_fd);
	if (fx.path) {
		unlink(fx.path);
		free(fx.path);
	}
	return 0;
}

/* ---- the driver ------------------------------------------------------------------- */

static void drv_init(uint64_t want)
{
	assert_int_equal(drv_init_n(want, 1, 256, true),
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
}

/* A chain through one indirect descriptor (table number t), published. */
static uint16_t post_indirect(unsigned q, unsigned t, const struct seg *s, unsigned n)
{
	struct vh_queue *d = &vh.q[q];
	uint64_t table = ITABLE(q) + 0x100u * t;
	for (unsigned i = 0; i < n; i++)
		set_desc(table, i, s[i].gpa, s[i].len,
			 (uint16_t)((s[i].w ? D_WRITE : 0) | (i + 1 < n ? D_NEXT : 0)), (uint16_t)(i + 1));
	uint16_t head = d->next_desc;
	set_desc(RING(q), head, table, 16u * n, D_INDIRECT, 0);
	d->next_desc = (uint16_t)((head + 1) % d->size);
	publish(q, head);
	return head;
}

/* The device asks the driver to kick for the next request: avail_event at
 * the driver's avail index (EVENT_IDX), or NO_NOTIFY clear. */
static bool wait_notify_enabled(unsigned q, bool event_idx, int ms)
{
	for (int t = 0; t <= ms; t++) {
		uint16_t ev = r16(USED(q) + 4 + 8u * vh.q[q].size);
		if (event_idx ? ev == vh.q[q].avail_idx : !(r16(USED(q)) & 1))
			return true;
		msleep(1);
	}
	return false;
}

struct res {
	uint8_t status;
	uint32_t len;
};

/* A request header in guest RAM: {type, reserved, sector}, the status byte
 * 16 on set to 0xff (not written yet). */
static void put_hdr(uint64_t h, uint32_t type, uint64_t sector)
{
	w32(h, type);
	w32(h + 4, 0);
	w64(h + 8, sector);
	vh.vm.ram[h + 16] = 0xff;
}

/* One request with header slot 0: header, optional data buffers, the
 * status byte; waits for it and checks the used element names it. */
static struct res do_segs(unsigned q, const struct seg *data, unsigned ndata, uint32_t type,
			  uint64_t sector)
{
	struct seg s[16];
	unsigned n = 0;
	uint64_t h = HDR(q, 0);
	put_hdr(h, type, sector);
	s[n++] = (struct seg){ h, 16, false };
	for (unsigned i = 0; i < ndata; i++)
		s[n++] = data[i];
	s[n++] = (struct seg){ h + 16, 1, true };
	uint16_t head = post(q, s, n);
	kick(q);
	assert_true(wait_used(q, 1, 5000));
	struct used u = take_used(q);
	assert_int_equal(u.id, head);
	return (struct res){ vh.vm.ram[h + 16], u.len };
}

static struct res do_req(uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len, bool w)
{
	struct seg d = { gpa, len, w };
	return do_segs(0, &d, len ? 1 : 0, type, sector);
}

static void host_read(uint64_t off, void *buf, size_t len)
{
	assert_int_equal(pread(fx.host_fd, buf, len, (off_t)off), (ssize_t)len);
}

/* The host file still holds the initial pattern in [from, to). */
static void assert_host_pattern(uint64_t from, uint64_t to)
{
	static uint8_t buf[IMG_SIZE];
	host_read(from, buf, to - from);
	for (uint64_t i = from; i < to; i++)
		if (buf[i - from] != pat(i))
			fail_msg("host byte %llu changed: 0x%02x, expected 0x%02x",
				 (unsigned long long)i, buf[i - from], pat(i));
}

static void assert_host_zero(uint64_t from, uint64_t to)
{
	static uint8_t buf[IMG_SIZE];
	host_read(from, buf, to - from);
	for (uint64_t i = from; i < to; i++)
		if (buf[i - from])
			fail_msg("host byte %llu is 0x%02x, expected 0", (unsigned long long)i,
				 buf[i - from]);
}


/* ---- PCI identity, BAR and capabilities ----------------------------------------------- */

static void test_pci_identity_and_bar(void **state)
{
	(void)state;
	assert_int_equal(cfg_rd(0x08, 1), 1);           /* revision 1: modern */
	assert_int_equal(cfg_rd(0x09, 3), 0x018000);    /* mass storage, other */
	assert_int_equal(cfg_rd(0x2c, 2), 0x1af4);
	assert_true(cfg_rd(0x2e, 2) >= 0x40);           /* spec 4.1.2.1 */
	assert_int_equal(vh.bar & 0x7fff, 0);           /* naturally aligned */
	assert_true(vh.bar >= 0xc0000000u && vh.bar < 0xfc000000u);

	/* Sizing BAR0/BAR1 (64-bit): all-ones, read the mask, put back. */
	uint32_t lo = cfg_rd(0x10, 4), hi = cfg_rd(0x14, 4);
	cfg_wr(0x10, 0xffffffffu, 4);
	cfg_wr(0x14, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(0x10, 4), 0xffff8004u); /* size 0x8000, 64-bit */
	assert_int_equal(cfg_rd(0x14, 4), 0xffffffffu);
	cfg_wr(0x10, lo, 4);
	cfg_wr(0x14, hi, 4);
	assert_int_equal(cfg_rd(0x10, 4), lo);
	assert_int_equal(cfg_rd(0x14, 4), hi);
	/* BARs are fixed: another address does not move it. */
	cfg_wr(0x10, 0xd0000000u, 4);
	assert_int_equal(cfg_rd(0x10, 4), lo);
	assert_int_equal(cc_rd(NUMQ, 2), 1); /* still answering at the old address */

	/* The layout kvmini documents (docs/virtio.md). */
	assert_int_equal(vh.common, 0x0);
	assert_int_equal(vh.isr, 0x1000);
	assert_int_equal(vh.devcfg, 0x2000);
	assert_int_equal(vh.devcfg_len, 60);
	assert_int_equal(vh.notify, 0x3000);
	assert_int_equal(vh.notify_mult, 4);
	uint16_t ctrl = (uint16_t)cfg_rd(vh.msix_cap + 2u, 2);
	assert_int_equal((ctrl & 0x7ff) + 1, 2);               /* queues + config */
	assert_int_equal(cfg_rd(vh.msix_cap + 4u, 4), 0x4000); /* table, BIR 0 */
	assert_int_equal(cfg_rd(vh.msix_cap + 8u, 4), 0x6000); /* PBA, BIR 0 */
}

/* ---- device configuration and features -------------------------------------------- */

static void test_device_config(void **state)
{
	(void)state;
	uint64_t f = read_device_features();
	assert_true(f & BIT(F_VERSION_1));
	assert_true(f & BIT(F_SIZE_MAX));
	assert_true(f & BIT(F_SEG_MAX));
	assert_true(f & BIT(F_BLK_SIZE));
	assert_true(f & BIT(F_FLUSH));
	assert_true(f & BIT(F_DISCARD));
	assert_true(f & BIT(F_WRITE_ZEROES));
	assert_true(f & BIT(F_EVENT_IDX));
	assert_true(f & BIT(F_INDIRECT));
	assert_false(f & BIT(F_RO));
	assert_false(f & BIT(F_MQ)); /* one queue */
	assert_false(f & BIT(0));    /* legacy BARRIER */

	/* struct virtio_blk_config offsets from the spec (5.2.4). */
	assert_int_equal(dev_cfg(0, 8), IMG_SECTORS);          /* capacity */
	assert_int_equal(dev_cfg(0, 4), IMG_SECTORS);          /* as two halves */
	assert_int_equal(dev_cfg(4, 4), 0);
	assert_int_equal(dev_cfg(8, 4), 1u << 20);             /* size_max */
	assert_int_equal(dev_cfg(12, 4), 254);                 /* seg_max */
	assert_int_equal(dev_cfg(20, 4), 512);                 /* blk_size */
	assert_int_equal(dev_cfg(34, 2), 1);                   /* num_queues */
	assert_int_equal(dev_cfg(36, 4), 1u << 22);            /* max_discard_sectors */
	assert_int_equal(dev_cfg(40, 4), 1);                   /* max_discard_seg */
	assert_int_equal(dev_cfg(44, 4), 1);                   /* discard_sector_alignment */
	assert_int_equal(dev_cfg(48, 4), 1u << 22);            /* max_write_zeroes_sectors */
	assert_int_equal(dev_cfg(52, 4), 1);                   /* max_write_zeroes_seg */
	assert_int_equal(dev_cfg(56, 1), 1);                   /* write_zeroes_may_unmap */
	/* Out of bounds of the device config: reads as zero. */
	assert_int_equal(dev_cfg(58, 4), 0);
	assert_int_equal(cc_rd(NUMQ, 2), 1);
}

static void test_feature_negotiation(void **state)
{
	(void)state;
	uint8_t drv = ST_ACK | ST_DRIVER;
	/* A feature the device did not offer: FEATURES_OK does not stick. */
	assert_int_equal(negotiate(BASE_FEATURES | BIT(0)), drv);
	assert_int_equal(negotiate(BASE_FEATURES | BIT(40)), drv);
	/* No VERSION_1: a legacy driver, refused by a modern-only device. */
	assert_int_equal(negotiate(BASE_FEATURES & ~BIT(F_VERSION_1)), drv);
	/* DRIVER_OK without FEATURES_OK starts nothing. */
	set_status(drv | ST_DRIVER_OK);
	assert_false(vh.vd->started);
	/* A proper subset sticks, and then the features are frozen. */
	assert_int_equal(negotiate(BASE_FEATURES | BIT(F_EVENT_IDX)), drv | ST_FEATURES_OK);
	write_driver_features(BASE_FEATURES | BIT(F_DISCARD));
	assert_int_equal(read_driver_features(), BASE_FEATURES | BIT(F_EVENT_IDX));
	/* An MSI-X vector past the table reads back as NO_VECTOR. */
	cc_wr(MSIX, 7, 2);
	assert_int_equal(cc_rd(MSIX, 2), 0xffff);
	cc_wr(QSEL, 0, 2);
	cc_wr(QMSIX, 2, 2);
	assert_int_equal(cc_rd(QMSIX, 2), 0xffff);
	/* Queue sizes must be powers of two no larger than the maximum. */
	cc_wr(QSIZE, 100, 2);
	assert_int_equal(cc_rd(QSIZE, 2), 256);
	cc_wr(QSIZE, 512, 2);
	assert_int_equal(cc_rd(QSIZE, 2), 256);
	/* A queue that does not exist has size 0. */
	cc_wr(QSEL, 1, 2);
	assert_int_equal(cc_rd(QSIZE, 2), 0);
	/* Reset clears the driver's features. */
	set_status(0);
	assert_int_equal(read_driver_features(), 0);
}

/* ---- I/O ------------------------------------------------------------------------------ */

static void test_write_read_back(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	uint8_t *buf = vh.vm.ram + DATA;
	for (unsigned i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(0xa5 ^ i ^ (i >> 8));
	/* 8 sectors at sector 100, in two data descriptors. */
	struct seg wr[2] = { { DATA, 1024, false }, { DATA + 1024, 3072, false } };
	struct res r = do_segs(0, wr, 2, T_OUT, 100);
	assert_int_equal(r.status, S_OK);
	assert_int_equal(r.len, 1); /* only the status byte was written */
	uint8_t host[4096];
	host_read(100 * 512, host, sizeof(host));
	assert_memory_equal(host, buf, 4096);
	assert_host_pattern(0, 100 * 512);
	assert_host_pattern(108 * 512, IMG_SIZE);

	/* Read it back into other buffers (three of them). */
	memset(vh.vm.ram + DATA + 0x10000, 0, 4096);
	struct seg rd[3] = { { DATA + 0x10000, 512, true }, { DATA + 0x10200, 2560, true },
			     { DATA + 0x10c00, 1024, true } };
	r = do_segs(0, rd, 3, T_IN, 100);
	assert_int_equal(r.status, S_OK);
	assert_int_equal(r.len, 4096 + 1);
	assert_memory_equal(vh.vm.ram + DATA + 0x10000, buf, 4096);

	/* And untouched data reads as the host file holds it. */
	r = do_req(T_IN, 5, DATA + 0x20000, 1024, true);
	assert_int_equal(r.status, S_OK);
	host_read(5 * 512, host, 1024);
	assert_memory_equal(vh.vm.ram + DATA + 0x20000, host, 1024);
	/* The last sector. */
	r = do_req(T_IN, IMG_SECTORS - 1, DATA + 0x20000, 512, true);
	assert_int_equal(r.status, S_OK);
	host_read(IMG_SIZE - 512, host, 512);
	assert_memory_equal(vh.vm.ram + DATA + 0x20000, host, 512);
	assert_int_equal(atomic_load(&vh.vd->malformed), 0);
}

/* VM pause: a paused device serves nothing (a request kicked while paused
 * stays in the ring, guest memory untouched), and after resume it carries on
 * from the same ring position with the negotiated state kept; the counters
 * count what happened. */
static void test_pause_resume(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	struct res r = do_req(T_IN, 0, DATA, 512, true);
	assert_int_equal(r.status, S_OK);
	uint16_t before = used_idx(0);

	virtio_blk_pause(fx.b);
	memset(vh.vm.ram + DATA, 0x5a, 4096);
	uint64_t h = HDR(0, 0);
	put_hdr(h, T_IN, 8);
	struct seg s[3] = { { h, 16, false }, { DATA, 4096, true }, { h + 16, 1, true } };
	uint16_t head = post(0, s, 3);
	kick(0);
	/* Nothing may happen: give a running worker ample time to be wrong. */
	assert_false(wait_used(0, 1, 300));
	assert_int_equal(used_idx(0), before);
	assert_int_equal(vh.vm.ram[h + 16], 0xff);
	assert_int_equal(vh.vm.ram[DATA], 0x5a);
	assert_int_equal(status() & ST_READY, ST_READY);

	virtio_blk_resume(fx.b);
	/* The kick came while paused: resume must look at the ring itself. */
	assert_true(wait_used(0, 1, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 4096 + 1);
	assert_int_equal(vh.vm.ram[h + 16], S_OK);
	uint8_t host[4096];
	host_read(8 * 512, host, sizeof(host));
	assert_memory_equal(vh.vm.ram + DATA, host, sizeof(host));
	assert_int_equal(used_idx(0), (uint16_t)(before + 1));
	/* And the next request runs as ever. */
	r = do_req(T_OUT, 16, DATA, 512, false);
	assert_int_equal(r.status, S_OK);
	r = do_req(T_FLUSH, 0, 0, 0, false);
	assert_int_equal(r.status, S_OK);

	struct virtio_blk_stats st;
	virtio_blk_get_stats(fx.b, &st);
	assert_int_equal(st.reads, 2);
	assert_int_equal(st.read_bytes, 512 + 4096);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.write_bytes, 512);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.errors, 0);
}

/* Requests published together and kicked once: adjacent reads (or writes)
 * reach the disk merged, the rest alone (a type change, a flush and a gap
 * each end a group); every request still gets its own data, status and used
 * length. */
static void test_merged_requests(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	static const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t len;
	} rq[] = {
		{ T_IN, 0, 4096 },    { T_IN, 8, 8192 },    /* one group */
		{ T_IN, 100, 512 },   { T_IN, 101, 1024 },  /* a gap before: a new group */
		{ T_OUT, 103, 512 },  { T_OUT, 104, 1024 }, /* writes: their own group */
		{ T_IN, 24, 4096 },                         /* alone */
		{ T_FLUSH, 0, 0 },
		{ T_IN, 32, 4096 },   { T_IN, 40, 4096 },   /* adjacent to 24, but after a flush */
		{ T_IN, 60, 4096 },   { T_IN, 48, 4096 },   /* out of order: no merge */
	};
	enum { N = sizeof(rq) / sizeof(rq[0]) };
	uint16_t head[N];
	/* All twelve become visible to the device at once: a worker that
	 * drained while they were being posted (its first drain after
	 * DRIVER_OK, late on a loaded machine) would split the groups. */
	hold_avail(0);
	for (unsigned i = 0; i < N; i++) {
		uint64_t h = HDR(0, i), buf = DATA + 0x4000u * i;
		put_hdr(h, rq[i].type, rq[i].sector);
		for (uint32_t k = 0; k < rq[i].len; k++)
			vh.vm.ram[buf + k] = rq[i].type == T_OUT ? (uint8_t)(0x5a ^ i ^ k) : 0xee;
		struct seg sg[3] = { { h, 16, false } };
		unsigned n = 1;
		if (rq[i].len)
			sg[n++] = (struct seg){ buf, rq[i].len, rq[i].type == T_IN };
		sg[n++] = (struct seg){ h + 16, 1, true };
		head[i] = post(0, sg, n);
	}
	release_avail(0);
	kick(0);
	assert_true(wait_used(0, N, 5000));
	bool seen[N] = { false };
	for (unsigned j = 0; j < N; j++) {
		struct used u = take_used(0);
		unsigned i = 0;
		while (i < N && head[i] != u.id)
			i++;
		assert_true(i < N && !seen[i]);
		seen[i] = true;
		assert_int_equal(vh.vm.ram[HDR(0, i) + 16], S_OK);
		assert_int_equal(u.len, (rq[i].type == T_IN ? rq[i].len : 0) + 1);
	}
	for (unsigned i = 0; i < N; i++) {
		const uint8_t *buf = vh.vm.ram + DATA + 0x4000u * i;
		uint64_t off = rq[i].sector * 512;
		if (rq[i].type == T_IN)
			for (uint32_t k = 0; k < rq[i].len; k++)
				assert_int_equal(buf[k], pat(off + k));
		if (rq[i].type == T_OUT) {
			uint8_t host[1024];
			host_read(off, host, rq[i].len);
			assert_memory_equal(host, buf, rq[i].len);
		}
	}
	assert_host_pattern(0, 103 * 512);
	assert_host_pattern(106 * 512, IMG_SIZE);
	/* Merged: 8 into 0, 101 into 100, 104 into 103, 40 into 32. */
	char *stats = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&stats, &size);
	assert_non_null(f);
	virtio_blk_print_stats(f, fx.b);
	fclose(f);
	assert_non_null(strstr(stats, "12 requests (4 merged into others)"));
	free(stats);
}

static void test_out_of_range(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	memset(vh.vm.ram + DATA, 0x77, 0x10000);
	/* Reads that run past the end. */
	assert_int_equal(do_req(T_IN, IMG_SECTORS - 1, DATA, 1024, true).status, S_IOERR);
	assert_int_equal(do_req(T_IN, IMG_SECTORS, DATA, 512, true).status, S_IOERR);
	assert_int_equal(do_req(T_IN, 1ULL << 63, DATA, 512, true).status, S_IOERR);
	assert_int_equal(do_req(T_IN, UINT64_MAX, DATA, 512, true).status, S_IOERR);
	/* Failed reads report no data. */
	struct res r = do_req(T_IN, IMG_SECTORS, DATA, 512, true);
	assert_int_equal(r.len, 1);
	/* Writes that run past the end leave the host file alone. */
	assert_int_equal(do_req(T_OUT, IMG_SECTORS - 1, DATA, 1024, false).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, IMG_SECTORS, DATA, 512, false).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, (UINT64_MAX >> 9) + 1, DATA, 512, false).status, S_IOERR);
	assert_host_pattern(0, IMG_SIZE);
	/* The device goes on working. */
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
}

/* The limits the device advertises are enforced: a segment longer than
 * size_max (1 MiB) or more than seg_max (254) data segments is an I/O
 * error, so the host never works on more than it promised; exactly at the
 * limits is fine. */
static void test_size_and_seg_max(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES | BIT(F_INDIRECT));
	assert_int_equal(dev_cfg(12, 4), 254);         /* seg_max */
	assert_int_equal(dev_cfg(8, 4), 1u << 20);     /* size_max */
	assert_int_equal(do_req(T_IN, 0, DATA, 1u << 20, true).status, S_OK);
	assert_int_equal(do_req(T_IN, 0, DATA, (1u << 20) + 512, true).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, 0, DATA, (1u << 20) + 512, false).status, S_IOERR);
	assert_host_pattern(0, IMG_SIZE);

	/* A write whose header shares its descriptor with the first data
	 * sector: header+data, then k more data descriptors, then status. */
	for (unsigned k = 253; k <= 254; k++) {
		static struct seg sg[256];
		uint64_t h = HDR(0, 1), buf = DATA;
		memset(vh.vm.ram + buf, 0x77, 512 * 256);
		w32(buf, T_OUT);
		w32(buf + 4, 0);
		w64(buf + 8, 100);
		sg[0] = (struct seg){ buf, 16 + 512, false };
		for (unsigned i = 1; i <= k; i++)
			sg[i] = (struct seg){ buf + 16 + 512 * i, 512, false };
		vh.vm.ram[h + 16] = 0xff;
		sg[k + 1] = (struct seg){ h + 16, 1, true };
		uint16_t head = post_indirect(0, 0, sg, k + 2);
		kick(0);
		assert_true(wait_used(0, 1, 5000));
		assert_int_equal(take_used(0).id, head);
		/* 254 data segments: at the limit; 255: one too many. */
		assert_int_equal(vh.vm.ram[h + 16], k + 1 <= 254 ? S_OK : S_IOERR);
	}
	assert_host_pattern((100 + 254) * 512, IMG_SIZE);
}

static void test_partial_sector(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	memset(vh.vm.ram + DATA, 0x55, 4096);
	assert_int_equal(do_req(T_IN, 0, DATA, 100, true).status, S_IOERR);
	assert_int_equal(do_req(T_IN, 0, DATA, 513, true).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, 3, DATA, 700, false).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, 3, DATA, 1, false).status, S_IOERR);
	/* Two descriptors adding up to 1.5 sectors. */
	struct seg s[2] = { { DATA, 512, false }, { DATA + 512, 256, false } };
	assert_int_equal(do_segs(0, s, 2, T_OUT, 10).status, S_IOERR);
	assert_host_pattern(0, IMG_SIZE);
}

static void test_flush(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	struct res r = do_req(T_FLUSH, 0, 0, 0, false);
	assert_int_equal(r.status, S_OK);
	assert_int_equal(r.len, 1);
}

static void test_get_id(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	memset(vh.vm.ram + DATA, 0xaa, 64);
	struct res r = do_req(T_GET_ID, 0, DATA, 20, true);
	assert_int_equal(r.status, S_OK);
	assert_int_equal(r.len, 20 + 1);
	assert_memory_equal(vh.vm.ram + DATA, SERIAL, strlen(SERIAL));
	for (size_t i = strlen(SERIAL); i < 20; i++)
		assert_int_equal(vh.vm.ram[DATA + i], 0);    /* NUL-padded */
	assert_int_equal(vh.vm.ram[DATA + 20], 0xaa);        /* nothing past the buffer */
	/* A short buffer gets what fits. */
	memset(vh.vm.ram + DATA, 0xaa, 64);
	r = do_req(T_GET_ID, 0, DATA, 4, true);
	assert_int_equal(r.status, S_OK);
	assert_memory_equal(vh.vm.ram + DATA, SERIAL, 4);
	assert_int_equal(vh.vm.ram[DATA + 4], 0xaa);
}

static void put_range_seg(uint64_t gpa, uint64_t sector, uint32_t n, uint32_t flags)
{
	w64(gpa, sector);
	w32(gpa + 8, n);
	w32(gpa + 12, flags);
}

static void test_discard_write_zeroes(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES | BIT(F_DISCARD) | BIT(F_WRITE_ZEROES));
	put_range_seg(DATA, 16, 8, 0);
	struct res r = do_req(T_DISCARD, 0, DATA, 16, false);
	assert_int_equal(r.status, S_OK);
	assert_int_equal(r.len, 1);
	assert_host_zero(16 * 512, 24 * 512); /* ext4/tmpfs/xfs punch holes */
	assert_host_pattern(15 * 512, 16 * 512);
	assert_host_pattern(24 * 512, 25 * 512);

	put_range_seg(DATA, 64, 16, 0);
	assert_int_equal(do_req(T_WRITE_ZEROES, 0, DATA, 16, false).status, S_OK);
	assert_host_zero(64 * 512, 80 * 512);
	put_range_seg(DATA, 200, 3, 1 /* UNMAP */);
	assert_int_equal(do_req(T_WRITE_ZEROES, 0, DATA, 16, false).status, S_OK);
	assert_host_zero(200 * 512, 203 * 512);
	assert_host_pattern(80 * 512, 200 * 512);
	assert_host_pattern(203 * 512, IMG_SIZE);
	/* Past the end: an I/O error, nothing zeroed. */
	put_range_seg(DATA, IMG_SECTORS - 1, 2, 0);
	assert_int_equal(do_req(T_WRITE_ZEROES, 0, DATA, 16, false).status, S_IOERR);
	assert_host_pattern(IMG_SIZE - 512, IMG_SIZE);
}

static void test_discard_unsupported_forms(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES | BIT(F_DISCARD) | BIT(F_WRITE_ZEROES));
	/* Two segments: max_discard_seg is 1. */
	put_range_seg(DATA, 16, 8, 0);
	put_range_seg(DATA + 16, 32, 8, 0);
	assert_int_equal(do_req(T_DISCARD, 0, DATA, 32, false).status, S_UNSUPP);
	assert_int_equal(do_req(T_WRITE_ZEROES, 0, DATA, 32, false).status, S_UNSUPP);
	/* UNMAP is a write-zeroes flag only. */
	put_range_seg(DATA, 16, 8, 1);
	assert_int_equal(do_req(T_DISCARD, 0, DATA, 16, false).status, S_UNSUPP);
	assert_host_pattern(0, IMG_SIZE);
}

static void test_unknown_type(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES); /* DISCARD and WRITE_ZEROES not negotiated */
	struct res r = do_req(0x42, 0, DATA, 512, true);
	assert_int_equal(r.status, S_UNSUPP);
	assert_int_equal(r.len, 1);
	assert_int_equal(do_req(T_OUT | 0x80000000u, 0, DATA, 512, false).status, S_UNSUPP);
	put_range_seg(DATA, 16, 8, 0);
	assert_int_equal(do_req(T_DISCARD, 0, DATA, 16, false).status, S_UNSUPP);
	assert_int_equal(do_req(T_WRITE_ZEROES, 0, DATA, 16, false).status, S_UNSUPP);
	assert_host_pattern(0, IMG_SIZE);
}

static void test_readonly(void **state)
{
	(void)state;
	uint64_t f = read_device_features();
	assert_true(f & BIT(F_RO));
	assert_false(f & BIT(F_DISCARD));
	assert_false(f & BIT(F_WRITE_ZEROES));
	drv_init(BASE_FEATURES | BIT(F_RO));
	memset(vh.vm.ram + DATA, 0x99, 1024);
	assert_int_equal(do_req(T_OUT, 0, DATA, 1024, false).status, S_IOERR);
	assert_int_equal(do_req(T_OUT, 50, DATA, 512, false).status, S_IOERR);
	assert_host_pattern(0, IMG_SIZE);
	/* Reads and flushes still work. */
	assert_int_equal(do_req(T_IN, 2, DATA, 512, true).status, S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(vh.vm.ram[DATA + i], pat(2 * 512 + i));
	assert_int_equal(do_req(T_FLUSH, 0, 0, 0, false).status, S_OK);
}

/* ---- hostile drivers ------------------------------------------------------------------- */

static void test_hostile_chain(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	uint64_t h = HDR(0, 0);
	put_hdr(h, T_IN, 0);

	/* Data buffer outside guest RAM. */
	struct seg bad[3] = { { h, 16, false }, { OUTSIDE, 512, true }, { h + 16, 1, true } };
	uint16_t head = post(0, bad, 3);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 0);
	assert_int_equal(vh.vm.ram[h + 16], 0xff); /* nothing written */
	assert_int_equal(atomic_load(&vh.vd->malformed), 1);

	/* A buffer straddling the end of RAM. */
	bad[1] = (struct seg){ RAM_SIZE - 256, 512, true };
	head = post(0, bad, 3);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	u = take_used(0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 0);
	assert_int_equal(atomic_load(&vh.vd->malformed), 2);

	/* No writable descriptor: nowhere to put a status. */
	struct seg nostatus[1] = { { h, 16, false } };
	head = post(0, nostatus, 1);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	u = take_used(0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 0);
	assert_int_equal(atomic_load(&vh.vd->malformed), 3);

	/* A descriptor loop. */
	uint16_t d0 = vh.q[0].next_desc, d1 = (uint16_t)(d0 + 1);
	set_desc(RING(0), d0, h, 16, D_NEXT, d1);
	set_desc(RING(0), d1, DATA, 512, D_NEXT | D_WRITE, d0);
	vh.q[0].next_desc = (uint16_t)(d0 + 2);
	publish(0, d0);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	u = take_used(0);
	assert_int_equal(u.id, d0);
	assert_int_equal(u.len, 0);
	assert_int_equal(atomic_load(&vh.vd->malformed), 4);

	/* The next good request is served. */
	struct res r = do_req(T_IN, 1, DATA, 512, true);
	assert_int_equal(r.status, S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(vh.vm.ram[DATA + i], pat(512 + i));
	assert_int_equal(atomic_load(&vh.vd->malformed), 4);
	assert_false(status() & ST_NEEDS_RESET);
}

static void test_queue_outside_ram(void **state)
{
	(void)state;
	assert_true(negotiate(BASE_FEATURES) & ST_FEATURES_OK);
	queue_setup_at(0, 256, NO_VECTOR, OUTSIDE, AVAIL(0), USED(0));
	assert_int_equal(cc_rd(QENABLE, 2), 0);
	assert_true(status() & ST_NEEDS_RESET);
	/* A used ring that runs off the end of RAM. */
	assert_true(negotiate(BASE_FEATURES) & ST_FEATURES_OK);
	assert_false(status() & ST_NEEDS_RESET); /* reset cleared it */
	queue_setup_at(0, 256, NO_VECTOR, RING(0), AVAIL(0), RAM_SIZE - 0x100);
	assert_int_equal(cc_rd(QENABLE, 2), 0);
	assert_true(status() & ST_NEEDS_RESET);
	/* Reset and a proper set-up work. */
	drv_init(BASE_FEATURES);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
}

/* A failing I/O thread is not silent: a kick read that fails (injected
 * through the engine's fault hook) makes the device NEEDS_RESET with one
 * log line, and a reset brings the queue back. */
static int fail_eventfd_reads(void *opaque, enum io_op op, int res)
{
	return op == IO_OP_EVENTFD ? -EIO : res;
}

static void test_worker_failure_needs_reset(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	struct io_engine *e = virtio_blk_queue_engine(fx.b, 0);
	assert_non_null(e);
	/* The worker reads the hook only in a completion after our kick
	 * (the eventfd write orders it). */
	e->fault = fail_eventfd_reads;
	uint64_t h = HDR(0, 0);
	put_hdr(h, T_IN, 0);
	struct seg sg[3] = { { h, 16, false }, { DATA, 512, true }, { h + 16, 1, true } };
	post(0, sg, 3);
	kick(0);
	assert_true(wait_status(ST_NEEDS_RESET, 5000));
	drv_init(BASE_FEATURES);
	assert_false(status() & ST_NEEDS_RESET);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
}

static void test_avail_idx_jump_needs_reset(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	irqs(0);
	/* avail->idx 300 entries ahead of a 256-entry ring. */
	__atomic_store_n((uint16_t *)(vh.vm.ram + AVAIL(0) + 2), 300, __ATOMIC_RELEASE);
	kick(0);
	assert_true(wait_status(ST_NEEDS_RESET, 5000));
	assert_true(wait_irq(0, 1000)); /* config-change interrupt */
	assert_int_equal(used_idx(0), 0);
	drv_init(BASE_FEATURES);
	assert_false(status() & ST_NEEDS_RESET);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
}

/* A driver that clears DRIVER_OK or FEATURES_OK without a reset (a bug,
 * spec 2.1.2): the bits stay, the running I/O thread is not stopped or
 * replaced, requests are still served, and the features it started with
 * do not change under it. */
static void test_clear_driver_ok_keeps_running(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	struct io_engine *eng = virtio_blk_queue_engine(fx.b, 0);
	assert_non_null(eng);
	uint8_t ready = ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK;

	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	assert_int_equal(status(), ready);
	assert_true(vh.vd->started);
	struct res r = do_req(T_IN, 3, DATA, 1024, true);
	assert_int_equal(r.status, S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(vh.vm.ram[DATA + i], pat(3 * 512 + i));

	set_status(ST_ACK | ST_DRIVER);
	assert_int_equal(status(), ready);
	/* Features stay frozen: DISCARD, never negotiated, stays refused. */
	write_driver_features(BASE_FEATURES | BIT(F_DISCARD));
	assert_int_equal(read_driver_features(), BASE_FEATURES);
	put_range_seg(DATA, 0, 8, 0);
	assert_int_equal(do_req(T_DISCARD, 0, DATA, 16, false).status, S_UNSUPP);
	assert_host_pattern(0, 8 * 512);
	/* DRIVER_OK again starts nothing new: the same I/O thread serves. */
	set_status(ready);
	assert_ptr_equal(virtio_blk_queue_engine(fx.b, 0), eng);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_false(status() & ST_NEEDS_RESET);
	/* A reset still stops it. */
	set_status(0);
	assert_null(virtio_blk_queue_engine(fx.b, 0));
}

/* The driver moves a running queue's MSI-X vector: completions interrupt
 * on the new vector from then on, and on none with NO_VECTOR. */
static void test_queue_vector_rewrite_live(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	irqs(0);
	irqs(1);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(1), 1);

	cc_wr(QSEL, 0, 2);
	cc_wr(QMSIX, 0, 2);                 /* share the config vector */
	assert_int_equal(cc_rd(QMSIX, 2), 0);
	assert_int_equal(cc_rd(QENABLE, 2), 1);
	assert_int_equal(do_req(T_IN, 1, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(0, 2000));
	assert_int_equal(irqs(0), 1);
	assert_int_equal(irqs(1), 0);

	/* NO_VECTOR: no interrupt at all (a second request is the barrier for
	 * the first one's decision), and no INTx either. */
	cc_wr(QMSIX, 0xffff, 2);
	assert_int_equal(do_req(T_IN, 2, DATA, 512, true).status, S_OK);
	assert_int_equal(do_req(T_IN, 3, DATA, 512, true).status, S_OK);
	assert_int_equal(irqs(0), 0);
	assert_int_equal(irqs(1), 0);
	assert_false(vh.vd->pci.intx_asserted);

	cc_wr(QMSIX, 1, 2);
	assert_int_equal(do_req(T_IN, 4, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(0), 0);
	assert_int_equal(vh.vm.ram[DATA + 5], pat(4 * 512 + 5));
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void test_reset_while_active(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	/* 32 reads of 64 KiB in flight, then reset at once. */
	for (unsigned i = 0; i < 32; i++) {
		uint64_t h = HDR(0, i);
		put_hdr(h, T_IN, 128ull * i);
		struct seg s[3] = { { h, 16, false }, { DATA + 0x10000ull * i, 0x10000, true },
				    { h + 16, 1, true } };
		post(0, s, 3);
	}
	kick(0);
	set_status(0);
	assert_int_equal(status(), 0);
	assert_false(vh.vd->started);
	cc_wr(QSEL, 0, 2);
	assert_int_equal(cc_rd(QENABLE, 2), 0);

	/* Nobody serves the old ring any more. */
	uint16_t before = used_idx(0);
	uint64_t h = HDR(0, 40);
	put_hdr(h, T_IN, 0);
	struct seg s[3] = { { h, 16, false }, { DATA, 512, true }, { h + 16, 1, true } };
	post(0, s, 3);
	uint64_t one = 1;
	assert_int_equal(write(vh.vd->queues[0].kick_fd, &one, 8), 8);
	/* Reset joined the I/O thread: nothing is left that could serve it. */
	assert_null(virtio_blk_queue_engine(fx.b, 0));
	assert_int_equal(used_idx(0), before);

	/* Start again from scratch, twice. */
	for (int round = 0; round < 2; round++) {
		drv_init(BASE_FEATURES);
		assert_true(vh.vd->started);
		struct res r = do_req(T_IN, 7, DATA, 1024, true);
		assert_int_equal(r.status, S_OK);
		for (unsigned i = 0; i < 1024; i++)
			assert_int_equal(vh.vm.ram[DATA + i], pat(7 * 512 + i));
	}
}

/* The driver may fill a queue before DRIVER_OK (spec 3.1.1 step 7); the
 * I/O thread serves what it finds when it starts, without a kick, and
 * interrupts for it like for any other completion. GET_ID completes without
 * disk I/O, so nothing but the notification logic can wake the driver. */
static void test_request_before_driver_ok(void **state)
{
	(void)state;
	assert_int_equal(drv_setup(BASE_FEATURES, 1, 256, true), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	uint64_t h = HDR(0, 0);
	put_hdr(h, T_GET_ID, 0);
	struct seg s[3] = { { h, 16, false }, { DATA, 20, true }, { h + 16, 1, true } };
	post(0, s, 3);
	irqs(1);
	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, 21);
	assert_int_equal(vh.vm.ram[h + 16], S_OK);
	if (!wait_irq(1, 1000))
		fail_msg("completion served at start-up but no interrupt raised");
}

/* ---- notifications ------------------------------------------------------------------------ */

static void test_event_idx(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES | BIT(F_EVENT_IDX));
	uint64_t used_event = AVAIL(0) + 4 + 2 * 256, avail_event = USED(0) + 4 + 8 * 256;
	/* used_event 0: interrupt after the first completion. */
	irqs(1);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(1), 1);
	/* The device wants a kick for the next request. */
	assert_int_equal(r16(avail_event), vh.q[0].avail_idx);
	assert_int_equal(r16(USED(0)), 0); /* flags stay 0 with EVENT_IDX */

	/* used_event far ahead: no interrupt. A second request is the
	 * barrier: its kick is served after the worker decided about the
	 * first one's interrupt, so once it shows in the used ring the
	 * count is final for the first (no sleep, no race). */
	w16(used_event, (uint16_t)(vh.q[0].used_seen + 10));
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_int_equal(irqs(1), 0);
	/* used_event at the entry about to be used: interrupt. */
	w16(used_event, vh.q[0].used_seen);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(1), 1);
	assert_int_equal(r16(avail_event), vh.q[0].avail_idx);
}

static void test_no_event_idx(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	uint64_t avail_event = USED(0) + 4 + 8 * 256;
	w16(avail_event, 0xabcd);
	irqs(1);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(1), 1);
	assert_int_equal(r16(avail_event), 0xabcd); /* not used without EVENT_IDX */
	assert_int_equal(r16(USED(0)), 0);          /* kicks wanted */
	/* NO_INTERRUPT (avail flags bit 0) suppresses the interrupt. */
	w16(AVAIL(0), 1);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);   /* barrier */
	assert_int_equal(irqs(1), 0);
	w16(AVAIL(0), 0);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	assert_true(wait_irq(1, 2000));
	assert_int_equal(irqs(1), 1);
}

/* Without MSI-X: INTx and the ISR byte, which reading acknowledges. */
static void test_intx_isr(void **state)
{
	(void)state;
	assert_int_equal(drv_init_n(BASE_FEATURES, 1, 256, false),
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(do_req(T_IN, 0, DATA, 512, true).status, S_OK);
	for (int t = 0; t < 2000 && !vh.vd->pci.intx_asserted; t++)
		msleep(1);
	assert_true(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 1); /* queue interrupt */
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
}

/* Every slot of the queue's request pool taken at once (8 requests in an
 * 8-entry queue through indirect descriptors, which Linux uses): once they
 * complete, the idle device must want kicks again, or the driver (which
 * honours NO_NOTIFY / avail_event) never kicks for the next request. */
static void pool_exhaustion(bool event_idx)
{
	uint64_t f = BASE_FEATURES | BIT(F_INDIRECT) | (event_idx ? BIT(F_EVENT_IDX) : 0);
	assert_int_equal(drv_init_n(f, 1, 8, true),
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	uint16_t old = vh.q[0].avail_idx;
	for (unsigned i = 0; i < 8; i++) {
		uint64_t h = HDR(0, i);
		put_hdr(h, T_IN, i);
		struct seg s[3] = { { h, 16, false }, { DATA + 512u * i, 512, true },
				    { h + 16, 1, true } };
		post_indirect(0, i, s, 3);
	}
	assert_true(kick_wanted(0, old));
	kick(0);
	assert_true(wait_used(0, 8, 5000));
	for (unsigned i = 0; i < 8; i++) {
		take_used(0);
		assert_int_equal(vh.vm.ram[HDR(0, i) + 16], S_OK);
	}
	/* Once the pool is back, the idle device must want kicks again: wait
	 * for it rather than for a guessed time (a device that never turns
	 * them back on fails here). */
	if (!wait_notify_enabled(0, event_idx, 2000))
		fail_msg("after a full pool the device left notifications off");

	/* The next request, kicked only if the device asks for it. */
	old = vh.q[0].avail_idx;
	uint64_t h = HDR(0, 8);
	put_hdr(h, T_IN, 9);
	struct seg s[3] = { { h, 16, false }, { DATA + 0x8000, 512, true }, { h + 16, 1, true } };
	post_indirect(0, 8, s, 3);
	bool kicked = kick_wanted(0, old);
	if (kicked)
		kick(0);
	if (!wait_used(0, 1, 1000)) {
		kick(0); /* unstick the thread so teardown is clean */
		fail_msg("request after a full pool never served: device left notifications "
			 "suppressed (%s = %u)", event_idx ? "avail_event" : "used flags",
			 event_idx ? r16(USED(0) + 4 + 8 * 8) : r16(USED(0)));
	}
	assert_true(kicked);
	assert_int_equal(vh.vm.ram[h + 16], S_OK);
}

static void test_full_pool_then_idle(void **state) { (void)state; pool_exhaustion(false); }
static void test_full_pool_then_idle_event_idx(void **state) { (void)state; pool_exhaustion(true); }

/* ---- shapes of requests ------------------------------------------------------------------------ */

static void test_header_split(void **state)
{
	(void)state;
	drv_init(BASE_FEATURES);
	uint64_t h = HDR(0, 0);
	/* type+reserved in one descriptor, sector in another (with a gap). */
	w32(h, T_OUT);
	w32(h + 4, 0);
	w64(h + 24, 33);
	vh.vm.ram[h + 16] = 0xff;
	for (unsigned i = 0; i < 512; i++)
		vh.vm.ram[DATA + i] = (uint8_t)(i * 3);
	struct seg s[4] = { { h, 8, false }, { h + 24, 8, false }, { DATA, 512, false },
			    { h + 16, 1, true } };
	uint16_t head = post(0, s, 4);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).id, head);
	assert_int_equal(vh.vm.ram[h + 16], S_OK);
	uint8_t host[512];
	host_read(33 * 512, host, 512);
	assert_memory_equal(host, vh.vm.ram + DATA, 512);
	assert_host_pattern(32 * 512, 33 * 512);
	assert_host_pattern(34 * 512, 35 * 512);

	/* Header split 4 + 12 with the data in the same descriptor as the
	 * rest of the header; the status byte at the end of the data one. */
	w32(h + 64, T_IN);
	w32(h + 128, 0);
	w64(h + 132, 33);
	memset(vh.vm.ram + DATA + 0x1000, 0, 513);
	vh.vm.ram[DATA + 0x1000 + 512] = 0xff;
	struct seg s2[3] = { { h + 64, 4, false }, { h + 128, 12, false },
			     { DATA + 0x1000, 513, true } };
	head = post(0, s2, 3);
	kick(0);
	assert_true(wait_used(0, 1, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 513);
	assert_int_equal(vh.vm.ram[DATA + 0x1000 + 512], S_OK);
	assert_memory_equal(vh.vm.ram + DATA + 0x1000, vh.vm.ram + DATA, 512);
}

static void test_ring_wraps_small_queue(void **state)
{
	(void)state;
	assert_int_equal(drv_init_n(BASE_FEATURES, 1, 8, true),
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	/* 40 requests of 3 descriptors through an 8-entry table. */
	for (unsigned i = 0; i < 40; i++) {
		struct res r = do_req(T_IN, i, DATA, 512, true);
		assert_int_equal(r.status, S_OK);
		assert_int_equal(r.len, 513);
		assert_int_equal(vh.vm.ram[DATA + 17], pat(512ull * i + 17));
	}
	assert_int_equal(used_idx(0), 40);
}

static void test_two_queues(void **state)
{
	(void)state;
	assert_true(read_device_features() & BIT(F_MQ));
	assert_int_equal(dev_cfg(34, 2), 2);
	assert_int_equal(cc_rd(NUMQ, 2), 2);
	assert_int_equal(drv_init_n(BASE_FEATURES | BIT(F_MQ), 2, 256, true),
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	assert_int_not_equal(vh.vd->queues[0].kick_fd, vh.vd->queues[1].kick_fd);
	irqs(1);
	irqs(2);
	/* 16 reads of 4 KiB on each queue, all in flight together. */
	for (unsigned q = 0; q < 2; q++) {
		for (unsigned i = 0; i < 16; i++) {
			uint64_t h = HDR(q, i);
			put_hdr(h, T_IN, 8ull * (16 * q + i));
			struct seg s[3] = { { h, 16, false },
					    { DATA + 0x1000ull * (16 * q + i), 4096, true },
					    { h + 16, 1, true } };
			post(q, s, 3);
		}
	}
	kick(0);
	uint64_t one = 1;
	assert_int_equal(write(vh.vd->queues[1].kick_fd, &one, 8), 8); /* as the ioeventfd */
	assert_true(wait_used(0, 16, 5000));
	assert_true(wait_used(1, 16, 5000));
	for (unsigned q = 0; q < 2; q++) {
		for (unsigned i = 0; i < 16; i++) {
			struct used u = take_used(q);
			assert_true(u.id < 48);
			assert_int_equal(u.len, 4097);
			assert_int_equal(vh.vm.ram[HDR(q, i) + 16], S_OK);
		}
	}
	uint8_t *host = malloc(32 * 4096);
	assert_non_null(host);
	host_read(0, host, 32 * 4096);
	assert_memory_equal(vh.vm.ram + DATA, host, 32 * 4096);
	free(host);
	/* Each queue interrupts on its own vector. */
	assert_true(wait_irq(1, 2000));
	assert_true(wait_irq(2, 2000));
	/* And queue 1 serves a write on its own. */
	memset(vh.vm.ram + DATA, 0x3c, 512);
	struct seg d = { DATA, 512, false };
	vh.q[1].next_desc = 100;
	assert_int_equal(do_segs(1, &d, 1, T_OUT, 4000).status, S_OK);
	uint8_t b[512];
	host_read(4000 * 512, b, 512);
	assert_memory_equal(b, vh.vm.ram + DATA, 512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pci_identity_and_bar, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_device_config, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_back, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_merged_requests, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_partial_sector, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_size_and_seg_max, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_discard_unsupported_forms, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_chain, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_queue_outside_ram, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_jump_needs_reset, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_worker_failure_needs_reset, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_active, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_clear_driver_ok_keeps_running, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_queue_vector_rewrite_live, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_request_before_driver_ok, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_no_event_idx, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_intx_isr, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_full_pool_then_idle, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_full_pool_then_idle_event_idx, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_header_split, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_ring_wraps_small_queue, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_two_queues, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_two_queues, setup2_disk, teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_active, setup2_disk, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup1, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
