/* Stands in for img/qcow2.c when kvmini-img is built without the qcow2
 * helpers (block/qcow2_format.c, qcow2_create.c, qcow2_check.c): every
 * qcow2 operation says so in one line and fails. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>

static int not_built(const char *path)
{
	log_err("%s: qcow2 support is not built into kvmini-img yet", path);
	return -ENOTSUP;
}

bool img_qcow2_built(void) { return false; }
int img_qcow2_load(const char *path, bool lock, struct img_qcow2 **out)
{
	*out = NULL;
	return not_built(path);
}
void img_qcow2_free(struct img_qcow2 *q) {}
uint64_t img_qcow2_size(const struct img_qcow2 *q) { return 0; }
const char *img_qcow2_backing(const struct img_qcow2 *q) { return NULL; }
const char *img_qcow2_backing_format(const struct img_qcow2 *q) { return NULL; }
void img_qcow2_info(const struct img_qcow2 *q, struct json_object *info) {}
int img_qcow2_create(const char *path, const struct img_create_opts *o) { return not_built(path); }
int img_qcow2_check(const char *path, int fix, bool lock, struct img_check_result *r) { return not_built(path); }
