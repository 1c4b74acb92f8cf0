/* elf_parse() (boot/elf.c) on any file.
 *
 * An ELF vmlinux is user input like a bzImage; boot/loader.c copies each
 * PT_LOAD segment out of the file with the sizes the parser returned.
 * Checked, from boot/loader.h and docs/boot.md:
 *   - the result is 0, -ENOEXEC or -EINVAL, with a reason exactly on failure;
 *   - an accepted file has 1..ELF_MAX_LOADS loads, each non-empty in memory,
 *     its file part inside the file and no larger than its memory part, its
 *     physical range not wrapping past 2^64; lowest/highest are the minimum
 *     start and maximum end of those ranges;
 *   - every byte load_elf() would copy is read here (AddressSanitizer sees a
 *     read past the input).
 * The PVH entry value itself is the kernel's business (any 32-bit value). */
#include <errno.h>
#include <stdint.h>

#include "boot/loader.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_info info;
	const char *why = NULL;
	uint64_t lowest = UINT64_MAX, highest = 0;
	volatile uint8_t sum = 0;
	int r;

	r = elf_parse(data, size, &info, &why);
	FUZZ_CHECK(r == 0 || r == -ENOEXEC || r == -EINVAL);
	FUZZ_CHECK((r != 0) == (why != NULL));
	if (r)
		return 0;

	FUZZ_CHECK(size >= 64);
	FUZZ_CHECK(info.nloads >= 1 && info.nloads <= ELF_MAX_LOADS);
	for (unsigned i = 0; i < info.nloads; i++) {
		const struct elf_load *l = &info.loads[i];

		FUZZ_CHECK(l->file_offset <= size);
		FUZZ_CHECK(l->file_size <= size - l->file_offset);
		FUZZ_CHECK(l->mem_size > 0 && l->file_size <= l->mem_size);
		FUZZ_CHECK(l->paddr + l->mem_size > l->paddr);
		if (l->paddr < lowest)
			lowest = l->paddr;
		if (l->paddr + l->mem_size > highest)
			highest = l->paddr + l->mem_size;
		/* load_elf(): memcpy(dst, file + file_offset, file_size). */
		for (uint64_t j = 0; j < l->file_size; j++)
			sum ^= data[l->file_offset + j];
	}
	FUZZ_CHECK(info.lowest == lowest);
	FUZZ_CHECK(info.highest == highest);
	(void)sum;
	return 0;
}
