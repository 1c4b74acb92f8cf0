/* Shared by the fuzz targets in this folder: the libFuzzer entry point (a
 * prototype, for -Wmissing-prototypes) and the invariant check. A failed
 * check aborts, which libFuzzer reports as a crash and the replay runner
 * (replay_main.c) as a failed test. */
#ifndef KVMINI_FUZZ_H
#define KVMINI_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                               \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,     \
				__LINE__, #cond);                                      \
			abort();                                                       \
		}                                                                      \
	} while (0)

#endif
