/* kvmini-img create: a new raw file, or a qcow2 image written by the
 * format helper (qcow2_create). Options and the "Formatting ..." line
 * follow qemu-img 7.2, so scripts that parse it keep working. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int on_off(const char *v, int *out)
{
	if (!strcmp(v, "on"))
		*out = 1;
	else if (!strcmp(v, "off"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int bad_value(const char *file, const char *key, const char *v)
{
	log_err("%s: Parameter '%s' does not accept value '%s'", file, key, v);
	return -EINVAL;
}

/* One key=value of -o. Keys of the other format are refused as qemu-img
 * does ("Invalid parameter"). */
static int set_opt(const char *file, bool qcow2, char *kv, struct img_create_opts *o)
{
	char *v = strchr(kv, '=');
	if (!v) {
		log_err("%s: Invalid parameter '%s'", file, kv);
		return -EINVAL;
	}
	*v++ = '\0';
	uint64_t n;
	if (!strcmp(kv, "size")) {
		if (img_parse_size(v, &o->size))
			return img_size_error(), -EINVAL;
	} else if (!strcmp(kv, "preallocation")) {
		o->prealloc_str = v;
		if (!strcmp(v, "off"))
			o->prealloc = IMG_PREALLOC_OFF;
		else if (qcow2 && !strcmp(v, "metadata"))
			o->prealloc = IMG_PREALLOC_METADATA;
		else if (!qcow2 && !strcmp(v, "falloc"))
			o->prealloc = IMG_PREALLOC_FALLOC;
		else if (!qcow2 && !strcmp(v, "full"))
			o->prealloc = IMG_PREALLOC_FULL;
		else
			return bad_value(file, kv, v);
	} else if (!qcow2) {
		log_err("%s: Invalid parameter '%s'", file, kv);
		return -EINVAL;
	} else if (!strcmp(kv, "cluster_size")) {
		if (img_parse_size(v, &n) || n > UINT32_MAX)
			return bad_value(file, kv, v);
		o->cluster_size = (uint32_t)n;
	} else if (!strcmp(kv, "refcount_bits")) {
		if (img_parse_uint(v, 64, &n) || n == 0)
			return bad_value(file, kv, v);
		o->refcount_bits = (unsigned)n;
	} else if (!strcmp(kv, "compat")) {
		o->compat_str = v;
		if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
			o->compat = 2;
		else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
			o->compat = 3;
		else
			return bad_value(file, kv, v);
	} else if (!strcmp(kv, "lazy_refcounts")) {
		o->lazy_str = v;
		if (on_off(v, &o->lazy_refcounts))
			return bad_value(file, kv, v);
	} else if (!strcmp(kv, "compression_type")) {
		o->compression_str = v;
		if (!strcmp(v, "zlib"))
			o->compression = 0;
		else if (!strcmp(v, "zstd"))
			o->compression = 1;
		else
			return bad_value(file, kv, v);
	} else if (!strcmp(kv, "extended_l2")) {
		if (on_off(v, &o->extended_l2))
			return bad_value(file, kv, v);
	} else if (!strcmp(kv, "backing_file")) {
		o->backing = v;
	} else if (!strcmp(kv, "backing_fmt")) {
		o->backing_fmt = v;
	} else {
		log_err("%s: Invalid parameter '%s'", file, kv);
		return -EINVAL;
	}
	return 0;
}

int img_create_parse(const char *file, bool qcow2, char *list, struct img_create_opts *o)
{
	for (char *save = NULL, *kv = strtok_r(list, ",", &save); kv;
	     kv = strtok_r(NULL, ",", &save)) {
		int ret = set_opt(file, qcow2, kv, o);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The virtual size of the backing file, when SIZE is left out (and to
 * refuse a backing file that is not there, as qemu-img does). */
static int backing_size(const char *file, const struct img_create_opts *o, uint64_t *size)
{
	char *path = img_backing_path(file, o->backing);
	if (!path)
		return -ENOMEM;
	enum block_format fmt;
	int ret = img_parse_format(o->backing_fmt, &fmt);
	if (ret < 0) {
		log_err("%s: Unknown backing format '%s'", file, o->backing_fmt);
	} else if (fmt == BLOCK_FMT_QCOW2) {
		struct img_qcow2 *q;
		ret = img_qcow2_load(path, false, &q);
		if (ret == 0)
			*size = img_qcow2_size(q);
		img_qcow2_free(q);
	} else {
		struct stat st;
		if (stat(path, &st) < 0) {
			ret = -errno;
			log_err("%s: Could not open '%s': %s", file, path, strerror(-ret));
		} else {
			/* QEMU sees a raw file in whole sectors. */
			*size = ((uint64_t)st.st_size + 511) & ~511ull;
		}
	}
	free(path);
	return ret;
}

static int create_raw(const char *file, const struct img_create_opts *o)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		log_err("%s: Could not create '%s': %s", file, file, strerror(e));
		return -e;
	}
	/* qemu-img makes raw files whole sectors: 1000 bytes become 1024. */
	uint64_t size = (o->size + 511) & ~511ull;
	int ret = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (!ret && o->prealloc == IMG_PREALLOC_FALLOC && size)
		ret = -posix_fallocate(fd, 0, (off_t)size);
	if (!ret && o->prealloc == IMG_PREALLOC_FULL) {
		/* Written zeroes, so the blocks are really allocated. */
		static const char zeroes[65536];
		for (uint64_t off = 0; !ret && off < size; off += sizeof(zeroes)) {
			size_t n = size - off < sizeof(zeroes) ? size - off : sizeof(zeroes);
			ssize_t w = pwrite(fd, zeroes, n, (off_t)off);
			if (w != (ssize_t)n)
				ret = w < 0 ? -errno : -EIO;
		}
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0)
		log_err("%s: Could not resize file: %s", file, strerror(-ret));
	close(fd);
	return ret;
}

int img_create_image(const char *file, bool qcow2, const struct img_create_opts *o)
{
	return qcow2 ? img_qcow2_create(file, o) : create_raw(file, o);
}

static void print_formatting(const char *file, bool qcow2, const struct img_create_opts *o)
{
	printf("Formatting '%s', fmt=%s ", file, qcow2 ? "qcow2" : "raw");
	if (!qcow2) {
		printf("size=%llu", (unsigned long long)o->size);
		if (o->prealloc_str)
			printf(" preallocation=%s", o->prealloc_str);
		putchar('\n');
		return;
	}
	printf("cluster_size=%u extended_l2=%s", o->cluster_size ? o->cluster_size : 65536,
	       o->extended_l2 == 1 ? "on" : "off");
	if (o->prealloc_str)
		printf(" preallocation=%s", o->prealloc_str);
	printf(" compression_type=%s size=%llu", o->compression_str ? o->compression_str : "zlib",
	       (unsigned long long)o->size);
	if (o->compat_str)
		printf(" compat=%s", o->compat_str);
	if (o->backing)
		printf(" backing_file=%s", o->backing);
	if (o->backing_fmt)
		printf(" backing_fmt=%s", o->backing_fmt);
	printf(" lazy_refcounts=%s refcount_bits=%u\n", o->lazy_str ? o->lazy_str : "off",
	       o->refcount_bits ? o->refcount_bits : 16);
}

int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct img_create_opts o = IMG_CREATE_OPTS_INIT;
	const char *fmt = "raw";
	char *optlists[16];
	unsigned nopt = 0;
	bool quiet = false, unsafe = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:b:F:o:qu", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': o.backing = optarg; break;
		case 'F': o.backing_fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'u': unsafe = true; break;
		case 'o':
			if (nopt == sizeof(optlists) / sizeof(optlists[0]))
				return img_usage_error("create", "too many -o options");
			optlists[nopt++] = optarg;
			break;
		default: return img_bad_option("create", c, argv);
		}
	}
	if (optind >= argc)
		return img_usage_error("create", "Expecting image file name");
	const char *file = argv[optind++];
	bool size_given = optind < argc;
	if (size_given && img_parse_size(argv[optind++], &o.size))
		return img_size_error();
	if (optind < argc)
		return img_usage_error("create", "unexpected argument '%s'", argv[optind]);

	enum block_format f;
	if (img_parse_format(fmt, &f) < 0) {
		log_err("%s: Unknown file format '%s'", file, fmt);
		return IMG_ERR;
	}
	bool qcow2 = f == BLOCK_FMT_QCOW2;
	for (unsigned i = 0; i < nopt; i++)
		if (img_create_parse(file, qcow2, optlists[i], &o) < 0)
			return IMG_ERR;
	size_given = size_given || o.size;
	if (!qcow2 && (o.backing || o.backing_fmt)) {
		log_err("%s: Backing file not supported for file format 'raw'", file);
		return IMG_ERR;
	}
	if (o.backing_fmt && !o.backing) {
		log_err("%s: Backing format given without a backing file", file);
		return IMG_ERR;
	}
	if (o.backing && !o.backing_fmt) {
		log_err("%s: Backing file specified without backing format", file);
		return IMG_ERR;
	}
	if (o.extended_l2 == 1) {
		log_err("%s: extended_l2=on is not supported by kvmini", file);
		return IMG_ERR;
	}
	if (o.backing && o.prealloc > IMG_PREALLOC_OFF) {
		log_err("%s: Backing file and preallocation can only be used at the same time "
			"if extended_l2 is on", file);
		return IMG_ERR;
	}
	if (o.backing && !unsafe) {
		uint64_t bsize = 0;
		if (backing_size(file, &o, &bsize) < 0)
			return IMG_ERR;
		if (!size_given) {
			o.size = bsize;
			size_given = true;
		}
	}
	if (!size_given) {
		log_err("%s: Image creation needs a size parameter", file);
		return IMG_ERR;
	}
	if (qcow2 && !img_qcow2_built())
		return img_qcow2_create(file, &o) < 0 ? IMG_ERR : IMG_OK;
	if (!quiet) {
		print_formatting(file, qcow2, &o);
		fflush(stdout);
	}
	int ret = img_create_image(file, qcow2, &o);
	return ret < 0 ? IMG_ERR : IMG_OK;
}
