#!/usr/bin/env python3
"""The host side of the micro-guest's network tests (tests/guest/test_net.c).

  net_reflector.py reflect IFNAME [--ready FILE] [--ethertype 0x88b5]
      Sends every frame of that EtherType that arrives on IFNAME back where
      it came from: destination := the frame's source; source := the frame's
      destination, or IFNAME's own MAC when that was broadcast/multicast (a
      bridge drops frames with a multicast source). Frames IFNAME itself
      sent (PACKET_OUTGOING) are skipped, or it would reflect its own echoes.

  net_reflector.py udp-echo [--host 127.0.0.1] [--port 0] [--ready FILE]
      A UDP echo server: every datagram goes back to its sender unchanged.
      With --port 0 the kernel picks the port.

--ready FILE: written (the MAC for reflect, the port for udp-echo) once
the socket is bound, so a script can wait for it. Both run until killed
(SIGTERM/SIGINT) and then print how many frames or datagrams they echoed
to stderr.
"""
import argparse
import os
import signal
import socket
import sys

PACKET_OUTGOING = 4
count = 0


def ready(path, text):
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.rename(tmp, path)  # whole or absent: the waiting script never reads half a line


def stop(what):
    def handler(_sig, _frame):
        print(f"net_reflector: {what}: {count}", file=sys.stderr, flush=True)
        os._exit(0)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def reflect(args):
    global count
    etype = int(args.ethertype, 0)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(etype))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.ifname, etype))
    own = s.getsockname()[4]
    ready(args.ready, own.hex(":"))
    stop(f"reflected frames on {args.ifname}")
    while True:
        data, addr = s.recvfrom(65536)
        if addr[2] == PACKET_OUTGOING or len(data) < 14:
            continue
        dst, src = data[0:6], data[6:12]
        s.send(src + (own if dst[0] & 1 else dst) + data[12:])
        count += 1


def udp_echo(args):
    global count
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.host, args.port))
    ready(args.ready, str(s.getsockname()[1]))
    stop(f"echoed datagrams on {args.host}:{s.getsockname()[1]}")
    while True:
        data, addr = s.recvfrom(65536)
        s.sendto(data, addr)
        count += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reflect")
    r.add_argument("ifname")
    r.add_argument("--ethertype", default="0x88b5")
    r.add_argument("--ready")
    u = sub.add_parser("udp-echo")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=0)
    u.add_argument("--ready")
    args = ap.parse_args()
    (reflect if args.cmd == "reflect" else udp_echo)(args)


if __name__ == "__main__":
    main()
