#!/usr/bin/env python3
"""Console output under back-pressure (docs/console.md).

run_console.py KVMINI GUEST

1. slow reader: kvmini's stdout is a pipe read in small bites with pauses;
   the guest prints more than every buffer on the way holds, so it must be
   held back (transmitter busy) rather than lose output: every line must
   arrive, in order, byte for byte.
2. stalled reader: nobody reads kvmini's stdout at all. The guest blocks on
   THRE; kvmini must still stop on SIGTERM within a few seconds (no vCPU
   stuck in write()), exit 0, and say how much output it dropped.
Exits 77 (skipped) without a usable /dev/kvm.
"""
import fcntl
import os
import signal
import subprocess
import sys
import time

def skip(why):
    print(f"run_console: SKIP: {why}")
    sys.exit(77)

def fail(why):
    print(f"run_console: FAIL: {why}")
    sys.exit(1)

def expected_line(i):
    return f"line {i} " + "".join(chr(ord('a') + (i + k) % 26) for k in range(58))

F_SETPIPE_SZ = 1031

def small_pipe():
    """A pipe of one page, so the guest fills it (and kvmini's 16 KiB
    buffer and the UART's 512 bytes) within seconds at its ~5 KB/s."""
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    return r, w

def cmd(kvmini, guest, lines):
    return [kvmini, "run", "--kernel", guest, "--debug-exit", "--console", "stdio",
            "--cmdline", f"test=console_flood lines={lines}", "--trace-exits"]

def slow_reader(kvmini, guest):
    lines = 600           # ~42 KB: twice what the pipe, kvmini and the UART hold
    fd, w = small_pipe()
    p = subprocess.Popen(cmd(kvmini, guest, lines), stdin=subprocess.DEVNULL,
                         stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    out = bytearray()
    t0 = time.time()
    paused = False
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
        if not paused:
            # Long enough for everything on the way to fill up: the
            # guest must then wait on THRE, not lose bytes.
            time.sleep(8)
            paused = True
        if time.time() - t0 > 120:
            p.kill()
            fail("slow reader: no end after 120 s")
    err = p.stderr.read().decode(errors="replace")
    rc = p.wait()
    text = out.decode(errors="replace").replace("\r", "")
    got = [l for l in text.split("\n") if l.startswith("line ")]
    print(f"run_console: slow reader: {len(got)} lines, {len(out)} bytes, exit {rc}, "
          f"{time.time() - t0:.1f} s")
    if rc != 0:
        print(err)
        fail(f"slow reader: exit status {rc}")
    for i in range(lines):
        if i >= len(got) or got[i] != expected_line(i):
            print(err)
            fail(f"slow reader: line {i} is {got[i] if i < len(got) else 'missing'!r}")
    if len(got) != lines or "microguest: PASS" not in text:
        fail("slow reader: extra lines or no PASS")
    if "console: 0 bytes of output dropped" not in err or " 0 UART overruns" not in err:
        print(err)
        fail("slow reader: output was dropped")

def stalled_reader(kvmini, guest):
    r, w = small_pipe()
    p = subprocess.Popen(cmd(kvmini, guest, 100000), stdin=subprocess.DEVNULL,
                         stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    time.sleep(8)
    if p.poll() is not None:
        fail(f"stalled reader: kvmini ended early with {p.returncode}")
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        os.close(r)
        fail("stalled reader: kvmini did not stop within 15 s of SIGTERM")
    took = time.time() - t0
    err = p.stderr.read().decode(errors="replace")
    os.close(r)
    print(f"run_console: stalled reader: stopped {took:.1f} s after SIGTERM, exit {p.returncode}")
    print(err)
    if p.returncode != 0:
        fail(f"stalled reader: exit status {p.returncode}")
    if "bytes of guest output dropped" not in err:
        fail("stalled reader: no warning about dropped output")

def main():
    if len(sys.argv) != 3:
        fail("usage: run_console.py KVMINI GUEST")
    kvmini, guest = sys.argv[1], sys.argv[2]
    if not os.path.exists("/dev/kvm") or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        skip("/dev/kvm is not usable")
    slow_reader(kvmini, guest)
    stalled_reader(kvmini, guest)
    print("run_console: PASS")

main()
