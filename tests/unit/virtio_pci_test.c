/* The virtio PCI transport (virtio/pci.c) with a test device model instead
 * of virtio-blk, driven from the guest's side without /dev/kvm by the
 * driver of virtio_harness.[ch], as in virtio_blk_test.c: a struct vm built
 * by hand (vm_fd = -1, so vmm/irq.c and vm_ioeventfd() skip their ioctls),
 * config cycles on 0xCF8/0xCFC, the common configuration through MMIO on
 * vm->mmio, and interrupts read from the MSI-X vectors' eventfds, the ISR
 * byte and the recorded INTx level.
 *
 * What is tested here is what the transport promises device models and
 * drivers: configuration changes (generation and interrupt) from any
 * thread, status writes that would clear bits of a running device, queue
 * vectors rewritten while the queue runs, and interrupt routing across MSI-X
 * enable, function mask and disable.
 *
 * Expected values come from the virtio 1.x spec (4.1) and PCI 3.0, written
 * as numbers rather than taken from kvmini's macros or the UAPI headers. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio_harness.h"

#define RAM_SIZE (1u << 20)
#define NQ       2

#define F_DEV 3                 /* the test device's own feature bit */

/* BAR0 layout (docs/virtio.md). */
#define COMMON 0x0000u
#define ISR    0x1000u
#define DEVCFG 0x2000u
#define NOTIFY 0x3000u
#define MSIXT  0x4000u

/* ---- the test device model -------------------------------------------------- */

/* Its configuration: one 64-bit value a driver reads as two 32-bit halves
 * (as virtio-blk's capacity), kept with both halves equal so that a torn
 * read shows. */
struct tcfg {
	uint32_t lo, hi;
	uint8_t link;
	uint8_t pad[3];
};

struct tdev {
	struct virtio_dev vd;
	struct tcfg cfg;
	int start_ret;
	atomic_int starts, stops;
	unsigned cfg_writes;
	unsigned last_write_off;
};

static uint64_t t_features(struct virtio_dev *vd) { return BIT(F_DEV); }

static void t_config_read(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len)
{
	struct tdev *t = vd->priv;
	memcpy(data, (uint8_t *)&t->cfg + off, len);
}

static void t_config_write(struct virtio_dev *vd, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct tdev *t = vd->priv;
	t->cfg_writes++;
	t->last_write_off = off;
}

static int t_start(struct virtio_dev *vd)
{
	struct tdev *t = vd->priv;
	atomic_fetch_add(&t->starts, 1);
	return t->start_ret;
}

static void t_stop(struct virtio_dev *vd)
{
	struct tdev *t = vd->priv;
	atomic_fetch_add(&t->stops, 1);
}

static const struct virtio_ops t_ops = {
	.name = "virtio-test",
	.device_id = 63,
	.class_code = 0xff0000,
	.features = t_features,
	.config_size = sizeof(struct tcfg),
	.config_read = t_config_read,
	.config_write = t_config_write,
	.start = t_start,
	.stop = t_stop,
};

/* ---- fixture ------------------------------------------------------------------- */

static struct fx {
	struct tdev t;
} fx;

/* The function is where the transport put it: this file tests what it
 * offers, not how a driver finds it (test_capabilities walks the list). */
static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	if (fake_vm_init(RAM_SIZE))
		return -1;
	vh.qmax = 16;
	fx.t.cfg = (struct tcfg){ .lo = 7, .hi = 7, .link = 1 };
	if (virtio_dev_init(&fx.t.vd, &vh.vm, &t_ops, &fx.t, NQ, 16))
		return -1;
	vh.vd = &fx.t.vd;
	vh.slot = vh.vd->pci.slot;
	vh.bar = vh.vd->pci.bars[0].addr;
	vh.msix_cap = vh.vd->pci.msix.cap;
	vh.common = COMMON;
	vh.isr = ISR;
	vh.devcfg = DEVCFG;
	vh.notify = NOTIFY;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_dev_free(vh.vd);
	fake_vm_free();
	return 0;
}

/* ---- the driver --------------------------------------------------------------------- */

/* The driver's initialisation (3.1.1), up to DRIVER_OK or not. With MSI-X:
 * vector 0 for configuration changes, vector q+1 for queue q. */
static void drv_init(bool msix, bool driver_ok)
{
	uint64_t want = BIT(F_VERSION_1) | BIT(F_DEV);
	if (driver_ok)
		assert_int_equal(drv_init_n(want, NQ, 16, msix), ST_READY);
	else
		assert_int_equal(drv_setup(want, NQ, 16, msix), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
}

/* What a device model does when its configuration changes. The pause
 * between the two halves stands for a device updating several fields: a
 * driver read must never land in between. */
static void change_config(uint32_t v, uint8_t link)
{
	virtio_config_lock(vh.vd);
	__atomic_store_n(&fx.t.cfg.lo, v, __ATOMIC_RELAXED);
	for (volatile int i = 0; i < 1000; i++)
		;
	__atomic_store_n(&fx.t.cfg.hi, v, __ATOMIC_RELAXED);
	fx.t.cfg.link = link;
	virtio_config_changed(vh.vd);
	virtio_config_unlock(vh.vd);
}

/* ---- capabilities through the UAPI structs ----------------------------------------- */

static void test_capabilities(void **state)
{
	(void)state;
	unsigned found = 0;
	for (uint8_t p = (uint8_t)cfg_rd(0x34, 1), n = 0; p && n < 48; n++) {
		if (cfg_rd(p, 1) == 0x09) {
			uint8_t type = (uint8_t)cfg_rd(p + 3u, 1);
			uint32_t off = cfg_rd(p + 8u, 4), len = cfg_rd(p + 12u, 4);
			assert_int_equal(cfg_rd(p + 4u, 1), 0);               /* BAR0 */
			switch (type) {
			case 1:
				assert_int_equal(cfg_rd(p + 2u, 1), 16);
				assert_int_equal(off, COMMON);
				assert_int_equal(len, 0x38);
				break;
			case 2:
				assert_int_equal(cfg_rd(p + 2u, 1), 20);
				assert_int_equal(off, NOTIFY);
				assert_int_equal(len, 4 * NQ);
				assert_int_equal(cfg_rd(p + 16u, 4), 4);      /* multiplier */
				break;
			case 3:
				assert_int_equal(off, ISR);
				assert_int_equal(len, 1);
				break;
			case 4:
				assert_int_equal(off, DEVCFG);
				assert_int_equal(len, sizeof(struct tcfg));
				break;
			default:
				fail_msg("unexpected vendor capability type %u", type);
			}
			found |= 1u << type;
		}
		p = (uint8_t)cfg_rd(p + 1u, 1);
	}
	assert_int_equal(found, 0x1e);
	assert_int_equal(cfg_rd(0x00, 4), (0x1040u + 63) << 16 | 0x1af4);
	assert_int_equal(cc_rd(NUMQ, 2), NQ);
	/* Device configuration reads go to the model, writes too. */
	assert_int_equal(mmio_rd(DEVCFG + 0, 4), 7);
	assert_int_equal(mmio_rd(DEVCFG + 8, 1), 1);
	mmio_wr(DEVCFG + 8, 0, 1);
	assert_int_equal(fx.t.cfg_writes, 1);
	assert_int_equal(fx.t.last_write_off, 8);
}

/* ---- configuration changes --------------------------------------------------------- */

static void test_config_changed_msix(void **state)
{
	(void)state;
	drv_init(true, true);
	uint8_t gen = generation();
	change_config(0x1234, 0);
	assert_int_equal(irqs(0), 1);                  /* the config vector */
	assert_int_equal(irqs(1), 0);
	assert_int_equal(irqs(2), 0);
	assert_int_not_equal(generation(), gen);
	assert_int_equal(mmio_rd(DEVCFG + 0, 4), 0x1234);
	assert_int_equal(mmio_rd(DEVCFG + 8, 1), 0);
	/* With MSI-X the ISR byte and INTx are not used. */
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	/* Each change: a new generation and an interrupt. */
	gen = generation();
	change_config(0x1235, 1);
	change_config(0x1236, 1);
	assert_int_equal(irqs(0), 2);
	assert_int_equal((uint8_t)(generation() - gen), 2);
	/* The config vector moved by the driver: the change follows it. */
	cc_wr(MSIX, 2, 2);
	change_config(1, 1);
	assert_int_equal(irqs(0), 0);
	assert_int_equal(irqs(2), 1);
	/* No vector: no interrupt, the generation still moves. */
	cc_wr(MSIX, NO_VECTOR, 2);
	gen = generation();
	change_config(2, 1);
	assert_int_equal(irqs(0) + irqs(1) + irqs(2), 0);
	assert_int_not_equal(generation(), gen);
}

static void test_config_changed_intx(void **state)
{
	(void)state;
	drv_init(false, true);
	uint8_t gen = generation();
	assert_false(vh.vd->pci.intx_asserted);
	change_config(99, 0);
	assert_true(vh.vd->pci.intx_asserted);
	assert_int_not_equal(generation(), gen);
	assert_int_equal(isr_read(), 2);               /* bit 1: configuration change */
	assert_false(vh.vd->pci.intx_asserted);        /* the read acknowledged it */
	assert_int_equal(isr_read(), 0);
	/* A queue interrupt and a change before the driver reads the ISR:
	 * both bits. */
	virtio_notify_queue(vh.vd, 0);
	change_config(100, 1);
	assert_int_equal(isr_read(), 3);
}

/* Before DRIVER_OK only the generation changes: the driver reads the
 * configuration when it gets there, and may not have a handler yet. */
static void test_config_changed_before_driver_ok(void **state)
{
	(void)state;
	drv_init(true, false);
	uint8_t gen = generation();
	change_config(5, 0);
	assert_int_not_equal(generation(), gen);
	assert_int_equal(irqs(0), 0);
	set_status(ST_READY);
	change_config(6, 1);
	assert_int_equal(irqs(0), 1);

	/* Without MSI-X: no ISR bit, no INTx line up for nobody. */
	drv_init(false, false);
	change_config(7, 0);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	/* After a reset: nothing either. */
	set_status(ST_READY);
	set_status(0);
	change_config(8, 0);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	assert_int_equal(mmio_rd(DEVCFG + 0, 4), 8);
}

/* A reset clears what a change left pending: the ISR bit and the INTx
 * level go, and the config vector goes back to NO_VECTOR. */
static void test_config_changed_then_reset(void **state)
{
	(void)state;
	drv_init(false, true);
	change_config(1, 1);
	assert_true(vh.vd->pci.intx_asserted);
	set_status(0);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	assert_int_equal(cc_rd(MSIX, 2), NO_VECTOR);
}

struct writer {
	unsigned n;
	atomic_bool done;
	atomic_uint changes;     /* changes made so far */
	atomic_uint read_start;  /* `changes` when the reader's current round began */
};

/* At most 200 changes while one round of the reader runs: config_generation
 * is 8 bits, so 256 changes while the reader was preempted between its two
 * reads of it (which a loaded CI machine did) would look like no change at
 * all. The bound is counted from the start of the reader's current round, not
 * per round begun, so quick retried rounds cannot bank an allowance. */
static void *config_writer(void *arg)
{
	struct writer *w = arg;
	for (unsigned i = 1; i <= w->n; i++) {
		while (i > atomic_load(&w->read_start) + 200u)
			sched_yield();
		change_config(i, (uint8_t)i);
		atomic_store(&w->changes, i);
	}
	atomic_store(&w->done, true);
	return NULL;
}

/* The driver's loop of 4.1.4.3.1 (generation, fields, generation) against
 * a device thread changing the configuration all the time: whenever the
 * two generations match, the two halves belong to one change. */
static void test_config_generation_consistent(void **state)
{
	(void)state;
	drv_init(true, true);
	struct writer w = { .n = 20000 };
	pthread_t th;
	unsigned reads = 0, retries = 0, torn = 0;
	uint32_t torn_lo = 0, torn_hi = 0;
	assert_int_equal(pthread_create(&th, NULL, config_writer, &w), 0);
	while (!atomic_load(&w.done) || reads == 0) {
		atomic_store(&w.read_start, atomic_load(&w.changes));
		uint8_t g1 = generation();
		uint32_t lo = (uint32_t)mmio_rd(DEVCFG + 0, 4);
		uint32_t hi = (uint32_t)mmio_rd(DEVCFG + 4, 4);
		uint8_t g2 = generation();
		if (g1 != g2) {
			retries++;
			continue;
		}
		reads++;
		if (lo != hi && !torn++) {
			torn_lo = lo;
			torn_hi = hi;
		}
	}
	pthread_join(th, NULL);
	if (torn)
		fail_msg("%u torn configuration reads under one generation (first: %u / %u)", torn,
			 torn_lo, torn_hi);
	/* Every change raised the config vector once (the eventfd adds up). */
	assert_int_equal(irqs(0), w.n);
	assert_int_equal(mmio_rd(DEVCFG + 0, 4), w.n);
	print_message("# %u consistent reads, %u retried\n", reads, retries);
}

/* ---- status transitions ------------------------------------------------------------- */

/* Clearing DRIVER_OK or FEATURES_OK without a reset is a driver bug
 * (2.1.2); kvmini keeps the old bits, so a running device goes on running
 * with the features it started with. */
static void test_clear_status_bits_ignored(void **state)
{
	(void)state;
	drv_init(true, true);
	assert_int_equal(atomic_load(&fx.t.starts), 1);
	assert_true(vh.vd->started);
	uint64_t feats = read_driver_features();
	assert_int_equal(feats, BIT(F_VERSION_1) | BIT(F_DEV));

	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK);          /* DRIVER_OK cleared */
	assert_int_equal(status(), ST_READY);
	set_status(ST_ACK | ST_DRIVER);                           /* FEATURES_OK too */
	assert_int_equal(status(), ST_READY);
	set_status(ST_ACK);
	assert_int_equal(status(), ST_READY);
	assert_true(vh.vd->started);
	assert_int_equal(atomic_load(&fx.t.stops), 0);
	/* The features stay frozen: FEATURES_OK never went away. */
	write_driver_features(BIT(F_VERSION_1));
	assert_int_equal(read_driver_features(), feats);
	assert_true(virtio_has_feature(vh.vd, F_DEV));
	/* DRIVER_OK "again" starts nothing a second time. */
	set_status(ST_READY);
	assert_int_equal(atomic_load(&fx.t.starts), 1);
	/* Interrupts still work. */
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 1);
	change_config(3, 3);
	assert_int_equal(irqs(0), 1);
	/* NEEDS_RESET is the device's bit: a driver cannot set it. FAILED is
	 * the driver's and sticks; the device keeps running until reset. */
	set_status(ST_READY | ST_NEEDS_RESET);
	assert_int_equal(status(), ST_READY);
	set_status(ST_READY | ST_FAILED);
	assert_int_equal(status(), ST_READY | ST_FAILED);
	set_status(ST_ACK);
	assert_int_equal(status(), ST_READY | ST_FAILED);
	assert_true(vh.vd->started);
	/* Only 0 resets. */
	set_status(0);
	assert_int_equal(status(), 0);
	assert_int_equal(atomic_load(&fx.t.stops), 1);
	assert_false(vh.vd->started);
	assert_int_equal(read_driver_features(), 0);
	/* And a new initialisation starts it again. */
	drv_init(true, true);
	assert_int_equal(atomic_load(&fx.t.starts), 2);
}

/* Clearing bits before DRIVER_OK is ignored the same way. */
static void test_clear_status_before_driver_ok(void **state)
{
	(void)state;
	drv_init(true, false);
	set_status(ST_ACK | ST_DRIVER);
	assert_int_equal(status(), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	write_driver_features(BIT(F_VERSION_1));
	assert_int_equal(read_driver_features(), BIT(F_VERSION_1) | BIT(F_DEV));
	set_status(ST_READY);
	assert_int_equal(status(), ST_READY);
	assert_int_equal(atomic_load(&fx.t.starts), 1);
}

/* DRIVER_OK without FEATURES_OK: the device can never start, and says so. */
static void test_driver_ok_without_features_ok(void **state)
{
	(void)state;
	set_status(0);
	set_status(ST_ACK | ST_DRIVER);
	write_driver_features(BIT(F_VERSION_1));
	set_status(ST_ACK | ST_DRIVER | ST_DRIVER_OK);
	assert_true(status() & ST_NEEDS_RESET);
	assert_int_equal(atomic_load(&fx.t.starts), 0);
	assert_false(vh.vd->started);
	/* FEATURES_OK afterwards does not start it either. */
	set_status(ST_READY);
	assert_int_equal(atomic_load(&fx.t.starts), 0);
	set_status(0);
	assert_int_equal(status(), 0);
	drv_init(false, true);
	assert_int_equal(atomic_load(&fx.t.starts), 1);
}

static void test_start_failure_needs_reset(void **state)
{
	(void)state;
	fx.t.start_ret = -EIO;
	drv_init(false, false);
	set_status(ST_READY);
	assert_int_equal(status(), ST_READY | ST_NEEDS_RESET);
	assert_false(vh.vd->started);
	fx.t.start_ret = 0;
	drv_init(false, true);
	assert_true(vh.vd->started);
}

/* ---- queue vectors ------------------------------------------------------------------ */

static void test_queue_vector_rewrite(void **state)
{
	(void)state;
	drv_init(true, true);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 1);
	/* Moved while the queue runs: the next interrupt uses the new one. */
	cc_wr(QSEL, 0, 2);
	cc_wr(QMSIX, 2, 2);
	assert_int_equal(cc_rd(QMSIX, 2), 2);
	assert_int_equal(cc_rd(QENABLE, 2), 1);        /* still running */
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 0);
	assert_int_equal(irqs(2), 1);
	/* Shared with the config vector. */
	cc_wr(QMSIX, 0, 2);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(0), 1);
	/* NO_VECTOR: no interrupt anywhere, and not INTx either. */
	cc_wr(QMSIX, NO_VECTOR, 2);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(0) + irqs(1) + irqs(2), 0);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	/* Past the table: refused as a whole, reads back NO_VECTOR. */
	cc_wr(QMSIX, 3, 2);
	assert_int_equal(cc_rd(QMSIX, 2), NO_VECTOR);
	cc_wr(QMSIX, 0x0101, 2);
	assert_int_equal(cc_rd(QMSIX, 2), NO_VECTOR);
	/* Back. Queue 1 was never touched. */
	cc_wr(QMSIX, 1, 2);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 1);
	cc_wr(QSEL, 1, 2);
	assert_int_equal(cc_rd(QMSIX, 2), 2);
	/* Other queue registers stay frozen while it is enabled. */
	cc_wr(QSEL, 0, 2);
	cc_wr(QDESC, 0x50000, 8);
	cc_wr(QSIZE, 8, 2);
	assert_int_equal(cc_rd(QDESC, 8), RING(0));
	assert_int_equal(cc_rd(QSIZE, 2), 16);
}

struct notifier {
	unsigned n;
	atomic_bool done;
};

static void *notify_thread(void *arg)
{
	struct notifier *nt = arg;
	for (unsigned i = 0; i < nt->n; i++)
		virtio_notify_queue(vh.vd, 0);
	atomic_store(&nt->done, true);
	return NULL;
}

/* An I/O thread interrupting while a vCPU rewrites the queue's vector:
 * every interrupt goes to the old vector or the new one, never elsewhere
 * and never lost. */
static void test_queue_vector_rewrite_race(void **state)
{
	(void)state;
	drv_init(true, true);
	struct notifier nt = { .n = 50000 };
	pthread_t th;
	unsigned rewrites = 0;
	cc_wr(QSEL, 0, 2);
	assert_int_equal(pthread_create(&th, NULL, notify_thread, &nt), 0);
	while (!atomic_load(&nt.done)) {
		cc_wr(QMSIX, rewrites & 1 ? 1 : 2, 2);
		rewrites++;
	}
	pthread_join(th, NULL);
	uint64_t v1 = irqs(1), v2 = irqs(2);
	assert_int_equal(v1 + v2, nt.n);
	assert_int_equal(irqs(0), 0);
	assert_false(vh.vd->pci.intx_asserted);
	print_message("# %u rewrites: %llu on vector 1, %llu on vector 2\n", rewrites,
		      (unsigned long long)v1, (unsigned long long)v2);
}

static void *notify_once(void *arg)
{
	(void)arg;
	virtio_notify_queue(vh.vd, 1);
	return NULL;
}

/* The interrupt path with MSI-X takes no lock: an I/O thread is not held
 * up by a vCPU in the common configuration, the device configuration or a
 * PCI config cycle. */
static void test_notify_takes_no_lock(void **state)
{
	(void)state;
	drv_init(true, true);
	struct timespec ts;
	pthread_t th;
	pthread_mutex_lock(&vh.vd->lock);
	pthread_mutex_lock(&vh.vd->config_lock);
	pthread_mutex_lock(&vh.pbus.lock);
	assert_int_equal(pthread_create(&th, NULL, notify_once, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	int r = pthread_timedjoin_np(th, NULL, &ts);
	pthread_mutex_unlock(&vh.pbus.lock);
	pthread_mutex_unlock(&vh.vd->config_lock);
	pthread_mutex_unlock(&vh.vd->lock);
	if (r) {
		pthread_join(th, NULL);
		fail_msg("virtio_notify_queue waited for a lock");
	}
	assert_int_equal(irqs(2), 1);
}

/* ---- MSI-X enable, function mask, disable --------------------------------------------- */

static void test_msix_transitions_route_interrupts(void **state)
{
	(void)state;
	drv_init(true, true);
	struct msix_vector *v1 = &vh.vd->pci.msix.vec[1];
	assert_true(pci_msix_enabled(&vh.vd->pci));
	assert_true(v1->routed);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 1);
	assert_false(vh.vd->pci.intx_asserted);

	/* Function masked: still MSI-X, the interrupt waits in the eventfd
	 * (the pending bit) and is there when the guest unmasks. */
	msix_ctrl(0xc000);
	assert_true(pci_msix_enabled(&vh.vd->pci));
	assert_false(v1->routed);
	virtio_notify_queue(vh.vd, 0);
	change_config(4, 4);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
	msix_ctrl(0x8000);
	assert_true(v1->routed);
	assert_int_equal(irqs(1), 1);
	assert_int_equal(irqs(0), 1);

	/* One vector masked: the same. */
	mmio_wr(MSIXT + 16 + 12, 1, 4);
	assert_false(v1->routed);
	virtio_notify_queue(vh.vd, 0);
	assert_false(vh.vd->pci.intx_asserted);
	mmio_wr(MSIXT + 16 + 12, 0, 4);
	assert_true(v1->routed);
	assert_int_equal(irqs(1), 1);

	/* Disabled: INTx and the ISR byte. */
	msix_ctrl(0x0000);
	assert_false(pci_msix_enabled(&vh.vd->pci));
	assert_false(v1->routed);
	virtio_notify_queue(vh.vd, 0);
	assert_true(vh.vd->pci.intx_asserted);
	assert_int_equal(irqs(1), 0);
	assert_int_equal(isr_read(), 1);
	assert_false(vh.vd->pci.intx_asserted);
	change_config(5, 5);
	assert_int_equal(isr_read(), 2);

	/* Enabled again, by a byte write of the control word's high byte. */
	cfg_wr(vh.msix_cap + 3u, 0x80, 1);
	assert_true(pci_msix_enabled(&vh.vd->pci));
	assert_true(v1->routed);
	virtio_notify_queue(vh.vd, 0);
	assert_int_equal(irqs(1), 1);
	assert_false(vh.vd->pci.intx_asserted);
	assert_int_equal(isr_read(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_capabilities),
		T(test_config_changed_msix),
		T(test_config_changed_intx),
		T(test_config_changed_before_driver_ok),
		T(test_config_changed_then_reset),
		T(test_config_generation_consistent),
		T(test_clear_status_bits_ignored),
		T(test_clear_status_before_driver_ok),
		T(test_driver_ok_without_features_ok),
		T(test_start_failure_needs_reset),
		T(test_queue_vector_rewrite),
		T(test_queue_vector_rewrite_race),
		T(test_notify_takes_no_lock),
		T(test_msix_transitions_route_interrupts),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
