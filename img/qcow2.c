/* kvmini-img's use of the qcow2 format helpers (block/qcow2_format.h,
 * qcow2_create.h, qcow2_check.h): info reads the header, create and check
 * call the helpers. None of this needs the qcow2 driver; everything that
 * reads or writes guest data goes through block_open instead. Built only
 * when the helpers are (img/meson.build); img/qcow2_none.c stands in
 * otherwise. */
#include "block/qcow2_check.h"
#include "block/qcow2_create.h"
#include "block/qcow2_format.h"
#include "block/lock.h"
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct img_qcow2 {
	struct qcow2_header h;
};

bool img_qcow2_built(void) { return true; }

static int read_all(int fd, uint8_t *buf, size_t len, uint64_t off, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, buf + *got, len - *got, (off_t)(off + *got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

int img_qcow2_load(const char *path, bool lock, struct img_qcow2 **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		log_err("Could not open '%s': %s", path, strerror(err));
		return -err;
	}
	int lr = lock ? image_lock(fd, path, IMAGE_LOCK_INSPECT) : 0;
	if (lr < 0) {
		close(fd);
		return lr;
	}
	struct stat st;
	size_t len = 64 << 10, got = 0;
	uint8_t *buf = malloc(len);
	struct img_qcow2 *q = calloc(1, sizeof(*q));
	int ret = !buf || !q ? -ENOMEM : fstat(fd, &st) < 0 ? -errno : 0;
	if (!ret)
		ret = read_all(fd, buf, len, 0, &got);
	/* The header, its extensions and the backing name all live in the
	 * first cluster, which may be bigger than what was read. */
	int bits = ret ? 0 : qcow2_peek_cluster_bits(buf, got);
	if (!ret && bits > 16 && got == len) {
		uint8_t *big = realloc(buf, (size_t)1 << bits);
		size_t more;
		if (!big) {
			ret = -ENOMEM;
		} else {
			buf = big;
			ret = read_all(fd, buf + len, ((size_t)1 << bits) - len, len, &more);
			got += more;
		}
	}
	char err[256] = "";
	if (!ret)
		ret = qcow2_header_parse(&q->h, buf, got, (uint64_t)st.st_size, err, sizeof(err));
	if (ret < 0) {
		if (*err)
			log_err("Could not open '%s': %s", path, err);
		else
			log_err("Could not open '%s': %s", path, strerror(-ret));
		free(q);
		q = NULL;
	}
	free(buf);
	close(fd);
	*out = q;
	return ret;
}

void img_qcow2_free(struct img_qcow2 *q)
{
	if (!q)
		return;
	qcow2_header_free(&q->h);
	free(q);
}

uint64_t img_qcow2_size(const struct img_qcow2 *q) { return q->h.size; }
const char *img_qcow2_backing(const struct img_qcow2 *q) { return q->h.backing_file; }
const char *img_qcow2_backing_format(const struct img_qcow2 *q) { return q->h.backing_format; }

/* qemu's ImageInfoSpecificQCow2, in its field order. */
void img_qcow2_info(const struct img_qcow2 *q, struct json_object *info)
{
	const struct qcow2_header *h = &q->h;
	struct json_object *data = json_object_new_object();
	bool v3 = h->version >= 3;
	json_object_object_add(data, "compat", json_object_new_string(v3 ? "1.1" : "0.10"));
	json_object_object_add(data, "compression-type", json_object_new_string(
		h->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib"));
	if (v3)
		json_object_object_add(data, "lazy-refcounts", json_object_new_boolean(
			h->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS));
	json_object_object_add(data, "refcount-bits",
			       json_object_new_int64(1ll << h->refcount_order));
	if (v3) {
		json_object_object_add(data, "corrupt", json_object_new_boolean(
			h->incompatible_features & QCOW2_INCOMPAT_CORRUPT));
		json_object_object_add(data, "extended-l2", json_object_new_boolean(
			h->incompatible_features & QCOW2_INCOMPAT_EXTL2));
	}
	struct json_object *spec = json_object_new_object();
	json_object_object_add(spec, "type", json_object_new_string("qcow2"));
	json_object_object_add(spec, "data", data);
	json_object_object_add(info, "cluster-size",
			       json_object_new_int64((int64_t)qcow2_cluster_size(h)));
	json_object_object_add(info, "format-specific", spec);
	json_object_object_add(info, "dirty-flag", json_object_new_boolean(
		h->incompatible_features & QCOW2_INCOMPAT_DIRTY));
}

int img_qcow2_create(const char *path, const struct img_create_opts *o)
{
	struct qcow2_create_opts c = {
		.size = o->size,
		.version = o->compat > 0 ? (unsigned)o->compat : 3,
		.cluster_size = o->cluster_size,
		.refcount_bits = o->refcount_bits,
		.lazy_refcounts = o->lazy_refcounts == 1,
		.backing_file = o->backing,
		.backing_format = o->backing_fmt,
		.prealloc = o->prealloc == IMG_PREALLOC_METADATA ? QCOW2_PREALLOC_METADATA
								 : QCOW2_PREALLOC_OFF,
		.compression_type = o->compression == 1 ? QCOW2_COMPRESSION_ZSTD
							: QCOW2_COMPRESSION_ZLIB,
	};
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		log_err("%s: Could not create '%s': %s", path, path, strerror(e));
		return -e;
	}
	char err[256] = "";
	int ret = qcow2_create(fd, &c, err, sizeof(err));
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0)
		log_err("%s: %s", path, *err ? err : strerror(-ret));
	close(fd);
	return ret;
}

int img_qcow2_check(const char *path, int fix, bool lock, struct img_check_result *r)
{
	int fd = open(path, (fix ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_err("Could not open '%s': %s", path, strerror(e));
		return -e;
	}
	int lr = lock ? image_lock(fd, path, fix ? IMAGE_LOCK_WRITE : IMAGE_LOCK_READ) : 0;
	if (lr < 0) {
		close(fd);
		return lr;
	}
	struct qcow2_check_result res = { .filename = path, .format = "qcow2" };
	enum qcow2_repair how = fix == 3 ? QCOW2_REPAIR_ALL
			      : fix == 1 ? QCOW2_REPAIR_LEAKS : QCOW2_REPAIR_NONE;
	int ret = qcow2_check(fd, how, &res);
	if (ret == 0 && fix && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (ret < 0) {
		log_err("Could not check '%s': %s", path, *res.message ? res.message
								 : strerror(-ret));
		return ret;
	}
	*r = (struct img_check_result){
		.corruptions = res.corruptions, .leaks = res.leaks,
		.check_errors = res.check_errors, .corruptions_fixed = res.corruptions_fixed,
		.leaks_fixed = res.leaks_fixed, .image_end_offset = res.image_end_offset,
		.total_clusters = res.total_clusters,
		.allocated_clusters = res.allocated_clusters,
		.fragmented_clusters = res.fragmented_clusters,
		.compressed_clusters = res.compressed_clusters,
	};
	return 0;
}
