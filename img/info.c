/* kvmini-img info: what qemu-img info prints, from one JSON object per
 * image (qemu makes its human and JSON output from one ImageInfo too).
 * qcow2 images are described from their header alone (the format helper
 * parses it), so info needs no driver and opens no backing file. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* QEMU prints its QDict in hash order; keeping that order makes our JSON
 * diff cleanly against qemu-img's. */
static const char *const key_order[] = {
	"backing-filename-format", "virtual-size", "filename", "cluster-size", "format",
	"actual-size", "format-specific", "full-backing-filename", "backing-filename",
	"dirty-flag",
};

static struct json_object *ordered(struct json_object *tmp)
{
	struct json_object *out = json_object_new_object();
	for (size_t i = 0; i < sizeof(key_order) / sizeof(key_order[0]); i++) {
		struct json_object *v;
		if (json_object_object_get_ex(tmp, key_order[i], &v))
			json_object_object_add(out, key_order[i], json_object_get(v));
	}
	json_object_put(tmp);
	return out;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

/* One image; *backing gets the full path of its backing file (malloc'd)
 * and *backing_fmt its recorded format, when it has one. */
static int describe(const char *path, enum block_format fmt, bool lock, struct json_object **out,
		    char **backing, enum block_format *backing_fmt)
{
	*out = NULL;
	*backing = NULL;
	*backing_fmt = BLOCK_FMT_AUTO;
	int ret = fmt == BLOCK_FMT_AUTO ? img_probe(path, &fmt) : 0;
	if (ret < 0)
		return ret;
	struct stat st;
	if (stat(path, &st) < 0) {
		ret = -errno;
		log_err("Could not open '%s': %s", path, strerror(-ret));
		return ret;
	}
	struct json_object *o = json_object_new_object();
	add_str(o, "filename", path);
	add_str(o, "format", img_format_name(fmt));
	json_object_object_add(o, "actual-size", json_object_new_int64((int64_t)st.st_blocks * 512));
	if (fmt == BLOCK_FMT_QCOW2) {
		struct img_qcow2 *q;
		ret = img_qcow2_load(path, lock, &q);
		if (ret < 0) {
			json_object_put(o);
			return ret;
		}
		json_object_object_add(o, "virtual-size",
				       json_object_new_int64((int64_t)img_qcow2_size(q)));
		img_qcow2_info(q, o);
		const char *bf = img_qcow2_backing(q), *bfmt = img_qcow2_backing_format(q);
		if (bf) {
			*backing = img_backing_path(path, bf);
			add_str(o, "backing-filename", bf);
			add_str(o, "full-backing-filename", *backing);
		}
		if (bf && bfmt) {
			add_str(o, "backing-filename-format", bfmt);
			if (img_parse_format(bfmt, backing_fmt) < 0)
				*backing_fmt = BLOCK_FMT_AUTO;
		}
		img_qcow2_free(q);
	} else {
		struct block *b;
		/* qemu-img info locks nothing on a raw image. */
		struct block_config cfg = { .path = path, .format = fmt, .readonly = true };
		ret = block_open(&b, &cfg);
		if (ret < 0) {
			json_object_put(o);
			return ret;
		}
		json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)b->size));
		json_object_object_add(o, "dirty-flag", json_object_new_boolean(false));
		block_close(b);
	}
	*out = ordered(o);
	return 0;
}

static const char *get_str(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static int64_t get_int(struct json_object *o, const char *k, int64_t dflt)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : dflt;
}

/* qemu's bdrv_image_info_dump. */
static void print_human(struct json_object *o)
{
	char vs[32], ds[32];
	int64_t vsize = get_int(o, "virtual-size", 0), asize = get_int(o, "actual-size", -1);
	img_size_str((uint64_t)vsize, vs, sizeof(vs));
	if (asize >= 0)
		img_size_str((uint64_t)asize, ds, sizeof(ds));
	else
		snprintf(ds, sizeof(ds), "unavailable");
	printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRId64 " bytes)\ndisk size: %s\n",
	       get_str(o, "filename"), get_str(o, "format"), vs, vsize, ds);
	if (get_int(o, "cluster-size", 0))
		printf("cluster_size: %" PRId64 "\n", get_int(o, "cluster-size", 0));
	struct json_object *v;
	if (json_object_object_get_ex(o, "dirty-flag", &v) && json_object_get_boolean(v))
		printf("cleanly shut down: no\n");
	const char *bf = get_str(o, "backing-filename"), *full = get_str(o, "full-backing-filename");
	if (bf) {
		printf("backing file: %s", bf);
		if (!full)
			printf(" (cannot determine actual path)");
		else if (strcmp(bf, full))
			printf(" (actual path: %s)", full);
		putchar('\n');
	}
	if (get_str(o, "backing-filename-format"))
		printf("backing file format: %s\n", get_str(o, "backing-filename-format"));
	struct json_object *spec, *data;
	if (json_object_object_get_ex(o, "format-specific", &spec) &&
	    json_object_object_get_ex(spec, "data", &data)) {
		printf("Format specific information:\n");
		json_object_object_foreach(data, key, val) {
			char name[64];
			snprintf(name, sizeof(name), "%s", key);
			for (char *p = name; *p; p++)
				if (*p == '-')
					*p = ' ';
			printf("    %s: %s\n", name, json_object_get_string(val));
		}
	}
}

struct seen {
	dev_t dev[64];
	ino_t ino[64];
	unsigned n;
};

/* A backing chain that comes back to an image would never end. */
static int visit(struct seen *s, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;   /* describe reports it */
	for (unsigned i = 0; i < s->n; i++)
		if (s->dev[i] == st.st_dev && s->ino[i] == st.st_ino) {
			log_err("Backing file '%s' creates an infinite loop.", path);
			return -ELOOP;
		}
	if (s->n == 64) {
		log_err("%s: backing chain longer than 64 images", path);
		return -ELOOP;
	}
	s->dev[s->n] = st.st_dev;
	s->ino[s->n++] = st.st_ino;
	return 0;
}

int cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "backing-chain", no_argument, NULL, 'B' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false, chain = false;
	enum block_format fmt = BLOCK_FMT_AUTO;
	int c;
	bool lock = true;
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
		case 'B': chain = true; break;
		case 'U': lock = false; break;   /* --force-share: take no lock */
		default: return img_bad_option("info", c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("info", "Expecting one image file name");

	struct json_object *list = json_object_new_array();
	struct seen seen = { .n = 0 };
	char *path = strdup(argv[optind]);
	int ret = path ? 0 : -ENOMEM;
	while (path && !ret) {
		struct json_object *o;
		char *next;
		enum block_format next_fmt;
		ret = chain ? visit(&seen, path) : 0;
		if (!ret)
			ret = describe(path, fmt, lock, &o, &next, &next_fmt);
		free(path);
		path = NULL;
		if (ret < 0)
			break;
		json_object_array_add(list, o);
		if (chain) {
			path = next;
			fmt = next_fmt;
		} else {
			free(next);
		}
	}
	free(path);
	if (!ret) {
		if (json) {
			img_json_print(stdout, chain ? list : json_object_array_get_idx(list, 0));
		} else {
			for (size_t i = 0; i < json_object_array_length(list); i++) {
				if (i)
					putchar('\n');
				print_human(json_object_array_get_idx(list, i));
			}
		}
	}
	json_object_put(list);
	return ret < 0 ? IMG_ERR : IMG_OK;
}
