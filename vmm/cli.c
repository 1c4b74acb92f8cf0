/* `kvmini run` option parsing. Every mistake is reported as one line naming
 * the option and the value; the caller turns it into exit status 2. */
#include "vmm/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

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

void cli_run_usage(FILE *f)
{
	fputs("usage: kvmini run --kernel PATH [--initrd PATH] [--cmdline STRING]\n"
	      "                  [--cpus N] [--memory SIZE[,hugepages=on][,thp=off]]\n"
	      "                  [--disk path=FILE[,format=auto|raw|qcow2][,readonly=on]\n"
	      "                          [,cache=none|writeback][,lock=on|off][,serial=STR]\n"
	      "                          [,queues=N][,iothread=queue|disk][,l2-cache=SIZE]]...\n"
	      "                  [--net user[,net=CIDR][,host=IP][,dns=IP][,dhcpstart=IP]\n"
	      "                         [,hostfwd=tcp|udp:[HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT]...\n"
	      "                         [,restrict=on|off][,ipv6=on|off][,mac=MAC]]...\n"
	      "                  [--net tap=NAME[,bridge=BRIDGE][,mac=MAC][,queues=N]]...\n"
	      "                  [--console stdio|file=PATH|none] [--no-reboot] [--trace-exits]\n"
	      "                  [--debug-exit] [--verbose]\n"
	      "\n"
	      "  --kernel PATH     Linux bzImage or ELF vmlinux with a PVH note\n"
	      "  --initrd PATH     initial ramdisk\n"
	      "  --cmdline STRING  kernel command line (default \"" CONFIG_DEFAULT_CMDLINE "\")\n"
	      "  --cpus N          number of vCPUs (default 1)\n"
	      "  --memory SIZE     guest RAM, K/M/G/T suffixes (default 512M); hugepages=on:\n"
	      "                    2 MiB huge pages; thp=off: no transparent huge pages\n"
	      "  --disk ...        a virtio-blk disk (repeatable: /dev/vda, /dev/vdb, ...)\n"
	      "  --net ...         a virtio-net NIC (repeatable: eth0, eth1, ...): user is NAT\n"
	      "                    through libslirp, tap a TAP device (created if missing)\n"
	      "  --console MODE    stdio (raw terminal; Ctrl-A x quits, Ctrl-A h helps),\n"
	      "                    file=PATH or none (default stdio)\n"
	      "  --no-reboot       exit (status 0) when the guest reboots\n"
	      "  --trace-exits     print VM exits per reason and per device at the end\n"
	      "  --debug-exit      port 0xf4: a guest write of V ends kvmini with status V\n"
	      "  --verbose, -v     more messages (repeat for debug)\n",
	      f);
}

static int bad(const char *opt, const char *value, const char *why)
{
	log_err("%s %s: %s", opt, value ? value : "", why);
	return -EINVAL;
}

static int parse_cpus(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end || errno)
		return bad("--cpus", s, "not a number");
	if (v < 1 || v > CLI_MAX_CPUS)
		return bad("--cpus", s, "must be between 1 and 254");
	*out = (unsigned)v;
	return 0;
}

static int parse_memory(const char *arg, struct vm_config *cfg)
{
	char buf[256];
	if (strlen(arg) >= sizeof(buf))
		return bad("--memory", arg, "too long");
	strcpy(buf, arg);
	char *opts = strchr(buf, ',');
	if (opts)
		*opts++ = '\0';
	int r = parse_size(buf, &cfg->mem_size);
	if (r)
		return bad("--memory", arg, r == -ERANGE ? "too large" : "not a size (e.g. 512M, 2G)");
	while (opts && *opts) {
		char *next = strchr(opts, ',');
		if (next)
			*next++ = '\0';
		if (strcmp(opts, "hugepages=on") == 0)
			cfg->hugepages = true;
		else if (strcmp(opts, "hugepages=off") == 0)
			cfg->hugepages = false;
		else if (strcmp(opts, "thp=on") == 0)
			cfg->thp = true;
		else if (strcmp(opts, "thp=off") == 0)
			cfg->thp = false;
		else
			return bad("--memory", arg, "unknown option (only hugepages=on|off, thp=on|off)");
		opts = next;
	}
	if (cfg->mem_size < CLI_MIN_MEM)
		return bad("--memory", arg, "must be at least 8M");
	if (cfg->mem_size > CLI_MAX_MEM)
		return bad("--memory", arg, "must be at most 1T");
	uint64_t align = cfg->hugepages ? (2ULL << 20) : 4096;
	if (cfg->mem_size % align)
		return bad("--memory", arg, cfg->hugepages ? "must be a multiple of 2M with hugepages"
							  : "must be a multiple of 4K");
	return 0;
}

static int parse_console(const char *arg, struct vm_config *cfg)
{
	if (strcmp(arg, "stdio") == 0)
		cfg->console = CONSOLE_STDIO;
	else if (strcmp(arg, "none") == 0)
		cfg->console = CONSOLE_NONE;
	else if (strncmp(arg, "file=", 5) == 0 && arg[5]) {
		cfg->console = CONSOLE_FILE;
		cfg->console_path = arg + 5;
	} else
		return bad("--console", arg, "expected stdio, file=PATH or none");
	return 0;
}

/* path=FILE[,format=auto|raw|qcow2][,readonly=on|off][,cache=none|writeback]
 * [,lock=on|off][,serial=STR][,queues=N][,iothread=queue|disk][,l2-cache=SIZE]. The value is
 * copied, so the config does not point into a buffer we modify. */
static bool is_disk_key(const char *k)
{
	static const char *const keys[] = { "path",   "format", "readonly", "lock",    "cache",
					    "serial", "queues", "iothread", "l2-cache" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(k, keys[i]))
			return true;
	return false;
}

static bool parse_queues(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end || errno || v < 1 || v > DISK_MAX_QUEUES)
		return false;
	*out = (unsigned)v;
	return true;
}

static int parse_disk(const char *arg, struct vm_config *cfg)
{
	if (cfg->ndisks == CONFIG_MAX_DISKS)
		return bad("--disk", arg, "too many disks (at most 16)");
	struct disk_config *d = &cfg->disks[cfg->ndisks];
	memset(d, 0, sizeof(*d));
	d->block.format = BLOCK_FMT_AUTO;
	d->block.cache = BLOCK_CACHE_WRITEBACK;
	d->block.lock = true;
	char *copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	int r = 0;
	for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv && !r;
	     kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			r = bad("--disk", arg, "expected key=value pairs (path=FILE,...)");
			break;
		}
		*v++ = '\0';
		bool on = !strcmp(v, "on"), off = !strcmp(v, "off");
		if (!strcmp(kv, "path") && *v) {
			/* Given twice, the last one counts: drop the earlier copy. */
			free((char *)d->block.path);
			d->block.path = strdup(v);
			if (!d->block.path)
				r = -ENOMEM;
		} else if (!strcmp(kv, "format") && !strcmp(v, "auto")) {
			d->block.format = BLOCK_FMT_AUTO;
		} else if (!strcmp(kv, "l2-cache") && parse_size(v, &d->block.l2_cache) == 0 &&
			   d->block.l2_cache >= 4096 && d->block.l2_cache <= (1ull << 31)) {
			/* qcow2 L2 cache bytes (4K..2G); raw ignores it */
		} else if (!strcmp(kv, "format") && !strcmp(v, "raw")) {
			d->block.format = BLOCK_FMT_RAW;
		} else if (!strcmp(kv, "format") && !strcmp(v, "qcow2")) {
			d->block.format = BLOCK_FMT_QCOW2;
		} else if (!strcmp(kv, "readonly") && (on || off)) {
			d->block.readonly = on;
		} else if (!strcmp(kv, "lock") && (on || off)) {
			d->block.lock = on;
		} else if (!strcmp(kv, "cache") && !strcmp(v, "none")) {
			d->block.cache = BLOCK_CACHE_NONE;
		} else if (!strcmp(kv, "cache") && !strcmp(v, "writeback")) {
			d->block.cache = BLOCK_CACHE_WRITEBACK;
		} else if (!strcmp(kv, "serial") && strlen(v) <= DISK_SERIAL_MAX) {
			strcpy(d->serial, v);
		} else if (!strcmp(kv, "queues") && parse_queues(v, &d->queues)) {
			/* parse_queues stored it */
		} else if (!strcmp(kv, "iothread") && !strcmp(v, "queue")) {
			d->iothread = DISK_IOTHREAD_QUEUE;
		} else if (!strcmp(kv, "iothread") && !strcmp(v, "disk")) {
			d->iothread = DISK_IOTHREAD_DISK;
		} else {
			static __thread char why[96];
			if (!strcmp(kv, "serial"))
				snprintf(why, sizeof(why), "serial is at most %d characters", DISK_SERIAL_MAX);
			else if (!strcmp(kv, "queues"))
				snprintf(why, sizeof(why), "queues must be between 1 and %d", DISK_MAX_QUEUES);
			else if (!strcmp(kv, "path"))
				snprintf(why, sizeof(why), "empty path");
			else if (!strcmp(kv, "l2-cache"))
				snprintf(why, sizeof(why), "l2-cache must be a size from 4K to 2G");
			else if (is_disk_key(kv))
				snprintf(why, sizeof(why), "bad value '%s' for %s", v, kv);
			else
				snprintf(why, sizeof(why), "unknown key '%s'", kv);
			r = bad("--disk", arg, why);
		}
	}
	free(copy);
	if (!r && !d->block.path)
		r = bad("--disk", arg, "path=FILE is required");
	if (r) {
		/* A refused disk is not counted, so nobody else would free it. */
		free((char *)d->block.path);
		d->block.path = NULL;
		return r;
	}
	cfg->ndisks++;
	return 0;
}

/* One --net option; net_config_parse reports its own mistakes. What it
 * cannot see is the other NICs: two on one TAP, or two with one MAC. */
static int parse_net(const char *arg, struct vm_config *cfg)
{
	if (cfg->nnics == CONFIG_MAX_NICS) {
		log_err("--net: too many NICs (at most %d)", CONFIG_MAX_NICS);
		return -EINVAL;
	}
	struct net_config *n = &cfg->nics[cfg->nnics];
	int r = net_config_parse(n, arg);
	if (r)
		return r;
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct net_config *o = &cfg->nics[i];
		if (n->kind == NET_TAP && o->kind == NET_TAP && !strcmp(n->ifname, o->ifname)) {
			log_err("--net: tap=%s is given to two NICs (one --net per TAP)", n->ifname);
			return -EINVAL;
		}
		if (!memcmp(n->mac, o->mac, 6)) {
			char m[18];
			net_mac_format(n->mac, m);
			log_err("--net: mac=%s is given to two NICs", m);
			return -EINVAL;
		}
	}
	cfg->nnics++;
	return 0;
}

enum {
	OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_CONSOLE,
	OPT_NO_REBOOT, OPT_TRACE_EXITS, OPT_DEBUG_EXIT, OPT_DISK, OPT_NET, OPT_CONFIG,
	OPT_API_SOCKET, OPT_HELP,
};

static const struct option run_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
	{ "trace-exits", no_argument, NULL, OPT_TRACE_EXITS },
	{ "debug-exit", no_argument, NULL, OPT_DEBUG_EXIT },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "api-socket", required_argument, NULL, OPT_API_SOCKET },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* The option getopt just complained about, as the user typed it. For a long
 * option that is argv[optind - 1] up to any '='; for a short one, optopt. */
static const char *option_name(char **argv)
{
	static __thread char name[64];
	if (optopt && optopt < 256) {
		snprintf(name, sizeof(name), "-%c", optopt);
		return name;
	}
	for (const struct option *o = run_options; o->name; o++)
		if (o->val == optopt) {
			snprintf(name, sizeof(name), "--%s", o->name);
			return name;
		}
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
	return name;
}

static const char *unknown_option(char **argv, int opt)
{
	static __thread char msg[128];
	const char *arg = argv[optind - 1];
	if (opt && opt < 256) {
		snprintf(msg, sizeof(msg), "unknown option -%c", opt);
	} else if (opt) {
		/* A known long option given a value it does not take. */
		for (const struct option *o = run_options; o->name; o++)
			if (o->val == opt)
				snprintf(msg, sizeof(msg), "option --%s takes no value", o->name);
	} else {
		snprintf(msg, sizeof(msg), "unknown option %.*s", (int)strcspn(arg, "="), arg);
	}
	return msg;
}

int cli_parse_run(int argc, char **argv, struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->mem_size = CONFIG_DEFAULT_MEM;
	cfg->thp = true;
	cfg->console = CONSOLE_STDIO;
	int verbose = 0;

	optind = 0; /* 0, not 1: also resets glibc's state inside short-option groups */
	opterr = 0; /* we print our own one-line errors */
	int c, longindex;
	while ((longindex = -1, c = getopt_long(argc, argv, ":vh", run_options, &longindex)) != -1) {
		const char *a = optarg;
		int r = 0;
		switch (c) {
		case OPT_KERNEL: cfg->kernel = a; break;
		case OPT_INITRD: cfg->initrd = a; break;
		case OPT_CMDLINE: cfg->cmdline = a; break;
		case OPT_CPUS: r = parse_cpus(a, &cfg->cpus); break;
		case OPT_MEMORY: r = parse_memory(a, cfg); break;
		case OPT_CONSOLE: r = parse_console(a, cfg); break;
		case OPT_DISK: r = parse_disk(a, cfg); break;
		case OPT_NET: r = parse_net(a, cfg); break;
		case OPT_NO_REBOOT: cfg->no_reboot = true; break;
		case OPT_TRACE_EXITS: cfg->trace_exits = true; break;
		case OPT_DEBUG_EXIT: cfg->debug_exit = true; break;
		case 'v': verbose++; break;
		case 'h':
		case OPT_HELP:
			cli_run_usage(stdout);
			return 1;
		case OPT_CONFIG: case OPT_API_SOCKET:
			log_err("--%s: not supported by this version of kvmini yet",
				run_options[longindex].name);
			return -EINVAL;
		case ':':
			log_err("option %s needs a value (see kvmini run --help)", option_name(argv));
			return -EINVAL;
		default:
			log_err("%s (see kvmini run --help)", unknown_option(argv, optopt));
			return -EINVAL;
		}
		if (r)
			return r;
	}
	if (optind < argc) {
		log_err("unexpected argument '%s' (see kvmini run --help)", argv[optind]);
		return -EINVAL;
	}
	if (!cfg->kernel) {
		log_err("--kernel is required (see kvmini run --help)");
		return -EINVAL;
	}
	if (verbose)
		log_set_level(verbose > 1 ? LOG_DEBUG : LOG_INFO);
	return 0;
}
