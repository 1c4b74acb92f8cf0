/* `kvmini run`: parse, load, boot, wait, and decide how the process ends.
 * A guest reboot tears the whole VM down and builds it again from the same
 * configuration, so every boot starts from the same clean state. */
#include "vmm/run.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "boot/loader.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/rtc.h"
#include "devices/uart.h"
#include "vmm/cli.h"
#include "vmm/console.h"
#include "vmm/eventloop.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/trace.h"
#include "vmm/vcpu.h"
#include "virtio/blk.h"

/* State of one boot that the event-loop callbacks need. */
struct session {
	struct vm vm;
	struct console *console;
	struct event_loop loop;
	struct event_source stop_src, signal_src, input_src;
	uint8_t pending[64];   /* console input the UART could not take yet */
	size_t npending, pending_off;
	bool input_eof;
};

static void uart_set_irq(void *ctx, int level)
{
	struct vm *vm = ctx;
	vm_irq_line(vm, IRQ_COM1, level);
}

static void uart_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct vm *vm = ctx;
	console_write(vm->console, buf, len);
}

static const struct uart_ops com1_ops = { .set_irq = uart_set_irq, .output = uart_output };

static int add_devices(struct vm *vm)
{
	vm->uart = uart_new(&com1_ops, vm);
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
 * own; past DISK_MAX_QUEUES vCPUs share queues. */
static int add_disks(struct vm *vm, bool *input_error)
{
	for (unsigned i = 0; i < vm->cfg->ndisks; i++) {
		const struct disk_config *d = &vm->cfg->disks[i];
		unsigned queues = d->queues ? d->queues : vm->ncpus;
		if (queues > DISK_MAX_QUEUES)
			queues = DISK_MAX_QUEUES;
		int r = virtio_blk_create(&vm->disks[i], vm, d, queues);
		if (r) {
			/* Problems opening the image are the user's (a bad or
			 * unsupported image, a backing loop); the rest (PCI
			 * slots, KVM) are ours, and so is an image another
			 * process is using (-EBUSY: exit 1, as QEMU). */
			*input_error = r == -ENOENT || r == -EISDIR || r == -EINVAL || r == -EACCES ||
				       r == -ENOTSUP || r == -EROFS || r == -EPERM || r == -ELOOP ||
				       r == -EFBIG || r == -ENAMETOOLONG;
			return r;
		}
		vm->ndisks++;
	}
	return 0;
}

static void remove_devices(struct vm *vm)
{
	/* Disk I/O threads stop first: they touch guest memory until then. */
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
	struct session *s = ctx;
	uint64_t v;
	if (read(s->vm.stop_fd, &v, sizeof(v)) < 0) {
		/* Nothing pending: spurious wake-up. */
	}
}

static void on_signal(void *ctx, uint32_t events)
{
	struct session *s = ctx;
	struct signalfd_siginfo si;
	if (read(s->signal_src.fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: stopping the guest", si.ssi_signo);
		vm_request_stop(&s->vm, VM_STOP_USER);
	}
}

static void push_input(struct session *s)
{
	while (s->pending_off < s->npending && uart_rx_room(s->vm.uart)) {
		size_t n = uart_receive(s->vm.uart, s->pending + s->pending_off,
					s->npending - s->pending_off);
		if (n == 0)
			break;
		s->pending_off += n;
	}
	if (s->pending_off == s->npending)
		s->npending = s->pending_off = 0;
}

static void on_input(void *ctx, uint32_t events)
{
	struct session *s = ctx;
	if (s->npending) {
		/* The guest has not drained what we have; stop polling the fd
		 * until it does (the main loop retries on a short timeout). */
		evloop_del(&s->loop, &s->input_src);
		return;
	}
	bool quit = false, eof = false;
	ssize_t n = console_read(s->console, s->pending, sizeof(s->pending), &quit, &eof);
	if (quit) {
		vm_request_stop(&s->vm, VM_STOP_USER);
		return;
	}
	if (eof || n < 0) {
		s->input_eof = true;
		evloop_del(&s->loop, &s->input_src);
		return;
	}
	s->npending = (size_t)n;
	s->pending_off = 0;
	push_input(s);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the event loop until a stop is requested. */
static void wait_for_stop(struct session *s)
{
	while (vm_stop_reason(&s->vm) == VM_RUNNING) {
		int timeout = -1;
		if (s->npending) {
			push_input(s);
			timeout = 10;
		} else if (!s->input_src.added && !s->input_eof && s->input_src.fd >= 0) {
			/* epoll refuses regular files (stdin redirected from one):
			 * such input is simply not forwarded. */
			if (evloop_add(&s->loop, &s->input_src, EPOLLIN))
				s->input_eof = true;
		}
		int r = evloop_run_once(&s->loop, timeout);
		if (r < 0) {
			log_err("event loop: %s", strerror(-r));
			vm_request_stop(&s->vm, VM_STOP_ERROR);
		}
	}
}

/* One boot of the guest, from a fresh VM to its stop. Returns the stop
 * reason, or a negative errno with *input_error set when the user's
 * configuration was at fault. */
static int boot_once(struct session *s, const struct vm_config *cfg, const struct boot_image *img,
		     int signal_fd, bool *input_error)
{
	struct vm *vm = &s->vm;
	int r = vm_create(vm, cfg);
	if (r) {
		*input_error = r == -ERANGE;
		goto out;
	}
	vm->console = s->console;
	if ((r = add_devices(vm)) || (r = add_disks(vm, input_error)))
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

	if ((r = evloop_init(&s->loop)))
		goto out;
	s->stop_src = (struct event_source){ .fd = vm->stop_fd, .fn = on_stop, .ctx = s };
	s->signal_src = (struct event_source){ .fd = signal_fd, .fn = on_signal, .ctx = s };
	s->input_src = (struct event_source){ .fd = console_input_fd(s->console), .fn = on_input,
					      .ctx = s };
	evloop_add(&s->loop, &s->stop_src, EPOLLIN);
	evloop_add(&s->loop, &s->signal_src, EPOLLIN);

	double t0 = now_seconds();
	for (unsigned i = 0; i < vm->ncpus && !r; i++)
		r = vcpu_start(&vm->vcpus[i]);
	if (r)
		vm_request_stop(vm, VM_STOP_ERROR);
	wait_for_stop(s);
	vcpus_stop_and_join(vm);
	uart_flush(vm->uart);
	if (cfg->trace_exits) {
		trace_print_exits(stderr, vm, now_seconds() - t0);
		if (vm->pci)
			pci_print_devices(stderr, vm->pci);
		for (unsigned i = 0; i < vm->ndisks; i++)
			virtio_blk_print_stats(stderr, vm->disks[i]);
	}
	r = vm_stop_reason(vm);
out:
	evloop_close(&s->loop);
	/* A failed start may leave vCPU threads running: stop them first. */
	if (vm->vcpus)
		vcpus_stop_and_join(vm);
	remove_devices(vm);
	if (vm->vcpus)
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm_destroy(vm);
	return r;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	int r = cli_parse_run(argc, argv, &cfg);
	if (r == 1)
		return EXIT_GUEST_OK;
	if (r)
		return EXIT_USAGE;

	struct boot_image img;
	if (boot_image_open(&img, &cfg))
		return EXIT_USAGE;

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

	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return EXIT_FAILURE_VM;
	s->loop.epfd = -1;
	r = console_open(&s->console, cfg.console, cfg.console_path);
	if (r) {
		log_err("--console: cannot open %s: %s",
			cfg.console_path ? cfg.console_path : "the terminal", strerror(-r));
		free(s);
		boot_image_close(&img);
		return EXIT_USAGE;
	}

	int status = EXIT_FAILURE_VM;
	for (unsigned boots = 1;; boots++) {
		bool input_error = false;
		r = boot_once(s, &cfg, &img, signal_fd, &input_error);
		if (r < 0) {
			status = input_error ? EXIT_USAGE : EXIT_FAILURE_VM;
			break;
		}
		if (r == VM_STOP_REBOOT && !cfg.no_reboot) {
			log_info("guest rebooted: starting boot %u", boots + 1);
			s->npending = s->pending_off = 0;
			continue;
		}
		switch (r) {
		case VM_STOP_POWEROFF:
		case VM_STOP_REBOOT:
		case VM_STOP_USER:
			status = EXIT_GUEST_OK;
			break;
		case VM_STOP_DEBUG_EXIT:
			status = s->vm.debug_exit_status;
			break;
		default:
			status = EXIT_FAILURE_VM;
			break;
		}
		break;
	}
	console_close(s->console);
	close(signal_fd);
	free(s);
	boot_image_close(&img);
	return status;
}
