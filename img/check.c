/* kvmini-img check: the qcow2 consistency checker (block/qcow2_check.c)
 * with qemu-img check's output and exit statuses: 0 clean, 2 corruptions,
 * 3 leaks only, 1 when the check could not run, 63 for a format without
 * checks (raw). */
#include "img/img.h"
#include "vmm/log.h"

#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <string.h>

static void print_human(const struct img_check_result *r)
{
	if (!(r->corruptions || r->leaks || r->check_errors)) {
		printf("No errors were found on the image.\n");
	} else {
		if (r->corruptions)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt it.\n",
			       r->corruptions);
		if (r->leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       r->leaks);
		if (r->check_errors)
			printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
			       r->check_errors);
	}
	if (r->total_clusters && r->allocated_clusters)
		printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, "
		       "%0.2f%% compressed clusters\n",
		       r->allocated_clusters, r->total_clusters,
		       (double)r->allocated_clusters * 100.0 / (double)r->total_clusters,
		       (double)r->fragmented_clusters * 100.0 / (double)r->allocated_clusters,
		       (double)r->compressed_clusters * 100.0 / (double)r->allocated_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void add(struct json_object *o, const char *k, uint64_t v, bool always)
{
	if (v || always)
		json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* qemu-img leaves out the counts that are zero, except check-errors; the
 * key order is the one QEMU's QDict prints. */
static void print_json(const struct img_check_result *r, const char *file)
{
	struct json_object *o = json_object_new_object();
	add(o, "image-end-offset", r->image_end_offset, false);
	add(o, "total-clusters", r->total_clusters, false);
	add(o, "corruptions", r->corruptions, false);
	add(o, "check-errors", r->check_errors, true);
	add(o, "leaks", r->leaks, false);
	add(o, "leaks-fixed", r->leaks_fixed, false);
	add(o, "corruptions-fixed", r->corruptions_fixed, false);
	add(o, "allocated-clusters", r->allocated_clusters, false);
	add(o, "fragmented-clusters", r->fragmented_clusters, false);
	add(o, "compressed-clusters", r->compressed_clusters, false);
	json_object_object_add(o, "filename", json_object_new_string(file));
	json_object_object_add(o, "format", json_object_new_string("qcow2"));
	img_json_print(stdout, o);
	json_object_put(o);
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "repair", required_argument, NULL, 'r' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false, quiet = false;
	int fix = 0;
	enum block_format fmt = BLOCK_FMT_AUTO;
	int c;
	bool lock = true;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:r:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (img_format_option(optarg, &fmt) < 0)
				return IMG_ERR;
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = 1;
			else if (!strcmp(optarg, "all"))
				fix = 3;
			else
				return img_usage_error("check", "Unknown option value for -r "
						       "(expecting 'leaks' or 'all'): %s", optarg);
			break;
		case 'O':
			if (img_parse_output(optarg, &json) < 0)
				return IMG_ERR;
			break;
		case 'q': quiet = true; break;
		case 'U': lock = false; break;   /* --force-share */
		default: return img_bad_option("check", c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("check", "Expecting one image file name");
	const char *file = argv[optind];
	if (fmt == BLOCK_FMT_AUTO && img_probe(file, &fmt) < 0)
		return IMG_ERR;
	if (fmt != BLOCK_FMT_QCOW2) {
		log_err("This image format does not support checks");
		return IMG_CHECK_UNSUPPORTED;
	}
	struct img_check_result r;
	if (img_qcow2_check(file, fix, lock, &r) < 0)
		return IMG_ERR;
	if (r.corruptions_fixed || r.leaks_fixed) {
		/* Like qemu-img: report what was repaired, then what a second
		 * look at the repaired image finds. */
		if (!json && !quiet)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       r.leaks_fixed, r.corruptions_fixed);
		uint64_t lf = r.leaks_fixed, cf = r.corruptions_fixed;
		if (img_qcow2_check(file, 0, lock, &r) < 0)
			return IMG_ERR;
		r.leaks_fixed = lf;
		r.corruptions_fixed = cf;
	}
	if (json)
		print_json(&r, file);
	else if (!quiet)
		print_human(&r);
	if (r.check_errors) {
		log_err("Check failed");
		return IMG_ERR;
	}
	return r.corruptions ? IMG_CHECK_CORRUPT : r.leaks ? IMG_CHECK_LEAKS : IMG_OK;
}
