"""What the micro-guest benchmarks share: running a VMM while reading its console
line by line (the guest's timing marks are timed as they arrive), and printing."""
import os
import select
import subprocess
import tempfile
import time


def log(msg):
    print(msg, flush=True)


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def run_vmm(cmd, timeout, on_line):
    """Runs cmd with its stdout (the guest's console) read as it comes;
    on_line(text, monotonic_time) sees each line. Kills the VMM at timeout
    and on any exception, so no VM outlives a run. Returns (rc, console
    lines, stderr text)."""
    err = tempfile.TemporaryFile()
    t_start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    lines, buf = [], b""
    fd = p.stdout.fileno()
    try:
        while True:
            left = timeout - (time.monotonic() - t_start)
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                p.kill()
                break
            chunk = os.read(fd, 65536)
            now = time.monotonic()
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                lines.append(text)
                on_line(text, now)
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err.seek(0)
    return rc, lines, err.read().decode(errors="replace")
