/* The qcow2 driver: opening an image (header, L1 and refcount tables,
 * feature checks, dirty repair, the backing chain), its block_ops, and the
 * tool-side operations (status for map, resize). The request path is
 * qcow2_io.c, the metadata qcow2_meta.c; docs/qcow2.md tells the story. */
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/qcow2_check.h"
#include "vmm/log.h"

#define ZEROES_LEN (1u << 20)

/* ---- block_ops ------------------------------------------------------------ */

static int q_read(struct block *b, struct block_req *r)
{
	qcow2_submit(b->priv, r, Q_READ);
	return 0;
}

static int q_write(struct block *b, struct block_req *r)
{
	qcow2_submit(b->priv, r, Q_WRITE);
	return 0;
}

static int q_discard(struct block *b, struct block_req *r)
{
	qcow2_submit(b->priv, r, Q_DISCARD);
	return 0;
}

static int q_write_zeroes(struct block *b, struct block_req *r)
{
	qcow2_submit(b->priv, r, Q_WZ);
	return 0;
}

static int q_write_compressed(struct block *b, struct block_req *r)
{
	qcow2_submit(b->priv, r, Q_COMPRESSED);
	return 0;
}

static void flush_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	block_complete(q->r, res < 0 ? res : 0);
}

/* Metadata first (in its own order), then one fdatasync for everything. */
static int q_flush(struct block *b, struct block_req *r)
{
	struct qcow2 *s = b->priv;
	struct qcow2_req *q = r->drv;
	q->r = r;
	pthread_mutex_lock(&s->lock);
	int ret = b->readonly ? 0 : qcow2_writeback(s);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	file_flush(&q->io, s->f, r->e, flush_done, q);
	return 0;
}

static int q_status(struct block *b, uint64_t off, uint64_t len, struct block_extent *ext)
{
	struct qcow2 *s = b->priv;
	uint64_t gc = off >> s->cluster_bits, in = off & (s->cs - 1), e;
	struct qcow2_l2_info first, next;
	char err[128];
	pthread_mutex_lock(&s->lock);
	int r = qcow2_l2_get(s, gc, &e);
	if (r == 0 && qcow2_l2_entry_decode(e, s->h.version, s->cluster_bits, &first, err,
					    sizeof(err)) < 0)
		r = -EIO;
	uint64_t n = s->cs - in;
	for (uint64_t i = 1; r == 0 && n < len && i < 65536; i++) {
		if (qcow2_l2_get(s, gc + i, &e) < 0 ||
		    qcow2_l2_entry_decode(e, s->h.version, s->cluster_bits, &next, err,
					  sizeof(err)) < 0)
			break;
		bool same = next.kind == first.kind &&
			    (first.kind != QCOW2_CLUSTER_NORMAL ||
			     next.host_offset == first.host_offset + i * s->cs) &&
			    first.kind != QCOW2_CLUSTER_COMPRESSED;
		if (!same)
			break;
		n += s->cs;
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	if (n > len)
		n = len;
	*ext = (struct block_extent){ .len = n, .host_offset = -1, .file = b->path };
	switch (first.kind) {
	case QCOW2_CLUSTER_NORMAL:
		ext->data = ext->present = true;
		ext->host_offset = (int64_t)(first.host_offset + in);
		return 0;
	case QCOW2_CLUSTER_COMPRESSED:
		ext->data = ext->present = ext->compressed = true;
		return 0;
	case QCOW2_CLUSTER_ZERO_PLAIN:
	case QCOW2_CLUSTER_ZERO_ALLOC:
		ext->zero = ext->present = true;
		if (first.kind == QCOW2_CLUSTER_ZERO_ALLOC)
			ext->host_offset = (int64_t)(first.host_offset + in);
		return 0;
	default:
		break;
	}
	/* Unallocated here: the backing file answers, zeroes past its end. */
	if (s->backing && off < s->backing_size) {
		uint64_t m = s->backing_size - off < n ? s->backing_size - off : n;
		if ((r = block_status(s->backing, off, m, ext)) < 0)
			return r;
		ext->depth++;
		return 0;
	}
	ext->zero = true;
	return 0;
}

static int q_resize(struct block *b, uint64_t size)
{
	struct qcow2 *s = b->priv;
	pthread_mutex_lock(&s->lock);
	int r = 0;
	if (size < s->virtual_size) {
		/* Shrinking may only drop clusters nothing is stored in. */
		uint64_t first = (size + s->cs - 1) >> s->cluster_bits;
		uint64_t last = (s->virtual_size + s->cs - 1) >> s->cluster_bits;
		for (uint64_t gc = first; gc < last && r == 0; gc++) {
			uint64_t e;
			if ((r = qcow2_l2_get(s, gc, &e)) == 0 && e) {
				log_err("disk %s: cannot shrink: data is stored past %llu bytes",
					b->path, (unsigned long long)size);
				r = -ENOTSUP;
			}
		}
	} else {
		uint64_t need = ((size + s->cs - 1) >> s->cluster_bits) / s->l2_entries + 1;
		if (((size + s->cs - 1) >> s->cluster_bits) % s->l2_entries == 0)
			need--;
		r = qcow2_grow_l1(s, need);
	}
	if (r == 0)
		r = qcow2_writeback(s);
	if (r == 0) {
		uint8_t v[8];
		qcow2_put_be64(v, size);
		if ((r = qcow2_write_header_field(s, 24, v, 8)) == 0)
			r = file_sync(s->f);
	}
	if (r == 0) {
		s->virtual_size = s->h.size = size;
		b->size = size & ~511ull;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void qcow2_free(struct qcow2 *s)
{
	if (!s)
		return;
	if (s->backing)
		block_close(s->backing);
	qcow2_cache_free(&s->l2c);
	qcow2_cache_free(&s->rbc);
	for (unsigned i = 0; i < s->nbufs; i++)
		free(s->buf[i]);
	if (s->zeroes)
		munmap(s->zeroes, s->zeroes_len);
	free(s->l1);
	free(s->rt);
	free(s->frees);
	qcow2_header_free(&s->h);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Everything the guest wrote and flushed is on disk already; what it
 * wrote since goes now, in order. */
static void q_close(struct block *b)
{
	struct qcow2 *s = b->priv;
	if (!s)
		return;
	if (!b->readonly) {
		pthread_mutex_lock(&s->lock);
		int r = qcow2_writeback(s);
		pthread_mutex_unlock(&s->lock);
		/* The space grown ahead of the allocations goes again. */
		uint64_t end = s->end << s->cluster_bits;
		if (r == 0 && s->file_len != UINT64_MAX && s->file_len > end &&
		    end >= s->open_len && ftruncate(s->f->fd, (off_t)end) < 0)
			r = -errno;
		if (r == 0)
			r = file_sync(s->f);
		if (r < 0)
			log_err("disk %s: metadata not written back at close: %s", b->path,
				strerror(-r));
	}
	qcow2_free(s);
	b->priv = NULL;
}

static const struct block_ops qcow2_ops = {
	.name = "qcow2",
	.read = q_read,
	.write = q_write,
	.flush = q_flush,
	.discard = q_discard,
	.write_zeroes = q_write_zeroes,
	.write_compressed = q_write_compressed,
	.status = q_status,
	.resize = q_resize,
	.close = q_close,
};

/* ---- open ----------------------------------------------------------------- */

static bool qcow2_probe(const uint8_t *buf, size_t len)
{
	return len >= 4 && buf[0] == 'Q' && buf[1] == 'F' && buf[2] == 'I' && buf[3] == 0xfb;
}

static int read_header(struct qcow2 *s, uint64_t fsize)
{
	struct block *b = s->b;
	size_t len = fsize < (64u << 10) ? (size_t)fsize : (64u << 10);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	int r = file_pread(s->f, buf, len, 0);
	if (r == 0) {
		int bits = qcow2_peek_cluster_bits(buf, len);
		size_t want = bits > 0 && (1ull << bits) > len ? (size_t)(1ull << bits) : len;
		if (want > fsize)
			want = (size_t)fsize;
		if (want > len) {
			uint8_t *nb = realloc(buf, want);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			len = want;
			r = file_pread(s->f, buf, len, 0);
		}
	}
	if (r < 0) {
		log_err("disk %s: cannot read the qcow2 header: %s", b->path, strerror(-r));
		free(buf);
		return r;
	}
	char err[256];
	r = qcow2_header_parse(&s->h, buf, len, fsize, err, sizeof(err));
	free(buf);
	if (r < 0)
		log_err("disk %s: %s", b->path, err);
	return r;
}

/* A table of 64-bit big-endian entries, read into host order. */
static int read_table(struct qcow2 *s, uint64_t off, uint64_t entries, uint64_t cap,
		      uint64_t **out)
{
	uint64_t *t = calloc(cap ? cap : 1, sizeof(uint64_t));
	if (!t)
		return -ENOMEM;
	int r = entries ? file_pread(s->f, t, entries * 8, off) : 0;
	if (r < 0) {
		free(t);
		return r;
	}
	for (uint64_t i = 0; i < entries; i++)
		t[i] = qcow2_be64(&t[i]);
	*out = t;
	return 0;
}

/* A dirty image (lazy refcounts, then a crash) has refcounts that may be
 * too low: repair them before any write, as QEMU does, through a plain fd
 * (the checker's reads are not O_DIRECT-aligned). */
static int repair_dirty(struct qcow2 *s)
{
	struct block *b = s->b;
	log_warn("disk %s: the image was not closed cleanly; repairing its refcounts", b->path);
	int fd = open(b->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct qcow2_check_result res = { .filename = b->path };
	int r = qcow2_check(fd, QCOW2_REPAIR_ALL, &res);
	close(fd);
	if (r == 0 && res.corruptions > res.corruptions_fixed)
		r = -EIO;
	if (r < 0) {
		log_err("disk %s: repair failed%s%s", b->path, res.message[0] ? ": " : "",
			res.message);
		return r;
	}
	return 0;
}

/* The backing file's path as QEMU resolves it: an absolute name as it is;
 * a relative one against the folder of the image naming it, or as it is
 * when that image's own path has no folder part. */
static char *backing_path(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	if (name[0] == '/' || !slash)
		return strdup(name);
	char *p = NULL;
	if (asprintf(&p, "%.*s%s", (int)(slash - image + 1), image, name) < 0)
		p = NULL;
	return p;
}

static int open_backing(struct qcow2 *s, const struct block_config *cfg)
{
	struct block *b = s->b;
	if (cfg->chain_depth + 1 >= QCOW2_MAX_CHAIN) {
		log_err("disk %s: backing chain deeper than %d images (a loop?)", b->path,
			QCOW2_MAX_CHAIN);
		return -ELOOP;
	}
	enum block_format fmt = BLOCK_FMT_AUTO;
	const char *bf = s->h.backing_format;
	if (bf && !strcmp(bf, "raw"))
		fmt = BLOCK_FMT_RAW;
	else if (bf && !strcmp(bf, "qcow2"))
		fmt = BLOCK_FMT_QCOW2;
	else if (bf && *bf) {
		log_err("disk %s: backing format '%s' is not supported", b->path, bf);
		return -ENOTSUP;
	}
	char *path = backing_path(b->path, s->h.backing_file);
	if (!path)
		return -ENOMEM;
	/* A chain that comes back to one of its own images: refused before
	 * its locks could make it look like another process's. */
	struct stat me, st;
	if (fstat(b->file.fd, &me) < 0) {
		free(path);
		return -errno;
	}
	struct block_chain node = { me.st_dev, me.st_ino, cfg->chain };
	if (stat(path, &st) == 0) {
		for (const struct block_chain *c = &node; c; c = c->up) {
			if (c->dev == st.st_dev && c->ino == st.st_ino) {
				log_err("disk %s: its backing chain loops back to %s", b->path, path);
				free(path);
				return -ELOOP;
			}
		}
	}
	struct block_config bc = *cfg;
	bc.chain = &node;
	bc.path = path;
	bc.format = fmt;
	bc.readonly = true;
	bc.chain_depth = cfg->chain_depth + 1;
	int r = block_open(&s->backing, &bc);
	free(path);
	if (r < 0)
		return r;
	s->backing_size = s->backing->size;
	s->backing_priv = (block_req_priv_size(s->backing) + 15) & ~(size_t)15;
	return 0;
}

/* Before the first write: autoclear bits kvmini does not maintain go. */
static int clear_autoclear(struct qcow2 *s)
{
	uint64_t bits = qcow2_autoclear_to_clear(&s->h);
	if (!bits || s->h.version < 3)
		return 0;
	s->h.autoclear_features &= ~bits;
	uint8_t v[8];
	qcow2_put_be64(v, s->h.autoclear_features);
	int r = qcow2_write_header_field(s, 88, v, 8);
	return r ? r : file_sync(s->f);
}

static int check_features(struct qcow2 *s)
{
	struct block *b = s->b;
	if (b->readonly)
		return 0;
	if (s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
		log_err("disk %s: the image is marked corrupt; open it readonly=on or repair it "
			"with 'kvmini-img check -r all'", b->path);
		return -EINVAL;
	}
	if (s->h.nb_snapshots) {
		log_err("disk %s: the image has internal snapshots, which kvmini can only open "
			"readonly=on", b->path);
		return -ENOTSUP;
	}
	return 0;
}

static int qcow2_open(struct block *b, const struct block_config *cfg)
{
	struct qcow2 *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->b = b;
	s->f = &b->file;
	pthread_mutex_init(&s->lock, NULL);
	uint64_t fsize;
	int r = file_size(s->f, &fsize);
	if (r == 0)
		r = read_header(s, fsize);
	if (r == 0)
		r = check_features(s);
	if (r == 0 && !b->readonly && (s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
		qcow2_header_free(&s->h);
		memset(&s->h, 0, sizeof(s->h));
		if ((r = repair_dirty(s)) == 0 && (r = file_size(s->f, &fsize)) == 0)
			r = read_header(s, fsize);
	}
	if (r < 0)
		goto fail;
	s->cluster_bits = s->h.cluster_bits;
	s->cs = 1ull << s->cluster_bits;
	s->l2_entries = qcow2_l2_entries(&s->h);
	s->rb_entries = qcow2_refblock_entries(&s->h);
	s->slice = s->cs < 4096 ? (size_t)s->cs : 4096;
	s->virtual_size = s->h.size;
	s->end = (fsize + s->cs - 1) >> s->cluster_bits;
	s->file_len = s->open_len = fsize;
	s->l1_size = s->h.l1_size;
	s->l1_offset = s->h.l1_table_offset;
	s->rt_offset = s->h.refcount_table_offset;
	s->rt_clusters = s->h.refcount_table_clusters;
	s->rt_entries = (uint64_t)s->rt_clusters * s->cs / 8;
	uint64_t l1_cap = ((uint64_t)s->l1_size * 8 + s->cs - 1) / s->cs * s->cs / 8;
	if ((r = read_table(s, s->l1_offset, s->l1_size, l1_cap, &s->l1)) < 0 ||
	    (r = read_table(s, s->rt_offset, s->rt_entries, s->rt_entries, &s->rt)) < 0) {
		log_err("disk %s: cannot read the qcow2 tables: %s", b->path, strerror(-r));
		goto fail;
	}
	/* By default the L2 cache covers the whole disk, up to 32 MiB (QEMU's
	 * default on Linux): 1 MiB maps 8 GiB at 64 KiB clusters. */
	uint64_t l2_bytes = cfg->l2_cache;
	if (!l2_bytes) {
		uint64_t need = ((s->virtual_size + s->cs - 1) >> s->cluster_bits) * 8;
		l2_bytes = need < (32u << 20) ? need : (32u << 20);
	}
	uint64_t rb_bytes = l2_bytes / 4 > (256u << 10) ? l2_bytes / 4 : (256u << 10);
	if ((r = qcow2_cache_init(&s->l2c, "L2", s->slice, l2_bytes)) < 0 ||
	    (r = qcow2_cache_init(&s->rbc, "refcount", s->slice, rb_bytes)) < 0)
		goto fail;
	s->frees = malloc(QCOW2_MAX_FREES * sizeof(uint64_t));
	s->zeroes_len = ZEROES_LEN;
	s->zeroes = mmap(NULL, ZEROES_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!s->frees || s->zeroes == MAP_FAILED) {
		s->zeroes = NULL;
		r = -ENOMEM;
		goto fail;
	}
	/* Plain cluster, then compressed bytes (a cluster and a sector at
	 * most) in an O_DIRECT-aligned window around them. */
	s->buf_len = 2 * s->cs + 1024 + 2 * (size_t)b->logical_block_size;
	s->nbufs = (unsigned)(QCOW2_BUF_BUDGET / s->buf_len);
	s->nbufs = s->nbufs < 2 ? 2 : s->nbufs > QCOW2_MAX_BUFS ? QCOW2_MAX_BUFS : s->nbufs;
	s->buf_free = s->nbufs == 64 ? UINT64_MAX : (1ull << s->nbufs) - 1;
	if (s->h.backing_file && (r = open_backing(s, cfg)) < 0)
		goto fail;
	if (!b->readonly && (r = clear_autoclear(s)) < 0) {
		log_err("disk %s: cannot update the header: %s", b->path, strerror(-r));
		goto fail;
	}
	b->size = s->virtual_size & ~511ull;
	b->discard_supported = true;
	b->write_zeroes_supported = true;
	b->cluster_size = (uint32_t)s->cs;
	b->req_priv_size = sizeof(struct qcow2_req) + s->backing_priv;
	b->priv = s;
	b->ops = &qcow2_ops;
	return 0;
fail:
	qcow2_free(s);
	return r;
}

const struct block_driver qcow2_driver = {
	.name = "qcow2",
	.format = BLOCK_FMT_QCOW2,
	.probe = qcow2_probe,
	.open = qcow2_open,
};
