/* bzimage_parse() (boot/bzimage.c) on any file, then what the loader does
 * with an accepted one.
 *
 * The kernel file is input the user hands kvmini, and the parser is the only
 * thing between its header fields and memcpy()s in boot/loader.c and
 * boot/bootparams.c. Checked, from boot/loader.h and docs/boot.md:
 *   - the result is 0, -ENOEXEC or -EINVAL, with a reason exactly on failure;
 *   - an accepted image has protocol >= 2.10, a 64-bit entry and LOADED_HIGH;
 *     its setup header ends inside the file (and past init_size at 0x264);
 *     1..255 setup sectors ((setup_sects + 1) * 512 bytes of setup); the
 *     protected-mode kernel is exactly the rest of the file and non-empty;
 *     init_size covers it;
 *   - the loader's copies stay inside the file: the kernel bytes it copies
 *     to 1 MiB are read here, and zero_page_build() copies the setup header
 *     into a zero page (AddressSanitizer sees any read past the input).
 * Seeds are small crafted headers (tests/fuzz/gen_corpus.py), not kernels. */
#include <errno.h>
#include <string.h>

#include "boot/bootparams.h"
#include "boot/loader.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t zp[ZP_SIZE];
	struct bzimage_info bz;
	const char *why = NULL;
	int r;

	r = bzimage_parse(data, size, &bz, &why);
	FUZZ_CHECK(r == 0 || r == -ENOEXEC || r == -EINVAL);
	FUZZ_CHECK((r != 0) == (why != NULL));
	if (r)
		return 0;

	FUZZ_CHECK(size >= 0x264);
	FUZZ_CHECK(bz.version >= 0x020a);
	FUZZ_CHECK(bz.xloadflags & 1);
	FUZZ_CHECK(data[0x211] & 1);
	FUZZ_CHECK(bz.hdr_end >= 0x264 && bz.hdr_end <= 0x202 + 255 && bz.hdr_end <= size);
	FUZZ_CHECK(bz.setup_sects >= 1);
	FUZZ_CHECK(bz.setup_size == ((size_t)bz.setup_sects + 1) * 512);
	FUZZ_CHECK(bz.kernel_offset == bz.setup_size);
	FUZZ_CHECK(bz.kernel_offset < size);
	FUZZ_CHECK(bz.kernel_size > 0 && bz.kernel_size == size - bz.kernel_offset);
	FUZZ_CHECK(bz.init_size >= bz.kernel_size);

	/* load_bzimage(): the protected-mode kernel is copied out of the file. */
	uint8_t sum = 0;
	for (size_t i = 0; i < bz.kernel_size; i++)
		sum ^= data[bz.kernel_offset + i];
	/* zero_page_build(): the setup header is copied from the file. */
	struct boot_args a = {
		.cmdline_gpa = 0x20000,
		.initrd_gpa = 0x1000000,
		.initrd_size = 4096,
		.rsdp_gpa = 0xe0000,
		.ram_low = 512ull << 20,
		.ram_high = sum,   /* keeps the loop above from being optimised away */
	};
	zero_page_build(zp, data, &bz, &a);
	FUZZ_CHECK(memcmp(zp + 0x1f1, data + 0x1f1, 0x1fa - 0x1f1) == 0);   /* up to vid_mode */
	FUZZ_CHECK(memcmp(zp + 0x1fc, data + 0x1fc, 0x210 - 0x1fc) == 0);   /* up to type_of_loader */
	FUZZ_CHECK(zp[0x210] == 0xff);
	return 0;
}
