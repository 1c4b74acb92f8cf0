#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/<target>/seed-* (deterministic).

Seeds are small hand-made inputs that reach each parser's accept path and
each of its refusals, so that a fuzzer starts past the first checks and the
replay test covers nearly every branch on its own. Inputs kept from fuzzing
runs (found-*, crash-*) live next to them and are not touched here.

    tests/fuzz/gen_corpus.py            # rewrites every seed-* file
    tests/fuzz/gen_corpus.py virtio_net # only those of one target (or several)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


# ---- virtq: see the input layout at the top of fuzz_virtq.c ----------------

NEXT, WRITE, INDIRECT = 1, 2, 4
HIGH = 1 << 32


class Q:
    """A fake driver writing a compact guest RAM image (desc at 0, avail
    right after, used 4-aligned after that, then free space for tables)."""

    def __init__(self, log2, event_idx=False, indirect=False, high=False):
        self.n = 1 << log2
        self.cfg = log2 | (0x10 if event_idx else 0) | (0x20 if indirect else 0) | (0x80 if high else 0)
        self.desc = 0
        self.avail = 16 * self.n
        self.used = (self.avail + 6 + 2 * self.n + 3) & ~3
        self.free = (self.used + 6 + 8 * self.n + 15) & ~15
        self.ram = bytearray(self.free)
        self.idx = 0
        self.next = 0
        self.ops = []
        self.addrs = None
        self.raw_size = 0

    def w(self, off, fmt, *v):
        end = off + struct.calcsize(fmt)
        if end > len(self.ram):
            self.ram.extend(bytes(end - len(self.ram)))
        struct.pack_into(fmt, self.ram, off, *v)

    def set_desc(self, table, i, addr, length, flags, nxt=0):
        self.w(table + 16 * i, "<QIHH", addr, length, flags, nxt)

    def publish(self, head):
        self.w(self.avail + 4 + 2 * (self.idx % self.n), "<H", head)
        self.idx = (self.idx + 1) & 0xFFFF
        self.w(self.avail + 2, "<H", self.idx)

    def table(self, entries):
        """Room for an indirect table of entries descriptors."""
        t = self.free
        self.free += 16 * entries
        self.w(self.free - 1, "<B", 0)
        return t

    def chain(self, bufs, table=None, first=None):
        """bufs: (addr, len, writable). Lays them out as a chain and
        returns its first descriptor; publishes it unless it is indirect."""
        t = self.desc if table is None else table
        tlen = self.n if table is None else len(bufs)
        start = self.next if first is None else first
        for i, (addr, length, wr) in enumerate(bufs):
            d = (start + i) % tlen
            flags = (WRITE if wr else 0) | (NEXT if i + 1 < len(bufs) else 0)
            self.set_desc(t, d, addr, length, flags, (d + 1) % tlen)
        if table is None:
            self.next = (start + len(bufs)) % self.n
            self.publish(start)
        return start

    def indirect(self, bufs, extra=0):
        t = self.table(len(bufs))
        self.chain(bufs, table=t, first=0)
        head = self.next
        self.set_desc(self.desc, head, t, 16 * len(bufs), INDIRECT | extra)
        self.next = (head + 1) % self.n
        self.publish(head)
        return head

    def op(self, op, arg=0, off=0, val=0):
        self.ops.append(struct.pack("<BBHI", op, arg, off, val))

    def bytes(self):
        cfg = self.cfg | (0x40 if self.addrs else 0)
        hdr = struct.pack("<BBH4x", cfg, len(self.ops), self.raw_size)
        hdr += struct.pack("<QQQ", *(self.addrs or (0, 0, 0)))
        return hdr + b"".join(self.ops) + bytes(self.ram)


BUF = 0x8000  # data buffers: their contents need not be in the seed


def blk_read(q):
    return q.chain([(BUF, 16, False), (BUF + 0x1000, 4096, True), (BUF + 0x3000, 1, True)])


def virtq_seeds():
    q = Q(3)
    blk_read(q)
    write("virtq", "blk-read", q.bytes())

    q = Q(3, indirect=True)
    blk_read(q)
    q.indirect([(BUF, 16, False), (BUF + 0x100, 512, False), (BUF + 0x400, 512, False), (BUF + 0x800, 1, True)])
    # direct descriptors followed by an indirect one
    t = q.table(2)
    q.chain([(BUF + 0x10, 8, True), (BUF + 0x20, 1, True)], table=t, first=0)
    head = q.next
    q.set_desc(0, head, BUF, 16, NEXT, head + 1)
    q.set_desc(0, head + 1, t, 32, INDIRECT)
    q.next += 2
    q.publish(head)
    write("virtq", "indirect", q.bytes())

    q = Q(3, event_idx=True, indirect=True)
    for i in range(5):
        q.chain([(BUF + 0x100 * i, 16, False), (BUF + 0x100 * i + 0x80, 1, True)])
    q.w(q.avail + 4 + 2 * q.n, "<H", 3)  # used_event
    write("virtq", "event-idx", q.bytes())

    q = Q(0)
    q.chain([(BUF, 64, True)])
    write("virtq", "size1", q.bytes())

    q = Q(8)
    for i in range(256):
        q.chain([(BUF + 16 * i, 16, i & 1 == 1)])
    write("virtq", "size256-full", q.bytes())

    q = Q(4)
    q.set_desc(0, 0, BUF, 4, NEXT, 1)
    q.set_desc(0, 1, BUF, 4, NEXT, 0)
    q.publish(0)
    q.set_desc(0, 2, BUF, 4, NEXT, 2)
    q.publish(2)
    q.set_desc(0, 3, BUF, 4, NEXT, 40)  # next out of range
    q.publish(3)
    q.publish(200)  # head out of range
    write("virtq", "loops-and-indexes", q.bytes())

    q = Q(3, high=True)
    q.chain([(HIGH + 0x100, 64, False), (HIGH + 0x3FF0, 16, True)])
    q.chain([(0xFFF0, 32, False)])             # straddles the end of low RAM
    q.chain([(HIGH + 0x3FF8, 16, True)])       # straddles the end of high RAM
    q.chain([(0xFFFFFFFFFFFFFFF0, 32, True)])  # wraps around 2^64
    q.chain([(0x20000, 4, False)])             # past low RAM, below 4 GiB
    q.chain([(0x1234567, 0, True)])            # zero length: address ignored
    write("virtq", "addresses", q.bytes())

    q = Q(3, indirect=True)
    inner = q.table(1)
    q.set_desc(inner, 0, BUF, 4, 0)
    outer = q.table(1)
    q.set_desc(outer, 0, inner, 16, INDIRECT)
    q.set_desc(0, 0, outer, 16, INDIRECT)  # nested
    q.publish(0)
    q.set_desc(0, 1, inner, 16, INDIRECT | NEXT, 2)  # indirect with NEXT
    q.publish(1)
    q.set_desc(0, 2, inner, 15, INDIRECT)  # not a multiple of 16
    q.publish(2)
    q.set_desc(0, 3, inner, 16 * 257, INDIRECT)  # too many entries
    q.publish(3)
    q.set_desc(0, 4, 0xFFF8, 16, INDIRECT)  # table outside RAM
    q.publish(4)
    q.set_desc(0, 5, inner, 0, INDIRECT)  # empty
    q.publish(5)
    write("virtq", "indirect-bad", q.bytes())

    q = Q(3, indirect=False)
    inner = q.table(1)
    q.set_desc(inner, 0, BUF, 4, 0)
    q.set_desc(0, 0, inner, 16, INDIRECT)  # not negotiated
    q.publish(0)
    q.next = 1
    q.chain([(BUF, 4, False), (BUF + 8, 4, True), (BUF + 16, 4, False)])  # order
    write("virtq", "indirect-off-and-order", q.bytes())

    q = Q(3, indirect=True)
    t = q.table(256)
    for i in range(256):
        q.set_desc(t, i, BUF + 8 * i, 8, WRITE | (NEXT if i < 255 else 0), i + 1)
    q.set_desc(0, 0, t, 16 * 256, INDIRECT)
    q.publish(0)
    q.set_desc(0, 1, BUF, 16, NEXT, 2)  # one more than VIRTQ_MAX_CHAIN
    q.set_desc(0, 2, t, 16 * 256, INDIRECT)
    q.publish(1)
    write("virtq", "max-chain", q.bytes())

    q = Q(3)
    blk_read(q)
    q.w(q.avail + 2, "<H", 9)  # avail idx jumps past the queue size
    write("virtq", "avail-jump", q.bytes())

    q = Q(2, event_idx=True, indirect=True)
    for i in range(4):
        q.chain([(BUF + 0x40 * i, 16, False), (BUF + 0x40 * i + 0x20, 1, True)])
    q.op(0, 1, 0, 1)        # pop and push
    q.op(2)                 # should_notify
    q.op(3, 0)              # notifications off
    q.op(0, 1, 3, 17)
    q.op(3, 1)              # on again
    q.op(4)                 # has_avail
    q.op(1, 0, 2, 0)        # push
    q.op(2)
    q.op(6, 0, q.avail + 4, 0x00000001)   # driver rewrites a ring slot
    q.op(5, 2)              # and publishes two more
    q.op(0, 1, 0, 0)
    q.op(0, 1, 0, 0)
    q.op(7, 3)              # reset, re-enable with both features
    q.op(0, 0)
    q.op(5, 200)            # jump: -EPROTO
    q.op(0, 0)
    write("virtq", "script", q.bytes())

    q = Q(3)
    blk_read(q)
    q.op(7, 0)
    q.op(0, 1, 0, 0)
    q.op(1, 0, 0xFFFF, 0xFFFFFFFF)
    q.op(3, 0)
    q.op(2)
    write("virtq", "script-flags", q.bytes())

    # Rings at addresses of the driver's choosing: high RAM ...
    q = Q(3, high=True)
    q.addrs = (HIGH, HIGH + 0x100, HIGH + 0x200)
    q.op(6, 1, 0x0000, BUF)      # desc 0 addr (low half), written into high RAM
    q.op(6, 1, 0x0008, 16)       # len
    q.op(6, 1, 0x0104, 0)        # ring[0] = 0
    q.op(5, 1)
    q.op(0, 1)
    q.op(4)
    write("virtq", "rings-high", q.bytes())
    # ... and addresses enable must refuse.
    for name, addrs in (("misaligned", (8, 0x1001, 0x2002)),
                        ("avail-odd", (0, 0x1001, 0x2000)),
                        ("used-unaligned", (0, 0x1000, 0x2002)),
                        ("outside", (0xFFF0, 0x1000, 0x2000)),
                        ("avail-outside", (0, 0xFFFE, 0x2000)),
                        ("wrap", (0, 0x1000, 0xFFFFFFFFFFFFFFFC))):
        q = Q(3)
        q.addrs = addrs
        q.op(0)
        q.op(1, 0, 1, 1)
        q.op(3, 0)
        q.op(4)
        q.op(2)
        write("virtq", "enable-" + name, q.bytes())
    for size in (3, 512):
        q = Q(3)
        q.raw_size = size
        blk_read(q)
        write("virtq", "enable-size%d" % size, q.bytes())


# ---- bzImage: a setup header and a tiny "kernel", no real code -------------

def bzimage(setup_sects=1, version=0x020F, loadflags=0x01, xloadflags=0x03, kernel_len=512,
            init_size=None, syssize=None, payload=None, jump=0x66, boot_flag=0xAA55,
            magic=b"HdrS", truncate=None):
    sects = setup_sects or 4
    setup = (sects + 1) * 512
    f = bytearray(setup + kernel_len)
    f[0x1F1] = setup_sects
    struct.pack_into("<I", f, 0x1F4, (kernel_len // 16) if syssize is None else syssize)
    struct.pack_into("<H", f, 0x1FE, boot_flag)
    f[0x200] = 0xEB
    f[0x201] = jump
    f[0x202:0x206] = magic
    struct.pack_into("<H", f, 0x206, version)
    f[0x211] = loadflags
    struct.pack_into("<I", f, 0x22C, 0x7FFFFFFF)     # initrd_addr_max
    struct.pack_into("<I", f, 0x230, 0x200000)       # kernel_alignment
    f[0x234] = 1                                     # relocatable
    struct.pack_into("<H", f, 0x236, xloadflags)
    struct.pack_into("<I", f, 0x238, 2047)           # cmdline_size
    po, pl = payload if payload else (0x100, kernel_len - 0x100)
    struct.pack_into("<II", f, 0x248, po, pl)
    struct.pack_into("<Q", f, 0x258, 0x1000000)      # pref_address
    struct.pack_into("<I", f, 0x260, 0x100000 if init_size is None else init_size)
    for i in range(setup, len(f)):
        f[i] = (i * 7) & 0xFF
    return f[:truncate] if truncate else f


def bzimage_seeds():
    write("bzimage", "valid", bzimage())
    write("bzimage", "valid-setup0", bzimage(setup_sects=0))
    write("bzimage", "valid-v2.10", bzimage(version=0x020A, jump=0x62))
    write("bzimage", "valid-long-header", bzimage(setup_sects=2, jump=0xFF))
    write("bzimage", "valid-exact-init", bzimage(kernel_len=256, init_size=256))
    write("bzimage", "not-bzimage", bzimage(magic=b"HdrX"))
    write("bzimage", "no-boot-flag", bzimage(boot_flag=0x55AA))
    write("bzimage", "too-short", bzimage(truncate=0x205))
    write("bzimage", "header-truncated", bzimage(truncate=0x250))
    write("bzimage", "old-protocol", bzimage(version=0x0209))
    write("bzimage", "header-len-short", bzimage(jump=0x10))
    write("bzimage", "header-len-past-eof", bzimage(truncate=0x270, jump=0x80))
    write("bzimage", "no-kernel", bzimage(truncate=0x400))
    write("bzimage", "zimage", bzimage(loadflags=0))
    write("bzimage", "no-64bit", bzimage(xloadflags=0x02))
    write("bzimage", "init-size-0", bzimage(init_size=0))
    write("bzimage", "init-size-small", bzimage(init_size=100))
    write("bzimage", "syssize-past-eof", bzimage(syssize=0x1000))
    write("bzimage", "payload-past-eof", bzimage(payload=(0x100, 0xFFFFFFFF)))


# ---- ELF vmlinux with a PVH note --------------------------------------------

PT_LOAD, PT_NOTE = 1, 4


def note(name, ntype, desc):
    pad = lambda b: b + bytes(-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def elf(segments, etype=2, machine=62, cls=2, data=1, phentsize=56, phnum=None, phoff=64,
        truncate=None):
    """segments: (type, paddr, bytes, memsz or None); the file is the
    header, the program headers, then each segment's bytes."""
    n = len(segments)
    off = phoff + 56 * n
    body = b""
    phdrs = b""
    for ptype, paddr, blob, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", ptype, 7, off + len(body), paddr, paddr, len(blob),
                             len(blob) if memsz is None else memsz, 0x1000)
        body += blob
    ident = b"\x7fELF" + bytes([cls, data, 1]) + bytes(9)
    eh = ident + struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, 0x1000000, phoff, 0, 0, 64,
                             phentsize, n if phnum is None else phnum, 64, 0, 0)
    f = eh + bytes(phoff - 64) + phdrs + body
    return f[:truncate] if truncate else f


PVH = note(b"Xen\0", 18, struct.pack("<I", 0x1000200))


def elf_seeds():
    code = bytes(range(256))
    write("elf", "valid", elf([(PT_LOAD, 0x1000000, code, 0x2000), (PT_NOTE, 0, PVH, None)]))
    write("elf", "valid-notes", elf([(PT_NOTE, 0, note(b"GNU\0", 3, bytes(20)) + note(b"Xen\0", 5, b"abc") + PVH, None),
                                     (PT_LOAD, 0x1000000, code, None),
                                     (PT_LOAD, 0x2000000, b"", 0x1000),
                                     (PT_LOAD, 0x1800000, code[:16], 64),
                                     (6, 0, b"", None)]))
    write("elf", "no-note", elf([(PT_LOAD, 0x1000000, code, None)]))
    write("elf", "no-load", elf([(PT_NOTE, 0, PVH, None)]))
    write("elf", "note-namesz-huge", elf([(PT_LOAD, 0x1000000, code, None),
                                          (PT_NOTE, 0, struct.pack("<III", 0xFFFFFFFF, 4, 18) + b"Xen\0", None)]))
    write("elf", "note-descsz-huge", elf([(PT_LOAD, 0x1000000, code, None),
                                          (PT_NOTE, 0, struct.pack("<III", 4, 0xFFFFFFFD, 18) + b"Xen\0", None)]))
    write("elf", "note-desc-short", elf([(PT_LOAD, 0x1000000, code, None),
                                         (PT_NOTE, 0, note(b"Xen\0", 18, b"\1\2"), None)]))
    write("elf", "too-many-loads", elf([(PT_LOAD, 0x1000000 + 0x1000 * i, code[:8], None) for i in range(17)] +
                                       [(PT_NOTE, 0, PVH, None)]))
    write("elf", "filesz-gt-memsz", elf([(PT_LOAD, 0x1000000, code, 16), (PT_NOTE, 0, PVH, None)]))
    write("elf", "paddr-wrap", elf([(PT_LOAD, 0xFFFFFFFFFFFFF000, code, 0x2000), (PT_NOTE, 0, PVH, None)]))
    write("elf", "segment-past-eof", elf([(PT_NOTE, 0, PVH, None), (PT_LOAD, 0x1000000, code, None)],
                                         truncate=64 + 112 + len(PVH) + 100))
    write("elf", "phnum-huge", elf([(PT_LOAD, 0x1000000, code, None)], phnum=1000))
    write("elf", "phdrs-truncated", elf([(PT_LOAD, 0x1000000, code, None)], truncate=100))
    write("elf", "bad-phentsize", elf([(PT_LOAD, 0x1000000, code, None)], phentsize=32))
    write("elf", "dyn", elf([(PT_LOAD, 0x1000000, code, None), (PT_NOTE, 0, PVH, None)], etype=3))
    write("elf", "elf32", elf([(PT_LOAD, 0x1000000, code, None)], cls=1))
    write("elf", "big-endian", elf([(PT_LOAD, 0x1000000, code, None)], data=2))
    write("elf", "aarch64", elf([(PT_LOAD, 0x1000000, code, None)], machine=183))
    write("elf", "header-only", b"\x7fELF\x02\x01\x01" + bytes(20))
    write("elf", "not-elf", b"MZ\x90\x00" + bytes(60))


# ---- kvmini run arguments, NUL-separated ------------------------------------

def argv(*args):
    return b"\0".join(a.encode() for a in args)


def cli_seeds():
    seeds = {
        "minimal": ("--kernel", "k"),
        "all": ("--kernel=k", "--initrd", "i", "--cmdline", "console=ttyS0", "--cpus", "4",
                "--memory", "1G,hugepages=on", "--console", "file=/tmp/x", "--no-reboot",
                "--trace-exits", "--debug-exit", "-v", "-v"),
        "disk-full": ("--kernel", "k", "--disk",
                      "path=a.img,format=raw,readonly=on,cache=none,lock=off,serial=ABCDEFGHIJKLMNOPQRST,queues=63,iothread=disk"),
        "disks": ("--kernel", "k", "--disk", "path=a", "--disk=path=b,format=qcow2,cache=writeback",
                  "--disk", "path=c,iothread=queue,readonly=off,lock=on,queues=1"),
        "disk-17": ("--kernel", "k") + tuple(x for i in range(17) for x in ("--disk", "path=d%d" % i)),
        "disk-twice-path": ("--kernel", "k", "--disk", "path=a,path=b"),
        "disk-errors": ("--kernel", "k", "--disk", "path=a,serial=ABCDEFGHIJKLMNOPQRSTU"),
        "disk-badkey": ("--kernel", "k", "--disk", "path=a,bogus=1"),
        "disk-novalue": ("--kernel", "k", "--disk", "path=a,readonly"),
        "disk-nopath": ("--kernel", "k", "--disk", "format=raw"),
        "disk-emptypath": ("--kernel", "k", "--disk", "path="),
        "disk-queues": ("--kernel", "k", "--disk", "path=a,queues=64"),
        "disk-commas": ("--kernel", "k", "--disk", ",,path=a,,"),
        "memory-sizes": ("--kernel", "k", "--memory", "16777215T"),
        "memory-small": ("--kernel", "k", "--memory", "4M"),
        "memory-huge-align": ("--kernel", "k", "--memory", "1025M,hugepages=on"),
        "memory-opts": ("--kernel", "k", "--memory", "512m,hugepages=off,hugepages=on,x"),
        "memory-long": ("--kernel", "k", "--memory", "1" * 300),
        "memory-range": ("--kernel", "k", "--memory", "99999999999999999999999"),
        "cpus": ("--kernel", "k", "--cpus", "255"),
        "unknown-long": ("--kernel", "k", "--frob"),
        "unknown-short": ("--kernel", "k", "-vx"),
        "takes-no-value": ("--kernel", "k", "--no-reboot=1"),
        "not-yet": ("--kernel", "k", "--net", "tap"),
        "console": ("--kernel", "k", "--console", "none", "--console", "stdio", "--console", "file="),
        "cpus-nan": ("--kernel", "k", "--cpus", "two"),
        "memory-suffixes": ("--kernel", "k", "--memory", "8192K", "--memory", "1t", "--memory", "2x"),
        "memory-empty": ("--kernel", "k", "--memory", ""),
        "disk-badvalue": ("--kernel", "k", "--disk", "path=a,readonly=maybe"),
        "no-kernel": ("--cpus", "2", "--initrd", "i"),
        "missing-value": ("--kernel",),
        "ambiguous": ("--d", "x", "--kernel", "k"),
        "extra-arg": ("--kernel", "k", "extra"),
        "help": ("-h",),
    }
    for name, args in seeds.items():
        write("cli_disk", name, argv(*args))


# ---- virtio_net: a guest driver's and a backend's script --------------------
#
# Layout: the top of fuzz_virtio_net.c (an 8-byte header, then 16-byte ops).

VF = dict(CSUM=0, GUEST_CSUM=1, MTU=3, MAC=5, GUEST_TSO4=7, GUEST_TSO6=8, GUEST_ECN=9,
          HOST_TSO4=11, HOST_TSO6=12, HOST_ECN=13, MRG=15, STATUS=16, CTRL_VQ=17, CTRL_RX=18,
          ANNOUNCE=21, MQ=22, CTRL_MAC=23, INDIRECT=28, EVENT_IDX=29)


def vf(*names):
    return sum(1 << VF[n] for n in names)


VN_BASE = vf("MAC", "STATUS", "MTU", "EVENT_IDX")          # VERSION_1 is added
VN_CTRL = vf("CTRL_VQ", "CTRL_RX", "CTRL_MAC", "ANNOUNCE")
VN_OFFL = vf("CSUM", "GUEST_CSUM", "GUEST_TSO4", "GUEST_TSO6", "GUEST_ECN", "HOST_TSO4",
             "HOST_TSO6", "HOST_ECN")
PUSH, TWO_PAIRS, THREADS, NO_VNET_HDR, NO_OFFLOADS, RAW_FEATURES, ECHO, NO_INIT = (1 << i for i in range(8))


def vn(name, mode, feats, ops, rx=8, tx=8, ctl=6, disabled=0):
    write("virtio_net", name, struct.pack("<BIBBB", mode, feats & 0xffffffff, rx | tx << 4,
                                          ctl | disabled << 4, 0) + b"".join(ops))


def vop(code, q=0, a=0, b=0, c=0, d=0, e=0, f=0):
    return struct.pack("<BBBBHHII", code, q & 0xff, a & 0xff, b & 0xff, c & 0xffff, d & 0xffff,
                       e & 0xffffffff, f & 0xffffffff)


def tx(length=100, pair=0, flags=0, gso=0, hdr_len=0, gso_size=0, cstart=0, coff=0, pieces=1,
       merged=False, indirect=False, nokick=False, hdr_w=False, extra_w=False, zero=False,
       outside=False, split=False, short=0, nb=0):
    f = (length | (pieces - 1) << 17 | merged << 20 | indirect << 21 | nokick << 22 | hdr_w << 23 |
         extra_w << 24 | zero << 25 | outside << 26 | split << 27 | short << 28)
    return vop(0, pair | nb << 1, flags, gso, hdr_len, gso_size, cstart | coff << 16, f)


def rx(n=1, length=1600, pair=0, pieces=1, indirect=False, ro=False, outside=False, zero=False,
       nokick=False, reuse=False, first_ro=False, always=False, step=0):
    b = (pieces - 1) | indirect << 3 | ro << 4 | outside << 5 | zero << 6 | (length >> 16) << 7
    d = nokick | reuse << 1 | first_ro << 2 | always << 3 | step << 8
    return vop(1, pair, n - 1, b, length & 0xffff, d)


def kick(q, width=2, skew=0):
    return vop(2, q, (width.bit_length() - 1) | skew << 2)


def ctrl(cls, cmd, data=b"", merged=False, noack=False, ack_ro=False, ack_zero=False, ack2=False,
         data_w=False, nokick=False, indirect=False):
    data = bytes(data) + bytes(8)
    e, f = struct.unpack("<II", data[:8])
    d = (merged | noack << 1 | ack_ro << 2 | ack_zero << 3 | ack2 << 4 | data_w << 5 |
         nokick << 6 | indirect << 7)
    return e, f, d


def ctl(cls, cmd, dlen=0, data=b"", **kw):
    e, f, d = ctrl(cls, cmd, data, **kw)
    return vop(3, 0, cls, cmd, dlen, d, e, f)


def mac_table(nuc, nmc, longer=0, shorter=0, **kw):
    _, _, d = ctrl(1, 0, b"", **kw)
    c = (shorter or longer) << 9 | (1 << 14 if shorter else 0)
    return vop(3, 0, 1, 0, c, d | 0x100, nuc, nmc)


def msix(target, vector, ctl_write=None, mask=None):
    a = 0
    if ctl_write is not None:
        a |= 1 | ctl_write << 1
    if mask is not None:
        a |= 8 | mask << 4
    return vop(4, target, a, 0, vector)


def reset(restart=True, feats=0, rx=8, tx=8, ctl=6, disabled=0, raw=False, no_driver_ok=False,
          ok_without_features=False, clear_bits=False, bad_queue=None, intx=False):
    flags = (raw | no_driver_ok << 1 | ok_without_features << 2 | clear_bits << 3 |
             (bad_queue is not None) << 4 | intx << 5)
    a = 0 if restart else 1
    return vop(5, 0, a | flags << 1, rx | tx << 4, ctl | disabled << 4, bad_queue or 0, feats)


def avail(q, value, absolute=False, slot=None, head=0, do_kick=True):
    a = absolute | (slot is not None) << 1 | do_kick << 2
    return vop(6, q, a, slot or 0, value, head)


def raw_desc(q, idx, addr, length, flags=0, nxt=0, region=1, indirect_area=False, short=False,
             pub=False, do_kick=False):
    return vop(7, q, indirect_area | flags << 1, region | short << 2 | pub << 3 | do_kick << 4,
               idx, nxt, addr, length)


def frame(length=100, pair=0, count=1, flags=0, gso=0, hdr_len=0, gso_size=0, cstart=0, coff=0,
          nb=0):
    return vop(8, pair | (count - 1) << 1, flags, gso, hdr_len, gso_size, cstart | coff << 16,
               length | nb << 17)


def backend(what, n=0, code=0, pair=0):
    return vop(9, pair, what, n, code)


def ccw(off, value, width=2):
    return vop(11, 0, width.bit_length() - 1, 0, off, 0, value & 0xffffffff, value >> 32)


def cfgrd(off, ccoff=0, width=1):
    return vop(12, 0, width.bit_length() - 1, 0, off, ccoff)


def gwrite(region, off, value, q=0):
    return vop(13, q, 0, region, 0, 0, value, off)


def virtio_net_seeds():
    MRG = vf("MRG")
    # TAP-like backend, mergeable buffers: frames both ways.
    vn("pull-basic", 0, VN_BASE | MRG,
       [rx(8, 1600), frame(100, count=3), frame(1514), tx(100), tx(1514, pieces=3), tx(60, merged=True)])
    # A frame over three small buffers, buffers the window keeps for the next frames.
    vn("pull-mrg-small", 0, VN_BASE | MRG,
       [rx(10, 600), frame(1400), frame(60, count=4), frame(1514), rx(40, 600), frame(1000, count=2)])
    # Guest TSO: the device needs room for 64 KiB before it reads; TSO both ways.
    vn("pull-gso", 0, VN_BASE | MRG | VN_OFFL | vf("INDIRECT"),
       [rx(3, 600), frame(1000), rx(44, 1600),
        frame(60000, flags=1, gso=1, hdr_len=54, gso_size=1448, cstart=34, coff=16),
        frame(200, flags=2),
        tx(20000, flags=1, gso=1, hdr_len=54, gso_size=1448, cstart=34, coff=16, pieces=5),
        tx(3000, flags=1, gso=4 | 0x80, hdr_len=74, gso_size=1440, cstart=54, coff=16, indirect=True),
        tx(1000, flags=1, cstart=34, coff=6)])
    # No MRG_RXBUF: one chain per frame, header and data descriptors; too big is dropped.
    vn("pull-no-mrg", 0, VN_BASE | vf("INDIRECT"),
       [rx(2, 1530, pieces=2), frame(100), frame(1514), rx(1, 200), frame(500), frame(100),
        rx(1, 1530, pieces=4, indirect=True), frame(700)])
    # 264 chains of 8 buffers go through the RX window without it ever emptying: its
    # iovec array (2 x 1024) must be compacted (win_compact) on the way.
    vn("pull-rx-window-compact", 0, VN_BASE | MRG,
       ([rx(24, 300, pieces=8)] + [frame(100, count=8)] * 3) * 11)
    # Every kind of TX header and chain the rules refuse, between good frames.
    vn("pull-tx-hostile", 0, VN_BASE | MRG | vf("CSUM", "HOST_TSO4"),
       [tx(0), tx(60, flags=2), tx(60, flags=1, cstart=50, coff=16), tx(3000, flags=1, gso=4),
        tx(3000, gso=1, hdr_len=54, gso_size=1448), tx(3000, flags=1, gso=1, hdr_len=54, cstart=34),
        tx(3000, flags=1, gso=3, gso_size=1472), tx(3000, flags=1, gso=5, gso_size=1448),
        tx(3000, flags=1, gso=0x81, gso_size=1448), tx(100, hdr_len=2000), tx(1519),
        tx(65551, flags=1, gso=1, gso_size=1448, cstart=34, coff=16), tx(100, outside=True),
        tx(100, short=4), tx(100, short=12), tx(100, hdr_w=True), tx(100, zero=True, split=True),
        tx(100, extra_w=True, nb=7), tx(1518), tx(20000, flags=1, gso=1, gso_size=1448, cstart=34,
                                                    coff=16, hdr_len=54)])
    # The backend says -EAGAIN: the chain waits for POLLOUT and goes again; then errors.
    vn("pull-tx-backpressure", 0, VN_BASE | MRG,
       [backend(0, 5), tx(1000, nokick=True), tx(800, nokick=True), tx(600, nokick=True), kick(1),
        tx(400), backend(1, 2, 1), tx(300), tx(200), tx(100)])
    # Frames wait while there are no buffers; the driver posts and kicks as asked.
    vn("pull-rx-backpressure", 0, VN_BASE | MRG,
       [frame(1000, count=5), rx(5, 1600), frame(60), rx(1, 1600), frame(70, count=2),
        rx(1, 1600, nokick=True), kick(0)])
    # RX chains outside RAM, smaller than a header, read-only, with a zero-length
    # descriptor, readable first, indirect.
    vn("pull-rx-bad-chains", 0, VN_BASE | MRG | vf("INDIRECT"),
       [rx(1, 1600, outside=True), rx(1, 8), rx(1, 1600, ro=True), rx(1, 11), rx(1, 12),
        rx(2, 1600, zero=True, pieces=3), rx(1, 1600, first_ro=True, pieces=2),
        rx(2, 1600, indirect=True, pieces=4), frame(100, count=4)])
    # The control queue: every class and command, well and badly formed.
    vn("pull-ctrl", 0, VN_BASE | MRG | VN_CTRL,
       [ctl(0, 0, 1, b"\x01"), ctl(0, 1, 1, b"\x00"), ctl(0, 2, 1, b"\x01"), ctl(0, 0, 0),
        mac_table(1, 2), mac_table(70, 3), mac_table(1, 2, longer=1), mac_table(1, 2, shorter=1),
        ctl(1, 1, 6, b"\x52\x54\x00\xab\xcd\xef"), ctl(1, 1, 5, b"\x52\x54\x00\xab\xcd"),
        ctl(3, 0), ctl(4, 0, 2, b"\x01\x00"), ctl(99, 0), ctl(2, 0, 2, b"\x01\x00"),
        ctl(0, 0, 1, b"\x01", noack=True), ctl(0, 0, 1, b"\x01", ack_ro=True),
        ctl(0, 0, 1, b"\x01", ack_zero=True), ctl(0, 0, 1, b"\x01", ack2=True),
        ctl(0, 0, 1, b"\x01", data_w=True), ctl(0, 0, 1, b"\x01", merged=True),
        ctl(1, 1, 6, b"\x02\x00\x00\x00\x00\x01", indirect=True), rx(1, 1600), frame(100)])
    # Two queue pairs: multiqueue off until VQ_PAIRS_SET, traffic on both, off and on again.
    MQ = VN_BASE | MRG | VN_CTRL | vf("MQ")
    vn("pull-mq", TWO_PAIRS, MQ,
       [rx(4, 1600, pair=0), rx(4, 1600, pair=1), frame(200, pair=1), ctl(4, 0, 2, b"\x03\x00"),
        ctl(4, 0, 2, b"\x00\x00"), ctl(4, 0, 2, b"\x02\x00"), frame(300, pair=0), tx(400, pair=1),
        tx(400, pair=0), ctl(4, 0, 2, b"\x01\x00"), frame(200, pair=1), tx(500, pair=1),
        ctl(4, 0, 2, b"\x02\x00"), frame(100, pair=1)])
    # (Pair 1 holding RX chains with a refused one completed between them when
    # multiqueue goes off and on again: corpus/virtio_net/crash-mq-held-chains.)
    # Reset with frames waiting in the backend; the next boot negotiates less.
    vn("pull-reset-restart", 0, VN_BASE | MRG | VN_OFFL | VN_CTRL,
       [rx(41, 1600), frame(500), tx(500), reset(False), frame(100),
        reset(True, VN_BASE | MRG), rx(1, 1600), reset(True, VN_BASE, rx=4, tx=2, ctl=1),
        rx(2, 1600, pieces=2), frame(200), tx(200)])
    # The backend fails: recv errors of each kind, send errors, then a hang-up.
    vn("pull-errors", 0, VN_BASE | MRG,
       [rx(8, 1600), backend(3, 3, 0), frame(100), backend(3, 2, 1), frame(100), backend(3, 2, 2),
        frame(100), backend(3, 2, 3), backend(2, 3), frame(100), backend(3, 1, 5), frame(100),
        backend(1, 1, 1), tx(100), backend(4), frame(100), reset(True, VN_BASE | MRG), rx(1, 1600)])
    # An I/O thread per queue pair, two pairs.
    vn("pull-threads", TWO_PAIRS | THREADS, MQ,
       [rx(8, 1600), frame(100, count=2), tx(300), ctl(4, 0, 2, b"\x02\x00"), rx(4, 1600, pair=1),
        frame(200, pair=1), tx(300, pair=1), reset(True, VN_BASE | MRG), rx(2, 1600), frame(100)])
    # A TAP without a vnet header: the device writes the header itself.
    vn("pull-no-vnet-hdr", NO_VNET_HDR, VN_BASE | MRG,
       [rx(4, 1600), frame(100), frame(1514), tx(100), tx(1514), rx(1, 700), frame(1000)])
    # libslirp-like: frames pushed of every size, with and without buffers.
    vn("push-basic", PUSH, VN_BASE | MRG,
       [rx(3, 600), frame(1400), frame(0), frame(1), frame(70000), tx(300), tx(100, flags=1),
        frame(200, count=8), rx(8, 600), frame(60000), rx(100 // 100 * 40, 1600), frame(60000)])
    # The push queue fills (256 frames, 512 KiB), then drains as buffers come.
    vn("push-queue", PUSH, VN_BASE | MRG,
       [frame(1000, count=8)] * 34 + [rx(64, 1100)] * 4 + [frame(3000, count=8)] * 4)
    # libslirp answers from inside send: RX while TX runs.
    vn("push-echo", PUSH | ECHO, VN_BASE | MRG,
       [rx(4, 600), tx(100), tx(200), tx(1514), backend(0, 1), tx(100), rx(4, 1600)])
    # No MRG_RXBUF with a push backend: a frame larger than the chain is dropped.
    vn("push-no-mrg", PUSH, VN_BASE,
       [rx(1, 200), frame(500), frame(100), rx(2, 1600, pieces=3), frame(1514, count=3)])
    # avail->idx jumps by more than the queue size: NEEDS_RESET; the driver resets.
    vn("hostile-avail", 0, VN_BASE | MRG,
       [rx(2, 1600), avail(1, 300), tx(100), frame(100), avail(0, 5, slot=0, head=300),
        reset(True, VN_BASE | MRG), rx(1, 1600), frame(100)])
    # Raw descriptors: loops, next out of range, nested indirect, buffers over the rings.
    vn("hostile-raw-desc", 0, VN_BASE | MRG | vf("INDIRECT"),
       [raw_desc(1, 0, 0, 100, flags=1, nxt=0, pub=True, do_kick=True),
        raw_desc(1, 1, 0, 100, flags=1, nxt=200, pub=True, do_kick=True),
        raw_desc(1, 2, 0, 32, flags=4, region=1, indirect_area=False, pub=False),
        raw_desc(1, 0, 0x14000 + 0x4000, 32, flags=4, region=2, indirect_area=True),
        raw_desc(1, 2, 0x14000 + 0x4000, 32, flags=4, region=2, pub=True, do_kick=True),
        raw_desc(0, 0, 0x2000, 64, flags=2, region=3, pub=True),
        raw_desc(0, 1, 0x100000 - 8, 64, flags=2, region=2, pub=True), frame(100, count=2)])
    # MSI-X vectors changed, masked, the function switched to INTx and back.
    vn("msix", 0, VN_BASE | MRG | VN_CTRL,
       [msix(0, 7), msix(1, 0xffff), msix(5, 2), msix(0, 1, ctl_write=2), rx(2, 1600), frame(100),
        msix(1, 1, ctl_write=0), tx(100), msix(2, 3, mask=1), ctl(3, 0), msix(0, 1, ctl_write=1),
        frame(100), reset(True, VN_BASE | MRG, intx=True), rx(1, 1600), frame(100)])
    # Common configuration written behind the driver's back while running.
    vn("cc-write", 0, VN_BASE | MRG,
       [rx(2, 1600), ccw(0x16, 1), ccw(0x1c, 1), ccw(0x18, 3), ccw(0x20, 0x1000, 8),
        ccw(0x14, 0x1), frame(100), ccw(0x14, 0), ccw(0x14, 0xf, 1), tx(100)])
    # Queues of size 1 and 2, and no EVENT_IDX (the NO_NOTIFY flag instead).
    vn("small-queues", 0, vf("MAC", "MRG") | VN_CTRL,
       [rx(4, 1600), frame(100, count=3), rx(4, 1600), tx(100, merged=True), tx(200, merged=True),
        tx(300, merged=True), ctl(0, 0, 1, b"\x01"), ctl(3, 0)], rx=1, tx=0, ctl=2)
    # Driver init gone wrong: refused features, DRIVER_OK too early, a ring outside RAM.
    vn("bad-init", NO_INIT, 0,
       [reset(True, VN_BASE | vf("HOST_TSO4") | (1 << 30), raw=True), tx(100),
        reset(True, VN_BASE, ok_without_features=True), reset(True, VN_BASE, no_driver_ok=True),
        ccw(0x14, 0xf, 1), tx(100), reset(True, VN_BASE | MRG, bad_queue=1), rx(1, 1600), frame(100),
        reset(True, VN_BASE | MRG, clear_bits=True, disabled=0x5), tx(100), frame(100),
        cfgrd(0, 0x14, 4), cfgrd(20, 0x10, 8)])
    # The guest rewrites RAM under the device: a header after the kick, the used ring.
    vn("guest-writes", 0, VN_BASE | MRG | vf("CSUM"),
       [rx(2, 1600), tx(100, nokick=True), gwrite(2, 0, 0xffffffff), kick(1),
        gwrite(1, 0x2002, 0x7777, q=0), frame(100), gwrite(3, 10, 0), frame(100)])


# ---- qcow2: a 128-byte request script, then an image qemu-img wrote --------
#
# Layout: the top of fuzz_qcow2.c. The images are made in a scratch folder
# holding backing.raw with the bytes the harness drops next to the image, so
# the copy-on-write of an overlay reads the same backing data as a replay.
# Virtual sizes are small and clusters 512 B..8 KiB: a 64 KiB cluster image
# is 256 KiB of metadata before any data (the fuzzer changes cluster_bits).

Q_READ, Q_WRITE, Q_WZ, Q_DISCARD, Q_FLUSH, Q_WZ_UNMAP = 0, 2, 4, 5, 6, 7
FROM_END, BARRIER, RAW = 0x01, 0x10, 0x20


def qop(kind, off, length, pieces=1, flags=0, shift=0):
    """One request; length is stored >> (3 * shift)."""
    return struct.pack("<BBIH", kind, flags | (pieces - 1) << 1 | shift << 6, off,
                       length >> (3 * shift))


def qscript(ops, flags=0):
    s = struct.pack("<BB6x", flags, len(ops)) + b"".join(ops)
    return s + bytes(128 - len(s))


# Writes inside and across clusters, overlapping ones in flight together and
# after a barrier, zeroes with and without unmap, discards, reads in pieces,
# and requests the block layer must refuse.
SCRIPT_MIXED = qscript([
    qop(Q_WRITE, 100, 3000, pieces=2),
    qop(Q_READ, 0, 9000, pieces=3),
    qop(Q_WRITE, 4000, 10000, flags=BARRIER),
    qop(Q_WZ, 8192, 4096),
    qop(Q_WRITE, 20000, 600, pieces=4),
    qop(Q_WRITE, 20300, 600),              # overlaps the one in flight
    qop(Q_DISCARD, 32768, 16384, flags=BARRIER),
    qop(Q_WZ_UNMAP, 40000, 30000),
    qop(Q_FLUSH, 0, 0),
    qop(Q_WRITE, 511, 65000, flags=BARRIER),
    qop(Q_READ, 4096, 1 << 16, shift=1, flags=FROM_END),
    qop(Q_WRITE, 0, 4096, flags=FROM_END | BARRIER),
    qop(Q_READ, 0xFFFFFFF0, 64, flags=RAW),    # out of range: -EINVAL
    qop(Q_WRITE, 1000, 0),                      # empty
    qop(Q_READ, 0, 128 << 10, flags=BARRIER, pieces=4, shift=1),
])
# Reads only (copy-on-write of nothing: every kind of cluster read back).
SCRIPT_READS = qscript([
    qop(Q_READ, 0, 65535), qop(Q_READ, 65535, 65535, pieces=4), qop(Q_READ, 131000, 65535),
    qop(Q_READ, 0, 4096, flags=FROM_END), qop(Q_READ, 777, 3000),
    qop(Q_WRITE, 300, 100, flags=BARRIER), qop(Q_READ, 0, 512),
])

BACKING_SIZE = 128 << 10


def backing_bytes():
    return bytes((i * 7 + (i >> 9) + 1) & 0xFF for i in range(BACKING_SIZE))


def qcow2_seeds():
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("gen_corpus.py: no qemu-img/qemu-io, qcow2 seeds left as they are")
        return False
    tmp = tempfile.mkdtemp(prefix="kvmini-gen-qcow2-")
    with open(os.path.join(tmp, "backing.raw"), "wb") as f:
        f.write(backing_bytes())

    def sh(cmd):
        subprocess.run(cmd, shell=True, cwd=tmp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def img(name, create, io=(), script=SCRIPT_MIXED, post=None, extra=""):
        path = os.path.join(tmp, "disk.qcow2")
        if os.path.exists(path):
            os.remove(path)
        sh(create.format(img="disk.qcow2"))
        if io:
            sh("qemu-io %s %s disk.qcow2" % (extra, " ".join("-c '%s'" % c for c in io)))
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if post:
            post(data)
        write("qcow2", name, script + bytes(data))

    writes = ("write -P 0x11 0 3k", "write -P 0x22 5k 9k", "write -z 20k 4k",
              "write -P 0x33 30k 2k", "discard 30k 2k", "write -P 0x44 60k 1k")
    c = "qemu-img create -f qcow2 -o %s {img} %s"
    img("v3-c512-rc16", c % ("cluster_size=512", "128K"), writes)
    img("v3-c512-rc1", c % ("cluster_size=512,refcount_bits=1", "96K"), writes)
    img("v2-c1k", c % ("compat=0.10,cluster_size=1024", "128K"),
        ("write -P 0x11 0 3k", "write -P 0x22 5k 9k", "write -z 20k 4k", "discard 5k 2k"))
    img("v3-c2k-rc64", c % ("cluster_size=2048,refcount_bits=64", "128K"), writes)
    img("v3-c4k-rc2", c % ("cluster_size=4096,refcount_bits=2", "128K"), writes,
        script=bytes([2]) + SCRIPT_MIXED[1:])  # flags bit 1: a 16-slice L2 cache
    img("v3-c4k-rc4-zero-unmap", c % ("cluster_size=4096,refcount_bits=4", "128K"),
        ("write -P 0x55 0 16k", "write -z -u 4k 4k", "write -z 8k 4k", "discard 12k 8k",
         "write -P 0x66 50k 100"))
    img("v3-c4k-rc8-prealloc", c % ("cluster_size=512,refcount_bits=8,preallocation=metadata", "16K"),
        ("write -P 0x77 6k 6k",))
    img("v3-c8k", c % ("cluster_size=8192", "256K"),
        ("write -P 0x11 0 1k", "write -P 0x22 100k 2k", "write -z 192k 16k"))
    # Compressed clusters, zlib (v2 and v3) and zstd.
    raw = os.path.join(tmp, "data.raw")
    with open(raw, "wb") as f:
        for i in range(24):
            f.write(bytes([i * 5 % 256]) * 1000 + bytes(range(24)) * 4 + bytes(1024 - 1096 % 1024))
    for name, opts in (("zlib-c4k", "cluster_size=4096"), ("zlib-v2-c512", "compat=0.10,cluster_size=512"),
                       ("zstd-c4k", "cluster_size=4096,compression_type=zstd"),
                       ("zstd-c1k", "cluster_size=1024,compression_type=zstd")):
        img("compressed-" + name, "qemu-img convert -f raw -O qcow2 -c -o %s data.raw {img}" % opts,
            ("write -P 0x99 10k 1k",) if "c4k" in name else ())
    img("compressed-zlib-reads", "qemu-img convert -f raw -O qcow2 -c -o cluster_size=2048 data.raw {img}",
        script=SCRIPT_READS)
    # Overlays on backing.raw (the harness drops the same file beside the
    # image): partial writes copy the backing bytes; past 128 KiB, zeroes.
    img("backing-raw-c4k", "qemu-img create -f qcow2 -o cluster_size=4096 -b backing.raw -F raw {img} 192K",
        ("write -P 0x11 1k 2k", "write -z 64k 8k", "discard 16k 4k"))
    img("backing-raw-c512-v2", "qemu-img create -f qcow2 -o compat=0.10,cluster_size=512 "
        "-b backing.raw -F raw {img} 160K", ("write -P 0x11 1000 3000",))
    img("backing-raw-reads", "qemu-img create -f qcow2 -o cluster_size=1024 -b backing.raw -F raw {img} 256K",
        ("write -P 0x12 126k 4k",), script=SCRIPT_READS)
    # A backing chain that is a loop (the image backs itself), and a name
    # that points out of the folder (the harness keeps it inside).
    img("backing-loop", "qemu-img create -f qcow2 -u -o cluster_size=4096 -b diskxqcow2 -F qcow2 {img} 64K",
        post=lambda d: d.__setitem__(slice(d.find(b"diskxqcow2"), d.find(b"diskxqcow2") + 10),
                                     b"disk.qcow2"))
    img("backing-abs", "qemu-img create -f qcow2 -u -o cluster_size=4096 -b /nonexistent/backing.raw "
        "-F raw {img} 64K")
    # Internal snapshot (read-only only), lazy refcounts left dirty (the
    # open repairs), a bitmap (autoclear), header flags kvmini refuses.
    img("snapshot", c % ("cluster_size=1024", "64K") + " && qemu-io -c 'write -P 0x1 0 8k' {img} && "
        "qemu-img snapshot -c s1 {img} && qemu-io -c 'write -P 0x2 4k 8k' {img}",
        post=lambda d: d.__setitem__(slice(struct.unpack_from(">Q", d, 64)[0] + 16,
                                           struct.unpack_from(">Q", d, 64)[0] + 24), bytes(8)))
    img("dirty-lazy", c % ("cluster_size=1024,lazy_refcounts=on", "64K") +
        " && (qemu-io -c 'write -P 0x21 0 5k' -c 'write -P 0x22 20k 1k' -c abort {img} || true)")
    img("bitmap", c % ("cluster_size=1024", "64K") + " && qemu-img bitmap --add {img} b0 && "
        "qemu-io -c 'write -P 0x31 0 4k' {img}")

    def set_incompat(bit):
        def f(d):
            v = struct.unpack_from(">Q", d, 72)[0] | 1 << bit
            struct.pack_into(">Q", d, 72, v)
        return f
    img("corrupt-bit", c % ("cluster_size=512", "64K"), ("write -P 0x1 0 4k",), post=set_incompat(1))
    img("extl2-bit", c % ("cluster_size=512", "64K"), ("write -P 0x1 0 4k",), post=set_incompat(4))
    shutil.rmtree(tmp)
    return True


def main():
    import shutil
    import sys
    targets = ["virtq", "bzimage", "elf", "cli_disk", "virtio_net"]
    if shutil.which("qemu-img") and shutil.which("qemu-io"):
        targets.append("qcow2")
    if len(sys.argv) > 1:   # only these targets
        targets = [t for t in targets if t in sys.argv[1:]]
    for t in targets:
        d = os.path.join(CORPUS, t)
        if os.path.isdir(d):
            for n in os.listdir(d):
                if n.startswith("seed-"):
                    os.remove(os.path.join(d, n))
    seeds = {"virtq": virtq_seeds, "bzimage": bzimage_seeds, "elf": elf_seeds,
             "cli_disk": cli_seeds, "virtio_net": virtio_net_seeds, "qcow2": qcow2_seeds}
    for t in targets:
        seeds[t]()


if __name__ == "__main__":
    main()
