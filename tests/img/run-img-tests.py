#!/usr/bin/env python3
"""kvmini-img against qemu-img on the same files in the same run.

usage: run-img-tests.py KVMINI_IMG GROUP
GROUP is one of create, info, check, map, convert, resize, bench, errors.
Prints TAP: one case per comparison. Cases that need something this machine
lacks (qemu-img, qcow2 in kvmini's block layer, O_DIRECT) print "# skip"
with the reason. Every case compares kvmini-img's result with qemu-img's on
the same image, or with a fact qemu-img reports about kvmini-img's output.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

KIMG = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
GROUP = sys.argv[2] if len(sys.argv) > 2 else None
QIMG = shutil.which("qemu-img")
QIO = shutil.which("qemu-io")


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def run(cmd, cwd, check=None, env=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check is not None and p.returncode != check:
        raise Fail(f"{' '.join(cmd)}: exit {p.returncode}, wanted {check}; "
                   f"stderr: {p.stderr.strip()[:300]}")
    return p


def k(cwd, *args, check=None):
    return run([KIMG, *args], cwd, check)


def q(cwd, *args, check=0):
    return run([QIMG, *args], cwd, check)


def qio(cwd, img, *cmds, fmt=None):
    args = [QIO] + (["-f", fmt] if fmt else []) + [a for c in cmds for a in ("-c", c)] + [img]
    run(args, cwd, check=0)


def eq(what, ours, theirs):
    if ours != theirs:
        raise Fail(f"{what} differs:\n  kvmini-img: {ours!r}\n  qemu-img:   {theirs!r}")


def one_line_error(p, what):
    lines = [l for l in p.stderr.replace("\r", "").split("\n") if l.strip()]
    if p.returncode != 1:
        raise Fail(f"{what}: exit {p.returncode}, wanted 1 (stderr {p.stderr!r})")
    if len(lines) != 1:
        raise Fail(f"{what}: wanted one line on stderr, got {len(lines)}: {p.stderr!r}")


def jload(p):
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise Fail(f"not JSON ({e}): {p.stdout[:300]!r}")


# ---- capabilities -----------------------------------------------------------

_caps = {}


def qcow2_helpers(d):
    """kvmini-img can read qcow2 headers (info/check/create)."""
    if "helpers" not in _caps:
        q(d, "create", "-q", "-f", "qcow2", "probe-h.qcow2", "1M")
        p = k(d, "info", "--output", "json", "probe-h.qcow2")
        _caps["helpers"] = None if p.returncode == 0 else p.stderr.strip()
    if _caps["helpers"]:
        raise Skip(f"qcow2 support not built into kvmini-img ({_caps['helpers']})")


def qcow2_driver(d):
    """block_open accepts qcow2 (map/convert/resize/bench on qcow2)."""
    if "driver" not in _caps:
        q(d, "create", "-q", "-f", "qcow2", "probe-d.qcow2", "1M")
        p = k(d, "map", "--output", "json", "probe-d.qcow2")
        _caps["driver"] = None if p.returncode == 0 else p.stderr.strip()
    if _caps["driver"]:
        raise Skip(f"block_open refuses qcow2 ({_caps['driver']})")


def odirect_dir():
    for base in [os.environ.get("TMPDIR"), "/var/tmp", "/tmp"]:
        if not base or not os.path.isdir(base):
            continue
        path = os.path.join(base, f"kvmini-img-odirect-{os.getpid()}")
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
            os.close(fd)
            os.unlink(path)
            return base
        except OSError:
            try:
                os.unlink(path)
            except OSError:
                pass
    return None


# ---- image builders ---------------------------------------------------------

def sparse_raw(d, name, size=16 << 20, data=((3 << 20, 4096), (8 << 20, 1 << 20))):
    with open(os.path.join(d, name), "wb") as f:
        f.truncate(size)
        for off, n in data:
            f.seek(off)
            f.write(bytes([(off >> 12) & 0xff or 1]) * n)
    return name


def patterned_qcow2(d, name, extra=()):
    q(d, "create", "-q", "-f", "qcow2", name, "64M")
    qio(d, name, "write -P 0xab 0 128k", "write -z 1M 64k", "write -P 0x5c 2M 4k",
        "write -P 0x11 40M 3M", *extra)
    return name


def backed_pair(d, base="base.qcow2", top="top.qcow2"):
    patterned_qcow2(d, base)
    q(d, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
    qio(d, top, "write -P 0x22 64k 128k", "write -z 2M 64k", "write -P 0x33 50M 64k")
    return base, top


def refblock_offset(path):
    """Offset of the first refcount block (the header says where the table is)."""
    with open(path, "rb") as f:
        hdr = f.read(104)
        rt = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt)
        return struct.unpack(">Q", f.read(8))[0]


def set_refcount(path, cluster, value):
    rb = refblock_offset(path)
    with open(path, "r+b") as f:
        f.seek(rb + 2 * cluster)
        f.write(struct.pack(">H", value))


def leaky(d, name):
    """Two clusters past the image end with refcount 1 and no reference."""
    patterned_qcow2(d, name)
    p = os.path.join(d, name)
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size + 2 * 65536)
    set_refcount(p, size // 65536, 1)
    set_refcount(p, size // 65536 + 1, 1)
    return name


def corrupt(d, name):
    """The first data cluster's refcount dropped to 0 while L2 uses it."""
    patterned_qcow2(d, name)
    m = json.loads(q(d, "map", "--output", "json", name).stdout)
    first = next(e["offset"] for e in m if e["data"])
    set_refcount(os.path.join(d, name), first // 65536, 0)
    return name


def set_incompat_bit(path, bit):
    with open(path, "r+b") as f:
        f.seek(72)
        v = struct.unpack(">Q", f.read(8))[0] | (1 << bit)
        f.seek(72)
        f.write(struct.pack(">Q", v))


# ---- cases ------------------------------------------------------------------

CASES = {g: [] for g in ("create", "info", "check", "map", "convert", "resize", "bench", "errors")}


def case(group):
    def reg(fn):
        CASES[group].append(fn)
        return fn
    return reg


# create ---------------------------------------------------------------------

@case("create")
def create_raw_size_and_sparse(d):
    k(d, "create", "-f", "raw", "r.raw", "10M", check=0)
    info = jload(q(d, "info", "--output", "json", "-f", "raw", "r.raw"))
    eq("virtual-size", info["virtual-size"], 10 << 20)
    eq("format", info["format"], "raw")
    st = os.stat(os.path.join(d, "r.raw"))
    if st.st_blocks * 512 > 64 << 10:
        raise Fail(f"raw image not sparse: {st.st_blocks * 512} bytes allocated")


@case("create")
def create_raw_size_spellings_match_qemu(d):
    for size in ["1000", "1k", "1.5M", "2G", "1T", "512b"]:
        ours = k(d, "create", "-f", "raw", "k.raw", size, check=0).stdout.replace("k.raw", "X")
        theirs = q(d, "create", "-f", "raw", "q.raw", size).stdout.replace("q.raw", "X")
        eq(f"Formatting line for size {size}", ours, theirs)
        eq(f"file size for {size}", os.path.getsize(os.path.join(d, "k.raw")),
           os.path.getsize(os.path.join(d, "q.raw")))


@case("create")
def create_raw_preallocation_full(d):
    ours = k(d, "create", "-f", "raw", "-o", "preallocation=full", "k.raw", "1M", check=0)
    theirs = q(d, "create", "-f", "raw", "-o", "preallocation=full", "q.raw", "1M")
    eq("Formatting line", ours.stdout.replace("k.raw", "X"), theirs.stdout.replace("q.raw", "X"))
    m = jload(q(d, "map", "--output", "json", "-f", "raw", "k.raw"))
    eq("map of a fully preallocated raw", [(e["data"], e["length"]) for e in m], [(True, 1 << 20)])


QCOW2_CREATE_VARIANTS = [
    [],
    ["-o", "compat=0.10"],
    ["-o", "cluster_size=4k"],
    ["-o", "cluster_size=2M,refcount_bits=8"],
    ["-o", "refcount_bits=1"],
    ["-o", "refcount_bits=64,lazy_refcounts=on"],
    ["-o", "compression_type=zstd"],
    ["-o", "compat=1.1", "-o", "preallocation=metadata"],
]


def cmp_qcow2_info(d, ours, theirs):
    a = jload(q(d, "info", "--output", "json", ours))
    b = jload(q(d, "info", "--output", "json", theirs))
    for key in ("virtual-size", "format", "cluster-size", "format-specific", "dirty-flag",
                "backing-filename", "backing-filename-format"):
        eq(f"qemu-img info {key}", a.get(key), b.get(key))


@case("create")
def create_qcow2_variants_match_qemu(d):
    qcow2_helpers(d)
    for opts in QCOW2_CREATE_VARIANTS:
        ours = k(d, "create", "-f", "qcow2", *opts, "k.qcow2", "100M", check=0)
        theirs = q(d, "create", "-f", "qcow2", *opts, "q.qcow2", "100M")
        eq(f"Formatting line {opts}", ours.stdout.replace("k.qcow2", "X"),
           theirs.stdout.replace("q.qcow2", "X"))
        cmp_qcow2_info(d, "k.qcow2", "q.qcow2")
        q(d, "check", "k.qcow2")
        if "preallocation=metadata" in " ".join(opts):
            eq("map (metadata preallocation)", q(d, "map", "--output", "json", "k.qcow2").stdout,
               q(d, "map", "--output", "json", "q.qcow2").stdout)


@case("create")
def create_qcow2_backed_relative_no_size(d):
    qcow2_helpers(d)
    os.mkdir(os.path.join(d, "sub"))
    q(d, "create", "-q", "-f", "qcow2", "base.qcow2", "77M")
    q(d, "create", "-q", "-f", "raw", "base.raw", "5M")
    for back, fmt in [("../base.qcow2", "qcow2"), ("../base.raw", "raw")]:
        ours = k(d, "create", "-f", "qcow2", "-b", back, "-F", fmt, "sub/k.qcow2", check=0)
        theirs = q(d, "create", "-f", "qcow2", "-b", back, "-F", fmt, "sub/q.qcow2")
        eq("Formatting line", ours.stdout.replace("k.qcow2", "X"),
           theirs.stdout.replace("q.qcow2", "X"))
        cmp_qcow2_info(d, "sub/k.qcow2", "sub/q.qcow2")
        a = jload(q(d, "info", "--output", "json", "sub/k.qcow2"))
        eq("full-backing-filename", a.get("full-backing-filename"), "sub/" + back)
        q(d, "check", "sub/k.qcow2")


@case("create")
def create_qcow2_refuses_what_qemu_refuses(d):
    qcow2_helpers(d)
    q(d, "create", "-q", "-f", "qcow2", "b.qcow2", "1M")
    for args in [["-b", "b.qcow2"], ["-o", "cluster_size=1000"], ["-o", "foo=1"],
                 ["-o", "compat=0.10,lazy_refcounts=on"], ["-o", "refcount_bits=3"],
                 ["-b", "missing.qcow2", "-F", "qcow2"],
                 ["-b", "b.qcow2", "-F", "qcow2", "-o", "preallocation=metadata"]]:
        theirs = q(d, "create", "-f", "qcow2", *args, "q.qcow2", "1M", check=1)
        ours = k(d, "create", "-f", "qcow2", *args, "k.qcow2", "1M")
        one_line_error(ours, f"create {args} (qemu-img: {theirs.stderr.strip()[:80]})")


# info -----------------------------------------------------------------------

def cmp_info(d, path, *opts, fields=None):
    a = k(d, "info", "--output", "json", *opts, path, check=0)
    b = q(d, "info", "--output", "json", *opts, path)
    ja, jb = jload(a), jload(b)
    if fields:
        strip = lambda o: {f: o.get(f) for f in fields}
        ja = [strip(x) for x in ja] if isinstance(ja, list) else strip(ja)
        jb = [strip(x) for x in jb] if isinstance(jb, list) else strip(jb)
    eq(f"info --output json {' '.join(opts)} {path}", ja, jb)
    eq(f"info (human) {' '.join(opts)} {path}", k(d, "info", *opts, path, check=0).stdout,
       q(d, "info", *opts, path).stdout)


@case("info")
def info_raw_sparse(d):
    sparse_raw(d, "s.raw")
    cmp_info(d, "s.raw")
    cmp_info(d, "s.raw", "-f", "raw")


@case("info")
def info_raw_made_by_qemu(d):
    q(d, "create", "-q", "-f", "raw", "q.raw", "3G")
    cmp_info(d, "q.raw")
    cmp_info(d, os.path.join(d, "q.raw"), "-U")


@case("info")
def info_qcow2_v3(d):
    qcow2_helpers(d)
    patterned_qcow2(d, "v3.qcow2")
    cmp_info(d, "v3.qcow2")


@case("info")
def info_qcow2_v2_and_options(d):
    qcow2_helpers(d)
    q(d, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "10M")
    cmp_info(d, "v2.qcow2")
    q(d, "create", "-q", "-f", "qcow2", "-o",
      "cluster_size=512,refcount_bits=4,lazy_refcounts=on,compression_type=zstd", "o.qcow2", "1G")
    cmp_info(d, "o.qcow2")


@case("info")
def info_qcow2_dirty_and_corrupt_bits(d):
    qcow2_helpers(d)
    q(d, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "dirty.qcow2", "10M")
    set_incompat_bit(os.path.join(d, "dirty.qcow2"), 0)
    cmp_info(d, "dirty.qcow2")
    q(d, "create", "-q", "-f", "qcow2", "bad.qcow2", "10M")
    set_incompat_bit(os.path.join(d, "bad.qcow2"), 1)
    cmp_info(d, "bad.qcow2")


@case("info")
def info_backing_chain(d):
    qcow2_helpers(d)
    q(d, "create", "-q", "-f", "raw", "r.raw", "64M")
    q(d, "create", "-q", "-f", "qcow2", "-b", "r.raw", "-F", "raw", "mid.qcow2")
    q(d, "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2")
    cmp_info(d, "top.qcow2")
    cmp_info(d, "top.qcow2", "--backing-chain")


@case("info")
def info_backing_chain_relative_names(d):
    qcow2_helpers(d)
    for sub in ("a", "a/b"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    q(d, "create", "-q", "-f", "qcow2", "base.qcow2", "8M")
    q(d, "create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", "a/mid.qcow2")
    q(d, "create", "-q", "-f", "qcow2", "-b", "../mid.qcow2", "-F", "qcow2", "a/b/top.qcow2")
    q(d, "create", "-q", "-f", "qcow2", "-b", os.path.join(d, "base.qcow2"), "-F", "qcow2",
      "abs.qcow2")
    cmp_info(d, "a/b/top.qcow2", "--backing-chain")
    cmp_info(d, os.path.join(d, "a/b/top.qcow2"), "--backing-chain")
    cmp_info(d, "abs.qcow2", "--backing-chain")


# check ----------------------------------------------------------------------

def cmp_check(d, path, *opts, want):
    a = k(d, "check", *opts, path)
    b = run([QIMG, "check", *opts, path], d)
    eq(f"check {path} exit status", (a.returncode, b.returncode), (want, want))
    eq(f"check {path} human output", a.stdout, b.stdout)
    a = k(d, "check", "--output", "json", *opts, path)
    b = run([QIMG, "check", "--output", "json", *opts, path], d)
    eq(f"check --output json {path}", jload(a), jload(b))
    eq(f"check --output json {path} exit status", a.returncode, b.returncode)


@case("check")
def check_clean(d):
    qcow2_helpers(d)
    patterned_qcow2(d, "c.qcow2")
    cmp_check(d, "c.qcow2", want=0)
    q(d, "create", "-q", "-f", "qcow2", "empty.qcow2", "1G")
    cmp_check(d, "empty.qcow2", want=0)


@case("check")
def check_leaks_exit_3(d):
    qcow2_helpers(d)
    leaky(d, "l.qcow2")
    cmp_check(d, "l.qcow2", want=3)


@case("check")
def check_corruption_exit_2(d):
    qcow2_helpers(d)
    corrupt(d, "c.qcow2")
    cmp_check(d, "c.qcow2", want=2)


@case("check")
def check_repair_leaks(d):
    qcow2_helpers(d)
    leaky(d, "k.qcow2")
    shutil.copy(os.path.join(d, "k.qcow2"), os.path.join(d, "q.qcow2"))
    shutil.copy(os.path.join(d, "k.qcow2"), os.path.join(d, "kj.qcow2"))
    shutil.copy(os.path.join(d, "k.qcow2"), os.path.join(d, "qj.qcow2"))
    a = k(d, "check", "-r", "leaks", "k.qcow2")
    b = run([QIMG, "check", "-r", "leaks", "q.qcow2"], d)
    eq("check -r leaks exit status", a.returncode, b.returncode)
    eq("check -r leaks output", a.stdout, b.stdout)
    a = jload(k(d, "check", "-r", "leaks", "--output", "json", "kj.qcow2"))
    b = jload(run([QIMG, "check", "-r", "leaks", "--output", "json", "qj.qcow2"], d))
    a.pop("filename"), b.pop("filename")
    eq("check -r leaks --output json", a, b)
    for f in ("k.qcow2", "kj.qcow2"):
        q(d, "check", f)   # clean after our repair


@case("check")
def check_raw_unsupported(d):
    sparse_raw(d, "s.raw")
    a, b = k(d, "check", "s.raw"), run([QIMG, "check", "s.raw"], d)
    eq("check raw exit status", a.returncode, b.returncode)


# map ------------------------------------------------------------------------

def cmp_map(d, path, *opts):
    a = k(d, "map", "--output", "json", *opts, path, check=0)
    b = q(d, "map", "--output", "json", *opts, path)
    eq(f"map --output json {path}", a.stdout, b.stdout)   # byte for byte
    jload(a)
    a = k(d, "map", *opts, path, check=0)
    b = q(d, "map", *opts, path)
    eq(f"map (human) {path}", a.stdout, b.stdout)


@case("map")
def map_raw_sparse(d):
    # qemu-img reports the holes of a raw file as present zero data with an
    # offset (the file's own), exactly as block_status does: no
    # normalisation needed.
    sparse_raw(d, "s.raw")
    cmp_map(d, "s.raw")
    cmp_map(d, "s.raw", "-f", "raw")


@case("map")
def map_raw_full_and_empty(d):
    with open(os.path.join(d, "full.raw"), "wb") as f:
        f.write(os.urandom(1 << 20))
    cmp_map(d, "full.raw")
    with open(os.path.join(d, "hole.raw"), "wb") as f:
        f.truncate(4 << 20)
    cmp_map(d, "hole.raw")


@case("map")
def map_qcow2(d):
    qcow2_driver(d)
    patterned_qcow2(d, "p.qcow2")
    cmp_map(d, "p.qcow2")
    # 4 KiB clusters: one L2 table maps 2 MiB, so the data at 1M..5M comes
    # back from block_status in pieces that map must merge as qemu-img does.
    q(d, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "small.qcow2", "16M")
    qio(d, "small.qcow2", "write -P 1 1M 4M", "write -z 7M 3M", "write -P 2 12M 8k")
    cmp_map(d, "small.qcow2")


@case("map")
def map_qcow2_backed(d):
    qcow2_driver(d)
    _, top = backed_pair(d)
    cmp_map(d, top)
    q(d, "create", "-q", "-f", "raw", "r.raw", "8M")
    qio(d, "r.raw", "write -P 7 1M 1M", fmt="raw")
    q(d, "create", "-q", "-f", "qcow2", "-b", "r.raw", "-F", "raw", "onraw.qcow2")
    qio(d, "onraw.qcow2", "write -P 8 3M 64k")
    cmp_map(d, "onraw.qcow2")


# convert --------------------------------------------------------------------

def compare_identical(d, a, b):
    p = run([QIMG, "compare", a, b], d)
    if p.returncode != 0:
        raise Fail(f"qemu-img compare {a} {b}: exit {p.returncode}: {p.stdout.strip()}")


@case("convert")
def convert_raw_to_raw(d):
    sparse_raw(d, "s.raw")
    k(d, "convert", "-O", "raw", "s.raw", "o.raw", check=0)
    compare_identical(d, "s.raw", "o.raw")
    # the copy stays sparse: qemu-img map sees the same data extents
    ours = [(e["start"], e["length"]) for e in jload(q(d, "map", "--output", "json", "o.raw"))
            if e["data"]]
    theirs = [(e["start"], e["length"]) for e in jload(q(d, "map", "--output", "json", "s.raw"))
              if e["data"]]
    eq("data extents of the converted raw", ours, theirs)


@case("convert")
def convert_keeps_zeroes_sparse_like_qemu(d):
    # written zeroes (allocated, not holes) between data: qemu-img convert
    # leaves them out of the target, and so must we
    with open(os.path.join(d, "z.raw"), "wb") as f:
        f.write(b"\x01" * 8192 + bytes(1 << 20) + b"\x02" * 4096 + bytes(12288))
    k(d, "convert", "-O", "raw", "z.raw", "k.raw", check=0)
    q(d, "convert", "-O", "raw", "z.raw", "q.raw")
    compare_identical(d, "z.raw", "k.raw")
    ext = lambda f: [(e["start"], e["length"]) for e in
                     jload(q(d, "map", "--output", "json", f)) if e["data"]]
    eq("data extents after convert", ext("k.raw"), ext("q.raw"))


@case("convert")
def convert_raw_to_qcow2(d):
    qcow2_driver(d)
    sparse_raw(d, "s.raw")
    k(d, "convert", "-p", "-O", "qcow2", "s.raw", "o.qcow2", check=0)
    compare_identical(d, "s.raw", "o.qcow2")
    q(d, "check", "o.qcow2")
    k(d, "convert", "-O", "qcow2", "-o", "cluster_size=4k,compat=0.10", "s.raw", "o4.qcow2",
      check=0)
    compare_identical(d, "s.raw", "o4.qcow2")
    q(d, "check", "o4.qcow2")
    info = jload(q(d, "info", "--output", "json", "o4.qcow2"))
    eq("cluster size from -o", (info["cluster-size"], info["format-specific"]["data"]["compat"]),
       (4096, "0.10"))


@case("convert")
def convert_qcow2_to_raw(d):
    qcow2_driver(d)
    patterned_qcow2(d, "p.qcow2")
    k(d, "convert", "-O", "raw", "p.qcow2", "o.raw", check=0)
    compare_identical(d, "p.qcow2", "o.raw")
    q(d, "convert", "-O", "raw", "p.qcow2", "q.raw")
    compare_identical(d, "q.raw", "o.raw")


@case("convert")
def convert_backed_qcow2_to_qcow2(d):
    qcow2_driver(d)
    _, top = backed_pair(d)
    k(d, "convert", "-f", "qcow2", "-O", "qcow2", top, "flat.qcow2", check=0)
    compare_identical(d, top, "flat.qcow2")
    q(d, "check", "flat.qcow2")
    info = jload(q(d, "info", "--output", "json", "flat.qcow2"))
    if "backing-filename" in info:
        raise Fail("converted image still has a backing file")


@case("convert")
def convert_compressed(d):
    qcow2_driver(d)
    sparse_raw(d, "s.raw")
    # random bytes do not shrink: those clusters are stored plain
    with open(os.path.join(d, "s.raw"), "r+b") as f:
        f.seek(3 << 20)
        f.write(os.urandom(200 << 10))
    for opts in ([], ["-o", "compression_type=zstd"], ["-o", "cluster_size=4k,compat=0.10"]):
        k(d, "convert", "-c", "-O", "qcow2", *opts, "s.raw", "c.qcow2", check=0)
        compare_identical(d, "s.raw", "c.qcow2")
        out = q(d, "check", "c.qcow2")
        m = re.search(r"([0-9.]+)% compressed clusters", out.stdout)
        if not m or float(m.group(1)) == 0:
            raise Fail(f"convert -c {opts}: no compressed clusters: {out.stdout!r}")
        # as small as qemu-img's own -c output, give or take a cluster
        q(d, "convert", "-c", "-O", "qcow2", *opts, "s.raw", "qc.qcow2")
        ours, theirs = (os.path.getsize(os.path.join(d, f)) for f in ("c.qcow2", "qc.qcow2"))
        if ours > theirs + 65536:
            raise Fail(f"convert -c {opts}: {ours} bytes, qemu-img {theirs}")
    one_line_error(k(d, "convert", "-c", "-O", "raw", "s.raw", "c.raw"), "convert -c to raw")


# resize ---------------------------------------------------------------------

@case("resize")
def resize_raw_grow(d):
    sparse_raw(d, "k.raw")
    shutil.copy(os.path.join(d, "k.raw"), os.path.join(d, "q.raw"))
    for size in ["20M", "+1M", "+512"]:
        a = k(d, "resize", "k.raw", size, check=0)
        b = q(d, "resize", "-f", "raw", "q.raw", size)
        eq(f"resize {size} output", a.stdout, b.stdout)
        compare_identical(d, "k.raw", "q.raw")
        eq("size", os.path.getsize(os.path.join(d, "k.raw")),
           os.path.getsize(os.path.join(d, "q.raw")))


@case("resize")
def resize_raw_shrink_needs_flag(d):
    sparse_raw(d, "k.raw")
    one_line_error(k(d, "resize", "k.raw", "1M"), "raw shrink without --shrink")
    eq("size after refused shrink", os.path.getsize(os.path.join(d, "k.raw")), 16 << 20)
    k(d, "resize", "--shrink", "k.raw", "-8M", check=0)
    eq("size after --shrink", os.path.getsize(os.path.join(d, "k.raw")), 8 << 20)


@case("resize")
def resize_qcow2_grow(d):
    qcow2_driver(d)
    patterned_qcow2(d, "k.qcow2")
    shutil.copy(os.path.join(d, "k.qcow2"), os.path.join(d, "q.qcow2"))
    for size in ["+64M", "1G"]:
        k(d, "resize", "k.qcow2", size, check=0)
        q(d, "resize", "q.qcow2", size)
        eq("virtual-size", jload(q(d, "info", "--output", "json", "k.qcow2"))["virtual-size"],
           jload(q(d, "info", "--output", "json", "q.qcow2"))["virtual-size"])
        q(d, "check", "k.qcow2")
        compare_identical(d, "k.qcow2", "q.qcow2")


@case("resize")
def resize_qcow2_shrink_allocated_tail_refused(d):
    qcow2_driver(d)
    patterned_qcow2(d, "k.qcow2")          # data at 40M..43M
    before = open(os.path.join(d, "k.qcow2"), "rb").read()
    one_line_error(k(d, "resize", "k.qcow2", "32M"), "qcow2 shrink without --shrink")
    one_line_error(k(d, "resize", "--shrink", "k.qcow2", "32M"), "shrink over allocated data")
    eq("image unchanged by the refused shrink",
       open(os.path.join(d, "k.qcow2"), "rb").read() == before, True)
    q(d, "check", "k.qcow2")


# bench ----------------------------------------------------------------------

RUN_RE = re.compile(r"^Run completed in \d+\.\d{3} seconds\.$")


def cmp_bench(d, img, *opts, fmt="raw"):
    a = k(d, "bench", "-f", fmt, *opts, img, check=0)
    b = q(d, "bench", "-f", fmt, *opts, img)
    la, lb = a.stdout.splitlines(), b.stdout.splitlines()
    eq(f"bench {' '.join(opts)} line count", len(la), len(lb))
    eq(f"bench {' '.join(opts)} first line", la[0], lb[0])
    if not RUN_RE.match(la[-1]):
        raise Fail(f"bench last line: {la[-1]!r}")


@case("bench")
def bench_read_write_depths(d):
    q(d, "create", "-q", "-f", "raw", "b.raw", "16M")
    for depth in ("1", "32"):
        cmp_bench(d, "b.raw", "-c", "1000", "-d", depth)
        cmp_bench(d, "b.raw", "-c", "1000", "-d", depth, "-w")
    cmp_bench(d, "b.raw", "-c", "100", "-d", "4", "-s", "64k", "-S", "128k", "-o", "1M")
    cmp_bench(d, "b.raw", "-c", "100", "-t", "writeback", "-w")


@case("bench")
def bench_cache_none(d):
    base = odirect_dir()
    if not base:
        raise Skip("no directory here whose file system takes O_DIRECT")
    with tempfile.TemporaryDirectory(dir=base) as od:
        q(od, "create", "-q", "-f", "raw", "b.raw", "16M")
        for depth in ("1", "32"):
            cmp_bench(od, "b.raw", "-c", "1000", "-d", depth, "-t", "none")
            cmp_bench(od, "b.raw", "-c", "1000", "-d", depth, "-t", "none", "-w")


def prefilled(d, name, fmt):
    q(d, "create", "-q", "-f", fmt, name, "8M")
    qio(d, name, "write -P 0xaa 0 8M", fmt=fmt)


def bench_pattern(d, fmt):
    for opts in (["-c", "300", "-d", "8"],
                 ["-c", "50", "-d", "32", "-s", "16k", "-S", "64k", "-o", "4k",
                  "--pattern=0x55"]):
        prefilled(d, f"k.{fmt}", fmt)
        prefilled(d, f"q.{fmt}", fmt)
        k(d, "bench", "-f", fmt, "-w", *opts, f"k.{fmt}", check=0)
        q(d, "bench", "-f", fmt, "-w", *opts, f"q.{fmt}")
        compare_identical(d, f"k.{fmt}", f"q.{fmt}")
        # and the pattern really was written: not identical to the prefill any more
        prefilled(d, f"p.{fmt}", fmt)
        if run([QIMG, "compare", f"k.{fmt}", f"p.{fmt}"], d).returncode == 0:
            raise Fail("bench -w wrote nothing")
        if fmt == "qcow2":
            q(d, "check", f"k.{fmt}")


@case("bench")
def bench_write_pattern_like_qemu_raw(d):
    bench_pattern(d, "raw")


@case("bench")
def bench_write_pattern_like_qemu_qcow2(d):
    qcow2_driver(d)
    bench_pattern(d, "qcow2")


@case("bench")
def bench_qcow2(d):
    qcow2_driver(d)
    q(d, "create", "-q", "-f", "qcow2", "b.qcow2", "16M")
    cmp_bench(d, "b.qcow2", "-c", "1000", "-d", "32", "-w", fmt="qcow2")
    cmp_bench(d, "b.qcow2", "-c", "1000", "-d", "1", fmt="qcow2")
    q(d, "check", "b.qcow2")


# errors ---------------------------------------------------------------------

@case("errors")
def error_missing_file(d):
    for args in (["info", "nope"], ["check", "nope"], ["map", "nope"], ["resize", "nope", "1M"],
                 ["bench", "-c", "1", "nope"], ["convert", "-O", "raw", "nope", "o.raw"]):
        b = run([QIMG, *args], d)
        eq(f"qemu-img {args} exit", b.returncode, 1)
        one_line_error(k(d, *args), " ".join(args))


@case("errors")
def error_usage(d):
    sparse_raw(d, "s.raw")
    for args in (["info", "-Z", "s.raw"], ["info", "--output", "xml", "s.raw"], ["frob"], [],
                 ["map", "--bogus", "s.raw"], ["info"], ["check", "-r", "some", "s.raw"],
                 ["convert", "-O", "qcow3", "s.raw", "o"], ["bench", "-c", "x", "s.raw"],
                 ["bench", "-t", "unsafe-ish", "s.raw"], ["create", "-f", "vmdk2", "x", "1M"]):
        b = run([QIMG, *args], d)
        eq(f"qemu-img {args} exit", b.returncode, 1)
        one_line_error(k(d, *args), " ".join(args) or "(no arguments)")


@case("errors")
def error_bad_size(d):
    for size in ("12Q", "-5", "1.5", "abc", "99999999999T"):
        b = run([QIMG, "create", "-f", "raw", "q.raw", "--", size], d)
        eq(f"qemu-img create size {size} exit", b.returncode, 1)
        one_line_error(k(d, "create", "-f", "raw", "k.raw", "--", size), f"create size {size}")
    sparse_raw(d, "s.raw")
    one_line_error(k(d, "resize", "s.raw", "+x"), "resize +x")
    one_line_error(k(d, "create", "-f", "raw", "k.raw"), "create without size")


@case("errors")
def error_truncated_qcow2(d):
    qcow2_helpers(d)
    patterned_qcow2(d, "t.qcow2")
    for cut in (50, 100, 70000):
        shutil.copy(os.path.join(d, "t.qcow2"), os.path.join(d, "cut.qcow2"))
        os.truncate(os.path.join(d, "cut.qcow2"), cut)
        for args in (["info", "cut.qcow2"], ["check", "cut.qcow2"], ["map", "cut.qcow2"],
                     ["convert", "-O", "raw", "cut.qcow2", "o.raw"]):
            one_line_error(k(d, *args), f"{' '.join(args)} truncated to {cut}")


# ---- driver -----------------------------------------------------------------

def main():
    if GROUP not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    cases = CASES[GROUP]
    print(f"1..{len(cases)}")
    if not QIMG or not QIO:
        for i, c in enumerate(cases, 1):
            print(f"ok {i} {c.__name__} # skip qemu-img/qemu-io not installed (qemu-utils)")
        return 0
    failed = 0
    for i, c in enumerate(cases, 1):
        with tempfile.TemporaryDirectory(prefix=f"kvmini-img-{c.__name__}-") as d:
            try:
                c(d)
                print(f"ok {i} {c.__name__}")
            except Skip as e:
                print(f"ok {i} {c.__name__} # skip {e}")
            except Fail as e:
                failed += 1
                print(f"not ok {i} {c.__name__}")
                for line in str(e).splitlines():
                    print(f"# {line}")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
