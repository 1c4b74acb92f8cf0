/* Split virtqueues (virtio/virtq.c) against hostile guest memory.
 *
 * A fake guest like tests/unit/virtq_test.c's: a struct vm with only its RAM
 * fields set, 64 KiB of low RAM at GPA 0 and optionally 16 KiB of high RAM at
 * 4 GiB, so gpa_ptr() sees both regions. The input picks the queue size, the
 * negotiated features and (optionally) the ring addresses, fills guest RAM
 * (descriptor table, available ring, indirect tables, buffers) and may script
 * the device and the driver. Then the device pops, pushes and decides about
 * notifications, and every result is checked against what docs/virtqueues.md
 * and virtio/virtq.h promise:
 *   - every iovec lies inside one RAM region; a zero-length buffer is {NULL, 0};
 *   - a chain has 1..VIRTQ_MAX_CHAIN buffers, at most the queue size without
 *     INDIRECT_DESC; the totals are the sums; a popped head is < size;
 *   - a refused chain consumes its head and returns nothing else, the reason
 *     counted once; an empty ring or an -EPROTO ring consumes nothing;
 *   - the device writes guest memory only inside the used ring area;
 *   - with EVENT_IDX and notifications on, avail_event follows last_avail;
 *   - virtq_should_notify() never says yes twice with nothing pushed between;
 *   - virtq_enable() succeeds exactly when the size and the three areas are
 *     valid, and then writes nothing.
 *
 * Input layout (little-endian):
 *   0       u8   bits 0-3: log2 of the queue size (mod 9, so 1..256);
 *                bit 4: EVENT_IDX; bit 5: INDIRECT_DESC; bit 6: take the ring
 *                addresses below (else a compact default layout from GPA 0);
 *                bit 7: high RAM exists
 *   1       u8   number of 8-byte ops after the header (at most MAX_OPS);
 *                0 runs the usual device loop of docs/virtqueues.md instead
 *   2       u16  if not 0: the queue size itself, any value (virtq_enable
 *                must refuse all but powers of two up to 256)
 *   4..7         unused
 *   8       u64  desc, avail, used GPAs (with bit 6)
 *   32      ops  {u8 op, u8 arg, u16 off, u32 val}
 *   ...          guest RAM image: low RAM from GPA 0, then high RAM
 * tests/fuzz/gen_corpus.py writes seeds in this format. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "virtio/virtq.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define RAM_LOW  0x10000u
#define RAM_HIGH 0x4000u
#define HDR_SIZE 32
#define OP_SIZE  8
#define MAX_OPS  128

struct op {
	uint8_t op, arg;
	uint16_t off;
	uint32_t val;
};

struct fx {
	struct vm vm;
	struct virtq q;
	struct virtq_elem e;
	uint8_t *ram, *snap;
	size_t ram_size;
	uint16_t size;
	bool event_idx, indirect;
	uint64_t desc_gpa, avail_gpa, used_gpa;
};

static struct fx fx;

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
/* The 16-bit value at a host pointer into guest RAM (a ring field). */
static uint16_t ram16(const struct fx *f, const volatile void *p)
{
	return ld16(f->ram + ((const volatile uint8_t *)p - f->ram));
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Offset in f->ram of [gpa, gpa + len) if it lies in one RAM region, else
 * -1: an oracle written independently of gpa_ptr(). */
static int64_t ram_off(const struct fx *f, uint64_t gpa, uint64_t len)
{
	if (gpa < f->vm.ram_low)
		return len <= f->vm.ram_low - gpa ? (int64_t)gpa : -1;
	if (gpa >= LAYOUT_HIGH_RAM && gpa - LAYOUT_HIGH_RAM < f->vm.ram_high &&
	    len <= f->vm.ram_high - (gpa - LAYOUT_HIGH_RAM))
		return (int64_t)(f->vm.ram_low + gpa - LAYOUT_HIGH_RAM);
	return -1;
}

/* Whether the host range [p, p + len) lies inside one RAM region. */
static bool host_in_ram(const struct fx *f, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)f->ram;

	if (a < lo)
		return false;
	if (a - lo < f->vm.ram_low)
		return len <= f->vm.ram_low - (a - lo);
	if (a - lo - f->vm.ram_low < f->vm.ram_high)
		return len <= f->vm.ram_high - (a - lo - f->vm.ram_low);
	return false;
}

static uint64_t errors_total(const struct virtq *q)
{
	uint64_t n = 0;

	for (int i = 0; i < VQ_ERR_COUNT; i++)
		n += q->errors[i];
	return n;
}

/* The used area as the device sees it: where it may write. */
static void used_area(const struct fx *f, size_t *off, size_t *len)
{
	*off = 0;
	*len = 0;
	if (f->q.enabled) {
		*off = (size_t)(f->q.used - f->ram);
		*len = 6 + 8 * (size_t)f->q.size;
	}
}

/* Everything outside the used ring must be as the guest left it. */
static void check_memory(struct fx *f)
{
	size_t off, len;

	used_area(f, &off, &len);
	FUZZ_CHECK(off + len <= f->ram_size);
	FUZZ_CHECK(memcmp(f->ram, f->snap, off) == 0);
	FUZZ_CHECK(memcmp(f->ram + off + len, f->snap + off + len, f->ram_size - off - len) == 0);
	memcpy(f->snap + off, f->ram + off, len);
}

static void check_iovs(const struct fx *f, const struct iovec *iov, unsigned n, uint64_t total)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		if (iov[i].iov_len == 0)
			FUZZ_CHECK(iov[i].iov_base == NULL);
		else
			FUZZ_CHECK(host_in_ram(f, iov[i].iov_base, iov[i].iov_len));
		sum += iov[i].iov_len;
	}
	FUZZ_CHECK(sum == total);
}

/* What a device does with the buffers: reads a header from the readable
 * ones, and writes a status into the writable ones (here, the bytes they
 * already hold, so guest memory does not change). */
static void use_elem(struct fx *f, size_t skip)
{
	static uint8_t tmp[1024];
	struct virtq_elem *e = &f->e;
	size_t want, got;

	want = skip < e->out_len ? e->out_len - skip : 0;
	want = want < sizeof(tmp) ? want : sizeof(tmp);
	got = iov_to_buf(e->out, e->nout, skip, tmp, sizeof(tmp));
	FUZZ_CHECK(got == want);

	want = skip < e->in_len ? e->in_len - skip : 0;
	want = want < sizeof(tmp) ? want : sizeof(tmp);
	got = iov_to_buf(e->in, e->nin, skip, tmp, sizeof(tmp));
	FUZZ_CHECK(got == want);
	FUZZ_CHECK(buf_to_iov(e->in, e->nin, skip, tmp, got) == got);
}

static int do_pop(struct fx *f)
{
	struct virtq *q = &f->q;
	struct virtq_elem *e = &f->e;
	uint64_t errs[VQ_ERR_COUNT], total = errors_total(q);
	uint16_t last = q->last_avail;
	bool enabled = q->enabled;
	int r;

	memcpy(errs, q->errors, sizeof(errs));
	r = virtq_pop(q, e);
	if (!enabled)
		FUZZ_CHECK(r == 0);
	switch (r) {
	case 1:
		FUZZ_CHECK(q->last_avail == (uint16_t)(last + 1));
		FUZZ_CHECK(errors_total(q) == total);
		FUZZ_CHECK(e->head < q->size);
		FUZZ_CHECK(e->nout <= VIRTQ_MAX_CHAIN && e->nin <= VIRTQ_MAX_CHAIN);
		FUZZ_CHECK(e->nout + e->nin >= 1 && e->nout + e->nin <= VIRTQ_MAX_CHAIN);
		if (!q->indirect)
			FUZZ_CHECK(e->nout + e->nin <= q->size);
		check_iovs(f, e->out, e->nout, e->out_len);
		check_iovs(f, e->in, e->nin, e->in_len);
		break;
	case -EIO:
		FUZZ_CHECK(q->last_avail == (uint16_t)(last + 1));
		FUZZ_CHECK(errors_total(q) == total + 1);
		FUZZ_CHECK(q->errors[VQ_ERR_AVAIL_IDX] == errs[VQ_ERR_AVAIL_IDX]);
		FUZZ_CHECK(e->nout == 0 && e->nin == 0 && e->out_len == 0 && e->in_len == 0);
		break;
	case 0:
		FUZZ_CHECK(q->last_avail == last);
		FUZZ_CHECK(errors_total(q) == total);
		break;
	case -EPROTO:
		FUZZ_CHECK(q->last_avail == last);
		FUZZ_CHECK(q->errors[VQ_ERR_AVAIL_IDX] == errs[VQ_ERR_AVAIL_IDX] + 1);
		FUZZ_CHECK(errors_total(q) == total + 1);
		break;
	default:
		FUZZ_CHECK(!"virtq_pop returned an undocumented value");
	}
	if ((r == 1 || r == -EIO) && q->event_idx && q->notify)
		FUZZ_CHECK(ram16(f, q->used + 4 + 8 * (size_t)q->size) == q->last_avail);
	check_memory(f);
	return r;
}

static void do_should_notify(struct fx *f)
{
	virtq_should_notify(&f->q);
	/* Nothing pushed since: never notify. */
	FUZZ_CHECK(!virtq_should_notify(&f->q));
	check_memory(f);
}

static void do_has_avail(struct fx *f)
{
	bool has = virtq_has_avail(&f->q);

	if (f->q.enabled)
		FUZZ_CHECK(has == (ram16(f, f->q.avail + 1) != f->q.last_avail));
	else
		FUZZ_CHECK(!has);
}

static void do_enable(struct fx *f)
{
	uint16_t n = f->size;
	bool valid = n && n <= VIRTQ_MAX_SIZE && !(n & (n - 1)) && !(f->desc_gpa & 15) &&
		     !(f->avail_gpa & 1) && !(f->used_gpa & 3) &&
		     ram_off(f, f->desc_gpa, 16ull * n) >= 0 &&
		     ram_off(f, f->avail_gpa, 6 + 2ull * n) >= 0 &&
		     ram_off(f, f->used_gpa, 6 + 8ull * n) >= 0;
	uint64_t total = errors_total(&f->q);
	int r;

	r = virtq_enable(&f->q, &f->vm, n, f->desc_gpa, f->avail_gpa, f->used_gpa, f->event_idx,
			 f->indirect);
	FUZZ_CHECK(r == 0 || r == -EINVAL);
	FUZZ_CHECK((r == 0) == valid);
	FUZZ_CHECK(f->q.enabled == valid);
	FUZZ_CHECK(errors_total(&f->q) == total);   /* counters survive */
	if (valid)
		FUZZ_CHECK(f->q.used == f->ram + ram_off(f, f->used_gpa, 0));
	/* Enable reads nothing from and writes nothing to guest memory. */
	FUZZ_CHECK(memcmp(f->ram, f->snap, f->ram_size) == 0);
}

/* The loop a device runs after a kick (docs/virtqueues.md). */
static void device_loop(struct fx *f)
{
	int r = 0;

	for (int round = 0; round < 4 && r != -EPROTO; round++) {
		virtq_set_notify(&f->q, false);
		check_memory(f);
		for (unsigned i = 0; i < 2 * VIRTQ_MAX_SIZE; i++) {
			r = do_pop(f);
			if (r == 0 || r == -EPROTO)
				break;
			if (r == 1)
				use_elem(f, i & 7);
			virtq_push(&f->q, f->e.head, r == 1 ? (uint32_t)(f->e.in_len & 0xffffffff) : 0);
			check_memory(f);
		}
		virtq_set_notify(&f->q, true);
		check_memory(f);
		do_has_avail(f);
		if (!virtq_has_avail(&f->q))
			break;
	}
	do_should_notify(f);
}

static void guest_write(struct fx *f, size_t off, const void *p, size_t len)
{
	if (off > f->ram_size || len > f->ram_size - off)
		return;
	memcpy(f->ram + off, p, len);
	memcpy(f->snap + off, p, len);
}

static void run_op(struct fx *f, const struct op *o)
{
	int r;

	switch (o->op % 8) {
	case 0:   /* device: pop, and maybe complete it */
		r = do_pop(f);
		if (r == 1)
			use_elem(f, o->off);
		if ((r == 1 || r == -EIO) && (o->arg & 1)) {
			virtq_push(&f->q, f->e.head, o->val);
			check_memory(f);
		}
		break;
	case 1:   /* device: push any head */
		virtq_push(&f->q, o->off, o->val);
		check_memory(f);
		break;
	case 2:
		do_should_notify(f);
		break;
	case 3:
		virtq_set_notify(&f->q, o->arg & 1);
		check_memory(f);
		break;
	case 4:
		do_has_avail(f);
		break;
	case 5: { /* driver: publish arg more entries (avail->idx += arg) */
		if (!f->q.enabled)
			break;
		size_t off = (size_t)((const volatile uint8_t *)(f->q.avail + 1) - f->ram);
		uint16_t idx = (uint16_t)(ld16(f->ram + off) + o->arg);
		uint8_t b[2] = { (uint8_t)idx, (uint8_t)(idx >> 8) };
		guest_write(f, off, b, 2);
		break;
	}
	case 6: { /* driver: writes 4 bytes anywhere in RAM */
		uint8_t b[4] = { (uint8_t)o->val, (uint8_t)(o->val >> 8), (uint8_t)(o->val >> 16),
				 (uint8_t)(o->val >> 24) };
		guest_write(f, ((size_t)o->arg << 16 | o->off) % f->ram_size, b, 4);
		break;
	}
	case 7:   /* driver: reset the device and set the queue up again */
		virtq_reset(&f->q);
		FUZZ_CHECK(!f->q.enabled);
		f->event_idx = o->arg & 1;
		f->indirect = o->arg & 2;
		do_enable(f);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fx *f = &fx;
	unsigned nops;
	uint8_t cfg;

	if (size < HDR_SIZE)
		return 0;
	cfg = data[0];
	nops = data[1];
	if (nops > MAX_OPS || size < HDR_SIZE + (size_t)nops * OP_SIZE)
		return 0;

	memset(&f->vm, 0, sizeof(f->vm));
	memset(&f->q, 0, sizeof(f->q));
	f->vm.ram_low = RAM_LOW;
	f->vm.ram_high = (cfg & 0x80) ? RAM_HIGH : 0;
	f->vm.ram_size = f->vm.ram_low + f->vm.ram_high;
	f->ram_size = (size_t)f->vm.ram_size;
	/* Exactly the RAM size, so that AddressSanitizer catches any access
	 * past its end. */
	f->ram = calloc(1, f->ram_size);
	f->snap = malloc(f->ram_size);
	if (!f->ram || !f->snap)
		abort();
	f->vm.ram = f->ram;

	f->size = ld16(data + 2) ? ld16(data + 2) : (uint16_t)(1u << ((cfg & 15) % 9));
	f->event_idx = cfg & 0x10;
	f->indirect = cfg & 0x20;
	if (cfg & 0x40) {
		f->desc_gpa = ld64(data + 8);
		f->avail_gpa = ld64(data + 16);
		f->used_gpa = ld64(data + 24);
	} else {
		/* desc at 0, avail right after it, used 4-aligned after that. */
		f->desc_gpa = 0;
		f->avail_gpa = 16ull * f->size;
		f->used_gpa = (f->avail_gpa + 6 + 2ull * f->size + 3) & ~3ull;
	}

	const uint8_t *image = data + HDR_SIZE + (size_t)nops * OP_SIZE;
	size_t image_len = size - HDR_SIZE - (size_t)nops * OP_SIZE;
	memcpy(f->ram, image, image_len < f->ram_size ? image_len : f->ram_size);
	memcpy(f->snap, f->ram, f->ram_size);

	do_enable(f);
	if (nops == 0) {
		device_loop(f);
	} else {
		for (unsigned i = 0; i < nops; i++) {
			const uint8_t *p = data + HDR_SIZE + (size_t)i * OP_SIZE;
			struct op o = { p[0], p[1], ld16(p + 2),
					(uint32_t)ld16(p + 4) | (uint32_t)ld16(p + 6) << 16 };

			run_op(f, &o);
		}
	}

	free(f->ram);
	free(f->snap);
	f->ram = f->snap = NULL;
	return 0;
}
