/* Parsing and naming shared by the subcommands, in qemu-img's spelling so
 * that scripts written for qemu-img work unchanged. */
#include "img/img.h"
#include "vmm/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int img_parse_size(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long whole = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	/* qemu-img takes "1.5G"; a fraction without a suffix is not a byte count. */
	double frac = 0;
	const char *dot = NULL;
	if (*end == '.') {
		dot = end;
		frac = strtod(end, &end);
	}
	unsigned shift;
	switch (*end) {
	case '\0': case 'b': case 'B': shift = 0; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case 'p': case 'P': shift = 50; break;
	case 'e': case 'E': shift = 60; break;
	default: return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (dot && shift == 0)
		return -EINVAL;
	if (whole > (UINT64_MAX >> shift))
		return -ERANGE;
	uint64_t v = (uint64_t)whole << shift;
	uint64_t f = (uint64_t)(frac * (double)(1ull << shift));
	if (v > INT64_MAX || f > INT64_MAX - v)
		return -ERANGE;   /* qemu-img's sizes are int64 */
	*out = v + f;
	return 0;
}

int img_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	char *end;
	/* base 0: qemu-img takes --pattern=0x55 */
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int img_format_option(const char *s, enum block_format *fmt)
{
	if (img_parse_format(s, fmt) == 0)
		return 0;
	log_err("Unknown file format '%s'", s);
	return -EINVAL;
}

int img_parse_format(const char *s, enum block_format *fmt)
{
	if (!strcmp(s, "raw"))
		*fmt = BLOCK_FMT_RAW;
	else if (!strcmp(s, "qcow2"))
		*fmt = BLOCK_FMT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

const char *img_format_name(enum block_format fmt)
{
	return fmt == BLOCK_FMT_QCOW2 ? "qcow2" : fmt == BLOCK_FMT_RAW ? "raw" : "auto";
}

int img_parse_output(const char *s, bool *json)
{
	if (!strcmp(s, "json"))
		*json = true;
	else if (!strcmp(s, "human"))
		*json = false;
	else {
		log_err("--output must be used with human or json as argument.");
		return -EINVAL;
	}
	return 0;
}

/* Three significant digits, switching unit once the integer part would
 * reach 1000 (qemu's util/cutils.c size_to_str). */
void img_size_str(uint64_t v, char *buf, size_t len)
{
	static const char *const suffix[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	int e;
	frexp((double)v / (1000.0 / 1024.0), &e);
	int i = (e - 1) / 10;
	if (i < 0)
		i = 0;
	snprintf(buf, len, "%0.3g %sB", (double)v / (double)(1ull << (i * 10)), suffix[i]);
}

int img_usage_error(const char *cmd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_err("%s: %s (see kvmini-img %s --help)", cmd, line, cmd);
	return IMG_ERR;
}

/* qemu-img's wording for a file that is not there, before block_open
 * words it as a VM disk. */
static int check_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int err = errno;
		log_err("Could not open '%s': %s", path, strerror(err));
		return -err;
	}
	return 0;
}

int img_probe(const char *path, enum block_format *fmt)
{
	int ret = check_path(path);
	if (ret < 0)
		return ret;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("Could not open '%s': %s", path, strerror(-ret));
		return ret;
	}
	/* The same rule as block_open: the qcow2 magic is never raw data. */
	unsigned char m[4];
	ssize_t n = pread(fd, m, sizeof(m), 0);
	close(fd);
	*fmt = n == 4 && !memcmp(m, "QFI\xfb", 4) ? BLOCK_FMT_QCOW2 : BLOCK_FMT_RAW;
	return 0;
}

int img_open(struct block **b, const char *path, enum block_format fmt, bool readonly,
	     enum block_cache cache)
{
	int ret = check_path(path);
	if (ret < 0)
		return ret;
	/* The locks qemu-img takes for the same work (bench, convert, map,
	 * resize, info of a raw image read only its header: see info.c). */
	struct block_config cfg = { .path = path, .format = fmt, .cache = cache,
				    .readonly = readonly, .lock = true };
	return block_open(b, &cfg);
}

char *img_backing_path(const char *image, const char *backing)
{
	const char *slash = strrchr(image, '/');
	if (backing[0] == '/' || !slash)
		return strdup(backing);
	size_t dir = (size_t)(slash - image) + 1;
	char *p = malloc(dir + strlen(backing) + 1);
	if (p) {
		memcpy(p, image, dir);
		strcpy(p + dir, backing);
	}
	return p;
}

int img_bad_option(const char *cmd, int c, char **argv)
{
	/* optind has moved past the word that held the bad option. */
	const char *word = optind > 0 ? argv[optind - 1] : "?";
	if (c == ':')
		return img_usage_error(cmd, "option '%s' requires an argument", word);
	return img_usage_error(cmd, "unrecognized option '%s'", word);
}

int img_size_error(void)
{
	log_err("Invalid image size specified. You may use k, M, G, T, P or E suffixes for "
		"kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
	return IMG_ERR;
}
