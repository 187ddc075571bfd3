#!/usr/bin/env python3
"""slowlink.py — a userspace slow link: a TCP relay that delays, throttles
and stalls what it forwards, for load.sh where the kernel has no sch_netem.

  slowlink.py relay --listen HOST:PORT --to HOST:PORT [--delay-ms 40]
      [--jitter-ms 10] [--kbit 4000] [--stall 0.01] [--stall-ms 250]
      [--seed N] [--port-file F]
  slowlink.py probe HOST:PORT [--count 3]

relay: each accepted connection is forwarded to --to.  Per direction the
data goes through a model of a long pipe: a chunk is put on the wire when
the wire is free (--kbit, serialisation time), arrives --delay-ms +-
--jitter-ms later, and is released no earlier than the chunk before it
(order kept, many chunks in flight: a pipe, not stop-and-wait).  Loss as
TCP feels it: with probability --stall per 4 KiB of stream, the data from
there on waits --stall-ms more (one retransmission timeout, head-of-line
blocked).  The reader stops reading when more than 100 ms of wire time is
queued, so TCP's own flow control pushes back on the sender.  The draws
(jitter and stalls) come from Random(seed, connection, direction) per
4 KiB unit of stream offset, so a run reproduces whatever recv() returns.
When either side ends (EOF), the other is half-closed after the queued
data is out, and both are closed once both ways have ended; an error on
either side resets both at once (RST).  A line on stderr gives the bytes
and stalls per direction of each closed connection.  PORT 0 picks a
free port; --port-file gets it.  SIGTERM/SIGINT end the relay.

probe: connects, reads the peer's greeting line (an SSH server speaks
first), sends "SSH-2.0-slowlink-probe", and times the wait for the next
bytes: one round trip through whatever lies between.  Prints
"min avg" in milliseconds over --count tries.
"""
import argparse
import collections
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

UNIT = 4096          # bytes per random draw (jitter, stall)
QUEUE_MS = 100.0     # wire time the reader may queue before it stops reading


def hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Direction:
    """One way of one connection: a reader thread and a writer thread."""

    def __init__(self, conn, src, dst, rng, a):
        self.conn, self.src, self.dst, self.rng, self.a = conn, src, dst, rng, a
        self.q = collections.deque()      # (release time, bytes or None = EOF)
        self.cv = threading.Condition()
        self.wire_free = 0.0              # when the wire is free again
        self.last_release = 0.0
        self.offset = 0                   # stream offset read so far
        self.next_unit = 0                # first unit not yet drawn for
        self.jitter = 0.0
        self.stall_due = 0.0              # stall time owed to the next chunk
        self.stalls = 0

    def draws(self, end):
        """Draws for every UNIT whose start lies below END."""
        a = self.a
        while self.next_unit * UNIT < end:
            self.jitter = self.rng.uniform(-a.jitter_ms, a.jitter_ms) / 1000.0
            if self.rng.random() < a.stall:
                self.stall_due += a.stall_ms / 1000.0
                self.stalls += 1
            self.next_unit += 1

    def reader(self):
        a, rate = self.a, self.a.kbit * 1000.0 / 8.0  # bytes per second
        try:
            while not self.conn.dead:
                now = time.monotonic()
                backlog = self.wire_free - now
                if backlog > QUEUE_MS / 1000.0:
                    time.sleep(min(backlog - QUEUE_MS / 1000.0, 0.5))
                    continue
                r, _, _ = select.select([self.src], [], [], 0.5)
                if not r:
                    continue
                data = self.src.recv(UNIT)
                now = time.monotonic()
                if not data:
                    self.put(max(now, self.last_release), None)
                    return
                self.draws(self.offset + len(data))
                self.offset += len(data)
                start = max(now, self.wire_free)
                self.wire_free = start + len(data) / rate
                release = self.wire_free + max(0.0, a.delay_ms / 1000.0 + self.jitter)
                release = max(release, self.last_release) + self.stall_due
                self.stall_due = 0.0
                self.put(release, data)
        except (OSError, ValueError):   # ValueError: closed by abort()
            self.conn.abort()
        finally:
            with self.cv:
                self.cv.notify_all()

    def put(self, release, data):
        self.last_release = release
        with self.cv:
            self.q.append((release, data))
            self.cv.notify_all()

    def writer(self):
        try:
            while True:
                with self.cv:
                    while not self.q and not self.conn.dead:
                        self.cv.wait(0.5)
                    if self.conn.dead:
                        return
                    release, data = self.q[0]
                wait = release - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.5))
                    continue
                with self.cv:
                    self.q.popleft()
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    self.conn.half_done()
                    return
                self.send_all(data)
        except (OSError, ValueError):
            self.conn.abort()

    def send_all(self, data):
        """sendall that gives up within 0.5 s once the connection is dead"""
        view = memoryview(data)
        while view:
            if self.conn.dead:
                return
            _, w, _ = select.select([], [self.dst], [], 0.5)
            if w:
                try:
                    view = view[self.dst.send(view, socket.MSG_DONTWAIT):]
                except BlockingIOError:
                    pass


class Connection:
    def __init__(self, client, a, index):
        self.index, self.t0 = index, time.monotonic()
        self.dead = False
        self.ended = 0
        self.lock = threading.Lock()
        self.client = client
        self.server = socket.create_connection(hostport(a.to), timeout=10)
        self.server.settimeout(None)
        self.socks = (client, self.server)
        for s in self.socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ways = [Direction(self, client, self.server, random.Random("%d/%d/up" % (a.seed, index)), a),
                     Direction(self, self.server, client, random.Random("%d/%d/down" % (a.seed, index)), a)]
        for d in self.ways:
            for f in (d.reader, d.writer):
                threading.Thread(target=f, daemon=True).start()

    def half_done(self):
        with self.lock:
            self.ended += 1
            last = self.ended == 2
        if last:
            self.close()

    def abort(self):
        """an error on one side: both are reset (RST), not closed in order"""
        self.close(reset=True)

    def close(self, reset=False):
        with self.lock:
            if self.dead:
                return
            self.dead = True
        print("slowlink: connection %d closed after %.1f s: %s" % (
            self.index, time.monotonic() - self.t0, ", ".join(
                "%s %d bytes, %d stalls" % (n, d.offset, d.stalls) for n, d in zip(("up", "down"), self.ways))),
            file=sys.stderr, flush=True)
        for s in self.socks:
            try:
                if reset:
                    # (SHUT_RD sends nothing but wakes a reader's select,
                    # which would otherwise hold the socket open a while)
                    s.shutdown(socket.SHUT_RD)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for d in self.ways:
            with d.cv:
                d.cv.notify_all()


def relay(a):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(hostport(a.listen))
    lsock.listen(16)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % lsock.getsockname()[1])
        os.rename(tmp, a.port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    index = 0
    while True:
        r, _, _ = select.select([lsock], [], [], 1.0)
        if not r:
            continue
        client, _ = lsock.accept()
        index += 1
        try:
            Connection(client, a, index)
        except OSError as e:
            print("slowlink: cannot reach %s: %s" % (a.to, e), file=sys.stderr)
            client.close()


def probe(a):
    try:
        times = [probe_once(a) for _ in range(a.count)]
    except OSError as e:
        sys.exit("slowlink probe: %s: %s" % (a.target, e))
    print("%.1f %.1f" % (min(times), sum(times) / len(times)))


def probe_once(a):
    with socket.create_connection(hostport(a.target), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = b""
        while b"\n" not in got:
            more = s.recv(256)
            if not more:
                sys.exit("slowlink probe: %s closed before its greeting" % a.target)
            got += more
        t0 = time.monotonic()
        s.sendall(b"SSH-2.0-slowlink-probe\r\n")
        if not s.recv(1):
            sys.exit("slowlink probe: %s closed without answering" % a.target)
        return (time.monotonic() - t0) * 1000.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--listen", default="127.0.0.1:0")
    r.add_argument("--to", required=True)
    r.add_argument("--delay-ms", type=float, default=40.0)
    r.add_argument("--jitter-ms", type=float, default=10.0)
    r.add_argument("--kbit", type=float, default=4000.0)
    r.add_argument("--stall", type=float, default=0.01)
    r.add_argument("--stall-ms", type=float, default=250.0)
    r.add_argument("--seed", type=int, default=int(os.environ.get("TORTURE_SEED", "1")))
    r.add_argument("--port-file")
    q = sub.add_parser("probe")
    q.add_argument("target")
    q.add_argument("--count", type=int, default=3)
    a = p.parse_args()
    if a.cmd == "relay":
        if a.kbit <= 0 or a.delay_ms < 0 or a.jitter_ms < 0 or not 0 <= a.stall < 1:
            p.error("--kbit must be > 0, --delay-ms and --jitter-ms >= 0, --stall in [0, 1)")
        try:
            relay(a)
        except KeyboardInterrupt:
            pass
    else:
        probe(a)


if __name__ == "__main__":
    main()
