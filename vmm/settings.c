/* The settings tables (vmm/settings.h): each VM and disk setting once,
 * with its check, its default (vm_config_init, disk_config_init) and its
 * printed form. Values are untrusted text from a command line or a file. */
#include "vmm/settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cli.h"

static int why_fmt(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why_fmt(char *why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, SETTING_WHY_MAX, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

void format_size(uint64_t bytes, char *buf, size_t n)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, n, "%llu", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%llu%c", (unsigned long long)bytes, units[u]);
}

char *setting_path(const char *path, const char *base)
{
	if (path[0] == '/' || !base)
		return strdup(path);
	size_t n = strlen(base) + strlen(path) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", path);
	return p;
}

/* A string the config will own: no line breaks (a definition could not
 * hold them, and no path or command line needs one). */
static int set_string(char **field, const char *v, bool path, const struct setting_src *src,
		      char *why)
{
	if (path && !*v)
		return why_fmt(why, "empty path");
	if (strpbrk(v, "\n\r"))
		return why_fmt(why, "contains a line break");
	if (strlen(v) > CONFIG_LINE_MAX - 32)
		return why_fmt(why, "longer than %d characters", CONFIG_LINE_MAX - 32);
	char *s = path ? setting_path(v, src ? src->base_dir : NULL) : strdup(v);
	if (!s)
		return why_fmt(why, "out of memory");
	free(*field);
	*field = s;
	return 0;
}

static int set_onoff(bool *field, const char *v, char *why)
{
	if (!strcmp(v, "on"))
		*field = true;
	else if (!strcmp(v, "off"))
		*field = false;
	else
		return why_fmt(why, "expected on or off");
	return 0;
}

bool parse_decimal(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s || strlen(s) > 10)
		return false;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	unsigned long v = strtoul(s, NULL, 10);
	if (v > max)
		return false;
	*out = v;
	return true;
}

static const char *onoff(bool b)
{
	return b ? "on" : "off";
}

/* ---- VM settings --------------------------------------------------------- */

static int set_kernel(struct vm_config *c, const char *v, const struct setting_src *s, char *why)
{
	return set_string(&c->kernel, v, true, s, why);
}

static void show_kernel(const struct vm_config *c, FILE *f)
{
	if (c->kernel)
		fprintf(f, "kernel = %s\n", c->kernel);
}

static int set_initrd(struct vm_config *c, const char *v, const struct setting_src *s, char *why)
{
	return set_string(&c->initrd, v, true, s, why);
}

static void show_initrd(const struct vm_config *c, FILE *f)
{
	if (c->initrd)
		fprintf(f, "initrd = %s\n", c->initrd);
}

static int set_cmdline(struct vm_config *c, const char *v, const struct setting_src *s, char *why)
{
	return set_string(&c->cmdline, v, false, s, why);
}

static void show_cmdline(const struct vm_config *c, FILE *f)
{
	fprintf(f, "cmdline = %s\n", c->cmdline ? c->cmdline : CONFIG_DEFAULT_CMDLINE);
}

static int set_cpus(struct vm_config *c, const char *v, const struct setting_src *s, char *why)
{
	(void)s;
	unsigned long n;
	if (!parse_decimal(v, 99999, &n))
		return why_fmt(why, "not a number");
	if (n < 1 || n > CLI_MAX_CPUS)
		return why_fmt(why, "must be between 1 and %d", CLI_MAX_CPUS);
	c->cpus = (unsigned)n;
	return 0;
}

static void show_cpus(const struct vm_config *c, FILE *f)
{
	fprintf(f, "cpus = %u\n", c->cpus);
}

/* SIZE[,hugepages=on|off][,thp=on|off]; checked as a whole, so the
 * alignment rule sees the page size the same value chose. */
static int set_memory(struct vm_config *c, const char *v, const struct setting_src *s, char *why)
{
	(void)s;
	char buf[256];
	if (strlen(v) >= sizeof(buf))
		return why_fmt(why, "too long");
	strcpy(buf, v);
	char *opts = strchr(buf, ',');
	if (opts)
		*opts++ = '\0';
	uint64_t size;
	int r = parse_size(buf, &size);
	if (r)
		return why_fmt(why, r == -ERANGE ? "too large" : "not a size (e.g. 512M, 2G)");
	bool huge = false, thp = true;
	while (opts && *opts) {
		char *next = strchr(opts, ',');
		if (next)
			*next++ = '\0';
		if (!strcmp(opts, "hugepages=on") || !strcmp(opts, "hugepages=off"))
			huge = !strcmp(opts, "hugepages=on");
		else if (!strcmp(opts, "thp=on") || !strcmp(opts, "thp=off"))
			thp = !strcmp(opts, "thp=on");
		else
			return why_fmt(why, "unknown option (only hugepages=on|off, thp=on|off)");
		opts = next;
	}
	if (size < CLI_MIN_MEM)
		return why_fmt(why, "must be at least 8M");
	if (size > CLI_MAX_MEM)
		return why_fmt(why, "must be at most 1T");
	uint64_t align = huge ? (2ULL << 20) : 4096;
	if (size % align)
		return why_fmt(why, huge ? "must be a multiple of 2M with hugepages"
					 : "must be a multiple of 4K");
	c->mem_size = size;
	c->hugepages = huge;
	c->thp = thp;
	return 0;
}

static void show_memory(const struct vm_config *c, FILE *f)
{
	char sz[32];
	format_size(c->mem_size, sz, sizeof(sz));
	fprintf(f, "memory = %s%s%s\n", sz, c->hugepages ? ",hugepages=on" : "",
		c->thp ? "" : ",thp=off");
}

static int set_console(struct vm_config *c, const char *v, const struct setting_src *s,
		       char *why)
{
	if (!strcmp(v, "stdio") || !strcmp(v, "none")) {
		c->console = !strcmp(v, "stdio") ? CONSOLE_STDIO : CONSOLE_NONE;
		free(c->console_path);
		c->console_path = NULL;
		return 0;
	}
	if (strncmp(v, "file=", 5) || !v[5])
		return why_fmt(why, "expected stdio, file=PATH or none");
	int r = set_string(&c->console_path, v + 5, true, s, why);
	if (!r)
		c->console = CONSOLE_FILE;
	return r;
}

static void show_console(const struct vm_config *c, FILE *f)
{
	if (c->console == CONSOLE_FILE)
		fprintf(f, "console = file=%s\n", c->console_path);
	else
		fprintf(f, "console = %s\n", c->console == CONSOLE_NONE ? "none" : "stdio");
}

#define BOOL_SETTING(name, key, field)                                                     \
	static int set_##name(struct vm_config *c, const char *v, const struct setting_src *s, \
			      char *why)                                                     \
	{                                                                                    \
		(void)s;                                                                     \
		return set_onoff(&c->field, v, why);                                         \
	}                                                                                    \
	static void show_##name(const struct vm_config *c, FILE *f)                           \
	{                                                                                    \
		fprintf(f, key " = %s\n", onoff(c->field));                                  \
	}
BOOL_SETTING(no_reboot, "no-reboot", no_reboot)
BOOL_SETTING(trace_exits, "trace-exits", trace_exits)
BOOL_SETTING(debug_exit, "debug-exit", debug_exit)

static int set_verbose(struct vm_config *c, const char *v, const struct setting_src *s,
		       char *why)
{
	(void)s;
	unsigned long n;
	if (!parse_decimal(v, 2, &n))
		return why_fmt(why, "expected 0, 1 (info) or 2 (debug)");
	c->verbose = (unsigned)n;
	return 0;
}

static void show_verbose(const struct vm_config *c, FILE *f)
{
	fprintf(f, "verbose = %u\n", c->verbose);
}

static int set_api_socket(struct vm_config *c, const char *v, const struct setting_src *s,
			  char *why)
{
	return set_string(&c->api_socket, v, true, s, why);
}

static void show_api_socket(const struct vm_config *c, FILE *f)
{
	if (c->api_socket)
		fprintf(f, "api-socket = %s\n", c->api_socket);
}

const struct vm_setting vm_settings[] = {
	{ "kernel", "PATH", "Linux bzImage or ELF vmlinux with a PVH note (required)", 0,
	  set_kernel, show_kernel },
	{ "initrd", "PATH", "initial ramdisk", 0, set_initrd, show_initrd },
	{ "cmdline", "STRING", "kernel command line (default \"" CONFIG_DEFAULT_CMDLINE "\")", 0,
	  set_cmdline, show_cmdline },
	{ "cpus", "N", "number of vCPUs, 1 to 254 (default 1)", 0, set_cpus, show_cpus },
	{ "memory", "SIZE[,hugepages=on][,thp=off]",
	  "guest RAM, K/M/G/T suffixes (default 512M); hugepages=on: 2 MiB huge pages;\n"
	  "thp=off: no transparent huge pages", 0, set_memory, show_memory },
	{ "console", "stdio|file=PATH|none",
	  "serial console: stdio (raw terminal; Ctrl-A x quits, Ctrl-A h helps),\n"
	  "a file, or none (default stdio)", 0, set_console, show_console },
	{ "no-reboot", NULL, "exit (status 0) when the guest reboots", SETTING_NOARG,
	  set_no_reboot, show_no_reboot },
	{ "trace-exits", NULL, "print VM exits per reason and per device at the end",
	  SETTING_NOARG, set_trace_exits, show_trace_exits },
	{ "debug-exit", NULL, "port 0xf4: a guest write of V ends kvmini with status V",
	  SETTING_NOARG, set_debug_exit, show_debug_exit },
	{ "verbose", NULL, "more messages (repeat for debug; in a file: 0, 1 or 2)",
	  SETTING_COUNT, set_verbose, show_verbose },
	{ "api-socket", "PATH", "control socket for kvmini ctl (docs/control.md)", 0,
	  set_api_socket, show_api_socket },
};
const size_t vm_settings_count = sizeof(vm_settings) / sizeof(vm_settings[0]);

const struct vm_setting *vm_setting_find(const char *key)
{
	for (size_t i = 0; i < vm_settings_count; i++)
		if (!strcmp(vm_settings[i].key, key))
			return &vm_settings[i];
	return NULL;
}

/* ---- disk settings ------------------------------------------------------- */

static int dset_path(struct disk_config *d, const char *v, const struct setting_src *s,
		     char *why)
{
	char *p = (char *)d->block.path;
	int r = set_string(&p, v, true, s, why);
	d->block.path = p;
	return r;
}

static void dshow_path(const struct disk_config *d, FILE *f)
{
	if (d->block.path)
		fprintf(f, "path = %s\n", d->block.path);
}

static const char *const format_names[] = {
	[BLOCK_FMT_AUTO] = "auto", [BLOCK_FMT_RAW] = "raw", [BLOCK_FMT_QCOW2] = "qcow2",
};

static int dset_format(struct disk_config *d, const char *v, const struct setting_src *s,
		       char *why)
{
	(void)s;
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
		if (format_names[i] && !strcmp(v, format_names[i])) {
			d->block.format = (enum block_format)i;
			return 0;
		}
	return why_fmt(why, "bad value '%s' for format (auto, raw or qcow2)", v);
}

static void dshow_format(const struct disk_config *d, FILE *f)
{
	fprintf(f, "format = %s\n", format_names[d->block.format]);
}

static int dset_readonly(struct disk_config *d, const char *v, const struct setting_src *s,
			 char *why)
{
	(void)s;
	if (set_onoff(&d->block.readonly, v, why))
		return why_fmt(why, "bad value '%s' for readonly (on or off)", v);
	return 0;
}

static void dshow_readonly(const struct disk_config *d, FILE *f)
{
	fprintf(f, "readonly = %s\n", onoff(d->block.readonly));
}

static int dset_cache(struct disk_config *d, const char *v, const struct setting_src *s,
		      char *why)
{
	(void)s;
	if (!strcmp(v, "none"))
		d->block.cache = BLOCK_CACHE_NONE;
	else if (!strcmp(v, "writeback"))
		d->block.cache = BLOCK_CACHE_WRITEBACK;
	else
		return why_fmt(why, "bad value '%s' for cache (none or writeback)", v);
	return 0;
}

static void dshow_cache(const struct disk_config *d, FILE *f)
{
	fprintf(f, "cache = %s\n", d->block.cache == BLOCK_CACHE_NONE ? "none" : "writeback");
}

static int dset_lock(struct disk_config *d, const char *v, const struct setting_src *s,
		     char *why)
{
	(void)s;
	if (set_onoff(&d->block.lock, v, why))
		return why_fmt(why, "bad value '%s' for lock (on or off)", v);
	return 0;
}

static void dshow_lock(const struct disk_config *d, FILE *f)
{
	fprintf(f, "lock = %s\n", onoff(d->block.lock));
}

static int dset_serial(struct disk_config *d, const char *v, const struct setting_src *s,
		       char *why)
{
	(void)s;
	if (strlen(v) > DISK_SERIAL_MAX)
		return why_fmt(why, "serial is at most %d characters", DISK_SERIAL_MAX);
	for (const char *p = v; *p; p++)
		if (!isprint((unsigned char)*p))
			return why_fmt(why, "serial has a character that is not printable ASCII");
	strcpy(d->serial, v);
	return 0;
}

static void dshow_serial(const struct disk_config *d, FILE *f)
{
	if (d->serial[0])
		fprintf(f, "serial = %s\n", d->serial);
}

static int dset_queues(struct disk_config *d, const char *v, const struct setting_src *s,
		       char *why)
{
	(void)s;
	unsigned long n;
	if (!strcmp(v, "auto")) {
		d->queues = 0;
		return 0;
	}
	if (!parse_decimal(v, DISK_MAX_QUEUES, &n) || n < 1)
		return why_fmt(why, "queues must be between 1 and %d (or auto: one per vCPU)",
			       DISK_MAX_QUEUES);
	d->queues = (unsigned)n;
	return 0;
}

static void dshow_queues(const struct disk_config *d, FILE *f)
{
	if (d->queues)
		fprintf(f, "queues = %u\n", d->queues);
	else
		fputs("queues = auto\n", f);
}

static int dset_iothread(struct disk_config *d, const char *v, const struct setting_src *s,
			 char *why)
{
	(void)s;
	if (!strcmp(v, "queue"))
		d->iothread = DISK_IOTHREAD_QUEUE;
	else if (!strcmp(v, "disk"))
		d->iothread = DISK_IOTHREAD_DISK;
	else
		return why_fmt(why, "bad value '%s' for iothread (queue or disk)", v);
	return 0;
}

static void dshow_iothread(const struct disk_config *d, FILE *f)
{
	fprintf(f, "iothread = %s\n", d->iothread == DISK_IOTHREAD_DISK ? "disk" : "queue");
}

static int dset_l2_cache(struct disk_config *d, const char *v, const struct setting_src *s,
			 char *why)
{
	(void)s;
	uint64_t n;
	if (!strcmp(v, "auto")) {
		d->block.l2_cache = 0;
		return 0;
	}
	if (parse_size(v, &n) || n < 4096 || n > (1ull << 31))
		return why_fmt(why, "l2-cache must be a size from 4K to 2G (or auto)");
	d->block.l2_cache = n;
	return 0;
}

static void dshow_l2_cache(const struct disk_config *d, FILE *f)
{
	char sz[32] = "auto";
	if (d->block.l2_cache)
		format_size(d->block.l2_cache, sz, sizeof(sz));
	fprintf(f, "l2-cache = %s\n", sz);
}

const struct disk_setting disk_settings[] = {
	{ "path", "FILE", dset_path, dshow_path },
	{ "format", "auto|raw|qcow2", dset_format, dshow_format },
	{ "readonly", "on|off", dset_readonly, dshow_readonly },
	{ "cache", "none|writeback", dset_cache, dshow_cache },
	{ "lock", "on|off", dset_lock, dshow_lock },
	{ "serial", "STR", dset_serial, dshow_serial },
	{ "queues", "N|auto", dset_queues, dshow_queues },
	{ "iothread", "queue|disk", dset_iothread, dshow_iothread },
	{ "l2-cache", "SIZE|auto", dset_l2_cache, dshow_l2_cache },
};
const size_t disk_settings_count = sizeof(disk_settings) / sizeof(disk_settings[0]);

const struct disk_setting *disk_setting_find(const char *key)
{
	for (size_t i = 0; i < disk_settings_count; i++)
		if (!strcmp(disk_settings[i].key, key))
			return &disk_settings[i];
	return NULL;
}

void disk_config_init(struct disk_config *d)
{
	memset(d, 0, sizeof(*d));
	d->block.format = BLOCK_FMT_AUTO;
	d->block.cache = BLOCK_CACHE_WRITEBACK;
	d->block.lock = true;
	d->iothread = DISK_IOTHREAD_QUEUE;
}

void disk_config_free(struct disk_config *d)
{
	free((char *)d->block.path);
	d->block.path = NULL;
}

int disk_config_parse(struct disk_config *d, const char *text, const struct setting_src *src,
		      char *why)
{
	char *copy = strdup(text);
	if (!copy)
		return why_fmt(why, "out of memory");
	int r = 0;
	for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv && !r;
	     kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			r = why_fmt(why, "expected key=value pairs (path=FILE,...)");
			break;
		}
		*v++ = '\0';
		const struct disk_setting *s = disk_setting_find(kv);
		if (!s)
			r = why_fmt(why, "unknown key '%.64s'", kv);
		else
			r = s->set(d, v, src, why);
	}
	free(copy);
	if (!r && !d->block.path)
		r = why_fmt(why, "path=FILE is required");
	return r;
}

/* ---- the whole config ---------------------------------------------------- */

void vm_config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->mem_size = CONFIG_DEFAULT_MEM;
	c->thp = true;
	c->console = CONSOLE_STDIO;
}

void vm_config_free(struct vm_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->cmdline);
	free(c->console_path);
	free(c->api_socket);
	for (unsigned i = 0; i < c->ndisks && i < CONFIG_MAX_DISKS; i++)
		disk_config_free(&c->disks[i]);
	vm_config_init(c);
}

int vm_config_validate(const struct vm_config *c, char *why)
{
	if (!c->kernel)
		return why_fmt(why, "--kernel is required (kernel = PATH in a definition)");
	for (unsigned i = 0; i < c->ndisks; i++)
		if (!c->disks[i].block.path)
			return why_fmt(why, "disk %u has no path", i + 1);
	for (unsigned i = 0; i < c->nnics; i++) {
		const struct net_config *n = &c->nics[i];
		for (unsigned j = 0; j < i; j++) {
			const struct net_config *o = &c->nics[j];
			if (n->kind == NET_TAP && o->kind == NET_TAP && !strcmp(n->ifname, o->ifname))
				return why_fmt(why, "tap=%s is given to two NICs (one per TAP)",
					       n->ifname);
			if (!memcmp(n->mac, o->mac, 6)) {
				char m[18];
				net_mac_format(n->mac, m);
				return why_fmt(why, "mac=%s is given to two NICs", m);
			}
		}
	}
	return 0;
}

int vm_config_show(const struct vm_config *c, FILE *f, char *why)
{
	fputs("# kvmini VM definition (kvmini config show); docs/config.md\n", f);
	for (size_t i = 0; i < vm_settings_count; i++)
		vm_settings[i].show(c, f);
	for (unsigned i = 0; i < c->ndisks; i++) {
		fputs("\n[disk]\n", f);
		for (size_t k = 0; k < disk_settings_count; k++)
			disk_settings[k].show(&c->disks[i], f);
	}
	for (unsigned i = 0; i < c->nnics; i++) {
		fputs("\n[net]\n", f);
		net_config_show(&c->nics[i], f);
	}
	if (fflush(f) || ferror(f))
		return why_fmt(why, "cannot write the definition: %s", strerror(errno));
	return 0;
}
