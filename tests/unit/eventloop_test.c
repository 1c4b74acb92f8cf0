/* vmm/eventloop.c: fds with toggled interest, timers, poll hooks, work
 * posted from other threads, evloop_call and I/O threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/eventloop.h"

struct counter {
	int fd;
	int calls;
	uint32_t last_events;
	bool drain;
};

static void count_cb(void *ctx, uint32_t events)
{
	struct counter *c = ctx;
	c->calls++;
	c->last_events = events;
	if (c->drain) {
		uint64_t v;
		if (read(c->fd, &v, sizeof(v)) < 0) {
		}
	}
}

static void kick(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), 8);
}

static void fd_source_and_mod(void **state)
{
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	int efd = eventfd(0, EFD_NONBLOCK);
	struct counter c = { .fd = efd };
	struct event_source s = { .fd = efd, .fn = count_cb, .ctx = &c };
	assert_int_equal(evloop_add(&l, &s, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(&l, 0), 0);
	assert_int_equal(c.calls, 0);
	kick(efd);
	/* Level-triggered and not drained: fires every round... */
	evloop_run_once(&l, 0);
	evloop_run_once(&l, 0);
	assert_int_equal(c.calls, 2);
	assert_true(c.last_events & EPOLLIN);
	/* ...until read interest is dropped (back-pressure): then never. */
	assert_int_equal(evloop_mod(&l, &s, 0), 0);
	for (int i = 0; i < 5; i++)
		evloop_run_once(&l, 0);
	assert_int_equal(c.calls, 2);
	assert_int_equal(evloop_mod(&l, &s, EPOLLIN), 0);
	c.drain = true;
	evloop_run_once(&l, 0);
	assert_int_equal(c.calls, 3);
	evloop_run_once(&l, 0);
	assert_int_equal(c.calls, 3);
	assert_int_equal(evloop_del(&l, &s), 0);
	assert_int_equal(evloop_mod(&l, &s, EPOLLIN), -ENOENT);
	close(efd);
	evloop_close(&l);
}

struct order {
	int seen[8];
	int n;
};

struct tctx {
	struct order *o;
	int id;
};

static void timer_cb(void *ctx)
{
	struct tctx *t = ctx;
	t->o->seen[t->o->n++] = t->id;
}

static void timers_in_deadline_order(void **state)
{
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	struct order o = { 0 };
	struct tctx c1 = { &o, 1 }, c2 = { &o, 2 }, c3 = { &o, 3 };
	struct evloop_timer t1 = { .fn = timer_cb, .ctx = &c1 };
	struct evloop_timer t2 = { .fn = timer_cb, .ctx = &c2 };
	struct evloop_timer t3 = { .fn = timer_cb, .ctx = &c3 };
	uint64_t now = evloop_now_ns();
	evloop_timer_arm(&l, &t1, now + 30000000);
	evloop_timer_arm(&l, &t2, now + 10000000);
	evloop_timer_arm(&l, &t3, now + 20000000);
	/* Re-arming moves it: t3 now last. */
	evloop_timer_arm(&l, &t3, now + 40000000);
	evloop_timer_cancel(&l, &t1);
	assert_false(t1.armed);
	/* -1 waits no longer than the first timer. */
	while (o.n < 2)
		assert_true(evloop_run_once(&l, -1) >= 0);
	assert_true(evloop_now_ns() >= now + 40000000);
	assert_int_equal(o.seen[0], 2);
	assert_int_equal(o.seen[1], 3);
	assert_false(t2.armed);
	assert_false(t3.armed);
	evloop_close(&l);
}

struct hook_ctx {
	int fd;
	int idx;
	int prepared, dispatched, readable;
};

static void hook_prepare(void *ctx, struct event_loop *l, int *timeout)
{
	struct hook_ctx *h = ctx;
	h->prepared++;
	h->idx = evloop_poll_add(l, h->fd, POLLIN);
	if (*timeout < 0 || *timeout > 5)
		*timeout = 5;
}

static void hook_dispatch(void *ctx, struct event_loop *l, bool error)
{
	struct hook_ctx *h = ctx;
	h->dispatched++;
	if (evloop_poll_revents(l, h->idx) & POLLIN) {
		uint64_t v;
		h->readable++;
		if (read(h->fd, &v, sizeof(v)) < 0) {
		}
	}
}

static void hooks_poll_with_epoll(void **state)
{
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	int hfd = eventfd(0, EFD_NONBLOCK), efd = eventfd(0, EFD_NONBLOCK);
	struct hook_ctx hc = { .fd = hfd };
	struct evloop_hook h = { .prepare = hook_prepare, .dispatch = hook_dispatch, .ctx = &hc };
	struct counter c = { .fd = efd, .drain = true };
	struct event_source s = { .fd = efd, .fn = count_cb, .ctx = &c };
	assert_int_equal(evloop_add(&l, &s, EPOLLIN), 0);
	evloop_hook_add(&l, &h);
	/* The hook lowered the timeout: -1 returns. */
	assert_true(evloop_run_once(&l, -1) >= 0);
	assert_int_equal(hc.prepared, 1);
	assert_int_equal(hc.dispatched, 1);
	assert_int_equal(hc.readable, 0);
	kick(hfd);
	kick(efd);
	evloop_run_once(&l, 1000);
	assert_int_equal(hc.readable, 1);
	/* The epoll fds still work while a hook is in. */
	assert_int_equal(c.calls, 1);
	evloop_hook_del(&l, &h);
	kick(hfd);
	evloop_run_once(&l, 0);
	assert_int_equal(hc.dispatched, 2);
	close(hfd);
	close(efd);
	evloop_close(&l);
}

struct post_ctx {
	struct event_loop *l;
	struct evloop_work w[100];
	atomic_int ran;
	pthread_t runner;
	bool on_loop_thread;
};

static void post_cb(void *ctx)
{
	struct post_ctx *p = ctx;
	if (!pthread_equal(pthread_self(), p->runner))
		p->on_loop_thread = false;
	atomic_fetch_add(&p->ran, 1);
}

static void *poster(void *arg)
{
	struct post_ctx *p = arg;
	for (int i = 0; i < 100; i++) {
		p->w[i] = (struct evloop_work){ .fn = post_cb, .ctx = p };
		evloop_post(p->l, &p->w[i]);
	}
	return NULL;
}

static void post_from_another_thread(void **state)
{
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	struct post_ctx p = { .l = &l, .runner = pthread_self(), .on_loop_thread = true };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, poster, &p), 0);
	/* Each post wakes a loop that would otherwise sleep for 10 s. */
	uint64_t t0 = evloop_now_ns();
	while (atomic_load(&p.ran) < 100)
		assert_true(evloop_run_once(&l, 10000) >= 0);
	pthread_join(t, NULL);
	assert_true(evloop_now_ns() - t0 < 5000000000ull);
	assert_true(p.on_loop_thread);
	evloop_close(&l);
}

struct call_ctx {
	struct event_loop *l;
	pthread_t ran_on;
	int value;
};

static void call_fn(void *ctx)
{
	struct call_ctx *c = ctx;
	c->ran_on = pthread_self();
	c->value++;
}

static void *caller(void *arg)
{
	struct call_ctx *c = arg;
	evloop_call(c->l, call_fn, c);
	/* evloop_call returned: the work has run. */
	return (void *)(intptr_t)c->value;
}

static void call_runs_on_the_iothread(void **state)
{
	struct iothread io = { 0 };
	assert_int_equal(iothread_start(&io, "test-io"), 0);
	struct call_ctx c = { .l = &io.loop };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, caller, &c), 0);
	void *ret;
	pthread_join(t, &ret);
	assert_int_equal((intptr_t)ret, 1);
	assert_true(pthread_equal(c.ran_on, io.thread));
	/* From this thread too. */
	evloop_call(&io.loop, call_fn, &c);
	assert_int_equal(c.value, 2);
	iothread_stop(&io);
	iothread_stop(&io);   /* idempotent */

	/* On the owner itself it runs inline. */
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	struct call_ctx c2 = { .l = &l };
	evloop_call(&l, call_fn, &c2);
	assert_int_equal(c2.value, 1);
	assert_true(pthread_equal(c2.ran_on, pthread_self()));
	evloop_close(&l);
}

static void *stopper(void *arg)
{
	usleep(20000);
	evloop_stop(arg);
	return NULL;
}

static void stop_from_another_thread(void **state)
{
	struct event_loop l;
	assert_int_equal(evloop_init(&l), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, stopper, &l), 0);
	assert_int_equal(evloop_run(&l), 0);
	pthread_join(t, NULL);
	evloop_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fd_source_and_mod),
		cmocka_unit_test(timers_in_deadline_order),
		cmocka_unit_test(hooks_poll_with_epoll),
		cmocka_unit_test(post_from_another_thread),
		cmocka_unit_test(call_runs_on_the_iothread),
		cmocka_unit_test(stop_from_another_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
