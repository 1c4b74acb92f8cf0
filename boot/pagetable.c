/* The CPU state the VMM builds before the first instruction: a GDT, identity
 * page tables for the 64-bit Linux entry, and the matching segment and
 * control registers. */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "boot/bootparams.h"
#include "boot/loader.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

/* GDT selectors the Linux boot protocol expects: __BOOT_CS = 0x10,
 * __BOOT_DS = 0x18. 0x20 holds a TSS because VMX refuses to enter a
 * protected-mode guest whose TR is unusable. */
#define SEL_CODE 0x10
#define SEL_DATA 0x18
#define SEL_TSS  0x20

/* Descriptor flags word: G, D/B, L, AVL in the high nibble, then P, DPL,
 * S and type. */
#define GDT_CODE64 0xa09b
#define GDT_CODE32 0xc09b
#define GDT_DATA   0xc093
#define GDT_TSS    0x808b

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
	       (uint64_t)(limit & 0x0000ffff);
}

static struct kvm_segment segment_of(uint64_t desc, uint16_t selector)
{
	struct kvm_segment s = {
		.base = (uint32_t)(((desc >> 16) & 0xffffff) | ((desc >> 32) & 0xff000000)),
		.limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000)),
		.selector = selector,
		.type = (desc >> 40) & 0xf,
		.present = (desc >> 47) & 1,
		.dpl = (desc >> 45) & 3,
		.db = (desc >> 54) & 1,
		.s = (desc >> 44) & 1,
		.l = (desc >> 53) & 1,
		.g = (desc >> 55) & 1,
		.avl = (desc >> 52) & 1,
	};
	if (s.g) /* the limit is in 4 KiB units */
		s.limit = (s.limit << 12) | 0xfff;
	s.unusable = !s.present;
	return s;
}

static void gdt_of(enum boot_mode mode, uint64_t gdt[5])
{
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = gdt_entry(mode == BOOT_LINUX_64 ? GDT_CODE64 : GDT_CODE32, 0, 0xfffff);
	gdt[3] = gdt_entry(GDT_DATA, 0, 0xfffff);
	gdt[4] = gdt_entry(GDT_TSS, 0, 0xfffff);
}

int boot_write_gdt(struct vm *vm, enum boot_mode mode)
{
	uint64_t gdt[5];
	gdt_of(mode, gdt);
	void *p = gpa_ptr(vm, LAYOUT_GDT, sizeof(gdt));
	void *idt = gpa_ptr(vm, LAYOUT_IDT, 8);
	if (!p || !idt)
		return -EFAULT;
	memcpy(p, gdt, sizeof(gdt));
	memset(idt, 0, 8);
	return 0;
}

int boot_write_page_tables(struct vm *vm)
{
	/* PML4[0] -> PDPT; PDPT[0..3] -> four PDs; each PD maps 1 GiB in 2 MiB
	 * pages. 4 GiB covers the kernel, initrd, boot data and the MMIO hole. */
	uint8_t *pml4 = gpa_ptr(vm, LAYOUT_PML4, 4096);
	uint8_t *pdpt = gpa_ptr(vm, LAYOUT_PDPT, 4096);
	uint8_t *pd = gpa_ptr(vm, LAYOUT_PD, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	wr64(pml4, LAYOUT_PDPT | 0x3); /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		wr64(pdpt + i * 8, (LAYOUT_PD + i * 4096) | 0x3);
	for (uint64_t i = 0; i < 4 * 512; i++)
		wr64(pd + i * 8, (i << 21) | 0x83); /* present, writable, 2 MiB page */
	return 0;
}

void boot_sregs(struct kvm_sregs *sregs, enum boot_mode mode)
{
	uint64_t gdt[5];
	gdt_of(mode, gdt);
	struct kvm_segment code = segment_of(gdt[2], SEL_CODE);
	struct kvm_segment data = segment_of(gdt[3], SEL_DATA);
	sregs->cs = code;
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = segment_of(gdt[4], SEL_TSS);
	sregs->ldt = (struct kvm_segment){ .type = 2, .present = 1, .unusable = 1 };
	sregs->gdt.base = LAYOUT_GDT;
	sregs->gdt.limit = sizeof(gdt) - 1;
	sregs->idt.base = LAYOUT_IDT;
	sregs->idt.limit = 7;
	const uint64_t CR0_PE = 1, CR0_ET = 1 << 4, CR0_PG = 1ULL << 31, CR4_PAE = 1 << 5;
	const uint64_t EFER_LME = 1 << 8, EFER_LMA = 1 << 10;
	if (mode == BOOT_LINUX_64) {
		sregs->cr0 = CR0_PE | CR0_ET | CR0_PG;
		sregs->cr3 = LAYOUT_PML4;
		sregs->cr4 = CR4_PAE;
		sregs->efer = EFER_LME | EFER_LMA;
	} else {
		/* PVH: flat 32-bit protected mode, paging off. */
		sregs->cr0 = CR0_PE | CR0_ET;
		sregs->cr3 = 0;
		sregs->cr4 = 0;
		sregs->efer = 0;
	}
}
