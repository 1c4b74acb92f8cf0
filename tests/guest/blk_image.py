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
      and every other sector holds the host pattern (all zeros when HOSTSEED
      is "zero": a fresh qcow2 image). Fails if the log has no data line (the
      guest did not get that far).
  blk_image.py bench-check IMG SIZE_MIB HOSTSEED|zero WORDS
      after test=blkbench bench=randwrite|seqwrite with the command-line
      WORDS (bs= qd= ios= seed= span=, last one wins, the guest's defaults):
      recomputes the guest's buffers and the set of blocks it wrote (the
      same xorshift as test_blkbench.c), then every sector of a written
      block must hold the same sector of one of the qd buffers, and every
      other sector the host pattern (or zeros).

A trailing word "repeat" (create, check, bench-check) selects the guest's
blk_pattern=repeat: the stride below is 0, so every word of a sector is the
same (compressible, for a compressed qcow2 base).

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
_repeat = [0] * (SECTOR // 8)
_pack = struct.Struct("<64Q").pack


def mix64(z):
    z = (z + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def sector(s, seed):
    base = mix64(((seed << 40) & M64) ^ s)
    return _pack(*[(base + o) & M64 for o in (_repeat if REPEAT else _offsets)])


REPEAT = False


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
        what = want_of[s] if s in want_of else (None if hostseed == "zero" else ("host", hostseed))
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
    rest = "zeros" if hostseed == "zero" else "the host pattern"
    print(f"blk_image: ok: {n} sectors; guest ranges {desc}; the rest has {rest}")
    return 0


def bench_check(path, mib, hostseed, words):
    opt = {}
    for w in words.split():
        if "=" in w:
            k, v = w.split("=", 1)
            opt[k] = v
    op = opt.get("bench", "randread")
    if op not in ("randwrite", "seqwrite"):
        print(f"blk_image: FAIL: bench-check needs bench=randwrite or seqwrite, not {op}")
        return 1
    bs, qd, ios = int(opt.get("bs", 4096)), int(opt.get("qd", 1)), int(opt.get("ios", 10000))
    n = mib * 2048
    span = min(int(opt.get("span", n)), n)
    spb = bs // SECTOR
    nblocks = span // spb
    state = [(int(opt.get("seed", 1)) * GOLDEN | 1) & M64]

    def rng():  # test_blkbench.c: xorshift64*
        x = state[0]
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        state[0] = x
        return (x * 0x2545F4914F6CDD1D) & M64

    words64 = [rng() for _ in range(qd * bs // 8)]
    bufs = struct.pack(f"<{len(words64)}Q", *words64)
    # choices[j]: the qd contents sector j of a block may have
    choices = [{bufs[i * bs + j * SECTOR:i * bs + (j + 1) * SECTOR] for i in range(qd)}
               for j in range(spb)]
    if op == "randwrite":
        written = {rng() % nblocks for _ in range(ios)}
    else:
        written = {k % nblocks for k in range(ios)}
    data = open(path, "rb").read()
    if len(data) != n * SECTOR:
        print(f"blk_image: FAIL: {path} is {len(data)} bytes, want {n * SECTOR}")
        return 1
    zero = bytes(SECTOR)
    bad = 0
    for s in range(n):
        got = data[s * SECTOR:(s + 1) * SECTOR]
        b = s // spb
        if b < nblocks and b in written:
            ok, name = got in choices[s % spb], f"one of the {qd} buffers (block {b})"
        elif hostseed == "zero":
            ok, name = got == zero, "zeros (never written)"
        else:
            ok, name = got == sector(s, int(hostseed)), "host pattern (never written)"
        if not ok:
            if bad < 5:
                print(f"blk_image: FAIL: sector {s}: want {name}, got {got[:16].hex()}...")
            bad += 1
    if bad:
        print(f"blk_image: FAIL: {bad} sectors wrong")
        return 1
    print(f"blk_image: ok: {n} sectors; {len(written)} blocks of {bs} bytes written by {op} "
          f"hold the guest's buffers, the rest {'zeros' if hostseed == 'zero' else 'the host pattern'}")
    return 0


def main(argv):
    global REPEAT
    if len(argv) > 2 and argv[-1] == "repeat":
        REPEAT = True
        argv = argv[:-1]
    if len(argv) == 5 and argv[1] == "create":
        create(argv[2], int(argv[3]), int(argv[4]))
        return 0
    if len(argv) == 6 and argv[1] == "check":
        hs = argv[4] if argv[4] == "zero" else int(argv[4])
        return check(argv[2], int(argv[3]), hs, argv[5])
    if len(argv) == 6 and argv[1] == "bench-check":
        return bench_check(argv[2], int(argv[3]), argv[4], argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
