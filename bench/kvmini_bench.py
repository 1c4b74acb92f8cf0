"""kvmini-bench: how much does an application lose in a VM? Each workload runs
on the host, in a micro-guest under kvmini and (--compare-qemu) in the same
guest under QEMU, N repetitions each with the sides alternating, and ends
with a table of min/median/max per side and the ratios of the medians,
written with the run's conditions to results.json, results.csv, table.txt,
ratios.svg and ratios.png in --out DIR (docs/benchmarks.md tells how to read
them).

  kvmini-bench [--guest micro|linux] [--workload NAME]... [--repeat N]
               [--out DIR] [--compare-qemu] [--quick]

Workloads: cpu-int cpu-fp mem-bw mem-lat exit disk net startup footprint
(default: all). The compute and memory ones are one C source
(tests/guest/workloads.c) in the guest and on the host; disk is fio on the
host against the micro-guest's virtio-blk driver; net is bench/net_bench.py
(TAP needs root; libslirp always).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_report  # noqa: E402
from common import log, run_console  # noqa: E402

SHORTEST_PART = 0.02   # seconds
# Typical seconds per run on a 2-core machine (only for the time-left guess).
RUN_COST = {"cpu-int": 1.0, "cpu-fp": 1.0, "mem-bw": 2.0, "mem-lat": 12.0, "exit": 1.5,
            "disk": 1.0, "net": 25.0, "startup": 0.5, "footprint": 0.7}
WORKLOADS = ("cpu-int", "cpu-fp", "mem-bw", "mem-lat", "exit", "disk", "net", "startup", "footprint")


# ---- parameters: normal and --quick ---------------------------------------

def params(name, quick):
    """The workload's key=value words (the same on every side) and the guest
    RAM it needs."""
    q = quick
    return {
        "cpu-int": ({"size": 65536, "rounds": 200 if q else 30000}, "256M"),
        "cpu-fp": ({"n": 64 if q else 128, "rounds": 20 if q else 400}, "256M"),
        "mem-bw": ({"size": (4 if q else 64) << 20, "rounds": 2 if q else 6}, "512M" if not q else "256M"),
        "mem-lat": ({"lat_min": 4096, "lat_max": (4 << 20) if q else (1 << 30),
                     "steps": 200000 if q else 2000000}, "256M" if q else "1280M"),
        "exit": ({"count": 2000 if q else 20000, "kick_count": 20000 if q else 200000}, "256M"),
    }[name]


# ---- running one side -----------------------------------------------------

def parse_marks(lines_with_times):
    """Console lines (text, time) -> {part: {"wall", "units", "sum", ...}}.
    A part is timed from its "@b NAME" line to the next "@e"; the null part
    (printed first by every side) measures what the marks themselves cost,
    and is subtracted."""
    parts, cur = {}, None
    for text, t in lines_with_times:
        if text.startswith("@b "):
            cur = (text[3:].strip(), t)
        elif text == "@e" and cur:
            parts.setdefault(cur[0], {})["wall"] = t - cur[1]
            cur = None
        elif text.startswith("@r "):
            words = text[3:].split()
            if not words:
                continue
            d = parts.setdefault(words[0], {})
            for w in words[1:]:
                k, _, v = w.partition("=")
                try:
                    d[k] = int(v, 0)
                except ValueError:
                    d[k] = v
    null = parts.get("null", {}).get("wall", 0.0)
    for name, d in parts.items():
        if name != "null" and "wall" in d:
            d["wall_raw"] = d["wall"]
            d["wall"] = max(d["wall"] - null, d["wall"] * 0.5)
            # Console lines arrive in batches: below this the figure is the
            # batching, not the work (--quick runs are for function only).
            d["short"] = d["wall_raw"] < SHORTEST_PART
    return parts


def guest_passed(lines):
    """A guest's verdict is its PASS line: QEMU's isa-debug-exit turns the
    guest's exit status 0 into process status 1."""
    return any(line.endswith("microguest: PASS") for line in lines[-3:])


class Sides:
    """Command lines of the three sides for the micro-guest."""

    def __init__(self, a):
        self.a = a
        self.qboot = ["-bios", "/usr/share/qemu/qboot.rom"] if os.path.exists("/usr/share/qemu/qboot.rom") else []

    def guest_cmd(self, side, cmdline, memory, disk=None, thp=True):
        a = self.a
        if side == "kvmini":
            mem = memory + ("" if thp else ",thp=off")
            cmd = [a.kvmini, "run", "--kernel", a.guest_elf, "--debug-exit", "--console", "stdio",
                   "--memory", mem]
            if disk:
                cmd += ["--disk", f"path={disk},format=raw,cache=none"]
            return cmd + ["--cmdline", cmdline]
        cmd = [a.qemu, "-accel", "kvm", "-cpu", "qemu64", "-M", "pc", *self.qboot, "-m", memory,
               "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if disk:
            cmd += ["-drive", f"if=none,id=d0,file={disk},format=raw,cache=none,aio=io_uring",
                    "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
        return cmd + ["-kernel", a.guest_elf, "-append", cmdline + " unclaimed_mmio=any"]

    def run(self, side, work, words, memory, disk=None, thp=True, timeout=None):
        """Runs work on side; returns its parts. Raises RuntimeError."""
        a = self.a
        kv = " ".join(f"{k}={v}" for k, v in words.items())
        if side == "host":
            cmd = [a.work_bin, f"work={work}", *(f"{k}={v}" for k, v in words.items())]
            if not thp:
                cmd.append("thp=0")
        else:
            cmd = self.guest_cmd(side, f"test=work work={work} {kv}", memory, disk, thp)
        seen = []
        rc, lines, err, _ = run_console(cmd, timeout or a.timeout, lambda text, now: seen.append((text, now)))
        ok = rc == 0 if side == "host" else guest_passed(lines)
        if not ok:
            tail = "\n    ".join(lines[-6:] + err.strip().splitlines()[-6:])
            raise RuntimeError(f"{work} on {side} failed (rc {rc}):\n    {tail}")
        return parse_marks(seen)


# ---- workloads ------------------------------------------------------------
# Each returns a list of (row, value, unit, better) for one side and one
# repetition; rows with a deterministic result also return its checksum so
# the sides can be checked to have done the same work.

def micro_rows(name, parts):
    """(row, value, unit, better, checksum, short) per timed part. The host's
    exit-syscall is the baseline of all three exit rows."""
    rows = []
    for part, d in parts.items():
        if part in ("null", "tsc-cal", "startup", "footprint") or "wall" not in d or d.get("skipped"):
            continue
        units, wall = d.get("units", 0), max(d["wall"], 1e-9)
        if not isinstance(units, int) or units <= 0:
            continue      # a part without its result line: the side's row stays empty
        short = bool(d.get("short"))
        if part == "exit-syscall":
            rows += [(r, wall / units * 1e9, "ns/op", "lower", None, short)
                     for r in ("exit-pio", "exit-mmio", "exit-kick")]
        elif part.startswith("mem-lat-"):
            rows.append((part, wall / units * 1e9, "ns/load", "lower", d.get("sum"), short))
        elif part.startswith("exit-"):
            rows.append((part, wall / units * 1e9, "ns/op", "lower", None, short))
        elif part == "cpu-fp":
            rows.append((part, units / wall / 1e6, "MFLOP/s", "higher", d.get("sum"), short))
        else:
            rows.append((part, units / wall / 1e6, "MB/s", "higher", d.get("sum"), short))
    return rows


class Bench:
    def __init__(self, a):
        self.a = a
        self.sides = Sides(a)
        self.res = bench_report.Results()
        self.failures = []
        self.tmp = tempfile.mkdtemp(prefix="kvmini-bench-", dir=a.tmpdir)
        self.kick_disk = None
        self.done_runs, self.t0 = 0, time.monotonic()
        self.planned = 0
        self.remaining = {}          # workload -> runs not yet started
        self.cost_done, self.last_work = 0.0, None

    # progress ---------------------------------------------------------
    def progress(self, label, side, rep, work=None):
        """One line per run. Time left: the remaining runs' typical costs
        (RUN_COST), scaled by how the finished runs compared with theirs."""
        work = work or label
        el = time.monotonic() - self.t0
        if self.last_work:
            self.cost_done += RUN_COST.get(self.last_work, 1.0)
        self.remaining[work] = self.remaining.get(work, 1) - 1
        self.last_work = work
        self.done_runs += 1
        left = ""
        if self.cost_done > 0:
            todo = sum(n * RUN_COST.get(w, 1.0) for w, n in self.remaining.items() if n > 0)
            todo += RUN_COST.get(work, 1.0)
            left = f", about {fmt_secs(todo * el / self.cost_done)} left"
        log(f"kvmini-bench: [{self.done_runs}/{self.planned}] {label} on {side}, "
            f"repetition {rep + 1} of {self.a.repeat}{left}")

    def fail(self, what):
        self.failures.append(what)
        log(f"kvmini-bench: FAILED {what}")

    def record(self, work, side, rows, sums):
        for row, value, unit, better, s, short in rows:
            self.res.add(row, side, value, unit, better, workload=work)
            if short:
                self.res.note(row, f"{side}: timed part under {SHORTEST_PART * 1e3:.0f} ms: not a figure")
            if s is not None:
                ref = sums.setdefault(row, (side, s))
                if ref[1] != s:
                    self.fail(f"{row}: {side} computed {s:#x}, {ref[0]} {ref[1]:#x} (not the same work)")

    def order(self, sides, rep):
        """Sides rotated by one each repetition, so none is always first."""
        k = rep % len(sides)
        return sides[k:] + sides[:k]

    # workloads --------------------------------------------------------
    def micro(self, work):
        words, memory = params(work, self.a.quick)
        if work == "exit":
            disk = self.kick_image()
        sides = ["host", "kvmini"] + (["qemu"] if self.a.compare_qemu else [])
        sums = {}
        for rep in range(self.a.repeat):
            for side in self.order(sides, rep):
                self.progress(work, side, rep)
                w = dict(words)
                if work == "exit" and side == "host":
                    w = {"count": words["kick_count"] * 10}
                try:
                    parts = self.sides.run(side, work, w, memory, disk if work == "exit" else None)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    self.fail(str(e))
                    continue
                self.record(work, side, micro_rows(work, parts), sums)
                if work == "mem-lat" and side != "qemu" and not self.a.quick:
                    # The same chase with 4 KiB pages behind the buffer
                    # (host MADV_NOHUGEPAGE, kvmini thp=off); QEMU has no switch.
                    try:
                        parts = self.sides.run(side, work, w, memory, thp=False)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        self.fail(str(e))
                        continue
                    rows = [(r + "-nothp", *rest) for r, *rest in micro_rows(work, parts)]
                    self.record(work, side, rows, sums)
        for r in ("exit-pio", "exit-mmio", "exit-kick"):
            self.res.note(r, "host: one getppid() system call")

    def kick_image(self):
        if not self.kick_disk:
            self.kick_disk = os.path.join(self.tmp, "kick.img")
            with open(self.kick_disk, "wb") as f:
                f.truncate(1 << 20)
        return self.kick_disk

    def startup(self):
        sides = ["kvmini"] + (["qemu"] if self.a.compare_qemu else [])
        cal = 20000000 if self.a.quick else 200000000
        for rep in range(self.a.repeat):
            for side in self.order(sides, rep):
                self.progress("startup", side, rep)
                cmd = self.sides.guest_cmd(side, f"test=work work=startup cal_tsc={cal}", "256M")
                seen = []
                try:
                    rc, lines, err, t = run_console(cmd, self.a.timeout,
                                                    lambda text, now: seen.append((text, now)))
                except subprocess.TimeoutExpired as e:
                    self.fail(f"startup on {side}: {e}")
                    continue
                parts = parse_marks(seen)
                cal_p, st = parts.get("tsc-cal", {}), parts.get("startup", {})
                if not guest_passed(lines) or not t.get("first_byte") or not cal_p.get("wall_raw") or "entry_tsc" not in st:
                    self.fail(f"startup on {side} failed (rc {rc}): {' | '.join(lines[-3:])} {err[-200:]}")
                    continue
                hz = cal_p["units"] / cal_p["wall_raw"]
                first_byte = t["first_byte"] - t["spawn"]
                first_insn = first_byte - (st["first_out_tsc"] - st["entry_tsc"]) / hz
                self.res.add("startup-first-insn", side, first_insn * 1e3, "ms", "lower", "startup")
                self.res.add("startup-first-byte", side, first_byte * 1e3, "ms", "lower", "startup")
        self.res.note("startup-first-insn", "exec to the guest's first instruction (its TSC at entry, "
                      "placed on the host's clock through the TSC rate measured in the same run)")

    def footprint(self):
        sides = ["kvmini"] + (["qemu"] if self.a.compare_qemu else [])
        touch = (16 if self.a.quick else 64) << 20
        memory = 512 << 20
        for rep in range(self.a.repeat):
            for side in self.order(sides, rep):
                self.progress("footprint", side, rep)
                cmd = self.sides.guest_cmd(side, f"test=work work=footprint touch={touch}", "512M")
                got = {}

                def on_line(text, now, proc=None):
                    if text == "@ready" and proc is not None and not got:
                        got.update(vmm_rss(proc.pid, memory))
                        proc.kill()
                try:
                    rc, lines, err, _ = run_console(cmd, self.a.timeout, on_line, with_proc=True)
                except subprocess.TimeoutExpired as e:
                    self.fail(f"footprint on {side}: {e}")
                    continue
                if not got.get("rss"):
                    self.fail(f"footprint on {side}: no reading ({' | '.join(lines[-3:])} {err[-200:]})")
                    continue
                self.res.add("footprint-vmm", side, (got["rss"] - got["guest"]) / 2**20, "MiB", "lower",
                             "footprint")
                self.res.add("footprint-guest-ram", side, got["guest"] / 2**20, "MiB", "lower", "footprint")
        self.res.note("footprint-vmm", "resident memory of the VMM process minus the resident part of "
                      f"guest RAM; the guest touched {touch >> 20} MiB of 512 MiB")

    def disk(self):
        import blk_bench
        a = self.a
        q = a.quick
        path = os.path.join(a.disk_dir, f"kvmini-bench-disk-{os.getpid()}.img")
        size_mib = 32 if q else 256
        cases = [("randread", "4k", 1), ("randread", "4k", 32), ("randwrite", "4k", 1),
                 ("randwrite", "4k", 32), ("seqread", "1m", 4), ("seqwrite", "1m", 4)]
        ba = types.SimpleNamespace(file=path, size_mib=size_mib, timeout=a.timeout, queues=1, qemu=a.qemu,
                                   kvmini=a.kvmini, guest=a.guest_elf, fio_engine="io_uring")
        qcow2 = path + ".qcow2"
        sides = []
        if shutil.which("fio"):
            sides.append("host")
        else:
            log("kvmini-bench: disk: no host baseline: fio is not installed (apt-get install fio)")
        sides.append("kvmini")
        if a.compare_qemu:
            sides.append("qemu")
        formats = ["raw"] + (["qcow2"] if shutil.which("qemu-img") else [])
        try:
            blk_bench.make_file(path, size_mib)
            if "qcow2" in formats:
                subprocess.run(["qemu-img", "convert", "-O", "qcow2", path, qcow2], check=True)
            runners = {("kvmini", "raw"): blk_bench.Kvmini("kvmini", ba),
                       ("kvmini", "qcow2"): blk_bench.Kvmini("kvmini", ba, image=qcow2, fmt="qcow2"),
                       ("qemu", "raw"): blk_bench.Qemu("qemu", ba),
                       ("qemu", "qcow2"): blk_bench.Qemu("qemu", ba, image=qcow2, fmt="qcow2")}
            for op, bsname, qd in cases:
                bs = blk_bench.parse_size(bsname)
                ios = blk_bench.default_ios(bs, qd) // (10 if q else 2)
                for fmtname in formats:
                    row = f"disk-{op}-{bsname}-qd{qd}" + ("" if fmtname == "raw" else "-qcow2")
                    seq = bs >= 1 << 20
                    for rep in range(a.repeat):
                        for side in self.order(sides, rep):
                            if side == "host" and fmtname != "raw":
                                continue   # the host baseline is the raw file's
                            self.progress(row, side, rep, "disk")
                            try:
                                r = blk_bench.fio_run(ba, op, bs, qd, ios) if side == "host" else \
                                    runners[(side, fmtname)].run(op, bs, qd, ios)
                            except (RuntimeError, subprocess.TimeoutExpired) as e:
                                self.fail(f"{row} on {side}: {e}")
                                continue
                            v = r["iops"] * bs / 1e6 if seq else r["iops"]
                            self.res.add(row, side, v, "MB/s" if seq else "IOPS", "higher", "disk")
                            if side == "host" and fmtname == "raw" and "qcow2" in formats:
                                self.res.add(row + "-qcow2", side, v, "MB/s" if seq else "IOPS", "higher", "disk")
                    if fmtname == "qcow2":
                        self.res.note(row, "host: fio on the raw file (the same data)")
        except (OSError, subprocess.CalledProcessError) as e:
            self.fail(f"disk: {e}")
        finally:
            for f in (path, qcow2):
                if os.path.exists(f):
                    os.unlink(f)

    def net(self):
        import json
        a = self.a
        backends = ["user"]
        if os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("ip"):
            backends.insert(0, "tap")
        else:
            log("kvmini-bench: net: TAP skipped (needs root, /dev/net/tun and iproute2)")
        engines = ["host", "kvmini"] + (["qemu"] if a.compare_qemu else [])
        out = os.path.join(self.tmp, "net.json")
        for rep in range(a.repeat):
            self.progress("net (" + ",".join(backends) + ")", ",".join(self.order(engines, rep)), rep, "net")
            cmd = [sys.executable, os.path.join(HERE, "net_bench.py"), "--guest", a.guest_elf,
                   "--kvmini", a.kvmini, "--qemu", a.qemu, "--backends", ",".join(backends),
                   "--engines", ",".join(self.order(engines, rep)), "--repeats", "1", "--json", out]
            if a.quick:
                cmd += ["--frames", "1000", "--rr", "200"]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout * 4)
            if p.returncode or not os.path.exists(out):
                self.fail(f"net: net_bench.py exit {p.returncode}: {p.stdout[-300:]} {p.stderr[-300:]}")
                continue
            with open(out) as f:
                runs = json.load(f)
            os.unlink(out)
            for entry in runs:
                for x in entry["runs"]:
                    b = entry["backend"]
                    self.res.add(f"net-{b}-pps", entry["engine"], x.get("pps"), "frames/s", "higher", "net")
                    self.res.add(f"net-{b}-rr", entry["engine"], x.get("rr_median_us"), "us", "lower", "net")
            for line in p.stdout.splitlines():
                if "net-bench:" in line and ("SKIP" in line or "failed" in line):
                    log("  " + line)
        self.res.note("net-tap-pps", "host: raw frames over a veth pair to the same reflector")
        self.res.note("net-user-pps", "host: UDP on the loopback to the same echo server")

    def check_complete(self):
        """A row that one side of its workload never produced is a failure
        (a guest that printed no result for a part, say), not an empty cell."""
        by_work = {}
        for row, r in self.res.rows.items():
            by_work.setdefault(r["workload"], set()).update(s for s, v in r["values"].items() if v)
        for row, r in self.res.rows.items():
            want = by_work[r["workload"]] - ({"qemu"} if row.endswith("-nothp") else set())
            for side in sorted(want):
                if not r["values"].get(side):
                    self.fail(f"{row}: no figure from {side}")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def vmm_rss(pid, guest_bytes):
    """{"rss": resident bytes of pid, "guest": resident bytes of its guest-RAM
    mapping}: the largest mapping of at least guest_bytes (kvmini's and
    QEMU's RAM are one anonymous mapping each)."""
    rss, best = 0, (0, 0)
    size = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            k = line.split()
            if not k:
                continue
            if "-" in k[0] and not k[0].endswith(":"):
                lo, hi = (int(x, 16) for x in k[0].split("-"))
                size = hi - lo
            elif k[0] == "Rss:":
                b = int(k[1]) * 1024
                rss += b
                if size >= guest_bytes and size > best[0]:
                    best = (size, b)
    return {"rss": rss, "guest": best[1]}


def fmt_secs(s):
    s = int(s + 0.5)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def planned_runs(a, works):
    """{workload: runs} that the progress line counts down from."""
    s = 3 if a.compare_qemu else 2            # host, kvmini (, qemu)
    per = {"disk": 6 * (s + s - 1), "net": 1, "startup": s - 1, "footprint": s - 1}
    return {w: a.repeat * per.get(w, s) for w in works}


def main(argv=None, defaults=None):
    d = defaults or {}
    ap = argparse.ArgumentParser(prog="kvmini-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", choices=["micro", "linux"], default="micro")
    ap.add_argument("--workload", action="append", default=[],
                    help="run only these (repeat the option or give a comma list): " + " ".join(WORKLOADS))
    ap.add_argument("--repeat", type=int, help="repetitions per side (default 5; 1 with --quick)")
    ap.add_argument("--out", help="directory for results.json, results.csv, ratios.svg "
                    "(default kvmini-bench-YYYYmmdd-HHMMSS)")
    ap.add_argument("--compare-qemu", action="store_true", help="run every workload under QEMU too")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    ap.add_argument("--kvmini", default=d.get("kvmini", "kvmini"))
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--guest-elf", default=d.get("guest_elf"), help="the micro-guest (microguest.elf)")
    ap.add_argument("--work-bin", default=d.get("work_bin"), help="kvmini-bench-work (the host side)")
    ap.add_argument("--disk-dir", default="/var/tmp", help="where the disk workload's file goes "
                    "(a real disk: O_DIRECT; default %(default)s)")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--timeout", type=float, default=180)
    a = ap.parse_args(argv)
    if a.repeat is None:
        a.repeat = 1 if a.quick else 5
    if a.repeat < 1 or a.repeat > 1000:
        ap.error("--repeat must be 1..1000")
    works = []
    for w in a.workload:
        for x in w.split(","):
            if x not in WORKLOADS:
                ap.error(f"unknown workload {x!r} (one of: {' '.join(WORKLOADS)})")
            if x not in works:
                works.append(x)
    works = works or list(WORKLOADS)
    if a.guest == "linux":
        log("kvmini-bench: --guest linux is not built yet (issue 10): only --guest micro runs today")
        return 2
    for what, path in (("micro-guest", a.guest_elf), ("kvmini-bench-work", a.work_bin)):
        if not path or not os.path.exists(path):
            log(f"kvmini-bench: {what} not found ({path}); give --guest-elf / --work-bin")
            return 2
    if not shutil.which(a.kvmini):
        log(f"kvmini-bench: kvmini not found: {a.kvmini}")
        return 2
    a.kvmini = shutil.which(a.kvmini)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("kvmini-bench: SKIP: /dev/kvm is not usable here")
        return 77
    if a.compare_qemu and not shutil.which(a.qemu):
        log(f"kvmini-bench: --compare-qemu: {a.qemu} not found (apt-get install qemu-system-x86)")
        return 2
    out = a.out or time.strftime("kvmini-bench-%Y%m%d-%H%M%S")
    os.makedirs(out, exist_ok=True)

    import conditions
    b = Bench(a)
    b.res.conditions = conditions.collect(a, d.get("srcdir"))
    b.remaining = planned_runs(a, works)
    b.planned = sum(b.remaining.values())
    log(f"kvmini-bench: {', '.join(works)}; sides host, kvmini{', qemu' if a.compare_qemu else ''}; "
        f"{a.repeat} repetitions; results in {out}")
    try:
        for w in works:
            try:
                if w in ("cpu-int", "cpu-fp", "mem-bw", "mem-lat", "exit"):
                    b.micro(w)
                else:
                    getattr(b, w)()
            except Exception as e:  # noqa: BLE001 - one workload's bug must not lose the others
                b.fail(f"{w}: {type(e).__name__}: {e}")
    except KeyboardInterrupt:
        b.fail("interrupted")
    finally:
        b.close()
    b.check_complete()
    b.res.conditions["load_after"] = list(os.getloadavg())
    b.res.conditions["wall_seconds"] = round(time.monotonic() - b.t0, 1)
    bench_report.write_json(b.res, os.path.join(out, "results.json"))
    bench_report.write_csv(b.res, os.path.join(out, "results.csv"))
    table = bench_report.text_table(b.res)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(table + "\n")
    why = bench_report.write_chart(b.res, os.path.join(out, "ratios.svg")) or \
        bench_report.write_chart(b.res, os.path.join(out, "ratios.png"))
    log("")
    log(table)
    log("")
    c = b.res.conditions
    log(f"conditions: {c['cpu_model']}, {c['cpus']} CPUs, kernel {c['host_kernel']}, KVM: {c['kvm']}, "
        f"THP {c['thp']}; load {c['load_before'][0]:.2f} before, {c['load_after'][0]:.2f} after; "
        f"{c['wall_seconds']:.0f} s")
    log("ratios: performance relative to the host (1.00 = native; higher is better); "
        "kvmini/qemu: kvmini relative to QEMU")
    if c.get("timing_note"):
        log("note: " + c["timing_note"])
    log(f"files: {out}/results.json results.csv table.txt" + ("" if why else " ratios.svg ratios.png"))
    if why:
        log(f"kvmini-bench: no chart: {why}")
    if b.failures:
        log(f"kvmini-bench: {len(b.failures)} run(s) failed:")
        for f_ in b.failures:
            log("  " + f_.splitlines()[0])
        return 1
    return 1 if why and shutil.which("gnuplot") else 0


if __name__ == "__main__":
    sys.exit(main())
