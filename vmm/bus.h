/* A bus maps guest address ranges (port I/O or MMIO) to device handlers.
 * Devices register before the vCPUs start; afterwards the table is only read,
 * so lookups take no lock and allocate nothing on the exit path. */
#ifndef KVMINI_BUS_H
#define KVMINI_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* offset is relative to the registered base; data holds len bytes
 * (little-endian, as the guest wrote or will read them). */
typedef void (*bus_io_fn)(void *dev, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *dev;
	const char *name;
	atomic_uint_fast64_t accesses; /* for --trace-exits */
};

struct bus {
	const char *name; /* "pio" or "mmio" */
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	size_t count, cap;
	atomic_uint_fast64_t unclaimed_reads;
	atomic_uint_fast64_t unclaimed_writes;
};

void bus_init(struct bus *bus, const char *name);
void bus_free(struct bus *bus);
/* Returns 0, -EEXIST if the range overlaps one already registered, -EINVAL
 * for an empty or wrapping range, -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *dev,
		 const char *name);
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len);
/* Dispatches one access. An access nobody claims reads as all-ones and a
 * write to it is dropped; both are counted. Returns true if claimed. */
bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
