#!/usr/bin/env python3
"""Network benchmark: the micro-guest's virtio-net driver (tests/guest,
test=netbench) under kvmini and under QEMU, on both backends, against the
host doing the same work without a VM, all in one run.

  bench/net_bench.py --guest BUILD/tests/guest/microguest.elf [--kvmini BUILD/kvmini]
        [--backends tap,user] [--engines host,qemu,kvmini] [--repeats 5]
        [--frames 20000] [--window 32] [--rr 2000] [--size 60]
        [--guest-args WORDS] [--tsc-hz HZ] [--json FILE] [--verbose]

Two measurements per run, the same in every engine:
  pps  `frames` frames of `size` bytes with `window` of them in flight
       (a new one goes out for each echo back): echoed frames per second.
  rr   `rr` round trips one at a time (send, wait for the echo, again):
       median (and p99) round-trip time, and round trips per second.

Backends and what answers:
  tap   the NIC's TAP is a port of a bridge; a veth pair leads from the
        bridge into a network namespace where tests/guest/net_reflector.py
        sends every frame of EtherType 0x88b5 back (MACs swapped). kvmini
        creates its TAP (--net tap=T,bridge=B); QEMU's is made here and
        given with -netdev tap,ifname=T,script=no,downscript=no,vhost=off.
        Host baseline: a sender in one namespace, the same reflector in
        another, one veth pair between them (raw AF_PACKET sockets).
  user  libslirp (kvmini --net user, QEMU -netdev user); the guest sends UDP
        datagrams to 10.0.2.2:PORT, which slirp turns into datagrams from a
        host socket to 127.0.0.1:PORT, where net_reflector.py udp-echo
        answers. Host baseline: a UDP client on the loopback to the same
        echo server.
The host's sender is Python, like the reflector and the echo server, and
polls its socket as the guest polls its rings: the baseline shows what the
path costs without a VM, including Python's share at both ends of it.

Timing of a guest run: the guest counts TSC ticks; its TSC rate is taken
from its "netbench mark start/end tsc=T" console lines, timestamped here as
they arrive (CPUID 0x15/0x16 is not reliable on this project's paravirtual
KVM), over the whole run (a few seconds at the defaults); the rate used
is the median of every guest run's estimate (one run's is within about 1%),
or --tsc-hz HZ (on these machines the host's: 2.3 GHz, /proc/cpuinfo "cpu
MHz").

Repeats are interleaved (host, qemu, kvmini, host, ...; tap then user),
so slow drifts in machine load hit every engine alike; the table gives
min/median/max and the ratio of each engine's median to the host's.

Skipped with a message: the tap backend without root or /dev/net/tun;
QEMU or kvmini when missing, kvmini without --net. Exit 77 when nothing
could run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from common import fmt, log, run_vmm

HERE = os.path.dirname(os.path.abspath(__file__))
REFLECTOR = os.path.join(HERE, "..", "tests", "guest", "net_reflector.py")
ETH_P_TEST = 0x88B5
MAGIC = 0x6B766D6E
MAC = "52:54:00:12:34:56"


def sh(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


# ---- the host's sender (runs as "net_bench.py host-sender ...", for raw
# frames inside a namespace) ----

def sender_loop(send, recv_seq, frames, window, rr, loss_s):
    """The guest's netbench loops (test_net.c) in Python: returns a dict."""
    sent = got = lost = 0
    t0 = time.perf_counter()
    while got + lost < frames:
        while sent < frames and sent - got - lost < window:
            send(sent)
            sent += 1
        s = recv_seq(loss_s)
        if s is None:
            lost += sent - got - lost
            continue
        if s < got + lost or s >= sent:
            continue
        lost += s - (got + lost)
        got += 1
    pps_s = time.perf_counter() - t0
    rts, rr_lost = [], 0
    r0 = time.perf_counter()
    for i in range(rr):
        seq = frames + i
        a = time.perf_counter()
        send(seq)
        while True:
            s = recv_seq(loss_s)
            if s is None or s == seq:
                break
        if s is None:
            rr_lost += 1
            continue
        rts.append(time.perf_counter() - a)
    rr_s = time.perf_counter() - r0
    rts.sort()
    return {"pps": got / pps_s, "lost": lost, "rr_median_us": rts[len(rts) // 2] * 1e6 if rts else 0,
            "rr_p99_us": rts[len(rts) * 99 // 100] * 1e6 if rts else 0,
            "rr_per_s": len(rts) / rr_s if rr_s else 0, "rr_lost": rr_lost}


def host_sender(args):
    if args.mode == "raw":
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TEST))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((args.ifname, ETH_P_TEST))
        own = s.getsockname()[4]
        peer = bytes.fromhex(args.peer.replace(":", ""))
        head = peer + own + struct.pack("!H", ETH_P_TEST)
        pad = bytes(max(0, args.size - 24))

        def send(seq):
            s.send(head + struct.pack("!IIH", MAGIC, seq, args.size) + pad)

        def recv_seq(timeout):
            end = time.perf_counter() + timeout
            while True:
                try:
                    data, addr = s.recvfrom(65536)
                except BlockingIOError:
                    if time.perf_counter() > end:
                        return None
                    continue
                if addr[2] != 4 and len(data) >= 24 and struct.unpack_from("!I", data, 14)[0] == MAGIC:
                    return struct.unpack_from("!I", data, 18)[0]
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", args.port))
        pad = bytes(max(0, args.size - 42 - 4))

        def send(seq):
            s.send(struct.pack("!I", seq) + pad)

        def recv_seq(timeout):
            end = time.perf_counter() + timeout
            while True:
                try:
                    return struct.unpack_from("!I", s.recv(65536))[0]
                except BlockingIOError:
                    if time.perf_counter() > end:
                        return None
    # Polls like the guest does: a blocking receive would add a wake-up to
    # every round trip that the guest never pays.
    s.setblocking(False)
    print(json.dumps(sender_loop(send, recv_seq, args.frames, args.window, args.rr, 0.5)))


# ---- the set-up: namespaces, bridge, reflectors, echo server ----

class Net:
    """Everything the run needs on the host; close() removes it again."""

    def __init__(self, want_tap, want_user):
        tag = str(os.getpid())
        self.ns_refl, self.ns_hs, self.ns_hr = f"kvnb-r{tag}", f"kvnb-s{tag}", f"kvnb-h{tag}"
        self.br, self.tap_k, self.tap_q = f"kvnbb{tag}", f"kvnbk{tag}", f"kvnbq{tag}"
        self.procs, self.made_ns, self.made_links = [], [], []
        self.tmp = tempfile.mkdtemp(prefix="net-bench.")
        try:
            if want_tap:
                self._tap()
            if want_user:
                self.port = int(self._helper(["python3", REFLECTOR, "udp-echo"], "port"))
        except Exception:
            self.close()
            raise

    def _helper(self, cmd, what):
        ready = os.path.join(self.tmp, what)
        p = subprocess.Popen(cmd + ["--ready", ready], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        for _ in range(100):
            if os.path.exists(ready):
                return open(ready).read().strip()
            if p.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.read().decode().strip()}")
            time.sleep(0.05)
        raise RuntimeError(f"{' '.join(cmd)}: not ready after 5 s")

    def _netns(self, name):
        sh("ip", "netns", "add", name)
        self.made_ns.append(name)
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _no_ipv6(self, ifname):
        sh("sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1", check=False)

    def _tap(self):
        tag = str(os.getpid())
        # The VMs' side: bridge, veth into the reflector's namespace.
        self._netns(self.ns_refl)
        sh("ip", "link", "add", self.br, "type", "bridge")
        self.made_links.append(self.br)
        self._no_ipv6(self.br)
        sh("ip", "link", "set", self.br, "up")
        vh, vp = f"kvnbv{tag}", f"kvnbp{tag}"
        sh("ip", "link", "add", vh, "type", "veth", "peer", "name", vp)
        self.made_links.append(vh)
        sh("ip", "link", "set", vp, "netns", self.ns_refl)
        self._no_ipv6(vh)
        sh("ip", "link", "set", vh, "master", self.br, "up")
        sh("ip", "-n", self.ns_refl, "link", "set", vp, "up")
        self.peer = self._helper(["ip", "netns", "exec", self.ns_refl, "python3", REFLECTOR, "reflect", vp],
                                 "peer")
        sh("ip", "tuntap", "add", "dev", self.tap_q, "mode", "tap")
        self.made_links.append(self.tap_q)
        self._no_ipv6(self.tap_q)
        sh("ip", "link", "set", self.tap_q, "master", self.br, "up")
        # The host baseline: sender namespace -- veth -- reflector namespace.
        self._netns(self.ns_hs)
        self._netns(self.ns_hr)
        self.hs_if, hr = f"kvnbs{tag}", f"kvnbr{tag}"
        sh("ip", "link", "add", self.hs_if, "netns", self.ns_hs, "type", "veth", "peer", "name", hr,
           "netns", self.ns_hr)
        sh("ip", "-n", self.ns_hs, "link", "set", self.hs_if, "up")
        sh("ip", "-n", self.ns_hr, "link", "set", hr, "up")
        self.host_peer = self._helper(["ip", "netns", "exec", self.ns_hr, "python3", REFLECTOR, "reflect", hr],
                                      "host-peer")

    def close(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in self.made_ns:
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), 15)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        for link in reversed(self.made_links):
            sh("ip", "link", "del", link, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- the runs ----

def run_guest(cmd, timeout):
    """Runs a VMM; returns (rc, console lines, {marker: time}, stderr text)."""
    marks = {}

    def on_line(text, now):
        m = re.match(r"microguest: netbench mark (start|end) tsc=(\d+)$", text)
        if m:
            marks[m[1]] = (now, int(m[2]))

    rc, lines, err = run_vmm(cmd, timeout, on_line)
    return rc, lines, marks, err


def kv(line):
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def guest_result(name, rc, lines, marks, err):
    pps_l = [l for l in lines if l.startswith("microguest: netbench pps mode=")]
    rr_l = [l for l in lines if l.startswith("microguest: netbench rr mode=")]
    if not any(l == "microguest: PASS" for l in lines) or not pps_l or not rr_l or len(marks) != 2:
        tail = "\n    ".join(lines[-8:] + err.strip().splitlines()[-8:])
        raise RuntimeError(f"{name}: run failed (rc {rc}):\n    {tail}")
    (t0, c0), (t1, c1) = marks["start"], marks["end"]
    p, r = kv(pps_l[0]), kv(rr_l[0])
    out = {"tsc_hz_run": (c1 - c0) / max(t1 - t0, 1e-6), "got": int(p["frames"]) - int(p["lost"]),
           "lost": int(p["lost"]), "rr_lost": int(r["lost"]), "pps_ticks": int(p["ticks"]),
           "rr_n": int(r["n"]), "rr_total_ticks": int(r["total_ticks"]),
           "rr_median_ticks": int(r["median_ticks"]), "rr_p99_ticks": int(r["p99_ticks"])}
    m = re.search(r"exits: (\d+) in", err)
    if m:
        out["exits"] = int(m[1])
    return out


def guest_rates(res, hz):
    """The guest's tick counts in seconds, at TSC rate hz."""
    res.update({"pps": res["got"] * hz / res["pps_ticks"], "rr_median_us": res["rr_median_ticks"] / hz * 1e6,
                "rr_p99_us": res["rr_p99_ticks"] / hz * 1e6,
                "rr_per_s": res["rr_n"] * hz / res["rr_total_ticks"], "tsc_hz": hz})


def qemu_cmd(a, backend, net, cmdline):
    bios = ["-bios", "/usr/share/qemu/qboot.rom"] if os.path.exists("/usr/share/qemu/qboot.rom") else []
    netdev = "user,id=n0" if backend == "user" else \
        f"tap,id=n0,ifname={net.tap_q},script=no,downscript=no,vhost=off"
    return [a.qemu, "-accel", "kvm", "-cpu", "qemu64", "-M", "pc", *bios, "-m", "256M",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,disable-legacy=on,mac={MAC}",
            "-kernel", a.guest, "-append", cmdline]


def kvmini_cmd(a, backend, net, cmdline, main_loop=False, thp=True):
    nic = f"user,mac={MAC}" if backend == "user" else f"tap={net.tap_k},bridge={net.br},mac={MAC}"
    if main_loop and backend == "tap":
        nic += ",iothread=main"
    memory = "256M" if thp else "256M,thp=off"
    return [a.kvmini, "run", "--kernel", a.guest, "--debug-exit", "--console", "stdio", "--memory", memory,
            "--net", nic, "--trace-exits", "--cmdline", cmdline]


def run_once(a, engine, backend, net):
    if engine == "host":
        cmd = [sys.executable, os.path.abspath(__file__), "host-sender", "--frames", str(a.frames),
               "--window", str(a.window), "--rr", str(a.rr), "--size", str(a.size)]
        if backend == "tap":
            cmd = ["ip", "netns", "exec", net.ns_hs] + cmd + ["--mode", "raw", "--ifname", net.hs_if,
                                                              "--peer", net.host_peer]
        else:
            cmd += ["--mode", "udp", "--port", str(net.port)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
        if p.returncode:
            raise RuntimeError(f"host sender failed: {p.stderr.strip()[-500:]}")
        return json.loads(p.stdout)
    cmdline = f"test=netbench size={a.size} window={a.window} frames={a.frames} rr={a.rr} allow_loss=1"
    cmdline += f" net_peer={net.peer}" if backend == "tap" else f" net_udp_port={net.port}"
    if a.guest_args:
        cmdline += " " + a.guest_args
    if engine == "qemu":
        cmd = qemu_cmd(a, backend, net, cmdline + " unclaimed_mmio=any")
    else:
        cmd = kvmini_cmd(a, backend, net, cmdline, main_loop=engine == "kvmini-main",
                         thp=engine != "kvmini-nothp")
    return guest_result(engine, *run_guest(cmd, a.timeout))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "host-sender":
        sp = argparse.ArgumentParser(prog="net_bench.py host-sender")
        sp.add_argument("--mode", choices=["raw", "udp"], required=True)
        sp.add_argument("--ifname")
        sp.add_argument("--peer")
        sp.add_argument("--port", type=int)
        for k, d in (("--frames", 20000), ("--window", 32), ("--rr", 2000), ("--size", 60)):
            sp.add_argument(k, type=int, default=d)
        host_sender(sp.parse_args(sys.argv[2:]))
        return 0

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", required=True, help="microguest.elf")
    ap.add_argument("--kvmini", help="kvmini binary (engine skipped without it)")
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--backends", default="tap,user")
    ap.add_argument("--engines", default="host,qemu,kvmini",
                    help="host, qemu, kvmini, kvmini-main (TAP served on the main loop: iothread=main), "
                    "kvmini-nothp (guest RAM without transparent huge pages: --memory 256M,thp=off)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=20000, help="frames of the pps run (default %(default)s)")
    ap.add_argument("--window", type=int, default=32, help="frames in flight (default %(default)s)")
    ap.add_argument("--rr", type=int, default=2000, help="round trips (default %(default)s)")
    ap.add_argument("--size", type=int, default=60, help="frame bytes, >= 46 (default %(default)s)")
    ap.add_argument("--guest-args", default="", help="more guest command-line words (event_idx=0, net_mrg=0, ...)")
    ap.add_argument("--tsc-hz", type=float, help="the guest's TSC rate (default: timed from its console)")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args()

    engines = a.engines.split(",")
    backends = a.backends.split(",")
    kvm_ok = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if "qemu" in engines and not (shutil.which(a.qemu) and kvm_ok):
        log(f"net-bench: SKIP qemu: {a.qemu} or /dev/kvm not usable")
        engines.remove("qemu")
    if any(e.startswith("kvmini") for e in engines):
        usage = ""
        if a.kvmini and os.access(a.kvmini, os.X_OK):
            p = subprocess.run([a.kvmini, "run", "--help"], capture_output=True, text=True)
            usage = p.stdout + p.stderr
        if "--net" not in usage or not kvm_ok:
            why = ("no --kvmini binary given" if not a.kvmini else
                   f"{a.kvmini} is not executable" if not os.access(a.kvmini, os.X_OK) else
                   "/dev/kvm not usable" if not kvm_ok else f"{a.kvmini} has no --net option yet")
            log("net-bench: SKIP kvmini: " + why)
            engines = [e for e in engines if not e.startswith("kvmini")]
    if "tap" in backends and (os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip")):
        log("net-bench: SKIP tap: needs root, /dev/net/tun and iproute2")
        backends.remove("tap")
    if not backends or not [e for e in engines if e != "host"]:
        log("net-bench: nothing to run")
        return 77

    # SIGTERM as SystemExit, so that the finally below removes what Net made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    net = Net("tap" in backends, "user" in backends)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    qv = subprocess.run([a.qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if "qemu" in engines else "-"
    log(f"net-bench: {os.cpu_count()} CPUs ({cpu}); {qv}; frames {a.frames} x {a.size} bytes, window {a.window}, "
        f"rr {a.rr}; repeats {a.repeats}; backends {','.join(backends)}; engines {','.join(engines)}")
    load0 = os.getloadavg()
    results = {}
    try:
        for r in range(a.repeats):
            for backend in backends:
                for engine in engines:
                    try:
                        res = run_once(a, engine, backend, net)
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
                        log(f"net-bench: {backend} {engine}: {e}")
                        continue
                    results.setdefault((backend, engine), []).append(res)
                    if a.verbose:
                        extra = "".join(f" {k}={v:.4g}" for k, v in res.items())
                        log(f"  {backend} {engine} #{r + 1}:{extra}")
    finally:
        net.close()
    load1 = os.getloadavg()
    # The TSC rate is the machine's, the same in every run: the median of
    # the runs' own estimates is steadier than any one of them.
    est = sorted(x["tsc_hz_run"] for (_, e), rs in results.items() if e != "host" for x in rs)
    hz = a.tsc_hz or (statistics.median(est) if est else 0)
    for (_, e), rs in results.items():
        for x in rs:
            if e != "host":
                guest_rates(x, hz)

    log("")
    log(f"{'backend':<7} {'engine':<7} {'n':>2} {'what':<14} {'min':>10} {'median':>10} {'max':>10} "
        f"{'vs host':>8} {'lost':>5}")
    for backend in backends:
        host = {}
        for engine in ["host"] + [e for e in engines if e != "host"]:
            rs = results.get((backend, engine))
            if not rs:
                continue
            for what, unit, key in (("pps", "", "pps"), ("rr median us", "", "rr_median_us"),
                                    ("rr p99 us", "", "rr_p99_us"), ("rr/s", "", "rr_per_s")):
                vals = sorted(x[key] for x in rs)
                med = statistics.median(vals)
                if engine == "host":
                    host[key] = med
                ratio = f"{med / host[key]:.2f}" if engine != "host" and host.get(key) else ""
                lost = sum(x.get("lost", 0) + x.get("rr_lost", 0) for x in rs) if key == "pps" else ""
                log(f"{backend:<7} {engine:<7} {len(vals):>2} {what:<14} {fmt(vals[0]):>10} {fmt(med):>10} "
                    f"{fmt(vals[-1]):>10} {ratio:>8} {lost!s:>5}")
    log("")
    how = "given" if a.tsc_hz else \
        f"median of {len(est)} runs' console markers, which ranged {est[0] / 1e6:.0f}-{est[-1] / 1e6:.0f} MHz"
    log(f"load average: {load0[0]:.2f} before, {load1[0]:.2f} after (1 min); guest TSC {hz / 1e6:.0f} MHz ({how}); "
        f"host sender: Python ({sys.version.split()[0]}), polling")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{"backend": b, "engine": e, "runs": rs} for (b, e), rs in results.items()], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
