/* The control socket: inspect and steer a running VM without killing it.
 * Requests are untrusted: a line longer than CONTROL_LINE_MAX, bad JSON or
 * an unknown command gets an error reply, never a crash; at most
 * CONTROL_MAX_CLIENTS connections at once. Everything here runs on the
 * main thread, which owns struct vmm.
 *
 * Protocol (docs/control.md): the client sends {"command": "NAME"} and a
 * newline; kvmini answers {"return": {...}} or {"error": "why"} and a
 * newline. "pause" answers once every vCPU has parked and the devices have
 * stopped touching guest memory. */
#include "vmm/control.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/platform.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vmm/console.h"
#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/settings.h"
#include "vmm/stat.h"
#include "vmm/vcpu.h"
#include "vmm/vmm.h"

#define CONTROL_LINE_MAX    4096
#define CONTROL_MAX_CLIENTS 8
#define CONTROL_SHUTDOWN_TIMEOUT_S 60

struct control_client {
	struct control *ctl;
	struct event_source src;
	bool open;
	bool waits_pause;        /* answer when the pause completes */
	size_t len;
	char buf[CONTROL_LINE_MAX];
};

struct control {
	struct vmm *m;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct event_source listen_src;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

static void add_u64(struct json_object *o, const char *key, uint64_t v);

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_close(struct control_client *cl)
{
	if (!cl->open)
		return;
	evloop_del(&cl->ctl->m->loop, &cl->src);
	close(cl->src.fd);
	cl->open = false;
	cl->waits_pause = false;
}

/* One reply line. The socket is non-blocking and replies are small; a
 * client that does not read them is dropped rather than waited for. */
static void send_json(struct control_client *cl, struct json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);
	char *line = malloc(len + 1);
	if (line) {
		memcpy(line, text, len);
		line[len] = '\n';
		ssize_t n = send(cl->src.fd, line, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n != (ssize_t)(len + 1))
			client_close(cl);
		free(line);
	}
	json_object_put(o);
}

static void reply_ok(struct control_client *cl, struct json_object *ret)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "return", ret ? ret : json_object_new_object());
	send_json(cl, o);
}

static void reply_error(struct control_client *cl, const char *why)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(why));
	send_json(cl, o);
}

static const char *state_name(enum vmm_state s)
{
	switch (s) {
	case VMM_RUNNING: return "running";
	case VMM_PAUSING: return "pausing";
	case VMM_PAUSED: return "paused";
	default: return "booting";
	}
}

/* The definition as JSON: the same table `config show` prints from, read
 * back line by line ("key = value"; a [disk]/[net] line opens an object). */
static struct json_object *config_json(const struct vm_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	char why[SETTING_WHY_MAX];
	struct json_object *top = json_object_new_object();
	if (!f || vm_config_show(cfg, f, why)) {
		if (f)
			fclose(f);
		free(text);
		return top;
	}
	fclose(f);
	struct json_object *disks = json_object_new_array(), *nics = json_object_new_array();
	struct json_object *cur = top;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		if (!strcmp(line, "[disk]") || !strcmp(line, "[net]")) {
			cur = json_object_new_object();
			json_object_array_add(line[1] == 'd' ? disks : nics, cur);
			continue;
		}
		char *eq = strstr(line, " = ");
		if (!eq)
			continue;
		*eq = '\0';
		struct json_object *v = json_object_new_string(eq + 3);
		struct json_object *old;
		if (json_object_object_get_ex(cur, line, &old)) {
			/* a repeated key (hostfwd): a list */
			if (!json_object_is_type(old, json_type_array)) {
				struct json_object *arr = json_object_new_array();
				json_object_array_add(arr, json_object_get(old));
				json_object_object_add(cur, line, arr);
				old = arr;
			}
			json_object_array_add(old, v);
		} else {
			json_object_object_add(cur, line, v);
		}
	}
	json_object_object_add(top, "disks", disks);
	json_object_object_add(top, "nics", nics);
	free(text);
	return top;
}

static void cmd_status(struct control *c, struct control_client *cl,
                       struct json_object *req)
{
	struct vmm *m = c->m;
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "state", json_object_new_string(state_name(m->state)));
	json_object_object_add(r, "boots", json_object_new_int64(m->boots));
	json_object_object_add(r, "uptime_s", json_object_new_double(now_s() - m->started_at));
	json_object_object_add(r, "pid", json_object_new_int64(getpid()));
	add_u64(r, "vcpus", m->cfg->cpus);
	add_u64(r, "memory_bytes", m->cfg->mem_size);
	add_u64(r, "disks", m->cfg->ndisks);
	add_u64(r, "nics", m->cfg->nnics);
	json_object_object_add(r, "config", config_json(m->cfg));
	reply_ok(cl, r);
}

static const char *const exit_names[EXITK_COUNT] = {
	[EXITK_IO] = "io", [EXITK_MMIO] = "mmio", [EXITK_HLT] = "hlt", [EXITK_INTR] = "intr",
	[EXITK_SHUTDOWN] = "shutdown", [EXITK_SYSTEM_EVENT] = "system_event",
	[EXITK_INTERNAL_ERROR] = "internal_error", [EXITK_FAIL_ENTRY] = "fail_entry",
	[EXITK_OTHER] = "other",
};

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* Guest accesses per device, from the buses' counters: for a virtio device
 * these are the exits its notifications cost when the ioeventfd missed,
 * and every config access. Ranges sharing a name add up. */
static struct json_object *device_exits(const struct vm *vm)
{
	struct json_object *o = json_object_new_object();
	const struct bus *buses[] = { &vm->pio, &vm->mmio };
	for (int b = 0; vm->uart && b < 2; b++)
		for (size_t i = 0; i < buses[b]->count; i++) {
			const struct bus_range *br = &buses[b]->ranges[i];
			uint64_t n = atomic_load_explicit(&br->accesses, memory_order_relaxed);
			struct json_object *old;
			if (json_object_object_get_ex(o, br->name, &old))
				n += (uint64_t)json_object_get_int64(old);
			add_u64(o, br->name, n);
		}
	return o;
}

static struct json_object *disk_stats(const struct virtio_blk *b, const struct disk_config *dc)
{
	struct virtio_blk_stats s;
	virtio_blk_get_stats(b, &s);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(dc->block.path));
	add_u64(o, "requests", s.requests);
	add_u64(o, "reads", s.reads);
	add_u64(o, "writes", s.writes);
	add_u64(o, "flushes", s.flushes);
	add_u64(o, "read_bytes", s.read_bytes);
	add_u64(o, "write_bytes", s.write_bytes);
	add_u64(o, "merged", s.merged);
	add_u64(o, "errors", s.errors);
	add_u64(o, "malformed", s.malformed);
	add_u64(o, "kicks", s.kicks);
	add_u64(o, "kicks_by_exit", s.kicks_by_exit);
	add_u64(o, "interrupts", s.irqs);
	return o;
}

static struct json_object *nic_stats(const struct virtio_net *n)
{
	struct virtio_net_stats s;
	virtio_net_get_stats(n, &s);
	struct json_object *o = json_object_new_object();
	add_u64(o, "rx_frames", s.rx_frames);
	add_u64(o, "rx_bytes", s.rx_bytes);
	add_u64(o, "tx_frames", s.tx_frames);
	add_u64(o, "tx_bytes", s.tx_bytes);
	add_u64(o, "rx_dropped", s.rx_dropped_no_buffers + s.rx_dropped_reset + s.rx_too_big +
					 s.rx_backend_errors);
	add_u64(o, "tx_dropped", s.tx_dropped + s.tx_too_big);
	add_u64(o, "malformed", s.rx_bad_chain + s.tx_bad_header + s.tx_empty + s.tx_bad_chain +
					s.ctrl_bad);
	add_u64(o, "kicks", s.rx_kicks + s.tx_kicks + s.ctrl_kicks);
	add_u64(o, "kicks_by_exit", s.kicks_by_exit);
	add_u64(o, "interrupts", s.rx_irqs + s.tx_irqs + s.ctrl_irqs);
	return o;
}

static void cmd_stats(struct control *c, struct control_client *cl,
                      struct json_object *req)
{
	struct vmm *m = c->m;
	struct json_object *r = json_object_new_object();
	struct json_object *exits = json_object_new_object(), *per = json_object_new_array();
	uint64_t total[EXITK_COUNT] = { 0 };
	for (unsigned i = 0; m->vm.vcpus && i < m->vm.ncpus; i++) {
		struct json_object *one = json_object_new_object();
		uint64_t sum = 0;
		for (int k = 0; k < EXITK_COUNT; k++) {
			uint64_t v = STAT_GET(m->vm.vcpus[i].exits[k]);
			total[k] += v;
			sum += v;
		}
		json_object_object_add(one, "exits", json_object_new_int64((int64_t)sum));
		json_object_array_add(per, one);
	}
	for (int k = 0; k < EXITK_COUNT; k++)
		json_object_object_add(exits, exit_names[k], json_object_new_int64((int64_t)total[k]));
	json_object_object_add(r, "exits", exits);
	json_object_object_add(r, "vcpus", per);
	json_object_object_add(r, "exits_by_device", device_exits(&m->vm));
	struct json_object *disks = json_object_new_array(), *nics = json_object_new_array();
	for (unsigned i = 0; m->vm.uart && i < m->vm.ndisks; i++)
		json_object_array_add(disks, disk_stats(m->vm.disks[i], &m->cfg->disks[i]));
	for (unsigned i = 0; m->vm.uart && i < m->vm.nnics; i++)
		json_object_array_add(nics, nic_stats(m->vm.nics[i]));
	json_object_object_add(r, "disks", disks);
	json_object_object_add(r, "nics", nics);
	json_object_object_add(r, "boots", json_object_new_int64(m->boots));
	json_object_object_add(r, "console_dropped",
			       json_object_new_int64((int64_t)console_dropped(m->console)));
	reply_ok(cl, r);
}

void control_paused(struct control *c)
{
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];
		if (cl->open && cl->waits_pause) {
			cl->waits_pause = false;
			reply_ok(cl, NULL);
		}
	}
}

void control_pause_failed(struct control *c, const char *why)
{
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];
		if (cl->open && cl->waits_pause) {
			cl->waits_pause = false;
			reply_error(cl, why);
		}
	}
}

static void cmd_pause(struct control *c, struct control_client *cl,
                      struct json_object *req)
{
	struct vmm *m = c->m;
	switch (m->state) {
	case VMM_PAUSED:
		reply_ok(cl, NULL);
		return;
	case VMM_PAUSING:
		cl->waits_pause = true;
		return;
	case VMM_BOOTING:
		reply_error(cl, "the guest is between boots");
		return;
	case VMM_RUNNING:
		break;
	}
	m->state = VMM_PAUSING;
	cl->waits_pause = true;
	vcpus_pause(&m->vm, &m->loop, &m->paused_work);
}

static void cmd_resume(struct control *c, struct control_client *cl,
                       struct json_object *req)
{
	struct vmm *m = c->m;
	if (m->state == VMM_PAUSING) {
		reply_error(cl, "a pause is in progress; resume after it");
		return;
	}
	vmm_resume(m);
	reply_ok(cl, NULL);
}

static void cmd_stop(struct control *c, struct control_client *cl,
                     struct json_object *req)
{
	reply_ok(cl, NULL);
	log_info("control socket: stopping the guest");
	if (c->m->vm.uart)
		vm_request_stop(&c->m->vm, VM_STOP_USER);
}

/* The guest did not power off in time after the button: a hard stop. */
static void on_shutdown_timeout(void *ctx)
{
	struct vmm *m = ctx;
	if (!m->vm.uart) {
		/* Between boots: the next boot's stop is the one to request. */
		evloop_timer_arm(&m->loop, &m->shutdown_timer, evloop_now_ns() + 1000000000ull);
		return;
	}
	log_err("the guest did not power off within %u s of the power button: stopping it",
		m->shutdown_timeout_s);
	vm_request_stop(&m->vm, VM_STOP_SHUTDOWN_TIMEOUT);
}

static void cmd_shutdown(struct control *c, struct control_client *cl,
			 struct json_object *req)
{
	struct vmm *m = c->m;
	struct json_object *t;
	int64_t timeout = CONTROL_SHUTDOWN_TIMEOUT_S;
	if (json_object_object_get_ex(req, "timeout", &t)) {
		if (!json_object_is_type(t, json_type_int) ||
		    (timeout = json_object_get_int64(t)) < 1 || timeout > 86400) {
			reply_error(cl, "timeout: whole seconds from 1 to 86400");
			return;
		}
	}
	if (m->state != VMM_RUNNING) {
		reply_error(cl, m->state == VMM_BOOTING ? "the guest is between boots"
							: "the guest is paused: resume it first");
		return;
	}
	int r = acpi_ged_press_power(&m->vm);
	if (r) {
		reply_error(cl, strerror(-r));
		return;
	}
	/* A second press keeps the first deadline if that one is sooner. */
	uint64_t deadline = evloop_now_ns() + (uint64_t)timeout * 1000000000ull;
	if (!m->shutdown_timer.armed || deadline < m->shutdown_timer.deadline_ns) {
		m->shutdown_timer.fn = on_shutdown_timeout;
		m->shutdown_timer.ctx = m;
		m->shutdown_timeout_s = (unsigned)timeout;
		evloop_timer_arm(&m->loop, &m->shutdown_timer, deadline);
	}
	log_info("control socket: power button pressed; hard stop in %u s if the guest is "
		 "still running", (unsigned)timeout);
	struct json_object *ret = json_object_new_object();
	add_u64(ret, "timeout_s", (uint64_t)timeout);
	reply_ok(cl, ret);
}

static const struct {
	const char *name;
	void (*fn)(struct control *c, struct control_client *cl, struct json_object *req);
} commands[] = {
	{ "status", cmd_status }, { "stats", cmd_stats },   { "pause", cmd_pause },
	{ "resume", cmd_resume }, { "stop", cmd_stop },     { "shutdown", cmd_shutdown },
};

static void handle_line(struct control_client *cl, const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	struct json_object *req = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
	bool complete = tok && json_tokener_get_error(tok) == json_tokener_success;
	if (tok)
		json_tokener_free(tok);
	struct json_object *cmd;
	if (!req || !complete || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "command", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		reply_error(cl, "expected {\"command\": \"NAME\"}");
		json_object_put(req);
		return;
	}
	const char *name = json_object_get_string(cmd);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name)) {
			commands[i].fn(cl->ctl, cl, req);
			json_object_put(req);
			return;
		}
	char why[128];
	snprintf(why, sizeof(why), "unknown command '%.40s' (status, stats, pause, resume, "
				   "shutdown, stop)", name);
	reply_error(cl, why);
	json_object_put(req);
}

static void on_client(void *ctx, uint32_t events)
{
	struct control_client *cl = ctx;
	ssize_t n = recv(cl->src.fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_close(cl);
		return;
	}
	cl->len += (size_t)n;
	char *nl;
	while (cl->open && (nl = memchr(cl->buf, '\n', cl->len))) {
		size_t line = (size_t)(nl - cl->buf);
		handle_line(cl, cl->buf, line);
		memmove(cl->buf, nl + 1, cl->len - line - 1);
		cl->len -= line + 1;
	}
	if (cl->open && cl->len == sizeof(cl->buf)) {
		reply_error(cl, "request longer than 4096 bytes");
		client_close(cl);
	}
}

static void on_accept(void *ctx, uint32_t events)
{
	struct control *c = ctx;
	int fd = accept4(c->listen_src.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];
		if (cl->open)
			continue;
		*cl = (struct control_client){ .ctl = c, .open = true };
		cl->src = (struct event_source){ .fd = fd, .fn = on_client, .ctx = cl };
		if (evloop_add(&c->m->loop, &cl->src, EPOLLIN)) {
			close(fd);
			cl->open = false;
		}
		return;
	}
	static const char busy[] = "{\"error\": \"too many control connections\"}\n";
	if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone anyway */
	}
	close(fd);
}

static int bind_socket(struct control *c, int fd, const struct sockaddr_un *sa)
{
	/* 0600: whoever can connect can stop the VM. */
	mode_t old = umask(077);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	umask(old);
	if (r == 0)
		return 0;
	if (e != EADDRINUSE)
		return -e;
	/* In use, or left behind by a kvmini that died: only a live listener
	 * answers a connect. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	if (probe >= 0)
		close(probe);
	struct stat st;
	if (live || lstat(c->path, &st) || !S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	unlink(c->path);
	old = umask(077);
	r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	umask(old);
	return r ? -e : 0;
}

int control_open(struct control **out, struct vmm *m, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("--api-socket %s: longer than %zu characters", path, sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	strcpy(c->path, path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = fd < 0 ? -errno : bind_socket(c, fd, &sa);
	if (!r && listen(fd, 8) < 0)
		r = -errno;
	if (r) {
		if (r == -EADDRINUSE)
			log_err("--api-socket %s: in use (another kvmini listens there, or it is not "
				"a socket)", path);
		else
			log_err("--api-socket %s: %s", path, strerror(-r));
		if (fd >= 0)
			close(fd);
		free(c);
		return -EINVAL;
	}
	c->listen_src = (struct event_source){ .fd = fd, .fn = on_accept, .ctx = c };
	if ((r = evloop_add(&m->loop, &c->listen_src, EPOLLIN))) {
		close(fd);
		unlink(path);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		client_close(&c->clients[i]);
	evloop_del(&c->m->loop, &c->listen_src);
	close(c->listen_src.fd);
	unlink(c->path);
	free(c);
}
