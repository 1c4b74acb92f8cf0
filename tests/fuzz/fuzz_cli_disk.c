/* `kvmini run` option parsing (vmm/cli.c), above all --disk and --memory,
 * whose values are split and converted by hand.
 *
 * The input is the argument list after "run", arguments separated by NUL
 * bytes (at most MAX_ARGS; each is its own heap block of exactly its size, so
 * AddressSanitizer sees a read past its end). Checked, from vmm/cli.h,
 * vmm/config.h and docs/cli.md:
 *   - the result is 0, 1 (--help), -EINVAL or -ENOMEM;
 *   - on 0: a kernel is named; 1..CLI_MAX_CPUS vCPUs; memory within
 *     [CLI_MIN_MEM, CLI_MAX_MEM] and a multiple of 4K (2M with hugepages);
 *     at most CONFIG_MAX_DISKS disks, each with a non-empty path, a serial of
 *     at most DISK_SERIAL_MAX characters, at most DISK_MAX_QUEUES queues,
 *     known format/cache/iothread values;
 *   - nothing leaks: a refused command line leaves nothing owned, an
 *     accepted one is freed by vm_config_free. When fuzzing, LeakSanitizer checks
 *     that. The plain replay build has no sanitizer, so there the heap in use
 *     (mallinfo2) must be what it was before the input. That count is exact
 *     only without glibc's per-thread cache, whose chunks count as in use:
 *     meson runs the replay with GLIBC_TUNABLES=glibc.malloc.tcache_count=0,
 *     and the check is skipped when the cache is on. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "vmm/cli.h"
#include "vmm/settings.h"
#include "vmm/log.h"

#define MAX_ARGS 64

static void check_config(const struct vm_config *cfg)
{
	FUZZ_CHECK(cfg->kernel != NULL);
	FUZZ_CHECK(cfg->cpus >= 1 && cfg->cpus <= CLI_MAX_CPUS);
	FUZZ_CHECK(cfg->mem_size >= CLI_MIN_MEM && cfg->mem_size <= CLI_MAX_MEM);
	FUZZ_CHECK(cfg->mem_size % (cfg->hugepages ? (2ull << 20) : 4096) == 0);
	FUZZ_CHECK(cfg->console == CONSOLE_STDIO || cfg->console == CONSOLE_NONE ||
		   (cfg->console == CONSOLE_FILE && cfg->console_path && cfg->console_path[0]));
	FUZZ_CHECK(cfg->ndisks <= CONFIG_MAX_DISKS);
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *d = &cfg->disks[i];

		FUZZ_CHECK(d->block.path && d->block.path[0]);
		FUZZ_CHECK(strlen(d->serial) <= DISK_SERIAL_MAX);
		FUZZ_CHECK(d->queues <= DISK_MAX_QUEUES);
		FUZZ_CHECK(d->block.format == BLOCK_FMT_AUTO || d->block.format == BLOCK_FMT_RAW ||
			   d->block.format == BLOCK_FMT_QCOW2);
		FUZZ_CHECK(d->block.cache == BLOCK_CACHE_WRITEBACK ||
			   d->block.cache == BLOCK_CACHE_NONE);
		FUZZ_CHECK(d->iothread == DISK_IOTHREAD_QUEUE || d->iothread == DISK_IOTHREAD_DISK);
	}
}

/* Whether mallinfo2() counts freed small chunks as free at once (glibc's
 * tcache off). */
static int heap_count_exact(void)
{
	void *volatile p;
	size_t before = mallinfo2().uordblks;

	p = malloc(24);
	free(p);
	return mallinfo2().uordblks == before;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vm_config cfg;
	static char run[] = "run";
	static char outbuf[BUFSIZ];
	static int once, exact;
	char *args[MAX_ARGS + 1], *argv[MAX_ARGS + 2];
	enum log_level level = log_get_level();
	int argc = 0, r;
	size_t start = 0, heap;

	/* --help prints: give stdout a static buffer, so that its first use
	 * does not look like a leak. */
	if (!once++) {
		setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
		exact = heap_count_exact();
	}
	heap = mallinfo2().uordblks;
	/* Split at NUL bytes; a trailing piece without one counts too. */
	for (size_t i = 0; i <= size && argc < MAX_ARGS; i++) {
		if (i < size && data[i] != 0)
			continue;
		if (i == size && i == start)
			break;
		args[argc] = malloc(i - start + 1);
		if (!args[argc])
			abort();
		memcpy(args[argc], data + start, i - start);
		args[argc][i - start] = '\0';
		argc++;
		start = i + 1;
	}
	argv[0] = run;
	/* getopt_long() permutes argv; args keeps the blocks to free. */
	memcpy(argv + 1, args, sizeof(args[0]) * (size_t)argc);
	argv[argc + 1] = NULL;

	r = cli_parse_run(argc + 1, argv, &cfg);
	FUZZ_CHECK(r == 0 || r == 1 || r == -EINVAL || r == -ENOMEM);
	if (r == 0)
		check_config(&cfg);

	/* A refused command line leaves nothing owned; an accepted one is
	 * the caller's to free. */
	FUZZ_CHECK(cfg.ndisks <= CONFIG_MAX_DISKS);
	if (r)
		FUZZ_CHECK(!cfg.ndisks && !cfg.kernel && !cfg.initrd && !cfg.cmdline);
	vm_config_free(&cfg);
	for (int i = 0; i < argc; i++)
		free(args[i]);
	log_set_level(level);   /* nothing should change it; restored in case */
	if (exact)
		FUZZ_CHECK(mallinfo2().uordblks == heap);
	return 0;
}
