/* kvmini-img resize: block_resize on the image, with qemu-img's rules: a
 * size of +N/-N is relative, and shrinking needs --shrink (the driver may
 * still refuse when it cannot prove the tail unused). */
#include "img/img.h"
#include "vmm/log.h"

#include <getopt.h>
#include <string.h>

int cmd_resize(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "shrink", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	if (argc < 3)
		return img_usage_error("resize", "Expecting image file name and size");
	/* The size goes first, or getopt would take "-1G" for options. */
	const char *size_arg = argv[--argc];
	bool shrink = false, quiet = false;
	enum block_format fmt = BLOCK_FMT_AUTO;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (img_format_option(optarg, &fmt) < 0)
				return IMG_ERR;
			break;
		case 'S': shrink = true; break;
		case 'q': quiet = true; break;
		case 'U': break;
		default: return img_bad_option("resize", c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("resize", "Expecting one image file name");
	int sign = *size_arg == '+' ? 1 : *size_arg == '-' ? -1 : 0;
	uint64_t n;
	if (img_parse_size(size_arg + (sign != 0), &n) < 0)
		return img_size_error();

	struct block *b;
	if (img_open(&b, argv[optind], fmt, false, BLOCK_CACHE_WRITEBACK) < 0)
		return IMG_ERR;
	uint64_t cur = b->size, size = n;
	int ret = 0;
	if (sign > 0 && n > UINT64_MAX / 2 - cur) {
		ret = img_size_error();
	} else if (sign < 0 && n >= cur) {
		log_err("New image size must be positive");
		ret = IMG_ERR;
	} else {
		size = sign > 0 ? cur + n : sign < 0 ? cur - n : n;
		if (size < cur && !shrink) {
			log_err("Use the --shrink option to perform a shrink operation.");
			ret = IMG_ERR;
		} else if (block_resize(b, size) < 0) {
			ret = IMG_ERR;   /* logged by the driver */
		}
	}
	block_close(b);
	if (!ret && !quiet)
		printf("Image resized.\n");
	return ret;
}
