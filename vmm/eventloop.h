/* An event loop (epoll) owned by one thread. The VM process runs one on its
 * main thread for its whole life, across guest reboots: console input and
 * output, signals, the stop eventfd, libslirp, and later the control
 * socket. Device I/O threads (struct iothread) run their own.
 *
 * Everything here is called on the loop's own thread, except
 * evloop_post(), evloop_call() and evloop_stop(), which any thread may
 * call. Sources, timers, hooks and work items are caller-owned structs:
 * adding one allocates nothing. See docs/eventloop.md. */
#ifndef KVMINI_EVENTLOOP_H
#define KVMINI_EVENTLOOP_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct event_loop;

typedef void (*event_fn)(void *ctx, uint32_t events);

/* An fd watched by epoll; fn gets the EPOLL* events that fired. */
struct event_source {
	int fd;
	event_fn fn;
	void *ctx;
	uint32_t events;   /* what it is registered for (evloop_add/evloop_mod) */
	bool added;
};

/* A one-shot timer on CLOCK_MONOTONIC; re-arm it from its callback for a
 * periodic one. */
struct evloop_timer {
	void (*fn)(void *ctx);
	void *ctx;
	uint64_t deadline_ns;
	bool armed;
	struct evloop_timer *next;   /* the loop's list, sorted by deadline */
};

/* For libraries that hand out a poll() set each round (libslirp's
 * slirp_pollfds_fill/slirp_pollfds_poll): before each wait, prepare() adds
 * fds with evloop_poll_add() and may lower *timeout_ms; after the wait,
 * dispatch() reads each one's revents with evloop_poll_revents(). error is
 * true when the wait itself failed. */
struct evloop_hook {
	void (*prepare)(void *ctx, struct event_loop *l, int *timeout_ms);
	void (*dispatch)(void *ctx, struct event_loop *l, bool error);
	void *ctx;
	bool added;
	struct evloop_hook *next;
};

/* Work posted from another thread; runs once on the loop thread. The item
 * must stay valid until fn has run and may not be posted again before. */
struct evloop_work {
	void (*fn)(void *ctx);
	void *ctx;
	struct evloop_work *next;
};

struct event_loop {
	int epfd;
	int wake_fd;                 /* eventfd: posted work, evloop_stop */
	struct event_source wake_src;
	pthread_t owner;             /* the thread that runs it, once owner_set */
	atomic_bool owner_set;
	atomic_bool stop;
	pthread_mutex_t post_lock;   /* guards posted */
	struct evloop_work *posted, **posted_tail;
	struct evloop_timer *timers;
	struct evloop_hook *hooks;
	struct pollfd *pfds;         /* hook fds; pfds[0] is epfd */
	unsigned npfds, pfds_cap;
	uint64_t iterations;         /* statistics */
};

/* The calling thread becomes the owner (evloop_set_owner changes it). */
int evloop_init(struct event_loop *l);
/* Runs nothing that is still posted; the caller makes sure no other thread
 * posts any more. */
void evloop_close(struct event_loop *l);
void evloop_set_owner(struct event_loop *l);
bool evloop_on_owner(const struct event_loop *l);

int evloop_add(struct event_loop *l, struct event_source *s, uint32_t events);
/* Changes the events of an added source (e.g. drop EPOLLIN while a device
 * has no buffers to read into: back-pressure). */
int evloop_mod(struct event_loop *l, struct event_source *s, uint32_t events);
int evloop_del(struct event_loop *l, struct event_source *s);

uint64_t evloop_now_ns(void);
/* Arms (or re-arms) t for an absolute CLOCK_MONOTONIC deadline. */
void evloop_timer_arm(struct event_loop *l, struct evloop_timer *t, uint64_t deadline_ns);
void evloop_timer_cancel(struct event_loop *l, struct evloop_timer *t);

void evloop_hook_add(struct event_loop *l, struct evloop_hook *h);
void evloop_hook_del(struct event_loop *l, struct evloop_hook *h);
/* From a hook's prepare(): watch fd for events (POLLIN, POLLOUT, ...) in
 * this round. Returns its index for evloop_poll_revents, or -1 on ENOMEM. */
int evloop_poll_add(struct event_loop *l, int fd, short events);
short evloop_poll_revents(const struct event_loop *l, int idx);

/* Any thread. */
void evloop_post(struct event_loop *l, struct evloop_work *w);
/* Runs fn(ctx) on the loop thread and waits for it to return; on the loop
 * thread itself, runs it at once. The loop must be running (or be run by
 * someone) or this waits forever. */
void evloop_call(struct event_loop *l, void (*fn)(void *ctx), void *ctx);
/* Makes evloop_run return (any thread). */
void evloop_stop(struct event_loop *l);

/* Waits up to timeout_ms (-1: until something happens, bounded by the next
 * timer) and runs what is ready: fd callbacks, expired timers, hooks,
 * posted work. Returns the number of callbacks run, or -errno. */
int evloop_run_once(struct event_loop *l, int timeout_ms);
/* evloop_run_once until evloop_stop. Returns 0 or -errno. */
int evloop_run(struct event_loop *l);

/* A thread that runs its own event loop: a device's I/O thread. */
struct iothread {
	struct event_loop loop;
	pthread_t thread;
	bool running;
	char name[16];
};

/* Creates the loop and starts the thread (its owner). */
int iothread_start(struct iothread *t, const char *name);
/* Stops the loop, joins the thread and closes the loop. Idempotent. */
void iothread_stop(struct iothread *t);

#endif
