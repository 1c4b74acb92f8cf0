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
#include <stddef.h>
#include <string.h>

#include "vmm/vm.h"

/* Offsets inside the rings, from the UAPI layout (struct vring_avail and
 * struct vring_used, each followed by its event field). */
#define AVAIL_FLAGS (offsetof(struct vring_avail, flags) / 2)  /* in uint16_t units */
#define AVAIL_IDX   (offsetof(struct vring_avail, idx) / 2)
#define AVAIL_RING  (offsetof(struct vring_avail, ring) / 2)
#define USED_FLAGS  offsetof(struct vring_used, flags)         /* in bytes */
#define USED_IDX    offsetof(struct vring_used, idx)
#define USED_RING   offsetof(struct vring_used, ring)
#define USED_ELEM   sizeof(struct vring_used_elem)

/* The spec's sizes (2.7): a layout change in the header must not go
 * unnoticed, since the guest's driver was built against these. */
_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc");
_Static_assert(offsetof(struct vring_avail, ring) == 4, "vring_avail");
_Static_assert(offsetof(struct vring_used, ring) == 4, "vring_used");
_Static_assert(sizeof(struct vring_used_elem) == 8, "vring_used_elem");

/* A descriptor after desc_copy(): host byte order, never guest memory. */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint64_t desc_bytes(uint16_t size) { return sizeof(struct vring_desc) * (uint64_t)size; }
static uint64_t avail_bytes(uint16_t size) { return 2 * AVAIL_RING + 2ull * size + 2; }
static uint64_t used_bytes(uint16_t size) { return USED_RING + USED_ELEM * (uint64_t)size + 2; }

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
	if ((desc_gpa & (VRING_DESC_ALIGN_SIZE - 1)) || (avail_gpa & (VRING_AVAIL_ALIGN_SIZE - 1)) ||
	    (used_gpa & (VRING_USED_ALIGN_SIZE - 1)))
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
static void desc_copy(struct virtq_desc *d, const struct vring_desc *src)
{
	struct vring_desc raw;

	memcpy(&raw, src, sizeof(raw));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
}

/* Walks the chain starting at head into e. Returns VQ_ERR_COUNT when the
 * chain is good, otherwise the reason it is refused. */
static enum virtq_error walk_chain(struct virtq *q, uint16_t head, struct virtq_elem *e)
{
	const struct vring_desc *table = q->desc;
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

		if (d.flags & VRING_DESC_F_INDIRECT) {
			uint32_t n;

			if (!q->indirect || in_indirect || (d.flags & VRING_DESC_F_NEXT))
				return VQ_ERR_INDIRECT;
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return VQ_ERR_INDIRECT;
			n = d.len / sizeof(struct vring_desc);
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
		if (d.flags & VRING_DESC_F_WRITE) {
			e->in[e->nin++] = iov;
			e->in_len += d.len;
		} else {
			if (e->nin)
				return VQ_ERR_ORDER;
			e->out[e->nout++] = iov;
			e->out_len += d.len;
		}

		if (!(d.flags & VRING_DESC_F_NEXT))
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

void virtq_fill(struct virtq *q, uint16_t head, uint32_t len, unsigned offset)
{
	volatile struct vring_used_elem *el;

	if (!q->enabled || offset >= q->size)
		return;
	el = (volatile struct vring_used_elem *)(q->used + USED_RING + USED_ELEM *
		 (uint64_t)((uint16_t)(q->used_idx + offset) & (q->size - 1)));
	el->id = htole32(head);
	el->len = htole32(len);
}

void virtq_flush(struct virtq *q, unsigned n)
{
	if (!q->enabled || n == 0 || n > q->size)
		return;
	q->used_idx = (uint16_t)(q->used_idx + n);
	/* Release: the elements (and the data written to the buffers) are
	 * visible before the driver can see the new idx. */
	__atomic_store_n(used_u16(q, USED_IDX), htole16(q->used_idx), __ATOMIC_RELEASE);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	virtq_fill(q, head, len, 0);
	virtq_flush(q, 1);
}

void virtq_unpop(struct virtq *q, unsigned n)
{
	/* Every chain popped gets exactly one used element, so this is what
	 * was popped and is not on the used ring yet: giving back more would
	 * hand the device a chain the driver already got back. */
	uint16_t outstanding = (uint16_t)(q->last_avail - q->used_idx);

	if (!q->enabled)
		return;
	if (n > outstanding)
		n = outstanding;
	q->last_avail = (uint16_t)(q->last_avail - n);
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
	/* vring_need_event (virtio 1.x 2.7.10): used_event lies in the window
	 * (old, used_idx] published since the last notification, mod 2^16. */
	if (q->event_idx)
		notify = !valid || vring_need_event(load_used_event(q), q->used_idx, old);
	else
		notify = !(le16toh(__atomic_load_n(&q->avail[AVAIL_FLAGS], __ATOMIC_RELAXED)) &
			   VRING_AVAIL_F_NO_INTERRUPT);
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
		 * avail_event forward, so the driver stops kicking once past it.
		 * Enabling asks for a kick at the next buffer the driver adds:
		 * last_avail would be wrong after virtq_unpop, when buffers up to
		 * avail->idx are published but not popped, since the driver only
		 * kicks when its idx crosses avail_event. */
		if (enable)
			store_avail_event(q, load_avail_idx(q));
	} else {
		__atomic_store_n(used_u16(q, USED_FLAGS),
				 htole16(enable ? 0 : VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
	}
	/* Our store before the caller's re-read of avail->idx (virtq_has_avail). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_has_avail(struct virtq *q)
{
	return q->enabled && load_avail_idx(q) != q->last_avail;
}
