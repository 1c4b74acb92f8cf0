#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus_free(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->count = bus->cap = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *dev,
		 const char *name)
{
	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	size_t pos = 0;
	while (pos < bus->count && bus->ranges[pos].base < base)
		pos++;
	/* Overlap with the neighbour on either side? */
	if (pos > 0) {
		const struct bus_range *prev = &bus->ranges[pos - 1];
		if (prev->base + prev->len > base)
			return -EEXIST;
	}
	if (pos < bus->count && base + len > bus->ranges[pos].base)
		return -EEXIST;
	if (bus->count == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
		(bus->count - pos) * sizeof(bus->ranges[0]));
	struct bus_range *r = &bus->ranges[pos];
	r->base = base;
	r->len = len;
	r->fn = fn;
	r->dev = dev;
	r->name = name;
	atomic_init(&r->accesses, 0);
	bus->count++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	size_t lo = 0, hi = bus->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			/* An access straddling the end of a range is not claimed. */
			return (addr - r->base) + len <= r->len ? r : NULL;
	}
	return NULL;
}

bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct bus_range *r = (struct bus_range *)bus_find(bus, addr, len);
	if (!r) {
		if (is_write)
			atomic_fetch_add_explicit(&bus->unclaimed_writes, 1, memory_order_relaxed);
		else {
			atomic_fetch_add_explicit(&bus->unclaimed_reads, 1, memory_order_relaxed);
			memset(data, 0xff, len);
		}
		return false;
	}
	atomic_fetch_add_explicit(&r->accesses, 1, memory_order_relaxed);
	r->fn(r->dev, addr - r->base, data, len, is_write);
	return true;
}
