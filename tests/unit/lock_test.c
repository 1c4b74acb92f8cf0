/* Image locking (block/lock.c) against itself and against real QEMU 7.2
 * processes: the exact bytes each mode takes (as QEMU takes them, read back
 * with F_OFD_GETLK from another open file description), two kvmini writers,
 * writers against readers, readers sharing, qemu-img/qemu-io/
 * qemu-system-x86_64 meeting an image kvmini holds, kvmini meeting an image
 * QEMU holds, and a base image read by kvmini while QEMU writes an overlay
 * on it. Each open() below is a separate open file description, which is
 * what two processes would have. A case whose QEMU tool is missing is left
 * out with a "# skip:" line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/lock.h"

/* ---- helpers ---------------------------------------------------------- */

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

static bool have_tool(const char *name)
{
	const char *path = getenv("PATH");
	if (!path)
		return false;
	char *dirs = strdup(path), *save = NULL;
	bool found = false;
	for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char full[4096];
		snprintf(full, sizeof(full), "%s/%s", d, name);
		found = access(full, X_OK) == 0;
	}
	free(dirs);
	return found;
}

/* A QEMU process kept alive holding an image: qemu-io reading commands
 * from a pipe we keep open, or a stopped (-S) VM. */
struct holder {
	pid_t pid; /* 0: none */
	int in;
	char log[300];
};

/* A temp directory with the test's images, and the case's QEMU holder;
 * the teardown ends the holder (a failed check jumps past holder_stop)
 * and removes the directory. */
struct fx {
	char dir[256];
	char raw[300], qcow2[300], base[300], overlay[300];
	struct holder h;
};

static void holder_stop(struct holder *h);

static int run(char *const argv[], char *err, size_t errlen, int timeout_s);

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/kvmini-lock-XXXXXX", tmp_dir());
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->raw, sizeof(f->raw), "%s/disk.raw", f->dir);
	snprintf(f->qcow2, sizeof(f->qcow2), "%s/disk.qcow2", f->dir);
	snprintf(f->base, sizeof(f->base), "%s/base.qcow2", f->dir);
	snprintf(f->overlay, sizeof(f->overlay), "%s/overlay.qcow2", f->dir);
	int fd = open(f->raw, O_CREAT | O_RDWR, 0644);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	if (have_tool("qemu-img")) {
		char *c1[] = { "qemu-img", "create", "-q", "-f", "qcow2", f->qcow2, "1M", NULL };
		char *c2[] = { "qemu-img", "create", "-q", "-f", "qcow2", f->base, "1M", NULL };
		char *c3[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", f->base,
			       "-F", "qcow2", f->overlay, NULL };
		char err[512];
		if (run(c1, err, sizeof(err), 30) || run(c2, err, sizeof(err), 30) ||
		    run(c3, err, sizeof(err), 30))
			return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	if (f->h.pid)
		holder_stop(&f->h);
	unlink(f->raw);
	unlink(f->qcow2);
	unlink(f->base);
	unlink(f->overlay);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int open_rw(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Is byte off locked by any open file description other than probe's?
 * The question QEMU asks, asked from a description that holds nothing. */
static bool byte_held(const char *path, int off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = 1;
	assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
	close(fd);
	return fl.l_type != F_UNLCK;
}

/* The lock bytes in use on path, as a string such as "100 101 201", over
 * 95..109 and 195..209 so a byte one off QEMU's shows up too. */
static void held_bytes(const char *path, char *out, size_t len)
{
	size_t n = 0;
	out[0] = 0;
	for (int base = 95; base <= 195; base += 100)
		for (int off = base; off < base + 15; off++)
			if (byte_held(path, off))
				n += snprintf(out + n, len - n, "%s%d", n ? " " : "", off);
}

/* Runs argv with stdin and stdout on /dev/null and stderr captured into
 * err. Returns the exit status, 128 + signal, or -1 when it was still
 * running after timeout_s (and was killed): for a qemu-system-x86_64 -S
 * that means it opened its disks. */
static int run(char *const argv[], char *err, size_t errlen, int timeout_s)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -2;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(p[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	size_t n = 0;
	int status = 0;
	bool timed_out = false;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ssize_t r = read(p[0], err + n, errlen - 1 - n);
		if (r > 0)
			n += r;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			timed_out = true;
			break;
		}
		usleep(10000);
	}
	ssize_t r;
	while (n < errlen - 1 && (r = read(p[0], err + n, errlen - 1 - n)) > 0)
		n += r;
	err[n] = 0;
	close(p[0]);
	if (timed_out)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define QEMU_VM "qemu-system-x86_64", "-M", "pc", "-S", "-accel", "tcg", "-nodefaults", \
		"-no-user-config", "-display", "none"

/* Runs a QEMU command that should fail to open its image because of our
 * locks, and checks its message. */
static void expect_refused(char *const argv[], const char *msg)
{
	char err[4096];
	int rc = run(argv, err, sizeof(err), 10);
	if (rc == 0 || rc == -1 || !strstr(err, msg))
		fail_msg("%s: exit %d (want a failure saying '%s'), stderr: %s", argv[0], rc, msg,
			 err);
}

static void expect_ok(char *const argv[])
{
	char err[4096];
	int rc = run(argv, err, sizeof(err), 10);
	if (rc != 0)
		fail_msg("%s: exit %d, stderr: %s", argv[0], rc, err);
}

/* Starts argv as f's holder and waits until it holds byte off of path. */
static void holder_start(struct fx *f, char *const argv[], const char *path, int off)
{
	struct holder *h = &f->h;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	snprintf(h->log, sizeof(h->log), "%s/holder.log", f->dir);
	h->pid = fork();
	assert_true(h->pid >= 0);
	if (h->pid == 0) {
		int log = open(h->log, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		dup2(p[0], 0);
		dup2(log, 1);
		dup2(log, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[0]);
	h->in = p[1];
	/* Wait until it holds byte off rather than for a fixed time. */
	for (int i = 0; i < 1000; i++) {
		if (byte_held(path, off))
			return;
		int status;
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			h->pid = 0;
			close(h->in);
			char buf[1024] = "";
			int fd = open(h->log, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
			buf[n > 0 ? n : 0] = 0;
			fail_msg("%s exited before locking %s byte %d: %s", argv[0], path, off, buf);
		}
		usleep(20000);
	}
	fail_msg("%s did not lock %s byte %d within 20 s", argv[0], path, off);
}

static void holder_stop(struct holder *h)
{
	close(h->in); /* qemu-io ends at EOF on stdin */
	kill(h->pid, SIGTERM); /* a VM does not read stdin */
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
	unlink(h->log);
}

/* ---- kvmini against kvmini -------------------------------------------- */

/* The bytes are QEMU 7.2's for the same use, read from /proc/locks while
 * QEMU held a qcow2 image (docs: lock.h): a writable virtio-blk disk, a
 * readonly=on disk or backing file, qemu-img info. */
static void mode_bytes(void **state)
{
	struct fx *f = *state;
	static const struct {
		enum image_lock_mode mode;
		const char *bytes;
	} want[] = {
		{ IMAGE_LOCK_WRITE, "100 101 103 201 203" },
		{ IMAGE_LOCK_READ, "100 201 203" },
		{ IMAGE_LOCK_INSPECT, "201 203" },
	};
	char got[256];
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int fd = open_rw(f->raw);
		assert_int_equal(image_lock(fd, f->raw, want[i].mode), 0);
		held_bytes(f->raw, got, sizeof(got));
		if (strcmp(got, want[i].bytes))
			fail_msg("mode %d: bytes '%s', want '%s'", want[i].mode, got, want[i].bytes);
		assert_int_equal(image_unlock(fd), 0);
		held_bytes(f->raw, got, sizeof(got));
		assert_string_equal(got, "");
		assert_int_equal(image_lock(fd, f->raw, want[i].mode), 0);
		close(fd); /* closing drops OFD locks too */
		held_bytes(f->raw, got, sizeof(got));
		assert_string_equal(got, "");
	}
}

static void two_writers(void **state)
{
	struct fx *f = *state;
	int a = open_rw(f->raw), b = open_rw(f->raw);
	assert_int_equal(image_lock(a, f->raw, IMAGE_LOCK_WRITE), 0);
	assert_int_equal(image_lock(b, f->raw, IMAGE_LOCK_WRITE), -EBUSY);
	assert_int_equal(image_unlock(a), 0);
	/* The refused one undid what it had taken. */
	char got[256];
	held_bytes(f->raw, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(image_lock(b, f->raw, IMAGE_LOCK_WRITE), 0);
	assert_int_equal(image_lock(a, f->raw, IMAGE_LOCK_WRITE), -EBUSY);
	close(b);
	assert_int_equal(image_lock(a, f->raw, IMAGE_LOCK_WRITE), 0);
	close(a);
}

/* As in QEMU, where a readonly=on disk (or qemu-img info) keeps a VM from
 * opening the image writable and a running writer keeps both out: nobody
 * but a writer takes write, and nobody shares it. */
static void writer_excludes_readers(void **state)
{
	struct fx *f = *state;
	static const enum image_lock_mode others[] = { IMAGE_LOCK_READ, IMAGE_LOCK_INSPECT };
	for (size_t i = 0; i < 2; i++) {
		int w = open_rw(f->raw), r = open_rw(f->raw);
		assert_int_equal(image_lock(r, f->raw, others[i]), 0);
		assert_int_equal(image_lock(w, f->raw, IMAGE_LOCK_WRITE), -EBUSY);
		assert_int_equal(image_unlock(r), 0);
		assert_int_equal(image_lock(w, f->raw, IMAGE_LOCK_WRITE), 0);
		assert_int_equal(image_lock(r, f->raw, others[i]), -EBUSY);
		close(w);
		assert_int_equal(image_lock(r, f->raw, others[i]), 0);
		close(r);
	}
}

/* A base image under several overlays: any number of readers and
 * inspectors at once. */
static void readers_share(void **state)
{
	struct fx *f = *state;
	int fds[4];
	for (int i = 0; i < 4; i++) {
		fds[i] = open(f->raw, O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
		assert_int_equal(image_lock(fds[i], f->raw,
					    i % 2 ? IMAGE_LOCK_INSPECT : IMAGE_LOCK_READ), 0);
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

/* Some other program holds an exclusive lock on one of the bytes (QEMU
 * and kvmini never do): taking it fails, -EBUSY, and the bytes taken
 * before it are dropped again. */
static void exclusive_lock_elsewhere(void **state)
{
	struct fx *f = *state;
	int other = open_rw(f->raw), fd = open_rw(f->raw);
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 203;
	fl.l_len = 1;
	assert_int_equal(fcntl(other, F_OFD_SETLK, &fl), 0);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), -EBUSY);
	char got[256];
	held_bytes(f->raw, got, sizeof(got));
	assert_string_equal(got, "203");
	close(other);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), 0);
	close(fd);
}

/* ---- QEMU meets an image kvmini holds --------------------------------- */

static void qemu_tools_vs_kvmini_writer(void **state)
{
	struct fx *f = *state;
	int fd = open_rw(f->qcow2);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_WRITE), 0);

	char *info[] = { "qemu-img", "info", f->qcow2, NULL };
	char *info_u[] = { "qemu-img", "info", "-U", f->qcow2, NULL };
	char *check[] = { "qemu-img", "check", f->qcow2, NULL };
	char *io_w[] = { "qemu-io", "-f", "qcow2", "-c", "write 0 512", f->qcow2, NULL };
	char *io_r[] = { "qemu-io", "-r", "-f", "qcow2", "-c", "read 0 512", f->qcow2, NULL };
	expect_refused(info, "Failed to get shared \"write\" lock");
	expect_ok(info_u);
	expect_refused(check, "Failed to get shared \"write\" lock");
	expect_refused(io_w, "Failed to get \"write\" lock");
	expect_refused(io_r, "Failed to get shared \"write\" lock");

	/* Our lock was the reason: without it they all work. */
	assert_int_equal(image_unlock(fd), 0);
	expect_ok(info);
	expect_ok(io_w);
	close(fd);
}

/* A raw image: QEMU's writers are refused, but qemu-img info locks nothing
 * on a raw image and so succeeds, just as it does next to a QEMU VM. */
static void qemu_tools_vs_kvmini_writer_raw(void **state)
{
	struct fx *f = *state;
	int fd = open_rw(f->raw);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), 0);
	char *info[] = { "qemu-img", "info", "-f", "raw", f->raw, NULL };
	char *io_w[] = { "qemu-io", "-f", "raw", "-c", "write 0 512", f->raw, NULL };
	expect_ok(info);
	expect_refused(io_w, "Failed to get \"write\" lock");
	close(fd);
	expect_ok(io_w);
}

static void qemu_vm_vs_kvmini(void **state)
{
	struct fx *f = *state;
	char drive_rw[400], drive_ro[400], drive_raw[400];
	snprintf(drive_rw, sizeof(drive_rw), "file=%s,format=qcow2,if=virtio", f->qcow2);
	snprintf(drive_ro, sizeof(drive_ro), "file=%s,format=qcow2,if=virtio,readonly=on",
		 f->qcow2);
	snprintf(drive_raw, sizeof(drive_raw), "file=%s,format=raw,if=virtio", f->raw);
	char *vm_rw[] = { QEMU_VM, "-drive", drive_rw, NULL };
	char *vm_ro[] = { QEMU_VM, "-drive", drive_ro, NULL };
	char *vm_raw[] = { QEMU_VM, "-drive", drive_raw, NULL };

	int fd = open_rw(f->qcow2);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_WRITE), 0);
	expect_refused(vm_rw, "Failed to get \"write\" lock");
	expect_refused(vm_ro, "Failed to get shared \"write\" lock");
	close(fd);

	fd = open(f->qcow2, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_READ), 0);
	expect_refused(vm_rw, "Failed to get \"write\" lock");
	/* Two read-only users share: the VM runs (it is killed after 3 s). */
	char err[4096];
	int rc = run(vm_ro, err, sizeof(err), 3);
	if (rc != -1)
		fail_msg("read-only VM next to a kvmini reader: exit %d, %s", rc, err);
	close(fd);

	fd = open_rw(f->raw);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), 0);
	expect_refused(vm_raw, "Failed to get \"write\" lock");
	close(fd);
}

/* ---- kvmini meets an image QEMU holds --------------------------------- */

/* A running VM with a writable qcow2 disk: kvmini gets what QEMU's own
 * tools get, which the case checks on the spot. */
static void kvmini_vs_qemu_vm_writer(void **state)
{
	struct fx *f = *state;
	char drive[400];
	snprintf(drive, sizeof(drive), "file=%s,format=qcow2,if=virtio", f->qcow2);
	char *vm[] = { QEMU_VM, "-drive", drive, NULL };
	holder_start(f, vm, f->qcow2, 101);

	char *info[] = { "qemu-img", "info", f->qcow2, NULL };
	char *io_r[] = { "qemu-io", "-r", "-f", "qcow2", "-c", "read 0 512", f->qcow2, NULL };
	char *io_w[] = { "qemu-io", "-f", "qcow2", "-c", "write 0 512", f->qcow2, NULL };
	expect_refused(info, "Failed to get shared \"write\" lock");
	expect_refused(io_r, "Failed to get shared \"write\" lock");
	expect_refused(io_w, "Failed to get \"write\" lock");

	int fd = open_rw(f->qcow2);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_WRITE), -EBUSY);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_READ), -EBUSY);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_INSPECT), -EBUSY);
	holder_stop(&f->h);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_WRITE), 0);
	close(fd);
}

/* A VM with the disk readonly=on: writers are refused, readers share. */
static void kvmini_vs_qemu_vm_reader(void **state)
{
	struct fx *f = *state;
	char drive[400];
	snprintf(drive, sizeof(drive), "file=%s,format=qcow2,if=virtio,readonly=on", f->qcow2);
	char *vm[] = { QEMU_VM, "-drive", drive, NULL };
	holder_start(f, vm, f->qcow2, 100);

	char *info[] = { "qemu-img", "info", f->qcow2, NULL };
	char *io_w[] = { "qemu-io", "-f", "qcow2", "-c", "write 0 512", f->qcow2, NULL };
	expect_ok(info);
	expect_refused(io_w, "Failed to get \"write\" lock");

	int fd = open_rw(f->qcow2);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_WRITE), -EBUSY);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_READ), 0);
	assert_int_equal(image_unlock(fd), 0);
	assert_int_equal(image_lock(fd, f->qcow2, IMAGE_LOCK_INSPECT), 0);
	holder_stop(&f->h);
	close(fd);
}

/* qemu-io writing a raw image (qemu-io shares everything on raw, but it
 * does take write, which kvmini's readers do not share). */
static void kvmini_vs_qemu_io_writer_raw(void **state)
{
	struct fx *f = *state;
	char *io[] = { "qemu-io", "-f", "raw", f->raw, NULL };
	holder_start(f, io, f->raw, 101);
	int fd = open_rw(f->raw);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), -EBUSY);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_READ), -EBUSY);
	holder_stop(&f->h);
	assert_int_equal(image_lock(fd, f->raw, IMAGE_LOCK_WRITE), 0);
	close(fd);
}

/* ---- a shared base ------------------------------------------------------ */

/* kvmini reads base.qcow2 (say, as the backing layer of its own overlay)
 * while QEMU writes overlay.qcow2, whose backing file is the same base:
 * QEMU opens the base read-only and both go on. A writer of the base is
 * refused by both sides. */
static void shared_base(void **state)
{
	struct fx *f = *state;
	int fd = open(f->base, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(image_lock(fd, f->base, IMAGE_LOCK_READ), 0);

	char *io_w[] = { "qemu-io", "-f", "qcow2", "-c", "write 0 512", f->overlay, NULL };
	expect_ok(io_w);

	char *io[] = { "qemu-io", "-f", "qcow2", f->overlay, NULL };
	holder_start(f, io, f->overlay, 101);
	/* QEMU has the base open as a backing file now: 100 from two holders. */
	int other = open_rw(f->base);
	assert_int_equal(image_lock(other, f->base, IMAGE_LOCK_READ), 0);
	assert_int_equal(image_unlock(other), 0);
	assert_int_equal(image_lock(other, f->base, IMAGE_LOCK_WRITE), -EBUSY);
	char *io_base_w[] = { "qemu-io", "-f", "qcow2", "-c", "write 0 512", f->base, NULL };
	expect_refused(io_base_w, "Failed to get \"write\" lock");
	close(fd);
	/* Only QEMU's backing reference is left, and it still keeps writers out. */
	assert_int_equal(image_lock(other, f->base, IMAGE_LOCK_WRITE), -EBUSY);
	holder_stop(&f->h);
	assert_int_equal(image_lock(other, f->base, IMAGE_LOCK_WRITE), 0);
	close(other);
}

/* ---- main ---------------------------------------------------------------- */

#define MAX_TESTS 16

int main(void)
{
	struct CMUnitTest tests[MAX_TESTS];
	size_t n = 0;
#define ADD(fn) tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(fn, fx_setup, \
									       fx_teardown)
	ADD(mode_bytes);
	ADD(two_writers);
	ADD(writer_excludes_readers);
	ADD(readers_share);
	ADD(exclusive_lock_elsewhere);

	bool img = have_tool("qemu-img"), io = have_tool("qemu-io"),
	     vm = have_tool("qemu-system-x86_64");
	if (img && io) {
		ADD(qemu_tools_vs_kvmini_writer);
		ADD(qemu_tools_vs_kvmini_writer_raw);
		ADD(kvmini_vs_qemu_io_writer_raw);
		ADD(shared_base);
	} else {
		printf("# skip: qemu_tools_vs_kvmini_writer, qemu_tools_vs_kvmini_writer_raw, "
		       "kvmini_vs_qemu_io_writer_raw, shared_base: need qemu-img and qemu-io "
		       "(apt-get install qemu-utils)\n");
	}
	if (img && io && vm) {
		ADD(qemu_vm_vs_kvmini);
		ADD(kvmini_vs_qemu_vm_writer);
		ADD(kvmini_vs_qemu_vm_reader);
	} else {
		printf("# skip: qemu_vm_vs_kvmini, kvmini_vs_qemu_vm_writer, "
		       "kvmini_vs_qemu_vm_reader: need qemu-system-x86_64, qemu-img and qemu-io "
		       "(apt-get install qemu-system-x86 qemu-utils)\n");
	}
#undef ADD
	fflush(stdout);
	return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
