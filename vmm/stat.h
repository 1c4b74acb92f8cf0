/* Counters with one writer (a vCPU's thread, a queue's I/O thread) and
 * readers on any thread (the control socket, --trace-exits): a relaxed load
 * and store is enough and costs a plain add, where a locked increment would
 * sit on every exit and every request. Fields are plain integers; STAT_GET
 * reads one (exact to within the updates in flight). */
#ifndef KVMINI_STAT_H
#define KVMINI_STAT_H

#define STAT_ADD(field, v) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define STAT_INC(field) STAT_ADD(field, 1)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

#endif
