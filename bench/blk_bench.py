#!/usr/bin/env python3
"""Disk benchmark: the micro-guest's virtio-blk driver (tests/guest,
test=blkbench) under kvmini and under QEMU, against the host's own io_uring
(fio) on the same file.

  bench/blk_bench.py --guest BUILD/tests/guest/microguest.elf [--kvmini BUILD/kvmini]
        [--file /var/tmp/kvmini-blk-bench.img] [--size-mib 256] [--repeats 5]
        [--cases randread:4k:1,randread:4k:32,...] [--ios N] [--engines host,qemu,kvmini]
        [--fio-engine io_uring|libaio] [--queues N] [--keep-file] [--verbose]

Every engine does the same work: CASE = op:bs:qd with op one of randread,
randwrite, seqread, seqwrite; random offsets are uniform over the whole
file, aligned to bs; O_DIRECT everywhere (fio --direct=1 --ioengine=io_uring,
QEMU cache=none,aio=io_uring, kvmini cache=none).

Timing of a guest run: the guest prints "microguest: bench start" just
before its first request and "microguest: bench end" right after its last
completion; this script timestamps the console lines as they arrive (the VMM
writes the UART to a pipe) and takes IOPS = ios / (t_end - t_start). That
needs no TSC frequency (CPUID 0x15/0x16 is not reliable on this project's
paravirtual KVM) and is the same for every VMM. It includes the guest's
printing of the ~22-byte end line (a few UART exits, < 1 ms). The guest's own
rdtsc delta is kept as a cross-check (tsc_hz column with --verbose).

Caveats seen on this project's machines: fio's io_uring engine reads
1 MiB blocks at about half the speed of its libaio engine on the same file
(--fio-engine libaio to compare), and QEMU merges adjacent sequential
requests (virtio-blk request-merging), so its sequential numbers can beat
the host's.

Repeats are interleaved (host, qemu, kvmini, host, ...), so slow drifts in
machine load hit every engine alike; the table gives min/median/max and the
guest/host ratio of the medians. kvmini runs use --trace-exits; "exits/io" is
(exits of the run - exits of the same run with ios=0) / ios.

Engines that cannot run are skipped with a message: no fio, no QEMU, no
kvmini binary, or a kvmini without --disk.

Multi-queue: --queues N gives the disk N virtqueues (kvmini queues=N, QEMU
num-queues=N) and the guest spreads its qd requests round-robin over them
(blk_queues=N; qd must be a multiple of N). The engine "kvmini-iodisk" is
kvmini with iothread=disk (one I/O thread for all queues) beside "kvmini"
(iothread=queue, a thread per queue): the measurement behind that default.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

from common import fmt, log, run_vmm

DEFAULT_CASES = "randread:4k:1,randread:4k:32,randwrite:4k:1,randwrite:4k:32,seqread:1m:4,seqwrite:1m:4"


def parse_size(s):
    s = s.lower()
    mult = {"k": 1024, "m": 1 << 20}.get(s[-1], 1)
    return int(s[:-1] if s[-1] in "km" else s) * mult


def default_ios(bs, qd):
    if bs >= 1 << 20:
        return 1000
    return 5000 if qd == 1 else 20000


def make_file(path, size_mib):
    if os.path.exists(path) and os.path.getsize(path) == size_mib << 20:
        return False
    log(f"blk-bench: writing {size_mib} MiB of random data to {path}")
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    return True


def run_timed(cmd, timeout):
    """Runs cmd; returns (rc, {marker: time}, console lines, stderr text)."""
    marks = {}

    def on_line(text, now):
        if text == "microguest: bench start":
            marks["start"] = now
        elif text == "microguest: bench end":
            marks["end"] = now

    rc, lines, err = run_vmm(cmd, timeout, on_line)
    return rc, marks, lines, err


class Guest:
    def __init__(self, name, args, image=None, fmt="raw"):
        self.name, self.args = name, args
        self.image, self.fmt = image or args.file, fmt

    def cmd(self, cmdline):
        raise NotImplementedError

    def run(self, op, bs, qd, ios):
        cmdline = f"test=blkbench bench={op} bs={bs} qd={qd} ios={ios}"
        if self.args.queues > 1:
            cmdline += f" blk_queues={self.args.queues}"
        rc, marks, lines, err = run_timed(self.cmd(cmdline), self.args.timeout)
        res = [l for l in lines if l.startswith("microguest: bench op=")]
        if "PASS" not in " ".join(lines[-3:]) or not res or "start" not in marks or "end" not in marks:
            tail = "\n    ".join(lines[-8:] + err.strip().splitlines()[-8:])
            raise RuntimeError(f"{self.name}: run failed (rc {rc}):\n    {tail}")
        kv = dict(w.split("=", 1) for w in res[0].split()[2:])
        wall = marks["end"] - marks["start"]
        wall = max(wall, 1e-6)
        out = {"wall": wall, "iops": ios / wall, "tsc": int(kv["tsc"]),
               "kicks": int(kv["kicks"]), "tsc_hz": int(kv["tsc"]) / wall}
        m = re.search(r"exits: (\d+) in", err)
        if m:
            out["exits"] = int(m[1])
        return out


class Qemu(Guest):
    def cmd(self, cmdline):
        a = self.args
        bios = ["-bios", "/usr/share/qemu/qboot.rom"] if os.path.exists("/usr/share/qemu/qboot.rom") else []
        return [a.qemu, "-accel", "kvm", "-cpu", "qemu64", "-M", "pc", *bios, "-m", "512M",
                "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                "-drive", f"if=none,id=d0,file={self.image},format={self.fmt},cache=none,aio=io_uring",
                "-device", f"virtio-blk-pci,drive=d0,disable-legacy=on,num-queues={a.queues}",
                "-kernel", a.guest, "-append", cmdline]


class Kvmini(Guest):
    def __init__(self, name, args, iothread="queue", binary=None, image=None, fmt="raw"):
        super().__init__(name, args, image, fmt)
        self.iothread = iothread
        self.binary = binary or args.kvmini

    def cmd(self, cmdline):
        a = self.args
        disk = f"path={self.image},format={self.fmt},cache=none,queues={a.queues}"
        if self.iothread != "queue":
            disk += f",iothread={self.iothread}"
        return [self.binary, "run", "--kernel", a.guest, "--debug-exit", "--console", "stdio",
                "--memory", "512M", "--disk", disk, "--trace-exits", "--cmdline", cmdline]


def fio_run(args, op, bs, qd, ios):
    rw = {"randread": "randread", "randwrite": "randwrite", "seqread": "read", "seqwrite": "write"}[op]
    cmd = ["fio", "--name=blk", f"--filename={args.file}", "--direct=1", f"--ioengine={args.fio_engine}",
           f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}", f"--size={args.size_mib}M",
           f"--io_size={ios * bs}", "--norandommap", "--randrepeat=0", "--output-format=json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if p.returncode:
        raise RuntimeError(f"fio failed: {p.stderr.strip()[-500:]}")
    job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    side = job["read"] if "read" in rw else job["write"]
    return {"iops": side["iops"], "wall": side["runtime"] / 1000.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", required=True, help="microguest.elf")
    ap.add_argument("--kvmini", help="kvmini binary (engine skipped without it)")
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--file", default="/var/tmp/kvmini-blk-bench.img",
                    help="test file, on a real disk (not tmpfs: O_DIRECT)")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="op:bs:qd,... (default %(default)s)")
    ap.add_argument("--ios", type=int, help="requests per run (default: 5000 at 4k QD1, 20000 at QD>1, 1000 at 1m)")
    ap.add_argument("--engines", default="host,qemu,kvmini",
                    help="host,qemu,kvmini,kvmini-iodisk,qemu-qcow2,kvmini-qcow2,qemu-overlay,"
                    "kvmini-overlay (default %(default)s); *-qcow2 use a fully allocated qcow2 "
                    "copy of the file, *-overlay an empty qcow2 overlay on that copy")
    ap.add_argument("--queues", type=int, default=1, help="virtqueues of the disk (default 1)")
    ap.add_argument("--kvmini-base", help="a second kvmini binary (e.g. built before a change), "
                    "run as engine 'kvmini-base' interleaved with the others")
    ap.add_argument("--fio-engine", default="io_uring",
                    help="fio --ioengine of the host baseline (default io_uring; libaio for comparison)")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--keep-file", action="store_true", help="keep the test file afterwards")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    engines = args.engines.split(",")
    runners = {}
    if "host" in engines:
        if shutil.which("fio"):
            runners["host"] = None
        else:
            log("blk-bench: SKIP host baseline: fio is not installed (apt-get install fio)")
    qcow2 = args.file + ".qcow2"
    overlay = args.file + ".overlay.qcow2"
    for name in [e for e in engines if e.startswith("qemu")]:
        if shutil.which(args.qemu) and os.access("/dev/kvm", os.R_OK | os.W_OK):
            img, imgfmt = {"qemu": (None, "raw"), "qemu-qcow2": (qcow2, "qcow2"),
                           "qemu-overlay": (overlay, "qcow2")}[name]
            runners[name] = Qemu(name, args, img, imgfmt)
        else:
            log(f"blk-bench: SKIP {name}: {args.qemu} or /dev/kvm not usable")
    if any(e.startswith("kvmini") for e in engines):
        usage = ""
        if args.kvmini and os.access(args.kvmini, os.X_OK):
            p = subprocess.run([args.kvmini, "run", "--help"], capture_output=True, text=True)
            usage = p.stdout + p.stderr
        if "--disk" in usage:
            if "kvmini" in engines:
                runners["kvmini"] = Kvmini("kvmini", args)
            if "kvmini-iodisk" in engines:
                runners["kvmini-iodisk"] = Kvmini("kvmini-iodisk", args, "disk")
            if args.kvmini_base:
                runners["kvmini-base"] = Kvmini("kvmini-base", args, binary=args.kvmini_base)
            if "kvmini-qcow2" in engines:
                runners["kvmini-qcow2"] = Kvmini("kvmini-qcow2", args, image=qcow2, fmt="qcow2")
            if "kvmini-overlay" in engines:
                runners["kvmini-overlay"] = Kvmini("kvmini-overlay", args, image=overlay,
                                                   fmt="qcow2")
        else:
            why = ("no --kvmini binary given" if not args.kvmini else
                   f"{args.kvmini} is not executable" if not os.access(args.kvmini, os.X_OK) else
                   f"{args.kvmini} has no --disk option yet")
            log("blk-bench: SKIP kvmini: " + why)
    if not runners:
        log("blk-bench: nothing to run")
        return 77

    fs = subprocess.run(["stat", "-f", "-c", "%T", os.path.dirname(os.path.abspath(args.file))],
                        capture_output=True, text=True).stdout.strip()
    if fs == "tmpfs":
        log(f"blk-bench: {args.file} is on tmpfs: O_DIRECT fails there; use --file on a disk")
        return 1
    created = make_file(args.file, args.size_mib)
    if any(e.endswith(("-qcow2", "-overlay")) for e in runners):
        # Same data as the raw file, every cluster allocated; the overlay
        # starts empty, so its reads come from the base.
        for f in (qcow2, overlay):
            if os.path.exists(f):
                os.unlink(f)
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", args.file, qcow2], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2",
                        overlay], check=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    qv = subprocess.run([args.qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if "qemu" in runners else "-"
    fv = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip() \
        if "host" in runners else "-"
    log(f"blk-bench: file {args.file} ({args.size_mib} MiB, {fs}); {os.cpu_count()} CPUs ({cpu}); "
        f"{qv}; {fv} ({args.fio_engine}); repeats {args.repeats}")
    load0 = os.getloadavg()

    cases = []
    for c in args.cases.split(","):
        op, bs, qd = c.split(":")
        cases.append((op, bs, parse_size(bs), int(qd)))
    results = {}
    kv_idle = {}
    try:
        for op, bsname, bs, qd in cases:
            ios = args.ios or default_ios(bs, qd)
            key = (op, bsname, qd)
            for r in range(args.repeats):
                for name in runners:
                    try:
                        res = fio_run(args, op, bs, qd, ios) if name == "host" else \
                            runners[name].run(op, bs, qd, ios)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        log(f"blk-bench: {op} {bsname} qd{qd} {name}: {e}")
                        continue
                    results.setdefault(key, {}).setdefault(name, []).append(res)
                    if args.verbose:
                        extra = "".join(f" {k}={v:.4g}" for k, v in res.items() if k != "iops")
                        log(f"  {op} {bsname} qd{qd} {name} #{r + 1}: {res['iops']:.0f} IOPS{extra}")
            for name in ("kvmini", "kvmini-iodisk", "kvmini-base", "kvmini-qcow2",
                         "kvmini-overlay"):
                if name in runners and name in results.get(key, {}):
                    try:
                        kv_idle[(key, name)] = runners[name].run(op, bs, qd, 0).get("exits")
                    except RuntimeError:
                        pass
            results.setdefault(key, {})["ios"] = ios
    finally:
        for f in (qcow2, overlay):
            if os.path.exists(f) and not args.keep_file:
                os.unlink(f)
        if created and not args.keep_file:
            os.unlink(args.file)

    load1 = os.getloadavg()
    log("")
    log(f"{'case':<22} {'engine':<13} {'n':>2} {'min':>10} {'median':>10} {'max':>10}  {'unit':<5} "
        f"{'vs host':>7} {'exits/io':>8} {'kicks/io':>8}")
    for op, bsname, bs, qd in cases:
        key = (op, bsname, qd)
        per = results.get(key, {})
        ios = per.get("ios", 0)
        host_med = None
        seq = bs >= 1 << 20
        for name in ("host", "qemu", "kvmini-base", "kvmini", "kvmini-iodisk", "qemu-qcow2",
                     "kvmini-qcow2", "qemu-overlay", "kvmini-overlay"):
            rs = per.get(name)
            if not rs:
                continue
            vals = sorted((x["iops"] * bs / 1e6) if seq else x["iops"] for x in rs)
            med = statistics.median(vals)
            if name == "host":
                host_med = med
            ratio = f"{med / host_med:.2f}" if host_med and name != "host" else ""
            exits = ""
            if kv_idle.get((key, name)) is not None and "exits" in rs[0]:
                e = statistics.median(x["exits"] for x in rs)
                exits = f"{(e - kv_idle[(key, name)]) / ios:.2f}"
            kicks = f"{statistics.median(x['kicks'] for x in rs) / ios:.2f}" if name != "host" else ""
            log(f"{op + ' ' + bsname + ' qd' + str(qd):<22} {name:<13} {len(vals):>2} {fmt(vals[0]):>10} "
                f"{fmt(med):>10} {fmt(vals[-1]):>10}  {'MB/s' if seq else 'IOPS':<5} {ratio:>7} "
                f"{exits:>8} {kicks:>8}")
    log("")
    log(f"load average: {load0[0]:.2f} before, {load1[0]:.2f} after (1 min); "
        f"guest timing: console markers; MB/s = 10^6 bytes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
