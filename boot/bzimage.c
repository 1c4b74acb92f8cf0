/* bzImage header parsing. Offsets and field meanings are those of the Linux
 * x86 boot protocol; everything read from the file is bounds-checked first. */
#include "boot/loader.h"
#include "vmm/le.h"

#include <errno.h>
#include <string.h>


#define HDR_SETUP_SECTS     0x1f1
#define HDR_BOOT_FLAG       0x1fe
#define HDR_JUMP            0x200
#define HDR_HEADER          0x202
#define HDR_VERSION         0x206
#define HDR_LOADFLAGS       0x211
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGN    0x230
#define HDR_RELOCATABLE     0x234
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260
#define HDR_MIN_SIZE        0x264 /* a 2.10+ header ends past init_size */

#define LOADED_HIGH   0x01
#define XLF_KERNEL_64 0x01

int bzimage_parse(const uint8_t *f, size_t size, struct bzimage_info *info, const char **why)
{
	memset(info, 0, sizeof(*info));
	if (size < HDR_HEADER + 4 || rd16(f + HDR_BOOT_FLAG) != 0xaa55 ||
	    memcmp(f + HDR_HEADER, "HdrS", 4) != 0) {
		*why = "no Linux boot header (0xAA55 and \"HdrS\")";
		return -ENOEXEC;
	}
	if (size < HDR_MIN_SIZE) {
		*why = "truncated bzImage header";
		return -EINVAL;
	}
	info->version = rd16(f + HDR_VERSION);
	if (info->version < 0x020a) {
		*why = "boot protocol older than 2.10";
		return -EINVAL;
	}
	/* The header's own length is encoded in the jump instruction at 0x200. */
	info->hdr_end = HDR_JUMP + 2 + f[HDR_JUMP + 1];
	if (info->hdr_end > size || info->hdr_end < HDR_MIN_SIZE) {
		*why = "malformed setup header length";
		return -EINVAL;
	}
	info->setup_sects = f[HDR_SETUP_SECTS] ? f[HDR_SETUP_SECTS] : 4;
	info->setup_size = ((size_t)info->setup_sects + 1) * 512;
	info->kernel_offset = info->setup_size;
	if (info->kernel_offset >= size) {
		*why = "truncated: no protected-mode kernel after the setup code";
		return -EINVAL;
	}
	info->kernel_size = size - info->kernel_offset;
	if (!(f[HDR_LOADFLAGS] & LOADED_HIGH)) {
		*why = "zImage (not loaded high) is not supported";
		return -EINVAL;
	}
	info->initrd_addr_max = rd32(f + HDR_INITRD_ADDR_MAX);
	info->kernel_alignment = rd32(f + HDR_KERNEL_ALIGN);
	info->relocatable = f[HDR_RELOCATABLE];
	info->xloadflags = rd16(f + HDR_XLOADFLAGS);
	info->cmdline_size = rd32(f + HDR_CMDLINE_SIZE);
	info->pref_address = rd64(f + HDR_PREF_ADDRESS);
	info->init_size = rd32(f + HDR_INIT_SIZE);
	if (!(info->xloadflags & XLF_KERNEL_64)) {
		*why = "kernel has no 64-bit entry point (XLF_KERNEL_64)";
		return -EINVAL;
	}
	if (info->init_size == 0 || info->kernel_size > info->init_size) {
		/* init_size covers the compressed kernel; a file whose payload
		 * is larger than that is not what its header says. */
		*why = "inconsistent init_size";
		return -EINVAL;
	}
	/* A truncated file still has a plausible header: the protected-mode
	 * code (syssize, in 16-byte units) and the compressed payload must both
	 * end inside the file. */
	if ((uint64_t)info->kernel_offset + (uint64_t)rd32(f + 0x1f4) * 16 > size) {
		*why = "truncated: file is shorter than its header's syssize";
		return -EINVAL;
	}
	uint32_t payload_offset = rd32(f + 0x248), payload_length = rd32(f + 0x24c);
	if (info->version >= 0x0208 &&
	    (uint64_t)info->kernel_offset + payload_offset + payload_length > size) {
		*why = "truncated: compressed kernel runs past the end of the file";
		return -EINVAL;
	}
	return 0;
}
