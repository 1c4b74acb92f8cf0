/* virtio-blk (virtio spec 5.2). Queues are served by I/O threads
 * ("workers"), each with its own io_uring: one per queue by default, or one
 * for all the queues of the disk (iothread=disk). A worker sleeps in
 * io_uring waiting for both its queues' kick eventfds (bound to the notify
 * addresses with ioeventfds) and disk completions, pops every available
 * request, submits them in one batch, and on completion writes the status
 * byte, puts the request on the used ring and signals the MSI-X vector's
 * irqfd. No vCPU thread and no exit to userspace is on this path. */
#include "virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/block.h"
#include "block/io_engine.h"
#include "virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define SECTOR 512ULL
#define QUEUE_SIZE 256
#define SEG_MAX (QUEUE_SIZE - 2)        /* header and status take one each */
#define SIZE_MAX_BYTES (1U << 20)       /* largest single segment we accept */
#define MAX_DISCARD_SECTORS (1U << 22)  /* 2 GiB per discard/write-zeroes */
#define MERGE_MAX_BYTES (1U << 20)      /* the largest group of merged requests */

/* The configuration space kvmini offers ends after write_zeroes_may_unmap
 * (60 bytes): newer headers add fields (secure erase) behind it, which
 * belong to features kvmini does not offer, so the driver never reads them. */
#define BLK_CONFIG_SIZE (offsetof(struct virtio_blk_config, unused1) + \
			 sizeof(((struct virtio_blk_config *)0)->unused1))
_Static_assert(BLK_CONFIG_SIZE == 60, "virtio_blk_config up to write_zeroes_may_unmap");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "virtio_blk_config");
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr");
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16,
	       "virtio_blk_discard_write_zeroes");

struct blk_queue;

/* One request in flight; the pool holds one per ring slot, so a request
 * never waits for memory. */
struct blk_req {
	struct blk_queue *bq;
	struct virtq_elem elem;
	struct iovec data[VIRTQ_MAX_CHAIN];
	unsigned ndata;
	uint8_t *status;       /* the status byte in guest memory */
	uint32_t written;      /* bytes the device wrote into the driver's buffers */
	uint64_t len;          /* this request's own data bytes (breq.len may cover a group) */
	bool read;             /* VIRTIO_BLK_T_IN (else T_OUT), for reads and writes */
	struct block_req breq;
	struct blk_req *merged; /* the next request of the group this one leads or is in */
	struct blk_req *next_free;
};

/* An I/O thread and its io_uring, serving queues [first, first + count).
 * Everything a worker touches on the data path is its own. */
struct blk_worker {
	struct virtio_blk *blk;
	unsigned first, count;
	pthread_t thread;
	bool running;
	struct io_engine eng;
	int stop_fd;
	uint64_t stop_buf;
	atomic_bool stopping;
	bool failed;           /* the worker stopped serving: NEEDS_RESET was set */
	uint64_t batches;
};

struct blk_queue {
	struct virtio_blk *blk;
	struct blk_worker *w;
	unsigned index;
	bool enabled;          /* the driver enabled it: the worker serves it */
	uint64_t kick_buf;
	bool notify_pending;
	bool starved;          /* drain stopped with kicks off because every slot was busy */
	struct blk_req *reqs;
	void *drv_area;        /* the block driver's area of each request */
	struct blk_req *free;
	unsigned inflight;
	/* Reads (or writes) popped in one drain that continue each other go to
	 * the disk as one request: the group being built. The queue's worker
	 * owns it; it is empty outside drain_queue(). */
	struct blk_req *group, *group_tail;
	/* Written by this queue's worker only (STAT_INC), read anywhere. */
	struct virtio_blk_stats st;
};

struct virtio_blk {
	struct virtio_dev vd;
	struct block *disk;
	struct virtio_blk_config config;   /* little-endian, as the driver reads it */
	char serial[DISK_SERIAL_MAX];
	char name[32];
	unsigned nqueues, nworkers;
	struct blk_queue queues[VIRTIO_MAX_QUEUES];
	struct blk_worker workers[VIRTIO_MAX_QUEUES];
};

/* The block driver's area of each request, rounded for alignment. */
static size_t drv_stride(const struct block *disk)
{
	return (block_req_priv_size(disk) + 63) & ~(size_t)63;
}

/* Not zeroed: the driver sets up its area for every request, and pages
 * nobody touches (requests never in flight at once) cost nothing. */
static void *drv_area_alloc(const struct block *disk)
{
	void *p;
	size_t stride = drv_stride(disk);
	if (!stride || posix_memalign(&p, 64, QUEUE_SIZE * stride))
		return NULL;
	return p;
}

static uint64_t blk_features(struct virtio_dev *vd)
{
	struct virtio_blk *b = vd->priv;
	uint64_t f = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		     (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	if (b->nqueues > 1)
		f |= 1ULL << VIRTIO_BLK_F_MQ;
	if (b->disk->readonly)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	else {
		if (b->disk->discard_supported)
			f |= 1ULL << VIRTIO_BLK_F_DISCARD;
		if (b->disk->write_zeroes_supported)
			f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	}
	return f;
}

static void blk_config_read(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = vd->priv;
	memcpy(data, (uint8_t *)&b->config + off, len);
}

/* ---- requests --------------------------------------------------------- */

static void complete(struct blk_req *r, uint8_t status)
{
	struct blk_queue *bq = r->bq;
	*r->status = status;
	if (status != VIRTIO_BLK_S_OK)
		STAT_INC(bq->st.errors);
	virtq_push(&bq->blk->vd.queues[bq->index].vq, r->elem.head, r->written + 1);
	bq->notify_pending = true;
	r->next_free = bq->free;
	bq->free = r;
	bq->inflight--;
}

static void io_done(void *opaque, int64_t result)
{
	struct blk_req *r = opaque;
	complete(r, result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* A read or write, alone or leading a group: every request of the group
 * gets the outcome of the one disk request that carried them all. */
static void rw_done(void *opaque, int64_t result)
{
	struct blk_req *r = opaque;
	bool read = r->read;
	uint8_t status = result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	while (r) {
		struct blk_req *next = r->merged;
		r->written = read && result >= 0 ? (uint32_t)r->len : 0;
		complete(r, status);
		r = next;
	}
}

/* Builds r->data from the element: for reads the writable buffers minus the
 * status byte, for writes the readable buffers minus the 16-byte header.
 * The limits we advertise hold: at most seg_max data segments, none longer
 * than size_max (a guest breaking them gets an I/O error, and the host
 * never works on more than it promised). */
static bool collect_data(struct blk_req *r, const struct iovec *iov, unsigned n, size_t skip,
			 size_t drop_tail)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total < skip + drop_tail)
		return false;
	uint64_t want = total - skip - drop_tail;
	r->ndata = 0;
	r->breq.len = want;
	for (unsigned i = 0; i < n && want; i++) {
		size_t len = iov[i].iov_len;
		uint8_t *base = iov[i].iov_base;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		base += skip;
		len -= skip;
		skip = 0;
		if (len > want)
			len = want;
		if (r->ndata == SEG_MAX || len > SIZE_MAX_BYTES)
			return false;
		r->data[r->ndata].iov_base = base;
		r->data[r->ndata].iov_len = len;
		r->ndata++;
		want -= len;
	}
	return true;
}

static void submit_rw(struct blk_queue *bq, struct blk_req *r)
{
	if (r->read)
		block_read(bq->blk->disk, &bq->w->eng, &r->breq);
	else
		block_write(bq->blk->disk, &bq->w->eng, &r->breq); /* read-only: -EROFS */
}

/* Sends the group being built, if any. */
static void send_group(struct blk_queue *bq)
{
	struct blk_req *g = bq->group;
	if (!g)
		return;
	bq->group = bq->group_tail = NULL;
	submit_rw(bq, g);
}

/* Request merging, as QEMU's virtio-blk does it: a read (write) that starts
 * where the group being built ends joins it (its buffers are appended to the
 * leader's iovec), up to MERGE_MAX_BYTES and VIRTQ_MAX_CHAIN segments; any
 * other request sends the group first. A sequential stream at queue depth
 * 32 then costs the host a few large preadv/pwritev instead of 32 small
 * ones. Only whole logical blocks merge, so a request the block layer would
 * refuse alone is still refused alone. */
static void stage_rw(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_req *g = bq->group;
	uint32_t lbs = bq->blk->disk->logical_block_size;
	bool whole = r->len && (r->breq.offset | r->len) % lbs == 0;
	if (g && whole && g->read == r->read && g->breq.offset + g->breq.len == r->breq.offset &&
	    g->ndata + r->ndata <= VIRTQ_MAX_CHAIN && g->breq.len + r->len <= MERGE_MAX_BYTES) {
		memcpy(&g->data[g->ndata], r->data, r->ndata * sizeof(r->data[0]));
		g->ndata += r->ndata;
		g->breq.iovcnt = g->ndata;
		g->breq.len += r->len;
		bq->group_tail->merged = r;
		bq->group_tail = r;
		STAT_INC(bq->st.merged);
		return;
	}
	send_group(bq);
	if (whole)
		bq->group = bq->group_tail = r;
	else
		submit_rw(bq, r);
}

static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t cap = le64toh(b->config.capacity);
	return bytes % SECTOR == 0 && sector <= cap && bytes / SECTOR <= cap - sector;
}

/* Discard and write-zeroes carry one {sector, num_sectors, flags} segment. */
static void submit_range_op(struct blk_req *r, uint32_t type)
{
	struct virtio_blk *b = r->bq->blk;
	struct virtio_blk_discard_write_zeroes seg;
	if (r->breq.len != sizeof(seg) || iov_to_buf(r->data, r->ndata, 0, &seg, sizeof(seg)) !=
						       sizeof(seg)) {
		complete(r, VIRTIO_BLK_S_UNSUPP); /* we advertise one segment per request */
		return;
	}
	uint64_t sector = le64toh(seg.sector);
	uint32_t num_sectors = le32toh(seg.num_sectors), flags = le32toh(seg.flags);
	uint32_t allowed = type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
	if ((flags & ~allowed) || num_sectors > MAX_DISCARD_SECTORS) {
		complete(r, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	if (!range_ok(b, sector, (uint64_t)num_sectors * SECTOR)) {
		complete(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	r->breq.offset = sector * SECTOR;
	r->breq.len = (uint64_t)num_sectors * SECTOR;
	r->breq.iov = NULL;
	r->breq.iovcnt = 0;
	r->breq.may_unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	r->breq.done = io_done;
	if (type == VIRTIO_BLK_T_DISCARD)
		block_discard(b->disk, &r->bq->w->eng, &r->breq);
	else
		block_write_zeroes(b->disk, &r->bq->w->eng, &r->breq);
}

static void submit(struct blk_req *r)
{
	struct blk_queue *bq = r->bq;
	struct virtio_blk *b = bq->blk;
	struct virtq_elem *e = &r->elem;
	struct virtio_blk_outhdr hdr;
	uint32_t type;
	uint64_t sector;

	r->written = 0;
	/* The status byte is the last byte of the last writable buffer. */
	if (e->nin == 0 || e->in[e->nin - 1].iov_len == 0 ||
	    iov_to_buf(e->out, e->nout, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
		/* No place for a status: nothing can be reported; give the
		 * descriptor back with nothing written. */
		atomic_fetch_add_explicit(&b->vd.malformed, 1, memory_order_relaxed);
		virtq_push(&b->vd.queues[bq->index].vq, e->head, 0);
		bq->notify_pending = true;
		r->next_free = bq->free;
		bq->free = r;
		bq->inflight--;
		return;
	}
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	struct iovec *last = &e->in[e->nin - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	r->breq.opaque = r;
	r->breq.may_unmap = false;
	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_OUT)
		send_group(bq);

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		r->read = type == VIRTIO_BLK_T_IN;
		if (!(r->read ? collect_data(r, e->in, e->nin, 0, 1)
			      : collect_data(r, e->out, e->nout, sizeof(hdr), 0)) ||
		    !range_ok(b, sector, r->breq.len))
			break;
		r->len = r->breq.len;
		if (r->read) {
			STAT_INC(bq->st.reads);
			STAT_ADD(bq->st.read_bytes, r->len);
		} else {
			STAT_INC(bq->st.writes);
			STAT_ADD(bq->st.write_bytes, r->len);
		}
		r->merged = NULL;
		r->breq.offset = sector * SECTOR;
		r->breq.iov = r->data;
		r->breq.iovcnt = r->ndata;
		r->breq.done = rw_done;
		stage_rw(bq, r);
		return;
	case VIRTIO_BLK_T_FLUSH:
		STAT_INC(bq->st.flushes);
		r->breq.done = io_done;
		block_flush(b->disk, &bq->w->eng, &r->breq);
		return;
	case VIRTIO_BLK_T_GET_ID:
		if (!collect_data(r, e->in, e->nin, 0, 1))
			break;
		r->written = (uint32_t)buf_to_iov(r->data, r->ndata, 0, b->serial,
						  r->breq.len < DISK_SERIAL_MAX ? r->breq.len
										: DISK_SERIAL_MAX);
		complete(r, VIRTIO_BLK_S_OK);
		return;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!virtio_has_feature(&b->vd, type == VIRTIO_BLK_T_DISCARD ?
						VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES) ||
		    !collect_data(r, e->out, e->nout, sizeof(hdr), 0)) {
			complete(r, VIRTIO_BLK_S_UNSUPP);
			return;
		}
		submit_range_op(r, type);
		return;
	default:
		complete(r, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	complete(r, VIRTIO_BLK_S_IOERR);
}

/* Pops everything the driver made available, with kicks suppressed while
 * we drain, then re-enables them and checks once more (the driver may have
 * added a request just before seeing notifications back on). */
static void drain_queue(struct blk_queue *bq)
{
	struct virtio_blk *b = bq->blk;
	struct virtq *vq = &b->vd.queues[bq->index].vq;
	bool again = true;
	while (again) {
		virtq_set_notify(vq, false);
		while (bq->free) {
			struct blk_req *r = bq->free;
			int n = virtq_pop(vq, &r->elem);
			if (n == 0)
				break;
			bq->free = r->next_free;
			bq->inflight++;
			STAT_INC(bq->st.requests);
			if (n == -EPROTO) {
				bq->free = r;
				bq->inflight--;
				send_group(bq);
				virtio_set_needs_reset(&b->vd);
				return;
			}
			if (n < 0) {
				/* A malformed chain: its head is consumed; report
				 * it as an I/O error if there is a status byte. */
				atomic_fetch_add_explicit(&b->vd.malformed, 1, memory_order_relaxed);
				r->status = NULL;
				virtq_push(vq, r->elem.head, 0);
				bq->notify_pending = true;
				r->next_free = bq->free;
				bq->free = r;
				bq->inflight--;
				continue;
			}
			submit(r);
		}
		send_group(bq);
		if (!bq->free) {
			/* Every slot busy: kicks stay off until completions
			 * free a slot and the thread drains again. */
			bq->starved = true;
			return;
		}
		bq->starved = false;
		virtq_set_notify(vq, true);
		again = virtq_has_avail(vq);
	}
}

static void on_kick(void *opaque, int res);

/* The queue cannot be served any more (the ring refused an SQE, or the
 * engine failed): the driver must reset the device, which stops the worker.
 * One line, then NEEDS_RESET rather than a silent, stuck queue. */
static void worker_failed(struct blk_worker *w, const char *what, int err)
{
	if (!w->failed)
		log_err("%s %s queue %u: %s: %s; the device needs a reset", w->blk->name,
			w->blk->disk->path, w->first, what, strerror(-err));
	w->failed = true;
	virtio_set_needs_reset(&w->blk->vd);
}

static void arm_kick(struct blk_queue *bq)
{
	int r = io_engine_read_eventfd(&bq->w->eng, bq->blk->vd.queues[bq->index].kick_fd,
				       &bq->kick_buf, on_kick, bq);
	if (r < 0)
		worker_failed(bq->w, "cannot wait for kicks", r);
}

static void on_kick(void *opaque, int res)
{
	struct blk_queue *bq = opaque;
	if (atomic_load(&bq->w->stopping))
		return;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		/* Re-arming a read that keeps failing would spin: stop. */
		worker_failed(bq->w, "the kick eventfd failed", res);
		return;
	}
	STAT_INC(bq->st.kicks);
	drain_queue(bq);
	arm_kick(bq);
}

static void on_stop(void *opaque, int res)
{
	struct blk_worker *w = opaque;
	atomic_store(&w->stopping, true);
}

/* One interrupt for everything completed since the last one, if the
 * driver asked for it (EVENT_IDX / NO_INTERRUPT). */
static void flush_notify(struct blk_queue *bq)
{
	if (!bq->notify_pending)
		return;
	bq->notify_pending = false;
	if (virtq_should_notify(&bq->blk->vd.queues[bq->index].vq)) {
		STAT_INC(bq->st.irqs);
		virtio_notify_queue(&bq->blk->vd, bq->index);
	}
}

static bool worker_busy(const struct blk_worker *w)
{
	for (unsigned i = w->first; i < w->first + w->count; i++)
		if (w->blk->queues[i].inflight)
			return true;
	return false;
}

static void *worker_thread(void *arg)
{
	struct blk_worker *w = arg;
	struct virtio_blk *b = w->blk;
	struct blk_queue *q0 = &b->queues[w->first], *qend = q0 + w->count;
	int r = io_engine_read_eventfd(&w->eng, w->stop_fd, &w->stop_buf, on_stop, w);
	if (r < 0) {
		/* Without the stop read the thread could not be told to end;
		 * serve nothing and wait for the reset's stop_worker. */
		worker_failed(w, "cannot wait for the stop signal", r);
		return NULL;
	}
	/* Requests may have been queued before DRIVER_OK; some (GET_ID, bad
	 * requests) complete without disk I/O, so notify right away. */
	for (struct blk_queue *bq = q0; bq < qend; bq++) {
		if (!bq->enabled)
			continue;
		arm_kick(bq);
		drain_queue(bq);
		flush_notify(bq);
	}
	while (!atomic_load(&w->stopping) || worker_busy(w)) {
		int n = io_engine_run(&w->eng, true);
		if (n < 0 && n != -EINTR && n != -EAGAIN) {
			worker_failed(w, "io_uring", n);
			break;
		}
		w->batches++;
		for (struct blk_queue *bq = q0; bq < qend; bq++) {
			if (!bq->enabled)
				continue;
			/* Slots came back after the pool ran dry: pick up
			 * what waited and turn kicks back on. */
			if (!atomic_load(&w->stopping) && bq->starved && bq->free)
				drain_queue(bq);
			flush_notify(bq);
		}
	}
	/* Write-back the driver started for our requests ends before the
	 * engine does. */
	if (!w->failed && (r = block_drain(b->disk, &w->eng)) < 0)
		worker_failed(w, "drain", r);
	return NULL;
}

static void stop_worker(struct blk_worker *w)
{
	if (!w->running)
		return;
	uint64_t one = 1;
	if (write(w->stop_fd, &one, sizeof(one)) < 0) {
		/* cannot fail short of a counter overflow */
	}
	pthread_join(w->thread, NULL);
	w->running = false;
	io_engine_close(&w->eng);
	close(w->stop_fd);
	w->stop_fd = -1;
}

static void blk_stop(struct virtio_dev *vd)
{
	struct virtio_blk *b = vd->priv;
	for (unsigned i = 0; i < b->nworkers; i++)
		stop_worker(&b->workers[i]);
}

static void reset_queue(struct blk_queue *bq, const struct virtio_queue *vq)
{
	bq->enabled = vq->enabled;
	bq->starved = false;
	bq->notify_pending = false;
	bq->free = NULL;
	bq->inflight = 0;
	size_t drv = drv_stride(bq->blk->disk);
	for (unsigned j = 0; j < vq->size; j++) {
		bq->reqs[j].bq = bq;
		bq->reqs[j].breq.drv = drv ? (uint8_t *)bq->drv_area + j * drv : NULL;
		bq->reqs[j].next_free = bq->free;
		bq->free = &bq->reqs[j];
	}
}

static int start_worker(struct blk_worker *w)
{
	struct virtio_blk *b = w->blk;
	bool any = false;
	for (unsigned i = w->first; i < w->first + w->count; i++) {
		reset_queue(&b->queues[i], &b->vd.queues[i]);
		any |= b->queues[i].enabled;
	}
	if (!any)
		return 0; /* a driver may use fewer queues than offered */
	/* One ring slot per request of every queue, plus the kick reads and stop. */
	unsigned entries = w->count * (2 * QUEUE_SIZE + 1) + 8;
	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = w->stop_fd < 0 ? -errno : io_engine_init(&w->eng, entries);
	if (r) {
		log_err("%s: cannot start queue %u: %s", b->name, w->first, strerror(-r));
		if (w->stop_fd >= 0)
			close(w->stop_fd);
		w->stop_fd = -1;
		return r;
	}
	atomic_store(&w->stopping, false);
	w->failed = false;
	if ((r = pthread_create(&w->thread, NULL, worker_thread, w))) {
		io_engine_close(&w->eng);
		close(w->stop_fd);
		w->stop_fd = -1;
		return -r;
	}
	w->running = true;
	return 0;
}

static int blk_start(struct virtio_dev *vd)
{
	struct virtio_blk *b = vd->priv;
	for (unsigned i = 0; i < b->nworkers; i++) {
		int r = start_worker(&b->workers[i]);
		if (r) {
			blk_stop(vd);
			return r;
		}
	}
	return 0;
}

/* VM pause: the workers drain what is in flight and end, exactly as at a
 * reset, but the rings' indices stay in vd->queues; the resume starts new
 * workers that go on from there (and pick up kicks that came meanwhile). */
static void blk_pause(struct virtio_dev *vd)
{
	blk_stop(vd);
}

static int blk_resume(struct virtio_dev *vd)
{
	return blk_start(vd);
}

static const struct virtio_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.class_code = 0x018000, /* mass storage, other */
	.features = blk_features,
	.config_size = BLK_CONFIG_SIZE,
	.config_read = blk_config_read,
	.pause = blk_pause,
	.resume = blk_resume,
	.start = blk_start,
	.stop = blk_stop,
};

int virtio_blk_create(struct virtio_blk **out, struct vm *vm, const struct disk_config *cfg,
		      struct block *disk, unsigned num_queues)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->nqueues = num_queues;
	/* iothread=queue: a worker per queue; iothread=disk: one for all. */
	bool per_disk = cfg->iothread == DISK_IOTHREAD_DISK;
	b->nworkers = per_disk ? 1 : num_queues;
	for (unsigned i = 0; i < b->nworkers; i++) {
		b->workers[i].blk = b;
		b->workers[i].first = per_disk ? 0 : i;
		b->workers[i].count = per_disk ? num_queues : 1;
		b->workers[i].stop_fd = -1;
	}
	snprintf(b->name, sizeof(b->name), "virtio-blk");
	memcpy(b->serial, cfg->serial, strnlen(cfg->serial, DISK_SERIAL_MAX));
	b->disk = disk;
	int r;
	for (unsigned i = 0; i < num_queues; i++) {
		b->queues[i].blk = b;
		b->queues[i].index = i;
		b->queues[i].w = &b->workers[per_disk ? 0 : i];
		b->queues[i].reqs = calloc(QUEUE_SIZE, sizeof(struct blk_req));
		bool drv = block_req_priv_size(b->disk) > 0;
		b->queues[i].drv_area = drv ? drv_area_alloc(b->disk) : NULL;
		if (!b->queues[i].reqs || (drv && !b->queues[i].drv_area)) {
			r = -ENOMEM;
			goto fail;
		}
	}
	struct virtio_blk_config *c = &b->config;
	c->capacity = htole64(b->disk->size / SECTOR);
	c->size_max = htole32(SIZE_MAX_BYTES);
	c->seg_max = htole32(SEG_MAX);
	c->blk_size = htole32(b->disk->logical_block_size);
	c->wce = 1;
	c->num_queues = htole16((uint16_t)num_queues);
	c->max_discard_sectors = c->max_write_zeroes_sectors = htole32(MAX_DISCARD_SECTORS);
	c->max_discard_seg = c->max_write_zeroes_seg = htole32(1);
	c->discard_sector_alignment = htole32(b->disk->logical_block_size / SECTOR);
	c->write_zeroes_may_unmap = 1;
	if ((r = virtio_dev_init(&b->vd, vm, &blk_ops, b, num_queues, QUEUE_SIZE)))
		goto fail;
	*out = b;
	return 0;
fail:
	virtio_blk_free(b);
	return r;
}

void virtio_blk_free(struct virtio_blk *b)
{
	if (!b)
		return;
	if (b->vd.ops)
		virtio_dev_free(&b->vd);
	for (unsigned i = 0; i < b->nqueues; i++) {
		free(b->queues[i].reqs);
		free(b->queues[i].drv_area);
	}
	free(b);
}

struct io_engine *virtio_blk_queue_engine(struct virtio_blk *b, unsigned q)
{
	if (q >= b->nqueues || !b->queues[q].w->running)
		return NULL;
	return &b->queues[q].w->eng;
}

void virtio_blk_get_stats(const struct virtio_blk *b, struct virtio_blk_stats *s)
{
	*s = (struct virtio_blk_stats){ 0 };
	for (unsigned i = 0; i < b->nqueues; i++) {
		const struct virtio_blk_stats *q = &b->queues[i].st;
		s->requests += STAT_GET(q->requests);
		s->merged += STAT_GET(q->merged);
		s->reads += STAT_GET(q->reads);
		s->writes += STAT_GET(q->writes);
		s->flushes += STAT_GET(q->flushes);
		s->read_bytes += STAT_GET(q->read_bytes);
		s->write_bytes += STAT_GET(q->write_bytes);
		s->errors += STAT_GET(q->errors);
		s->kicks += STAT_GET(q->kicks);
		s->irqs += STAT_GET(q->irqs);
	}
	s->kicks_by_exit = atomic_load(&b->vd.notify_exits);
	s->malformed = atomic_load(&b->vd.malformed);
}

void virtio_blk_print_stats(FILE *f, struct virtio_blk *b)
{
	for (unsigned i = 0; i < b->nqueues; i++) {
		const struct virtio_blk_stats *q = &b->queues[i].st;
		if (!STAT_GET(q->requests))
			continue;
		fprintf(f, "  %s %s q%u: %llu requests (%llu merged into others), %llu kicks, "
			"%llu interrupts, %llu errors\r\n",
			b->name, b->disk->path, i, (unsigned long long)STAT_GET(q->requests),
			(unsigned long long)STAT_GET(q->merged), (unsigned long long)STAT_GET(q->kicks),
			(unsigned long long)STAT_GET(q->irqs), (unsigned long long)STAT_GET(q->errors));
	}
	fprintf(f, "  %s %s: %llu kicks by exit, %llu malformed requests\r\n", b->name,
		b->disk->path, (unsigned long long)atomic_load(&b->vd.notify_exits),
		(unsigned long long)atomic_load(&b->vd.malformed));
}

void virtio_blk_pause(struct virtio_blk *b)
{
	virtio_dev_pause(&b->vd);
}

void virtio_blk_resume(struct virtio_blk *b)
{
	virtio_dev_resume(&b->vd);
}
