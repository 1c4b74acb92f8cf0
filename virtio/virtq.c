/* Split virtqueues (virtio 1.x, section 2.7), device side. See virtq.h and
 * docs/virtqueues.md.
 *
 * Layout in guest memory (little-endian, as virtio 1.x requires):
 *   descriptor table  16 * size bytes, 16-aligned
 *   available ring    flags, idx, ring[size], used_event      (2-aligned)
 *   used ring         flags, idx, {id, len}[size], avail_event (4-aligned)
 *
 * Every field the driver can write is read exactly once into a local before
 * it is used, so a guest changing memory behind our back can only change
 * which (checked) request we see, never break a check after it passed. */
#include "virtio/virtq.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vmm/vm.h"

/* Byte offsets inside the rings. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX   1                      /* in uint16_t units */
#define AVAIL_RING  2
#define USED_FLAGS  0
#define USED_IDX    2                      /* in bytes */
#define USED_RING   4
#define USED_ELEM   8

static uint64_t desc_bytes(uint16_t size) { return 16ull * size; }
static uint64_t avail_bytes(uint16_t size) { return 6ull + 2ull * size; }
static uint64_t used_bytes(uint16_t size) { return 6ull + 8ull * size; }

static volatile uint16_t *used_u16(struct virtq *q, uint64_t off)
{
	return (volatile uint16_t *)(q->used + off);
}

/* The driver's avail->idx, with acquire semantics: the ring slots and
 * descriptors it covers are read after it. */
static uint16_t load_avail_idx(struct virtq *q)
{
	return le16toh(__atomic_load_n(&q->avail[AVAIL_IDX], __ATOMIC_ACQUIRE));
}

static uint16_t load_used_event(struct virtq *q)
{
	return le16toh(__atomic_load_n(&q->avail[AVAIL_RING + q->size], __ATOMIC_RELAXED));
}

static void store_avail_event(struct virtq *q, uint16_t v)
{
	__atomic_store_n(used_u16(q, USED_RING + USED_ELEM * (uint64_t)q->size), htole16(v),
			 __ATOMIC_RELAXED);
}

void virtq_reset(struct virtq *q)
{
	uint64_t errors[VQ_ERR_COUNT];

	memcpy(errors, q->errors, sizeof(errors));
	memset(q, 0, sizeof(*q));
	memcpy(q->errors, errors, sizeof(errors));
}

int virtq_enable(struct virtq *q, struct vm *vm, uint16_t size, uint64_t desc_gpa,
		 uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
{
	void *desc, *avail, *used;

	virtq_reset(q);
	if (!vm || size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if ((desc_gpa & 15) || (avail_gpa & 1) || (used_gpa & 3))
		return -EINVAL;
	desc = gpa_ptr(vm, desc_gpa, desc_bytes(size));
	avail = gpa_ptr(vm, avail_gpa, avail_bytes(size));
	used = gpa_ptr(vm, used_gpa, used_bytes(size));
	if (!desc || !avail || !used)
		return -EINVAL;

	q->vm = vm;
	q->size = size;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->desc_gpa = desc_gpa;
	q->avail_gpa = avail_gpa;
	q->used_gpa = used_gpa;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->notify = true;
	q->enabled = true;
	return 0;
}

/* Copies one descriptor out of guest memory and converts it to host order.
 * The signal fence stops the compiler from re-reading guest memory for a
 * field of d later on: after it, d is the only copy we look at. */
static void desc_copy(struct virtq_desc *d, const struct virtq_desc *src)
{
	memcpy(d, src, sizeof(*d));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Walks the chain starting at head into e. Returns VQ_ERR_COUNT when the
 * chain is good, otherwise the reason it is refused. */
static enum virtq_error walk_chain(struct virtq *q, uint16_t head, struct virtq_elem *e)
{
	const struct virtq_desc *table = q->desc;
	uint32_t table_len = q->size;   /* entries in the table being walked */
	uint32_t walked = 0;            /* descriptors taken from that table */
	bool in_indirect = false;
	uint32_t idx = head;
	struct virtq_desc d;

	for (;;) {
		if (idx >= table_len)
			return VQ_ERR_DESC_INDEX;
		/* A table of n entries holds no chain longer than n without a
		 * loop: this ends every loop after at most n steps. */
		if (++walked > table_len)
			return VQ_ERR_CHAIN_TOO_LONG;
		desc_copy(&d, &table[idx]);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			uint32_t n;

			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return VQ_ERR_INDIRECT;
			if (d.len == 0 || d.len % sizeof(struct virtq_desc))
				return VQ_ERR_INDIRECT;
			n = d.len / sizeof(struct virtq_desc);
			if (n > VIRTQ_MAX_CHAIN)
				return VQ_ERR_INDIRECT;
			table = gpa_ptr(q->vm, d.addr, d.len);
			if (!table)
				return VQ_ERR_ADDR;
			/* The WRITE flag of the indirect descriptor itself is
			 * ignored (spec 2.7.5.3.2). */
			in_indirect = true;
			table_len = n;
			walked = 0;
			idx = 0;
			continue;
		}

		if (e->nout + e->nin >= VIRTQ_MAX_CHAIN)
			return VQ_ERR_CHAIN_TOO_LONG;

		struct iovec iov = { NULL, 0 };
		if (d.len) {
			iov.iov_base = gpa_ptr(q->vm, d.addr, d.len);
			if (!iov.iov_base)
				return VQ_ERR_ADDR;
			iov.iov_len = d.len;
		}
		if (d.flags & VIRTQ_DESC_F_WRITE) {
			e->in[e->nin++] = iov;
			e->in_len += d.len;
		} else {
			if (e->nin)
				return VQ_ERR_ORDER;
			e->out[e->nout++] = iov;
			e->out_len += d.len;
		}

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return VQ_ERR_COUNT;
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	uint16_t avail_idx, pending, head;
	enum virtq_error reason;

	if (!q->enabled)
		return 0;
	avail_idx = load_avail_idx(q);
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size) {
		q->errors[VQ_ERR_AVAIL_IDX]++;
		return -EPROTO;
	}

	head = le16toh(q->avail[AVAIL_RING + (q->last_avail & (q->size - 1))]);
	q->last_avail++;
	if (q->event_idx && q->notify)
		store_avail_event(q, q->last_avail);

	e->head = head;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	reason = walk_chain(q, head, e);
	if (reason != VQ_ERR_COUNT) {
		/* Nothing of a refused chain may be used: only head is valid. */
		e->nout = e->nin = 0;
		e->out_len = e->in_len = 0;
		q->errors[reason]++;
		return -EIO;
	}
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint64_t off;

	if (!q->enabled)
		return;
	off = USED_RING + USED_ELEM * (uint64_t)(q->used_idx & (q->size - 1));
	*(volatile uint32_t *)(q->used + off) = htole32(head);
	*(volatile uint32_t *)(q->used + off + 4) = htole32(len);
	q->used_idx++;
	/* Release: the element (and the data written to the buffers) is
	 * visible before the driver can see the new idx. */
	__atomic_store_n(used_u16(q, USED_IDX), htole16(q->used_idx), __ATOMIC_RELEASE);
}

/* virtio 1.x 2.7.10 / Linux vring_need_event: true when event_idx lies in
 * the window (old, new_idx] of used indexes published since the last
 * notification, computed modulo 2^16. */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old = q->signalled_used;
	bool valid = q->signalled_valid;
	bool notify;

	if (!q->enabled)
		return false;
	/* The used idx store must be globally visible before we read the
	 * driver's suppression state, or both sides may decide the other one
	 * will act and the interrupt is lost. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (valid && old == q->used_idx)
		return false;               /* nothing new since the last one */
	if (q->event_idx)
		notify = !valid || need_event(load_used_event(q), q->used_idx, old);
	else
		notify = !(le16toh(__atomic_load_n(&q->avail[AVAIL_FLAGS], __ATOMIC_RELAXED)) &
			   VIRTQ_AVAIL_F_NO_INTERRUPT);
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return notify;
}

void virtq_set_notify(struct virtq *q, bool enable)
{
	if (!q->enabled)
		return;
	q->notify = enable;
	if (q->event_idx) {
		/* Flags must stay 0 with EVENT_IDX; disabling just stops moving
		 * avail_event forward, so the driver stops kicking once past it. */
		if (enable)
			store_avail_event(q, q->last_avail);
	} else {
		__atomic_store_n(used_u16(q, USED_FLAGS),
				 htole16(enable ? 0 : VIRTQ_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
	}
	/* Our store before the caller's re-read of avail->idx (virtq_has_avail). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_has_avail(struct virtq *q)
{
	return q->enabled && load_avail_idx(q) != q->last_avail;
}
