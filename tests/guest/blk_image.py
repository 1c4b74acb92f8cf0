#!/usr/bin/env python3
"""Host side of the micro-guest's test=blk: makes the disk image and checks
it afterwards, independently of what the guest says about itself.

  blk_image.py create IMG SIZE_MIB HOSTSEED
      IMG filled with the host pattern (seed HOSTSEED) in every sector.
  blk_image.py check IMG SIZE_MIB HOSTSEED CONSOLE_LOG
      IMG must still be SIZE_MIB MiB; the ranges the guest reported as
        "microguest: blk data sectors S+C seed=N"  hold pattern N,
        "microguest: blk zero sectors S+C (how)"   are all zero,
        "microguest: blk any sectors S+C (how)"    are not checked,
      and every other sector holds the host pattern. Fails if the log has no
      data line (the guest did not get that far).

The pattern must match test_blk.c: sector s, seed x = 64 little-endian
64-bit words, word k = mix64((x << 40) ^ s) + k * GOLDEN mod 2^64, mix64 the
splitmix64 finaliser.
"""
import re
import struct
import sys

GOLDEN = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1
SECTOR = 512
_offsets = [k * GOLDEN & M64 for k in range(SECTOR // 8)]
_pack = struct.Struct("<64Q").pack


def mix64(z):
    z = (z + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def sector(s, seed):
    base = mix64(((seed << 40) & M64) ^ s)
    return _pack(*[(base + o) & M64 for o in _offsets])


def create(path, mib, seed):
    n = mib * 2048
    with open(path, "wb") as f:
        for start in range(0, n, 2048):
            f.write(b"".join(sector(s, seed) for s in range(start, min(n, start + 2048))))


def check(path, mib, hostseed, log):
    text = open(log, encoding="utf-8", errors="replace").read().replace("\r", "")
    ranges = []  # (start, count, seed or None for zero, "any" to skip)
    for m in re.finditer(r"^microguest: blk data sectors (\d+)\+(\d+) seed=(\d+)$", text, re.M):
        ranges.append((int(m[1]), int(m[2]), int(m[3])))
    if not ranges:
        print("blk_image: FAIL: console log has no 'microguest: blk data sectors' line")
        return 1
    for m in re.finditer(r"^microguest: blk (zero|any) sectors (\d+)\+(\d+) ", text, re.M):
        ranges.append((int(m[2]), int(m[3]), None if m[1] == "zero" else "any"))
    n = mib * 2048
    data = open(path, "rb").read()
    if len(data) != n * SECTOR:
        print(f"blk_image: FAIL: {path} is {len(data)} bytes, want {n * SECTOR}")
        return 1
    want_of = {}
    for start, count, what in ranges:
        for s in range(start, start + count):
            want_of[s] = what
    zero = bytes(SECTOR)
    bad = 0
    for s in range(n):
        what = want_of[s] if s in want_of else ("host", hostseed)
        if what == "any":
            continue
        got = data[s * SECTOR:(s + 1) * SECTOR]
        if what is None:
            want, name = zero, "zeros"
        elif isinstance(what, tuple):
            want, name = sector(s, what[1]), f"host pattern seed={what[1]}"
        else:
            want, name = sector(s, what), f"guest pattern seed={what}"
        if got != want:
            if bad < 5:
                print(f"blk_image: FAIL: sector {s}: want {name}, got {got[:16].hex()}...")
            bad += 1
    if bad:
        print(f"blk_image: FAIL: {bad} sectors wrong")
        return 1
    desc = ", ".join(f"{a}+{c}:{'zero' if w is None else w if w == 'any' else 'seed=%d' % w}"
                     for a, c, w in ranges)
    print(f"blk_image: ok: {n} sectors; guest ranges {desc}; the rest has the host pattern")
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "create":
        create(argv[2], int(argv[3]), int(argv[4]))
        return 0
    if len(argv) == 6 and argv[1] == "check":
        return check(argv[2], int(argv[3]), int(argv[4]), argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
