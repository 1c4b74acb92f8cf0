/* qcow2 metadata: the L2 and refcount caches, the L1 and refcount tables,
 * the cluster allocator and the ordered write-back that keeps the image
 * consistent on disk at every moment (docs/qcow2.md, "Write ordering").
 * Everything here runs with s->lock held, and its I/O is synchronous: a
 * cache miss costs one slice read, and write-back happens at a flush. */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/log.h"

/* ---- the slice cache ------------------------------------------------------ */

int qcow2_cache_init(struct qcow2_cache *c, const char *name, size_t slice, size_t bytes)
{
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->slice = slice;
	c->nslots = (unsigned)(bytes / slice);
	if (c->nslots < 16)
		c->nslots = 16;
	unsigned isize = 1;
	while (isize < 2 * c->nslots)
		isize <<= 1;
	c->index_mask = isize - 1;
	void *mem;
	if (posix_memalign(&mem, 4096, (size_t)c->nslots * slice))
		return -ENOMEM;
	c->mem = mem;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->used = calloc(c->nslots, sizeof(*c->used));
	c->index = calloc(isize, sizeof(*c->index));
	if (!c->slots || !c->used || !c->index) {
		qcow2_cache_free(c);
		return -ENOMEM;
	}
	return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	free(c->mem);
	free(c->slots);
	free(c->used);
	free(c->index);
	memset(c, 0, sizeof(*c));
}

static unsigned hash_of(const struct qcow2_cache *c, uint64_t key)
{
	return (unsigned)(((key >> 9) * 0x9e3779b97f4a7c15ull) >> 32) & c->index_mask;
}

/* The index position holding key, or of the empty position ending its
 * probe sequence. */
static unsigned index_find(const struct qcow2_cache *c, uint64_t key)
{
	unsigned h = hash_of(c, key);
	while (c->index[h] && c->slots[c->index[h] - 1].key != key)
		h = (h + 1) & c->index_mask;
	return h;
}

/* Removal with backward shift: later members of the probe run move up so
 * every lookup still ends at the first empty position. */
static void index_remove(struct qcow2_cache *c, uint64_t key)
{
	unsigned h = index_find(c, key);
	if (!c->index[h])
		return;
	c->index[h] = 0;
	for (unsigned j = (h + 1) & c->index_mask; c->index[j]; j = (j + 1) & c->index_mask) {
		unsigned home = hash_of(c, c->slots[c->index[j] - 1].key);
		/* Move j's entry into the hole if its home is not in (h, j]. */
		bool stays = h <= j ? (home > h && home <= j) : (home > h || home <= j);
		if (!stays) {
			c->index[h] = c->index[j];
			c->index[j] = 0;
			h = j;
		}
	}
}

static uint8_t *slot_data(const struct qcow2_cache *c, unsigned i)
{
	return c->mem + (size_t)i * c->slice;
}

/* A slot for a new slice: a free one, else the least recently used clean
 * one. When every slot is dirty, everything is written back first. */
static int slot_take(struct qcow2 *s, struct qcow2_cache *c, unsigned *out)
{
	/* Slots fill in order until the cache is full: no scan until then. */
	if (c->nused < c->nslots) {
		*out = c->nused++;
		return 0;
	}
	for (int pass = 0; pass < 2; pass++) {
		unsigned best = c->nslots;
		for (unsigned i = 0; i < c->nslots; i++) {
			if (!c->used[i]) {
				*out = i;
				return 0;
			}
			if (!c->slots[i].dirty &&
			    (best == c->nslots || c->slots[i].last_use < c->slots[best].last_use))
				best = i;
		}
		if (best < c->nslots) {
			index_remove(c, c->slots[best].key);
			c->used[best] = false;
			*out = best;
			return 0;
		}
		int r = qcow2_writeback(s);
		if (r < 0)
			return r;
	}
	return -EIO;
}

uint8_t *qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t key, bool fresh,
			 int *err)
{
	unsigned h = index_find(c, key);
	if (c->index[h]) {
		unsigned i = c->index[h] - 1;
		c->slots[i].last_use = ++c->tick;
		c->hits++;
		if (fresh)
			memset(slot_data(c, i), 0, c->slice);
		return slot_data(c, i);
	}
	c->misses++;
	unsigned i;
	int r = slot_take(s, c, &i);
	if (r < 0) {
		*err = r;
		return NULL;
	}
	uint8_t *d = slot_data(c, i);
	if (fresh) {
		memset(d, 0, c->slice);
	} else if ((r = file_pread(s->f, d, c->slice, key)) < 0) {
		log_err("disk %s: cannot read a %s table at %llu: %s", s->b->path, c->name,
			(unsigned long long)key, strerror(-r));
		*err = r;
		return NULL;
	}
	c->slots[i] = (struct qcow2_cache_slot){ .key = key, .last_use = ++c->tick };
	c->used[i] = true;
	h = index_find(c, key);   /* a write-back may have reshuffled nothing, but be sure */
	c->index[h] = i + 1;
	return d;
}

void qcow2_cache_dirty(struct qcow2_cache *c, const uint8_t *slice)
{
	unsigned i = (unsigned)((size_t)(slice - c->mem) / c->slice);
	if (!c->slots[i].dirty)
		c->ndirty++;
	c->slots[i].dirty = true;
}

static int cache_write_dirty(struct qcow2 *s, struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->nslots && c->ndirty; i++) {
		if (!c->used[i] || !c->slots[i].dirty)
			continue;
		int r = file_pwrite(s->f, slot_data(c, i), c->slice, c->slots[i].key);
		if (r < 0) {
			log_err("disk %s: cannot write a %s table: %s", s->b->path, c->name,
				strerror(-r));
			return r;
		}
		c->slots[i].dirty = false;
		c->ndirty--;
	}
	return 0;
}

/* ---- corruption ------------------------------------------------------------ */

/* Metadata that cannot be right: the request fails, later writes too (as
 * QEMU marks the image corrupt), and the user hears of it once. */
static int corrupt(struct qcow2 *s, const char *what)
{
	if (!s->broken)
		log_err("disk %s: the image is corrupt (%s); writes are refused, run "
			"'kvmini-img check -r all'", s->b->path, what);
	s->broken = true;
	return -EIO;
}

/* ---- L2 entries ------------------------------------------------------------ */

static int l2_table(struct qcow2 *s, uint64_t gc, uint64_t *l2off, uint64_t *idx)
{
	uint64_t l1i = gc / s->l2_entries;
	*idx = gc % s->l2_entries;
	*l2off = 0;
	if (l1i >= s->l1_size)
		return 0;
	bool copied;
	char err[128];
	if (qcow2_l1_entry_decode(s->l1[l1i], s->cluster_bits, l2off, &copied, err, sizeof(err)))
		return corrupt(s, err);
	if (*l2off && *l2off + s->cs > (s->end << s->cluster_bits))
		return corrupt(s, "an L2 table lies past the end of the image");
	return 0;
}

static uint8_t *l2_slice(struct qcow2 *s, uint64_t l2off, uint64_t idx, bool fresh,
			 unsigned *pos, int *err)
{
	uint64_t per = s->slice / 8;
	*pos = (unsigned)(idx % per);
	return qcow2_cache_get(s, &s->l2c, l2off + (idx / per) * s->slice, fresh, err);
}

int qcow2_l2_get(struct qcow2 *s, uint64_t gc, uint64_t *entry)
{
	uint64_t l2off, idx;
	int r = l2_table(s, gc, &l2off, &idx);
	*entry = 0;
	if (r < 0 || !l2off)
		return r;
	unsigned pos;
	uint8_t *d = l2_slice(s, l2off, idx, false, &pos, &r);
	if (!d)
		return r;
	*entry = qcow2_be64(d + 8 * pos);
	return 0;
}

/* Writes zeroes over [off, off + len) of the file (a new table). */
static int write_zeroes_sync(struct qcow2 *s, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < s->zeroes_len ? (size_t)len : s->zeroes_len;
		int r = file_pwrite(s->f, s->zeroes, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static void l1_mark(struct qcow2 *s, uint64_t i)
{
	if (s->l1_dirty_lo >= s->l1_dirty_hi) {
		s->l1_dirty_lo = (uint32_t)i;
		s->l1_dirty_hi = (uint32_t)i + 1;
	} else {
		if (i < s->l1_dirty_lo)
			s->l1_dirty_lo = (uint32_t)i;
		if (i + 1 > s->l1_dirty_hi)
			s->l1_dirty_hi = (uint32_t)i + 1;
	}
}

int qcow2_l2_set(struct qcow2 *s, uint64_t gc, uint64_t entry)
{
	uint64_t l2off, idx;
	int r = l2_table(s, gc, &l2off, &idx);
	if (r < 0)
		return r;
	bool fresh = false;
	if (!l2off) {
		uint64_t l1i = gc / s->l2_entries, got;
		if (l1i >= s->l1_size)
			return -EINVAL;
		int64_t t = qcow2_alloc(s, 1, &got, NULL);
		if (t < 0)
			return (int)t;
		/* The new table is zero on disk before the L1 entry that
		 * points at it is written (at write-back, after a sync). */
		if ((r = write_zeroes_sync(s, (uint64_t)t, s->cs)) < 0)
			return r;
		l2off = (uint64_t)t;
		s->l1[l1i] = l2off | QCOW2_OFLAG_COPIED;
		l1_mark(s, l1i);
		fresh = true;
	}
	unsigned pos;
	uint8_t *d = l2_slice(s, l2off, idx, fresh, &pos, &r);
	if (!d)
		return r;
	qcow2_put_be64(d + 8 * pos, entry);
	qcow2_cache_dirty(&s->l2c, d);
	return 0;
}

/* ---- refcounts ------------------------------------------------------------- */

static uint8_t *rb_slice(struct qcow2 *s, uint64_t block, uint64_t i, bool fresh, uint64_t *pos,
			 int *err)
{
	unsigned bits = 1u << s->h.refcount_order;
	uint64_t per = s->slice * 8 / bits;
	*pos = i % per;
	return qcow2_cache_get(s, &s->rbc, block + (i / per) * s->slice, fresh, err);
}

static int rt_block(struct qcow2 *s, uint64_t rti, uint64_t *block)
{
	*block = 0;
	if (rti >= s->rt_entries)
		return 0;
	char err[128];
	if (qcow2_reftable_entry_decode(s->rt[rti], s->cluster_bits, block, err, sizeof(err)))
		return corrupt(s, err);
	if (*block && *block + s->cs > (s->end << s->cluster_bits))
		return corrupt(s, "a refcount block lies past the end of the image");
	return 0;
}

int qcow2_rc_get(struct qcow2 *s, uint64_t hc, uint64_t *rc)
{
	uint64_t block;
	int r = rt_block(s, hc / s->rb_entries, &block);
	*rc = 0;
	if (r < 0 || !block)
		return r;
	uint64_t pos;
	uint8_t *d = rb_slice(s, block, hc % s->rb_entries, false, &pos, &r);
	if (!d)
		return r;
	*rc = qcow2_refcount_get(d, pos, s->h.refcount_order);
	return 0;
}

static void rt_mark(struct qcow2 *s, uint64_t i)
{
	if (s->rt_dirty_lo >= s->rt_dirty_hi) {
		s->rt_dirty_lo = i;
		s->rt_dirty_hi = i + 1;
	} else {
		if (i < s->rt_dirty_lo)
			s->rt_dirty_lo = i;
		if (i + 1 > s->rt_dirty_hi)
			s->rt_dirty_hi = i + 1;
	}
}

static int refcount_set(struct qcow2 *s, uint64_t hc, uint64_t v);

/* Clusters appended at the end of the image for tables: no search. */
static uint64_t append(struct qcow2 *s, uint64_t n)
{
	uint64_t c = s->end;
	s->end += n;
	return c;
}

static int grow_reftable(struct qcow2 *s, uint64_t need);

/* The refcount block for table index rti exists (made, and counted in
 * itself or in another block, when it did not). */
static int ensure_refblock(struct qcow2 *s, uint64_t rti)
{
	int r;
	if (rti >= s->rt_entries && (r = grow_reftable(s, rti + 1)) < 0)
		return r;
	uint64_t block;
	if ((r = rt_block(s, rti, &block)) < 0 || block)
		return r;
	uint64_t c = append(s, 1);
	if ((r = write_zeroes_sync(s, c << s->cluster_bits, s->cs)) < 0)
		return r;
	s->rt[rti] = c << s->cluster_bits;
	rt_mark(s, rti);
	return refcount_set(s, c, 1);
}

static int refcount_set(struct qcow2 *s, uint64_t hc, uint64_t v)
{
	uint64_t rti = hc / s->rb_entries, block, pos;
	int r = ensure_refblock(s, rti);
	if (r < 0 || (r = rt_block(s, rti, &block)) < 0)
		return r;
	uint8_t *d = rb_slice(s, block, hc % s->rb_entries, false, &pos, &r);
	if (!d)
		return r;
	if (qcow2_refcount_set(d, pos, s->h.refcount_order, v) < 0)
		return corrupt(s, "a refcount overflowed");
	qcow2_cache_dirty(&s->rbc, d);
	return 0;
}

/* A bigger refcount table, written beside the old one and switched to in
 * one header write, so a crash leaves either table whole (and at most
 * leaked clusters). */
static int grow_reftable(struct qcow2 *s, uint64_t need)
{
	uint64_t per = s->cs / 8;
	uint64_t n = (need + per - 1) / per;
	if (n < 2 * (uint64_t)s->rt_clusters)
		n = 2 * (uint64_t)s->rt_clusters;
	/* The table's own clusters and the blocks that count them must fit. */
	n += 1;
	if (n * s->cs > QCOW2_MAX_REFTABLE_BYTES) {
		log_err("disk %s: the refcount table would exceed %u MiB", s->b->path,
			QCOW2_MAX_REFTABLE_BYTES >> 20);
		return -EFBIG;
	}
	uint64_t *nt = calloc(n * per, sizeof(uint64_t));
	if (!nt)
		return -ENOMEM;
	memcpy(nt, s->rt, s->rt_entries * sizeof(uint64_t));
	uint64_t *old = s->rt, old_off = s->rt_offset, old_n = s->rt_clusters;
	uint64_t t = append(s, n);
	s->rt = nt;
	s->rt_entries = n * per;
	s->rt_offset = t << s->cluster_bits;
	s->rt_clusters = (uint32_t)n;
	int r = 0;
	for (uint64_t i = 0; i < n && r == 0; i++)
		r = refcount_set(s, t + i, 1);
	/* Refcounts first, then the table, then the header: each durable
	 * before the next refers to it. */
	uint8_t *buf = NULL;
	if (r == 0)
		r = cache_write_dirty(s, &s->rbc);
	if (r == 0 && !(buf = malloc(n * s->cs)))
		r = -ENOMEM;
	if (r == 0) {
		for (uint64_t i = 0; i < n * per; i++)
			qcow2_put_be64(buf + 8 * i, s->rt[i]);
		r = file_pwrite(s->f, buf, n * s->cs, s->rt_offset);
	}
	free(buf);
	if (r == 0)
		r = file_sync(s->f);
	if (r == 0) {
		uint8_t hdr[12];
		qcow2_put_be64(hdr, s->rt_offset);
		hdr[8] = (uint8_t)(n >> 24);
		hdr[9] = (uint8_t)(n >> 16);
		hdr[10] = (uint8_t)(n >> 8);
		hdr[11] = (uint8_t)n;
		r = qcow2_write_header_field(s, 48, hdr, 12);
	}
	if (r == 0)
		r = file_sync(s->f);
	if (r < 0) {
		log_err("disk %s: cannot grow the refcount table: %s", s->b->path, strerror(-r));
		return r;
	}
	s->rt_dirty_lo = s->rt_dirty_hi = 0;
	s->h.refcount_table_offset = s->rt_offset;
	s->h.refcount_table_clusters = s->rt_clusters;
	free(old);
	for (uint64_t i = 0; i < old_n; i++) {
		struct qcow2_l2_info o = { .kind = QCOW2_CLUSTER_NORMAL,
					   .host_offset = old_off + i * s->cs };
		if ((r = qcow2_free_entry(s, &o)) < 0)
			return r;
	}
	return 0;
}

/* The file grows ahead of the allocations, in steps: a write inside the
 * file's length runs in parallel with others, while one that extends the
 * file waits for the file system's size update (on ext4 allocating 4 KiB
 * writes at queue depth 32 ran about 2x faster this way). close trims it
 * back to the last cluster. Failure (a block device) just stops trying. */
static void grow_file(struct qcow2 *s)
{
	uint64_t need = s->end << s->cluster_bits;
	if (need <= s->file_len)
		return;
	uint64_t step = need / 8 > (16u << 20) ? need / 8 : (16u << 20);
	if (step > (1u << 30))
		step = 1u << 30;
	if (ftruncate(s->f->fd, (off_t)(need + step)) == 0)
		s->file_len = need + step;
	else
		s->file_len = UINT64_MAX;
}

int64_t qcow2_alloc(struct qcow2 *s, uint64_t n, uint64_t *got, bool *fresh)
{
	uint64_t start = s->end, len = 0, old_end = s->end;
	for (uint64_t i = s->free_hint; i < s->end; i++) {
		uint64_t rc;
		int r = qcow2_rc_get(s, i, &rc);
		if (r < 0)
			return r;
		if (rc) {
			if (len)
				break;
			if (i == s->free_hint)
				s->free_hint = i + 1;
			continue;
		}
		if (!len)
			start = i;
		if (++len == n)
			break;
	}
	if (!len || start + len == s->end) {
		/* Nothing free below the end, or a run reaching it: extend. */
		if (!len)
			start = s->end;
		uint64_t more = n - len;
		s->end = start + n;
		len += more;
	}
	if ((start + len) << s->cluster_bits > QCOW2_OFFSET_MASK) {
		log_err("disk %s: the image file would exceed its 64 PiB limit", s->b->path);
		return -EFBIG;
	}
	for (uint64_t i = 0; i < len; i++) {
		int r = refcount_set(s, start + i, 1);
		if (r < 0)
			return r;
	}
	if (start == s->free_hint)
		s->free_hint = start + len;
	grow_file(s);
	*got = len;
	if (fresh)
		*fresh = start >= old_end;
	return (int64_t)(start << s->cluster_bits);
}

int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t len)
{
	uint64_t next = s->compressed_next, in = next & (s->cs - 1);
	int r;
	if (next && in && in + len <= s->cs) {
		uint64_t hc = next >> s->cluster_bits, rc;
		if ((r = qcow2_rc_get(s, hc, &rc)) < 0 || (r = refcount_set(s, hc, rc + 1)) < 0)
			return r;
		s->compressed_next = next + len;
		return (int64_t)next;
	}
	uint64_t got;
	int64_t host = qcow2_alloc(s, 1, &got, NULL);
	if (host < 0)
		return host;
	s->compressed_next = (uint64_t)host + len;
	return host;
}

/* ---- freeing --------------------------------------------------------------- */

static int free_push(struct qcow2 *s, uint64_t hc)
{
	if (s->nfrees == QCOW2_MAX_FREES) {
		int r = qcow2_writeback(s);
		if (r < 0)
			return r;
	}
	s->frees[s->nfrees++] = hc;
	return 0;
}

int qcow2_free_entry(struct qcow2 *s, const struct qcow2_l2_info *old)
{
	switch (old->kind) {
	case QCOW2_CLUSTER_NORMAL:
	case QCOW2_CLUSTER_ZERO_ALLOC:
		return free_push(s, old->host_offset >> s->cluster_bits);
	case QCOW2_CLUSTER_COMPRESSED: {
		/* One reference on every host cluster the compressed bytes touch. */
		uint64_t first = old->host_offset >> s->cluster_bits;
		uint64_t last = (old->host_offset + old->csize - 1) >> s->cluster_bits;
		for (uint64_t c = first; c <= last; c++) {
			int r = free_push(s, c);
			if (r < 0)
				return r;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- write-back ------------------------------------------------------------ */

static int write_table(struct qcow2 *s, const uint64_t *t, uint64_t lo, uint64_t hi, uint64_t off)
{
	/* Whole 512-byte sectors around the dirty entries. */
	lo &= ~(uint64_t)63;
	hi = (hi + 63) & ~(uint64_t)63;
	size_t len = (size_t)(hi - lo) * 8;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = lo; i < hi; i++)
		qcow2_put_be64(buf + 8 * (i - lo), t[i]);
	int r = file_pwrite(s->f, buf, len, off + lo * 8);
	free(buf);
	return r;
}

/* The L1 and refcount table arrays are whole clusters in memory (entries
 * past the used size are zero), so rounding to 64 entries stays inside. */
static int write_l1(struct qcow2 *s)
{
	if (s->l1_dirty_lo >= s->l1_dirty_hi)
		return 0;
	int r = write_table(s, s->l1, s->l1_dirty_lo, s->l1_dirty_hi, s->l1_offset);
	if (r == 0)
		s->l1_dirty_lo = s->l1_dirty_hi = 0;
	return r;
}

static int write_rt(struct qcow2 *s)
{
	if (s->rt_dirty_lo >= s->rt_dirty_hi)
		return 0;
	int r = write_table(s, s->rt, s->rt_dirty_lo, s->rt_dirty_hi, s->rt_offset);
	if (r == 0)
		s->rt_dirty_lo = s->rt_dirty_hi = 0;
	return r;
}

int qcow2_writeback(struct qcow2 *s)
{
	bool l2 = s->l2c.ndirty || s->l1_dirty_lo < s->l1_dirty_hi;
	bool rb = s->rbc.ndirty || s->rt_dirty_lo < s->rt_dirty_hi;
	int r = 0;
	if (!l2 && !rb && !s->nfrees)
		return 0;
	/* 1. Guest data before the L2 entries that point at it. */
	if (l2 && (r = file_sync(s->f)) < 0)
		return r;
	/* 2. Refcounts before the L2 and L1 entries that rely on them. */
	if (rb && ((r = cache_write_dirty(s, &s->rbc)) < 0 || (r = write_rt(s)) < 0 ||
		   (r = file_sync(s->f)) < 0))
		return r;
	/* 3. The new mappings. */
	if (l2 && ((r = cache_write_dirty(s, &s->l2c)) < 0 || (r = write_l1(s)) < 0))
		return r;
	/* 4. Dropped references only once nothing on disk points at them. */
	if (s->nfrees) {
		if (l2 && (r = file_sync(s->f)) < 0)
			return r;
		/* Taken off the list first: a cache eviction below may write
		 * back again, and must not apply them twice. A cluster that
		 * may drop to refcount 0 takes no more compressed extents. */
		unsigned n = s->nfrees;
		s->nfrees = 0;
		s->compressed_next = 0;
		for (unsigned i = 0; i < n; i++) {
			uint64_t hc = s->frees[i], rc;
			if ((r = qcow2_rc_get(s, hc, &rc)) < 0)
				return r;
			if (rc == 0) {
				corrupt(s, "a cluster was freed twice");
				continue;
			}
			if ((r = refcount_set(s, hc, rc - 1)) < 0)
				return r;
			if (rc == 1 && hc < s->free_hint)
				s->free_hint = hc;
		}
		if ((r = cache_write_dirty(s, &s->rbc)) < 0 || (r = write_rt(s)) < 0)
			return r;
	}
	return 0;
}

int qcow2_write_header_field(struct qcow2 *s, uint64_t off, const void *v, size_t len)
{
	return file_pwrite(s->f, v, len, off);
}

/* A bigger L1 table, written beside the old one and switched to in one
 * header write (l1_size and l1_table_offset are adjacent). */
int qcow2_grow_l1(struct qcow2 *s, uint64_t need)
{
	if (need <= s->l1_size)
		return 0;
	if (need * 8 > QCOW2_MAX_L1_BYTES) {
		log_err("disk %s: the L1 table would exceed %u MiB", s->b->path,
			QCOW2_MAX_L1_BYTES >> 20);
		return -EFBIG;
	}
	int r = qcow2_writeback(s);
	if (r < 0)
		return r;
	uint64_t n = (need * 8 + s->cs - 1) / s->cs;
	uint64_t *nl1 = calloc(n * s->cs / 8, sizeof(uint64_t));
	if (!nl1)
		return -ENOMEM;
	memcpy(nl1, s->l1, (size_t)s->l1_size * 8);
	uint64_t t = append(s, n);
	for (uint64_t i = 0; i < n && r == 0; i++)
		r = refcount_set(s, t + i, 1);
	if (r == 0 && (r = cache_write_dirty(s, &s->rbc)) == 0 && (r = write_rt(s)) == 0)
		r = write_table(s, nl1, 0, n * s->cs / 8, t << s->cluster_bits);
	if (r == 0)
		r = file_sync(s->f);
	if (r == 0) {
		uint8_t hdr[12];
		hdr[0] = (uint8_t)(need >> 24);
		hdr[1] = (uint8_t)(need >> 16);
		hdr[2] = (uint8_t)(need >> 8);
		hdr[3] = (uint8_t)need;
		qcow2_put_be64(hdr + 4, t << s->cluster_bits);
		r = qcow2_write_header_field(s, 36, hdr, 12);
	}
	if (r == 0)
		r = file_sync(s->f);
	if (r < 0) {
		free(nl1);
		log_err("disk %s: cannot grow the L1 table: %s", s->b->path, strerror(-r));
		return r;
	}
	uint64_t old_off = s->l1_offset;
	uint64_t old_n = ((uint64_t)s->l1_size * 8 + s->cs - 1) / s->cs;
	free(s->l1);
	s->l1 = nl1;
	s->l1_size = (uint32_t)need;
	s->l1_offset = t << s->cluster_bits;
	s->h.l1_size = s->l1_size;
	s->h.l1_table_offset = s->l1_offset;
	for (uint64_t i = 0; i < old_n && old_off; i++) {
		struct qcow2_l2_info o = { .kind = QCOW2_CLUSTER_NORMAL,
					   .host_offset = old_off + i * s->cs };
		if ((r = qcow2_free_entry(s, &o)) < 0)
			return r;
	}
	return 0;
}
