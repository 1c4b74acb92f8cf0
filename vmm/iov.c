#include "vmm/iov.h"

#include <stdbool.h>
#include <string.h>

size_t iov_size(const struct iovec *iov, unsigned n)
{
	size_t sum = 0;
	for (unsigned i = 0; i < n; i++) {
		if (iov[i].iov_len > SIZE_MAX - sum)
			return SIZE_MAX;
		sum += iov[i].iov_len;
	}
	return sum;
}

enum copy_dir { TO_BUF, TO_IOV, SET };

/* The walk shared by the copies and memset: segment pieces of [skip,
 * skip + len), each handed to one memcpy or memset. */
static size_t iov_walk(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, int c,
		       size_t len, enum copy_dir dir)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
		if (dir == TO_IOV)
			memcpy(p, buf + done, l);
		else if (dir == TO_BUF)
			memcpy(buf + done, p, l);
		else
			memset(p, c, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_walk(iov, n, skip, buf, 0, len, TO_BUF);
}

size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	return iov_walk(iov, n, skip, (uint8_t *)buf, 0, len, TO_IOV);
}

size_t iov_memset(const struct iovec *iov, unsigned n, size_t skip, int c, size_t len)
{
	return iov_walk(iov, n, skip, NULL, c, len, SET);
}

void iov_advance(struct iovec **iovp, unsigned *np, size_t bytes)
{
	struct iovec *iov = *iovp;
	unsigned cnt = *np;
	while (bytes && cnt) {
		if (bytes >= iov[0].iov_len) {
			bytes -= iov[0].iov_len;
			iov++;
			cnt--;
		} else {
			iov[0].iov_base = (char *)iov[0].iov_base + bytes;
			iov[0].iov_len -= bytes;
			bytes = 0;
		}
	}
	while (cnt && iov[0].iov_len == 0) {
		iov++;
		cnt--;
	}
	*iovp = iov;
	*np = cnt;
}

int iov_slice(struct iovec *dst, unsigned max, const struct iovec *src, unsigned n, size_t skip,
	      size_t len)
{
	unsigned out = 0;
	for (unsigned i = 0; i < n && len; i++) {
		size_t l = src[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		if (out == max)
			return -1;
		dst[out].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[out].iov_len = l;
		out++;
		len -= l;
		skip = 0;
	}
	return len ? -1 : (int)out;
}
