#!/usr/bin/env python3
"""pex_observer.py -- a minimal BitTorrent peer that connects to HOST:PORT for an
infohash, offers ut_pex in its BEP 10 handshake, and waits for a ut_pex message.
Prints one line per address it learns ("added 127.0.0.1:6881") and exits 0 when
it has seen the port given with --want, 1 when the time is up.
stdlib only; every read is bounded by a socket time-out."""
import argparse
import socket
import struct
import sys
import time


def bdecode(b, i=0, depth=0):
    if depth > 8:
        raise ValueError("too deep")
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i += 1
        out = []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i, depth + 1)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while b[i:i + 1] != b"e":
            k, i = bdecode(b, i, depth + 1)
            v, i = bdecode(b, i, depth + 1)
            out[k] = v
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    return buf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--infohash", required=True)
    ap.add_argument("--want", type=int, default=0, help="port to wait for in added")
    ap.add_argument("--advertise", type=int, default=0, help="listen port to announce in our handshake (p)")
    ap.add_argument("--hold", action="store_true", help="only stay connected until --seconds pass")
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    deadline = time.time() + a.seconds
    s = socket.create_connection((a.host, a.port), timeout=5)
    reserved = bytearray(8)
    reserved[5] |= 0x10
    peer_id = b"-PX0001-" + (b"H" if a.hold else b"W") + ("%011d" % (a.advertise or a.want)).encode()[:11]
    s.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + bytes.fromhex(a.infohash) + peer_id)
    hs = recv_exact(s, 68)
    if not hs[25] & 0x10:
        print("peer does not speak BEP 10")
        return 1
    hello = {b"m": {b"ut_pex": 7}, b"v": b"pex-observer"}
    if a.advertise:
        hello[b"p"] = a.advertise
    ext = bencode(hello)
    s.sendall(struct.pack(">IBB", len(ext) + 2, 20, 0) + ext)
    their_pex = None
    while time.time() < deadline:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            (n,) = struct.unpack(">I", recv_exact(s, 4))
            if n > 1 << 20:
                print("oversized message")
                return 1
            msg = recv_exact(s, n) if n else b""
        except (socket.timeout, EOFError) as e:
            if a.hold and isinstance(e, socket.timeout):
                return 0
            print("no PEX in time: %s" % e)
            return 1
        if not msg or msg[0] != 20:
            continue
        if msg[1] == 0:
            d, _ = bdecode(msg[2:])
            their_pex = d.get(b"m", {}).get(b"ut_pex")
            print("their ut_pex id: %s" % their_pex)
        elif msg[1] == 7:
            d, _ = bdecode(msg[2:])
            added = d.get(b"added", b"")
            for k in range(0, len(added) - len(added) % 6, 6):
                ip = socket.inet_ntoa(added[k:k + 4])
                (port,) = struct.unpack(">H", added[k + 4:k + 6])
                print("added %s:%d" % (ip, port))
                if port == a.want:
                    return 0
    print("no PEX naming port %d in time" % a.want)
    return 1


if __name__ == "__main__":
    sys.exit(main())
