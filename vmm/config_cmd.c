/* `kvmini config show FILE | show -- RUN-FLAGS... | edit FILE`: view a VM
 * definition normalised (as `virsh dumpxml` does) and edit it the way
 * `virsh edit` does: $EDITOR on a copy, saved only once it validates, and
 * the original replaced in one rename, never half-written. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/config_file.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/settings.h"

static void config_usage(FILE *f)
{
	fputs("usage: kvmini config show FILE            the definition, normalised\n"
	      "       kvmini config show -- RUN-FLAGS...  a kvmini run command line as a definition\n"
	      "       kvmini config edit FILE            $EDITOR on a copy; saved when it validates\n",
	      f);
}

/* Loads and validates; every problem is one line already printed. */
static int load_checked(struct vm_config *cfg, const char *path, const char *shown,
			const char *base_dir)
{
	vm_config_init(cfg);
	int r = config_file_load(cfg, path, shown, base_dir);
	char why[SETTING_WHY_MAX];
	if (!r && vm_config_validate(cfg, why)) {
		log_err("%s: %s", shown ? shown : path, why);
		r = -EINVAL;
	}
	if (r)
		vm_config_free(cfg);
	return r;
}

static int show_config(const struct vm_config *cfg)
{
	char why[SETTING_WHY_MAX];
	if (vm_config_show(cfg, stdout, why)) {
		log_err("%s", why);
		return EXIT_FAILURE_VM;
	}
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	struct vm_config cfg;
	if (argc == 2 && strcmp(argv[1], "--")) {
		if (load_checked(&cfg, argv[1], NULL, NULL))
			return EXIT_USAGE;
	} else if (argc >= 2 && !strcmp(argv[1], "--")) {
		/* argv[1] stands in for the program name getopt skips. */
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			log_err("cannot find the working directory: %s", strerror(errno));
			return EXIT_FAILURE_VM;
		}
		int r = cli_parse_args(argc - 1, argv + 1, &cfg, cwd);
		if (r)
			return r == 1 ? 0 : EXIT_USAGE;
	} else {
		log_err("expected 'config show FILE' or 'config show -- RUN-FLAGS...' "
			"(see kvmini config --help)");
		return EXIT_USAGE;
	}
	int status = show_config(&cfg);
	vm_config_free(&cfg);
	return status;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);
			if (!nb)
				break;
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	bool err = ferror(f) || !buf;
	fclose(f);
	if (err) {
		free(buf);
		errno = errno ? errno : EIO;
		return NULL;
	}
	*len = n;
	return buf;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replaces path by buf in one rename: a temporary file beside it, written
 * and fsynced, with path's mode, renamed over it, then the directory
 * fsynced so the rename itself survives a crash. */
static int save_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.kvmini-XXXXXX", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	struct stat st;
	if (stat(path, &st) == 0)
		fchmod(fd, st.st_mode & 07777);
	if (write_all(fd, buf, len) || fsync(fd) || close(fd)) {
		int e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 1, slash ? path : ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* $VISUAL, $EDITOR or vi, through the shell so that "code -w" works. */
static int run_editor(const char *file)
{
	const char *ed = getenv("VISUAL");
	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s \"$1\"", ed);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "kvmini-edit", file, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* "Try again?" on the terminal; no answer (EOF, no terminal) is no. */
static bool ask_again(void)
{
	fputs("kvmini: edit again? [y/N] ", stderr);
	fflush(stderr);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

static int cmd_edit(const char *path)
{
	struct vm_config cfg;
	size_t orig_len, len;
	char *orig = read_all(path, &orig_len);
	if (!orig) {
		log_err("%s: cannot read: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	/* The copy lives in $TMPDIR; its relative paths still mean the
	 * original's directory. */
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 2, slash ? path : "./");
	const char *tmpdir = getenv("TMPDIR");
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/kvmini-edit-XXXXXX.conf", tmpdir && *tmpdir ? tmpdir : "/tmp");
	int fd = mkstemps(tmp, 5);
	if (fd < 0 || write_all(fd, orig, orig_len) || close(fd)) {
		log_err("cannot make a copy to edit in %s: %s", tmp, strerror(errno));
		free(orig);
		return EXIT_FAILURE_VM;
	}
	char shown[PATH_MAX + 32];
	snprintf(shown, sizeof(shown), "%s (edited)", path);
	int status;
	for (;;) {
		int ed = run_editor(tmp);
		if (ed != 0) {
			log_err("editor failed (status %d): %s is unchanged, the edit is in %s", ed, path,
				tmp);
			status = EXIT_FAILURE_VM;
			break;
		}
		char *text = read_all(tmp, &len);
		if (!text) {
			log_err("%s: cannot read the edited copy: %s", tmp, strerror(errno));
			status = EXIT_FAILURE_VM;
			break;
		}
		if (len == orig_len && !memcmp(text, orig, len)) {
			fprintf(stderr, "kvmini: %s: unchanged\n", path);
			free(text);
			unlink(tmp);
			status = 0;
			break;
		}
		if (load_checked(&cfg, tmp, shown, dir)) {
			free(text);
			if (ask_again())
				continue;
			log_err("%s is unchanged; the edit is kept in %s", path, tmp);
			status = EXIT_USAGE;
			break;
		}
		vm_config_free(&cfg);
		if (save_atomic(path, text, len)) {
			log_err("%s: cannot save: %s (the edit is in %s)", path, strerror(errno), tmp);
			status = EXIT_FAILURE_VM;
		} else {
			fprintf(stderr, "kvmini: %s: saved\n", path);
			unlink(tmp);
			status = 0;
		}
		free(text);
		break;
	}
	free(orig);
	return status;
}

int cmd_config(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "show"))
		return cmd_show(argc - 1, argv + 1);
	if (argc == 3 && !strcmp(argv[1], "edit"))
		return cmd_edit(argv[2]);
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		config_usage(stdout);
		return 0;
	}
	log_err("expected 'config show FILE', 'config show -- RUN-FLAGS...' or "
		"'config edit FILE' (see kvmini config --help)");
	return EXIT_USAGE;
}
