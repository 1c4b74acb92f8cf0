#!/usr/bin/env python3
"""kvmini-bench smoke run (suite guest): `kvmini-bench --quick` with every
workload, under QEMU too when it is installed, then checks that each
micro-guest workload produced its rows on every side and that
results.json, results.csv and the charts are there and parse back to the
same numbers. Function only: --quick sizes are too small to be figures.

  smoke_test.py KVMINI_BENCH OUTDIR
Exit 77 (skipped) without a usable /dev/kvm."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402


def main():
    launcher, out = sys.argv[1], sys.argv[2]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        return 77
    shutil.rmtree(out, ignore_errors=True)
    qemu = shutil.which("qemu-system-x86_64")
    cmd = [launcher, "--quick", "--out", out] + (["--compare-qemu"] if qemu else [])
    if not qemu:
        print("note: no qemu-system-x86_64: the QEMU side is not checked")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    print(p.stdout[-6000:])
    print(p.stderr[-3000:], file=sys.stderr)
    problems = []
    if p.returncode != 0:
        problems.append(f"kvmini-bench exited {p.returncode}")
    guests = ["kvmini"] + (["qemu"] if qemu else [])
    want = {}
    for row in ("cpu-int", "cpu-fp", "mem-bw-copy", "mem-bw-triad", "mem-lat-4k", "mem-lat-64k",
                "mem-lat-4m", "exit-pio", "exit-mmio", "exit-kick", "disk-randread-4k-qd1",
                "disk-randwrite-4k-qd32", "disk-seqread-1m-qd4", "net-user-pps", "net-user-rr"):
        want[row] = ["host"] + guests
    if shutil.which("qemu-img"):
        want["disk-randread-4k-qd1-qcow2"] = ["host"] + guests
    if os.geteuid() == 0 and os.path.exists("/dev/net/tun"):
        want["net-tap-pps"] = ["host"] + guests
    for row in ("startup-first-insn", "startup-first-byte", "footprint-vmm"):
        want[row] = guests
    if not shutil.which("fio"):
        print("note: no fio: the disk rows' host side is not checked")
        for row in [r for r in want if r.startswith("disk-")]:
            want[row] = guests
    try:
        doc = json.load(open(os.path.join(out, "results.json")))
    except (OSError, ValueError) as e:
        problems.append(f"results.json: {e}")
        doc = {"rows": [], "conditions": {}}
    rows = {r["row"]: r for r in doc["rows"]}
    for row, sides in want.items():
        for side in sides:
            vals = rows.get(row, {}).get("values", {}).get(side)
            if not vals or any(v is None or v <= 0 for v in vals):
                problems.append(f"{row}: no figure for {side} ({vals})")
    for key in ("cpu_model", "cpus", "host_kernel", "kvm", "thp", "kvmini_revision",
                "load_before", "load_after"):
        if key not in doc["conditions"]:
            problems.append(f"results.json: condition {key} missing")
    try:
        back = bench_report.read_csv(os.path.join(out, "results.csv"))
        for row, r in rows.items():
            for side, vals in r["values"].items():
                if back.get((row, side)) != [float(v) for v in vals if v is not None]:
                    problems.append(f"results.csv: {row}/{side} is {back.get((row, side))}, JSON {vals}")
    except (OSError, KeyError, ValueError) as e:
        problems.append(f"results.csv: {e}")
    for name, magic in (("ratios.svg", b"<?xml"), ("ratios.png", b"\x89PNG")):
        try:
            with open(os.path.join(out, name), "rb") as f:
                if not f.read(16).startswith(magic):
                    problems.append(f"{name}: not a {name[-3:]} file")
        except OSError as e:
            problems.append(f"{name}: {e}")
    for line in problems:
        print("FAIL " + line)
    if not problems:
        print(f"kvmini-bench smoke: {len(rows)} rows, sides host + {', '.join(guests)}; all files parse")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
