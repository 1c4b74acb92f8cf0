/* `kvmini ctl SOCKET status|pause|resume|shutdown|stop|stats [--json]`
 * (shutdown also takes --timeout SECONDS):
 * one request on a running kvmini's control socket (vmm/control.c), its
 * answer printed for a person, or as the JSON it came in with --json. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/run.h"

#define CTL_TIMEOUT_MS 30000
#define CTL_REPLY_MAX  (256 * 1024)

static const char *const ctl_commands[] = { "status", "stats", "pause", "resume", "shutdown",
					    "stop" };

static void ctl_usage(FILE *f)
{
	fputs("usage: kvmini ctl SOCKET status|stats|pause|resume|stop [--json]\n"
	      "       kvmini ctl SOCKET shutdown [--timeout SECONDS] [--json]\n"
	      "  status    state (running, paused), boots, uptime and the VM's definition\n"
	      "  stats     VM exits per reason, vCPU and device; disk and NIC counters\n"
	      "  pause     park every vCPU and stop the devices; returns when done\n"
	      "  resume    run again\n"
	      "  shutdown  press the ACPI power button: the guest shuts down in order;\n"
	      "            a hard stop (kvmini exits 1) if it still runs after the timeout\n"
	      "            (default 60 s)\n"
	      "  stop      end kvmini now (status 0), like SIGTERM\n",
	      f);
}

/* Reads one reply line (at most CTL_REPLY_MAX); NULL on error. */
static char *read_reply(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, CTL_TIMEOUT_MS);
		if (r <= 0) {
			log_err("ctl: no answer within %d s", CTL_TIMEOUT_MS / 1000);
			break;
		}
		if (len + 1 >= cap) {
			if (cap >= CTL_REPLY_MAX)
				break;
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n <= 0) {
			log_err("ctl: the connection closed before an answer");
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len))
			return buf;
	}
	free(buf);
	return NULL;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* Every non-zero member of o as "name N", on one line. */
static void print_counts(const char *title, struct json_object *o)
{
	printf("%s:", title);
	json_object_object_foreach(o, key, val)
		if (json_object_get_int64(val))
			printf(" %s %" PRId64, key, json_object_get_int64(val));
	printf("\n");
}

static void print_stats(struct json_object *ret)
{
	struct json_object *v;
	if (json_object_object_get_ex(ret, "exits", &v))
		print_counts("exits", v);
	if (json_object_object_get_ex(ret, "vcpus", &v))
		for (size_t i = 0; i < json_object_array_length(v); i++)
			printf("vcpu%zu: %" PRId64 " exits\n", i,
			       get_int(json_object_array_get_idx(v, i), "exits"));
	if (json_object_object_get_ex(ret, "exits_by_device", &v))
		print_counts("exits by device", v);
	if (json_object_object_get_ex(ret, "disks", &v))
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *d = json_object_array_get_idx(v, i), *path = NULL;
			json_object_object_get_ex(d, "path", &path);
			const char *p = path ? json_object_get_string(path) : NULL;
			printf("disk%zu %s: %" PRId64 " reads (%" PRId64 " bytes), %" PRId64
			       " writes (%" PRId64 " bytes), %" PRId64 " flushes, %" PRId64
			       " errors\n",
			       i, p ? p : "?", get_int(d, "reads"),
			       get_int(d, "read_bytes"), get_int(d, "writes"),
			       get_int(d, "write_bytes"), get_int(d, "flushes"), get_int(d, "errors"));
		}
	if (json_object_object_get_ex(ret, "nics", &v))
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *n = json_object_array_get_idx(v, i);
			printf("eth%zu: rx %" PRId64 " frames (%" PRId64 " bytes), tx %" PRId64
			       " frames (%" PRId64 " bytes), dropped rx %" PRId64 " tx %" PRId64 "\n",
			       i, get_int(n, "rx_frames"), get_int(n, "rx_bytes"),
			       get_int(n, "tx_frames"), get_int(n, "tx_bytes"),
			       get_int(n, "rx_dropped"), get_int(n, "tx_dropped"));
		}
	printf("console bytes dropped: %" PRId64 "\n", get_int(ret, "console_dropped"));
}

static void print_human(const char *cmd, struct json_object *ret)
{
	if (!strcmp(cmd, "status")) {
		struct json_object *v;
		if (json_object_object_get_ex(ret, "state", &v))
			printf("state: %s\n", json_object_get_string(v));
		printf("boots: %" PRId64 "\n", get_int(ret, "boots"));
		if (json_object_object_get_ex(ret, "uptime_s", &v))
			printf("uptime: %.1f s\n", json_object_get_double(v));
		printf("pid: %" PRId64 "\n", get_int(ret, "pid"));
		printf("vcpus: %" PRId64 ", memory: %" PRId64 " MiB, disks: %" PRId64
		       ", nics: %" PRId64 "\n",
		       get_int(ret, "vcpus"), get_int(ret, "memory_bytes") >> 20,
		       get_int(ret, "disks"), get_int(ret, "nics"));
		if (json_object_object_get_ex(ret, "config", &v))
			printf("config: %s\n",
			       json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (!strcmp(cmd, "stats")) {
		print_stats(ret);
	} else if (!strcmp(cmd, "shutdown")) {
		printf("shutdown: power button pressed; hard stop in %" PRId64 " s if the guest "
		       "is still running\n", get_int(ret, "timeout_s"));
	} else {
		printf("%s: done\n", cmd);
	}
}

int cmd_ctl(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		ctl_usage(stdout);
		return 0;
	}
	if (argc < 3) {
		log_err("expected 'kvmini ctl SOCKET COMMAND [--json]' (see kvmini ctl --help)");
		return EXIT_USAGE;
	}
	const char *path = argv[1], *cmd = argv[2];
	bool known = false;
	for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		known |= !strcmp(cmd, ctl_commands[i]);
	if (!known) {
		log_err("ctl: unknown command '%s' (see kvmini ctl --help)", cmd);
		return EXIT_USAGE;
	}
	bool json = false;
	long timeout = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--timeout") && !strcmp(cmd, "shutdown") && i + 1 < argc) {
			char *end;
			errno = 0;
			timeout = strtol(argv[++i], &end, 10);
			if (errno || end == argv[i] || *end || timeout < 1 || timeout > 86400) {
				log_err("ctl: --timeout %s: whole seconds from 1 to 86400", argv[i]);
				return EXIT_USAGE;
			}
		} else {
			log_err("ctl: unexpected '%s' (see kvmini ctl --help)", argv[i]);
			return EXIT_USAGE;
		}
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("ctl: %s: path too long", path);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_err("ctl: cannot connect to %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_FAILURE_VM;
	}
	char req[96];
	int n = timeout ? snprintf(req, sizeof(req), "{\"command\": \"%s\", \"timeout\": %ld}\n",
				   cmd, timeout)
			: snprintf(req, sizeof(req), "{\"command\": \"%s\"}\n", cmd);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		log_err("ctl: cannot send to %s: %s", path, strerror(errno));
		close(fd);
		return EXIT_FAILURE_VM;
	}
	char *line = read_reply(fd);
	close(fd);
	if (!line)
		return EXIT_FAILURE_VM;
	int status = EXIT_FAILURE_VM;
	struct json_object *o = json_tokener_parse(line), *v;
	if (!o || !json_object_is_type(o, json_type_object)) {
		log_err("ctl: not a JSON answer: %.80s", line);
	} else if (json_object_object_get_ex(o, "error", &v)) {
		log_err("ctl: %s: %s", cmd, json_object_get_string(v));
	} else if (json_object_object_get_ex(o, "return", &v)) {
		if (json)
			printf("%s\n", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		else
			print_human(cmd, v);
		status = 0;
	} else {
		log_err("ctl: an answer with neither return nor error");
	}
	json_object_put(o);
	free(line);
	return status;
}
