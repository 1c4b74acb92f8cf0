/* The micro-guest's ring-0 part: the PVH entry note, the 32-bit entry, the
 * switch to long mode, the hand-over to ring 3, the exception stubs,
 * cpu_park() and the real-mode AP trampoline. Plus the static data ring 0
 * needs: page tables, GDT, boot TSS, IDT, stacks.
 *
 * Ring 0 is emulated instruction by instruction on this project's test
 * machines (about 1 us each), so the boot path is straight-line code of
 * about two dozen instructions and everything else happens in ring 3 (C,
 * main.c). Walkthrough: docs/microguest.md. */
#include "guest.h"

/* ---------------------------------------------------------------------- */
/* PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), desc =
 * 32-bit physical address of the entry point. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4                 /* namesz: "Xen\0" */
	.long 4                 /* descsz */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry
	.balign 4

/* Paging on, long mode on, far jump to 64-bit code at \target.
 * Needs a GDT with SEL_KCODE loaded. */
.macro ENTER_LONG_MODE target
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0x620, %eax               /* CR4.PAE | OSFXSR | OSXMMEXCPT: SSE for workloads.c */
	movl %eax, %cr4
	movl $0xc0000080, %ecx          /* IA32_EFER */
	xorl %edx, %edx
	movl $0x100, %eax               /* EFER.LME */
	wrmsr
	movl $0x80000033, %eax          /* CR0.PG | NE | ET | MP | PE (EM clear: SSE) */
	movl %eax, %cr0
	ljmp $SEL_KCODE, $\target
.endm

/* ---------------------------------------------------------------------- */
/* BSP entry. PVH state: 32-bit protected mode, paging off, flat CS/DS/ES/SS,
 * EBX = physical address of struct hvm_start_info, ESP undefined. */
	.section .text.entry, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	/* The guest's first instruction: its time stamp lets kvmini-bench
	 * tell the time to the first guest instruction (test=work startup). */
	rdtsc
	movl %eax, entry_tsc
	movl %edx, entry_tsc + 4
	lgdt gdt_ptr
	ENTER_LONG_MODE bsp64

	.code64
bsp64:
	movl $(kstack + KSTACK_SIZE), %esp
	movw $SEL_TSS0, %ax
	ltr %ax
	lidt idt_ptr
	movl %ebx, %edi                 /* guest_main(start_info) */
	pushq $SEL_UDATA                /* ss */
	pushq $(ustack + USTACK_SIZE - 8) /* rsp, as after a call */
	pushq $2                        /* rflags: IF=0, IOPL=0 */
	pushq $SEL_UCODE                /* cs */
	pushq $guest_main               /* rip */
	iretq

/* ---------------------------------------------------------------------- */
/* AP path. smp.c copies the trampoline to AP_TRAMPOLINE (below 1 MiB) and
 * fills ap_boot before it sends INIT-SIPI-SIPI. The AP starts in real mode
 * at CS:IP = (AP_TRAMPOLINE >> 4):0. */
	.code16
	.globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (ap_tramp_gdt_ptr - ap_trampoline_start)
	movl $0x11, %eax                /* CR0.ET | PE */
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ap_entry32
	.balign 8
ap_tramp_gdt_ptr:
	.word GDT_ENTRIES * 8 - 1
	.long gdt
ap_trampoline_end:

	.code32
ap_entry32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	ENTER_LONG_MODE ap64

	.code64
ap64:
	movq ap_boot + 0, %rsp          /* ap_boot.kstack */
	movw ap_boot + 20, %ax          /* ap_boot.tss_sel */
	ltr %ax
	lidt idt_ptr
	movl ap_boot + 16, %edi         /* ap_main(cpu) */
	pushq $SEL_UDATA
	pushq ap_boot + 8               /* ap_boot.ustack */
	pushq $2
	pushq $SEL_UCODE
	pushq $ap_main
	iretq

/* ---------------------------------------------------------------------- */
/* Exceptions: one 16-byte stub per vector 0..31 pushes a dummy error code
 * where the CPU pushes none, then the vector; isr_common hands the frame to
 * exception_report() (main.c), which prints it and ends the run.
 * main.c installs the gates from isr_table, in ring 3. */
	.text
.macro ISR n
	.balign 16
isr\n:
	.if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	.else
	pushq $0
	.endif
	pushq $\n
	jmp isr_common
.endm
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ISR \n
	.endr

isr_common:
	movq %rsp, %rdi                 /* vector, error, rip, cs, rflags, rsp, ss */
	andq $-16, %rsp
	call exception_report
1:	hlt
	jmp 1b

/* cpu_park(): a CPU with nothing left to do halts for good. `hlt` in ring 3
 * raises #GP; exception_report() recognises this address and halts the CPU
 * in ring 0. (A DPL-3 `int` gate would be the textbook way, but this PVM
 * answers `int N` from ring 3 with #UD.) */
	.globl cpu_park, cpu_park_hlt
cpu_park:
cpu_park_hlt:
	hlt
	jmp cpu_park

	.section .rodata
	.balign 8
	.globl isr_table
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr\n
	.endr

/* ---------------------------------------------------------------------- */
/* Page tables: identity map of the first 4 GiB with 2 MiB pages, all
 * user-accessible (U/S) and writable; the MMIO hole 0xC0000000-0xFFFFFFFF
 * (the fourth PD) uncached (PCD|PWT). */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7                /* P | RW | US */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.if i < 1536
	.quad (i << 21) | 0x87          /* P | RW | US | PS */
	.else
	.quad (i << 21) | 0x9f          /* P | RW | US | PWT | PCD | PS */
	.endif
	.set i, i + 1
	.endr

/* ---------------------------------------------------------------------- */
	.data
	.balign 8
	.globl entry_tsc
entry_tsc:
	.quad 0
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00cf9b000000ffff        /* 0x08 ring 0 code, 32-bit */
	.quad 0x00af9b000000ffff        /* 0x10 ring 0 code, 64-bit */
	.quad 0x00cf93000000ffff        /* 0x18 ring 0 data */
	.quad 0x00cff3000000ffff        /* 0x20 ring 3 data */
	.quad 0x00affb000000ffff        /* 0x28 ring 3 code, 64-bit */
	/* 0x30: the BSP's TSS (64-bit TSS descriptor, 16 bytes); the base
	 * pieces come from microguest.ld */
	.word TSS_SIZE - 1
	.word bsp_tss_base_15_0
	.byte bsp_tss_base_23_16
	.byte 0x89                      /* present, DPL 0, available 64-bit TSS */
	.byte 0x00                      /* limit 19:16 = 0, G = 0 */
	.byte bsp_tss_base_31_24
	.long bsp_tss_base_63_32
	.long 0
	/* 0x40...: the APs' TSS descriptors, written by smp.c */
	.fill 2 * (GUEST_MAX_CPUS - 1), 8, 0
gdt_end:
	.if (gdt_end - gdt) != GDT_ENTRIES * 8
	.error "GDT_ENTRIES does not match the GDT"
	.endif

	.balign 8
gdt_ptr:
	.word GDT_ENTRIES * 8 - 1
	.quad gdt
	.balign 8
idt_ptr:
	.word 256 * 16 - 1
	.quad idt

/* The BSP's TSS: RSP0 for exceptions taken in ring 3, and an I/O permission
 * bitmap of all zeros, so ring 3 may use every port (IOPL stays 0; the
 * bitmap is what lets `in`/`out` through, also on this PVM). */
	.balign 16
	.globl bsp_tss
bsp_tss:
	.long 0
	.quad kstack + KSTACK_SIZE      /* RSP0 */
	.fill 90, 1, 0                  /* RSP1, RSP2, IST1-7, reserved */
	.word TSS_HDR_SIZE              /* I/O map base */
	.fill TSS_IOMAP_SIZE, 1, 0
	.byte 0xff                      /* the bitmap's terminating byte */
bsp_tss_end:
	.if (bsp_tss_end - bsp_tss) != TSS_SIZE
	.error "TSS layout"
	.endif

	.bss
	.balign 4096
	.globl idt, kstack, ustack
idt:
	.skip 256 * 16
kstack:
	.skip KSTACK_SIZE * GUEST_MAX_CPUS
ustack:
	.skip USTACK_SIZE * GUEST_MAX_CPUS

	.section .note.GNU-stack, "", @progbits
