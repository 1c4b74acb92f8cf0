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
    rc, lines, err, _ = run_console(cmd, timeout, on_line)
    return rc, lines, err


def run_console(cmd, timeout, on_line, with_proc=False):
    """run_vmm with more: on_line(text, now, proc=Popen) when with_proc, and
    a fourth result, the monotonic times of the spawn, of the first byte of
    output and of the exit ({"spawn", "first_byte", "exit"})."""
    err = tempfile.TemporaryFile()
    t_start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    times = {"spawn": t_start}
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
            times.setdefault("first_byte", now)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                lines.append(text)
                if with_proc:
                    on_line(text, now, proc=p)
                else:
                    on_line(text, now)
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    times["exit"] = time.monotonic()
    err.seek(0)
    return rc, lines, err.read().decode(errors="replace"), times
