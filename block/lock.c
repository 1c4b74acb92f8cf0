/* QEMU-compatible image locking: see block/lock.h for the scheme and the
 * permission sets each mode matches. */
#include "block/lock.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

/* Permission bits as QEMU numbers them; they are the lock byte offsets'
 * low part, so they are part of the on-disk protocol, not our choice. */
enum {
	PERM_CONSISTENT_READ = 1u << 0,
	PERM_WRITE = 1u << 1,
	PERM_WRITE_UNCHANGED = 1u << 2,
	PERM_RESIZE = 1u << 3,
	PERM_BITS = 4, /* QEMU 6.1 and older had a fifth, graph-mod (byte 104/204) */
};

#define PERM_BYTE_BASE   100 /* below: libvirt's virtlockd takes byte 0 */
#define UNSHARE_BYTE_BASE 200

static const char *const perm_names[PERM_BITS] = {
	"consistent read", "write", "write unchanged", "resize",
};

struct lock_set {
	unsigned perm;     /* permissions held */
	unsigned unshared; /* permissions others may not hold */
};

static struct lock_set mode_set(enum image_lock_mode mode)
{
	/* The file under a qcow2 node never shares write or resize: the format
	 * trusts its metadata and the file size (lock.h). */
	const unsigned unshared = PERM_WRITE | PERM_RESIZE;
	switch (mode) {
	case IMAGE_LOCK_WRITE:
		return (struct lock_set){ PERM_CONSISTENT_READ | PERM_WRITE | PERM_RESIZE, unshared };
	case IMAGE_LOCK_READ:
		return (struct lock_set){ PERM_CONSISTENT_READ, unshared };
	case IMAGE_LOCK_INSPECT:
		break;
	}
	return (struct lock_set){ 0, unshared };
}

static int ofd_lock(int fd, int cmd, short type, off_t start, off_t len, struct flock *out)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl)); /* OFD calls insist on l_pid == 0 */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	int r;
	do
		r = fcntl(fd, cmd, &fl);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (out)
		*out = fl;
	return 0;
}

/* 1 if another open file description holds a lock on byte off, 0 if not. */
static int byte_taken(int fd, off_t off)
{
	struct flock fl;
	int r = ofd_lock(fd, F_OFD_GETLK, F_WRLCK, off, 1, &fl);
	if (r < 0)
		return r;
	return fl.l_type != F_UNLCK;
}

int image_unlock(int fd)
{
	/* Only our own description's locks can be dropped, so unlocking the
	 * whole ranges is exact even where we hold only some of the bytes. */
	int r = ofd_lock(fd, F_OFD_SETLK, F_UNLCK, PERM_BYTE_BASE, PERM_BITS, NULL);
	int r2 = ofd_lock(fd, F_OFD_SETLK, F_UNLCK, UNSHARE_BYTE_BASE, PERM_BITS, NULL);
	return r < 0 ? r : r2;
}

static int take(int fd, const char *path, struct lock_set s)
{
	for (int unshare = 0; unshare < 2; unshare++) {
		unsigned set = unshare ? s.unshared : s.perm;
		for (unsigned i = 0; i < PERM_BITS; i++) {
			if (!(set & (1u << i)))
				continue;
			off_t off = (unshare ? UNSHARE_BYTE_BASE : PERM_BYTE_BASE) + i;
			int r = ofd_lock(fd, F_OFD_SETLK, F_RDLCK, off, 1, NULL);
			if (r == -EAGAIN || r == -EACCES) {
				/* Neither QEMU nor kvmini ever locks a byte
				 * exclusively; some other program does. */
				log_err("image %s: in use by another process (it locks byte "
					"%lld exclusively)",
					path, (long long)off);
				return -EBUSY;
			}
			if (r < 0) {
				/* The file system refusing locks, not a conflict. */
				log_err("image %s: cannot lock byte %lld: %s (lock=off runs "
					"without image locking)",
					path, (long long)off, strerror(-r));
				return r;
			}
		}
	}
	return 0;
}

static int check(int fd, const char *path, struct lock_set s)
{
	/* QEMU's order: first a permission we want that someone does not
	 * share, then one we do not share that someone holds. */
	for (int theirs = 0; theirs < 2; theirs++) {
		unsigned set = theirs ? s.unshared : s.perm;
		for (unsigned i = 0; i < PERM_BITS; i++) {
			if (!(set & (1u << i)))
				continue;
			off_t off = (theirs ? PERM_BYTE_BASE : UNSHARE_BYTE_BASE) + i;
			int r = byte_taken(fd, off);
			if (r < 0) {
				log_err("image %s: cannot test lock byte %lld: %s", path,
					(long long)off, strerror(-r));
				return r;
			}
			if (r) {
				log_err("image %s: in use by another process (failed to get "
					"%s\"%s\" lock)",
					path, theirs ? "shared " : "", perm_names[i]);
				return -EBUSY;
			}
		}
	}
	return 0;
}

int image_lock(int fd, const char *path, enum image_lock_mode mode)
{
	struct lock_set s = mode_set(mode);
	int r = take(fd, path, s);
	if (r == 0)
		r = check(fd, path, s);
	if (r < 0)
		image_unlock(fd); /* lock.h: the fd held none of these bytes before */
	return r;
}
