#!/usr/bin/env python3
"""kvmini-img bench against qemu-img bench on the same images.

Runs both tools alternately (the order flips every repetition, so neither
always gets the warmer cache), N times per row, and prints min/median/max
IOPS per engine and row. Rows: 4 KiB "random" read and write at QD1 and QD32,
64 KiB sequential read and write at QD32. bench has no random mode, so the
random rows use a stride of 7919 blocks (a prime), which wraps around the
image and touches every block once per pass in scattered order. Images:
fully allocated (raw and qcow2), sparse qcow2 (recreated before each write
run, so every write allocates) and a qcow2 overlay on a full raw base. The
images live in --dir; cache=none when its file system takes O_DIRECT, else
writeback (printed).

  bench/img_bench.py --kvmini-img build/img/kvmini-img [--repeat 5] [--count 20000]
  bench/img_bench.py --quick     # a smoke run: tiny counts, one repetition
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

STRIDE = 7919 * 4096
ROWS = [  # name, size, step, depth, write
    ("4k-rand-read-qd1", 4096, STRIDE, 1, False),
    ("4k-rand-read-qd32", 4096, STRIDE, 32, False),
    ("4k-rand-write-qd1", 4096, STRIDE, 1, True),
    ("4k-rand-write-qd32", 4096, STRIDE, 32, True),
    ("64k-seq-read-qd32", 65536, 65536, 32, False),
    ("64k-seq-write-qd32", 65536, 65536, 32, True),
]
TIME_RE = re.compile(r"Run completed in ([0-9.]+) seconds")


def sh(*cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def odirect_ok(d):
    path = os.path.join(d, ".odirect-probe")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600))
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.unlink(path)


class Images:
    """Makes each image kind; fresh() recreates the ones writes change."""

    def __init__(self, qimg, d, size):
        self.qimg, self.d, self.size = qimg, d, size

    def path(self, kind):
        return os.path.join(self.d, kind + (".raw" if kind == "full-raw" else ".qcow2"))

    def make(self, kind):
        p, s = self.path(kind), str(self.size)
        if kind == "full-raw":
            sh(self.qimg, "create", "-q", "-f", "raw", "-o", "preallocation=full", p, s)
        elif kind == "full-qcow2":
            sh(self.qimg, "create", "-q", "-f", "qcow2", "-o", "preallocation=full", p, s)
        elif kind == "sparse-qcow2":
            sh(self.qimg, "create", "-q", "-f", "qcow2", p, s)
        elif kind == "backed-qcow2":
            base = os.path.join(self.d, "base.raw")
            if not os.path.exists(base):
                sh(self.qimg, "create", "-q", "-f", "raw", "-o", "preallocation=full", base, s)
            sh(self.qimg, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", p)
        return p

    def fmt(self, kind):
        return "raw" if kind == "full-raw" else "qcow2"


def one_run(tool, img, fmt, row, count, cache):
    name, size, step, depth, write = row
    cmd = [tool, "bench", "-f", fmt, "-c", str(count), "-d", str(depth), "-s", str(size),
           "-S", str(step), "-t", cache] + (["-w"] if write else []) + [img]
    out = sh(*cmd)
    m = TIME_RE.search(out)
    if not m:
        raise RuntimeError(f"{' '.join(cmd)}: no 'Run completed' line in {out!r}")
    secs = max(float(m.group(1)), 0.0005)   # bench prints milliseconds
    return count / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvmini-img", default="build/img/kvmini-img")
    ap.add_argument("--qemu-img", default=shutil.which("qemu-img") or "qemu-img")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--count", type=int, default=20000, help="requests per run")
    ap.add_argument("--image-size", type=int, default=256 << 20)
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    ap.add_argument("--images", default="full-raw,full-qcow2,sparse-qcow2,backed-qcow2")
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS))
    ap.add_argument("--quick", action="store_true", help="smoke run: count 500, repeat 1")
    a = ap.parse_args()
    if a.quick:
        a.count, a.repeat, a.image_size = 500, 1, 32 << 20
    kimg = os.path.abspath(a.kvmini_img)
    engines = [("kvmini-img", kimg), ("qemu-img", a.qemu_img)]

    with tempfile.TemporaryDirectory(prefix="img-bench-", dir=a.dir) as d:
        cache = "none" if odirect_ok(d) else "writeback"
        print(f"# images in {d} ({a.image_size >> 20} MiB), cache={cache}, "
              f"{a.count} requests per run, {a.repeat} runs per engine")
        imgs = Images(a.qemu_img, d, a.image_size)
        rows = [r for r in ROWS if r[0] in a.rows.split(",")]
        print(f"{'row':<20} {'image':<13} {'engine':<11} {'min':>9} {'median':>9} {'max':>9}  IOPS")
        for kind in a.images.split(","):
            img = imgs.make(kind)
            probe = subprocess.run([kimg, "bench", "-f", imgs.fmt(kind), "-c", "1", img],
                                   capture_output=True, text=True)
            if probe.returncode:
                print(f"# {kind}: skipped, kvmini-img cannot open it: {probe.stderr.strip()}")
                continue
            for row in rows:
                iops = {n: [] for n, _ in engines}
                for rep in range(a.repeat):
                    order = engines if rep % 2 == 0 else engines[::-1]
                    for name, tool in order:
                        if row[4] and kind in ("sparse-qcow2", "backed-qcow2"):
                            img = imgs.make(kind)   # writes must allocate (and COW) every time
                        iops[name].append(one_run(tool, img, imgs.fmt(kind), row, a.count,
                                                  cache))
                for name, _ in engines:
                    v = iops[name]
                    print(f"{row[0]:<20} {kind:<13} {name:<11} {min(v):>9.0f} "
                          f"{statistics.median(v):>9.0f} {max(v):>9.0f}")
                sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
