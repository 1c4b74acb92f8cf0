/* The event loop: epoll for fds, a sorted list for timers, a poll() round
 * for hooks (libslirp), and an eventfd that other threads use to post work.
 * See eventloop.h and docs/eventloop.md. */
#include "vmm/eventloop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EPOLL_BATCH 32

uint64_t evloop_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_wake(void *ctx, uint32_t events)
{
	struct event_loop *l = ctx;
	uint64_t v;
	/* The counter only says "look at the posted list"; its value is
	 * meaningless. Nothing to read is a spurious wake-up. */
	if (read(l->wake_fd, &v, sizeof(v)) < 0) {
	}
}

int evloop_init(struct event_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->wake_fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		int err = -errno;
		close(l->epfd);
		l->epfd = -1;
		return err;
	}
	pthread_mutex_init(&l->post_lock, NULL);
	l->posted_tail = &l->posted;
	l->wake_src = (struct event_source){ .fd = l->wake_fd, .fn = on_wake, .ctx = l };
	evloop_set_owner(l);
	int r = evloop_add(l, &l->wake_src, EPOLLIN);
	if (r) {
		evloop_close(l);
		return r;
	}
	return 0;
}

void evloop_close(struct event_loop *l)
{
	if (l->epfd < 0 && l->wake_fd < 0)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake_fd >= 0) {
		close(l->wake_fd);
		pthread_mutex_destroy(&l->post_lock);
	}
	free(l->pfds);
	l->pfds = NULL;
	l->npfds = l->pfds_cap = 0;
	l->epfd = l->wake_fd = -1;
}

void evloop_set_owner(struct event_loop *l)
{
	l->owner = pthread_self();
	atomic_store_explicit(&l->owner_set, true, memory_order_release);
}

bool evloop_on_owner(const struct event_loop *l)
{
	return atomic_load_explicit(&l->owner_set, memory_order_acquire) &&
	       pthread_equal(l->owner, pthread_self());
}

int evloop_add(struct event_loop *l, struct event_source *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		return -errno;
	s->events = events;
	s->added = true;
	return 0;
}

int evloop_mod(struct event_loop *l, struct event_source *s, uint32_t events)
{
	if (!s->added)
		return -ENOENT;
	if (s->events == events)
		return 0;
	struct epoll_event ev = { .events = events, .data.ptr = s };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return -errno;
	s->events = events;
	return 0;
}

int evloop_del(struct event_loop *l, struct event_source *s)
{
	if (!s->added)
		return 0;
	s->added = false;
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL) < 0 ? -errno : 0;
}

void evloop_timer_arm(struct event_loop *l, struct evloop_timer *t, uint64_t deadline_ns)
{
	evloop_timer_cancel(l, t);
	t->deadline_ns = deadline_ns;
	struct evloop_timer **p = &l->timers;
	while (*p && (*p)->deadline_ns <= deadline_ns)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	t->armed = true;
}

void evloop_timer_cancel(struct event_loop *l, struct evloop_timer *t)
{
	if (!t->armed)
		return;
	for (struct evloop_timer **p = &l->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = false;
	t->next = NULL;
}

void evloop_hook_add(struct event_loop *l, struct evloop_hook *h)
{
	if (h->added)
		return;
	h->next = l->hooks;
	l->hooks = h;
	h->added = true;
}

void evloop_hook_del(struct event_loop *l, struct evloop_hook *h)
{
	if (!h->added)
		return;
	for (struct evloop_hook **p = &l->hooks; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
	h->added = false;
	h->next = NULL;
}

int evloop_poll_add(struct event_loop *l, int fd, short events)
{
	if (l->npfds == l->pfds_cap) {
		unsigned cap = l->pfds_cap ? 2 * l->pfds_cap : 16;
		struct pollfd *p = realloc(l->pfds, cap * sizeof(*p));
		if (!p)
			return -1;
		l->pfds = p;
		l->pfds_cap = cap;
	}
	l->pfds[l->npfds] = (struct pollfd){ .fd = fd, .events = events };
	return (int)l->npfds++;
}

short evloop_poll_revents(const struct event_loop *l, int idx)
{
	if (idx < 0 || (unsigned)idx >= l->npfds)
		return 0;
	return l->pfds[idx].revents;
}

void evloop_post(struct event_loop *l, struct evloop_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&l->post_lock);
	bool was_empty = !l->posted;
	*l->posted_tail = w;
	l->posted_tail = &w->next;
	pthread_mutex_unlock(&l->post_lock);
	if (was_empty) {
		uint64_t one = 1;
		/* Fails only if the counter would overflow: a wake is pending. */
		if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		}
	}
}

struct call {
	struct evloop_work work;
	void (*fn)(void *ctx);
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void run_call(void *ctx)
{
	struct call *c = ctx;
	c->fn(c->ctx);
	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void evloop_call(struct event_loop *l, void (*fn)(void *ctx), void *ctx)
{
	if (evloop_on_owner(l)) {
		fn(ctx);
		return;
	}
	struct call c = { .work = { .fn = run_call }, .fn = fn, .ctx = ctx };
	c.work.ctx = &c;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	evloop_post(l, &c.work);
	pthread_mutex_lock(&c.lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
}

static void wake(struct event_loop *l)
{
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
	}
}

void evloop_stop(struct event_loop *l)
{
	atomic_store(&l->stop, true);
	wake(l);
}

/* Runs what was posted before this call; work posted by that work waits for
 * the next round, so a self-reposting item cannot starve the fds. */
static int run_posted(struct event_loop *l)
{
	pthread_mutex_lock(&l->post_lock);
	struct evloop_work *w = l->posted;
	l->posted = NULL;
	l->posted_tail = &l->posted;
	pthread_mutex_unlock(&l->post_lock);
	int n = 0;
	while (w) {
		struct evloop_work *next = w->next;
		/* After fn returns, w may be gone (evloop_call's frame). */
		w->fn(w->ctx);
		w = next;
		n++;
	}
	return n;
}

static int run_timers(struct event_loop *l)
{
	uint64_t now = evloop_now_ns();
	int n = 0;
	while (l->timers && l->timers->deadline_ns <= now) {
		struct evloop_timer *t = l->timers;
		l->timers = t->next;
		t->next = NULL;
		t->armed = false;
		t->fn(t->ctx);
		n++;
	}
	return n;
}

/* The wait's timeout: the caller's, lowered to the first timer. */
static int timeout_for(struct event_loop *l, int timeout_ms)
{
	if (!l->timers)
		return timeout_ms;
	uint64_t now = evloop_now_ns(), when = l->timers->deadline_ns;
	/* Round up so we never wake just before the deadline and spin. */
	uint64_t ms = when > now ? (when - now + 999999) / 1000000 : 0;
	if (ms > 60000)
		ms = 60000;
	return timeout_ms < 0 || (uint64_t)timeout_ms > ms ? (int)ms : timeout_ms;
}

static int dispatch_epoll(struct event_loop *l, int timeout_ms)
{
	struct epoll_event evs[EPOLL_BATCH];
	int n = epoll_wait(l->epfd, evs, EPOLL_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct event_source *s = evs[i].data.ptr;
		/* A callback may have removed a later source in this batch. */
		if (s->added)
			s->fn(s->ctx, evs[i].events);
	}
	return n;
}

int evloop_run_once(struct event_loop *l, int timeout_ms)
{
	l->iterations++;
	bool have_posted;
	pthread_mutex_lock(&l->post_lock);
	have_posted = l->posted != NULL;
	pthread_mutex_unlock(&l->post_lock);
	if (have_posted || atomic_load(&l->stop))
		timeout_ms = 0;
	int n = 0;
	if (!l->hooks) {
		int r = dispatch_epoll(l, timeout_for(l, timeout_ms));
		if (r < 0)
			return r;
		n += r;
	} else {
		/* Hooks hand out a poll() set each round: poll it together with
		 * the epoll fd, then collect epoll's events without waiting. */
		int t = timeout_for(l, timeout_ms);
		l->npfds = 0;
		if (evloop_poll_add(l, l->epfd, POLLIN) < 0)
			return -ENOMEM;
		for (struct evloop_hook *h = l->hooks; h; h = h->next)
			if (h->prepare)
				h->prepare(h->ctx, l, &t);
		t = timeout_for(l, t);
		int r = poll(l->pfds, l->npfds, t);
		bool error = r < 0 && errno != EINTR;
		if (r < 0) {
			for (unsigned i = 0; i < l->npfds; i++)
				l->pfds[i].revents = 0;
		}
		if (r > 0 && (l->pfds[0].revents & POLLIN)) {
			int e = dispatch_epoll(l, 0);
			if (e < 0)
				return e;
			n += e;
		}
		for (struct evloop_hook *h = l->hooks, *next; h; h = next) {
			next = h->next;
			if (h->dispatch) {
				h->dispatch(h->ctx, l, error);
				n++;
			}
		}
	}
	n += run_timers(l);
	n += run_posted(l);
	return n;
}

int evloop_run(struct event_loop *l)
{
	while (!atomic_load(&l->stop)) {
		int r = evloop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	/* Work posted before the stop still runs: an evloop_call may wait on
	 * it. */
	run_posted(l);
	return 0;
}

static void *iothread_main(void *arg)
{
	struct iothread *t = arg;
	evloop_set_owner(&t->loop);
	int r = evloop_run(&t->loop);
	(void)r;
	return NULL;
}

int iothread_start(struct iothread *t, const char *name)
{
	int r = evloop_init(&t->loop);
	if (r)
		return r;
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "io");
	/* The thread becomes the owner itself; until then no one is. */
	atomic_store(&t->loop.owner_set, false);
	r = -pthread_create(&t->thread, NULL, iothread_main, t);
	if (r) {
		evloop_close(&t->loop);
		return r;
	}
	pthread_setname_np(t->thread, t->name);
	t->running = true;
	return 0;
}

void iothread_stop(struct iothread *t)
{
	if (!t->running)
		return;
	evloop_stop(&t->loop);
	pthread_join(t->thread, NULL);
	t->running = false;
	evloop_close(&t->loop);
}
