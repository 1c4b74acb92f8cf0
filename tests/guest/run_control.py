#!/usr/bin/env python3
"""The control socket (docs/control.md) against a running micro-guest.

run_control.py KVMINI GUEST

The guest prints numbered console lines without end (test=console_flood) on
2 vCPUs (the second waits for a SIPI in KVM_RUN, so the pause must kick it
too). Checked, through `kvmini ctl`:
  - status says running, with the definition's settings;
  - pause returns, status says paused, and the console file stops growing;
  - resume: it grows again; stats count exits (per reason, vCPU, device),
    and the human forms of status and stats read right;
  - clients that leave before their reply change nothing;
  - hostile requests (bad JSON, an unknown command, a line over 4096 bytes,
    too many connections) get an error reply and leave the socket working;
  - a second kvmini on the same socket exits 2 ("in use"); a stale socket
    file is replaced; stop ends kvmini with status 0 and removes the socket.
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
    print(f"run_control: SKIP: {why}")
    sys.exit(77)


def fail(why):
    print(f"run_control: FAIL: {why}")
    sys.exit(1)


kvmini, guest = sys.argv[1], sys.argv[2]
if not os.access("/dev/kvm", os.R_OK | os.W_OK):
    skip("no usable /dev/kvm")
tmp = tempfile.mkdtemp(prefix="kvmini-control-")
sock = os.path.join(tmp, "api.sock")
log = os.path.join(tmp, "console.log")


def ctl(*args, ok=True):
    r = subprocess.run([kvmini, "ctl", sock, *args], capture_output=True, text=True,
                       timeout=60)
    if ok and r.returncode != 0:
        fail(f"kvmini ctl {' '.join(args)}: status {r.returncode}: {r.stderr.strip()}")
    return r


def raw(data):
    """Sends bytes on a fresh connection and returns the first reply line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass    # refused connections are closed at once; the reply is there
    buf = b""
    while b"\n" not in buf:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf.decode(errors="replace").strip()


def size():
    return os.path.getsize(log)


# A stale socket file from a kvmini that died: replaced.
stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stale.bind(sock)
stale.close()

vm = subprocess.Popen([kvmini, "run", "--kernel", guest, "--cpus", "2", "--memory", "64M",
                       "--console", f"file={log}", "--api-socket", sock,
                       "--cmdline", "test=console_flood lines=1000000000"],
                      stderr=subprocess.PIPE, text=True)
try:
    for _ in range(100):
        if os.path.exists(log) and size() > 1000:
            break
        if vm.poll() is not None:
            fail(f"kvmini exited with {vm.returncode}: {vm.stderr.read().strip()}")
        time.sleep(0.1)
    st = json.loads(ctl("status", "--json").stdout)
    if st["state"] != "running" or st["config"]["cpus"] != "2" or st["boots"] != 1:
        fail(f"status before pause: {st}")
    if os.stat(sock).st_mode & 0o077:
        fail(f"the socket is open to others: mode {oct(os.stat(sock).st_mode)}")

    ctl("pause")
    st = json.loads(ctl("status", "--json").stdout)
    if st["state"] != "paused":
        fail(f"status after pause: {st['state']}")
    time.sleep(0.3)        # what the console had buffered reaches the file
    a = size()
    time.sleep(1.5)
    b = size()
    if a != b:
        fail(f"the console grew while paused: {a} -> {b} bytes")
    ctl("pause")           # pausing a paused VM is fine
    ctl("resume")
    time.sleep(1.0)
    c = size()
    if c <= b:
        fail(f"the console did not grow after resume: {b} -> {c} bytes")
    print(f"run_control: paused at {a} bytes, still {b} after 1.5 s, {c} after resume")
    stats = json.loads(ctl("stats", "--json").stdout)
    if stats["exits"]["io"] < 1000 or len(stats["vcpus"]) != 2:
        fail(f"stats: {stats}")
    if stats["exits_by_device"].get("serial", 0) < 1000 or stats["disks"] or stats["nics"]:
        fail(f"stats by device: {stats}")
    human = ctl("stats").stdout
    if "exits: " not in human or "vcpu1: " not in human or "serial " not in human:
        fail(f"kvmini ctl stats (human): {human!r}")
    human = ctl("status").stdout
    if "state: running" not in human or "vcpus: 2, memory: 64 MiB" not in human:
        fail(f"kvmini ctl status (human): {human!r}")

    # A client that sends a request and leaves before the reply.
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b'{"command": "status"}\n{"command": "stats"}\n')
        s.close()

    # Hostile requests: an error reply each, the socket keeps working.
    for req, want in ((b"nonsense\n", "expected"), (b'{"command": 7}\n', "expected"),
                      (b'{"command": "frob"}\n', "unknown command"),
                      (b"x" * 5000, "longer than 4096")):
        got = raw(req)
        if want not in got or '"error"' not in got:
            fail(f"request {req[:40]!r}: answer {got!r}")
    held = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        held.append(s)
    got = raw(b'{"command": "status"}\n')
    if "too many" not in got:
        fail(f"a ninth connection: {got!r}")
    for s in held:
        s.close()
    time.sleep(0.2)
    if ctl("frob", ok=False).returncode != 2:
        fail("kvmini ctl with an unknown command did not exit 2")

    # A second kvmini on the same socket.
    r = subprocess.run([kvmini, "run", "--kernel", guest, "--console", "none",
                        "--api-socket", sock], capture_output=True, text=True, timeout=30)
    if r.returncode != 2 or "in use" not in r.stderr:
        fail(f"a second kvmini on the socket: status {r.returncode}, {r.stderr.strip()}")

    # Stop while paused: kvmini ends with 0 and removes the socket.
    ctl("pause")
    ctl("stop")
    try:
        vm.wait(timeout=20)
    except subprocess.TimeoutExpired:
        fail("kvmini did not exit after stop")
    if vm.returncode != 0:
        fail(f"kvmini exited {vm.returncode} after stop: {vm.stderr.read().strip()}")
    if os.path.exists(sock):
        fail("the socket file is left behind")
finally:
    if vm.poll() is None:
        vm.kill()
        vm.wait()
print("run_control: PASS")
