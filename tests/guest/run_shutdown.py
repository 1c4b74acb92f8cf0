#!/usr/bin/env python3
"""`kvmini ctl SOCKET shutdown`: the ACPI power button, then a hard stop.

run_shutdown.py KVMINI GUEST

  - test=power_button polls the GED's event register and powers off (S5)
    when it reads the power event: `shutdown` ends kvmini with status 0
    through the guest's own power-off, the read cleared the register;
  - with ignore=1 the guest never powers off: `shutdown --timeout 2` ends
    kvmini with status 1 and one log line, well before the default 60 s;
  - a paused guest is not shut down (error, exit 1); a bad timeout is a
    usage error (exit 2) from the client and an error reply from kvmini.
Exits 77 (skipped) without a usable /dev/kvm.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def skip(why):
    print(f"run_shutdown: SKIP: {why}")
    sys.exit(77)


def fail(why):
    print(f"run_shutdown: FAIL: {why}")
    sys.exit(1)


kvmini, guest = sys.argv[1], sys.argv[2]
if not os.access("/dev/kvm", os.R_OK | os.W_OK):
    skip("no usable /dev/kvm")
tmp = tempfile.mkdtemp(prefix="kvmini-shutdown-")
sock = os.path.join(tmp, "api.sock")
log = os.path.join(tmp, "console.log")


def ctl(*args):
    return subprocess.run([kvmini, "ctl", sock, *args], capture_output=True, text=True,
                          timeout=60)


def console():
    try:
        with open(log, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def start(extra):
    if os.path.exists(log):
        os.unlink(log)
    vm = subprocess.Popen([kvmini, "run", "--kernel", guest, "--memory", "64M",
                           "--console", f"file={log}", "--api-socket", sock, "-v",
                           "--cmdline", "test=power_button " + extra],
                          stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if "power_button: waiting" in console():
            return vm
        if vm.poll() is not None:
            fail(f"kvmini exited with {vm.returncode}: {vm.stderr.read().strip()}")
        time.sleep(0.05)
    vm.kill()
    fail(f"the guest did not start waiting: {console()[-400:]!r}")


def raw(data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(data)
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf.decode(errors="replace").strip()


vm = None
try:
    # 1. The guest answers the button.
    vm = start("")
    for bad in ("0", "-3", "abc", "86401"):
        r = ctl("shutdown", "--timeout", bad)
        if r.returncode != 2:
            fail(f"shutdown --timeout {bad}: status {r.returncode}")
    if ctl("status", "--timeout", "5").returncode != 2:
        fail("--timeout accepted for status")
    for req in (b'{"command": "shutdown", "timeout": "x"}\n',
                b'{"command": "shutdown", "timeout": 0}\n'):
        got = raw(req)
        if '"error"' not in got or "timeout" not in got:
            fail(f"{req!r}: {got!r}")
    if ctl("pause").returncode != 0:
        fail("pause")
    r = ctl("shutdown")
    if r.returncode != 1 or "paused" not in r.stderr:
        fail(f"shutdown while paused: status {r.returncode}, {r.stderr.strip()!r}")
    if ctl("resume").returncode != 0:
        fail("resume")
    t0 = time.monotonic()
    r = ctl("shutdown")
    if r.returncode != 0 or "power button pressed" not in r.stdout:
        fail(f"shutdown: status {r.returncode}, {r.stdout!r} {r.stderr!r}")
    try:
        vm.wait(timeout=20)
    except subprocess.TimeoutExpired:
        fail(f"kvmini still runs 20 s after the power button; console: {console()[-300:]!r}")
    took = time.monotonic() - t0
    out = console()
    if vm.returncode != 0 or "power_button: pressed" not in out or "powering off" not in out:
        fail(f"after shutdown: status {vm.returncode}, console {out[-300:]!r}, "
             f"{vm.stderr.read().strip()}")
    if "FAIL" in out:
        fail(f"the guest failed: {out[-300:]!r}")
    print(f"run_shutdown: the guest powered off {took:.2f} s after the button")

    # 2. A guest that ignores the button: the hard stop after the timeout.
    vm = start("ignore=1")
    t0 = time.monotonic()
    r = ctl("shutdown", "--timeout", "2", "--json")
    if r.returncode != 0 or json.loads(r.stdout).get("timeout_s") != 2:
        fail(f"shutdown --timeout 2: status {r.returncode}, {r.stdout!r} {r.stderr!r}")
    try:
        vm.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("kvmini still runs 30 s after a shutdown with a 2 s timeout")
    took = time.monotonic() - t0
    err = vm.stderr.read()
    if vm.returncode != 1 or "did not power off within 2 s" not in err:
        fail(f"after the timeout: status {vm.returncode}, {err.strip()!r}")
    if took < 1.5:
        fail(f"the hard stop came after {took:.2f} s, before the 2 s timeout")
    if "power_button: pressed" not in console():
        fail("the ignoring guest did not see the press")
    print(f"run_shutdown: hard stop {took:.2f} s after a shutdown with --timeout 2")
finally:
    if vm and vm.poll() is None:
        vm.kill()
        vm.wait()
print("run_shutdown: PASS")
