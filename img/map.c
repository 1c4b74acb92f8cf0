/* kvmini-img map: the allocation map from block_status, merged and
 * printed the way qemu-img map 7.2 does (same merge rule, same columns),
 * so that both tools' JSON compares equal. */
#include "img/img.h"
#include "vmm/log.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

struct entry {
	uint64_t start, length;
	unsigned depth;
	bool present, zero, data, has_offset;
	uint64_t offset;
	const char *file;
};

static bool mergeable(const struct entry *a, const struct entry *b)
{
	if (a->length == 0 || a->zero != b->zero || a->data != b->data ||
	    a->depth != b->depth || a->present != b->present || a->has_offset != b->has_offset)
		return false;
	if (a->has_offset && (strcmp(a->file, b->file) || a->offset + a->length != b->offset))
		return false;
	return true;
}

/* next may be changed: the human format ignores the difference between
 * holes and zero data, and says so to the merge (qemu-img does). */
static int print_entry(bool json, const struct entry *e, struct entry *next)
{
	if (json) {
		printf("{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %u,"
		       " \"present\": %s, \"zero\": %s, \"data\": %s",
		       e->start, e->length, e->depth, e->present ? "true" : "false",
		       e->zero ? "true" : "false", e->data ? "true" : "false");
		if (e->has_offset)
			printf(", \"offset\": %" PRIu64, e->offset);
		putchar('}');
		if (next)
			puts(",");
		return 0;
	}
	if (e->data && !e->has_offset) {
		log_err("File contains external, encrypted or compressed clusters.");
		return -1;
	}
	if (e->data && !e->zero)
		printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start, e->length,
		       e->offset, e->file);
	if (next && (!next->data || next->zero)) {
		next->data = false;
		next->zero = true;
	}
	return 0;
}

static int status(struct block *b, uint64_t off, struct entry *e)
{
	struct block_extent x;
	int ret = block_status(b, off, b->size - off, &x);
	if (ret < 0) {
		log_err("Could not read file metadata: %s", strerror(-ret));
		return ret;
	}
	*e = (struct entry){ .start = off, .length = x.len, .depth = x.depth, .present = x.present,
			     .zero = x.zero, .data = x.data, .has_offset = x.host_offset >= 0,
			     .offset = x.host_offset >= 0 ? (uint64_t)x.host_offset : 0,
			     .file = x.file ? x.file : "" };
	return 0;
}

int cmd_map(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	enum block_format fmt = BLOCK_FMT_AUTO;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (img_format_option(optarg, &fmt) < 0)
				return IMG_ERR;
			break;
		case 'O':
			if (img_parse_output(optarg, &json) < 0)
				return IMG_ERR;
			break;
		case 'U': break;
		default: return img_bad_option("map", c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("map", "Expecting one image file name");
	struct block *b;
	if (img_open(&b, argv[optind], fmt, true, BLOCK_CACHE_WRITEBACK) < 0)
		return IMG_ERR;

	if (json)
		putchar('[');
	else
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	struct entry cur = { 0 }, next;
	int ret = 0;
	while (cur.start + cur.length < b->size) {
		ret = status(b, cur.start + cur.length, &next);
		if (ret < 0)
			break;
		if (mergeable(&cur, &next)) {
			cur.length += next.length;
			continue;
		}
		if (cur.length > 0 && (ret = print_entry(json, &cur, &next)) < 0)
			break;
		cur = next;
	}
	if (!ret && cur.length > 0)
		ret = print_entry(json, &cur, NULL);
	if (json)
		puts("]");
	block_close(b);
	return ret < 0 ? IMG_ERR : IMG_OK;
}
