#!/usr/bin/env python3
"""hostile-serve.py MODE BERTH [args...] - a hostile `berth serve --stdio`.

Runs the real `BERTH serve --stdio` as a subprocess and relays the wire
protocol (transport/protocol.h) both ways, altering the server's replies
as MODE says:
  flip      flip one byte of every DATA reply to a GET of a packs/ object
            once the client has read a snapshot file (the chunk reads of a
            restore or cat, not the pack trailers of its cache's catalog)
  biglen    replace the OPENED reply by a header whose length field exceeds
            WIRE_FRAME_MAX, then send nothing more (but keep the stream open)
  wrongtag  the first reply after OPENED carries another tag
  wrongtype the first reply after OPENED has an unexpected type
            (STAT answered with DATA, anything else with SIZE)
  names     the first NAMES reply also lists hostile names
Used by tests/e2e/hostile-peer.bats.
"""
import struct
import subprocess
import sys
import threading
import time

FRAME_MAX = 16 * 1024 * 1024 + 64 * 1024
T_OPEN, T_STAT, T_GET, T_LIST = 0x10, 0x11, 0x12, 0x13
T_OPENED, T_SIZE, T_DATA, T_NAMES = 0x90, 0x91, 0x92, 0x93

mode = sys.argv[1]
srv = subprocess.Popen([sys.argv[2]] + sys.argv[3:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
cin, cout = sys.stdin.buffer, sys.stdout.buffer
requests = {}  # tag -> (type, name)
lock = threading.Lock()


def read_exact(f, n):
    b = b""
    while len(b) < n:
        c = f.read(n - len(b))
        if not c:
            return None
        b += c
    return b


def read_frame(f):
    h = read_exact(f, 4)
    if h is None:
        return None
    (n,) = struct.unpack("<I", h)
    rest = read_exact(f, n)
    if rest is None:
        return None
    return rest[0], struct.unpack("<I", rest[1:5])[0], rest[5:]


def frame(t, tag, body):
    return struct.pack("<IBI", 5 + len(body), t, tag) + body


def c2s():
    while True:
        fr = read_frame(cin)
        if fr is None:
            break
        t, tag, body = fr
        name = b""
        if t in (T_STAT, T_GET, T_LIST) and len(body) >= 4:
            (n,) = struct.unpack("<I", body[:4])
            name = body[4:4 + n]
        with lock:
            requests[tag] = (t, name)
            if t == T_GET and name.startswith(b"snapshots/"):
                requests["restoring"] = True
        srv.stdin.write(frame(t, tag, body))
        srv.stdin.flush()
    try:
        srv.stdin.close()
    except OSError:
        pass


def hostile_names(body):
    last, n = body[0], struct.unpack("<I", body[1:5])[0]
    extra = b""
    for name in (b"../../etc/passwd", b"packs/../x"):
        extra += struct.pack("<I", len(name)) + name + struct.pack("<Q", 5)
    return bytes([last]) + struct.pack("<I", n + 2) + body[5:] + extra


def s2c():
    opened = False
    done = False
    while True:
        fr = read_frame(srv.stdout)
        if fr is None:
            break
        t, tag, body = fr
        with lock:
            req = requests.get(tag, (None, b""))
        if mode == "biglen" and t == T_OPENED:
            cout.write(struct.pack("<IBI", FRAME_MAX + 1, T_DATA, tag) + b"\0" * 64)
            cout.flush()
            time.sleep(20)  # longer than the client waits; bounded so nothing lingers
            return
        if mode == "flip" and t == T_DATA and req[0] == T_GET and req[1].startswith(b"packs/") \
                and requests.get("restoring"):
            n = struct.unpack("<I", body[:4])[0]
            if n > 0:
                b = bytearray(body)
                b[4 + n // 2] ^= 0xFF
                body = bytes(b)
        if opened and not done and mode == "wrongtag":
            tag ^= 0x5A5A
            done = True
        elif opened and not done and mode == "wrongtype":
            if req[0] == T_STAT:
                t, body = T_DATA, struct.pack("<I", 0)
            else:
                t, body = T_SIZE, struct.pack("<Q", 0)
            done = True
        elif mode == "names" and t == T_NAMES and not done:
            body = hostile_names(body)
            done = True
        if t == T_OPENED:
            opened = True
        cout.write(frame(t, tag, body))
        cout.flush()
    cout.close()


th = threading.Thread(target=c2s, daemon=True)
th.start()
s2c()
srv.wait()
