/* Console: the Ctrl-A escape filter, and console_open/read/write in each mode
 * (stdio is exercised with pipes put in place of stdin/stdout, so no
 * terminal is touched). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/console.h"

#define CA "\x01"

static size_t filter(struct console_escape *e, const char *in, uint8_t *out, bool *quit,
		     bool *help)
{
	return console_escape_filter(e, (const uint8_t *)in, strlen(in), out, quit, help);
}

static void test_escape_plain_passes(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	size_t n = filter(&e, "ls -l\r", out, &quit, &help);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "ls -l\r", 6);
	assert_false(quit);
	assert_false(help);
}

static void test_escape_x_quits(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	size_t n = filter(&e, "ab" CA "xcd", out, &quit, &help);
	assert_true(quit);
	assert_int_equal(n, 2); /* what came before; the rest is dropped */
	assert_memory_equal(out, "ab", 2);
}

static void test_escape_h_help(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	size_t n = filter(&e, "a" CA "hb", out, &quit, &help);
	assert_true(help);
	assert_false(quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
}

static void test_escape_double_sends_one(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	size_t n = filter(&e, CA CA "x", out, &quit, &help);
	assert_false(quit); /* the x after ^A^A is an ordinary x */
	assert_int_equal(n, 2);
	assert_memory_equal(out, CA "x", 2);
	n = filter(&e, CA CA CA CA, out, &quit, &help);
	assert_int_equal(n, 2);
	assert_memory_equal(out, CA CA, 2);
}

static void test_escape_other_passes_both(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	size_t n = filter(&e, CA "c" CA "X", out, &quit, &help);
	assert_int_equal(n, 4);
	assert_memory_equal(out, CA "c" CA "X", 4);
	assert_false(quit);
	assert_false(help);
}

static void test_escape_split_across_calls(void **state)
{
	struct console_escape e = { 0 };
	uint8_t out[64];
	bool quit = false, help = false;
	/* ^A at the end of one read, its key at the start of the next. */
	assert_int_equal(filter(&e, "ab" CA, out, &quit, &help), 2);
	assert_int_equal(filter(&e, "x", out, &quit, &help), 0);
	assert_true(quit);

	quit = false;
	e = (struct console_escape){ 0 };
	assert_int_equal(filter(&e, CA, out, &quit, &help), 0);
	assert_int_equal(filter(&e, "q", out, &quit, &help), 2); /* n + 1 */
	assert_memory_equal(out, CA "q", 2);

	assert_int_equal(filter(&e, CA, out, &quit, &help), 0);
	assert_int_equal(filter(&e, CA, out, &quit, &help), 1);
	assert_memory_equal(out, CA, 1);

	assert_int_equal(filter(&e, CA, out, &quit, &help), 0);
	assert_int_equal(filter(&e, "h", out, &quit, &help), 0);
	assert_true(help);
	assert_false(quit);
	/* Nothing pending afterwards. */
	assert_int_equal(filter(&e, "z", out, &quit, &help), 1);
	assert_memory_equal(out, "z", 1);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[4096];
	*len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return buf;
}

static void test_file_mode(void **state)
{
	char path[] = "/tmp/kvmini-console-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old contents", 12), 12);
	close(fd);

	struct console *c;
	assert_int_equal(console_open(&c, CONSOLE_FILE, path), 0);
	assert_int_equal(console_input_fd(c), -1);
	console_write(c, (const uint8_t *)"Linux version\r\n", 15);
	console_write(c, (const uint8_t *)"login: ", 7);
	bool quit = false, eof = false;
	uint8_t buf[16];
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 0);
	assert_true(eof);
	console_close(c);

	size_t len;
	char *data = read_file(path, &len);
	assert_int_equal(len, 22); /* truncated, then our bytes */
	assert_memory_equal(data, "Linux version\r\nlogin: ", 22);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	unlink(path);

	/* Errors are -errno. */
	assert_int_equal(console_open(&c, CONSOLE_FILE, "/nonexistent-dir/x"), -ENOENT);
	assert_null(c);
	assert_int_equal(console_open(&c, CONSOLE_FILE, NULL), -EINVAL);
}

static void test_file_mode_creates_0644(void **state)
{
	char path[] = "/tmp/kvmini-console-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	mode_t old = umask(0);
	struct console *c;
	assert_int_equal(console_open(&c, CONSOLE_FILE, path), 0);
	umask(old);
	console_close(c);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	unlink(path);
}

static void test_none_mode(void **state)
{
	struct console *c;
	assert_int_equal(console_open(&c, CONSOLE_NONE, NULL), 0);
	assert_int_equal(console_input_fd(c), -1);
	console_write(c, (const uint8_t *)"dropped", 7); /* must not crash */
	bool quit = false, eof = false;
	uint8_t buf[8];
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 0);
	assert_true(eof);
	console_close(c);
	console_close(NULL);
	console_restore_terminal(NULL);
}

/* Puts fresh pipes on stdin and stdout; restores them in teardown. */
struct stdio_fix {
	int saved_in, saved_out;
	int to_stdin;    /* write end feeding our stdin */
	int from_stdout; /* read end of our stdout */
};

static int stdio_setup(void **state)
{
	struct stdio_fix *f = calloc(1, sizeof(*f));
	int in[2], out[2];
	if (pipe(in) || pipe(out))
		return -1;
	fflush(stdout);
	f->saved_in = dup(STDIN_FILENO);
	f->saved_out = dup(STDOUT_FILENO);
	dup2(in[0], STDIN_FILENO);
	dup2(out[1], STDOUT_FILENO);
	close(in[0]);
	close(out[1]);
	f->to_stdin = in[1];
	f->from_stdout = out[0];
	*state = f;
	return 0;
}

static int stdio_teardown(void **state)
{
	struct stdio_fix *f = *state;
	dup2(f->saved_in, STDIN_FILENO);
	dup2(f->saved_out, STDOUT_FILENO);
	close(f->saved_in);
	close(f->saved_out);
	if (f->to_stdin >= 0)
		close(f->to_stdin);
	close(f->from_stdout);
	free(f);
	return 0;
}

static void test_stdio_mode(void **state)
{
	struct stdio_fix *f = *state;
	struct console *c;
	assert_int_equal(console_open(&c, CONSOLE_STDIO, NULL), 0);
	assert_int_equal(console_input_fd(c), STDIN_FILENO);

	assert_int_equal(console_write(c, (const uint8_t *)"guest says hi\n", 14), 14);
	/* Buffered until the loop (here: a drain) writes it out. */
	assert_int_equal(console_pending(c), 14);
	assert_int_equal(console_drain(c, 1000), 0);
	char got[32];
	assert_int_equal(read(f->from_stdout, got, sizeof(got)), 14);
	assert_memory_equal(got, "guest says hi\n", 14);

	bool quit = false, eof = false;
	uint8_t buf[64];
	assert_int_equal(write(f->to_stdin, "echo" CA CA "\r", 7), 7);
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 6);
	assert_memory_equal(buf, "echo" CA "\r", 6);
	assert_false(quit);
	assert_false(eof);

	/* A small buffer: one byte is left for a held-over Ctrl-A. */
	assert_int_equal(console_read(c, buf, 1, &quit, &eof), -EINVAL);
	assert_int_equal(write(f->to_stdin, "abc", 3), 3);
	assert_int_equal(console_read(c, buf, 2, &quit, &eof), 1);
	assert_int_equal(buf[0], 'a');
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 2);

	assert_int_equal(write(f->to_stdin, "ok" CA "x", 4), 4);
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 2);
	assert_true(quit);

	/* End of input. */
	close(f->to_stdin);
	f->to_stdin = -1;
	quit = false;
	assert_int_equal(console_read(c, buf, sizeof(buf), &quit, &eof), 0);
	assert_true(eof);
	console_close(c);
}

static void test_stdio_devnull_has_no_input(void **state)
{
	int saved = dup(STDIN_FILENO);
	int null = open("/dev/null", O_RDONLY);
	assert_true(null >= 0);
	dup2(null, STDIN_FILENO);
	close(null);
	struct console *c;
	assert_int_equal(console_open(&c, CONSOLE_STDIO, NULL), 0);
	assert_int_equal(console_input_fd(c), -1);
	console_close(c);
	dup2(saved, STDIN_FILENO);
	close(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_plain_passes),
		cmocka_unit_test(test_escape_x_quits),
		cmocka_unit_test(test_escape_h_help),
		cmocka_unit_test(test_escape_double_sends_one),
		cmocka_unit_test(test_escape_other_passes_both),
		cmocka_unit_test(test_escape_split_across_calls),
		cmocka_unit_test(test_file_mode),
		cmocka_unit_test(test_file_mode_creates_0644),
		cmocka_unit_test(test_none_mode),
		cmocka_unit_test_setup_teardown(test_stdio_mode, stdio_setup, stdio_teardown),
		cmocka_unit_test(test_stdio_devnull_has_no_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
