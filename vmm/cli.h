#ifndef KVMINI_CLI_H
#define KVMINI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/config.h"

/* "512M", "2G", "1024": K/M/G/T are powers of 1024, a bare number is bytes.
 * 0 or -EINVAL (not a size) / -ERANGE (overflows 64 bits). (vmm/settings.c) */
int parse_size(const char *s, uint64_t *out);
/* A decimal number up to max: digits only, no sign, no spaces ("0x10",
 * "+22" and " 2" are typos), at most 10 of them. (vmm/settings.c) */
bool parse_decimal(const char *s, unsigned long max, unsigned long *out);
/* Parses `kvmini run` options into a fresh *cfg: a --config file first,
 * then every flag on top of it, then vm_config_validate. 0: ready to run
 * (the caller owns cfg: vm_config_free); 1: --help was printed; -EINVAL: a
 * usage or definition error, already reported in one line. On 1 and
 * -EINVAL nothing is left to free. Does not touch the log level: that is
 * cfg->verbose's, for the caller to apply. */
int cli_parse_run(int argc, char **argv, struct vm_config *cfg);
/* The same with relative paths among the flags made absolute against
 * base_dir (kvmini config show -- FLAGS); NULL keeps them as given. */
int cli_parse_args(int argc, char **argv, struct vm_config *cfg, const char *base_dir);
void cli_run_usage(FILE *f);

#define CLI_MAX_CPUS 254
#define CLI_MIN_MEM (8ULL << 20)
#define CLI_MAX_MEM (1ULL << 40)

#endif
