/* test=work: the kvmini-bench workloads (bench/kvmini_bench.py) in ring 3.
 * The same code runs on the host in bench/work_host.c (workloads.c, shared);
 * this file only sets up buffers and prints the marks. Command line:
 *   work=cpu-int   [size=BYTES] [rounds=N]       hash a buffer
 *   work=cpu-fp    [n=N] [rounds=N]              n x n double matrix multiply
 *   work=mem-bw    [size=BYTES] [rounds=N]       copy and triad, 3 arrays of size
 *   work=mem-lat   [lat_min=B] [lat_max=B] [steps=N]  pointer chase, x4 per size
 *                  (steps x32 up to 256 KiB, x4 up to 4 MiB)
 *   work=exit      [count=N] [kick_count=N]      PIO, MMIO and ioeventfd round trips
 *   work=startup   [cal_tsc=TICKS]               TSC at entry and first UART byte
 *   work=footprint [touch=BYTES] [spin_tsc=TICKS] touch RAM, say ready, spin
 *
 * Marks (one line each, parsed by the host; the same from work_host.c):
 *   @b NAME        the timed part starts when this line arrives
 *   @e             ... and ends when this one does (3 bytes: little UART time)
 *   @r NAME units=N sum=X [k=v...]   what the part did, outside the timing
 * The host takes time from the console lines' arrival, as blk_bench.py
 * does: no TSC frequency needed, the same on every VMM. An empty part
 * named null comes first: what the marks themselves cost, subtracted. */
#include "guest.h"
#include "vblk.h"
#include "workloads.h"

static void mark_begin(const char *name) { put_fmt("@b %s\n", name); }
static void mark_end(void) { put_str("@e\n"); }

static void cpu_int(void)
{
	uint64_t size = cmdline_get_u64("size", 64 << 10) & ~7ull;
	uint64_t rounds = cmdline_get_u64("rounds", 4000);
	uint64_t *buf = mem_alloc(size, 1 << 21);   /* aligned as the host's buffers */
	uint64_t s = 1;
	for (uint64_t i = 0; i < size / 8; i++)
		buf[i] = (s = s * 6364136223846793005ull + 1442695040888963407ull);
	mark_begin("cpu-int");
	uint64_t h = wl_hash(buf, size, rounds);
	mark_end();
	put_fmt("@r cpu-int units=%lu sum=%lx\n", size * rounds, h);
}

static void cpu_fp(void)
{
	uint64_t n = cmdline_get_u64("n", 128);
	uint64_t rounds = cmdline_get_u64("rounds", 100);
	CHECK(n >= 1 && n <= 2048, "work: n=%lu out of range", n);
	void *buf = mem_alloc(24 * n * n, 1 << 21);
	wl_matmul_init(buf, (unsigned)n, 1);
	mark_begin("cpu-fp");
	uint64_t sum = wl_matmul(buf, (unsigned)n, rounds);
	mark_end();
	put_fmt("@r cpu-fp units=%lu sum=%lx\n", 2 * n * n * n * rounds, sum);
}

static void mem_bw(void)
{
	uint64_t size = cmdline_get_u64("size", 64 << 20) & ~7ull;
	uint64_t rounds = cmdline_get_u64("rounds", 10);
	uint64_t n = size / 8;
	void *buf = mem_alloc(3 * size, 1 << 21);
	wl_stream_init(buf, n);
	mark_begin("mem-bw-copy");
	uint64_t s1 = wl_copy(buf, n, rounds);
	mark_end();
	put_fmt("@r mem-bw-copy units=%lu sum=%lx\n", 16 * n * rounds, s1);
	mark_begin("mem-bw-triad");
	uint64_t s2 = wl_triad(buf, n, rounds);
	mark_end();
	put_fmt("@r mem-bw-triad units=%lu sum=%lx\n", 24 * n * rounds, s2);
}

static void mem_lat(void)
{
	uint64_t lo = cmdline_get_u64("lat_min", 4096);
	uint64_t hi = cmdline_get_u64("lat_max", 1ull << 30);
	uint64_t steps = cmdline_get_u64("steps", 2000000);
	CHECK(lo >= 4096 && !(lo & (lo - 1)) && hi >= lo, "work: lat_min=%lu lat_max=%lu", lo, hi);
	/* One buffer of the largest size, 2 MiB aligned as the host's is: each
	 * working set is its first SIZE bytes. */
	void *buf = mem_alloc(hi, 1 << 21);
	for (uint64_t size = lo; size <= hi; size *= 4) {
		wl_chase_init(buf, size);
		uint64_t n = wl_chase_steps(size, steps);
		wl_chase(buf, size / 64 < n ? size / 64 : n);   /* warm */
		char name[32];
		wl_size_name(name, "mem-lat-", size);
		mark_begin(name);
		uint64_t end = wl_chase(buf, n);
		mark_end();
		put_fmt("@r %s units=%lu sum=%lx bytes=%lu\n", name, n, end - (uint64_t)buf, size);
	}
}

static void exits(void)
{
	uint64_t count = cmdline_get_u64("count", 20000);
	uint64_t sum = 0;
	mark_begin("exit-pio");
	for (uint64_t i = 0; i < count; i++)
		sum += inb(PORT_UNCLAIMED);
	mark_end();
	put_fmt("@r exit-pio units=%lu sum=%lx\n", count, sum);
	mark_begin("exit-mmio");
	for (uint64_t i = 0; i < count; i++)
		sum += mmio_read32(MMIO_UNCLAIMED);
	mark_end();
	put_fmt("@r exit-mmio units=%lu sum=%lx\n", count, sum);
	/* The kick: a write to queue 0's notify address, which both VMMs bind
	 * to an ioeventfd, so KVM signals the I/O thread and resumes the guest
	 * without a trip to the VMM. Nothing is queued, so the device finds no
	 * work. Needs a virtio-blk disk. */
	struct pci_dev dev;
	if (!pci_find(0x1af4, VIRTIO_PCI_DEV_BLK, 0, &dev)) {
		put_str("@r exit-kick skipped=no-virtio-blk-disk\n");
		return;
	}
	static struct vblk blk;
	struct vblk_opts o = { .quiet = true };
	vblk_init(&blk, &o);
	uint64_t notify = blk.q[0].notify;
	uint64_t kicks = cmdline_get_u64("kick_count", count);
	mark_begin("exit-kick");
	for (uint64_t i = 0; i < kicks; i++)
		mmio_write16(notify, 0);
	mark_end();
	put_fmt("@r exit-kick units=%lu sum=0\n", kicks);
}

static void spin_ticks(uint64_t ticks)
{
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < ticks)
		cpu_relax();
}

static void startup(void)
{
	/* The TSC's rate against the host's clock: a known number of ticks
	 * between two marks. */
	uint64_t cal = cmdline_get_u64("cal_tsc", 200000000);
	mark_begin("tsc-cal");
	uint64_t t0 = rdtsc();
	spin_ticks(cal);
	uint64_t t1 = rdtsc();
	mark_end();
	put_fmt("@r tsc-cal units=%lu sum=0\n", t1 - t0);
	put_fmt("@r startup units=1 sum=0 entry_tsc=%lu first_out_tsc=%lu\n", entry_tsc,
		first_out_tsc);
}

static void footprint(void)
{
	uint64_t touch = cmdline_get_u64("touch", 64 << 20);
	uint64_t spin = cmdline_get_u64("spin_tsc", 150000000000ull);
	uint8_t *p = mem_alloc(touch, 4096);    /* mem_alloc zeroes it: every page touched */
	put_fmt("@r footprint units=%lu sum=%x\n", touch, p[touch ? touch - 1 : 0]);
	put_str("@ready\n");
	spin_ticks(spin);                          /* the host reads /proc and kills us */
	fail("footprint: not stopped within spin_tsc=%lu ticks", spin);
}

static void test_work(void)
{
	char w[16];
	CHECK(cmdline_get("work", w, sizeof(w)), "work: work=NAME missing");
	mark_begin("null");
	mark_end();
	static const struct { const char *name; void (*fn)(void); } works[] = {
		{ "cpu-int", cpu_int }, { "cpu-fp", cpu_fp }, { "mem-bw", mem_bw },
		{ "mem-lat", mem_lat }, { "exit", exits }, { "startup", startup },
		{ "footprint", footprint },
	};
	for (unsigned i = 0; i < sizeof(works) / sizeof(works[0]); i++)
		if (!strcmp(w, works[i].name)) {
			works[i].fn();
			return;
		}
	fail("work: unknown work=%s", w);
}
GUEST_TEST("work", test_work, "kvmini-bench workloads: work=cpu-int|cpu-fp|mem-bw|mem-lat|exit|startup|footprint");
