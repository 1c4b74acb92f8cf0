#include "vmm/eventloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int evloop_init(struct event_loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void evloop_close(struct event_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int evloop_add(struct event_loop *l, struct event_source *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		return -errno;
	s->added = 1;
	return 0;
}

int evloop_del(struct event_loop *l, struct event_source *s)
{
	if (!s->added)
		return 0;
	s->added = 0;
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL) < 0 ? -errno : 0;
}

int evloop_run_once(struct event_loop *l, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(l->epfd, evs, 16, timeout_ms);
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
