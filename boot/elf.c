/* ELF vmlinux parsing: PT_LOAD segments and the PVH entry note
 * (XEN_ELFNOTE_PHYS32_ENTRY), which Linux emits with CONFIG_PVH. */
#include "boot/loader.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Walks the notes in [p, p + len) looking for the Xen PVH entry note. */
static int find_pvh_note(const uint8_t *p, uint64_t len, uint32_t *entry)
{
	uint64_t off = 0;
	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p + off, sizeof(nh));
		uint64_t name_sz = ((uint64_t)nh.n_namesz + 3) & ~3ULL;
		uint64_t desc_sz = ((uint64_t)nh.n_descsz + 3) & ~3ULL;
		off += sizeof(nh);
		if (name_sz > len - off || desc_sz > len - off - name_sz)
			return -EINVAL;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(p + off, "Xen", 4) == 0 && nh.n_descsz >= 4) {
			memcpy(entry, p + off + name_sz, 4);
			return 0;
		}
		off += name_sz + desc_sz;
	}
	return -ENOENT;
}

int elf_parse(const uint8_t *f, size_t size, struct elf_info *info, const char **why)
{
	memset(info, 0, sizeof(*info));
	Elf64_Ehdr eh;
	if (size < EI_NIDENT || memcmp(f, ELFMAG, SELFMAG) != 0) {
		*why = "not an ELF file";
		return -ENOEXEC;
	}
	if (size < sizeof(eh)) {
		*why = "truncated ELF header";
		return -EINVAL;
	}
	memcpy(&eh, f, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		*why = "not a 64-bit little-endian x86-64 ELF";
		return -EINVAL;
	}
	if (eh.e_type != ET_EXEC) {
		*why = "ELF is not an executable";
		return -EINVAL;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff) {
		*why = "truncated or malformed ELF program headers";
		return -EINVAL;
	}
	int have_note = 0;
	info->lowest = UINT64_MAX;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, f + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
			*why = "truncated: an ELF segment runs past the end of the file";
			return -EINVAL;
		}
		if (ph.p_type == PT_NOTE) {
			if (!have_note && find_pvh_note(f + ph.p_offset, ph.p_filesz,
							 &info->pvh_entry) == 0)
				have_note = 1;
			continue;
		}
		if (ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_paddr + ph.p_memsz < ph.p_paddr) {
			*why = "malformed ELF load segment";
			return -EINVAL;
		}
		if (info->nloads == ELF_MAX_LOADS) {
			*why = "too many ELF load segments";
			return -EINVAL;
		}
		struct elf_load *l = &info->loads[info->nloads++];
		l->paddr = ph.p_paddr;
		l->file_offset = ph.p_offset;
		l->file_size = ph.p_filesz;
		l->mem_size = ph.p_memsz;
		if (ph.p_paddr < info->lowest)
			info->lowest = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > info->highest)
			info->highest = ph.p_paddr + ph.p_memsz;
	}
	if (info->nloads == 0) {
		*why = "ELF has no loadable segments";
		return -EINVAL;
	}
	if (!have_note) {
		*why = "ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build the kernel with CONFIG_PVH";
		return -EINVAL;
	}
	return 0;
}
