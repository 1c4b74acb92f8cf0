/* kvmini-img's entry point: dispatches subcommands the way git (and
 * qemu-img) do. Each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "img/img.h"
#include "vmm/log.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *synopsis;
};

static const struct command commands[] = {
	{ "create", cmd_create,
	  "create [-f qcow2|raw] [-b BACKING [-F FMT]] [-o OPTIONS] FILE [SIZE]" },
	{ "info", cmd_info, "info [-f FMT] [--output human|json] [--backing-chain] [-U] FILE" },
	{ "check", cmd_check, "check [-f FMT] [-r leaks|all] [--output human|json] [-U] FILE" },
	{ "convert", cmd_convert, "convert [-f FMT] [-O qcow2|raw] [-c] [-p] [-o OPTIONS] SRC DST" },
	{ "resize", cmd_resize, "resize [-f FMT] [--shrink] FILE [+|-]SIZE" },
	{ "map", cmd_map, "map [-f FMT] [--output human|json] FILE" },
	{ "bench", cmd_bench,
	  "bench [-c COUNT] [-d DEPTH] [-s SIZE] [-S STEP] [-o OFFSET] [-w] [--pattern=N]\n"
	  "                   [-t none|writeback] [-f FMT] [-q] FILE" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: kvmini-img COMMAND [OPTIONS]\n       kvmini-img --help | --version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fputs("\nSizes take k, M, G, T, P, E suffixes (powers of 1024). Exit status 0 on\n"
	      "success, 1 on an error; check: 2 corruptions, 3 leaks only, 63 no checks.\n", f);
}

/* `kvmini-img CMD --help`: the subcommand's synopsis on stdout. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		log_err("Not enough arguments (see kvmini-img --help)");
		return IMG_ERR;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return IMG_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("kvmini-img %s\n", KVMINI_VERSION);
		return IMG_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(cmd, commands[i].name))
			continue;
		if (wants_help(argc - 1, argv + 1)) {
			printf("usage: kvmini-img %s\n", commands[i].synopsis);
			return IMG_OK;
		}
		return commands[i].fn(argc - 1, argv + 1);
	}
	log_err("Command not found: %s (see kvmini-img --help)", cmd);
	return IMG_ERR;
}
