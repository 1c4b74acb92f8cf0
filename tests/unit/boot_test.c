/* Boot loaders: bzImage and ELF/PVH parsing, the e820 map, the zero page,
 * hvm_start_info and the entry segment state. Offsets are written out as
 * numbers from the Linux and Xen headers, not taken from kvmini's macros, so
 * a wrong macro fails here. */
#include <elf.h>
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "boot/bootparams.h"
#include "vmm/layout.h"
#include "boot/loader.h"

#define MiB(x) ((uint64_t)(x) << 20)
#define GiB(x) ((uint64_t)(x) << 30)

static uint64_t rd(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put(uint8_t *p, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the real bzImage ---------------------------------------------------- */

static uint8_t *kernel_buf;
static size_t kernel_len;
static char kernel_path[4096];

static int newest_vmlinuz(char *out, size_t outsz)
{
	glob_t g;
	const char *best = NULL;

	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
		return -1;
	for (size_t i = 0; i < g.gl_pathc; i++)
		if (!best || strverscmp(g.gl_pathv[i], best) > 0)
			best = g.gl_pathv[i];
	snprintf(out, outsz, "%s", best);
	globfree(&g);
	return 0;
}

static int load_kernel(void **state)
{
	const char *env = getenv("KVMINI_TEST_KERNEL");

	(void)state;
	if (env && *env)
		snprintf(kernel_path, sizeof(kernel_path), "%s", env);
	else if (newest_vmlinuz(kernel_path, sizeof(kernel_path)) != 0)
		return 0; /* tests that need it skip */
	FILE *f = fopen(kernel_path, "rb");
	if (!f)
		return 0;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
			kernel_buf = malloc((size_t)n);
			if (kernel_buf && fread(kernel_buf, 1, (size_t)n, f) == (size_t)n)
				kernel_len = (size_t)n;
		}
	}
	fclose(f);
	return 0;
}

static int free_kernel(void **state)
{
	(void)state;
	free(kernel_buf);
	return 0;
}

/* A fresh private copy of the real bzImage, or skip. */
static uint8_t *kernel_copy(void)
{
	if (!kernel_len) {
		printf("# skip: no readable kernel (set KVMINI_TEST_KERNEL or install "
		       "/boot/vmlinuz-*; tried '%s')\n", kernel_path);
		skip();
	}
	uint8_t *c = malloc(kernel_len);
	assert_non_null(c);
	memcpy(c, kernel_buf, kernel_len);
	return c;
}

/* Parses buf[0, size) and expects rc; a failure must come with a reason. */
static void expect_bz(const uint8_t *buf, size_t size, int rc)
{
	struct bzimage_info bz;
	const char *why = NULL;
	int got = bzimage_parse(buf, size, &bz, &why);

	if (got != rc)
		fail_msg("bzimage_parse(size %zu) = %d (%s), expected %d", size, got,
			 why ? why : "no reason", rc);
	if (rc)
		assert_non_null(why);
}

static void test_bzimage_real(void **state)
{
	uint8_t *k = kernel_copy();
	struct bzimage_info bz;
	const char *why = NULL;

	assert_int_equal(bzimage_parse(k, kernel_len, &bz, &why), 0);
	assert_true(bz.version >= 0x020a);
	assert_int_equal(bz.version, rd(k + 0x206, 2));
	assert_true(bz.xloadflags & 0x1); /* XLF_KERNEL_64 */
	assert_int_equal(bz.setup_sects, k[0x1f1] ? k[0x1f1] : 4);
	assert_int_equal(bz.kernel_offset, ((size_t)bz.setup_sects + 1) * 512);
	assert_int_equal(bz.kernel_size, kernel_len - bz.kernel_offset);
	assert_true(bz.init_size >= bz.kernel_size);
	assert_true(bz.cmdline_size > 0);
	assert_int_equal(bz.cmdline_size, rd(k + 0x238, 4));
	assert_int_equal(bz.hdr_end, 0x202 + k[0x201]);
	free(k);
}

/* End of the compressed payload inside the file. */
static size_t payload_end(const uint8_t *k)
{
	size_t setup = ((size_t)(k[0x1f1] ? k[0x1f1] : 4) + 1) * 512;

	return setup + rd(k + 0x248, 4) + rd(k + 0x24c, 4);
}

static void test_bzimage_truncated(void **state)
{
	uint8_t *k = kernel_copy();

	expect_bz(k, 0, -ENOEXEC);
	expect_bz(k, 0x100, -ENOEXEC); /* header not even present */
	expect_bz(k, 0x263, -EINVAL);  /* header cut inside init_size */
	expect_bz(k, kernel_len / 2, -EINVAL);
	assert_true(payload_end(k) <= kernel_len);
	expect_bz(k, payload_end(k) - 1, -EINVAL);
	size_t setup = ((size_t)(k[0x1f1] ? k[0x1f1] : 4) + 1) * 512;
	expect_bz(k, setup, -EINVAL); /* setup code only, no kernel */
	expect_bz(k, kernel_len, 0);

	/* Same cut with syssize shrunk to fit: only payload_offset/length
	 * still show that the compressed kernel is incomplete. */
	put(k + 0x1f4, 4, (payload_end(k) - 1 - setup) / 16);
	expect_bz(k, payload_end(k) - 1, -EINVAL);
	expect_bz(k, payload_end(k), 0);
	free(k);
}

static void test_bzimage_corrupt(void **state)
{
	struct {
		size_t off;
		unsigned width;
		uint64_t value;
		int rc;
	} cases[] = {
		{ 0x1fe, 2, 0x55aa, -ENOEXEC },     /* boot flag flipped */
		{ 0x1fe, 2, 0x0000, -ENOEXEC },
		{ 0x202, 4, 0x48647253, -ENOEXEC }, /* "SrdH" */
		{ 0x206, 2, 0x0209, -EINVAL },      /* protocol 2.09 */
		{ 0x206, 2, 0x0200, -EINVAL },
		{ 0x1f1, 1, 0xff, -EINVAL },        /* setup_sects huge */
		{ 0x211, 1, 0x00, -EINVAL },        /* not loaded high */
		{ 0x260, 4, 0, -EINVAL },           /* init_size 0 */
		{ 0x260, 4, 0x1000, -EINVAL },      /* init_size < payload */
		{ 0x1f4, 4, 0x10000000, -EINVAL },  /* syssize past the end */
		{ 0x24c, 4, 0xfffffff0, -EINVAL },  /* payload_length past the end */
		{ 0x201, 1, 0x00, -EINVAL },        /* header length too short */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *k = kernel_copy();
		put(k + cases[i].off, cases[i].width, cases[i].value);
		struct bzimage_info bz;
		const char *why = NULL;
		int rc = bzimage_parse(k, kernel_len, &bz, &why);
		if (rc != cases[i].rc || !why)
			fail_msg("offset 0x%zx = 0x%llx: got %d (%s), expected %d", cases[i].off,
				 (unsigned long long)cases[i].value, rc, why ? why : "no reason",
				 cases[i].rc);
		free(k);
	}

	/* XLF_KERNEL_64 cleared, other xloadflags kept. */
	uint8_t *k = kernel_copy();
	k[0x236] &= (uint8_t)~1;
	expect_bz(k, kernel_len, -EINVAL);
	free(k);
}

/* ---- ELF / PVH ----------------------------------------------------------- */

#define ELF_SIZE   0x2000
#define NOTE_OFF   0x1200 /* the notes end the file, as in a vmlinux */
#define LOAD1_OFF  0x1000
#define LOAD2_OFF  0x1100
#define PVH_ENTRY  0x01000abcU

static uint8_t elf[ELF_SIZE] __attribute__((aligned(8)));
static size_t elf_len; /* the file is elf[0, elf_len) */

static Elf64_Ehdr *ehdr(void) { return (Elf64_Ehdr *)elf; }
static Elf64_Phdr *phdr(unsigned i) { return (Elf64_Phdr *)(elf + sizeof(Elf64_Ehdr)) + i; }

/* Writes one note at off; returns its aligned size. */
static size_t put_note(size_t off, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz,
			  .n_type = type };
	size_t namesz = (nh.n_namesz + 3) & ~3U, dsz = (descsz + 3) & ~3U;

	memcpy(elf + off, &nh, sizeof(nh));
	memcpy(elf + off + sizeof(nh), name, nh.n_namesz);
	memcpy(elf + off + sizeof(nh) + namesz, desc, descsz);
	return sizeof(nh) + namesz + dsz;
}

/* A two-segment vmlinux-like ELF: LOAD, NOTE, LOAD. with_note=false puts
 * an unrelated note (GNU build id) in the PT_NOTE segment instead. */
static void make_elf(bool with_note)
{
	uint32_t entry = PVH_ENTRY;
	uint8_t id[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t notes;

	memset(elf, 0, sizeof(elf));
	assert_true(NOTE_OFF >= LOAD2_OFF + 0x80);
	Elf64_Ehdr *e = ehdr();
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_type = ET_EXEC;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_entry = 0xffffffff81000000ULL;
	e->e_phoff = sizeof(Elf64_Ehdr);
	e->e_ehsize = sizeof(Elf64_Ehdr);
	e->e_phentsize = sizeof(Elf64_Phdr);
	e->e_phnum = 3;

	/* A GNU note first, so the walk has to step over it. */
	notes = put_note(NOTE_OFF, "GNU", NT_GNU_BUILD_ID, id, sizeof(id));
	if (with_note)
		notes += put_note(NOTE_OFF + notes, "Xen", 18, &entry, sizeof(entry));

	*phdr(0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = LOAD1_OFF,
				 .p_paddr = MiB(16), .p_filesz = 0x100, .p_memsz = 0x200 };
	*phdr(1) = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = NOTE_OFF, .p_filesz = notes,
				 .p_memsz = notes };
	*phdr(2) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = LOAD2_OFF,
				 .p_paddr = MiB(32), .p_filesz = 0x80, .p_memsz = 0x3000 };
	elf_len = NOTE_OFF + notes;
}

/* Parses an exact-size heap copy of elf[0, size), so that a read past the
 * end of the file is an out-of-bounds access (caught under ASan). */
static int parse_elf(size_t size, struct elf_info *info, const char **why)
{
	uint8_t *copy = malloc(size ? size : 1);

	assert_non_null(copy);
	memcpy(copy, elf, size);
	int rc = elf_parse(copy, size, info, why);
	free(copy);
	return rc;
}

static void expect_elf(size_t size, int rc)
{
	struct elf_info info;
	const char *why = NULL;

	assert_int_equal(parse_elf(size, &info, &why), rc);
	if (rc)
		assert_non_null(why);
}

static void test_elf_valid(void **state)
{
	struct elf_info info;
	const char *why = NULL;

	make_elf(true);
	assert_int_equal(parse_elf(elf_len, &info, &why), 0);
	assert_int_equal(info.pvh_entry, PVH_ENTRY);
	assert_int_equal(info.nloads, 2);
	assert_int_equal(info.loads[0].paddr, MiB(16));
	assert_int_equal(info.loads[0].file_offset, LOAD1_OFF);
	assert_int_equal(info.loads[0].file_size, 0x100);
	assert_int_equal(info.loads[0].mem_size, 0x200);
	assert_int_equal(info.loads[1].paddr, MiB(32));
	assert_int_equal(info.loads[1].file_offset, LOAD2_OFF);
	assert_int_equal(info.loads[1].file_size, 0x80);
	assert_int_equal(info.loads[1].mem_size, 0x3000);
	assert_int_equal(info.lowest, MiB(16));
	assert_int_equal(info.highest, MiB(32) + 0x3000);
}

static void test_elf_no_note(void **state)
{
	make_elf(false);
	expect_elf(elf_len, -EINVAL);

	/* A Xen note of another type is not the entry either. */
	make_elf(true);
	Elf64_Nhdr *nh = (Elf64_Nhdr *)(elf + NOTE_OFF + 12 + 4 + 8);
	assert_int_equal(nh->n_type, 18);
	nh->n_type = 17;
	expect_elf(elf_len, -EINVAL);

	/* No PT_NOTE at all. */
	make_elf(true);
	phdr(1)->p_type = PT_NULL;
	expect_elf(elf_len, -EINVAL);
}

static void test_elf_not_elf(void **state)
{
	make_elf(true);
	elf[0] = 'M';
	expect_elf(elf_len, -ENOEXEC);
	expect_elf(3, -ENOEXEC);
	make_elf(true);
	expect_elf(0, -ENOEXEC);
	expect_elf(sizeof(Elf64_Ehdr) - 1, -EINVAL); /* ELF magic, header cut */
}

static void test_elf_bad_header(void **state)
{
	make_elf(true);
	ehdr()->e_ident[EI_CLASS] = ELFCLASS32;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_machine = EM_386;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_type = ET_DYN;
	expect_elf(elf_len, -EINVAL);
}

static void test_elf_phdrs_out_of_file(void **state)
{
	make_elf(true);
	ehdr()->e_phoff = elf_len - 10;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_phoff = UINT64_MAX - 8;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_phnum = 0xffff;
	expect_elf(elf_len, -EINVAL);

	make_elf(true); /* the file ends inside the last program header */
	expect_elf(sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr) - 1, -EINVAL);

	make_elf(true);
	ehdr()->e_phnum = 0;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	ehdr()->e_phentsize = 32;
	expect_elf(elf_len, -EINVAL);
}

static void test_elf_malicious_note(void **state)
{
	/* Sizes that overflow 32-bit arithmetic, that each fit the segment
	 * but not together, or that run just past its end. */
	uint32_t sizes[][2] = {
		{ 0xffffffffU, 4 }, { 4, 0xffffffffU }, { 0xffffffffU, 0xffffffffU },
		{ 4, 0xfffffffdU }, { 0xfffffffdU, 0 }, { 0x1000, 4 }, { 4, 0x1000 },
		{ 4, 12 }, { 8, 8 }, { 4, 9 }, { 13, 0 },
	};
	for (int with_note = 0; with_note <= 1; with_note++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			make_elf(with_note);
			/* The first (GNU) note lies about its sizes: the Xen
			 * note after it must not be reached by a bogus skip. */
			Elf64_Nhdr *nh = (Elf64_Nhdr *)(elf + NOTE_OFF);
			nh->n_namesz = sizes[i][0];
			nh->n_descsz = sizes[i][1];
			struct elf_info info;
			const char *why = NULL;
			int rc = parse_elf(elf_len, &info, &why);
			if (rc != -EINVAL || !why)
				fail_msg("note sizes 0x%x/0x%x: got %d", sizes[i][0],
					 sizes[i][1], rc);
		}
	}

	/* The note segment itself running past the end of the file. */
	make_elf(true);
	phdr(1)->p_filesz = UINT64_MAX;
	expect_elf(elf_len, -EINVAL);

	/* A Xen note whose descriptor is shorter than the 4-byte entry. */
	make_elf(false);
	size_t n = phdr(1)->p_filesz;
	uint16_t short_entry = 0x1234;
	phdr(1)->p_filesz = n + put_note(NOTE_OFF + n, "Xen", 18, &short_entry, 2);
	elf_len = NOTE_OFF + phdr(1)->p_filesz;
	expect_elf(elf_len, -EINVAL);
}

static void test_elf_bad_segments(void **state)
{
	make_elf(true);
	phdr(0)->p_filesz = phdr(0)->p_memsz + 1;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	phdr(2)->p_filesz = elf_len - LOAD2_OFF + 1;
	phdr(2)->p_memsz = 0x10000;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	phdr(2)->p_offset = elf_len + 1;
	expect_elf(elf_len, -EINVAL);

	make_elf(true);
	phdr(2)->p_offset = UINT64_MAX;
	expect_elf(elf_len, -EINVAL);

	make_elf(true); /* paddr + memsz wraps */
	phdr(2)->p_paddr = UINT64_MAX - 0x100;
	expect_elf(elf_len, -EINVAL);

	make_elf(true); /* file ends inside the second segment's data */
	phdr(1)->p_type = PT_NULL;
	expect_elf(LOAD2_OFF + 0x7f, -EINVAL);
	make_elf(true); /* file ends inside the notes */
	expect_elf(elf_len - 1, -EINVAL);
	expect_elf(elf_len, 0);

	make_elf(true); /* no PT_LOAD left */
	phdr(0)->p_type = PT_NULL;
	phdr(2)->p_type = PT_NULL;
	expect_elf(elf_len, -EINVAL);
}

/* ---- e820 ---------------------------------------------------------------- */

struct range {
	uint64_t addr, size;
	uint32_t type;
};

static void expect_map(const struct e820_entry *got, unsigned n, const struct range *want,
		       unsigned nwant)
{
	assert_int_equal(n, nwant);
	for (unsigned i = 0; i < n; i++) {
		if (got[i].addr != want[i].addr || got[i].size != want[i].size ||
		    got[i].type != want[i].type)
			fail_msg("e820[%u] = [0x%llx, +0x%llx) type %u, expected [0x%llx, +0x%llx) "
				 "type %u", i, (unsigned long long)got[i].addr,
				 (unsigned long long)got[i].size, got[i].type,
				 (unsigned long long)want[i].addr,
				 (unsigned long long)want[i].size, want[i].type);
	}
}

static const struct range map_512m[] = {
	{ 0, 0x9fc00, 1 },
	{ 0x9fc00, 0x400, 2 },
	{ 0xe0000, 0x20000, 2 },
	{ MiB(1), MiB(511), 1 },
};

static const struct range map_4g[] = {
	{ 0, 0x9fc00, 1 },
	{ 0x9fc00, 0x400, 2 },
	{ 0xe0000, 0x20000, 2 },
	{ MiB(1), GiB(3) - MiB(1), 1 },
	{ GiB(4), GiB(1), 1 },
};

static void test_e820_512m(void **state)
{
	struct e820_entry m[16];

	expect_map(m, e820_build(MiB(512), 0, m, 16), map_512m, 4);
}

static void test_e820_4g(void **state)
{
	struct e820_entry m[16];

	/* vm.c splits 4 GiB into 3 GiB below the MMIO hole and 1 GiB above. */
	expect_map(m, e820_build(GiB(3), GiB(1), m, 16), map_4g, 5);
}

static void test_e820_max(void **state)
{
	struct e820_entry m[8];

	for (unsigned max = 0; max <= 5; max++) {
		memset(m, 0xa5, sizeof(m));
		unsigned n = e820_build(GiB(3), GiB(1), m, max);
		assert_int_equal(n, max);
		expect_map(m, n, map_4g, max);
		/* nothing written past the limit */
		for (size_t b = max * sizeof(m[0]); b < sizeof(m); b++)
			assert_int_equal(((uint8_t *)m)[b], 0xa5);
	}
	assert_int_equal(e820_build(GiB(3), GiB(1), m, 8), 5);
}

/* ---- zero page ----------------------------------------------------------- */

static void check_e820_bytes(const uint8_t *t, const struct range *want, unsigned n,
			     unsigned stride)
{
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = t + i * stride;
		assert_int_equal(rd(e, 8), want[i].addr);
		assert_int_equal(rd(e + 8, 8), want[i].size);
		assert_int_equal(rd(e + 16, 4), want[i].type);
	}
}

static void test_zero_page(void **state)
{
	uint8_t *k = kernel_copy();
	struct bzimage_info bz;
	const char *why;
	static uint8_t zp[4096];
	struct boot_args a = {
		.cmdline_gpa = 0x20000,
		.initrd_gpa = 0x1f000000,
		.initrd_size = 0x123456,
		.rsdp_gpa = 0xe0000,
		.ram_low = GiB(3),
		.ram_high = GiB(1),
	};

	assert_int_equal(bzimage_parse(k, kernel_len, &bz, &why), 0);
	memset(zp, 0x5a, sizeof(zp));
	zero_page_build(zp, k, &bz, &a);

	/* The setup header, copied from 0x1f1 up to 0x202 + byte 0x201. */
	size_t end = 0x202 + k[0x201];
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(rd(zp + 0x206, 2), bz.version);
	assert_int_equal(zp[0x1f1], k[0x1f1]);
	assert_int_equal(rd(zp + 0x1fe, 2), 0xaa55);
	assert_int_equal(rd(zp + 0x236, 2), rd(k + 0x236, 2)); /* xloadflags */
	assert_int_equal(rd(zp + 0x238, 4), rd(k + 0x238, 4)); /* cmdline_size */
	assert_int_equal(rd(zp + 0x260, 4), rd(k + 0x260, 4)); /* init_size */
	assert_int_equal(zp[end - 1], k[end - 1]);

	/* Loader-owned fields. */
	assert_int_equal(zp[0x210], 0xff);                 /* type_of_loader */
	assert_int_equal(zp[0x211], k[0x211] | 0x80);      /* loadflags | CAN_USE_HEAP */
	assert_int_equal(rd(zp + 0x228, 4), 0x20000);       /* cmd_line_ptr */
	assert_int_equal(rd(zp + 0x218, 4), 0x1f000000);    /* ramdisk_image */
	assert_int_equal(rd(zp + 0x21c, 4), 0x123456);      /* ramdisk_size */
	assert_int_equal(rd(zp + 0x070, 8), 0xe0000);       /* acpi_rsdp_addr */
	assert_int_equal(rd(zp + 0x1fa, 2), 0xffff);        /* vid_mode "normal" */
	assert_int_not_equal(rd(zp + 0x224, 2), 0);         /* heap_end_ptr */

	/* Memory map: count at 0x1e8, 20-byte entries at 0x2d0. */
	assert_int_equal(zp[0x1e8], 5);
	check_e820_bytes(zp + 0x2d0, map_4g, 5, 20);

	/* Everything else is zero: the page was memset first. */
	for (size_t i = 0; i < 4096; i++) {
		bool field = (i >= 0x070 && i < 0x078) || i == 0x1e8 ||
			     (i >= 0x1f1 && i < end) || (i >= 0x2d0 && i < 0x2d0 + 5 * 20);
		if (!field && zp[i] != 0)
			fail_msg("zero page byte 0x%zx is 0x%02x, expected 0", i, zp[i]);
	}
	free(k);
}

/* ---- hvm_start_info ------------------------------------------------------ */

#define PVH_GPA 0x6000

static size_t build_pvh(uint8_t *buf, size_t size, uint64_t initrd_size)
{
	struct boot_args a = {
		.cmdline_gpa = 0x20000,
		.initrd_gpa = 0x1f000000,
		.initrd_size = initrd_size,
		.rsdp_gpa = 0xe0000,
		.ram_low = GiB(3),
		.ram_high = GiB(1),
	};
	return pvh_info_build(buf, size, PVH_GPA, &a);
}

static void check_pvh_common(const uint8_t *b)
{
	assert_int_equal(rd(b + 0, 4), 0x336ec578); /* magic */
	assert_int_equal(rd(b + 4, 4), 1);          /* version */
	assert_int_equal(rd(b + 8, 4), 0);          /* flags */
	assert_int_equal(rd(b + 24, 8), 0x20000);   /* cmdline_paddr */
	assert_int_equal(rd(b + 32, 8), 0xe0000);   /* rsdp_paddr */
	uint64_t map = rd(b + 40, 8);               /* memmap_paddr */
	assert_true(map >= PVH_GPA + 56 && map + 5 * 24 <= PVH_GPA + 4096);
	assert_int_equal(rd(b + 48, 4), 5);         /* memmap_entries */
	check_e820_bytes(b + (map - PVH_GPA), map_4g, 5, 24);
	for (unsigned i = 0; i < 5; i++) /* reserved word of each entry */
		assert_int_equal(rd(b + (map - PVH_GPA) + i * 24 + 20, 4), 0);
}

static void test_pvh_with_initrd(void **state)
{
	static uint8_t b[4096];

	memset(b, 0x5a, sizeof(b));
	size_t n = build_pvh(b, sizeof(b), 0x123456);
	assert_true(n >= 56 && n <= sizeof(b));
	check_pvh_common(b);
	assert_int_equal(rd(b + 12, 4), 1); /* nr_modules */
	uint64_t mod = rd(b + 16, 8);      /* modlist_paddr */
	assert_true(mod >= PVH_GPA + 56 && mod + 32 <= PVH_GPA + n);
	const uint8_t *m = b + (mod - PVH_GPA);
	assert_int_equal(rd(m, 8), 0x1f000000);
	assert_int_equal(rd(m + 8, 8), 0x123456);
	assert_int_equal(rd(m + 16, 8), 0); /* no module cmdline */
	/* The module entry and the memory map do not overlap. */
	uint64_t map = rd(b + 40, 8);
	assert_true(mod + 32 <= map || map + 5 * 24 <= mod);
}

static void test_pvh_without_initrd(void **state)
{
	static uint8_t b[4096];

	size_t n = build_pvh(b, sizeof(b), 0);
	assert_true(n > 0);
	check_pvh_common(b);
	assert_int_equal(rd(b + 12, 4), 0);
	assert_int_equal(rd(b + 16, 8), 0);
}

static void test_pvh_too_small(void **state)
{
	static uint8_t b[4096];
	size_t need = build_pvh(b, sizeof(b), 0x1000);

	assert_true(need > 0);
	assert_int_equal(build_pvh(b, need, 0x1000), need);
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(build_pvh(b, need - 1, 0x1000), 0);
	assert_int_equal(build_pvh(b, 56, 0x1000), 0);
	assert_int_equal(build_pvh(b, 0, 0x1000), 0);
	for (size_t i = 0; i < sizeof(b); i++) /* a refusal writes nothing */
		assert_int_equal(b[i], 0x5a);
}

/* ---- entry segment state ------------------------------------------------- */

static void check_flat(const struct kvm_segment *s)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->unusable, 0);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->dpl, 0);
}

static void check_common_sregs(const struct kvm_sregs *s)
{
	check_flat(&s->cs);
	assert_int_equal(s->cs.selector, 0x10);
	assert_int_equal(s->cs.type, 0xb); /* execute/read, accessed */
	const struct kvm_segment *data[] = { &s->ds, &s->es, &s->fs, &s->gs, &s->ss };
	for (unsigned i = 0; i < 5; i++) {
		check_flat(data[i]);
		assert_int_equal(data[i]->selector, 0x18);
		assert_int_equal(data[i]->type, 0x3); /* read/write, accessed */
		assert_int_equal(data[i]->db, 1);
		assert_int_equal(data[i]->l, 0);
	}
	/* VMX needs a usable busy TSS. */
	assert_int_equal(s->tr.present, 1);
	assert_int_equal(s->tr.unusable, 0);
	assert_int_equal(s->tr.type, 0xb);
	assert_int_equal(s->tr.s, 0);
	assert_true(s->gdt.limit >= 0x20 + 7); /* covers the TSS selector */
}

static void test_sregs_linux64(void **state)
{
	struct kvm_sregs s;

	memset(&s, 0, sizeof(s));
	boot_sregs(&s, BOOT_LINUX_64);
	check_common_sregs(&s);
	assert_true(s.cr0 & 1);           /* PE */
	assert_true(s.cr0 & (1U << 31));  /* PG */
	assert_true(s.cr4 & (1U << 5));   /* PAE */
	assert_true(s.efer & (1U << 8));  /* LME */
	assert_true(s.efer & (1U << 10)); /* LMA */
	assert_int_not_equal(s.cr3, 0);
	assert_int_equal(s.cr3 & 0xfff, 0);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.cs.db, 0); /* L=1 with D=1 is reserved */
}

static void test_sregs_pvh32(void **state)
{
	struct kvm_sregs s;

	memset(&s, 0xff, sizeof(s)); /* stale state must be overwritten */
	boot_sregs(&s, BOOT_PVH_32);
	check_common_sregs(&s);
	assert_true(s.cr0 & 1);
	assert_false(s.cr0 & (1U << 31));
	assert_false(s.cr4 & (1U << 5));
	assert_int_equal(s.efer & ((1U << 8) | (1U << 10)), 0);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.cs.db, 1);
}

/* The reset-vector stub must write ACPI_RESET_VALUE to PORT_ACPI_RESET in
 * 16-bit real mode and never run past its 16 bytes. */
static void test_reset_vector_stub(void **state)
{
	uint8_t buf[16];
	memset(buf, 0xcc, sizeof(buf));
	assert_int_equal(reset_vector_build(buf, 4), 0);
	size_t n = reset_vector_build(buf, sizeof(buf));
	assert_true(n > 0 && n <= 16);
	assert_int_equal(buf[0], 0xba); /* mov dx, imm16 */
	assert_int_equal(buf[1] | buf[2] << 8, PORT_ACPI_RESET);
	assert_int_equal(buf[3], 0xb0); /* mov al, imm8 */
	assert_int_equal(buf[4], ACPI_RESET_VALUE);
	assert_int_equal(buf[5], 0xee); /* out dx, al */
	assert_int_equal(buf[6], 0xf4); /* hlt */
	assert_int_equal(buf[7], 0xeb); /* jmp rel8 ... */
	assert_int_equal((int8_t)buf[8], -3); /* ... back to the hlt */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzimage_real),
		cmocka_unit_test(test_bzimage_truncated),
		cmocka_unit_test(test_bzimage_corrupt),
		cmocka_unit_test(test_elf_valid),
		cmocka_unit_test(test_elf_no_note),
		cmocka_unit_test(test_elf_not_elf),
		cmocka_unit_test(test_elf_bad_header),
		cmocka_unit_test(test_elf_phdrs_out_of_file),
		cmocka_unit_test(test_elf_malicious_note),
		cmocka_unit_test(test_elf_bad_segments),
		cmocka_unit_test(test_e820_512m),
		cmocka_unit_test(test_e820_4g),
		cmocka_unit_test(test_e820_max),
		cmocka_unit_test(test_zero_page),
		cmocka_unit_test(test_pvh_with_initrd),
		cmocka_unit_test(test_pvh_without_initrd),
		cmocka_unit_test(test_pvh_too_small),
		cmocka_unit_test(test_sregs_linux64),
		cmocka_unit_test(test_sregs_pvh32),
		cmocka_unit_test(test_reset_vector_stub),
	};
	return cmocka_run_group_tests(tests, load_kernel, free_kernel);
}
