/* The one event loop (epoll) of a VM: console input, signals, the stop
 * eventfd, and later the network backends and the control socket. Sources
 * are caller-owned structs, so adding one allocates nothing. */
#ifndef KVMINI_EVENTLOOP_H
#define KVMINI_EVENTLOOP_H

#include <stdint.h>

typedef void (*event_fn)(void *ctx, uint32_t events);

struct event_source {
	int fd;
	event_fn fn;
	void *ctx;
	int added;
};

struct event_loop {
	int epfd;
};

int evloop_init(struct event_loop *l);
void evloop_close(struct event_loop *l);
int evloop_add(struct event_loop *l, struct event_source *s, uint32_t events);
int evloop_del(struct event_loop *l, struct event_source *s);
/* Waits up to timeout_ms (-1: forever) and runs the callbacks of ready
 * sources. Returns the number run, or -errno. */
int evloop_run_once(struct event_loop *l, int timeout_ms);

#endif
