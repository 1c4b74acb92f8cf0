/* From files on disk to a guest ready for its first instruction. Opening and
 * validating happens before any VM exists, so every problem with the user's
 * files is reported as an input error (exit status 2). */
#include "boot/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/acpi.h"
#include "boot/bootparams.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define KERNEL_MAX_SIZE (512ULL << 20) /* no kernel file is this big; refuse to slurp one that is */
#define PAGE_ALIGN_DOWN(x) ((x) & ~0xfffULL)
#define PAGE_ALIGN_UP(x) (((x) + 0xfffULL) & ~0xfffULL)

static int open_regular(const char *what, const char *path, int *fd, uint64_t *size)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		int e = errno;
		log_err("%s %s: %s", what, path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("%s %s: not a regular file", what, path);
		close(*fd);
		*fd = -1;
		return -EINVAL;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static int read_full(int fd, uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len > (1 << 30) ? (1 << 30) : len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* the file shrank under us */
		buf += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int boot_image_open(struct boot_image *img, const struct vm_config *cfg)
{
	memset(img, 0, sizeof(*img));
	img->kernel_path = cfg->kernel;
	img->initrd_path = cfg->initrd;
	img->cmdline = cfg->cmdline ? cfg->cmdline : CONFIG_DEFAULT_CMDLINE;

	int fd;
	uint64_t size;
	int r = open_regular("kernel", cfg->kernel, &fd, &size);
	if (r)
		return r;
	if (size == 0 || size > KERNEL_MAX_SIZE) {
		log_err("kernel %s: %s", cfg->kernel, size ? "larger than 512 MiB" : "empty file");
		close(fd);
		return -EINVAL;
	}
	img->kernel = malloc(size);
	if (!img->kernel) {
		close(fd);
		return -ENOMEM;
	}
	img->kernel_size = size;
	r = read_full(fd, img->kernel, size, 0);
	close(fd);
	if (r) {
		log_err("kernel %s: read failed: %s", cfg->kernel, strerror(-r));
		goto fail;
	}

	const char *why = NULL, *elf_why = NULL;
	r = bzimage_parse(img->kernel, size, &img->bz, &why);
	if (r == 0) {
		img->mode = BOOT_LINUX_64;
	} else if (r == -ENOEXEC) {
		r = elf_parse(img->kernel, size, &img->elf, &elf_why);
		if (r == 0)
			img->mode = BOOT_PVH_32;
		else if (r == -ENOEXEC)
			why = "neither a bzImage nor an ELF vmlinux";
		else
			why = elf_why;
	}
	if (r) {
		log_err("kernel %s: %s", cfg->kernel, why);
		r = -EINVAL;
		goto fail;
	}

	size_t len = strlen(img->cmdline);
	size_t max = img->mode == BOOT_LINUX_64 ? img->bz.cmdline_size : LAYOUT_CMDLINE_MAX - 1;
	if (max > LAYOUT_CMDLINE_MAX - 1)
		max = LAYOUT_CMDLINE_MAX - 1;
	if (len > max) {
		log_err("command line is %zu bytes; this kernel accepts at most %zu", len, max);
		r = -EINVAL;
		goto fail;
	}

	if (cfg->initrd) {
		r = open_regular("initrd", cfg->initrd, &fd, &img->initrd_size);
		if (r)
			goto fail;
		close(fd);
		if (img->initrd_size == 0) {
			log_err("initrd %s: empty file", cfg->initrd);
			r = -EINVAL;
			goto fail;
		}
	}
	return 0;
fail:
	boot_image_close(img);
	return r;
}

void boot_image_close(struct boot_image *img)
{
	free(img->kernel);
	img->kernel = NULL;
}

static int too_small(const struct boot_image *img, uint64_t ram_size, uint64_t need)
{
	log_err("--memory %llu MiB is too small for this kernel%s: it needs at least %llu MiB",
		(unsigned long long)(ram_size >> 20), img->initrd_path ? " and initrd" : "",
		(unsigned long long)((need + MiB(1) - 1) >> 20));
	return -E2BIG;
}

/* The end of the kernel in guest RAM: for a bzImage, the decompressor moves
 * the kernel to pref_address (when relocatable, any kernel_alignment-aligned
 * place at or above it) and needs init_size bytes there; an ELF ends at its
 * highest load. */
static uint64_t kernel_end(const struct boot_image *img)
{
	if (img->mode != BOOT_LINUX_64)
		return img->elf.highest;
	const struct bzimage_info *bz = &img->bz;
	uint64_t end = LAYOUT_HIMEM + bz->kernel_size;
	if (bz->pref_address + bz->init_size > end)
		end = bz->pref_address + bz->init_size;
	return end;
}

/* Where the initrd goes: as high in low RAM as the kernel allows, above the
 * kernel. Returns 0 (and *gpa; 0 without an initrd) or the RAM it would
 * take to fit. */
static uint64_t initrd_place(const struct boot_image *img, uint64_t ram_low, uint64_t *gpa)
{
	uint64_t floor = PAGE_ALIGN_UP(kernel_end(img));
	uint64_t addr_max = img->mode == BOOT_LINUX_64 ? img->bz.initrd_addr_max : 0;
	*gpa = 0;
	if (!img->initrd_path)
		return floor > ram_low ? floor : 0;
	uint64_t top = ram_low;
	if (addr_max && addr_max + 1 < top)
		top = addr_max + 1;
	if (img->initrd_size > top || PAGE_ALIGN_DOWN(top - img->initrd_size) < floor)
		return floor + PAGE_ALIGN_UP(img->initrd_size) + (ram_low - top);
	*gpa = PAGE_ALIGN_DOWN(top - img->initrd_size);
	return 0;
}

int boot_check_memory(const struct boot_image *img, uint64_t ram_size)
{
	uint64_t ram_low = LAYOUT_RAM_LOW(ram_size), gpa;
	if (ram_low < MiB(8)) {
		log_err("--memory must be at least 8 MiB");
		return -E2BIG;
	}
	uint64_t end = kernel_end(img);
	if (end > ram_low)
		return too_small(img, ram_size, end + PAGE_ALIGN_UP(img->initrd_size));
	uint64_t need = initrd_place(img, ram_low, &gpa);
	return need ? too_small(img, ram_size, need) : 0;
}

/* Copies the initrd to the place initrd_place chose (boot_check_memory
 * said it fits). */
static int load_initrd(struct vm *vm, const struct boot_image *img, uint64_t *gpa)
{
	if (initrd_place(img, vm->ram_low, gpa))
		return -E2BIG;
	if (!img->initrd_path)
		return 0;
	uint8_t *dst = gpa_ptr(vm, *gpa, img->initrd_size);
	int fd;
	uint64_t size;
	int r = open_regular("initrd", img->initrd_path, &fd, &size);
	if (r)
		return r;
	r = size == img->initrd_size ? read_full(fd, dst, size, 0) : -EIO;
	close(fd);
	if (r)
		log_err("initrd %s: read failed (changed while starting?)", img->initrd_path);
	return r;
}

/* Loads the initrd and gathers what the kernel is told about where things
 * are, the same for both boot protocols. */
static int load_initrd_args(struct vm *vm, const struct boot_image *img, uint64_t rsdp,
			    struct boot_args *a)
{
	uint64_t initrd_gpa;
	int r = load_initrd(vm, img, &initrd_gpa);
	*a = (struct boot_args){
		.cmdline_gpa = LAYOUT_CMDLINE,
		.initrd_gpa = initrd_gpa,
		.initrd_size = img->initrd_path ? img->initrd_size : 0,
		.rsdp_gpa = rsdp,
		.ram_low = vm->ram_low,
		.ram_high = vm->ram_high,
	};
	return r;
}

static int load_bzimage(struct vm *vm, const struct boot_image *img, uint64_t rsdp,
			struct boot_entry *entry)
{
	const struct bzimage_info *bz = &img->bz;
	uint64_t load = LAYOUT_HIMEM;
	uint8_t *dst = gpa_ptr(vm, load, bz->kernel_size);
	if (!dst || kernel_end(img) > vm->ram_low)
		return -E2BIG;
	memcpy(dst, img->kernel + bz->kernel_offset, bz->kernel_size);

	struct boot_args a;
	int r = load_initrd_args(vm, img, rsdp, &a);
	if (r)
		return r;
	zero_page_build(gpa_ptr(vm, LAYOUT_ZERO_PAGE, ZP_SIZE), img->kernel, bz, &a);
	entry->mode = BOOT_LINUX_64;
	entry->rip = load + 0x200; /* the 64-bit entry, startup_64 */
	entry->rsi = LAYOUT_ZERO_PAGE;
	entry->rbx = 0;
	return 0;
}

static int load_elf(struct vm *vm, const struct boot_image *img, uint64_t rsdp,
		    struct boot_entry *entry)
{
	const struct elf_info *e = &img->elf;
	if (e->lowest < LAYOUT_HIMEM) {
		log_err("kernel %s: ELF loads below 1 MiB, where kvmini keeps boot data",
			img->kernel_path);
		return -EINVAL;
	}
	for (unsigned i = 0; i < e->nloads; i++) {
		const struct elf_load *l = &e->loads[i];
		uint8_t *dst = gpa_ptr(vm, l->paddr, l->mem_size);
		if (!dst || l->paddr + l->mem_size > vm->ram_low)
			return -E2BIG;
		memcpy(dst, img->kernel + l->file_offset, l->file_size);
		memset(dst + l->file_size, 0, l->mem_size - l->file_size);
	}
	struct boot_args a;
	int r = load_initrd_args(vm, img, rsdp, &a);
	if (r)
		return r;
	if (!pvh_info_build(gpa_ptr(vm, LAYOUT_PVH_INFO, 4096), 4096, LAYOUT_PVH_INFO, &a))
		return -ENOSPC;
	entry->mode = BOOT_PVH_32;
	entry->rip = e->pvh_entry;
	entry->rbx = LAYOUT_PVH_INFO;
	entry->rsi = 0;
	return 0;
}

int boot_load(struct vm *vm, const struct boot_image *img, struct boot_entry *entry)
{
	int r = boot_check_memory(img, vm->ram_size);
	if (r)
		return r;
	size_t cmdlen = strlen(img->cmdline) + 1;
	memcpy(gpa_ptr(vm, LAYOUT_CMDLINE, cmdlen), img->cmdline, cmdlen);

	uint64_t rsdp = 0;
	struct acpi_config acpi = { .ncpus = vm->ncpus };
	r = acpi_build(gpa_ptr(vm, LAYOUT_ACPI_BASE, LAYOUT_ACPI_SIZE), LAYOUT_ACPI_SIZE,
			   LAYOUT_ACPI_BASE, &acpi, &rsdp);
	if (r) {
		log_err("cannot build ACPI tables for %u vCPUs: %s", vm->ncpus, strerror(-r));
		return r;
	}
	reset_vector_build(gpa_ptr(vm, LAYOUT_RESET_VECTOR, 16), 16);
	r = boot_write_gdt(vm, img->mode);
	if (!r && img->mode == BOOT_LINUX_64)
		r = boot_write_page_tables(vm);
	if (r)
		return r;
	return img->mode == BOOT_LINUX_64 ? load_bzimage(vm, img, rsdp, entry)
					  : load_elf(vm, img, rsdp, entry);
}
