/* MC146818 CMOS RTC. The time registers are computed from the host clock on
 * every read, so there is no timer, no update cycle (UIP is always 0) and no
 * interrupt. Register B's DM (binary) and 24/12 bits are honoured because
 * the guest may rewrite B, and Linux decodes by them. */
#include "devices/rtc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMOS_SIZE 128

#define RTC_A_UIP 0x80

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[CMOS_SIZE];
};

static uint8_t to_bcd(unsigned v)
{
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

static uint8_t encode(const struct rtc *rtc, unsigned v)
{
	return (rtc->cmos[RTC_REG_B] & RTC_B_BINARY) ? (uint8_t)v : to_bcd(v);
}

static uint8_t read_clock(const struct rtc *rtc, uint8_t reg)
{
	struct tm tm;
	time_t now = time(NULL);
	gmtime_r(&now, &tm);
	switch (reg) {
	case RTC_REG_SECONDS:
		return encode(rtc, (unsigned)tm.tm_sec);
	case RTC_REG_MINUTES:
		return encode(rtc, (unsigned)tm.tm_min);
	case RTC_REG_HOURS:
		if (rtc->cmos[RTC_REG_B] & RTC_B_24H)
			return encode(rtc, (unsigned)tm.tm_hour);
		/* 12-hour mode: 12, 1..11, bit 7 = PM. */
		{
			unsigned h = (unsigned)tm.tm_hour % 12;
			return encode(rtc, h ? h : 12) | (tm.tm_hour >= 12 ? 0x80 : 0);
		}
	case RTC_REG_WEEKDAY:
		return encode(rtc, (unsigned)tm.tm_wday + 1);
	case RTC_REG_DAY:
		return encode(rtc, (unsigned)tm.tm_mday);
	case RTC_REG_MONTH:
		return encode(rtc, (unsigned)tm.tm_mon + 1);
	case RTC_REG_YEAR:
		return encode(rtc, (unsigned)(tm.tm_year + 1900) % 100);
	case RTC_REG_CENTURY:
		return encode(rtc, (unsigned)(tm.tm_year + 1900) / 100);
	}
	return 0xff;
}

static bool is_clock_reg(uint8_t reg)
{
	switch (reg) {
	case RTC_REG_SECONDS: case RTC_REG_MINUTES: case RTC_REG_HOURS:
	case RTC_REG_WEEKDAY: case RTC_REG_DAY: case RTC_REG_MONTH:
	case RTC_REG_YEAR: case RTC_REG_CENTURY:
		return true;
	}
	return false;
}

struct rtc *rtc_new(void)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));
	if (!rtc)
		return NULL;
	if (pthread_mutex_init(&rtc->lock, NULL)) {
		free(rtc);
		return NULL;
	}
	rtc->cmos[RTC_REG_A] = 0x26;       /* 32.768 kHz time base, 1024 Hz rate */
	rtc->cmos[RTC_REG_B] = RTC_B_24H;  /* 24 h, BCD, no interrupts */
	rtc->cmos[RTC_REG_D] = RTC_D_VRT;  /* battery good */
	return rtc;
}

void rtc_free(struct rtc *rtc)
{
	if (!rtc)
		return;
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *rtc = opaque;
	if (len != 1 || offset >= RTC_NR_PORTS) {
		if (!is_write && data)
			memset(data, 0xff, len);
		return;
	}

	pthread_mutex_lock(&rtc->lock);
	if (offset == 0) {
		if (is_write)
			rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			data[0] = 0xff;              /* the index port is write-only */
		pthread_mutex_unlock(&rtc->lock);
		return;
	}

	uint8_t reg = rtc->index;
	if (is_write) {
		switch (reg) {
		case RTC_REG_A:
			rtc->cmos[reg] = data[0] & ~RTC_A_UIP; /* UIP is read-only */
			break;
		case RTC_REG_C:
		case RTC_REG_D:
			break;                                 /* read-only */
		default:
			/* Time registers always follow the host clock. */
			if (!is_clock_reg(reg))
				rtc->cmos[reg] = data[0];
			break;
		}
	} else if (is_clock_reg(reg)) {
		data[0] = read_clock(rtc, reg);
	} else if (reg == RTC_REG_C) {
		data[0] = 0; /* no interrupt flags; reading would clear them */
	} else {
		data[0] = rtc->cmos[reg];
	}
	pthread_mutex_unlock(&rtc->lock);
}
