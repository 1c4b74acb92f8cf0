/* Ring-3 entry of the micro-guest: installs the exception gates, reads the
 * PVH start info and the command line, runs the test named by test=NAME
 * (default basic) and reports PASS through the debug exit port. */
#include "guest.h"

void guest_main(const struct hvm_start_info *si) __attribute__((noreturn, used));
void exception_report(const uint64_t *frame) __attribute__((noreturn, used));

extern const struct guest_test __tests_start[], __tests_end[];
extern const uint64_t isr_table[32];
extern uint8_t idt[256 * 16];
extern const char cpu_park_hlt[];

static void idt_set(unsigned vec, uint64_t handler)
{
	uint8_t *g = idt + vec * 16;
	uint16_t lo = (uint16_t)handler, mid = (uint16_t)(handler >> 16);
	uint32_t hi = (uint32_t)(handler >> 32), zero = 0;
	uint16_t sel = SEL_KCODE;
	memcpy(g + 0, &lo, 2);
	memcpy(g + 2, &sel, 2);
	g[4] = 0;                                     /* IST: none */
	g[5] = 0x8e;                                  /* present, DPL 0, 64-bit interrupt gate */
	memcpy(g + 6, &mid, 2);
	memcpy(g + 8, &hi, 4);
	memcpy(g + 12, &zero, 4);
}

/* The IDT lives in ordinary (user-accessible) memory, so ring 3 fills it:
 * ring 0 only ran `lidt`. */
static void idt_setup(void)
{
	for (unsigned v = 0; v < 32; v++)
		idt_set(v, isr_table[v]);
}

static const struct guest_test *test_find(const char *name)
{
	for (const struct guest_test *t = __tests_start; t < __tests_end; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

void guest_main(const struct hvm_start_info *si)
{
	idt_setup();
	__atomic_add_fetch(&cpus_up, 1, __ATOMIC_SEQ_CST);
	say("hello");
	CHECK(si && si->magic == HVM_START_MAGIC, "hvm_start_info magic at %p", (const void *)si);
	start_info = si;
	if (si->cmdline_paddr)
		cmdline = (const char *)si->cmdline_paddr;

	char name[32];
	if (!cmdline_get("test", name, sizeof(name)))
		memcpy(name, "basic", 6);
	if (strcmp(name, "list") == 0) {
		for (const struct guest_test *t = __tests_start; t < __tests_end; t++)
			say("test=%s: %s", t->name, t->help);
		say("PASS");
		guest_exit(0);
	}
	const struct guest_test *t = test_find(name);
	CHECK(t, "unknown test=%s (test=list shows them)", name);
	say("test=%s", t->name);
	t->run();
	say("PASS");
	/* reboot=1: reset through the i8042 instead of exiting, so the VMM
	 * boots the guest again (tests of what must survive a reboot). */
	if (cmdline_get_u64("reboot", 0)) {
		say("rebooting");
		outb(0x64, 0xfe);
		for (;;)
			cpu_relax();
	}
	guest_exit(0);
}

/* Runs in ring 0 on the CPU's RSP0 stack (entry.S isr_common). */
void exception_report(const uint64_t *f)
{
	if (f[0] == 13 && f[2] == (uint64_t)cpu_park_hlt)
		for (;;)              /* cpu_park(): halt here, in ring 0 */
			__asm__ volatile("hlt");
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	console_lock();
	put_fmt("microguest: FAIL exception %lu error=%lx rip=%lx cs=%lx rflags=%lx rsp=%lx cr2=%lx\n",
		f[0], f[1], f[2], f[3], f[4], f[5], cr2);
	outl(PORT_DEBUG_EXIT, 1);
	for (;;)
		__asm__ volatile("hlt");
}
