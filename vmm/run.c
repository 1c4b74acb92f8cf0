/* `kvmini run`: parse, load, boot, wait, and decide how the process ends.
 * A guest reboot tears the guest down (struct vm) and builds it again from
 * the same configuration, so every boot starts from the same clean state;
 * the process-level pieces (struct vmm: event loop, console, disk images,
 * network backends) stay. */
#include "vmm/run.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "boot/loader.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/rtc.h"
#include "devices/uart.h"
#include "vmm/cli.h"
#include "vmm/settings.h"
#include "vmm/console.h"
#include "vmm/eventloop.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/trace.h"
#include "vmm/vcpu.h"
#include "vmm/vmm.h"
#include "vmm/control.h"
#include "net/backend.h"
#include "net/slirp.h"
#include "net/tap.h"
#include "virtio/blk.h"
#include "virtio/net.h"

static void uart_set_irq(void *ctx, int level)
{
	struct vmm *m = ctx;
	vm_irq_line(&m->vm, IRQ_COM1, level);
}

static size_t uart_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct vmm *m = ctx;
	return console_write(m->console, buf, len);
}

/* Called under the UART's lock on a vCPU thread: only post. */
static void uart_rx_ready(void *ctx)
{
	struct vmm *m = ctx;
	if (!atomic_exchange(&m->rx_ready_posted, true))
		evloop_post(&m->loop, &m->rx_ready_work);
}

static const struct uart_ops com1_ops = {
	.set_irq = uart_set_irq, .output = uart_output, .rx_ready = uart_rx_ready,
};

static int add_devices(struct vmm *m)
{
	struct vm *vm = &m->vm;
	vm->uart = uart_new(&com1_ops, m);
	vm->rtc = rtc_new();
	if (!vm->uart || !vm->rtc)
		return -ENOMEM;
	int r = bus_register(&vm->pio, PORT_COM1, UART_NR_PORTS, uart_io, vm->uart, "serial");
	if (!r)
		r = bus_register(&vm->pio, PORT_CMOS, RTC_NR_PORTS, rtc_io, vm->rtc, "rtc");
	if (!r)
		r = i8042_register(vm);
	if (!r)
		r = acpi_pm_register(vm);
	if (!r)
		r = acpi_ged_register(vm);
	if (!r && vm->cfg->debug_exit)
		r = debug_exit_register(vm);
	if (!r) {
		vm->pci = calloc(1, sizeof(*vm->pci));
		r = vm->pci ? pci_bus_init(vm->pci, vm) : -ENOMEM;
	}
	if (r) {
		log_err("device set-up failed: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* Disks come after the platform devices: their PCI slots follow the order
 * on the command line, so the first --disk is /dev/vda. By default one queue
 * (and one I/O thread) per vCPU, as Linux's blk-mq then maps each CPU to its
 * own; past DISK_MAX_QUEUES vCPUs share queues. Each serves the image
 * opened for it when the process started. */
static int add_disks(struct vmm *m)
{
	struct vm *vm = &m->vm;
	for (unsigned i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &vm->cfg->disks[i];
		unsigned queues = d->queues ? d->queues : vm->ncpus;
		if (queues > DISK_MAX_QUEUES)
			queues = DISK_MAX_QUEUES;
		int r = virtio_blk_create(&vm->disks[i], vm, d, m->disks[i], queues);
		if (r) {
			log_err("virtio-blk for %s: %s", d->block.path, strerror(-r));
			return r;
		}
		vm->ndisks++;
	}
	return 0;
}

/* Images are opened once, before the VM exists, and stay open until the
 * process exits: their locks are held across guest reboots (another host
 * cannot slip in between two boots), and an image that is in use or bad is
 * reported before any guest memory or KVM state is set up. */
static int open_disks(struct vmm *m, bool *input_error)
{
	for (unsigned i = 0; i < m->cfg->ndisks; i++) {
		int r = block_open(&m->disks[i], &m->cfg->disks[i].block);
		if (r) {
			/* Problems opening the image are the user's (a bad or
			 * unsupported image, a backing loop); an image another
			 * process is using (-EBUSY) is not: exit 1, as QEMU. */
			*input_error = r == -ENOENT || r == -EISDIR || r == -EINVAL || r == -EACCES ||
				       r == -ENOTSUP || r == -EROFS || r == -EPERM || r == -ELOOP ||
				       r == -EFBIG || r == -ENAMETOOLONG;
			return r;
		}
		m->ndisks++;
	}
	return 0;
}

/* After the last boot: every device (and so every I/O thread) is gone, so
 * nothing is in flight; block_close writes the caches back. */
static void close_disks(struct vmm *m)
{
	for (unsigned i = 0; i < m->ndisks; i++)
		block_close(m->disks[i]);
	m->ndisks = 0;
}

/* NICs come after the disks (eth0 is the first --net). Each attaches to
 * the backend opened for it when the process started. */
static int add_nics(struct vmm *m)
{
	struct vm *vm = &m->vm;
	for (unsigned i = 0; i < m->nnets; i++) {
		int r = virtio_net_create(&vm->nics[i], vm, &m->cfg->nics[i], m->nets[i], i);
		if (r)
			return r;
		vm->nnics++;
	}
	return 0;
}

/* Backends live as long as the process, so a TAP stays on its bridge and
 * slirp's port forwards keep listening across guest reboots. */
static int open_backends(struct vmm *m, bool *input_error)
{
	for (unsigned i = 0; i < m->cfg->nnics; i++) {
		const struct net_config *n = &m->cfg->nics[i];
		int r = n->kind == NET_TAP ? tap_backend_open(&m->nets[i], n)
					   : slirp_backend_open(&m->nets[i], n, &m->loop);
		if (r) {
			*input_error = n->kind == NET_TAP ? tap_error_is_usage(r)
							  : r != -ENOMEM;
			return r;
		}
		/* iothread=main: the device serves the TAP from the main loop. */
		if (n->kind == NET_TAP && n->main_loop)
			m->nets[i]->loop = &m->loop;
		m->nnets++;
	}
	return 0;
}

static void close_backends(struct vmm *m)
{
	for (unsigned i = 0; i < m->nnets; i++)
		m->nets[i]->ops->close(m->nets[i]);
	m->nnets = 0;
}

static void remove_devices(struct vm *vm)
{
	/* Device I/O threads stop first: they touch guest memory until then. */
	for (unsigned i = 0; i < vm->nnics; i++)
		virtio_net_free(vm->nics[i]);
	vm->nnics = 0;
	for (unsigned i = 0; i < vm->ndisks; i++)
		virtio_blk_free(vm->disks[i]);
	vm->ndisks = 0;
	if (vm->pci) {
		pci_bus_free(vm->pci);
		free(vm->pci);
		vm->pci = NULL;
	}
	if (vm->uart)
		uart_free(vm->uart);
	if (vm->rtc)
		rtc_free(vm->rtc);
	vm->uart = NULL;
	vm->rtc = NULL;
}

static void on_stop(void *ctx, uint32_t events)
{
	struct vmm *m = ctx;
	uint64_t v;
	if (read(m->vm.stop_fd, &v, sizeof(v)) < 0) {
		/* Nothing pending: spurious wake-up. */
	}
}

static void on_signal(void *ctx, uint32_t events)
{
	struct vmm *m = ctx;
	struct signalfd_siginfo si;
	if (read(m->signal_src.fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: stopping the guest", si.ssi_signo);
		if (m->vm.uart)
			vm_request_stop(&m->vm, VM_STOP_USER);
	}
}

/* Hands held-back input to the UART; true when all of it went. */
static bool push_input(struct vmm *m)
{
	if (!m->vm.uart)
		return false;
	while (m->pending_off < m->npending) {
		size_t n = uart_receive(m->vm.uart, m->pending + m->pending_off,
					m->npending - m->pending_off);
		if (n == 0)
			return false;   /* the UART calls rx_ready when it drains */
		m->pending_off += n;
	}
	m->npending = m->pending_off = 0;
	return true;
}

/* Input is read only while there is nowhere to keep it: with bytes held
 * back, stdin is not polled (back-pressure to the terminal) until the
 * guest drains its FIFO. */
static void watch_input(struct vmm *m, bool on)
{
	if (m->input_eof || m->input_src.fd < 0 || m->input_src.added == on)
		return;
	if (on) {
		/* epoll refuses regular files (stdin redirected from one): such
		 * input is simply not forwarded. */
		if (evloop_add(&m->loop, &m->input_src, EPOLLIN))
			m->input_eof = true;
	} else {
		evloop_del(&m->loop, &m->input_src);
	}
}

static void on_rx_ready(void *ctx)
{
	struct vmm *m = ctx;
	atomic_store(&m->rx_ready_posted, false);
	if (push_input(m))
		watch_input(m, true);
}

static void on_input(void *ctx, uint32_t events)
{
	struct vmm *m = ctx;
	bool quit = false, eof = false;
	ssize_t n = console_read(m->console, m->pending, sizeof(m->pending), &quit, &eof);
	if (quit) {
		if (m->vm.uart)
			vm_request_stop(&m->vm, VM_STOP_USER);
		return;
	}
	if (eof || n < 0) {
		watch_input(m, false);
		m->input_eof = true;
		return;
	}
	m->npending = (size_t)n;
	m->pending_off = 0;
	if (!push_input(m))
		watch_input(m, false);
}

/* The console has room again after refusing UART output. */
static void on_console_tx_ready(void *ctx)
{
	struct vmm *m = ctx;
	if (m->vm.uart)
		uart_tx_ready(m->vm.uart);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every vCPU has parked: now the devices stop touching guest memory, and
 * the pause is complete. A pause overtaken by a stop is dropped. */
/* Every device of the boot stops (or goes on) touching guest memory. */
static void pause_devices(struct vmm *m, bool pause)
{
	for (unsigned i = 0; i < m->vm.ndisks; i++)
		(pause ? virtio_blk_pause : virtio_blk_resume)(m->vm.disks[i]);
	for (unsigned i = 0; i < m->vm.nnics; i++)
		(pause ? virtio_net_pause : virtio_net_resume)(m->vm.nics[i]);
}

static void on_paused(void *ctx)
{
	struct vmm *m = ctx;
	if (m->state != VMM_PAUSING)
		return;
	pause_devices(m, true);
	/* The vCPUs are parked: the clock the guest would read now is the one
	 * to go on from at resume. */
	struct kvm_clock_data clock = { 0 };
	m->clock_saved = ioctl(m->vm.vm_fd, KVM_GET_CLOCK, &clock) == 0;
	if (m->clock_saved)
		m->paused_clock = clock.clock;
	else
		log_debug("KVM_GET_CLOCK: %s (the guest's clock will count the pause)",
			  strerror(errno));
	m->state = VMM_PAUSED;
	log_info("guest paused");
	if (m->control)
		control_paused(m->control);
}

void vmm_resume(struct vmm *m)
{
	if (m->state != VMM_PAUSED)
		return;
	/* Devices first, so that a vCPU's first kick finds them serving. */
	pause_devices(m, false);
	if (m->clock_saved) {
		struct kvm_clock_data clock = { .clock = m->paused_clock };
		if (ioctl(m->vm.vm_fd, KVM_SET_CLOCK, &clock) < 0)
			log_warn("KVM_SET_CLOCK: %s: the guest's clock jumps over the pause",
				 strerror(errno));
		m->clock_saved = false;
	}
	vcpus_resume(&m->vm);
	m->state = VMM_RUNNING;
	log_info("guest resumed");
}

/* Runs the event loop until a stop is requested. */
static void wait_for_stop(struct vmm *m)
{
	while (vm_stop_reason(&m->vm) == VM_RUNNING) {
		int r = evloop_run_once(&m->loop, -1);
		if (r < 0) {
			log_err("event loop: %s", strerror(-r));
			vm_request_stop(&m->vm, VM_STOP_ERROR);
		}
	}
}

/* One boot of the guest, from a fresh VM to its stop. Returns the stop
 * reason, or a negative errno with *input_error set when the user's
 * configuration was at fault. */
static int boot_once(struct vmm *m, const struct boot_image *img, bool *input_error)
{
	struct vm *vm = &m->vm;
	const struct vm_config *cfg = m->cfg;
	int r = vm_create(vm, cfg);
	if (r) {
		*input_error = r == -ERANGE;
		goto out;
	}
	vm->console = m->console;
	if ((r = add_devices(m)) || (r = add_disks(m)) || (r = add_nics(m)))
		goto out;
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		if ((r = vcpu_init(vm, &vm->vcpus[i], (int)i)))
			goto out;
	struct boot_entry entry;
	if ((r = boot_load(vm, img, &entry))) {
		*input_error = true;
		goto out;
	}
	if ((r = vcpu_set_boot_state(&vm->vcpus[0], &entry)))
		goto out;

	m->stop_src = (struct event_source){ .fd = vm->stop_fd, .fn = on_stop, .ctx = m };
	if ((r = evloop_add(&m->loop, &m->stop_src, EPOLLIN)))
		goto out;
	/* Input held back at the end of the last boot is for that boot. */
	m->npending = m->pending_off = 0;
	watch_input(m, true);

	double t0 = now_seconds();
	for (unsigned i = 0; i < vm->ncpus && !r; i++)
		r = vcpu_start(&vm->vcpus[i]);
	if (r)
		vm_request_stop(vm, VM_STOP_ERROR);
	m->boots++;
	m->state = VMM_RUNNING;
	wait_for_stop(m);
	/* A paused guest stops too: its devices serve again so that the
	 * teardown finds them as it always does. */
	vmm_resume(m);
	if (m->state == VMM_PAUSING && m->control)
		control_pause_failed(m->control, "the guest stopped or rebooted before it paused");
	m->state = VMM_BOOTING;
	vcpus_stop_and_join(vm, &m->loop);
	evloop_run_once(&m->loop, 0);   /* a pause completion posted meanwhile */
	uart_flush(vm->uart);
	if (cfg->trace_exits) {
		trace_print_exits(stderr, vm, now_seconds() - t0);
		if (vm->pci)
			pci_print_devices(stderr, vm->pci);
		for (unsigned i = 0; i < vm->ndisks; i++)
			virtio_blk_print_stats(stderr, vm->disks[i]);
		for (unsigned i = 0; i < vm->nnics; i++)
			virtio_net_print_stats(stderr, vm->nics[i]);
		for (unsigned i = 0; i < m->nnets; i++)
			slirp_backend_print_stats(stderr, m->nets[i]);
		uint64_t overruns = uart_tx_overruns(vm->uart);
		fprintf(stderr, "console: %llu bytes of output dropped, %zu waiting, %llu UART overruns\n",
			(unsigned long long)console_dropped(m->console), console_pending(m->console),
			(unsigned long long)overruns);
	}
	r = vm_stop_reason(vm);
out:
	evloop_del(&m->loop, &m->stop_src);
	/* A failed start may leave vCPU threads running: stop them first. */
	if (vm->vcpus)
		vcpus_stop_and_join(vm, &m->loop);
	remove_devices(vm);
	if (vm->vcpus)
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm_destroy(vm);
	return r;
}

static int run_config(const struct vm_config *cfg);

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	int r = cli_parse_run(argc, argv, &cfg);
	if (r == 1)
		return EXIT_GUEST_OK;
	if (r)
		return EXIT_USAGE;
	if (cfg.verbose)
		log_set_level(cfg.verbose > 1 ? LOG_DEBUG : LOG_INFO);
	int status = run_config(&cfg);
	vm_config_free(&cfg);
	return status;
}

/* Everything after parsing; cfg stays the caller's. */
static int run_config(const struct vm_config *cfg)
{
	int r;

	/* Input is checked before anything is set up: kernel, initrd and
	 * memory size, then (below) the disk images, then the network
	 * backends; /dev/kvm and guest RAM come last, with the first boot. */
	struct boot_image img;
	if (boot_image_open(&img, cfg))
		return EXIT_USAGE;
	if (boot_check_memory(&img, cfg->mem_size)) {
		boot_image_close(&img);
		return EXIT_USAGE;
	}

	/* SIGINT/SIGTERM/SIGHUP arrive through a signalfd in the event loop;
	 * blocking them here makes every vCPU thread inherit the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR1);
	int signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd < 0 || vcpu_signals_init()) {
		log_err("signal set-up failed: %s", strerror(errno));
		boot_image_close(&img);
		return EXIT_FAILURE_VM;
	}
	signal(SIGPIPE, SIG_IGN);

	struct vmm *m = calloc(1, sizeof(*m));
	if (!m || evloop_init(&m->loop)) {
		log_err("cannot set up the event loop");
		free(m);
		close(signal_fd);
		boot_image_close(&img);
		return EXIT_FAILURE_VM;
	}
	m->cfg = cfg;
	m->rx_ready_work = (struct evloop_work){ .fn = on_rx_ready, .ctx = m };
	m->paused_work = (struct evloop_work){ .fn = on_paused, .ctx = m };
	m->started_at = now_seconds();
	m->vm.stop_fd = -1;
	r = console_open(&m->console, cfg->console, cfg->console_path);
	if (r) {
		log_err("--console: cannot open %s: %s",
			cfg->console_path ? cfg->console_path : "the terminal", strerror(-r));
		evloop_close(&m->loop);
		free(m);
		close(signal_fd);
		boot_image_close(&img);
		return EXIT_USAGE;
	}
	console_attach(m->console, &m->loop, on_console_tx_ready, m);
	m->signal_src = (struct event_source){ .fd = signal_fd, .fn = on_signal, .ctx = m };
	m->input_src = (struct event_source){ .fd = console_input_fd(m->console),
					      .fn = on_input, .ctx = m };
	evloop_add(&m->loop, &m->signal_src, EPOLLIN);

	int status = EXIT_FAILURE_VM;
	bool backend_input_error = false;
	if (open_disks(m, &backend_input_error) || open_backends(m, &backend_input_error)) {
		status = backend_input_error ? EXIT_USAGE : EXIT_FAILURE_VM;
		goto done;
	}
	if (cfg->api_socket && (r = control_open(&m->control, m, cfg->api_socket))) {
		status = r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE_VM;
		goto done;
	}
	for (unsigned boots = 1;; boots++) {
		bool input_error = false;
		r = boot_once(m, &img, &input_error);
		if (r < 0) {
			status = input_error ? EXIT_USAGE : EXIT_FAILURE_VM;
			break;
		}
		if (r == VM_STOP_REBOOT && !cfg->no_reboot) {
			log_info("guest rebooted: starting boot %u", boots + 1);
			continue;
		}
		switch (r) {
		case VM_STOP_POWEROFF:
		case VM_STOP_REBOOT:
		case VM_STOP_USER:
			status = EXIT_GUEST_OK;
			break;
		case VM_STOP_DEBUG_EXIT:
			status = m->vm.debug_exit_status;
			break;
		default:
			status = EXIT_FAILURE_VM;
			break;
		}
		break;
	}
done:
	evloop_timer_cancel(&m->loop, &m->shutdown_timer);
	control_close(m->control);
	close_backends(m);
	close_disks(m);
	evloop_del(&m->loop, &m->input_src);
	evloop_del(&m->loop, &m->signal_src);
	/* Posted work may still name the console: run it before closing. */
	evloop_run_once(&m->loop, 0);
	console_close(m->console);
	evloop_close(&m->loop);
	close(signal_fd);
	free(m);
	boot_image_close(&img);
	return status;
}
