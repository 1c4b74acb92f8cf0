/* Split virtqueues (virtio/virtq.c) against a fake guest: 1 MiB of calloc'd
 * "RAM" in a struct vm with only ram/ram_low set. The helpers below play the
 * driver: they write descriptors, the available ring and its idx the way a
 * guest would, and every hostile case is a driver that lies. Ring offsets are
 * written as numbers from the spec (virtio 1.x 2.7), not virtq.c's macros. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/virtq.h"
#include "vmm/vm.h"

#define RAM_SIZE  (1u << 20)
#define DESC      0x1000u
#define AVAIL     0x2000u
#define USED      0x3000u
#define ITABLE    0x8000u    /* indirect tables */
#define BUF       0x10000u   /* data buffers */
#define QSIZE     8

/* Flag values from the spec (2.7.5, 2.7.6, 2.7.8). */
#define D_NEXT               1
#define D_WRITE              2
#define D_INDIRECT           4
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY     1

struct fx {
	struct vm vm;
	uint8_t *ram;
	struct virtq q;
	uint16_t size;
	uint16_t avail_idx;   /* driver's copy */
	uint16_t next_desc;   /* next free descriptor (driver allocator) */
	struct virtq_elem e;
};

/* ---- guest memory accessors (x86 is little-endian like virtio 1.x) ---- */

static void w16(struct fx *f, uint64_t gpa, uint16_t v) { memcpy(f->ram + gpa, &v, 2); }
static void w32(struct fx *f, uint64_t gpa, uint32_t v) { memcpy(f->ram + gpa, &v, 4); }
static void w64(struct fx *f, uint64_t gpa, uint64_t v) { memcpy(f->ram + gpa, &v, 8); }
static uint16_t r16(struct fx *f, uint64_t gpa) { uint16_t v; memcpy(&v, f->ram + gpa, 2); return v; }
static uint32_t r32(struct fx *f, uint64_t gpa) { uint32_t v; memcpy(&v, f->ram + gpa, 4); return v; }

/* ---- the fake driver ---- */

static void set_desc(struct fx *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	w64(f, table + 16 * i, addr);
	w32(f, table + 16 * i + 8, len);
	w16(f, table + 16 * i + 12, flags);
	w16(f, table + 16 * i + 14, next);
}

/* Puts head in the next avail slot and publishes avail->idx. */
static void publish(struct fx *f, uint16_t head)
{
	w16(f, AVAIL + 4 + 2 * (f->avail_idx % f->size), head);
	f->avail_idx++;
	w16(f, AVAIL + 2, f->avail_idx);
}

static void set_avail_idx(struct fx *f, uint16_t idx)
{
	f->avail_idx = idx;
	w16(f, AVAIL + 2, idx);
}

struct b {
	uint64_t addr;
	uint32_t len;
	bool w;
};

/* Lays bufs out as a chain in a table of tlen entries, starting at
 * descriptor first and wrapping at the end of the table. */
static void write_chain(struct fx *f, uint64_t table, unsigned first, unsigned tlen,
			const struct b *bufs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned d = (first + i) % tlen;
		uint16_t flags = (bufs[i].w ? D_WRITE : 0) |
				 (i + 1 < n ? D_NEXT : 0);

		set_desc(f, table, d, bufs[i].addr, bufs[i].len, flags, (uint16_t)((d + 1) % tlen));
	}
}

static uint16_t add_chain(struct fx *f, const struct b *bufs, unsigned n)
{
	uint16_t head = f->next_desc;

	write_chain(f, DESC, head, f->size, bufs, n);
	f->next_desc = (uint16_t)((head + n) % f->size);
	publish(f, head);
	return head;
}

/* One queue descriptor pointing at an indirect table at table holding bufs. */
static uint16_t add_indirect(struct fx *f, uint64_t table, const struct b *bufs, unsigned n,
			     uint16_t extra_flags)
{
	uint16_t head = f->next_desc;

	write_chain(f, table, 0, n, bufs, n);
	set_desc(f, DESC, head, table, 16 * n, D_INDIRECT | extra_flags, 0);
	f->next_desc = (uint16_t)((head + 1) % f->size);
	publish(f, head);
	return head;
}

static void enable(struct fx *f, uint16_t size, bool event_idx, bool indirect)
{
	f->size = size;
	f->avail_idx = 0;
	f->next_desc = 0;
	memset(f->ram, 0, RAM_SIZE);
	assert_int_equal(virtq_enable(&f->q, &f->vm, size, DESC, AVAIL, USED, event_idx, indirect), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = calloc(1, RAM_SIZE);
	assert_non_null(f->ram);
	f->vm.ram = f->ram;
	f->vm.ram_size = RAM_SIZE;
	f->vm.ram_low = RAM_SIZE;
	f->vm.ram_high = 0;
	enable(f, QSIZE, false, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->ram);
	free(f);
	return 0;
}

/* Pops and expects -EIO for head, counted as reason. */
static void expect_refused(struct fx *f, uint16_t head, enum virtq_error reason)
{
	uint64_t before = f->q.errors[reason];

	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nout, 0);
	assert_int_equal(f->e.nin, 0);
	assert_int_equal(f->q.errors[reason], before + 1);
}

/* ---- basic operation ---- */

static void test_simple_chain(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false }, { BUF + 0x1000, 512, true },
				  { BUF + 0x2000, 1, true } };
	uint16_t head = add_chain(f, bufs, 3);

	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nout, 1);
	assert_int_equal(f->e.nin, 2);
	assert_int_equal(f->e.out_len, 16);
	assert_int_equal(f->e.in_len, 513);
	assert_int_equal(f->e.out[0].iov_len, 16);
	assert_int_equal(f->e.in[0].iov_len, 512);
	assert_int_equal(f->e.in[1].iov_len, 1);
	assert_int_equal(f->q.last_avail, 1);
}

static void test_iovecs_point_into_ram(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF + 3, 5, false }, { BUF + 0x4000, 4, true } };
	char got[5];

	add_chain(f, bufs, 2);
	memcpy(f->ram + BUF + 3, "hello", 5);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF + 3);
	assert_ptr_equal(f->e.in[0].iov_base, f->ram + BUF + 0x4000);
	memcpy(got, f->e.out[0].iov_base, 5);
	assert_memory_equal(got, "hello", 5);
	memcpy(f->e.in[0].iov_base, "OK!!", 4);
	assert_memory_equal(f->ram + BUF + 0x4000, "OK!!", 4);
}

static void test_empty_ring(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 8, false } };

	assert_false(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	add_chain(f, bufs, 1);
	assert_true(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_false(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(f->q.last_avail, 1);
}

static void test_full_ring_and_chain_of_size(void **state)
{
	struct fx *f = *state;
	struct b bufs[QSIZE];

	/* One chain using every descriptor of the table is legal. */
	for (unsigned i = 0; i < QSIZE; i++)
		bufs[i] = (struct b){ BUF + 0x100 * i, 0x10, i >= 4 };
	add_chain(f, bufs, QSIZE);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, 4);
	assert_int_equal(f->e.nin, 4);
	assert_ptr_equal(f->e.in[3].iov_base, f->ram + BUF + 0x700);

	/* size single-descriptor chains published at once (idx moves by size). */
	for (unsigned i = 0; i < QSIZE; i++)
		add_chain(f, &(struct b){ BUF + i, 1, false }, 1);
	for (unsigned i = 0; i < QSIZE; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, i);
		assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF + i);
	}
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
}

static void test_index_wraparound(void **state)
{
	struct fx *f = *state;

	/* As after a long run: both sides just below 65536. */
	f->q.last_avail = 65533;
	set_avail_idx(f, 65533);
	f->q.used_idx = 65534;
	w16(f, USED + 2, 65534);
	for (unsigned i = 0; i < 6; i++)
		add_chain(f, &(struct b){ BUF + 0x10 * i, 4, false }, 1);
	assert_int_equal(f->avail_idx, 3);
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, i);
		assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF + 0x10 * i);
		virtq_push(&f->q, f->e.head, 100 + i);
	}
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(f->q.last_avail, 3);
	/* used idx 65534..3: slots 6, 7, 0, 1, 2, 3. */
	assert_int_equal(r16(f, USED + 2), 4);
	assert_int_equal(r32(f, USED + 4 + 8 * 6), 0);
	assert_int_equal(r32(f, USED + 4 + 8 * 6 + 4), 100);
	assert_int_equal(r32(f, USED + 4 + 8 * 7), 1);
	assert_int_equal(r32(f, USED + 4 + 8 * 0), 2);
	assert_int_equal(r32(f, USED + 4 + 8 * 3), 5);
	assert_int_equal(r32(f, USED + 4 + 8 * 3 + 4), 105);
}

/* Every ring position and event field depends on the queue size: run whole
 * rings of several sizes, starting just below the 16-bit wrap. */
static void test_queue_sizes(void **state)
{
	struct fx *f = *state;
	const uint16_t sizes[] = { 1, 2, 4, 16, 256 };

	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint16_t s = sizes[k];
		uint16_t start = (uint16_t)(65536 - s / 2 - 1);

		enable(f, s, true, false);
		f->q.last_avail = start;
		f->q.used_idx = start;
		set_avail_idx(f, start);
		for (unsigned i = 0; i < s; i++)
			add_chain(f, &(struct b){ BUF + 4 * i, 4, i & 1 }, 1);
		set_avail_idx(f, (uint16_t)(start + s + 1));
		assert_int_equal(virtq_pop(&f->q, &f->e), -EPROTO);
		set_avail_idx(f, (uint16_t)(start + s));
		for (unsigned i = 0; i < s; i++) {
			assert_int_equal(virtq_pop(&f->q, &f->e), 1);
			assert_int_equal(f->e.head, i);
			assert_ptr_equal(i & 1 ? f->e.in[0].iov_base : f->e.out[0].iov_base,
					 f->ram + BUF + 4 * i);
			assert_int_equal(r16(f, USED + 4 + 8 * s), (uint16_t)(start + i + 1));
			virtq_push(&f->q, f->e.head, i);
		}
		assert_int_equal(virtq_pop(&f->q, &f->e), 0);
		assert_int_equal(r16(f, USED + 2), (uint16_t)(start + s));
		for (unsigned i = 0; i < s; i++) {
			unsigned slot = (uint16_t)(start + i) % s;

			assert_int_equal(r32(f, USED + 4 + 8 * slot), i);
			assert_int_equal(r32(f, USED + 4 + 8 * slot + 4), i);
		}
		/* used_event sits right after ring[s]. */
		f->q.signalled_used = start;
		f->q.signalled_valid = true;
		w16(f, AVAIL + 4 + 2 * s, (uint16_t)(start + s));
		assert_false(virtq_should_notify(&f->q));
		f->q.signalled_used = start;
		w16(f, AVAIL + 4 + 2 * s, (uint16_t)(start + s - 1));
		assert_true(virtq_should_notify(&f->q));
	}
}

/* ---- bad indexes and addresses ---- */

static void test_head_index_out_of_range(void **state)
{
	struct fx *f = *state;

	publish(f, QSIZE);
	expect_refused(f, QSIZE, VQ_ERR_DESC_INDEX);
	publish(f, 0xffff);
	expect_refused(f, 0xffff, VQ_ERR_DESC_INDEX);
	/* The highest valid index works. */
	set_desc(f, DESC, QSIZE - 1, BUF, 4, 0, 0);
	publish(f, QSIZE - 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, QSIZE - 1);
}

static void test_next_index_out_of_range(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 4, D_NEXT, QSIZE);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_DESC_INDEX);
}

static void test_addresses_outside_ram(void **state)
{
	struct fx *f = *state;
	uint16_t h;

	h = add_chain(f, &(struct b){ RAM_SIZE, 1, false }, 1);          /* past RAM */
	expect_refused(f, h, VQ_ERR_ADDR);
	h = add_chain(f, &(struct b){ RAM_SIZE - 4, 8, true }, 1);       /* spans the end */
	expect_refused(f, h, VQ_ERR_ADDR);
	h = add_chain(f, &(struct b){ UINT64_MAX - 3, 16, false }, 1);   /* addr+len wraps */
	expect_refused(f, h, VQ_ERR_ADDR);
	h = add_chain(f, &(struct b){ 0x100000000ull, 4, false }, 1);    /* no high RAM */
	expect_refused(f, h, VQ_ERR_ADDR);
	h = add_chain(f, &(struct b){ BUF, 0xffffffffu, true }, 1);      /* huge len */
	expect_refused(f, h, VQ_ERR_ADDR);
	/* The bad one second in a chain. */
	const struct b two[] = { { BUF, 4, false }, { RAM_SIZE - 1, 2, true } };
	h = add_chain(f, two, 2);
	expect_refused(f, h, VQ_ERR_ADDR);
	/* The last bytes of RAM are fine. */
	h = add_chain(f, &(struct b){ RAM_SIZE - 8, 8, true }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_ptr_equal(f->e.in[0].iov_base, f->ram + RAM_SIZE - 8);
	assert_int_equal(f->q.errors[VQ_ERR_ADDR], 6);
}

static void test_zero_length_buffer(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { 0xdead000000000000ull, 0, false }, { BUF, 4, false },
				  { RAM_SIZE, 0, true }, { BUF + 8, 2, true } };

	add_chain(f, bufs, 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, 2);
	assert_int_equal(f->e.nin, 2);
	assert_int_equal(f->e.out[0].iov_len, 0);
	assert_null(f->e.out[0].iov_base);
	assert_int_equal(f->e.in[0].iov_len, 0);
	assert_null(f->e.in[0].iov_base);
	assert_ptr_equal(f->e.out[1].iov_base, f->ram + BUF);
	assert_int_equal(f->e.out_len, 4);
	assert_int_equal(f->e.in_len, 2);
}

/* ---- chain length and loops ---- */

static void test_chain_loop(void **state)
{
	struct fx *f = *state;

	/* 0 -> 1 -> 0 -> ... */
	set_desc(f, DESC, 0, BUF, 4, D_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 4, D_NEXT, 0);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_CHAIN_TOO_LONG);
	/* 2 -> 2 */
	set_desc(f, DESC, 2, BUF, 4, D_NEXT | D_WRITE, 2);
	publish(f, 2);
	expect_refused(f, 2, VQ_ERR_CHAIN_TOO_LONG);
}

static void test_chain_longer_than_size(void **state)
{
	struct fx *f = *state;
	struct b bufs[QSIZE];

	/* All size descriptors, the last one pointing back into the chain:
	 * size + 1 descriptors would be walked. */
	for (unsigned i = 0; i < QSIZE; i++)
		bufs[i] = (struct b){ BUF, 4, false };
	write_chain(f, DESC, 0, QSIZE, bufs, QSIZE);
	set_desc(f, DESC, QSIZE - 1, BUF, 4, D_NEXT, 5);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_CHAIN_TOO_LONG);
}

static void test_chain_longer_than_max(void **state)
{
	struct fx *f = *state;
	static struct b bufs[VIRTQ_MAX_CHAIN];

	for (unsigned i = 0; i < VIRTQ_MAX_CHAIN; i++)
		bufs[i] = (struct b){ BUF + i, 1, false };

	/* 2 direct + 254 indirect = VIRTQ_MAX_CHAIN buffers: accepted. */
	write_chain(f, ITABLE, 0, VIRTQ_MAX_CHAIN - 2, bufs, VIRTQ_MAX_CHAIN - 2);
	set_desc(f, DESC, 0, BUF, 1, D_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 1, D_NEXT, 2);
	set_desc(f, DESC, 2, ITABLE, 16 * (VIRTQ_MAX_CHAIN - 2), D_INDIRECT, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, VIRTQ_MAX_CHAIN);
	assert_ptr_equal(f->e.out[VIRTQ_MAX_CHAIN - 1].iov_base, f->ram + BUF + VIRTQ_MAX_CHAIN - 3);

	/* 3 direct + 254 indirect: one too many. */
	set_desc(f, DESC, 3, BUF, 1, D_NEXT, 0);
	publish(f, 3);
	expect_refused(f, 3, VQ_ERR_CHAIN_TOO_LONG);
}

/* ---- indirect descriptors ---- */

static void test_indirect_valid(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false }, { BUF + 0x100, 64, true },
				  { BUF + 0x200, 1, true } };
	/* The WRITE flag on the indirect descriptor itself is ignored. */
	uint16_t head = add_indirect(f, ITABLE, bufs, 3, D_WRITE);

	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nout, 1);
	assert_int_equal(f->e.nin, 2);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF);
	assert_ptr_equal(f->e.in[0].iov_base, f->ram + BUF + 0x100);
	assert_ptr_equal(f->e.in[1].iov_base, f->ram + BUF + 0x200);
	assert_int_equal(f->e.in_len, 65);
}

static void test_indirect_after_direct(void **state)
{
	struct fx *f = *state;
	const struct b ind[] = { { BUF + 0x100, 8, false }, { BUF + 0x200, 1, true } };

	write_chain(f, ITABLE, 0, 2, ind, 2);
	set_desc(f, DESC, 0, BUF, 16, D_NEXT, 1);
	set_desc(f, DESC, 1, ITABLE, 32, D_INDIRECT, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, 2);
	assert_int_equal(f->e.nin, 1);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF);
	assert_ptr_equal(f->e.out[1].iov_base, f->ram + BUF + 0x100);
	assert_ptr_equal(f->e.in[0].iov_base, f->ram + BUF + 0x200);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false } };
	uint16_t h;

	enable(f, QSIZE, false, false);
	h = add_indirect(f, ITABLE, bufs, 1, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
}

static void test_indirect_nested(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false }, { BUF, 16, false } };
	uint16_t h;

	write_chain(f, ITABLE + 0x100, 0, 1, bufs, 1);
	h = add_indirect(f, ITABLE, bufs, 2, 0);
	set_desc(f, ITABLE, 1, ITABLE + 0x100, 16, D_INDIRECT, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
}

static void test_indirect_with_next(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false } };
	uint16_t h;

	h = add_indirect(f, ITABLE, bufs, 1, D_NEXT);
	set_desc(f, DESC, h, ITABLE, 16, D_INDIRECT | D_NEXT, 5);
	set_desc(f, DESC, 5, BUF, 16, 0, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
}

static void test_indirect_bad_len(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false }, { BUF, 16, true } };
	uint16_t h;

	h = add_indirect(f, ITABLE, bufs, 2, 0);
	set_desc(f, DESC, h, ITABLE, 24, D_INDIRECT, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
	h = add_indirect(f, ITABLE, bufs, 2, 0);
	set_desc(f, DESC, h, ITABLE, 0, D_INDIRECT, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
	h = add_indirect(f, ITABLE, bufs, 2, 0);
	set_desc(f, DESC, h, ITABLE, 31, D_INDIRECT, 0);
	expect_refused(f, h, VQ_ERR_INDIRECT);
}

static void test_indirect_outside_ram(void **state)
{
	struct fx *f = *state;
	uint16_t h;

	/* Table straddling the end of RAM, then one past it, then wrapping. */
	set_desc(f, DESC, 0, RAM_SIZE - 16, 32, D_INDIRECT, 0);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_ADDR);
	set_desc(f, DESC, 1, RAM_SIZE, 16, D_INDIRECT, 0);
	publish(f, 1);
	expect_refused(f, 1, VQ_ERR_ADDR);
	set_desc(f, DESC, 2, UINT64_MAX - 15, 32, D_INDIRECT, 0);
	publish(f, 2);
	expect_refused(f, 2, VQ_ERR_ADDR);
	/* A table whose last entry is the last 16 bytes of RAM is fine. */
	set_desc(f, RAM_SIZE - 16, 0, BUF, 4, 0, 0);
	set_desc(f, DESC, 3, RAM_SIZE - 16, 16, D_INDIRECT, 0);
	publish(f, 3);
	h = 3;
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, h);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF);
}

static void test_indirect_huge_table(void **state)
{
	struct fx *f = *state;

	/* Inside RAM but more entries than a request may have. */
	set_desc(f, ITABLE, 0, BUF, 4, 0, 0);
	set_desc(f, DESC, 0, ITABLE, 16 * (VIRTQ_MAX_CHAIN + 1), D_INDIRECT, 0);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_INDIRECT);
	set_desc(f, DESC, 1, ITABLE, 0xfffffff0u, D_INDIRECT, 0);
	publish(f, 1);
	expect_refused(f, 1, VQ_ERR_INDIRECT);
	/* Exactly VIRTQ_MAX_CHAIN entries, only the first used: fine. */
	set_desc(f, DESC, 2, ITABLE, 16 * VIRTQ_MAX_CHAIN, D_INDIRECT, 0);
	publish(f, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, 1);
}

static void test_indirect_loop_and_index(void **state)
{
	struct fx *f = *state;

	/* Loop inside the table: 0 -> 1 -> 0. */
	set_desc(f, ITABLE, 0, BUF, 4, D_NEXT, 1);
	set_desc(f, ITABLE, 1, BUF, 4, D_NEXT, 0);
	set_desc(f, DESC, 0, ITABLE, 32, D_INDIRECT, 0);
	publish(f, 0);
	expect_refused(f, 0, VQ_ERR_CHAIN_TOO_LONG);
	/* next beyond the table (but < queue size). */
	set_desc(f, ITABLE, 1, BUF, 4, D_NEXT, 2);
	set_desc(f, DESC, 1, ITABLE, 32, D_INDIRECT, 0);
	publish(f, 1);
	expect_refused(f, 1, VQ_ERR_DESC_INDEX);
}

/* ---- ordering, ring index abuse, recovery ---- */

static void test_readable_after_writable(void **state)
{
	struct fx *f = *state;
	const struct b bad[] = { { BUF, 4, false }, { BUF + 8, 4, true }, { BUF + 16, 4, false } };
	uint16_t h;

	h = add_chain(f, bad, 3);
	expect_refused(f, h, VQ_ERR_ORDER);
	h = add_indirect(f, ITABLE, bad, 3, 0);
	expect_refused(f, h, VQ_ERR_ORDER);
	/* Writable-only and readable-only chains are fine. */
	const struct b in_only[] = { { BUF, 4, true }, { BUF + 8, 4, true } };
	add_chain(f, in_only, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nin, 2);
}

static void test_avail_idx_jump(void **state)
{
	struct fx *f = *state;

	set_avail_idx(f, QSIZE + 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EPROTO);
	assert_int_equal(f->q.errors[VQ_ERR_AVAIL_IDX], 1);
	assert_int_equal(f->q.last_avail, 0);          /* nothing consumed */
	/* Going backwards is a jump of nearly 65536. */
	f->q.last_avail = 5;
	set_avail_idx(f, 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EPROTO);
	assert_int_equal(f->q.errors[VQ_ERR_AVAIL_IDX], 2);
	/* Exactly size ahead is a full ring, not an error. */
	f->q.last_avail = 0;
	for (unsigned i = 0; i < QSIZE; i++)
		set_desc(f, DESC, i, BUF, 4, 0, 0);
	set_avail_idx(f, QSIZE);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->q.errors[VQ_ERR_AVAIL_IDX], 2);
}

static void test_error_then_good_chain(void **state)
{
	struct fx *f = *state;
	uint16_t bad, good;

	bad = add_chain(f, &(struct b){ RAM_SIZE + 0x1000, 4, false }, 1);
	good = add_chain(f, &(struct b){ BUF + 0x40, 4, false }, 1);
	expect_refused(f, bad, VQ_ERR_ADDR);
	virtq_push(&f->q, bad, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, good);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF + 0x40);
	virtq_push(&f->q, good, 0);
	assert_int_equal(r16(f, USED + 2), 2);
	assert_int_equal(r32(f, USED + 4), bad);
	assert_int_equal(r32(f, USED + 12), good);
}

static void test_copy_once(void **state)
{
	struct fx *f = *state;
	const struct b bufs[] = { { BUF, 16, false }, { BUF + 0x100, 8, true } };
	uint16_t h = add_chain(f, bufs, 2);

	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	/* The guest rewrites descriptors and the ring after the pop. */
	set_desc(f, DESC, h, RAM_SIZE - 1, 0xffffffffu, D_NEXT | D_WRITE, 7);
	set_desc(f, DESC, h + 1, 0, 0x7fffffff, D_INDIRECT, 0);
	w16(f, AVAIL + 4, 6);
	assert_int_equal(f->e.head, h);
	assert_int_equal(f->e.nout, 1);
	assert_int_equal(f->e.nin, 1);
	assert_ptr_equal(f->e.out[0].iov_base, f->ram + BUF);
	assert_int_equal(f->e.out[0].iov_len, 16);
	assert_ptr_equal(f->e.in[0].iov_base, f->ram + BUF + 0x100);
	assert_int_equal(f->e.in[0].iov_len, 8);
	/* And the queue state did not move with it. */
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
}

/* ---- used ring and notifications ---- */

static void test_push_used_ring(void **state)
{
	struct fx *f = *state;
	uint16_t h0, h1;

	h0 = add_chain(f, (const struct b[]){ { BUF, 4, false }, { BUF, 4, true } }, 2);
	h1 = add_chain(f, &(struct b){ BUF, 4, true }, 1);
	assert_int_equal(h1, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	/* Out of order completion. */
	virtq_push(&f->q, h1, 0x12345678);
	assert_int_equal(r16(f, USED + 2), 1);
	assert_int_equal(r32(f, USED + 4), h1);
	assert_int_equal(r32(f, USED + 8), 0x12345678);
	virtq_push(&f->q, h0, 4);
	assert_int_equal(r16(f, USED + 2), 2);
	assert_int_equal(r32(f, USED + 12), h0);
	assert_int_equal(r32(f, USED + 16), 4);
	assert_int_equal(r16(f, USED + 0), 0);          /* flags untouched */
	assert_int_equal(f->q.used_idx, 2);
}

static void push_n(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		virtq_push(&f->q, 0, 0);
}

static void test_notify_flags(void **state)
{
	struct fx *f = *state;

	push_n(f, 1);
	assert_true(virtq_should_notify(&f->q));
	assert_false(virtq_should_notify(&f->q));        /* nothing new */
	push_n(f, 2);
	assert_true(virtq_should_notify(&f->q));
	w16(f, AVAIL + 0, AVAIL_F_NO_INTERRUPT);
	push_n(f, 1);
	assert_false(virtq_should_notify(&f->q));
	w16(f, AVAIL + 0, 0);
	push_n(f, 1);
	assert_true(virtq_should_notify(&f->q));
	/* used_event is ignored without EVENT_IDX. */
	w16(f, AVAIL + 4 + 2 * QSIZE, 1000);
	push_n(f, 1);
	assert_true(virtq_should_notify(&f->q));
}

static void test_notify_event_idx(void **state)
{
	struct fx *f = *state;
	const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

	enable(f, QSIZE, true, true);
	w16(f, used_event, 100);
	push_n(f, 1);
	assert_true(virtq_should_notify(&f->q));         /* first time: always */
	/* Driver wants an interrupt once the entry at index 2 is used. */
	w16(f, used_event, 2);
	push_n(f, 1);                                    /* idx 1 -> 2 */
	assert_false(virtq_should_notify(&f->q));
	push_n(f, 1);                                    /* idx 2 -> 3 */
	assert_true(virtq_should_notify(&f->q));
	/* A batch passing used_event notifies once. */
	w16(f, used_event, 4);
	push_n(f, 3);                                    /* 3 -> 6 */
	assert_true(virtq_should_notify(&f->q));
	assert_false(virtq_should_notify(&f->q));
	/* used_event behind the window: no. */
	w16(f, used_event, 5);
	push_n(f, 2);                                    /* 6 -> 8 */
	assert_false(virtq_should_notify(&f->q));
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	w16(f, AVAIL + 0, AVAIL_F_NO_INTERRUPT);
	w16(f, used_event, 8);
	push_n(f, 1);                                    /* 8 -> 9 */
	assert_true(virtq_should_notify(&f->q));
}

static void test_notify_event_idx_wrap(void **state)
{
	struct fx *f = *state;
	const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

	enable(f, QSIZE, true, true);
	f->q.used_idx = 65534;
	f->q.signalled_used = 65534;
	f->q.signalled_valid = true;
	w16(f, used_event, 65535);
	push_n(f, 3);                                    /* 65534 -> 1 */
	assert_int_equal(r16(f, USED + 2), 1);
	assert_true(virtq_should_notify(&f->q));
	w16(f, used_event, 3);
	push_n(f, 2);                                    /* 1 -> 3 */
	assert_false(virtq_should_notify(&f->q));
	f->q.used_idx = 65533;
	f->q.signalled_used = 65533;
	w16(f, used_event, 0);
	push_n(f, 2);                                    /* 65533 -> 65535 */
	assert_false(virtq_should_notify(&f->q));
	push_n(f, 2);                                    /* 65535 -> 1 */
	assert_true(virtq_should_notify(&f->q));
}

static void test_set_notify_flags(void **state)
{
	struct fx *f = *state;

	virtq_set_notify(&f->q, false);
	assert_int_equal(r16(f, USED + 0), USED_F_NO_NOTIFY);
	virtq_set_notify(&f->q, true);
	assert_int_equal(r16(f, USED + 0), 0);
	/* avail_event untouched without EVENT_IDX. */
	f->q.last_avail = 7;
	virtq_set_notify(&f->q, true);
	assert_int_equal(r16(f, USED + 4 + 8 * QSIZE), 0);
}

static void test_set_notify_event_idx(void **state)
{
	struct fx *f = *state;
	const uint64_t avail_event = USED + 4 + 8 * QSIZE;

	enable(f, QSIZE, true, true);
	for (unsigned i = 0; i < 4; i++)
		add_chain(f, &(struct b){ BUF, 4, false }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(r16(f, avail_event), 1);        /* pop moves it */
	virtq_set_notify(&f->q, false);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(r16(f, avail_event), 1);        /* not while disabled */
	assert_int_equal(r16(f, USED + 0), 0);           /* flags stay 0 */
	/* On again: a kick for the next entry the driver adds (index 4), not
	 * for entries 2 and 3, which are already there: the driver kicks only
	 * when its idx crosses avail_event, and the caller's re-check finds
	 * them. */
	virtq_set_notify(&f->q, true);
	assert_int_equal(r16(f, avail_event), 4);
	assert_true(virtq_has_avail(&f->q));             /* the caller's re-check */
	/* A refused chain moves it too. */
	publish(f, 0xfff);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_int_equal(r16(f, avail_event), 5);
}

/* ---- fill, flush and unpop (mergeable RX buffers) ---- */

/* Starts both sides at idx: as after idx requests went through. */
static void start_at(struct fx *f, uint16_t idx)
{
	f->q.last_avail = idx;
	f->q.used_idx = idx;
	set_avail_idx(f, idx);
	w16(f, USED + 2, idx);
	f->next_desc = (uint16_t)(idx % f->size);
}

/* What Linux's virtqueue_kick_prepare decides after publishing entries
 * [old, avail_idx): kick when avail_event lies in that window (2.7.10). */
static bool driver_kicks(struct fx *f, uint16_t old)
{
	uint16_t ev = r16(f, USED + 4 + 8 * f->size), idx = f->avail_idx;

	return (uint16_t)(idx - ev - 1) < (uint16_t)(idx - old);
}

static void test_fill_flush_mergeable(void **state)
{
	struct fx *f = *state;
	uint16_t heads[3];

	/* Used slots 6, 7 and then 0: the packet wraps around the ring. */
	start_at(f, 6);
	w32(f, USED + 4 + 8 * 1, 0xdead);               /* slot 1: must stay */
	for (unsigned i = 0; i < 3; i++)
		heads[i] = add_chain(f, &(struct b){ BUF + 0x1000 * i, 1536, true }, 1);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, heads[i]);
	}
	/* One 4000-byte packet over the three buffers. */
	const uint32_t lens[3] = { 1536, 1536, 928 };
	for (unsigned i = 0; i < 3; i++) {
		virtq_fill(&f->q, heads[i], lens[i], i);
		/* Nothing is published before the flush. */
		assert_int_equal(r16(f, USED + 2), 6);
		assert_int_equal(f->q.used_idx, 6);
	}
	const unsigned slots[3] = { 6, 7, 0 };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(r32(f, USED + 4 + 8 * slots[i]), heads[i]);
		assert_int_equal(r32(f, USED + 4 + 8 * slots[i] + 4), lens[i]);
	}
	assert_int_equal(r32(f, USED + 4 + 8 * 1), 0xdead);
	virtq_flush(&f->q, 3);
	assert_int_equal(r16(f, USED + 2), 9);          /* all three at once */
	assert_int_equal(f->q.used_idx, 9);
	assert_int_equal(r16(f, USED + 0), 0);          /* flags untouched */
	/* The next packet, one buffer, goes to slot 1 through push. */
	uint16_t h = add_chain(f, &(struct b){ BUF, 64, true }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, h, 60);
	assert_int_equal(r16(f, USED + 2), 10);
	assert_int_equal(r32(f, USED + 4 + 8 * 1), h);
	assert_int_equal(r32(f, USED + 4 + 8 * 1 + 4), 60);
	/* The earlier packet's elements were not touched. */
	assert_int_equal(r32(f, USED + 4 + 8 * 0), heads[2]);
}

/* Across the 16-bit wrap of the indexes, filled out of order. */
static void test_fill_flush_index_wrap(void **state)
{
	struct fx *f = *state;

	start_at(f, 65535);
	for (unsigned i = 0; i < 3; i++)
		add_chain(f, &(struct b){ BUF + 0x100 * i, 100, true }, 1);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_fill(&f->q, 1, 11, 2);
	virtq_fill(&f->q, 7, 77, 0);
	virtq_fill(&f->q, 0, 10, 1);
	assert_int_equal(r16(f, USED + 2), 65535);
	virtq_flush(&f->q, 3);
	assert_int_equal(r16(f, USED + 2), 2);
	/* used idx 65535, 0, 1 are slots 7, 0, 1. */
	assert_int_equal(r32(f, USED + 4 + 8 * 7), 7);
	assert_int_equal(r32(f, USED + 4 + 8 * 7 + 4), 77);
	assert_int_equal(r32(f, USED + 4 + 8 * 0), 0);
	assert_int_equal(r32(f, USED + 4 + 8 * 1), 1);
	assert_int_equal(r32(f, USED + 4 + 8 * 1 + 4), 11);
}

static void test_fill_flush_bounds(void **state)
{
	struct fx *f = *state;
	uint8_t before[4 + 8 * QSIZE];

	memcpy(before, f->ram + USED, sizeof(before));
	/* An offset of the queue size would land on a slot the driver may not
	 * have read yet: ignored, like a flush of more than the ring holds. */
	virtq_fill(&f->q, 3, 3, QSIZE);
	virtq_fill(&f->q, 3, 3, 1000);
	virtq_flush(&f->q, QSIZE + 1);
	virtq_flush(&f->q, 0);
	assert_memory_equal(f->ram + USED, before, sizeof(before));
	assert_int_equal(f->q.used_idx, 0);
	/* The largest offset is fine. */
	virtq_fill(&f->q, 5, 55, QSIZE - 1);
	assert_int_equal(r32(f, USED + 4 + 8 * (QSIZE - 1)), 5);
	assert_int_equal(r16(f, USED + 2), 0);
	/* A disabled queue writes nothing. */
	virtq_reset(&f->q);
	virtq_fill(&f->q, 4, 4, 0);
	virtq_flush(&f->q, 1);
	assert_int_equal(r32(f, USED + 4), 0);
	assert_int_equal(r16(f, USED + 2), 0);
}

struct snap {
	uint16_t head;
	unsigned nout, nin;
	void *base[4];
	size_t len[4];
};

static struct snap snap_elem(const struct virtq_elem *e)
{
	struct snap s = { .head = e->head, .nout = e->nout, .nin = e->nin };

	for (unsigned i = 0; i < e->nout + e->nin && i < 4; i++) {
		const struct iovec *v = i < e->nout ? &e->out[i] : &e->in[i - e->nout];

		s.base[i] = v->iov_base;
		s.len[i] = v->iov_len;
	}
	return s;
}

static void assert_same_elem(const struct snap *a, const struct virtq_elem *e)
{
	struct snap b = snap_elem(e);

	assert_int_equal(a->head, b.head);
	assert_int_equal(a->nout, b.nout);
	assert_int_equal(a->nin, b.nin);
	for (unsigned i = 0; i < a->nout + a->nin && i < 4; i++) {
		assert_ptr_equal(a->base[i], b.base[i]);
		assert_int_equal(a->len[i], b.len[i]);
	}
}

static void test_unpop_repop(void **state)
{
	struct fx *f = *state;
	struct snap first[3];
	const struct b two[] = { { BUF, 12, false }, { BUF + 0x100, 1500, true } };
	const struct b ind[] = { { BUF + 0x1000, 12, false }, { BUF + 0x2000, 700, true },
				 { BUF + 0x3000, 800, true } };

	start_at(f, 65534);                             /* back across the wrap */
	add_chain(f, two, 2);
	add_indirect(f, ITABLE, ind, 3, 0);
	add_chain(f, &(struct b){ BUF + 0x4000, 4096, true }, 1);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		first[i] = snap_elem(&f->e);
	}
	assert_false(virtq_has_avail(&f->q));
	/* All three back: the same chains come out again, in order. */
	virtq_unpop(&f->q, 3);
	assert_int_equal(f->q.last_avail, 65534);
	assert_true(virtq_has_avail(&f->q));
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_same_elem(&first[i], &f->e);
	}
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	/* The last two back; the first stays taken. */
	virtq_unpop(&f->q, 2);
	assert_int_equal(f->q.last_avail, 65535);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_same_elem(&first[1], &f->e);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_same_elem(&first[2], &f->e);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(f->q.used_idx, 65534);         /* unpop used nothing */
	assert_int_equal(r16(f, USED + 2), 65534);
}

/* A chain given back is walked and checked again when popped again: what
 * the driver changed in between is seen, and refused if it is bad. */
static void test_unpop_rechecks(void **state)
{
	struct fx *f = *state;
	uint16_t h = add_chain(f, &(struct b){ BUF, 64, true }, 1);

	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_unpop(&f->q, 1);
	set_desc(f, DESC, h, RAM_SIZE - 8, 64, D_WRITE, 0);
	expect_refused(f, h, VQ_ERR_ADDR);
}

/* Never more than was popped and is not on the used ring yet: a chain the
 * driver already got back must not be popped a second time. */
static void test_unpop_bounded(void **state)
{
	struct fx *f = *state;

	for (unsigned i = 0; i < 3; i++)
		add_chain(f, &(struct b){ BUF + 0x10 * i, 16, true }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, f->e.head, 16);               /* chain 0 is the driver's again */
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_fill(&f->q, f->e.head, 16, 0);            /* filled, not flushed: still ours */
	virtq_unpop(&f->q, 100);
	assert_int_equal(f->q.last_avail, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 1);
	virtq_unpop(&f->q, 0);
	assert_int_equal(f->q.last_avail, 2);
	/* Nothing outstanding: nothing to give back. */
	virtq_push(&f->q, 1, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, 2, 0);
	virtq_unpop(&f->q, 1);
	assert_int_equal(f->q.last_avail, 3);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	/* Disabled: no effect. */
	virtq_reset(&f->q);
	virtq_unpop(&f->q, 1);
	assert_int_equal(f->q.last_avail, 0);
}

/* With EVENT_IDX, a device that gave buffers back because they were not
 * enough waits for the driver to add more: the driver must still kick for
 * the next buffer it adds. */
static void test_unpop_event_idx(void **state)
{
	struct fx *f = *state;
	const uint64_t avail_event = USED + 4 + 8 * QSIZE;
	uint16_t old;

	enable(f, QSIZE, true, false);
	/* Kicks on while popping: avail_event follows every pop. */
	for (unsigned i = 0; i < 3; i++)
		add_chain(f, &(struct b){ BUF + 0x1000 * i, 1536, true }, 1);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(r16(f, avail_event), 3);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);   /* ring empty, packet needs more */
	virtq_unpop(&f->q, 3);
	assert_int_equal(f->q.last_avail, 0);
	/* avail_event stays at the driver's idx: had it moved back to
	 * last_avail (0), the driver, which only kicks when its idx crosses
	 * avail_event, would never kick again. */
	assert_int_equal(r16(f, avail_event), 3);
	old = f->avail_idx;
	add_chain(f, &(struct b){ BUF + 0x3000, 1536, true }, 1);
	assert_true(driver_kicks(f, old));
	/* The kick came: all four are popped for the packet. */
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(r16(f, avail_event), 4);
	virtq_unpop(&f->q, 4);

	/* Kicks off while popping (the usual drain loop), then on again to
	 * wait: set_notify asks for the next new buffer, not last_avail. */
	virtq_set_notify(&f->q, false);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_unpop(&f->q, 4);
	assert_int_equal(f->q.last_avail, 0);
	virtq_set_notify(&f->q, true);
	assert_int_equal(r16(f, avail_event), 4);
	assert_true(virtq_has_avail(&f->q));            /* the four, still there */
	old = f->avail_idx;
	add_chain(f, &(struct b){ BUF + 0x4000, 1536, true }, 1);
	assert_true(driver_kicks(f, old));
	/* Unpop does not write anything to guest memory (flags stay 0). */
	assert_int_equal(r16(f, USED + 0), 0);
	assert_int_equal(r16(f, USED + 2), 0);
}

/* Without EVENT_IDX unpop leaves the NO_NOTIFY flag as it was. */
static void test_unpop_no_event_idx(void **state)
{
	struct fx *f = *state;

	add_chain(f, &(struct b){ BUF, 16, true }, 1);
	virtq_set_notify(&f->q, false);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_unpop(&f->q, 1);
	assert_int_equal(r16(f, USED + 0), USED_F_NO_NOTIFY);
	virtq_set_notify(&f->q, true);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_unpop(&f->q, 1);
	assert_int_equal(r16(f, USED + 0), 0);
	assert_int_equal(r16(f, USED + 4 + 8 * QSIZE), 0); /* no avail_event without EVENT_IDX */
}

/* Pops n one-buffer chains and flushes them as one packet. */
static void packet(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		add_chain(f, &(struct b){ BUF + 0x100 * i, 256, true }, 1);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		virtq_fill(&f->q, f->e.head, 256, i);
	}
	virtq_flush(&f->q, n);
}

static void test_notify_after_flush(void **state)
{
	struct fx *f = *state;
	const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

	enable(f, QSIZE, true, false);
	packet(f, 1);
	assert_true(virtq_should_notify(&f->q));         /* first time: always */
	/* used_event inside the flushed batch (idx 1 -> 4, event at 2). */
	w16(f, used_event, 2);
	packet(f, 3);
	assert_true(virtq_should_notify(&f->q));
	assert_false(virtq_should_notify(&f->q));        /* once per batch */
	/* At the last element of the batch (4 -> 7, event 6): yes. */
	w16(f, used_event, 6);
	packet(f, 3);
	assert_true(virtq_should_notify(&f->q));
	/* Just past it (7 -> 10, event 10): no; the next one crosses it. */
	w16(f, used_event, 10);
	packet(f, 3);
	assert_false(virtq_should_notify(&f->q));
	packet(f, 1);
	assert_true(virtq_should_notify(&f->q));
	/* Filled but not flushed counts for nothing. */
	add_chain(f, &(struct b){ BUF, 256, true }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_fill(&f->q, f->e.head, 256, 0);
	w16(f, used_event, 11);
	assert_false(virtq_should_notify(&f->q));
	virtq_flush(&f->q, 1);
	assert_true(virtq_should_notify(&f->q));

	/* Across the 16-bit wrap: 65534 -> 1 with used_event 65535. */
	enable(f, QSIZE, true, false);
	start_at(f, 65534);
	f->q.signalled_used = 65534;
	f->q.signalled_valid = true;
	w16(f, used_event, 65535);
	packet(f, 3);
	assert_int_equal(r16(f, USED + 2), 1);
	assert_true(virtq_should_notify(&f->q));

	/* Without EVENT_IDX: one interrupt per flushed batch, none with
	 * NO_INTERRUPT. */
	enable(f, QSIZE, false, false);
	packet(f, 3);
	assert_true(virtq_should_notify(&f->q));
	assert_false(virtq_should_notify(&f->q));
	w16(f, AVAIL + 0, AVAIL_F_NO_INTERRUPT);
	packet(f, 2);
	assert_false(virtq_should_notify(&f->q));
}

/* ---- enable ---- */

static void test_enable_rejects(void **state)
{
	struct fx *f = *state;
	struct virtq *q = &f->q;
	struct vm *vm = &f->vm;
	const uint16_t bad_sizes[] = { 0, 3, 6, 100, 255, 512, 1024, 32768 };

	for (unsigned i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		assert_int_equal(virtq_enable(q, vm, bad_sizes[i], DESC, AVAIL, USED, false, false),
				 -EINVAL);
	for (uint16_t s = 1; s <= VIRTQ_MAX_SIZE; s *= 2)
		assert_int_equal(virtq_enable(q, vm, s, DESC, AVAIL, USED, false, false), 0);

	/* Alignment: 16 / 2 / 4. */
	assert_int_equal(virtq_enable(q, vm, 8, DESC + 8, AVAIL, USED, false, false), -EINVAL);
	assert_false(q->enabled);
	assert_int_equal(virtq_enable(q, vm, 8, DESC + 1, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL + 1, USED, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL, USED + 2, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC + 16, AVAIL + 2, USED + 4, false, false), 0);

	/* Each area must fit, including its trailing event field: desc 128
	 * bytes, avail 4 + 2*8 + 2 = 22. */
	assert_int_equal(virtq_enable(q, vm, 8, RAM_SIZE - 128, AVAIL, USED, false, false), 0);
	assert_int_equal(virtq_enable(q, vm, 8, RAM_SIZE - 112, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, RAM_SIZE - 22, USED, false, false), 0);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, RAM_SIZE - 20, USED, false, false), -EINVAL);
	/* used: 4 + 8*8 bytes of ring, then avail_event: 70 bytes. */
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL, RAM_SIZE - 72, false, false), 0);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL, RAM_SIZE - 68, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL, RAM_SIZE - 4, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, DESC, AVAIL, UINT64_MAX - 3, false, false), -EINVAL);
	assert_int_equal(virtq_enable(q, vm, 8, 0x100000000ull, AVAIL, USED, false, false), -EINVAL);

	/* A refused enable leaves a queue that pops nothing. */
	publish(f, 0);
	assert_int_equal(virtq_pop(q, &f->e), 0);
	assert_false(virtq_has_avail(q));
}

static void test_enable_resets_state(void **state)
{
	struct fx *f = *state;

	add_chain(f, &(struct b){ RAM_SIZE, 4, false }, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	virtq_set_notify(&f->q, false);
	assert_int_equal(virtq_enable(&f->q, &f->vm, QSIZE, DESC, AVAIL, USED, false, true), 0);
	assert_int_equal(f->q.last_avail, 0);
	assert_int_equal(f->q.used_idx, 0);
	assert_false(f->q.signalled_valid);
	assert_true(f->q.notify);
	assert_int_equal(f->q.errors[VQ_ERR_ADDR], 1);   /* counters survive */
	virtq_reset(&f->q);
	assert_false(f->q.enabled);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(f->q.errors[VQ_ERR_ADDR], 1);
}

/* ---- iov helpers ---- */

static void test_iov_helpers(void **state)
{
	uint8_t a[3], b[1] = { '!' }, c[5];
	const struct iovec iov[] = { { a, 3 }, { b, 0 }, { c, 5 } };
	uint8_t out[8];

	assert_int_equal(buf_to_iov(iov, 3, 0, "ABCDEFGHIJ", 10), 8);
	assert_memory_equal(a, "ABC", 3);
	assert_memory_equal(c, "DEFGH", 5);
	memset(out, 0, sizeof(out));
	assert_int_equal(iov_to_buf(iov, 3, 2, out, 4), 4);
	assert_memory_equal(out, "CDEF", 4);
	assert_int_equal(iov_to_buf(iov, 3, 3, out, 8), 5);
	assert_memory_equal(out, "DEFGH", 5);
	assert_int_equal(iov_to_buf(iov, 3, 8, out, 8), 0);
	assert_int_equal(iov_to_buf(iov, 3, 100, out, 8), 0);
	assert_int_equal(buf_to_iov(iov, 3, 7, "z", 1), 1);
	assert_int_equal(c[4], 'z');
	assert_int_equal(buf_to_iov(iov, 2, 0, "xyzw", 4), 3);
	assert_int_equal(iov_to_buf(iov, 0, 0, out, 8), 0);
	assert_int_equal(b[0], '!');
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_simple_chain),
		T(test_iovecs_point_into_ram),
		T(test_empty_ring),
		T(test_full_ring_and_chain_of_size),
		T(test_index_wraparound),
		T(test_queue_sizes),
		T(test_head_index_out_of_range),
		T(test_next_index_out_of_range),
		T(test_addresses_outside_ram),
		T(test_zero_length_buffer),
		T(test_chain_loop),
		T(test_chain_longer_than_size),
		T(test_chain_longer_than_max),
		T(test_indirect_valid),
		T(test_indirect_after_direct),
		T(test_indirect_not_negotiated),
		T(test_indirect_nested),
		T(test_indirect_with_next),
		T(test_indirect_bad_len),
		T(test_indirect_outside_ram),
		T(test_indirect_huge_table),
		T(test_indirect_loop_and_index),
		T(test_readable_after_writable),
		T(test_avail_idx_jump),
		T(test_error_then_good_chain),
		T(test_copy_once),
		T(test_push_used_ring),
		T(test_notify_flags),
		T(test_notify_event_idx),
		T(test_notify_event_idx_wrap),
		T(test_set_notify_flags),
		T(test_set_notify_event_idx),
		T(test_fill_flush_mergeable),
		T(test_fill_flush_index_wrap),
		T(test_fill_flush_bounds),
		T(test_unpop_repop),
		T(test_unpop_rechecks),
		T(test_unpop_bounded),
		T(test_unpop_event_idx),
		T(test_unpop_no_event_idx),
		T(test_notify_after_flush),
		T(test_enable_rejects),
		T(test_enable_resets_state),
		cmocka_unit_test(test_iov_helpers),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
