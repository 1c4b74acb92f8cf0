/* What image-format drivers see of the block layer (not for its users). */
#ifndef KVMINI_BLOCK_DRIVER_H
#define KVMINI_BLOCK_DRIVER_H

#include "block/block.h"

/* One image format. block_open probes the formats in table order and opens
 * the image with the first that claims it (raw claims everything). */
struct block_driver {
	const char *name;
	enum block_format format;
	/* buf: the first bytes of the file (len may be short for tiny files). */
	bool (*probe)(const uint8_t *buf, size_t len);
	/* Sets b->ops, size, discard/write-zeroes support, req_priv_size and
	 * priv; b->file is open. Errors logged in one line. */
	int (*open)(struct block *b, const struct block_config *cfg);
};

extern const struct block_driver raw_driver;
extern const struct block_driver qcow2_driver;

/* A driver ends every request it accepted with this, on r->e's thread. */
void block_complete(struct block_req *r, int64_t res);
/* The same from the next run of r->e, never inside the caller. */
void block_complete_later(struct block_req *r, int64_t res);

#endif
