/* The one set of iovec helpers: virtqueues hand out guest buffers as
 * iovecs, the block layer copies, slices and advances them. Nothing here
 * allocates. */
#ifndef KVMINI_IOV_H
#define KVMINI_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Sum of the segment lengths; SIZE_MAX when it overflows. */
size_t iov_size(const struct iovec *iov, unsigned n);

/* Copy up to len bytes between a flat buffer and the iovec, starting skip
 * bytes into the iovec. Return the bytes copied (less at the iovec's end). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
/* Sets up to len bytes of the iovec, from skip on, to c. Returns bytes set. */
size_t iov_memset(const struct iovec *iov, unsigned n, size_t skip, int c, size_t len);

/* After a short transfer of n bytes: drops the segments done (and empty
 * ones at the front) and trims the partly done one, editing *iov (a
 * caller-owned copy of the array) in place. */
void iov_advance(struct iovec **iov, unsigned *n, size_t bytes);

/* Writes into dst (room for max entries) the segments covering bytes
 * [skip, skip + len) of src. Returns the entry count, or -1 when src is
 * shorter than skip + len or dst has too little room. Empty segments are
 * left out. */
int iov_slice(struct iovec *dst, unsigned max, const struct iovec *src, unsigned n, size_t skip,
	      size_t len);

#endif
