#ifndef KVMINI_CLI_H
#define KVMINI_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vmm/config.h"

/* "512M", "2G", "1024": K/M/G/T are powers of 1024, a bare number is bytes.
 * 0 or -EINVAL (not a size) / -ERANGE (overflows 64 bits). */
int parse_size(const char *s, uint64_t *out);
/* Parses `kvmini run` options. 0: ready to run; 1: --help was printed;
 * -EINVAL: a usage error, already reported in one line. */
int cli_parse_run(int argc, char **argv, struct vm_config *cfg);
void cli_run_usage(FILE *f);

#define CLI_MAX_CPUS 254
#define CLI_MIN_MEM (8ULL << 20)
#define CLI_MAX_MEM (1ULL << 40)

#endif
