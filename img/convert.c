/* kvmini-img convert: creates DST and copies SRC's guest-visible content
 * into it through the block layer, so a backed qcow2 source comes out
 * flattened. Ranges block_status calls zero, and all-zero blocks of data,
 * are not written: the new image already reads zero there and stays
 * sparse. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (2u << 20)
#define ZERO_GRAIN 4096u   /* qemu-img convert's default -S 4k */

struct progress {
	bool on;
	int shown;             /* hundredths of a percent last printed */
};

/* qemu-img's "    (12.34/100%)" line, redrawn in place. */
static void progress(struct progress *p, uint64_t done, uint64_t total, bool last)
{
	if (!p->on)
		return;
	int now = total ? (int)(done * 10000 / total) : 10000;
	/* Every whole percent, and 100% only once, at the end. */
	if (!last && (now - p->shown < 100 || now == 10000))
		return;
	p->shown = now;
	fprintf(stderr, "    (%d.%02d/100%%)%c", now / 100, now % 100, last ? '\n' : '\r');
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* Writes the non-zero runs of buf (len bytes of guest offset off). */
static int write_nonzero(struct img_sync *dst, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t g = len - i < ZERO_GRAIN ? len - i : ZERO_GRAIN;
		if (all_zero(buf + i, g)) {
			i += g;
			continue;
		}
		size_t j = i + g;
		while (j < len) {
			size_t h = len - j < ZERO_GRAIN ? len - j : ZERO_GRAIN;
			if (all_zero(buf + j, h))
				break;
			j += h;
		}
		int ret = img_sync_write(dst, off + i, buf + i, j - i);
		if (ret < 0)
			return ret;
		i = j;
	}
	return 0;
}

/* -c: every cluster that is not all zeroes, compressed. */
static int write_compressed(struct img_sync *dst, uint64_t off, const uint8_t *buf, size_t len)
{
	uint64_t cs = dst->b->cluster_size;
	for (size_t i = 0; i < len;) {
		size_t n = cs - (off + i) % cs;
		if (n > len - i)
			n = len - i;
		if (!all_zero(buf + i, n)) {
			int ret = img_sync_write_compressed(dst, off + i, buf + i, n);
			if (ret < 0)
				return ret;
		}
		i += n;
	}
	return 0;
}

static int copy(struct block *src, struct block *dst, struct progress *p, bool compress)
{
	struct img_sync s, d;
	uint8_t *buf = NULL;
	int ret = img_sync_init(&s, src);
	if (ret < 0)
		return ret;
	ret = img_sync_init(&d, dst);
	if (ret < 0) {
		img_sync_fini(&s);
		return ret;
	}
	if (posix_memalign((void **)&buf, 4096, CHUNK))
		ret = -ENOMEM;
	uint64_t off = 0, size = src->size;
	/* -c: cluster by cluster (compressed writes are whole clusters), all
	 * of the source, zero clusters left out. */
	while (compress && !ret && off < size) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		if ((ret = img_sync_read(&s, off, buf, n)) < 0)
			log_err("error while reading at byte %llu: %s", (unsigned long long)off,
				strerror(-ret));
		else if ((ret = write_compressed(&d, off, buf, n)) < 0)
			log_err("error while writing at byte %llu: %s", (unsigned long long)off,
				strerror(-ret));
		off += n;
		progress(p, off, size, false);
	}
	while (!compress && !ret && off < size) {
		struct block_extent x = { .len = size - off, .data = true };
		int st = block_status(src, off, size - off, &x);
		if (st < 0 && st != -ENOTSUP) {
			ret = st;
			log_err("Could not read file metadata: %s", strerror(-st));
			break;
		}
		if (st == -ENOTSUP)
			x = (struct block_extent){ .len = size - off, .data = true };
		uint64_t end = off + x.len;
		if (x.zero && !x.data) {
			off = end;   /* the new image reads zero already */
		}
		while (!ret && off < end) {
			size_t n = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
			ret = img_sync_read(&s, off, buf, n);
			if (ret < 0) {
				log_err("error while reading at byte %llu: %s",
					(unsigned long long)off, strerror(-ret));
				break;
			}
			ret = write_nonzero(&d, off, buf, n);
			if (ret < 0) {
				log_err("error while writing at byte %llu: %s",
					(unsigned long long)off, strerror(-ret));
				break;
			}
			off += n;
			progress(p, off, size, false);
		}
		progress(p, off, size, false);
	}
	if (!ret && (ret = img_sync_flush(&d)) < 0)
		log_err("error while flushing the output image: %s", strerror(-ret));
	free(buf);
	img_sync_fini(&d);
	img_sync_fini(&s);
	return ret;
}

int cmd_convert(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force-share", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	enum block_format in_fmt = BLOCK_FMT_AUTO, out_fmt = BLOCK_FMT_RAW;
	bool compress = false, quiet = false;
	struct progress prog = { .shown = -100 };
	char *optlists[16];
	unsigned nopt = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:O:o:cpqU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (img_format_option(optarg, &in_fmt) < 0)
				return IMG_ERR;
			break;
		case 'O':
			if (img_format_option(optarg, &out_fmt) < 0)
				return IMG_ERR;
			break;
		case 'o':
			if (nopt == sizeof(optlists) / sizeof(optlists[0]))
				return img_usage_error("convert", "too many -o options");
			optlists[nopt++] = optarg;
			break;
		case 'c': compress = true; break;
		case 'p': prog.on = true; break;
		case 'q': quiet = true; break;
		case 'U': break;
		default: return img_bad_option("convert", c, argv);
		}
	}
	if (argc - optind != 2)
		return img_usage_error("convert", "Expecting a source and a target file name");
	const char *src_path = argv[optind], *dst_path = argv[optind + 1];
	/* qemu-img draws progress on stdout; kvmini-img only on a terminal on
	 * stderr, so piped stdout stays clean. */
	prog.on = prog.on && !quiet && isatty(STDERR_FILENO);
	bool qcow2 = out_fmt == BLOCK_FMT_QCOW2;
	if (compress && !qcow2) {
		log_err("Compression not supported for this file format");
		return IMG_ERR;
	}
	struct img_create_opts o = IMG_CREATE_OPTS_INIT;
	for (unsigned i = 0; i < nopt; i++)
		if (img_create_parse(dst_path, qcow2, optlists[i], &o) < 0)
			return IMG_ERR;
	if (o.backing) {
		log_err("%s: convert does not take a backing file for the target", dst_path);
		return IMG_ERR;
	}

	struct block *src, *dst;
	if (img_open(&src, src_path, in_fmt, true, BLOCK_CACHE_WRITEBACK) < 0)
		return IMG_ERR;
	o.size = src->size;
	int ret = img_create_image(dst_path, qcow2, &o);
	if (ret == 0)
		ret = img_open(&dst, dst_path, out_fmt, false, BLOCK_CACHE_WRITEBACK);
	if (ret == 0) {
		progress(&prog, 0, src->size, false);
		ret = copy(src, dst, &prog, compress);
		if (ret == 0)
			progress(&prog, src->size, src->size, true);
		block_close(dst);
	}
	block_close(src);
	return ret < 0 ? IMG_ERR : IMG_OK;
}
