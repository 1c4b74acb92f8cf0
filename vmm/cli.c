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
	      "                  [--cpus N] [--memory SIZE[,hugepages=on]]\n"
	      "                  [--console stdio|file=PATH|none] [--no-reboot] [--trace-exits]\n"
	      "                  [--debug-exit] [--verbose]\n"
	      "\n"
	      "  --kernel PATH     Linux bzImage or ELF vmlinux with a PVH note\n"
	      "  --initrd PATH     initial ramdisk\n"
	      "  --cmdline STRING  kernel command line (default \"" CONFIG_DEFAULT_CMDLINE "\")\n"
	      "  --cpus N          number of vCPUs (default 1)\n"
	      "  --memory SIZE     guest RAM, K/M/G/T suffixes (default 512M)\n"
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
		else
			return bad("--memory", arg, "unknown option (only hugepages=on|off)");
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

int cli_parse_run(int argc, char **argv, struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->mem_size = CONFIG_DEFAULT_MEM;
	cfg->console = CONSOLE_STDIO;
	int verbose = 0;

	optind = 1;
	opterr = 0; /* we print our own one-line errors */
	int c;
	while ((c = getopt_long(argc, argv, ":vh", run_options, NULL)) != -1) {
		const char *a = optarg;
		int r = 0;
		switch (c) {
		case OPT_KERNEL: cfg->kernel = a; break;
		case OPT_INITRD: cfg->initrd = a; break;
		case OPT_CMDLINE: cfg->cmdline = a; break;
		case OPT_CPUS: r = parse_cpus(a, &cfg->cpus); break;
		case OPT_MEMORY: r = parse_memory(a, cfg); break;
		case OPT_CONSOLE: r = parse_console(a, cfg); break;
		case OPT_NO_REBOOT: cfg->no_reboot = true; break;
		case OPT_TRACE_EXITS: cfg->trace_exits = true; break;
		case OPT_DEBUG_EXIT: cfg->debug_exit = true; break;
		case 'v': verbose++; break;
		case 'h':
		case OPT_HELP:
			cli_run_usage(stdout);
			return 1;
		case OPT_DISK: case OPT_NET: case OPT_CONFIG: case OPT_API_SOCKET:
			log_err("%s: not supported by this version of kvmini yet", argv[optind - 1]);
			return -EINVAL;
		case ':':
			log_err("option %s needs a value (see kvmini run --help)", argv[optind - 1]);
			return -EINVAL;
		default:
			log_err("unknown option %s (see kvmini run --help)", argv[optind - 1]);
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
