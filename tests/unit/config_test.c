/* VM definition files (vmm/config_file.c), the settings tables
 * (vmm/settings.c) and `kvmini config show|edit` (vmm/config_cmd.c):
 * every flag has a key, a show reads back to the same config and the same
 * text, each mistake is one line naming file and line, --config and flags
 * combine, and edit saves only a definition that validates. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/cli.h"
#include "vmm/config_file.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/settings.h"

static char dir[64];

static int make_dir(void **state)
{
	strcpy(dir, "/tmp/kvmini-config-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int remove_dir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A path in the test's directory; never freed (a test's few bytes). */
static const char *path_in(const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[3][16384];
	static int k;
	k = (k + 1) % 3;
	size_t n = fread(buf[k], 1, sizeof(buf[k]) - 1, f);
	buf[k][n] = '\0';
	fclose(f);
	return buf[k];
}

/* stderr of fn(arg) into err. */
static int capture_stderr(int (*fn)(void *), void *arg, char *err, size_t n)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(tmp), 2);
	int r = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t got = fread(err, 1, n - 1, tmp);
	err[got] = '\0';
	fclose(tmp);
	return r;
}

static char *show_text(const struct vm_config *c)
{
	static char buf[2][16384];
	static int k;
	k = (k + 1) % 2;
	FILE *f = fmemopen(buf[k], sizeof(buf[k]), "w");
	char why[SETTING_WHY_MAX];
	assert_int_equal(vm_config_show(c, f, why), 0);
	fclose(f);
	return buf[k];
}

static void assert_str_eq(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Field by field: the show left nothing out. */
static void assert_same_config(const struct vm_config *a, const struct vm_config *b)
{
	assert_str_eq(a->kernel, b->kernel);
	assert_str_eq(a->initrd, b->initrd);
	assert_str_eq(a->cmdline ? a->cmdline : CONFIG_DEFAULT_CMDLINE,
		      b->cmdline ? b->cmdline : CONFIG_DEFAULT_CMDLINE);
	assert_int_equal(a->cpus, b->cpus);
	assert_int_equal(a->mem_size, b->mem_size);
	assert_int_equal(a->hugepages, b->hugepages);
	assert_int_equal(a->thp, b->thp);
	assert_int_equal(a->no_reboot, b->no_reboot);
	assert_int_equal(a->trace_exits, b->trace_exits);
	assert_int_equal(a->debug_exit, b->debug_exit);
	assert_int_equal(a->console, b->console);
	assert_str_eq(a->console_path, b->console_path);
	assert_int_equal(a->verbose, b->verbose);
	assert_int_equal(a->ndisks, b->ndisks);
	for (unsigned i = 0; i < a->ndisks; i++) {
		const struct disk_config *x = &a->disks[i], *y = &b->disks[i];
		assert_str_eq(x->block.path, y->block.path);
		assert_int_equal(x->block.format, y->block.format);
		assert_int_equal(x->block.cache, y->block.cache);
		assert_int_equal(x->block.readonly, y->block.readonly);
		assert_int_equal(x->block.lock, y->block.lock);
		assert_int_equal(x->block.l2_cache, y->block.l2_cache);
		assert_string_equal(x->serial, y->serial);
		assert_int_equal(x->queues, y->queues);
		assert_int_equal(x->iothread, y->iothread);
	}
	assert_int_equal(a->nnics, b->nnics);
	for (unsigned i = 0; i < a->nnics; i++) {
		const struct net_config *x = &a->nics[i], *y = &b->nics[i];
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->mac_set, y->mac_set);
		if (x->mac_set)
			assert_memory_equal(x->mac, y->mac, 6);
		assert_string_equal(x->ifname, y->ifname);
		assert_string_equal(x->bridge, y->bridge);
		assert_int_equal(x->queues ? x->queues : 1, y->queues ? y->queues : 1);
		assert_int_equal(x->main_loop, y->main_loop);
		assert_int_equal(x->net.s_addr, y->net.s_addr);
		assert_int_equal(x->mask.s_addr, y->mask.s_addr);
		assert_int_equal(x->host.s_addr, y->host.s_addr);
		assert_int_equal(x->dns.s_addr, y->dns.s_addr);
		assert_int_equal(x->dhcp_start.s_addr, y->dhcp_start.s_addr);
		assert_int_equal(x->restrict_, y->restrict_);
		assert_int_equal(x->ipv6, y->ipv6);
		assert_int_equal(x->nhostfwd, y->nhostfwd);
		for (unsigned k = 0; k < x->nhostfwd; k++) {
			const struct net_hostfwd *p = &x->hostfwd[k], *q = &y->hostfwd[k];
			assert_int_equal(p->udp, q->udp);
			assert_int_equal(p->host_addr.s_addr, q->host_addr.s_addr);
			assert_int_equal(p->host_port, q->host_port);
			assert_int_equal(p->guest_addr.s_addr, q->guest_addr.s_addr);
			assert_int_equal(p->guest_port, q->guest_port);
		}
	}
}

static int load(struct vm_config *c, const char *path)
{
	vm_config_init(c);
	return config_file_load(c, path, NULL, NULL);
}

/* ---- every key, and what it sets ---------------------------------------- */

static void test_every_key(void **state)
{
	const char *f = path_in("all.conf");
	write_file(f, "# every key once\n"
		      "kernel = vmlinuz\n"
		      "initrd = /boot/initrd.img\n"
		      "  cmdline = console=ttyS0 root=/dev/vda rw ; not a comment\n"
		      "cpus = 4\n"
		      "memory = 2G,hugepages=on,thp=off\n"
		      "console = file=serial.log\n"
		      "no-reboot = on\n"
		      "trace-exits = on\n"
		      "debug-exit = on\n"
		      "verbose = 2\n"
		      "\n"
		      "[disk]\n"
		      "path = disks/a.qcow2\n"
		      "format = qcow2\n"
		      "readonly = on\n"
		      "cache = none\n"
		      "lock = off\n"
		      "serial = SN-1\n"
		      "queues = 3\n"
		      "iothread = disk\n"
		      "l2-cache = 4M\n"
		      "[disk]\n"
		      "path = /srv/b.img\n"
		      "[net]\n"
		      "user = on\n"
		      "net = 10.0.3.0/24\n"
		      "host = 10.0.3.2\n"
		      "dns = 10.0.3.3\n"
		      "dhcpstart = 10.0.3.20\n"
		      "hostfwd = tcp:127.0.0.1:2222-:22\n"
		      "hostfwd = udp::5353-:53\n"
		      "restrict = on\n"
		      "ipv6 = off\n"
		      "mac = 52:54:00:00:00:01\n"
		      "[net]\n"
		      "tap = tap7\n"
		      "bridge = br0\n"
		      "queues = 2\n"
		      "iothread = main\n");
	struct vm_config c;
	assert_int_equal(load(&c, f), 0);
	assert_string_equal(c.kernel, path_in("vmlinuz"));
	assert_string_equal(c.initrd, "/boot/initrd.img");
	/* Values are verbatim: ';' is no inline comment, indentation goes. */
	assert_string_equal(c.cmdline, "console=ttyS0 root=/dev/vda rw ; not a comment");
	assert_int_equal(c.cpus, 4);
	assert_int_equal(c.mem_size, 2ULL << 30);
	assert_true(c.hugepages);
	assert_false(c.thp);
	assert_int_equal(c.console, CONSOLE_FILE);
	assert_string_equal(c.console_path, path_in("serial.log"));
	assert_true(c.no_reboot && c.trace_exits && c.debug_exit);
	assert_int_equal(c.verbose, 2);
	assert_int_equal(c.ndisks, 2);
	const struct disk_config *d = &c.disks[0];
	assert_string_equal(d->block.path, path_in("disks/a.qcow2"));
	assert_int_equal(d->block.format, BLOCK_FMT_QCOW2);
	assert_true(d->block.readonly);
	assert_int_equal(d->block.cache, BLOCK_CACHE_NONE);
	assert_false(d->block.lock);
	assert_string_equal(d->serial, "SN-1");
	assert_int_equal(d->queues, 3);
	assert_int_equal(d->iothread, DISK_IOTHREAD_DISK);
	assert_int_equal(d->block.l2_cache, 4 << 20);
	d = &c.disks[1];
	assert_string_equal(d->block.path, "/srv/b.img");
	assert_int_equal(d->block.format, BLOCK_FMT_AUTO);
	assert_true(d->block.lock);
	assert_int_equal(c.nnics, 2);
	const struct net_config *n = &c.nics[0];
	assert_int_equal(n->kind, NET_USER);
	assert_int_equal(ntohl(n->net.s_addr), 0x0a000300);
	assert_int_equal(ntohl(n->dhcp_start.s_addr), 0x0a000314);
	assert_int_equal(n->nhostfwd, 2);
	assert_int_equal(n->hostfwd[0].host_port, 2222);
	assert_int_equal(ntohl(n->hostfwd[0].guest_addr.s_addr), 0x0a000314);
	assert_true(n->hostfwd[1].udp);
	assert_true(n->restrict_);
	assert_false(n->ipv6);
	assert_true(n->mac_set);
	n = &c.nics[1];
	assert_int_equal(n->kind, NET_TAP);
	assert_string_equal(n->ifname, "tap7");
	assert_string_equal(n->bridge, "br0");
	assert_int_equal(n->queues, 2);
	assert_true(n->main_loop);

	/* The show of it reads back to the same text. */
	char *s1 = show_text(&c);
	const char *f2 = path_in("all-shown.conf");
	write_file(f2, s1);
	struct vm_config c2;
	assert_int_equal(load(&c2, f2), 0);
	assert_string_equal(show_text(&c2), s1);
	assert_same_config(&c, &c2);
	vm_config_free(&c2);
	vm_config_free(&c);
	vm_config_free(&c);   /* twice is harmless */
}

/* Lines up to CONFIG_LINE_MAX characters, beyond libinih's default 200. */
static void test_long_lines(void **state)
{
	size_t len = CONFIG_LINE_MAX - 40;
	char *text = malloc(len + 64);
	int n = sprintf(text, "kernel = /k\ncmdline = ");
	memset(text + n, 'x', len);
	strcpy(text + n + len, "\n");
	const char *f = path_in("long.conf");
	write_file(f, text);
	struct vm_config c;
	assert_int_equal(load(&c, f), 0);
	assert_int_equal(strlen(c.cmdline), len);
	/* and the show of it loads again */
	write_file(f, show_text(&c));
	vm_config_free(&c);
	assert_int_equal(load(&c, f), 0);
	assert_int_equal(strlen(c.cmdline), len);
	vm_config_free(&c);
	free(text);
}

/* Every run flag (the table) has a file key: a key of each name loads. */
static void test_every_flag_has_a_key(void **state)
{
	char line[128], err[1024];
	for (size_t i = 0; i < vm_settings_count; i++) {
		const char *key = vm_settings[i].key;
		assert_non_null(vm_setting_find(key));
		char *shown = NULL;
		/* The value show prints for the defaults is a valid value. */
		struct vm_config c;
		vm_config_init(&c);
		c.kernel = strdup("/k");
		c.initrd = strdup("/i");
		c.api_socket = strdup("/run/vm.sock");
		char *text = show_text(&c);
		vm_config_free(&c);
		char want[64];
		snprintf(want, sizeof(want), "\n%s = ", key);
		char *at = strstr(text, want);
		if (!at)
			fail_msg("show has no '%s' line", key);
		at++;
		shown = strndup(at, strcspn(at, "\n"));
		snprintf(line, sizeof(line), "%s%s\n", strcmp(key, "kernel") ? "kernel = /k\n" : "",
			 shown);
		free(shown);
		const char *f = path_in("key.conf");
		write_file(f, line);
		struct vm_config d;
		vm_config_init(&d);
		int r = config_file_load(&d, f, NULL, NULL);
		if (r)
			fail_msg("key %s: '%s' refused", key, line);
		vm_config_free(&d);
	}
	(void)err;
}

/* ---- flags -> show -> file -> the same config --------------------------- */

static int parse_flags(struct vm_config *c, const char **args)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "run";
	for (; args[argc - 1]; argc++)
		argv[argc] = (char *)args[argc - 1];
	argv[argc] = NULL;
	return cli_parse_args(argc, argv, c, "/base");
}

static void test_flags_round_trip(void **state)
{
	const char *args[] = {
		"--kernel", "k", "--initrd", "/i", "--cmdline", "quiet a=b", "--cpus", "3",
		"--memory", "1536M,thp=off", "--console", "none", "--no-reboot", "-v",
		"--disk", "path=rel.img,format=raw,serial=xyz,queues=2,l2-cache=64K",
		"--disk", "path=/abs.qcow2,readonly=on,cache=none",
		"--net", "user,hostfwd=tcp::8022-:80,mac=02:00:00:00:00:05",
		"--net", "tap=tap3,bridge=br9", NULL,
	};
	struct vm_config c, c2;
	assert_int_equal(parse_flags(&c, args), 0);
	/* Relative paths among the flags mean the base directory. */
	assert_string_equal(c.kernel, "/base/k");
	assert_string_equal(c.disks[0].block.path, "/base/rel.img");
	char *s1 = show_text(&c);
	assert_non_null(strstr(s1, "memory = 1536M,thp=off\n"));
	assert_non_null(strstr(s1, "l2-cache = 64K\n"));
	assert_non_null(strstr(s1, "hostfwd = tcp::8022-10.0.2.15:80\n"));
	assert_non_null(strstr(s1, "verbose = 1\n"));
	/* A generated MAC is not pinned into the definition. */
	assert_null(strstr(s1, "tap = tap3\nbridge = br9\nqueues = 1\niothread = pair\nmac"));

	const char *f = path_in("rt.conf");
	write_file(f, s1);
	assert_int_equal(load(&c2, f), 0);
	assert_string_equal(show_text(&c2), s1);
	c.nics[1].mac_set = true;   /* generated, so not in the show: compare the rest */
	c2.nics[1].mac_set = true;
	memcpy(c2.nics[1].mac, c.nics[1].mac, 6);
	assert_same_config(&c, &c2);
	assert_int_equal(c2.mem_size, c.mem_size);
	assert_int_equal(c2.ndisks, 2);
	assert_int_equal(c2.disks[0].queues, 2);
	assert_int_equal(c2.disks[0].block.l2_cache, 64 << 10);
	assert_string_equal(c2.disks[0].serial, "xyz");
	assert_memory_equal(c2.nics[0].mac, c.nics[0].mac, 6);
	assert_int_equal(c2.nics[0].hostfwd[0].guest_port, 80);
	vm_config_free(&c2);
	vm_config_free(&c);
}

/* --config first, flags on top: a flag overrides, --disk/--net add. */
static void test_config_and_flags(void **state)
{
	const char *f = path_in("base.conf");
	write_file(f, "kernel = /k\ncpus = 2\nverbose = 1\n[disk]\npath = a.img\n[net]\nuser = on\n");
	const char *args[] = { "--cpus", "4", "--disk", "path=/b.img", "--config", f, NULL };
	struct vm_config c;
	assert_int_equal(parse_flags(&c, args), 0);
	assert_int_equal(c.cpus, 4);
	assert_string_equal(c.kernel, "/k");
	assert_int_equal(c.verbose, 1);
	assert_int_equal(c.ndisks, 2);
	assert_string_equal(c.disks[0].block.path, path_in("a.img"));
	assert_string_equal(c.disks[1].block.path, "/b.img");
	assert_int_equal(c.nnics, 1);
	vm_config_free(&c);

	/* A -v on the command line replaces the file's level. */
	const char *args2[] = { "--config", f, "-v", "-v", NULL };
	assert_int_equal(parse_flags(&c, args2), 0);
	assert_int_equal(c.verbose, 2);
	vm_config_free(&c);

	const char *twice[] = { "--config", f, "--config", f, NULL };
	assert_int_equal(parse_flags(&c, twice), -EINVAL);
	assert_int_equal(c.ndisks, 0);
	/* A NIC from the file and one from a flag on one TAP. */
	write_file(f, "kernel = /k\n[net]\ntap = t0\n");
	const char *dup[] = { "--config", f, "--net", "tap=t0", NULL };
	assert_int_equal(parse_flags(&c, dup), -EINVAL);
}

/* ---- mistakes: one line, file and line named ----------------------------- */

struct load_arg {
	const char *path;
	struct vm_config *cfg;
};

static int load_validate(void *p)
{
	struct load_arg *a = p;
	int r = load(a->cfg, a->path);
	char why[SETTING_WHY_MAX];
	if (!r && vm_config_validate(a->cfg, why)) {
		fprintf(stderr, "kvmini: error: %s: %s\n", a->path, why);
		r = -EINVAL;
	}
	vm_config_free(a->cfg);
	return r;
}

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		int line;           /* 0: no line number (the file as a whole) */
		const char *says;
	} cases[] = {
		{ "kernel = /k\ncpus = 0\n", 2, "cpus = 0: must be between 1 and 254" },
		{ "kernel = /k\nbogus = 1\n", 2, "unknown key 'bogus'" },
		{ "kernel = /k\ncpus = 2\ncpus = 3\n", 3, "cpus given twice (first on line 2)" },
		{ "kernel = /k\n[disk]\n", 2, "[disk] needs path = FILE" },
		{ "kernel = /k\n[disk]\n[disk]\npath = x\n", 2, "[disk] needs path" },
		{ "kernel = /k\n[disk]\npath = a\ncpus = 2\n", 4, "VM settings go before" },
		{ "kernel = /k\n[disk]\npath = a\nformat = vmdk\n", 4, "format" },
		{ "kernel = /k\n[disk]\npath = a\npath = b\n", 4, "path given twice" },
		{ "kernel = /k\n[disk]\npath = a\nqueues = 64\n", 4, "queues" },
		{ "kernel = /k\n[vm]\n", 2, "unknown section [vm]" },
		{ "kernel = /k\n[disk] extra\n", 2, "text after the section header" },
		{ "kernel = /k\n[disk\n", 2, "expected 'key = value'" },
		{ "kernel = /k\njust words\n", 2, "expected 'key = value'" },
		{ "kernel = /k\n[net]\nuser = on\nrestrict = on\nhostfwd = tcp::99999-:22\n", 5,
		  "bad host port" },
		{ "kernel = /k\n[net]\nuser = on\nbogus = 1\n", 4, "unknown key 'bogus'" },
		{ "kernel = /k\n[net]\nnet = 10.0.0.0/24\n", 2, "needs user = on or tap = NAME" },
		{ "kernel = /k\n[net]\nuser = off\n", 3, "expected user = on" },
		{ "kernel = /k\n[net]\nuser = on\ntap = t\n", 4, "two of user and tap" },
		{ "kernel = /k\n[net]\nuser = on\ndns = 1.2.3.4,5\n", 4, "comma" },
		{ "kernel = /k\n[net]\nuser = on\n[net]\nuser = on\nmac = 01:02:03:04:05:06\n", 6,
		  "multicast" },
		{ "kernel = /k\nmemory = 9M,hugepages=on\n", 2, "multiple of 2M" },
		{ "kernel = /k\nno-reboot = yes\n", 2, "expected on or off" },
		{ "kernel = /k\nverbose = 3\n", 2, "verbose = 3" },
		{ "kernel =\n", 1, "empty path" },
		{ "kernel = /k\ndisk = a\n", 2, "[disk], then its keys" },
		{ "cpus = 2\n", 0, "--kernel is required" },
		{ "kernel = /k\n[net]\ntap = t0\n[net]\ntap = t0\n", 0, "given to two NICs" },
		{ "kernel = /k\n\001\002 = 3\nx\n", 2, "unknown key" },
	};
	const char *f = path_in("bad.conf");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(f, cases[i].text);
		struct vm_config c;
		struct load_arg a = { f, &c };
		char err[2048], where[300];
		int r = capture_stderr(load_validate, &a, err, sizeof(err));
		if (cases[i].line)
			snprintf(where, sizeof(where), "%s:%d: ", f, cases[i].line);
		else
			snprintf(where, sizeof(where), "%s: ", f);
		char *nl = strchr(err, '\n');
		if (r != -EINVAL || !strstr(err, where) || !strstr(err, cases[i].says) || !nl ||
		    nl[1])
			fail_msg("case %zu (%s): result %d, stderr '%s'; expected '%s...%s' in one line",
				 i, cases[i].text, r, err, where, cases[i].says);
	}

	/* A line too long, a NUL byte, a directory, a file that is not there. */
	char *big = malloc(CONFIG_LINE_MAX + 64);
	memset(big, 'a', CONFIG_LINE_MAX + 10);
	memcpy(big, "cmdline = ", 10);
	strcpy(big + CONFIG_LINE_MAX + 10, "\n");
	write_file(f, big);
	free(big);
	struct vm_config c;
	assert_int_equal(load(&c, f), -EINVAL);
	vm_config_free(&c);
	int fd = open(f, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "kernel = /k\0x\n", 14), 14);
	close(fd);
	assert_int_equal(load(&c, f), -EINVAL);
	vm_config_free(&c);
	assert_int_equal(load(&c, dir), -EINVAL);
	vm_config_free(&c);
	assert_int_equal(load(&c, path_in("missing.conf")), -EINVAL);
	vm_config_free(&c);
}

/* ---- kvmini config show / edit ------------------------------------------- */

struct cmd_arg {
	const char **argv;
	const char *out;        /* stdout goes here */
	const char *in;         /* stdin comes from here (NULL: /dev/null) */
};

static int run_cmd(void *p)
{
	struct cmd_arg *a = p;
	int argc = 0;
	while (a->argv[argc])
		argc++;
	fflush(stdout);
	int saved_out = dup(1), saved_in = dup(0);
	int out = open(a->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int in = open(a->in ? a->in : "/dev/null", O_RDONLY);
	assert_true(out >= 0 && in >= 0);
	dup2(out, 1);
	dup2(in, 0);
	clearerr(stdin);
	int r = cmd_config(argc, (char **)a->argv);
	fflush(stdout);
	dup2(saved_out, 1);
	dup2(saved_in, 0);
	clearerr(stdin);
	close(saved_out);
	close(saved_in);
	close(out);
	close(in);
	return r;
}

static void test_show_command(void **state)
{
	const char *f = path_in("vm.conf"), *o1 = path_in("o1"), *o2 = path_in("o2");
	write_file(f, "kernel = vmlinuz\n[disk]\npath = d.img\n");
	char err[1024];
	const char *show1[] = { "config", "show", f, NULL };
	struct cmd_arg a = { show1, o1, NULL };
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), 0);
	char *text = read_text(o1);
	assert_non_null(strstr(text, "cpus = 1\n"));          /* defaults filled in */
	assert_non_null(strstr(text, "[disk]\npath = "));
	/* The show of a show is the same text. */
	const char *o1conf = path_in("o1.conf");
	write_file(o1conf, text);
	const char *show2[] = { "config", "show", o1conf, NULL };
	a = (struct cmd_arg){ show2, o2, NULL };
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), 0);
	assert_string_equal(read_text(o2), text);

	/* A command line as a definition: the same text as the file's. */
	char kpath[300], dpath[300];
	snprintf(kpath, sizeof(kpath), "--kernel=%s", path_in("vmlinuz"));
	snprintf(dpath, sizeof(dpath), "path=%s", path_in("d.img"));
	const char *flags[] = { "config", "show", "--", kpath, "--disk", dpath, NULL };
	a = (struct cmd_arg){ flags, o2, NULL };
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), 0);
	assert_string_equal(read_text(o2), text);

	const char *bad[] = { "config", "show", path_in("nope.conf"), NULL };
	a = (struct cmd_arg){ bad, o2, NULL };
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), EXIT_USAGE);
	assert_non_null(strstr(err, "nope.conf: cannot open"));
	const char *usage[] = { "config", "frob", NULL };
	a = (struct cmd_arg){ usage, o2, NULL };
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), EXIT_USAGE);
}

/* $EDITOR is a script: each run copies the next prepared text over the
 * file it is given (edit1, edit2, ...), counting in a file. */
static void set_editor(const char *texts[])
{
	char name[32];
	for (int i = 1; i < 10; i++) {
		snprintf(name, sizeof(name), "edit%d", i);
		unlink(path_in(name));
	}
	for (int i = 0; texts[i]; i++) {
		snprintf(name, sizeof(name), "edit%d", i + 1);
		write_file(path_in(name), texts[i]);
	}
	char script[1024];
	snprintf(script, sizeof(script),
		 "#!/bin/sh\nd='%s'\nn=$(cat \"$d/count\" 2>/dev/null || echo 0)\nn=$((n+1))\n"
		 "echo $n > \"$d/count\"\n[ -f \"$d/edit$n\" ] || exit 3\ncp \"$d/edit$n\" \"$1\"\n",
		 dir);
	const char *ed = path_in("editor.sh");
	write_file(ed, script);
	chmod(ed, 0755);
	unlink(path_in("count"));
	setenv("VISUAL", ed, 1);
}

static void test_edit(void **state)
{
	const char *f = path_in("edit.conf"), *out = path_in("edit.out"), *in = path_in("answers");
	const char *orig = "# my VM\nkernel = /k\ncpus = 2\n";
	const char *good = "# my VM\nkernel = /k\ncpus = 4\n[disk]\npath = vm.img\n";
	const char *broken = "# my VM\nkernel = /k\ncpus = lots\n";
	const char *edit[] = { "config", "edit", f, NULL };
	char err[2048];
	struct cmd_arg a = { edit, out, in };
	setenv("TMPDIR", dir, 1);

	/* A broken edit, no second try: the original stays, the edit is kept. */
	write_file(f, orig);
	chmod(f, 0640);
	write_file(in, "n\n");
	set_editor((const char *[]){ broken, NULL });
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), EXIT_USAGE);
	assert_string_equal(read_text(f), orig);
	assert_non_null(strstr(err, "edit.conf (edited):3: cpus = lots: not a number"));
	assert_non_null(strstr(err, "edit again?"));
	assert_non_null(strstr(err, "is unchanged"));

	/* Broken, try again, then good: saved, with the file's mode. */
	write_file(in, "y\n");
	set_editor((const char *[]){ broken, good, NULL });
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), 0);
	assert_string_equal(read_text(f), good);
	assert_string_equal(read_text(path_in("count")), "2\n");
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* Relative paths in the edit meant the file's directory. */
	struct vm_config c;
	assert_int_equal(load(&c, f), 0);
	assert_string_equal(c.disks[0].block.path, path_in("vm.img"));
	vm_config_free(&c);

	/* No change: nothing written. An editor that fails: nothing written. */
	set_editor((const char *[]){ good, NULL });
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "unchanged"));
	set_editor((const char *[]){ NULL });
	assert_int_equal(capture_stderr(run_cmd, &a, err, sizeof(err)), EXIT_FAILURE_VM);
	assert_string_equal(read_text(f), good);
	/* No temporary file is left beside the definition. */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q 'edit.conf.kvmini-'", dir);
	assert_int_not_equal(system(cmd), 0);
	unsetenv("VISUAL");
	unsetenv("TMPDIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_every_flag_has_a_key),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_flags_round_trip),
		cmocka_unit_test(test_config_and_flags),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_show_command),
		cmocka_unit_test(test_edit),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
