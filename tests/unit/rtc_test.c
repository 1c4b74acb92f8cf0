/* CMOS RTC: the clock registers against the host's clock, status registers,
 * the index port, CMOS RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "devices/rtc.h"

static uint8_t cmos_read(struct rtc *rtc, uint8_t index)
{
	uint8_t v = 0x5a;
	rtc_io(rtc, 0, &index, 1, true);
	rtc_io(rtc, 1, &v, 1, false);
	return v;
}

static void cmos_write(struct rtc *rtc, uint8_t index, uint8_t v)
{
	rtc_io(rtc, 0, &index, 1, true);
	rtc_io(rtc, 1, &v, 1, true);
}

static unsigned from_bcd(uint8_t v)
{
	assert_true((v & 0x0f) <= 9);
	assert_true((v >> 4) <= 9);
	return (v >> 4) * 10u + (v & 0x0f);
}

/* Reads the clock the way Linux's mc146818_get_time does and converts it to
 * a time_t; binary chooses the decoding. */
static time_t read_guest_time(struct rtc *rtc, bool binary, int *wday)
{
	unsigned (*dec)(uint8_t) = from_bcd;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	uint8_t sec, min, hour, day, mon, year, cent, wd;
	do {
		sec = cmos_read(rtc, 0x00);
		assert_false(cmos_read(rtc, 0x0a) & 0x80); /* UIP */
		min = cmos_read(rtc, 0x02);
		hour = cmos_read(rtc, 0x04);
		wd = cmos_read(rtc, 0x06);
		day = cmos_read(rtc, 0x07);
		mon = cmos_read(rtc, 0x08);
		year = cmos_read(rtc, 0x09);
		cent = cmos_read(rtc, 0x32);
	} while (sec != cmos_read(rtc, 0x00));
	if (binary) {
		tm.tm_sec = sec; tm.tm_min = min; tm.tm_hour = hour; tm.tm_mday = day;
		tm.tm_mon = mon - 1; tm.tm_year = cent * 100 + year - 1900;
		*wday = wd;
	} else {
		tm.tm_sec = (int)dec(sec); tm.tm_min = (int)dec(min);
		tm.tm_hour = (int)dec(hour); tm.tm_mday = (int)dec(day);
		tm.tm_mon = (int)dec(mon) - 1;
		tm.tm_year = (int)(dec(cent) * 100 + dec(year)) - 1900;
		*wday = (int)dec(wd);
	}
	return timegm(&tm);
}

static void test_bcd_time_matches_host(void **state)
{
	struct rtc *rtc = rtc_new();
	assert_non_null(rtc);
	time_t before = time(NULL);
	int wday;
	time_t guest = read_guest_time(rtc, false, &wday);
	time_t after = time(NULL);
	assert_true(guest >= before && guest <= after);
	struct tm tm;
	gmtime_r(&guest, &tm);
	assert_int_equal(wday, tm.tm_wday + 1);
	rtc_free(rtc);
}

static void test_binary_and_12h_modes(void **state)
{
	struct rtc *rtc = rtc_new();
	cmos_write(rtc, 0x0b, 0x02 | 0x04); /* 24 h, binary */
	time_t before = time(NULL);
	int wday;
	time_t guest = read_guest_time(rtc, true, &wday);
	assert_true(guest >= before && guest <= time(NULL));

	cmos_write(rtc, 0x0b, 0x04); /* 12 h, binary */
	time_t now = time(NULL);
	uint8_t h = cmos_read(rtc, 0x04);
	struct tm tm;
	gmtime_r(&now, &tm);
	unsigned h12 = (unsigned)tm.tm_hour % 12 ? (unsigned)tm.tm_hour % 12 : 12;
	if (h12 == (h & 0x7fu)) /* else the hour turned between the reads */
		assert_int_equal(!!(h & 0x80), tm.tm_hour >= 12);
	rtc_free(rtc);
}

static void test_status_registers(void **state)
{
	struct rtc *rtc = rtc_new();
	assert_int_equal(cmos_read(rtc, 0x0a) & 0x80, 0); /* no update in progress */
	assert_int_equal(cmos_read(rtc, 0x0b), 0x02);      /* 24 h, BCD */
	assert_int_equal(cmos_read(rtc, 0x0c), 0x00);
	assert_int_equal(cmos_read(rtc, 0x0d), 0x80);      /* valid RAM and time */
	/* A and B take writes (UIP stays 0), C and D do not. */
	cmos_write(rtc, 0x0a, 0xa6);
	assert_int_equal(cmos_read(rtc, 0x0a), 0x26);
	cmos_write(rtc, 0x0b, 0x12);
	assert_int_equal(cmos_read(rtc, 0x0b), 0x12);
	cmos_write(rtc, 0x0c, 0xff);
	cmos_write(rtc, 0x0d, 0x00);
	assert_int_equal(cmos_read(rtc, 0x0c), 0x00);
	assert_int_equal(cmos_read(rtc, 0x0d), 0x80);
	rtc_free(rtc);
}

static void test_index_and_cmos_ram(void **state)
{
	struct rtc *rtc = rtc_new();
	/* Plain RAM bytes store writes. */
	cmos_write(rtc, 0x10, 0xab);
	cmos_write(rtc, 0x7f, 0xcd);
	cmos_write(rtc, 0x01, 0x12); /* seconds alarm: RAM */
	assert_int_equal(cmos_read(rtc, 0x10), 0xab);
	assert_int_equal(cmos_read(rtc, 0x7f), 0xcd);
	assert_int_equal(cmos_read(rtc, 0x01), 0x12);
	/* Bit 7 of the index is the NMI mask: same register. */
	assert_int_equal(cmos_read(rtc, 0x80 | 0x10), 0xab);
	assert_int_equal(cmos_read(rtc, 0xff), 0xcd);
	assert_int_equal(cmos_read(rtc, 0x80 | 0x0d), 0x80);
	/* Writes to the clock are ignored: it still reads BCD host time. */
	cmos_write(rtc, 0x32, 0x99);
	assert_int_equal(cmos_read(rtc, 0x32), 0x20);
	/* The index port reads 0xff. */
	uint8_t v = 0;
	rtc_io(rtc, 0, &v, 1, false);
	assert_int_equal(v, 0xff);
	rtc_free(rtc);
}

static void test_bad_accesses(void **state)
{
	struct rtc *rtc = rtc_new();
	uint8_t buf[8];
	for (uint32_t len = 0; len <= 8; len++) {
		if (len == 1)
			continue;
		for (uint64_t off = 0; off < 4; off++) {
			memset(buf, 0, sizeof(buf));
			rtc_io(rtc, off, buf, len, false);
			for (uint32_t i = 0; i < len; i++)
				assert_int_equal(buf[i], 0xff);
			memset(buf, 0x10, sizeof(buf));
			rtc_io(rtc, off, buf, len, true);
		}
	}
	uint8_t v = 0;
	rtc_io(rtc, 2, &v, 1, false);
	assert_int_equal(v, 0xff);
	rtc_io(rtc, 5, &v, 1, true);
	assert_int_equal(cmos_read(rtc, 0x0d), 0x80);
	rtc_free(rtc);
	rtc_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bcd_time_matches_host),
		cmocka_unit_test(test_binary_and_12h_modes),
		cmocka_unit_test(test_status_registers),
		cmocka_unit_test(test_index_and_cmos_ram),
		cmocka_unit_test(test_bad_accesses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
