/* `kvmini run` option parsing. The options are the settings tables of
 * vmm/settings.c, plus --disk, --net and --config. Every mistake is
 * reported as one line naming the option and the value; the caller turns
 * it into exit status 2. */
#include "vmm/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config_file.h"
#include "vmm/log.h"
#include "vmm/settings.h"

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
	      "                  [--debug-exit] [--verbose] [--config FILE] [--api-socket PATH]\n"
	      "\n",
	      f);
	for (size_t i = 0; i < vm_settings_count; i++) {
		const struct vm_setting *s = &vm_settings[i];
		char head[64];
		const char *mv = s->metavar && strlen(s->metavar) < 12 ? s->metavar : "";
		snprintf(head, sizeof(head), "--%s%s%s%s", s->key, *mv ? " " : "", mv,
			 s->flags & SETTING_COUNT ? ", -v" : "");
		/* Help texts may hold line breaks: indent each continuation. */
		fprintf(f, "  %-18s", head);
		for (const char *h = s->help; *h; h++) {
			fputc(*h, f);
			if (*h == '\n')
				fprintf(f, "  %-18s", "");
		}
		fputc('\n', f);
	}
	fputs("  --disk ...          a virtio-blk disk (repeatable: /dev/vda, /dev/vdb, ...)\n"
	      "  --net ...           a virtio-net NIC (repeatable: eth0, eth1, ...): user is NAT\n"
	      "                      through libslirp, tap a TAP device (created if missing)\n"
	      "  --config FILE       a VM definition (docs/config.md); flags given as well\n"
	      "                      override its settings, --disk and --net add devices\n",
	      f);
}

static int bad(const char *opt, const char *value, const char *why)
{
	log_err("%s %s: %s", opt, value ? value : "", why);
	return -EINVAL;
}

enum {
	OPT_SETTING = 256,          /* + index into vm_settings */
	OPT_DISK = 512, OPT_NET, OPT_CONFIG, OPT_HELP,
};

#define MAX_OPTIONS 40

/* getopt_long's table, made from vm_settings. */
static void build_options(struct option *o)
{
	size_t n = 0;
	for (size_t i = 0; i < vm_settings_count && n < MAX_OPTIONS - 6; i++)
		o[n++] = (struct option){ vm_settings[i].key,
					  vm_settings[i].flags & (SETTING_NOARG | SETTING_COUNT)
						  ? no_argument : required_argument,
					  NULL, OPT_SETTING + (int)i };
	o[n++] = (struct option){ "disk", required_argument, NULL, OPT_DISK };
	o[n++] = (struct option){ "net", required_argument, NULL, OPT_NET };
	o[n++] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	o[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	o[n] = (struct option){ NULL, 0, NULL, 0 };
}

/* The option getopt just complained about, as the user typed it. For a long
 * option that is argv[optind - 1] up to any '='; for a short one, optopt. */
static const char *option_name(char **argv, const struct option *opts, char *name, size_t n)
{
	if (optopt && optopt < 256) {
		snprintf(name, n, "-%c", optopt);
		return name;
	}
	for (const struct option *o = opts; o->name; o++)
		if (o->val == optopt) {
			snprintf(name, n, "--%s", o->name);
			return name;
		}
	snprintf(name, n, "%.*s", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
	return name;
}

static const char *unknown_option(char **argv, int opt, const struct option *opts, char *msg,
				  size_t n)
{
	const char *arg = argv[optind - 1];
	if (opt && opt < 256) {
		snprintf(msg, n, "unknown option -%c", opt);
	} else if (opt) {
		/* A known long option given a value it does not take. */
		for (const struct option *o = opts; o->name; o++)
			if (o->val == opt)
				snprintf(msg, n, "option --%s takes no value", o->name);
	} else {
		snprintf(msg, n, "unknown option %.*s", (int)strcspn(arg, "="), arg);
	}
	return msg;
}

static int add_disk(struct vm_config *cfg, const char *arg, const struct setting_src *src)
{
	if (cfg->ndisks == CONFIG_MAX_DISKS)
		return bad("--disk", arg, "too many disks (at most 16)");
	struct disk_config *d = &cfg->disks[cfg->ndisks];
	disk_config_init(d);
	char why[SETTING_WHY_MAX];
	if (disk_config_parse(d, arg, src, why)) {
		/* A refused disk is not counted, so nobody else would free it. */
		disk_config_free(d);
		return bad("--disk", arg, why);
	}
	cfg->ndisks++;
	return 0;
}

static int add_net(struct vm_config *cfg, const char *arg)
{
	if (cfg->nnics == CONFIG_MAX_NICS) {
		log_err("--net: too many NICs (at most %d)", CONFIG_MAX_NICS);
		return -EINVAL;
	}
	int r = net_config_parse(&cfg->nics[cfg->nnics], arg);
	if (r)
		return r;
	cfg->nnics++;
	return 0;
}

/* --config comes first whatever its place, so that every flag overrides
 * the file. One definition per VM: a second --config is a mistake. */
static int load_config(int argc, char **argv, const struct option *opts,
		       struct vm_config *cfg)
{
	const char *file = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		if (c != OPT_CONFIG)
			continue;
		if (file) {
			log_err("--config given twice (one definition per VM)");
			return -EINVAL;
		}
		file = optarg;
	}
	return file ? config_file_load(cfg, file, NULL, NULL) : 0;
}

int cli_parse_args(int argc, char **argv, struct vm_config *cfg, const char *base_dir)
{
	struct option opts[MAX_OPTIONS];
	build_options(opts);
	const struct setting_src src = { .base_dir = base_dir };
	char name[64], msg[128], why[SETTING_WHY_MAX];

	vm_config_init(cfg);
	opterr = 0; /* we print our own one-line errors */
	int r = load_config(argc, argv, opts, cfg);
	optind = 0; /* 0, not 1: also resets glibc's state inside short-option groups */
	unsigned verbose = cfg->verbose;
	bool verbose_flag = false;
	int c;
	while (!r && (c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		const char *a = optarg;
		if (c >= OPT_SETTING && c < OPT_SETTING + (int)vm_settings_count) {
			const struct vm_setting *s = &vm_settings[c - OPT_SETTING];
			if (s->flags & SETTING_COUNT) {
				verbose = verbose_flag ? verbose + 1 : 1;
				verbose_flag = true;
			} else if (s->set(cfg, s->flags & SETTING_NOARG ? "on" : a, &src, why)) {
				snprintf(name, sizeof(name), "--%s", s->key);
				r = bad(name, a, why);
			}
			continue;
		}
		switch (c) {
		case 'v':
			verbose = verbose_flag ? verbose + 1 : 1;
			verbose_flag = true;
			break;
		case OPT_DISK: r = add_disk(cfg, a, &src); break;
		case OPT_NET: r = add_net(cfg, a); break;
		case OPT_CONFIG: break;   /* load_config read it */
		case 'h':
		case OPT_HELP:
			cli_run_usage(stdout);
			r = 1;
			break;
		case ':':
			log_err("option %s needs a value (see kvmini run --help)",
				option_name(argv, opts, name, sizeof(name)));
			r = -EINVAL;
			break;
		default:
			log_err("%s (see kvmini run --help)",
				unknown_option(argv, optopt, opts, msg, sizeof(msg)));
			r = -EINVAL;
			break;
		}
	}
	if (!r && optind < argc) {
		log_err("unexpected argument '%s' (see kvmini run --help)", argv[optind]);
		r = -EINVAL;
	}
	cfg->verbose = verbose > 2 ? 2 : verbose;
	if (!r && vm_config_validate(cfg, why)) {
		log_err("%s (see kvmini run --help)", why);
		r = -EINVAL;
	}
	if (r)
		vm_config_free(cfg);
	return r;
}

int cli_parse_run(int argc, char **argv, struct vm_config *cfg)
{
	return cli_parse_args(argc, argv, cfg, NULL);
}
