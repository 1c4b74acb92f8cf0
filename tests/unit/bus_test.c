/* The I/O bus: registration rules, lookup at range edges, and what an access
 * nobody claims does. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"

/* A device that records its last access and answers reads with a pattern. */
struct dev {
	unsigned calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t written[8];
};

static void dev_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct dev *d = opaque;

	d->calls++;
	d->offset = offset;
	d->len = len;
	d->is_write = is_write;
	if (is_write)
		memcpy(d->written, data, len < 8 ? len : 8);
	else
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(0x10 + i);
}

static struct bus bus;
static struct dev devs[4];

static int setup(void **state)
{
	bus_init(&bus, "test");
	memset(devs, 0, sizeof(devs));
	return 0;
}

static int teardown(void **state)
{
	bus_free(&bus);
	return 0;
}

static int reg(uint64_t base, uint64_t len, struct dev *d)
{
	return bus_register(&bus, base, len, dev_io, d, "dev");
}

static uint64_t unclaimed_reads(void) { return atomic_load(&bus.unclaimed_reads); }
static uint64_t unclaimed_writes(void) { return atomic_load(&bus.unclaimed_writes); }

static void test_register_overlap(void **state)
{
	assert_int_equal(reg(0x100, 0x10, &devs[0]), 0); /* [0x100, 0x110) */

	struct { uint64_t base, len; } overlaps[] = {
		{ 0x100, 0x10 },  /* identical */
		{ 0x100, 0x1 },   /* same base, shorter */
		{ 0x100, 0x100 }, /* same base, longer */
		{ 0x0f0, 0x11 },  /* ends on the first byte */
		{ 0x10f, 0x10 },  /* starts on the last byte */
		{ 0x104, 0x4 },   /* inside */
		{ 0x0f0, 0x100 }, /* covers it */
		{ 0x000, UINT64_MAX }, /* covers everything */
	};
	for (size_t i = 0; i < sizeof(overlaps) / sizeof(overlaps[0]); i++) {
		if (reg(overlaps[i].base, overlaps[i].len, &devs[1]) != -EEXIST)
			fail_msg("overlapping [0x%llx, +0x%llx) accepted",
				 (unsigned long long)overlaps[i].base,
				 (unsigned long long)overlaps[i].len);
	}
	assert_int_equal(bus.count, 1);

	/* Adjacent on both sides is fine; then a gap-filler that overlaps
	 * only the right neighbour is refused. */
	assert_int_equal(reg(0x0f0, 0x10, &devs[1]), 0);
	assert_int_equal(reg(0x110, 0x10, &devs[2]), 0);
	assert_int_equal(reg(0x120, 0x1, &devs[3]), 0);
	assert_int_equal(reg(0x0e0, 0x11, &devs[3]), -EEXIST);
	assert_int_equal(reg(0x11f, 0x2, &devs[3]), -EEXIST);
	assert_int_equal(bus.count, 4);
	for (size_t i = 1; i < bus.count; i++)
		assert_true(bus.ranges[i - 1].base + bus.ranges[i - 1].len <= bus.ranges[i].base);
}

static void test_register_invalid(void **state)
{
	assert_int_equal(reg(0x100, 0, &devs[0]), -EINVAL);
	assert_int_equal(reg(UINT64_MAX, 2, &devs[0]), -EINVAL);
	assert_int_equal(reg(UINT64_MAX - 0xf, 0x20, &devs[0]), -EINVAL);
	assert_int_equal(reg(1, UINT64_MAX, &devs[0]), -EINVAL);
	assert_int_equal(bus_register(&bus, 0x100, 4, NULL, &devs[0], "nofn"), -EINVAL);
	assert_int_equal(bus.count, 0);
	/* The last byte below the top is still registrable. */
	assert_int_equal(reg(UINT64_MAX - 1, 1, &devs[0]), 0);
}

static void test_find_edges(void **state)
{
	assert_int_equal(reg(0x3f8, 8, &devs[0]), 0);
	assert_int_equal(reg(0x400, 4, &devs[1]), 0); /* adjacent */

	const struct bus_range *r = bus_find(&bus, 0x3f8, 1);
	assert_non_null(r);
	assert_ptr_equal(r->dev, &devs[0]);
	assert_int_equal(r->base, 0x3f8);
	r = bus_find(&bus, 0x3ff, 1);
	assert_non_null(r);
	assert_ptr_equal(r->dev, &devs[0]);
	assert_ptr_equal(bus_find(&bus, 0x3f8, 8)->dev, &devs[0]);
	assert_ptr_equal(bus_find(&bus, 0x400, 1)->dev, &devs[1]);
	assert_ptr_equal(bus_find(&bus, 0x403, 1)->dev, &devs[1]);

	assert_null(bus_find(&bus, 0x3f7, 1));
	assert_null(bus_find(&bus, 0x404, 1));
	assert_null(bus_find(&bus, 0, 1));
	assert_null(bus_find(&bus, UINT64_MAX, 1));

	/* Straddling the end of a range: not claimed, even with a neighbour. */
	assert_null(bus_find(&bus, 0x3fe, 4));
	assert_null(bus_find(&bus, 0x3ff, 2));
	assert_null(bus_find(&bus, 0x3f8, 9));
	assert_null(bus_find(&bus, 0x402, 4));
	/* Starting just below a range is not claimed either. */
	assert_null(bus_find(&bus, 0x3f7, 2));
}

static void test_unclaimed_read(void **state)
{
	assert_int_equal(reg(0x1000, 0x10, &devs[0]), 0);
	uint32_t lens[] = { 1, 2, 4, 8 };

	for (unsigned i = 0; i < 4; i++) {
		uint8_t data[16];
		memset(data, 0, sizeof(data));
		assert_false(bus_dispatch(&bus, 0x2000, data, lens[i], false));
		for (unsigned b = 0; b < sizeof(data); b++)
			assert_int_equal(data[b], b < lens[i] ? 0xff : 0);
		assert_int_equal(unclaimed_reads(), i + 1);
	}
	/* A straddling read is unclaimed too and never reaches the device. */
	uint8_t d4[4] = { 0 };
	assert_false(bus_dispatch(&bus, 0x100e, d4, 4, false));
	for (unsigned b = 0; b < 4; b++)
		assert_int_equal(d4[b], 0xff);
	assert_int_equal(unclaimed_reads(), 5);
	assert_int_equal(unclaimed_writes(), 0);
	assert_int_equal(devs[0].calls, 0);
}

static void test_unclaimed_write(void **state)
{
	assert_int_equal(reg(0x1000, 0x10, &devs[0]), 0);
	uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	assert_false(bus_dispatch(&bus, 0xfff, data, 1, true));
	assert_false(bus_dispatch(&bus, 0x100c, data, 8, true));
	assert_int_equal(unclaimed_writes(), 2);
	assert_int_equal(unclaimed_reads(), 0);
	assert_int_equal(devs[0].calls, 0);
	for (unsigned i = 0; i < 8; i++) /* the buffer is left alone */
		assert_int_equal(data[i], i + 1);
}

static void test_dispatch_to_handler(void **state)
{
	assert_int_equal(reg(0xfee00000, 0x1000, &devs[0]), 0);
	assert_int_equal(reg(0x3f8, 8, &devs[1]), 0);

	uint8_t data[4] = { 0xde, 0xad, 0xbe, 0xef };
	assert_true(bus_dispatch(&bus, 0xfee00300, data, 4, true));
	assert_int_equal(devs[0].calls, 1);
	assert_int_equal(devs[0].offset, 0x300);
	assert_int_equal(devs[0].len, 4);
	assert_true(devs[0].is_write);
	assert_memory_equal(devs[0].written, data, 4);

	memset(data, 0, sizeof(data));
	assert_true(bus_dispatch(&bus, 0x3fd, data, 1, false));
	assert_int_equal(devs[1].calls, 1);
	assert_int_equal(devs[1].offset, 5);
	assert_int_equal(devs[1].len, 1);
	assert_false(devs[1].is_write);
	assert_int_equal(data[0], 0x10);
	assert_int_equal(data[1], 0); /* only len bytes */

	/* Last byte of a range, then a full-width access at its base. */
	assert_true(bus_dispatch(&bus, 0xfee00fff, data, 1, false));
	assert_int_equal(devs[0].offset, 0xfff);
	uint8_t wide[8];
	assert_true(bus_dispatch(&bus, 0x3f8, wide, 8, false));
	assert_int_equal(devs[1].offset, 0);
	assert_int_equal(devs[1].len, 8);
	assert_int_equal(wide[7], 0x17);
}

static void test_access_counts(void **state)
{
	assert_int_equal(reg(0x60, 1, &devs[0]), 0);
	assert_int_equal(reg(0x64, 1, &devs[1]), 0);
	uint8_t b = 0;

	for (int i = 0; i < 3; i++)
		bus_dispatch(&bus, 0x60, &b, 1, false);
	bus_dispatch(&bus, 0x64, &b, 1, true);
	bus_dispatch(&bus, 0x62, &b, 1, true);
	assert_int_equal(atomic_load(&bus_find(&bus, 0x60, 1)->accesses), 3);
	assert_int_equal(atomic_load(&bus_find(&bus, 0x64, 1)->accesses), 1);
	assert_int_equal(unclaimed_writes(), 1);
	assert_int_equal(devs[0].calls, 3);
	assert_int_equal(devs[1].calls, 1);
}

static void test_many_random_order(void **state)
{
	enum { N = 200 };
	static struct dev many[N];
	unsigned order[N];

	memset(many, 0, sizeof(many));
	for (unsigned i = 0; i < N; i++)
		order[i] = i;
	srand(12345);
	for (unsigned i = N - 1; i > 0; i--) { /* Fisher-Yates */
		unsigned j = (unsigned)rand() % (i + 1);
		unsigned t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	/* Range i is [i * 0x100, +0x10 + i): different lengths, gaps between. */
	for (unsigned k = 0; k < N; k++) {
		unsigned i = order[k];
		assert_int_equal(reg((uint64_t)i * 0x100, 0x10 + i, &many[i]), 0);
	}
	assert_int_equal(bus.count, N);
	for (size_t i = 1; i < bus.count; i++)
		assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);

	for (unsigned k = 0; k < N; k++) {
		unsigned i = order[k];
		uint64_t base = (uint64_t)i * 0x100, len = 0x10 + i;
		assert_ptr_equal(bus_find(&bus, base, 1)->dev, &many[i]);
		assert_ptr_equal(bus_find(&bus, base + len - 1, 1)->dev, &many[i]);
		assert_ptr_equal(bus_find(&bus, base + len / 2, 1)->dev, &many[i]);
		assert_null(bus_find(&bus, base + len, 1));
		if (i > 0)
			assert_null(bus_find(&bus, base - 1, 1));
		/* Every overlapping re-registration is still refused. */
		assert_int_equal(reg(base + len - 1, 0x1000, &many[0]), -EEXIST);
	}
	assert_int_equal(bus.count, N);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclaimed_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclaimed_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dispatch_to_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_random_order, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
