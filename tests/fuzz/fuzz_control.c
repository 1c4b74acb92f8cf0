/* The control socket's request handling (vmm/control.c): the input is what
 * one client sends, split into lines, JSON-parsed and dispatched against a
 * VM process that sits between boots (no KVM needed: every command still
 * runs its checks and answers). Checked:
 *   - nothing crashes or hangs: after the client closes its end, kvmini
 *     closes the connection within a bounded number of loop rounds;
 *   - every reply is one line holding a JSON object with exactly one of
 *     "return" or "error";
 *   - at most one reply per request line, plus one for an oversized line. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/log.h"
#include "vmm/settings.h"
#include "vmm/vmm.h"

static struct vmm *m;
static struct vm_config cfg;
static char path[108];

static void setup(void)
{
	static char dir[] = "/tmp/kvmini-fuzz-control-XXXXXX";
	log_set_level(LOG_ERROR);
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	vm_config_init(&cfg);
	cfg.kernel = strdup("/boot/vmlinuz");
	m = calloc(1, sizeof(*m));
	FUZZ_CHECK(m && evloop_init(&m->loop) == 0);
	m->cfg = &cfg;
	m->vm.stop_fd = -1;
	m->state = VMM_BOOTING;
	FUZZ_CHECK(console_open(&m->console, CONSOLE_NONE, NULL) == 0);
	FUZZ_CHECK(control_open(&m->control, m, path) == 0);
}

static void check_reply(const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	FUZZ_CHECK(o && json_tokener_get_error(tok) == json_tokener_success);
	FUZZ_CHECK(json_object_is_type(o, json_type_object));
	struct json_object *v;
	bool ret = json_object_object_get_ex(o, "return", &v);
	bool err = json_object_object_get_ex(o, "error", &v);
	FUZZ_CHECK(ret != err && json_object_object_length(o) == 1);
	json_object_put(o);
	json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!m)
		setup();
	if (size > 32768)   /* within one socket buffer, so send never blocks */
		size = 32768;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	FUZZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FUZZ_CHECK(send(fd, data, size, MSG_NOSIGNAL) == (ssize_t)size);
	shutdown(fd, SHUT_WR);

	size_t lines = 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	static char buf[1 << 20];
	size_t len = 0;
	bool closed = false;
	for (int round = 0; round < 10000 && !closed; round++) {
		evloop_run_once(&m->loop, 0);
		ssize_t n;
		while ((n = recv(fd, buf + len, sizeof(buf) - len, MSG_DONTWAIT)) > 0)
			len += (size_t)n;
		FUZZ_CHECK(len < sizeof(buf));
		closed = n == 0;
	}
	FUZZ_CHECK(closed);
	close(fd);

	size_t replies = 0;
	for (char *p = buf, *nl; p < buf + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		FUZZ_CHECK(nl);     /* every reply ends with its newline */
		check_reply(p, (size_t)(nl - p));
		replies++;
	}
	FUZZ_CHECK(replies <= lines + 1);
	/* Nothing the client asked changed the VM process's state. */
	FUZZ_CHECK(m->state == VMM_BOOTING && !m->shutdown_timer.armed);
	return 0;
}
