/* struct vmm: the kvmini process around one guest (vmm/run.c builds it,
 * vmm/control.c inspects and steers it). Private to vmm/. */
#ifndef KVMINI_VMM_H
#define KVMINI_VMM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"
#include "vmm/eventloop.h"
#include "vmm/vm.h"

struct console;
struct block;
struct net_backend;
struct control;

/* What the guest is doing, as the control socket reports it. */
enum vmm_state {
	VMM_BOOTING,    /* between boots (or before the first) */
	VMM_RUNNING,
	VMM_PAUSING,    /* vCPUs asked to park, not all have yet */
	VMM_PAUSED,     /* vCPUs parked, devices paused */
};

/* The VM process: what lives from start to exit, across guest reboots.
 * Only guest-visible state (struct vm: RAM, vCPUs, devices) is rebuilt per
 * boot; the event loop, the console, the signal handling, the disk images
 * and (with --net) the network backends stay, so an image stays locked and
 * a TAP or a slirp port forward survives a reboot. Owned by the main
 * thread, which runs the loop. */
struct vmm {
	const struct vm_config *cfg;
	struct event_loop loop;
	struct console *console;
	struct event_source stop_src, signal_src, input_src;
	struct block *disks[CONFIG_MAX_DISKS];      /* one per --disk, opened once */
	unsigned ndisks;
	struct net_backend *nets[CONFIG_MAX_NICS];  /* one per --net, opened once */
	unsigned nnets;
	struct vm vm;              /* the current boot; vm.uart is NULL between boots */
	uint8_t pending[64];       /* console input the UART could not take yet */
	size_t npending, pending_off;
	bool input_eof;
	/* The UART's rx_ready comes from a vCPU thread: it posts this. */
	struct evloop_work rx_ready_work;
	atomic_bool rx_ready_posted;
	/* Lifecycle, for the control socket (vmm/control.c) */
	struct control *control;   /* NULL without --api-socket */
	unsigned boots;
	double started_at;         /* CLOCK_MONOTONIC seconds */
	enum vmm_state state;
	struct evloop_work paused_work;   /* vcpus_pause's "all parked" */
	/* The guest's kvmclock when it paused, put back at resume (as QEMU
	 * does), so that the guest's clocks do not jump over the pause. */
	uint64_t paused_clock;
	bool clock_saved;
	/* After a `shutdown`: the hard stop if the guest is still up. */
	struct evloop_timer shutdown_timer;
	unsigned shutdown_timeout_s;
};

/* Runs a paused VM again: devices, the guest's clock, then the vCPUs (main
 * thread; nothing unless paused). The control socket's resume, and every
 * stop, so that teardown finds the devices serving. (vmm/run.c) */
void vmm_resume(struct vmm *m);

#endif
