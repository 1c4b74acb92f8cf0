/* Zero page (bzImage) and hvm_start_info (PVH) builders. Pure functions over
 * byte buffers so the unit tests can check every field. */
#ifndef KVMINI_BOOTPARAMS_H
#define KVMINI_BOOTPARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "boot/loader.h"
#include "vmm/le.h"

/* struct boot_params offsets (arch/x86/include/uapi/asm/bootparam.h). */
#define ZP_SIZE             4096
#define ZP_ACPI_RSDP_ADDR   0x070
#define ZP_E820_ENTRIES     0x1e8
#define ZP_HDR              0x1f1
#define ZP_VID_MODE         0x1fa
#define ZP_TYPE_OF_LOADER   0x210
#define ZP_LOADFLAGS        0x211
#define ZP_RAMDISK_IMAGE    0x218
#define ZP_RAMDISK_SIZE     0x21c
#define ZP_HEAP_END_PTR     0x224
#define ZP_CMD_LINE_PTR     0x228
#define ZP_E820_TABLE       0x2d0
#define ZP_E820_MAX         128
#define ZP_CAN_USE_HEAP     0x80

#define PVH_START_MAGIC     0x336ec578
#define PVH_MEMMAP_MAX      16


/* Where the loader put things: what both the zero page and the PVH start
 * info tell the kernel. */
struct boot_args {
	uint64_t cmdline_gpa;
	uint64_t initrd_gpa, initrd_size;
	uint64_t rsdp_gpa;
	uint64_t ram_low, ram_high;
};
void zero_page_build(uint8_t *zp, const uint8_t *kernel_file, const struct bzimage_info *bz,
		     const struct boot_args *a);

/* The code kvmini leaves at the real-mode reset vector (F000:FFF0): it
 * writes the ACPI reset register, so a guest that "reboots through the BIOS"
 * (Linux does with hardware-reduced ACPI and no EFI) resets the VM instead
 * of running off into empty memory. Returns the bytes written (<= 16). */
size_t reset_vector_build(uint8_t *buf, size_t size);

/* Returns the bytes written, 0 if size is too small. */
size_t pvh_info_build(uint8_t *buf, size_t size, uint64_t gpa, const struct boot_args *a);

#endif
