/* A synchronous qcow2 consistency checker and repairer, like
 * `qemu-img check [-r leaks|all]`. kvmini-img check prints its result, and
 * the driver runs it with QCOW2_REPAIR_ALL when it opens a dirty image
 * read-write. */
#ifndef KVMINI_QCOW2_CHECK_H
#define KVMINI_QCOW2_CHECK_H

#include <stdint.h>

enum qcow2_repair {
	QCOW2_REPAIR_NONE = 0,
	QCOW2_REPAIR_LEAKS = 1,   /* lower refcounts that are too high */
	QCOW2_REPAIR_ALL = 3,     /* also raise refcounts that are too low (rebuilding
	                           * the refcount structures when a block is missing
	                           * or broken) and fix COPIED flags */
};

/* Field names follow qemu-img check --output json: image-end-offset,
 * total-clusters, check-errors, leaks, corruptions, leaks-fixed,
 * corruptions-fixed, allocated-clusters, fragmented-clusters,
 * compressed-clusters, filename, format. The counts after a repair are
 * what was found; *_fixed says how many of them were repaired. */
struct qcow2_check_result {
	const char *filename;        /* the caller's, for printing */
	const char *format;          /* "qcow2" */
	uint64_t corruptions;
	uint64_t leaks;
	uint64_t check_errors;       /* the check itself could not look somewhere */
	uint64_t corruptions_fixed;
	uint64_t leaks_fixed;
	uint64_t image_end_offset;   /* end of the highest referenced cluster */
	uint64_t total_clusters;     /* guest clusters of the virtual disk */
	uint64_t allocated_clusters; /* guest clusters with a host cluster */
	uint64_t fragmented_clusters;
	uint64_t compressed_clusters;
	char message[256];           /* the first problem found, one line; "" if none */
};

/* Checks (and with fix, repairs) the image open on fd (read-write for a
 * repair). Each problem is logged in one line (corruptions as warnings,
 * the first few only; leaks at debug level). Returns 0 when the check ran,
 * whatever it found; -EINVAL/-ENOTSUP if the header cannot be parsed (the
 * reason in res->message, check_errors 1); -ENOMEM, -EFBIG when the
 * in-memory refcount table would exceed 1 GiB; -EIO and friends from I/O. */
int qcow2_check(int fd, enum qcow2_repair fix, struct qcow2_check_result *res);

#endif
