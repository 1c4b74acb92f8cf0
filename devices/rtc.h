/* MC146818 CMOS RTC at ports 0x70 (index) / 0x71 (data).
 *
 * The clock registers always show the host's current UTC time (the guest
 * cannot set it: writes to them are ignored); everything else is 128 bytes
 * of CMOS RAM. Enough for Linux's mc146818_get_time at boot. */
#ifndef KVMINI_RTC_H
#define KVMINI_RTC_H

#include <stdbool.h>
#include <stdint.h>

#define RTC_NR_PORTS 2 /* register at PORT_CMOS as 2 ports */

/* CMOS register indexes. */
#define RTC_REG_SECONDS   0x00
#define RTC_REG_MINUTES   0x02
#define RTC_REG_HOURS     0x04
#define RTC_REG_WEEKDAY   0x06 /* 1 = Sunday */
#define RTC_REG_DAY       0x07
#define RTC_REG_MONTH     0x08
#define RTC_REG_YEAR      0x09 /* two digits */
#define RTC_REG_A         0x0a /* UIP, divider, rate */
#define RTC_REG_B         0x0b /* SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE */
#define RTC_REG_C         0x0c /* interrupt flags (read-only) */
#define RTC_REG_D         0x0d /* VRT (read-only) */
#define RTC_REG_CENTURY   0x32

#define RTC_B_24H    0x02
#define RTC_B_BINARY 0x04
#define RTC_D_VRT    0x80

struct rtc;

struct rtc *rtc_new(void);
void rtc_free(struct rtc *rtc);
/* bus_io_fn for 2 ports. Offset 0 (write): index, bit 7 (NMI mask) ignored;
 * reading it returns 0xff. Offset 1: the selected CMOS byte. Accesses with
 * len != 1 are ignored (reads return 0xff). */
void rtc_io(void *rtc, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
