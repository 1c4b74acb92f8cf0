/* kvmini's entry point: dispatches subcommands the way git does. */
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/run.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "run", cmd_run, "boot a Linux kernel (kvmini run --help)" },
	{ "config", cmd_config, "show or edit a VM definition file (kvmini config --help)" },
	{ "ctl", cmd_ctl, "inspect or control a running VM (kvmini ctl --help)" },
	{ "seed", cmd_seed, "make a cloud-init NoCloud seed image (kvmini seed --help)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kvmini COMMAND [OPTIONS]\n       kvmini --help | --version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("kvmini %s\n", KVMINI_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	log_err("unknown command '%s' (see kvmini --help)", cmd);
	return EXIT_USAGE;
}
