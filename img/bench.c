/* kvmini-img bench: qemu-img bench on kvmini's block layer. COUNT
 * requests of SIZE bytes, DEPTH in flight, at OFFSET, OFFSET + STEP, ...
 * (wrapping at the end of the image), all on one engine: the same loop
 * qemu-img runs, so the two tools' numbers compare like for like. Writes
 * store the pattern byte (0 by default), as qemu-img's do. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench;

struct slot {
	struct block_req r;
	struct iovec iov;
	struct bench *bn;
};

struct bench {
	struct block *b;
	struct io_engine e;
	bool write;
	uint64_t offset, step, size;
	unsigned count, submitted, completed, in_flight, depth;
	int64_t error;
	struct slot *slots;
};

static void submit(struct bench *bn, struct slot *s);

static void bench_done(void *opaque, int64_t res)
{
	struct slot *s = opaque;
	struct bench *bn = s->bn;
	bn->in_flight--;
	bn->completed++;
	if (res < 0 && !bn->error)
		bn->error = res;
	if (!bn->error && bn->submitted < bn->count)
		submit(bn, s);
}

static void submit(struct bench *bn, struct slot *s)
{
	s->r.offset = bn->offset;
	bn->offset += bn->step;
	/* qemu-img bench wraps at the image size, not at the last whole request. */
	bn->offset = bn->b->size ? bn->offset % bn->b->size : 0;
	bn->submitted++;
	bn->in_flight++;
	(bn->write ? block_write : block_read)(bn->b, &bn->e, &s->r);
}

/* zero_ok: the offset and the pattern may be 0, counts and sizes not. */
static int parse_num(const char *what, const char *s, uint64_t max, bool size, bool zero_ok,
		     uint64_t *out)
{
	int ret = size ? img_parse_size(s, out) : img_parse_uint(s, max, out);
	if (ret < 0 || *out > max || (*out == 0 && !zero_ok)) {
		log_err("Invalid %s specified", what);
		return -EINVAL;
	}
	return 0;
}

static int run(struct bench *bn, unsigned align, int pattern, double *secs)
{
	size_t priv = block_req_priv_size(bn->b);
	size_t slot_priv = (priv + 15) & ~(size_t)15;
	uint8_t *buf = NULL, *drv = NULL;
	bn->slots = calloc(bn->depth, sizeof(*bn->slots));
	if (!bn->slots || posix_memalign((void **)&buf, align, (size_t)bn->depth * bn->size) ||
	    (slot_priv && posix_memalign((void **)&drv, 16, slot_priv * bn->depth))) {
		free(bn->slots);
		free(buf);
		return -ENOMEM;
	}
	memset(buf, pattern, (size_t)bn->depth * bn->size);
	for (unsigned i = 0; i < bn->depth; i++) {
		struct slot *s = &bn->slots[i];
		s->bn = bn;
		s->iov = (struct iovec){ buf + (size_t)i * bn->size, bn->size };
		s->r = (struct block_req){ .iov = &s->iov, .iovcnt = 1, .done = bench_done,
					   .opaque = s, .drv = drv ? drv + i * slot_priv : NULL };
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < bn->depth && bn->submitted < bn->count; i++)
		submit(bn, &bn->slots[i]);
	int ret = 0;
	while (bn->in_flight && ret >= 0)
		ret = io_engine_run(&bn->e, true);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (ret >= 0 && !bn->error && bn->write) {
		/* Outside the timing, as qemu-img's flush at close is. */
		bn->slots[0].r = (struct block_req){ .done = bench_done, .opaque = &bn->slots[0],
						     .drv = drv };
		bn->in_flight++;
		block_flush(bn->b, &bn->e, &bn->slots[0].r);
	}
	int dret = block_drain(bn->b, &bn->e);
	free(drv);
	free(buf);
	free(bn->slots);
	return ret < 0 ? ret : dret < 0 ? dret : 0;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pattern", required_argument, NULL, 'P' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t count = 75000, depth = 64, size = 4096, step = 0, offset = 0, pattern = 0;
	enum block_format fmt = BLOCK_FMT_AUTO;
	enum block_cache cache = BLOCK_CACHE_WRITEBACK;
	bool write = false, quiet = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:d:f:o:s:S:t:wqU", longopts, NULL)) != -1) {
		int ret = 0;
		switch (c) {
		case 'c': ret = parse_num("request count", optarg, INT_MAX, false, false, &count); break;
		case 'd': ret = parse_num("queue depth", optarg, 4096, false, false, &depth); break;
		case 's': ret = parse_num("buffer size", optarg, 1u << 30, true, false, &size); break;
		case 'S': ret = parse_num("step size", optarg, INT_MAX, true, false, &step); break;
		case 'o': ret = parse_num("offset", optarg, INT64_MAX, true, true, &offset); break;
		case 'P': ret = parse_num("pattern byte", optarg, 255, false, true, &pattern); break;
		case 'f':
			if (img_format_option(optarg, &fmt) < 0)
				return IMG_ERR;
			break;
		case 't':
			if (!strcmp(optarg, "none"))
				cache = BLOCK_CACHE_NONE;
			else if (!strcmp(optarg, "writeback"))
				cache = BLOCK_CACHE_WRITEBACK;
			else {
				log_err("Invalid cache option: %s (kvmini: none or writeback)", optarg);
				return IMG_ERR;
			}
			break;
		case 'w': write = true; break;
		case 'q': quiet = true; break;
		case 'U': break;
		default: return img_bad_option("bench", c, argv);
		}
		if (ret < 0)
			return IMG_ERR;
	}
	if (optind != argc - 1)
		return img_usage_error("bench", "Expecting one image file name");
	struct bench bn = { .write = write, .offset = offset, .step = step ? step : size,
			    .size = size, .count = (unsigned)count, .depth = (unsigned)depth };
	if (bn.depth > bn.count)
		bn.depth = bn.count;   /* as qemu-img: never more slots than requests */
	if (img_open(&bn.b, argv[optind], fmt, !write, cache) < 0)
		return IMG_ERR;
	/* A qcow2 request may take several ring entries (metadata, COW). */
	int ret = io_engine_init(&bn.e, bn.depth * 4 < 64 ? 64 : bn.depth * 4);
	if (ret < 0) {
		block_close(bn.b);
		return IMG_ERR;
	}
	if (!quiet)
		printf("Sending %u %s requests, %" PRIu64 " bytes each, %" PRIu64 " in parallel "
		       "(starting at offset %" PRIu64 ", step size %" PRIu64 ")\n",
		       bn.count, write ? "write" : "read", size, depth, offset, bn.step);
	fflush(stdout);
	unsigned align = bn.b->buf_align > 4096 ? bn.b->buf_align : 4096;
	double secs = 0;
	ret = run(&bn, align, (int)pattern, &secs);
	io_engine_close(&bn.e);
	block_close(bn.b);
	if (ret < 0 || bn.error < 0) {
		log_err("Failed request: %s", strerror(ret < 0 ? -ret : (int)-bn.error));
		return IMG_ERR;
	}
	if (!quiet)
		printf("Run completed in %3.3f seconds.\n", secs);
	return IMG_OK;
}
