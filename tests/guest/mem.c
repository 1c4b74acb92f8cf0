/* mem_alloc(): hands out the RAM that follows the image, checked against the
 * PVH memory map (type 1 = RAM). Physical = virtual, so a pointer from here
 * is also the guest-physical address a device uses for DMA. */
#include "guest.h"

extern char __image_end[];
static uint64_t next_free;

/* End of the RAM range holding addr, from the start info's memory map;
 * without a map, 64 MiB is assumed (every VMM gives at least that). */
static uint64_t ram_end(uint64_t addr)
{
	if (!start_info || start_info->version < 1 || !start_info->memmap_paddr)
		return 64ull << 20;
	const struct hvm_memmap_entry *m = (const void *)start_info->memmap_paddr;
	for (uint32_t i = 0; i < start_info->memmap_entries; i++)
		if (m[i].type == 1 && addr >= m[i].addr && addr < m[i].addr + m[i].size)
			return m[i].addr + m[i].size;
	return 0;
}

void *mem_alloc(uint64_t size, uint64_t align)
{
	if (!next_free)
		next_free = (uint64_t)__image_end;
	if (align < 16)
		align = 16;
	uint64_t p = (next_free + align - 1) & ~(align - 1);
	uint64_t end = ram_end(p);
	CHECK(p + size <= end && p + size < PCI_MMIO_BASE,
	      "mem: no RAM for %lu bytes at %lx (RAM ends at %lx)", size, p, end);
	next_free = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}
