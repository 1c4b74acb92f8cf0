/* Image locking that QEMU understands, so that QEMU and kvmini (and two
 * kvmini processes) refuse an image another one is writing, while readers
 * of a read-only base image share it.
 *
 * The scheme is QEMU's file-posix one (QEMU 2.10 and later). An image user
 * holds a set of permissions and shares a set with others; there are four
 * (QEMU 6.2 and later; 7.2 is Debian 12's):
 *
 *     bit 0 consistent read   bit 1 write   bit 2 write unchanged   bit 3 resize
 *
 * It shows them to other processes as shared (F_RDLCK) open-file-description
 * locks on single bytes of the image file: byte 100 + bit for each permission
 * it holds, byte 200 + bit for each permission it does NOT share. Nothing is
 * ever locked exclusively, so taking bytes cannot fail on a conflict; a
 * conflict is found afterwards by asking (F_OFD_GETLK with F_WRLCK, which
 * reports any other description's lock on the byte):
 *   - a permission we want is not shared by someone: byte 200 + bit is held;
 *   - a permission we do not share is held by someone: byte 100 + bit is held.
 * So a user first takes its bytes and then checks; of two users starting at
 * the same time at least one sees the other. On a conflict it drops its bytes
 * again. OFD locks belong to the open file description (one open() call):
 * two descriptions conflict even inside one process, dup()ed fds and forked
 * children share them, and closing the last fd of the description drops them.
 *
 * The modes, with what QEMU 7.2 takes for the same use (measured with
 * /proc/locks and strace; CR = consistent read, W = write, WU = write
 * unchanged, R = resize):
 *
 *   IMAGE_LOCK_WRITE    holds CR W R, shares CR WU      bytes 100 101 103 201 203
 *       QEMU: -drive/-blockdev qcow2 on a writable virtio-blk disk; qemu-io
 *       on a qcow2; qemu-img commit and check -r.
 *   IMAGE_LOCK_READ     holds CR, shares CR WU          bytes 100 201 203
 *       QEMU: a qcow2 disk with readonly=on, every backing file of a chain,
 *       qemu-io -r, qemu-img check/map/compare/convert's source.
 *   IMAGE_LOCK_INSPECT  holds nothing, shares CR WU     bytes 201 203
 *       QEMU: qemu-img info (without -U) of a qcow2 image.
 *
 * So a writer excludes every other writer and every reader and inspector
 * (qemu-img info fails on it with 'Failed to get shared "write" lock' until
 * given -U, which locks nothing), readers and inspectors share with each
 * other, and a base image can be read by any number of overlays' users.
 *
 * These are the bytes QEMU locks on the file under a qcow2 node, which
 * never shares write and resize. For a format=raw disk QEMU leaves resize
 * out: a writable raw virtio-blk disk locks 100 101 201, a read-only one
 * 100 201. qemu-img info of a raw image locks nothing at all (there is no
 * metadata to see half-written), so kvmini-img info of a raw image should
 * not call image_lock either, or it would fail where qemu-img succeeds.
 * Otherwise kvmini takes the qcow2 set for raw images too (one set per
 * mode, whatever the format), and QEMU's VMs and tools get the answer they
 * get against QEMU's own raw disk, except a user that shares write but not
 * resize: a readonly=on,share-rw=on ide-cd runs next to QEMU's raw writer
 * but says 'Failed to get shared "resize" lock' to kvmini's. (qemu-io and
 * qemu-img share everything on a raw image; kvmini's modes are those of a
 * VM's disk, which does not share write.)
 *
 * Errors: like QEMU's default (locking=auto, which means "OFD locks when the
 * kernel has them", and Linux has since 3.15), a file system that refuses
 * the locks (NFSv3 without lockd: ENOLCK) fails the open rather than
 * running unprotected; QEMU says "Failed to lock byte 100". The way out
 * for the user is the disk's lock=off (QEMU: file.locking=off), which means
 * not calling image_lock at all. */
#ifndef KVMINI_LOCK_H
#define KVMINI_LOCK_H

enum image_lock_mode {
	IMAGE_LOCK_WRITE,   /* a VM's writable disk, kvmini-img writing */
	IMAGE_LOCK_READ,    /* a read-only disk or backing layer; kvmini-img check/map */
	IMAGE_LOCK_INSPECT, /* kvmini-img info: reads only the header */
};

/* Takes the mode's bytes on fd (an open file description holding none of
 * them yet) and checks them against every other holder. 0 on success.
 * -EBUSY when another description's locks conflict (or some non-QEMU
 * program locks one of the bytes exclusively): nothing is left locked and
 * one line is logged, e.g.
 *     image IMG: in use by another process (failed to get shared "write" lock)
 * -errno (ENOLCK, EINVAL, ...) when the file system refuses the locks: also
 * nothing left locked, one line logged. path is for messages only.
 * To change the mode of a locked fd, image_unlock it first (another process
 * may get in between; QEMU's reopen avoids that, kvmini has no need yet). */
int image_lock(int fd, const char *path, enum image_lock_mode mode);

/* Drops every lock byte this description holds (closing its last fd does
 * the same). 0 or -errno. */
int image_unlock(int fd);

#endif
