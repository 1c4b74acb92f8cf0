/* qcow2_check: count every reference to every host cluster (header, L1 and
 * L2 tables of the active state and of each snapshot, data and compressed
 * clusters, the snapshot table, persistent bitmaps, the refcount
 * structures themselves) in an in-memory table, then compare it with the
 * stored refcounts. A stored count above the references is a leak (space
 * wasted, harmless); below is a corruption (a later write could free a
 * cluster still in use). Then the COPIED flags are compared with the
 * stored refcounts. Repairs write fixed refcount blocks in place, or build
 * new refcount structures at the end of the file when the old ones cannot
 * hold the fix. */
#include "block/qcow2_check.h"
#include "block/file.h"
#include "block/qcow2_format.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2^28 four-byte counters: 1 GiB, a file of 128 GiB in 512-byte clusters
 * or 512 TiB in 2 MiB ones. */
#define MAX_COUNTED_CLUSTERS (1ull << 28)
#define MAX_LOGGED 10
#define MAX_SNAPSHOT_TABLE (64ull << 20)
#define MAX_BITMAP_DIR (64ull << 20)
/* L2 entries the walk visits at most: far more than any real image (16 TiB
 * of 512-byte clusters), but a hostile image whose L1 tables point at the
 * same L2 table millions of times cannot keep us busy for hours. */
#define MAX_L2_VISITS (1ull << 35)

struct ck {
	int fd;
	enum qcow2_repair fix;
	struct qcow2_header h;
	uint64_t cs, file_size, nb;      /* nb: clusters in the file */
	uint32_t *ref;                   /* counted references per cluster */
	uint64_t *blocks;                /* refcount block offsets, 0 = none/invalid */
	uint64_t nb_blocks;
	uint64_t l2_visits;
	bool need_rebuild;
	uint64_t ref_unfixed;            /* refcount problems only a rebuild fixes */
	uint64_t end;                    /* clusters up to the last one in use */
	unsigned logged;
	struct qcow2_check_result *res;
	uint8_t *cache;                  /* one refcount block, for lookups */
	uint64_t cache_off;
};

static void note(struct ck *c, bool corruption, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logs one problem; the first one is kept in the result too. */
static void note(struct ck *c, bool corruption, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!c->res->message[0])
		snprintf(c->res->message, sizeof(c->res->message), "%s", line);
	if (!corruption)
		log_debug("qcow2 check: %s", line);
	else if (c->logged++ < MAX_LOGGED)
		log_warn("qcow2 check: %s", line);
}

static void corrupt(struct ck *c, const char *what, uint64_t off)
{
	c->res->corruptions++;
	note(c, true, "%s (offset 0x%llx)", what, (unsigned long long)off);
}

static int read_at(struct ck *c, void *buf, size_t len, uint64_t off)
{
	return fd_pio_full(c->fd, buf, len, off, false);
}

static int write_at(struct ck *c, const void *buf, size_t len, uint64_t off)
{
	return fd_pio_full(c->fd, (void *)buf, len, off, true);
}

/* Counts a reference to every cluster [off, off + len) touches; false (a
 * corruption) if any lies past the end of the file. */
static bool count(struct ck *c, uint64_t off, uint64_t len, const char *what)
{
	if (len == 0)
		return true;
	uint64_t first = off >> c->h.cluster_bits;
	uint64_t last = (off + len - 1) >> c->h.cluster_bits;
	if (off + len < off || last >= c->nb) {
		corrupt(c, what, off);
		return false;
	}
	for (uint64_t i = first; i <= last; i++)
		if (c->ref[i] != UINT32_MAX)
			c->ref[i]++;
	return true;
}

static int walk_l2(struct ck *c, uint64_t l2_off, bool active, uint8_t *l2)
{
	c->l2_visits += qcow2_l2_entries(&c->h);
	if (c->l2_visits > MAX_L2_VISITS) {
		if (c->l2_visits - qcow2_l2_entries(&c->h) <= MAX_L2_VISITS) {
			c->res->check_errors++;
			note(c, true, "too many L2 table references; the rest are not checked");
		}
		return 0;
	}
	int rc = read_at(c, l2, c->cs, l2_off);
	if (rc)
		return rc;
	char err[160];
	/* Fragmentation as qemu-img counts it: a data cluster not right after
	 * the previous one of the same L2 table. */
	uint64_t next_contiguous = 0;
	for (uint64_t k = 0; k < qcow2_l2_entries(&c->h); k++) {
		struct qcow2_l2_info e;
		if (qcow2_l2_entry_decode(qcow2_be64(l2 + k * 8), c->h.version, c->h.cluster_bits,
					  &e, err, sizeof(err))) {
			corrupt(c, err, l2_off + k * 8);
			continue;
		}
		switch (e.kind) {
		case QCOW2_CLUSTER_NORMAL:
		case QCOW2_CLUSTER_ZERO_ALLOC:
			count(c, e.host_offset, c->cs, "data cluster lies past the end of the file");
			if (active) {
				c->res->allocated_clusters++;
				if (next_contiguous && e.host_offset != next_contiguous)
					c->res->fragmented_clusters++;
				next_contiguous = e.host_offset + c->cs;
			}
			break;
		case QCOW2_CLUSTER_COMPRESSED:
			/* The last sector of the last compressed cluster may end
			 * past EOF; only whole clusters past it are an error. */
			count(c, e.host_offset, e.csize, "compressed cluster lies past the end of the file");
			if (active) {
				c->res->allocated_clusters++;
				c->res->compressed_clusters++;
				/* Compressed data shares sectors with its neighbours:
				 * QEMU counts it as fragmented by nature. */
				c->res->fragmented_clusters++;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

/* Reads an L1 table of n entries; NULL (and a corruption) if it cannot. */
static uint8_t *read_l1(struct ck *c, uint64_t off, uint64_t n, const char *what, int *rc)
{
	*rc = 0;
	if (n == 0)
		return NULL;
	if ((off & (c->cs - 1)) || n * 8 > QCOW2_MAX_L1_BYTES || off == 0 ||
	    off > c->file_size || n * 8 > c->file_size - off) {
		corrupt(c, what, off);
		return NULL;
	}
	uint8_t *t = malloc(n * 8);
	if (!t) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = read_at(c, t, n * 8, off);
	if (*rc) {
		free(t);
		return NULL;
	}
	return t;
}

static int walk_l1(struct ck *c, uint64_t l1_off, uint64_t n, bool active, uint8_t *l2)
{
	int rc;
	uint8_t *l1 = read_l1(c, l1_off, n, active ? "active L1 table is invalid or past EOF"
							 : "snapshot L1 table is invalid or past EOF", &rc);
	if (!l1)
		return rc;
	count(c, l1_off, n * 8, "L1 table lies past the end of the file");
	char err[160];
	for (uint64_t i = 0; i < n && !rc; i++) {
		uint64_t l2_off;
		bool copied;
		if (qcow2_l1_entry_decode(qcow2_be64(l1 + i * 8), c->h.cluster_bits, &l2_off, &copied,
					  err, sizeof(err))) {
			corrupt(c, err, l1_off + i * 8);
			continue;
		}
		if (l2_off && count(c, l2_off, c->cs, "L2 table lies past the end of the file"))
			rc = walk_l2(c, l2_off, active, l2);
	}
	free(l1);
	return rc;
}

static int walk_snapshots(struct ck *c, uint8_t *l2)
{
	uint64_t off = c->h.snapshots_offset;
	int rc = 0;
	for (uint32_t i = 0; i < c->h.nb_snapshots && !rc; i++) {
		uint8_t e[40];
		if (off - c->h.snapshots_offset > MAX_SNAPSHOT_TABLE || read_at(c, e, sizeof(e), off)) {
			corrupt(c, "snapshot table runs past the end of the file", off);
			return 0;
		}
		uint64_t l1_off = qcow2_be64(e);
		uint32_t l1_size = (uint32_t)e[8] << 24 | (uint32_t)e[9] << 16 | e[10] << 8 | e[11];
		uint32_t id_len = (uint32_t)e[12] << 8 | e[13], name_len = (uint32_t)e[14] << 8 | e[15];
		uint32_t extra = (uint32_t)e[36] << 24 | (uint32_t)e[37] << 16 | e[38] << 8 | e[39];
		off += (40ull + extra + id_len + name_len + 7) & ~7ull;
		rc = walk_l1(c, l1_off, l1_size, false, l2);
	}
	count(c, c->h.snapshots_offset, off - c->h.snapshots_offset,
	      "snapshot table lies past the end of the file");
	return rc;
}

/* Persistent bitmaps own clusters too: the directory, each bitmap table
 * and the data clusters it lists. Only while autoclear bit 0 vouches for
 * them: once a program without bitmap support (kvmini) has cleared it,
 * QEMU drops the extension and its clusters are leaks, and so they are
 * here. */
static int walk_bitmaps(struct ck *c, const struct qcow2_extension *x)
{
	if (x->len < 24) {
		corrupt(c, "bitmaps extension too short", 0);
		return 0;
	}
	uint64_t dir_size = qcow2_be64(x->data + 8), dir_off = qcow2_be64(x->data + 16);
	if (dir_size > MAX_BITMAP_DIR || dir_off > c->file_size || dir_size > c->file_size - dir_off) {
		corrupt(c, "bitmap directory lies past the end of the file", dir_off);
		return 0;
	}
	uint8_t *dir = malloc(dir_size ? dir_size : 1);
	if (!dir)
		return -ENOMEM;
	int rc = read_at(c, dir, dir_size, dir_off);
	if (!rc)
		count(c, dir_off, dir_size, "bitmap directory lies past the end of the file");
	for (uint64_t p = 0; !rc && p + 24 <= dir_size;) {
		const uint8_t *e = dir + p;
		uint64_t t_off = qcow2_be64(e);
		uint64_t t_size = (uint32_t)e[8] << 24 | (uint32_t)e[9] << 16 | e[10] << 8 | e[11];
		uint32_t name = (uint32_t)e[18] << 8 | e[19];
		uint32_t extra = (uint32_t)e[20] << 24 | (uint32_t)e[21] << 16 | e[22] << 8 | e[23];
		p += (24ull + extra + name + 7) & ~7ull;
		if (t_size == 0)
			continue;
		int trc;
		uint8_t *t = read_l1(c, t_off, t_size, "bitmap table is invalid or past EOF", &trc);
		if (!t) {
			rc = trc;
			continue;
		}
		count(c, t_off, t_size * 8, "bitmap table lies past the end of the file");
		for (uint64_t k = 0; k < t_size; k++) {
			uint64_t d = qcow2_be64(t + k * 8) & QCOW2_OFFSET_MASK;
			if (d)
				count(c, d, c->cs, "bitmap data cluster lies past the end of the file");
		}
		free(t);
	}
	free(dir);
	return rc;
}

/* Reads the refcount table, counts it and its blocks, keeps the valid
 * block offsets. */
static int walk_reftable(struct ck *c)
{
	uint64_t bytes = (uint64_t)c->h.refcount_table_clusters << c->h.cluster_bits;
	uint8_t *t = malloc(bytes);
	c->nb_blocks = bytes / 8;
	c->blocks = calloc(c->nb_blocks, sizeof(uint64_t));
	if (!t || !c->blocks) {
		free(t);
		return -ENOMEM;
	}
	/* The header check allows a table whose last cluster the file ends
	 * in; what is missing reads as zero. */
	memset(t, 0, bytes);
	uint64_t have = c->file_size - c->h.refcount_table_offset;
	int rc = read_at(c, t, have < bytes ? have : bytes, c->h.refcount_table_offset);
	if (rc) {
		free(t);
		return rc;
	}
	count(c, c->h.refcount_table_offset, bytes, "refcount table lies past the end of the file");
	char err[160];
	for (uint64_t j = 0; j < c->nb_blocks; j++) {
		uint64_t e = qcow2_be64(t + j * 8), off;
		if (!e)
			continue;
		bool bad = qcow2_reftable_entry_decode(e, c->h.cluster_bits, &off, err, sizeof(err));
		if (bad) {
			corrupt(c, err, c->h.refcount_table_offset + j * 8);
		} else if (off < c->file_size && c->ref[off >> c->h.cluster_bits]) {
			/* Also keeps a table that names one block a million times
			 * from making the comparison quadratic. */
			corrupt(c, "refcount block overlaps other metadata or another block", off);
			bad = true;
		} else if (!count(c, off, c->cs, "refcount block lies past the end of the file")) {
			bad = true;
		}
		if (bad) {
			c->need_rebuild = true;
			c->ref_unfixed++;
		} else {
			c->blocks[j] = off;
		}
	}
	free(t);
	return 0;
}

/* Compares stored with counted refcounts block by block, fixing in place
 * what the repair mode allows. */
static int compare_refcounts(struct ck *c, uint8_t *blk)
{
	uint64_t per = qcow2_refblock_entries(&c->h);
	unsigned order = c->h.refcount_order;
	/* Like qemu-img, only clusters inside the file: a refcount past EOF
	 * wastes nothing but address space. */
	for (uint64_t j = 0; j * per < c->nb; j++) {
		bool have = j < c->nb_blocks && c->blocks[j];
		bool dirty = false;
		int rc = have ? read_at(c, blk, c->cs, c->blocks[j]) : 0;
		if (rc)
			return rc;
		for (uint64_t i = 0; i < per && j * per + i < c->nb; i++) {
			uint64_t cl = j * per + i;
			uint64_t want = c->ref[cl];
			uint64_t got = have ? qcow2_refcount_get(blk, i, order) : 0;
			/* qemu-img's image end: referenced or refcounted. */
			if (got || want)
				c->end = cl + 1;
			if (got == want)
				continue;
			uint64_t off = cl << c->h.cluster_bits;
			if (got > want) {
				c->res->leaks++;
				note(c, false, "cluster 0x%llx leaked: refcount %llu, %llu references",
				     (unsigned long long)off, (unsigned long long)got, (unsigned long long)want);
				if (c->fix & QCOW2_REPAIR_LEAKS) {
					qcow2_refcount_set(blk, i, order, want);
					c->res->leaks_fixed++;
					dirty = true;
				}
				continue;
			}
			c->res->corruptions++;
			note(c, true, "cluster 0x%llx: refcount %llu, but %llu references",
			     (unsigned long long)off, (unsigned long long)got, (unsigned long long)want);
			if ((c->fix & QCOW2_REPAIR_ALL) != QCOW2_REPAIR_ALL)
				continue;
			if (have && qcow2_refcount_set(blk, i, order, want) == 0) {
				c->res->corruptions_fixed++;
				dirty = true;
			} else {
				/* No block to fix it in, or the count does not fit in
				 * refcount_bits (a rebuild cannot help then, and says so). */
				c->need_rebuild = true;
				c->ref_unfixed++;
			}
		}
		if (dirty && (rc = write_at(c, blk, c->cs, c->blocks[j])))
			return rc;
	}
	return 0;
}

/* New refcount blocks and table past the end of the file, from the
 * counted references (minus the old refcount structures, which become
 * free). Then the header points at them. */
static int rebuild(struct ck *c, uint8_t *blk)
{
	/* Uncount the old structures. */
	uint64_t rt_first = c->h.refcount_table_offset >> c->h.cluster_bits;
	for (uint64_t i = 0; i < c->h.refcount_table_clusters && rt_first + i < c->nb; i++)
		c->ref[rt_first + i]--;
	for (uint64_t j = 0; j < c->nb_blocks; j++)
		if (c->blocks[j])
			c->ref[c->blocks[j] >> c->h.cluster_bits]--;

	uint64_t per = qcow2_refblock_entries(&c->h), start = c->nb, rb = 1, rt = 1;
	for (;;) {
		uint64_t n = start + rb + rt;
		uint64_t nrb = (n + per - 1) / per, nrt = (nrb * 8 + c->cs - 1) / c->cs;
		if (nrb <= rb && nrt <= rt)
			break;
		rb = nrb > rb ? nrb : rb;
		rt = nrt > rt ? nrt : rt;
	}
	if (rt * c->cs > QCOW2_MAX_REFTABLE_BYTES) {
		c->res->check_errors++;
		note(c, true, "cannot rebuild refcounts: the table would exceed 8 MiB");
		return 0;
	}
	uint64_t end = start + rb + rt;
	unsigned order = c->h.refcount_order;
	for (uint64_t j = 0; j < rb; j++) {
		memset(blk, 0, c->cs);
		for (uint64_t i = 0; i < per && j * per + i < end; i++) {
			uint64_t cl = j * per + i;
			uint64_t want = cl < c->nb ? c->ref[cl] : 1;   /* the new clusters: 1 */
			if (qcow2_refcount_set(blk, i, order, want)) {
				c->res->check_errors++;
				note(c, true, "cannot rebuild refcounts: cluster 0x%llx has %llu references",
				     (unsigned long long)(cl << c->h.cluster_bits), (unsigned long long)want);
				return 0;
			}
		}
		int rc = write_at(c, blk, c->cs, (start + j) * c->cs);
		if (rc)
			return rc;
	}
	for (uint64_t t = 0; t < rt; t++) {
		memset(blk, 0, c->cs);
		for (uint64_t k = 0; k < c->cs / 8 && t * (c->cs / 8) + k < rb; k++)
			qcow2_put_be64(blk + k * 8, (start + t * (c->cs / 8) + k) * c->cs);
		int rc = write_at(c, blk, c->cs, (start + rb + t) * c->cs);
		if (rc)
			return rc;
	}
	/* The new structures must be on disk before the header names them. */
	if (fdatasync(c->fd) < 0)
		return -errno;
	uint8_t hdr[12];
	qcow2_put_be64(hdr, (start + rb) * c->cs);
	hdr[8] = (uint8_t)(rt >> 24), hdr[9] = (uint8_t)(rt >> 16);
	hdr[10] = (uint8_t)(rt >> 8), hdr[11] = (uint8_t)rt;
	int rc = write_at(c, hdr, sizeof(hdr), 48);
	if (rc)
		return rc;
	c->h.refcount_table_offset = (start + rb) * c->cs;
	c->h.refcount_table_clusters = (uint32_t)rt;
	free(c->blocks);
	c->nb_blocks = rb;
	c->blocks = calloc(rb, sizeof(uint64_t));
	if (!c->blocks)
		return -ENOMEM;
	for (uint64_t j = 0; j < rb; j++)
		c->blocks[j] = (start + j) * c->cs;
	c->cache_off = 0;
	c->end = start + rb + rt;
	/* Everything found in the refcount structures is fixed now. */
	c->res->corruptions_fixed += c->ref_unfixed;
	c->ref_unfixed = 0;
	c->need_rebuild = false;
	return 0;
}

/* The stored refcount of the cluster at off (0 where no block is). */
static int stored_refcount(struct ck *c, uint64_t off, uint64_t *out)
{
	uint64_t cl = off >> c->h.cluster_bits, per = qcow2_refblock_entries(&c->h);
	uint64_t j = cl / per;
	*out = 0;
	if (j >= c->nb_blocks || !c->blocks[j])
		return 0;
	if (c->cache_off != c->blocks[j]) {
		int rc = read_at(c, c->cache, c->cs, c->blocks[j]);
		if (rc)
			return rc;
		c->cache_off = c->blocks[j];
	}
	*out = qcow2_refcount_get(c->cache, cl % per, c->h.refcount_order);
	return 0;
}

/* COPIED must be set exactly when the refcount is 1, in the active L1 and
 * the L2 tables it reaches. */
static int check_copied(struct ck *c, uint8_t *l2)
{
	int rc;
	uint64_t n = c->h.l1_size, l1_off = c->h.l1_table_offset;
	uint8_t *l1 = read_l1(c, l1_off, n, "active L1 table is invalid or past EOF", &rc);
	if (!l1)
		return rc;
	bool fix = (c->fix & QCOW2_REPAIR_ALL) == QCOW2_REPAIR_ALL, l1_dirty = false;
	char err[160];
	for (uint64_t i = 0; i < n && !rc; i++) {
		uint64_t e = qcow2_be64(l1 + i * 8), l2_off, refs;
		bool copied;
		if (qcow2_l1_entry_decode(e, c->h.cluster_bits, &l2_off, &copied, err, sizeof(err)) ||
		    !l2_off || l2_off >= c->file_size)
			continue;
		if ((rc = stored_refcount(c, l2_off, &refs)))
			break;
		if ((refs == 1) != copied) {
			corrupt(c, refs == 1 ? "L2 table with refcount 1 lacks COPIED"
					     : "L2 table with refcount other than 1 has COPIED", l2_off);
			if (fix) {
				qcow2_put_be64(l1 + i * 8, e ^ QCOW2_OFLAG_COPIED);
				l1_dirty = true;
				c->res->corruptions_fixed++;
			}
		}
		if ((rc = read_at(c, l2, c->cs, l2_off)))
			break;
		bool l2_dirty = false;
		for (uint64_t k = 0; k < qcow2_l2_entries(&c->h); k++) {
			uint64_t le = qcow2_be64(l2 + k * 8);
			struct qcow2_l2_info d;
			if (qcow2_l2_entry_decode(le, c->h.version, c->h.cluster_bits, &d, err, sizeof(err)) ||
			    (d.kind != QCOW2_CLUSTER_NORMAL && d.kind != QCOW2_CLUSTER_ZERO_ALLOC) ||
			    d.host_offset >= c->file_size)
				continue;
			if ((rc = stored_refcount(c, d.host_offset, &refs)))
				break;
			if ((refs == 1) == d.copied)
				continue;
			corrupt(c, refs == 1 ? "data cluster with refcount 1 lacks COPIED"
					     : "data cluster with refcount other than 1 has COPIED", d.host_offset);
			if (fix) {
				qcow2_put_be64(l2 + k * 8, le ^ QCOW2_OFLAG_COPIED);
				l2_dirty = true;
				c->res->corruptions_fixed++;
			}
		}
		if (!rc && l2_dirty)
			rc = write_at(c, l2, c->cs, l2_off);
	}
	if (!rc && l1_dirty)
		rc = write_at(c, l1, n * 8, l1_off);
	free(l1);
	return rc;
}

/* After a complete repair the image is consistent: drop the dirty bit
 * (and, for a full repair, the corrupt bit), as QEMU does. */
static int clear_dirty(struct ck *c)
{
	uint64_t bits = QCOW2_INCOMPAT_DIRTY;
	if ((c->fix & QCOW2_REPAIR_ALL) == QCOW2_REPAIR_ALL)
		bits |= QCOW2_INCOMPAT_CORRUPT;
	if (c->h.version < 3 || !(c->h.incompatible_features & bits))
		return 0;
	if (fdatasync(c->fd) < 0)
		return -errno;
	uint8_t v[8];
	qcow2_put_be64(v, c->h.incompatible_features & ~bits);
	int rc = write_at(c, v, sizeof(v), 72);
	if (!rc && fdatasync(c->fd) < 0)
		rc = -errno;
	return rc;
}

static int open_header(struct ck *c)
{
	struct stat st;
	if (fstat(c->fd, &st) < 0)
		return -errno;
	c->file_size = (uint64_t)st.st_size;
	size_t len = c->file_size < (2u << 20) ? (size_t)c->file_size : (2u << 20);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	int rc = read_at(c, buf, len, 0);
	if (!rc) {
		char err[200];
		rc = qcow2_header_parse(&c->h, buf, len, c->file_size, err, sizeof(err));
		if (rc) {
			c->res->check_errors++;
			snprintf(c->res->message, sizeof(c->res->message), "%s", err);
		}
	}
	free(buf);
	return rc;
}

static int run(struct ck *c)
{
	int rc = open_header(c);
	if (rc)
		return rc;
	c->cs = qcow2_cluster_size(&c->h);
	c->nb = (c->file_size + c->cs - 1) >> c->h.cluster_bits;
	c->res->total_clusters = (c->h.size + c->cs - 1) >> c->h.cluster_bits;
	if (c->nb > MAX_COUNTED_CLUSTERS) {
		c->res->check_errors++;
		snprintf(c->res->message, sizeof(c->res->message),
			 "image has %llu clusters, more than the checker counts in 1 GiB",
			 (unsigned long long)c->nb);
		return -EFBIG;
	}
	c->ref = calloc(c->nb ? c->nb : 1, sizeof(uint32_t));
	uint8_t *l2 = malloc(c->cs);
	c->cache = malloc(c->cs);
	if (!c->ref || !l2 || !c->cache) {
		free(l2);
		return -ENOMEM;
	}
	count(c, 0, c->cs, "header");
	rc = walk_l1(c, c->h.l1_table_offset, c->h.l1_size, true, l2);
	if (!rc && c->h.nb_snapshots)
		rc = walk_snapshots(c, l2);
	for (size_t i = 0; !rc && i < c->h.nb_extensions; i++)
		if (c->h.extensions[i].type == QCOW2_EXT_BITMAPS &&
		    (c->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
			rc = walk_bitmaps(c, &c->h.extensions[i]);
	if (!rc)
		rc = walk_reftable(c);
	if (!rc)
		rc = compare_refcounts(c, l2);
	if (!rc && c->need_rebuild && (c->fix & QCOW2_REPAIR_ALL) == QCOW2_REPAIR_ALL)
		rc = rebuild(c, l2);
	if (!rc)
		rc = check_copied(c, l2);
	if (!rc && c->fix && c->res->corruptions == c->res->corruptions_fixed &&
	    c->res->leaks == c->res->leaks_fixed && !c->res->check_errors)
		rc = clear_dirty(c);
	free(l2);
	return rc;
}

int qcow2_check(int fd, enum qcow2_repair fix, struct qcow2_check_result *res)
{
	const char *filename = res->filename;
	memset(res, 0, sizeof(*res));
	res->filename = filename;
	res->format = "qcow2";
	struct ck c = { .fd = fd, .fix = fix, .res = res };
	int rc = run(&c);
	res->image_end_offset = c.end << c.h.cluster_bits;
	free(c.ref);
	free(c.blocks);
	free(c.cache);
	qcow2_header_free(&c.h);
	return rc;
}
