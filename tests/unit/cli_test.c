/* `kvmini run` option parsing and sizes. Errors are printed to stderr by the
 * code under test; that output is expected. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/cli.h"
#include "vmm/settings.h"
#include "vmm/log.h"

/* ---- parse_size ---------------------------------------------------------- */

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 0x5a5a5a5a;
	int rc = parse_size(s, &v);

	if (rc != 0 || v != want)
		fail_msg("parse_size(\"%s\") = %d, %llu; expected 0, %llu", s, rc,
			 (unsigned long long)v, (unsigned long long)want);
}

static void size_err(const char *s, int rc)
{
	uint64_t v = 0x5a5a5a5a;
	int got = parse_size(s, &v);

	if (got != rc)
		fail_msg("parse_size(\"%s\") = %d, expected %d", s ? s : "(null)", got, rc);
	assert_int_equal(v, 0x5a5a5a5a); /* untouched on error */
}

static void test_size_valid(void **state)
{
	size_ok("0", 0);
	size_ok("1024", 1024);
	size_ok("4K", 4096);
	size_ok("4k", 4096);
	size_ok("512M", 512ULL << 20);
	size_ok("512m", 512ULL << 20);
	size_ok("2G", 2ULL << 30);
	size_ok("2g", 2ULL << 30);
	size_ok("1T", 1ULL << 40);
	size_ok("1t", 1ULL << 40);
	size_ok("0G", 0);
	size_ok("16777215T", 16777215ULL << 40); /* largest that fits */
	size_ok("18446744073709551615", UINT64_MAX);
}

static void test_size_invalid(void **state)
{
	size_err("", -EINVAL);
	size_err("M", -EINVAL);
	size_err("12Q", -EINVAL);
	size_err("1.5G", -EINVAL);
	size_err("-1", -EINVAL);
	size_err("+1", -EINVAL);
	size_err(" 1", -EINVAL);
	size_err("1 ", -EINVAL);
	size_err("1KB", -EINVAL);
	size_err("1MM", -EINVAL);
	size_err("0x10", -EINVAL);
	size_err(NULL, -EINVAL);
}

static void test_size_range(void **state)
{
	size_err("99999999999T", -ERANGE);
	size_err("16777216T", -ERANGE);
	size_err("17179869184G", -ERANGE);
	size_err("18446744073709551616", -ERANGE);
	size_err("99999999999999999999999", -ERANGE);
}

/* ---- cli_parse_run ------------------------------------------------------- */

/* Runs cli_parse_run on {"run", args..., NULL}. */
#define RUN(cfg, ...) run_args(cfg, (const char *[]){ "run", __VA_ARGS__, NULL })
#define RUN0(cfg) run_args(cfg, (const char *[]){ "run", NULL })

static int run_args(struct vm_config *cfg, const char **args)
{
	static char *argv[64];
	int argc = 0;

	while (args[argc]) {
		assert_true(argc < 63);
		argv[argc] = (char *)args[argc];
		argc++;
	}
	argv[argc] = NULL;
	memset(cfg, 0xa5, sizeof(*cfg)); /* the parser must set every field */
	return cli_parse_run(argc, argv, cfg);
}

static enum log_level saved_level;

static int save_level(void **state)
{
	saved_level = log_get_level();
	return 0;
}

static int restore_level(void **state)
{
	log_set_level(saved_level);
	return 0;
}

static void test_defaults(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "/k"), 0);
	assert_string_equal(c.kernel, "/k");
	assert_null(c.initrd);
	assert_null(c.cmdline); /* the loader substitutes CONFIG_DEFAULT_CMDLINE */
	assert_int_equal(c.cpus, 1);
	assert_int_equal(c.mem_size, 512ULL << 20);
	assert_false(c.hugepages);
	assert_false(c.no_reboot);
	assert_false(c.trace_exits);
	assert_false(c.debug_exit);
	assert_int_equal(c.console, CONSOLE_STDIO);
	assert_null(c.console_path);
	assert_int_equal(c.ndisks, 0);
	assert_int_equal(c.nnics, 0);
	assert_int_equal(c.verbose, 0);
	assert_int_equal(log_get_level(), saved_level);
	vm_config_free(&c);
}

static void test_every_option(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "/boot/vmlinuz", "--initrd", "/boot/initrd",
			     "--cmdline", "console=ttyS0 quiet", "--cpus", "4", "--memory",
			     "2G,hugepages=on", "--console", "file=/tmp/out.log", "--no-reboot",
			     "--trace-exits", "--debug-exit", "--verbose"),
			 0);
	assert_string_equal(c.kernel, "/boot/vmlinuz");
	assert_string_equal(c.initrd, "/boot/initrd");
	assert_string_equal(c.cmdline, "console=ttyS0 quiet");
	assert_int_equal(c.cpus, 4);
	assert_int_equal(c.mem_size, 2ULL << 30);
	assert_true(c.hugepages);
	assert_int_equal(c.console, CONSOLE_FILE);
	assert_string_equal(c.console_path, "/tmp/out.log");
	assert_true(c.no_reboot);
	assert_true(c.trace_exits);
	assert_true(c.debug_exit);
	assert_int_equal(c.verbose, 1);
	/* The parser leaves the log level to its caller (cmd_run). */
	assert_int_equal(log_get_level(), saved_level);
	vm_config_free(&c);

	assert_int_equal(RUN(&c, "--console", "none", "-v", "-v", "--kernel", "k"), 0);
	assert_int_equal(c.console, CONSOLE_NONE);
	assert_int_equal(c.verbose, 2);
	assert_int_equal(RUN(&c, "-vvv", "--kernel", "k"), 0);
	assert_int_equal(c.verbose, 2);

	assert_int_equal(RUN(&c, "--console", "file=x", "--console", "stdio", "--kernel", "k"), 0);
	assert_int_equal(c.console, CONSOLE_STDIO);

	/* Options may follow or precede --kernel; the last one wins. */
	assert_int_equal(RUN(&c, "--cpus", "2", "--kernel", "a", "--cpus", "254", "--kernel", "b"),
			 0);
	assert_int_equal(c.cpus, 254);
	assert_string_equal(c.kernel, "b");

	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "2G,hugepages=on,hugepages=off"),
			 0);
	assert_false(c.hugepages);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "8M"), 0);
	assert_int_equal(c.mem_size, 8ULL << 20);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "1T"), 0);
	assert_int_equal(c.mem_size, 1ULL << 40);
}

static void test_equals_form(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel=/k", "--cpus=3", "--memory=1G", "--cmdline=a=b c",
			     "--console=file=/dev/null", "--initrd=/i"),
			 0);
	assert_string_equal(c.kernel, "/k");
	assert_int_equal(c.cpus, 3);
	assert_int_equal(c.mem_size, 1ULL << 30);
	assert_string_equal(c.cmdline, "a=b c");
	assert_int_equal(c.console, CONSOLE_FILE);
	assert_string_equal(c.console_path, "/dev/null");
	assert_string_equal(c.initrd, "/i");
}

static void test_cpus(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "k", "--cpus", "1"), 0);
	assert_int_equal(c.cpus, 1);
	assert_int_equal(RUN(&c, "--kernel", "k", "--cpus", "254"), 0);
	assert_int_equal(c.cpus, 254);

	const char *bad[] = { "0", "255", "abc", "", "-1", "2x", " 2", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (RUN(&c, "--kernel", "k", "--cpus", bad[i]) != -EINVAL)
			fail_msg("--cpus '%s' was accepted", bad[i]);
	}
}

static void test_memory(void **state)
{
	struct vm_config c;
	const char *bad[] = {
		"4M",                 /* below 8M */
		"1000",               /* bytes, not a 4K multiple (and too small) */
		"9000000",            /* above 8M, not a 4K multiple */
		"3M,hugepages=on",    /* too small */
		"9M,hugepages=on",    /* not a 2M multiple */
		"1G,foo=bar",
		"1G,hugepages",
		"1G,hugepages=yes",
		"1G,thp",
		"1G,thp=no",
		"2T",                 /* above 1T */
		"99999999999T",
		"lots",
		"",
		",hugepages=on",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (RUN(&c, "--kernel", "k", "--memory", bad[i]) != -EINVAL)
			fail_msg("--memory '%s' was accepted", bad[i]);
	}

	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "2G,hugepages=on"), 0);
	assert_int_equal(c.mem_size, 2ULL << 30);
	assert_true(c.hugepages);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "8196K"), 0); /* 4K multiple */
	assert_int_equal(c.mem_size, 8196ULL << 10);
	assert_false(c.hugepages);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "10M,hugepages=on"), 0);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "1G,thp=off"), 0);
	assert_false(c.thp);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory", "1G,thp=off,thp=on"), 0);
	assert_true(c.thp);
}

static void test_console(void **state)
{
	struct vm_config c;
	const char *bad[] = { "file=", "bogus", "", "file", "STDIO", "none,x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (RUN(&c, "--kernel", "k", "--console", bad[i]) != -EINVAL)
			fail_msg("--console '%s' was accepted", bad[i]);
	}
}

static void test_usage_errors(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "k", "--bogus"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--bogus=1"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "-x"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel"), -EINVAL);          /* missing value */
	assert_int_equal(RUN(&c, "--kernel", "k", "--cpus"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--memory"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--no-reboot=1"), -EINVAL);
	assert_int_equal(RUN0(&c), -EINVAL);                      /* missing --kernel */
	assert_int_equal(RUN(&c, "--cpus", "2", "--memory", "1G"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "stray"), -EINVAL);
	assert_int_equal(RUN(&c, "stray", "--kernel", "k"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--", "stray"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "x"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk=x"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--net", "tap0"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--config", "vm.json"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--api-socket"), -EINVAL);
	/* The parser still works after all those early returns. */
	assert_int_equal(RUN(&c, "--kernel", "k"), 0);
	assert_int_equal(c.cpus, 1);
}

/* Runs a parse with fd (stdout or stderr) captured; stdout is the TAP
 * stream, so the usage text must not reach it. Returns the parser's result
 * and what was printed. */
static int run_captured(int fd, struct vm_config *cfg, const char **args, char *out,
			size_t outsz)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stdout);
	fflush(stderr);
	int saved = dup(fd);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), fd) >= 0);
	int rc = run_args(cfg, args);
	fflush(stdout);
	fflush(stderr);
	dup2(saved, fd);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, outsz - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return rc;
}

#define HELP(cfg, out, ...) run_captured(STDOUT_FILENO, cfg, \
	(const char *[]){ "run", __VA_ARGS__, NULL }, out, sizeof(out))
#define ERRS(cfg, out, ...) run_captured(STDERR_FILENO, cfg, \
	(const char *[]){ "run", __VA_ARGS__, NULL }, out, sizeof(out))

static void test_not_supported_yet(void **state)
{
	struct vm_config c;
	char err[1024];
	/* --api-socket is a setting now (the socket opens at run time). */
	assert_int_equal(RUN(&c, "--kernel", "k", "--api-socket", "/run/vm1.sock"), 0);
	assert_string_equal(c.api_socket, "/run/vm1.sock");
	vm_config_free(&c);
	/* One line per mistake. */
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--cpus", "0"), -EINVAL);
	assert_non_null(strstr(err, "--cpus"));
	char *nl = strchr(err, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_int_equal(ERRS(&c, err, "--kernel"), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(ERRS(&c, err, "--cpus", "2"), -EINVAL);
	assert_non_null(strstr(err, "--kernel is required"));
}

/* The error line must name the option the user typed (cli.md: "one clear
 * line on stderr"), whether its value is attached or separate. */
static void test_error_names_option(void **state)
{
	struct vm_config c;
	char err[1024];

	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--disk=x"), -EINVAL);
	if (!strstr(err, "--disk"))
		fail_msg("--disk=x: stderr was '%s'", err);
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--disk", "path=a.img,bogus=1"), -EINVAL);
	if (!strstr(err, "--disk") || !strstr(err, "bogus"))
		fail_msg("--disk path=a.img,bogus=1: stderr was '%s'", err);
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--net", "user,bogus=1"), -EINVAL);
	if (!strstr(err, "--net") || !strstr(err, "bogus"))
		fail_msg("--net user,bogus=1: stderr was '%s'", err);
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--net=tap=t0,queues=0"), -EINVAL);
	if (!strstr(err, "--net") || !strstr(err, "queues=0"))
		fail_msg("--net=tap=t0,queues=0: stderr was '%s'", err);
}

/* --net: the parser is net_config_test's; here the command line around
 * it: repeats, order, limits, and what only the whole list shows. */
static void test_net(void **state)
{
	struct vm_config c;
	char err[1024];

	assert_int_equal(RUN(&c, "--kernel", "k", "--net", "user"), 0);
	assert_int_equal(c.nnics, 1);
	assert_int_equal(c.nics[0].kind, NET_USER);
	assert_int_equal(RUN(&c, "--kernel", "k", "--net", "user,hostfwd=tcp::2222-:22",
			     "--net=tap=tap0,bridge=br0,queues=2", "--net", "tap=tap1",
			     "--disk", "path=a.img"), 0);
	assert_int_equal(c.nnics, 3);
	assert_int_equal(c.ndisks, 1);
	assert_int_equal(c.nics[0].kind, NET_USER);
	assert_int_equal(c.nics[0].nhostfwd, 1);
	assert_int_equal(c.nics[1].kind, NET_TAP);
	assert_string_equal(c.nics[1].ifname, "tap0");
	assert_string_equal(c.nics[1].bridge, "br0");
	assert_int_equal(c.nics[1].queues, 2);
	assert_string_equal(c.nics[2].ifname, "tap1");
	/* Each NIC its own generated MAC. */
	assert_memory_not_equal(c.nics[0].mac, c.nics[1].mac, 6);
	assert_memory_not_equal(c.nics[1].mac, c.nics[2].mac, 6);
	free((char *)c.disks[0].block.path);

	/* At most CONFIG_MAX_NICS. */
	const char *args[2 * CONFIG_MAX_NICS + 8] = { "run", "--kernel", "k" };
	int n = 3;
	char names[CONFIG_MAX_NICS + 1][16];
	for (int i = 0; i < CONFIG_MAX_NICS; i++) {
		snprintf(names[i], sizeof(names[i]), "tap=t%d", i);
		args[n++] = "--net";
		args[n++] = names[i];
	}
	args[n] = NULL;
	assert_int_equal(run_args(&c, args), 0);
	assert_int_equal(c.nnics, CONFIG_MAX_NICS);
	snprintf(names[CONFIG_MAX_NICS], sizeof(names[0]), "tap=t%d", CONFIG_MAX_NICS);
	args[n++] = "--net";
	args[n++] = names[CONFIG_MAX_NICS];
	args[n] = NULL;
	assert_int_equal(run_captured(STDERR_FILENO, &c, args, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--net: too many NICs (at most 8)"));

	/* What one option alone cannot see. */
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--net", "tap=t0", "--net", "tap=t0,queues=2"),
			 -EINVAL);
	assert_non_null(strstr(err, "tap=t0 is given to two NICs"));
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--net", "user,mac=02:00:00:00:00:01",
			      "--net", "tap=t0,mac=02:00:00:00:00:01"), -EINVAL);
	assert_non_null(strstr(err, "mac=02:00:00:00:00:01 is given to two NICs"));
	char *nl = strchr(err, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	/* Two user NICs are fine (two slirp instances, as in QEMU). */
	assert_int_equal(RUN(&c, "--kernel", "k", "--net", "user", "--net", "user"), 0);
	assert_int_equal(c.nnics, 2);

	const char *bad[] = { "tap0", "", "user,", "tap=", "user,hostfwd=tcp::99999-:22",
			      "tap=t0,mac=01:00:00:00:00:01", "user,net=10.0.2.0/31" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (RUN(&c, "--kernel", "k", "--net", bad[i]) != -EINVAL)
			fail_msg("--net '%s' was accepted", bad[i]);
	assert_int_equal(ERRS(&c, err, "--kernel", "k", "--net", "user,hostfwd=tcp::99999-:22"),
			 -EINVAL);
	assert_non_null(strstr(err, "kvmini: error: --net: hostfwd rule 'tcp::99999-:22': bad host port"));
}

static void test_disk(void **state)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=a.img"), 0);
	assert_int_equal(c.ndisks, 1);
	assert_string_equal(c.disks[0].block.path, "a.img");
	assert_int_equal(c.disks[0].block.format, BLOCK_FMT_AUTO);
	assert_int_equal(c.disks[0].block.cache, BLOCK_CACHE_WRITEBACK);
	assert_false(c.disks[0].block.readonly);
	assert_true(c.disks[0].block.lock);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk",
			     "path=b.img,format=raw,readonly=on,cache=none,lock=off,serial=SN-1",
			     "--disk=path=c.img,format=qcow2"), 0);
	assert_int_equal(c.ndisks, 2);
	assert_int_equal(c.disks[0].block.format, BLOCK_FMT_RAW);
	assert_true(c.disks[0].block.readonly);
	assert_int_equal(c.disks[0].block.cache, BLOCK_CACHE_NONE);
	assert_false(c.disks[0].block.lock);
	assert_string_equal(c.disks[0].serial, "SN-1");
	assert_string_equal(c.disks[1].block.path, "c.img");
	assert_int_equal(c.disks[1].block.format, BLOCK_FMT_QCOW2);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=a,serial=12345678901234567890"), 0);
	assert_string_equal(c.disks[0].serial, "12345678901234567890");
	assert_int_equal(c.disks[0].queues, 0); /* one per vCPU */
	assert_int_equal(c.disks[0].iothread, DISK_IOTHREAD_QUEUE);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=a,queues=4,iothread=disk",
			     "--disk", "path=b,queues=63,iothread=queue"), 0);
	assert_int_equal(c.disks[0].queues, 4);
	assert_int_equal(c.disks[0].iothread, DISK_IOTHREAD_DISK);
	assert_int_equal(c.disks[1].queues, 63);
	assert_int_equal(c.disks[1].iothread, DISK_IOTHREAD_QUEUE);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=a,format=qcow2,l2-cache=4M",
			     "--disk", "path=b,format=auto"), 0);
	assert_int_equal(c.disks[0].block.l2_cache, 4u << 20);
	assert_int_equal(c.disks[1].block.l2_cache, 0); /* cover the disk */
	assert_int_equal(c.disks[1].block.format, BLOCK_FMT_AUTO);
	const char *bad[] = { "x", "path=", "format=raw", "path=a,format=vmdk", "path=a,readonly=yes",
			      "path=a,l2-cache=1K", "path=a,l2-cache=3G", "path=a,l2-cache=x",
			      "path=a,cache=directsync", "path=a,lock=1",
			      "path=a,serial=123456789012345678901", "path=a,at=1", "path=a,=x",
			      "path=a,queues=0", "path=a,queues=64", "path=a,queues=-1", "path=a,queues=2x",
			      "path=a,queues=", "path=a,iothread=vcpu", "path=a,iothread=" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (RUN(&c, "--kernel", "k", "--disk", bad[i]) != -EINVAL)
			fail_msg("--disk %s was accepted", bad[i]);
}

/* A disk owns its path (strdup'd); a refused --disk, or a path= given twice,
 * must not leave a copy behind. Found by tests/fuzz/fuzz_cli_disk
 * (corpus/cli_disk/crash-leak-*). The heap in use (mallinfo2, main arena)
 * must not grow over many rounds; a leak grows it by at least 3 * 32 bytes a
 * round, while glibc's per-thread cache (whose chunks count as in use) can
 * only hide a bounded amount. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

static void disk_round(void)
{
	struct vm_config c;

	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=s,r"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=s,queues=0"), -EINVAL);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=s,path=t"), 0);
	assert_int_equal(c.ndisks, 1);
	assert_string_equal(c.disks[0].block.path, "t");   /* the last one counts */
	vm_config_free(&c);
	/* A later option failing frees the disks parsed so far: a refused
	 * command line leaves nothing to the caller. */
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=u", "--cpus", "0"), -EINVAL);
	assert_int_equal(c.ndisks, 0);
	assert_null(c.kernel);
	assert_int_equal(RUN(&c, "--kernel", "k", "--disk", "path=u", "--cmdline", "x",
			     "--initrd", "i", "--console", "file=f"), 0);
	vm_config_free(&c);
}

static void test_disk_frees_path(void **state)
{
	const int rounds = 64;
	int saved = dup(2), null = open("/dev/null", O_WRONLY);
	size_t before, after;

	assert_true(saved >= 0 && null >= 0);
	dup2(null, 2);   /* four error lines a round */
	disk_round();    /* once first, so that stdio and getopt have their buffers */
	before = heap_in_use();
	for (int i = 0; i < rounds; i++)
		disk_round();
	after = heap_in_use();
	dup2(saved, 2);
	close(saved);
	close(null);
	if (after > before + 1024)
		fail_msg("--disk parsing leaked %zu bytes in %d rounds", after - before, rounds);
}

static void test_help(void **state)
{
	struct vm_config c;
	char out[4096];

	assert_int_equal(HELP(&c, out, "--help"), 1);
	assert_non_null(strstr(out, "usage: kvmini run"));
	assert_non_null(strstr(out, "--kernel"));
	assert_int_equal(HELP(&c, out, "-h"), 1);
	assert_non_null(strstr(out, "usage: kvmini run"));
	/* --help wins even over an incomplete command line. */
	assert_int_equal(HELP(&c, out, "--cpus", "2", "--help"), 1);
	assert_int_equal(RUN(&c, "--kernel", "k"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_valid),
		cmocka_unit_test(test_size_invalid),
		cmocka_unit_test(test_size_range),
		cmocka_unit_test_setup_teardown(test_defaults, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_every_option, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_equals_form, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_cpus, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_memory, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_console, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_usage_errors, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_not_supported_yet, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_error_names_option, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_disk, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_net, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_disk_frees_path, save_level, restore_level),
		cmocka_unit_test_setup_teardown(test_help, save_level, restore_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
