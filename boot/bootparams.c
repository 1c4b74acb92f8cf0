/* The memory map every boot path hands to the guest, and the two ways of
 * handing it over: the bzImage zero page (struct boot_params) and the PVH
 * hvm_start_info. Layouts follow arch/x86/include/uapi/asm/bootparam.h and
 * xen/interface/hvm/start_info.h. */
#include "boot/bootparams.h"

#include <string.h>

#include "vmm/layout.h"

unsigned e820_build(uint64_t ram_low, uint64_t ram_high, struct e820_entry *out, unsigned max)
{
	struct e820_entry map[] = {
		{ 0, LAYOUT_EBDA, E820_RAM },
		{ LAYOUT_EBDA, 0xa0000 - LAYOUT_EBDA, E820_RESERVED },
		/* The BIOS area holds the ACPI tables; Linux finds the RSDP here. */
		{ LAYOUT_ACPI_BASE, LAYOUT_HIMEM - LAYOUT_ACPI_BASE, E820_RESERVED },
		{ LAYOUT_HIMEM, ram_low - LAYOUT_HIMEM, E820_RAM },
		{ LAYOUT_HIGH_RAM, ram_high, E820_RAM },
	};
	unsigned n = 0;
	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]) && n < max; i++)
		if (map[i].size)
			out[n++] = map[i];
	return n;
}

void zero_page_build(uint8_t *zp, const uint8_t *kernel_file, const struct bzimage_info *bz,
		     const struct boot_args *a)
{
	memset(zp, 0, ZP_SIZE);
	/* The setup header is copied from the image as the protocol asks, then
	 * the loader-owned fields are filled in. */
	memcpy(zp + ZP_HDR, kernel_file + ZP_HDR, bz->hdr_end - ZP_HDR);
	zp[ZP_TYPE_OF_LOADER] = 0xff; /* "undefined" loader: we have no assigned ID */
	zp[ZP_LOADFLAGS] |= ZP_CAN_USE_HEAP;
	wr16(zp + ZP_VID_MODE, 0xffff); /* "normal" */
	wr16(zp + ZP_HEAP_END_PTR, 0xfe00);
	wr32(zp + ZP_CMD_LINE_PTR, (uint32_t)a->cmdline_gpa);
	wr32(zp + ZP_RAMDISK_IMAGE, (uint32_t)a->initrd_gpa);
	wr32(zp + ZP_RAMDISK_SIZE, (uint32_t)a->initrd_size);
	wr64(zp + ZP_ACPI_RSDP_ADDR, a->rsdp_gpa);
	struct e820_entry map[ZP_E820_MAX];
	unsigned n = e820_build(a->ram_low, a->ram_high, map, ZP_E820_MAX);
	zp[ZP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + ZP_E820_TABLE, map, n * sizeof(map[0]));
}

size_t pvh_info_build(uint8_t *buf, size_t size, uint64_t gpa, const struct boot_args *a)
{
	/* start_info, then the module list, then the memory map, all inside
	 * the one page the caller gave us. */
	/* start_info is 56 bytes, a module entry 32, a memmap entry 24. */
	const size_t mod_off = 64, map_off = 128, ent_sz = 24;
	struct e820_entry map[PVH_MEMMAP_MAX];
	unsigned n = e820_build(a->ram_low, a->ram_high, map, PVH_MEMMAP_MAX);
	size_t need = map_off + n * ent_sz;
	if (need > size)
		return 0;
	memset(buf, 0, need);
	wr32(buf + 0, PVH_START_MAGIC);
	wr32(buf + 4, 1); /* version 1: has the memory map */
	wr32(buf + 12, a->initrd_size ? 1 : 0);
	wr64(buf + 16, a->initrd_size ? gpa + mod_off : 0);
	wr64(buf + 24, a->cmdline_gpa);
	wr64(buf + 32, a->rsdp_gpa);
	wr64(buf + 40, gpa + map_off);
	wr32(buf + 48, n);
	if (a->initrd_size) {
		wr64(buf + mod_off, a->initrd_gpa);
		wr64(buf + mod_off + 8, a->initrd_size);
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = buf + map_off + i * ent_sz;
		wr64(e, map[i].addr);
		wr64(e + 8, map[i].size);
		wr32(e + 16, map[i].type);
	}
	return need;
}

size_t reset_vector_build(uint8_t *buf, size_t size)
{
	const uint8_t stub[] = {
		0xba, PORT_ACPI_RESET & 0xff, PORT_ACPI_RESET >> 8, /* mov dx, PORT_ACPI_RESET */
		0xb0, ACPI_RESET_VALUE,                           /* mov al, ACPI_RESET_VALUE */
		0xee,                                             /* out dx, al */
		0xf4,                                             /* hlt */
		0xeb, 0xfd,                                       /* jmp back to the hlt */
	};
	if (size < sizeof(stub))
		return 0;
	memcpy(buf, stub, sizeof(stub));
	return sizeof(stub);
}
