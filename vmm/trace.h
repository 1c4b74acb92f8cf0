#ifndef KVMINI_TRACE_H
#define KVMINI_TRACE_H

#include <stdio.h>

struct vm;
/* The --trace-exits table: exits per reason (all vCPUs), then accesses per
 * device on each bus, then unclaimed accesses. */
void trace_print_exits(FILE *f, struct vm *vm, double seconds);

#endif
