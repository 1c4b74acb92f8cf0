/* Kernel loading: turns the files named on the command line into guest
 * memory contents and the register state of the first instruction.
 * See docs/boot.md for the walk from `kvmini run` to that instruction. */
#ifndef KVMINI_LOADER_H
#define KVMINI_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

struct vm;

/* ---- bzImage (Linux x86 boot protocol, Documentation/arch/x86/boot.rst) ---- */
struct bzimage_info {
	uint16_t version;        /* boot protocol version, e.g. 0x020f */
	uint8_t setup_sects;
	size_t setup_size;       /* bytes of real-mode setup incl. boot sector */
	size_t kernel_offset;    /* where the protected-mode kernel starts in the file */
	size_t kernel_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;   /* max cmdline length excluding the NUL */
	uint32_t kernel_alignment;
	uint8_t relocatable;
	uint16_t xloadflags;
	uint64_t pref_address;
	uint32_t init_size;      /* linear memory the kernel needs while it boots */
	size_t hdr_end;          /* end of the setup header in the file (0x202 + jump) */
};

/* Parses and validates a bzImage held in memory. -ENOEXEC: not a bzImage at
 * all; -EINVAL: a bzImage kvmini cannot boot (truncated, too old, no 64-bit
 * entry). *why gets a short reason in both cases. */
int bzimage_parse(const uint8_t *file, size_t size, struct bzimage_info *info, const char **why);

/* ---- ELF vmlinux with a PVH entry note ---- */
#define ELF_MAX_LOADS 16
struct elf_load {
	uint64_t paddr;
	uint64_t file_offset;
	uint64_t file_size;
	uint64_t mem_size;
};
struct elf_info {
	uint32_t pvh_entry;      /* XEN_ELFNOTE_PHYS32_ENTRY */
	unsigned nloads;
	struct elf_load loads[ELF_MAX_LOADS];
	uint64_t lowest, highest; /* physical span of all PT_LOAD segments */
};
/* -ENOEXEC: not an ELF file; -EINVAL: an ELF kvmini cannot boot. */
int elf_parse(const uint8_t *file, size_t size, struct elf_info *info, const char **why);

/* ---- memory map ---- */
#define E820_RAM      1
#define E820_RESERVED 2
struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));
/* Fills at most max entries describing guest RAM and the reserved areas;
 * returns how many. */
unsigned e820_build(uint64_t ram_low, uint64_t ram_high, struct e820_entry *out, unsigned max);

/* ---- entry state ---- */
enum boot_mode {
	BOOT_LINUX_64,  /* bzImage: long mode, identity paging, RSI = zero page */
	BOOT_PVH_32,    /* PVH: 32-bit protected mode, paging off, EBX = start info */
};
struct boot_entry {
	enum boot_mode mode;
	uint64_t rip;
	uint64_t rsi;
	uint64_t rbx;
};

/* A kernel (and initrd) read from disk and validated, before any VM exists.
 * Errors here are the user's input errors (exit status 2). */
struct boot_image {
	uint8_t *kernel;
	size_t kernel_size;
	enum boot_mode mode;
	struct bzimage_info bz;
	struct elf_info elf;
	const char *kernel_path;
	const char *initrd_path;
	uint64_t initrd_size;
	const char *cmdline;
};
int boot_image_open(struct boot_image *img, const struct vm_config *cfg);
void boot_image_close(struct boot_image *img);

/* Whether kernel and initrd fit in ram_size bytes of guest RAM (split
 * around the MMIO hole as vm_create does); one logged line and -E2BIG when
 * not. Pure arithmetic: kvmini run checks before it opens anything else. */
int boot_check_memory(const struct boot_image *img, uint64_t ram_size);
/* Writes kernel, initrd, cmdline, boot structures and ACPI tables into guest
 * RAM and returns the first instruction's state. Fails with one logged line
 * when the guest memory is too small (boot_check_memory). */
int boot_load(struct vm *vm, const struct boot_image *img, struct boot_entry *entry);

/* Low-level helpers shared by the loaders (boot/pagetable.c). */
struct kvm_sregs;
int boot_write_page_tables(struct vm *vm);
int boot_write_gdt(struct vm *vm, enum boot_mode mode);
void boot_sregs(struct kvm_sregs *sregs, enum boot_mode mode);

#endif
