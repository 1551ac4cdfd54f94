#!/usr/bin/env python3
"""peer_swarm.py -- many BitTorrent connections to one peer on loopback (daemon benchmark).

Opens COUNT TCP connections to HOST:PORT, each with its own peer id, sends the
BEP 3 handshake (19 "BitTorrent protocol", 8 zero reserved bytes, infohash,
peer id) and an "interested" message, and keeps them open, reading whatever
comes (choke, unchoke, bitfield, have, piece ...).  A connection closed by the
other side is opened again.  With --request-rate, unchoked connections request
16 KiB blocks (at most --pipeline outstanding each), all connections together
at most that many bytes per second; the blocks are read and thrown away.  With
--paused as well, requests start only on SIGUSR1.

Once a second it prints one status line on stdout:
  status t=SECONDS connected=N unchoked=N handshakes=N reconnects=N
         bitfields=N chokes=N unchokes=N haves=N piece_bytes=N requested_bytes=N
(connected: connections whose handshake answer arrived and that are still
open).  It stops after --duration seconds (or on SIGTERM/SIGINT), closes every
connection and prints "done" with the last status.

  peer_swarm.py --port 6881 --infohash HEX40 --count 200 --duration 60
                [--request-rate 4194304 --size BYTES --piece-length BYTES [--paused]]
Loopback only: HOST must be 127.0.0.0/8 or ::1.
"""
import argparse
import asyncio
import ipaddress
import os
import random
import signal
import struct
import sys
import time

PSTR = b"BitTorrent protocol"
HANDSHAKE_LEN = 1 + len(PSTR) + 8 + 20 + 20
BLOCK = 16384
MAX_MSG = BLOCK + 13 + 1024 * 1024   # a bitfield or a piece message; anything longer is refused
KEEPALIVE_S = 60.0


class Stats:
    def __init__(self):
        self.connected = 0
        self.unchoked = 0
        self.handshakes = 0
        self.reconnects = 0
        self.bitfields = 0
        self.chokes = 0
        self.unchokes = 0
        self.haves = 0
        self.piece_bytes = 0
        self.requested_bytes = 0

    def line(self, t):
        return ("status t=%.1f connected=%d unchoked=%d handshakes=%d reconnects=%d bitfields=%d "
                "chokes=%d unchokes=%d haves=%d piece_bytes=%d requested_bytes=%d" %
                (t, self.connected, self.unchoked, self.handshakes, self.reconnects, self.bitfields,
                 self.chokes, self.unchokes, self.haves, self.piece_bytes, self.requested_bytes))


class Bucket:
    """Token bucket shared by all connections: rate bytes/s, burst of a quarter second."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.cap = max(self.rate / 4, 2.0 * BLOCK)
        self.tokens = 0.0
        self.last = time.monotonic()

    async def take(self, n):
        while True:
            now = time.monotonic()
            self.tokens = min(self.cap, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep(max(0.005, (n - self.tokens) / self.rate))


class Conn:
    def __init__(self, args, idx, stats, bucket, go):
        self.args = args
        self.go = go                     # set while requests may be sent at all
        self.idx = idx
        self.stats = stats
        self.bucket = bucket
        self.peer_id = b"-PS0001-" + ("%04d" % idx).encode() + os.urandom(8)
        self.unchoked = False
        self.outstanding = 0
        self.slot = asyncio.Event()      # set while a request may be sent

    def _set_unchoked(self, on):
        if on and not self.unchoked:
            self.stats.unchoked += 1
        elif not on and self.unchoked:
            self.stats.unchoked -= 1
        self.unchoked = on
        self.outstanding = 0
        if on:
            self.slot.set()
        else:
            self.slot.clear()

    def _pick_block(self):
        a = self.args
        pieces = (a.size + a.piece_length - 1) // a.piece_length
        i = random.randrange(pieces)
        plen = min(a.piece_length, a.size - i * a.piece_length)
        begin = random.randrange((plen + BLOCK - 1) // BLOCK) * BLOCK
        return i, begin, min(BLOCK, plen - begin)

    async def _requester(self, writer):
        while True:
            await self.go.wait()
            await self.slot.wait()
            length = BLOCK
            await self.bucket.take(length)
            if not self.unchoked:
                continue
            i, begin, length = self._pick_block()
            writer.write(struct.pack(">IBIII", 13, 6, i, begin, length))
            self.outstanding += 1
            self.stats.requested_bytes += length
            if self.outstanding >= self.args.pipeline:
                self.slot.clear()

    async def _keepalive(self, writer):
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            writer.write(b"\0\0\0\0")

    async def _handshake(self, sem):
        """Connects and exchanges handshakes, at most sem's count of connections at once."""
        a = self.args
        async with sem:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 10)
            try:
                writer.write(bytes([len(PSTR)]) + PSTR + bytes(8) + a.infohash + self.peer_id)
                writer.write(struct.pack(">IB", 1, 2))          # interested
                hs = await asyncio.wait_for(reader.readexactly(HANDSHAKE_LEN), 15)
                if hs[0] != len(PSTR) or hs[1:20] != PSTR or hs[28:48] != a.infohash:
                    raise ConnectionError("bad handshake answer")
            except BaseException:
                writer.close()
                raise
        return reader, writer

    async def _session(self, sem):
        a = self.args
        reader, writer = await self._handshake(sem)
        tasks = []
        try:
            self.stats.handshakes += 1
            self.stats.connected += 1
            try:
                tasks.append(asyncio.ensure_future(self._keepalive(writer)))
                if self.bucket is not None:
                    tasks.append(asyncio.ensure_future(self._requester(writer)))
                while True:
                    n = struct.unpack(">I", await reader.readexactly(4))[0]
                    if n == 0:
                        continue                              # keep-alive
                    if n > MAX_MSG:
                        raise ConnectionError("message of %d bytes" % n)
                    msg = await reader.readexactly(n)
                    mid = msg[0]
                    if mid == 0:
                        self.stats.chokes += 1
                        self._set_unchoked(False)
                    elif mid == 1:
                        self.stats.unchokes += 1
                        self._set_unchoked(True)
                    elif mid == 4:
                        self.stats.haves += 1
                    elif mid == 5:
                        self.stats.bitfields += 1
                    elif mid == 7:
                        self.stats.piece_bytes += max(0, n - 9)
                        if self.outstanding > 0:
                            self.outstanding -= 1
                        if self.unchoked and self.outstanding < a.pipeline:
                            self.slot.set()
            finally:
                self.stats.connected -= 1
                self._set_unchoked(False)
        finally:
            for t in tasks:
                t.cancel()
            writer.close()

    async def run(self, sem):
        first = True
        while True:
            if not first:
                self.stats.reconnects += 1
                await asyncio.sleep(0.2 + random.random() * 0.3)
            first = False
            try:
                await self._session(sem)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                pass


async def main(args):
    stats = Stats()
    bucket = Bucket(args.request_rate) if args.request_rate > 0 else None
    sem = asyncio.Semaphore(args.concurrency)
    go = asyncio.Event()
    if not args.paused:
        go.set()
    conns = [Conn(args, i, stats, bucket, go) for i in range(args.count)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    t0 = time.monotonic()
    tasks = []
    for c in conns:
        tasks.append(asyncio.ensure_future(c.run(sem)))
        await asyncio.sleep(args.spacing)     # a gentle ramp: the peer has a small pending-handshake limit
        if stop.is_set():
            break
    end = t0 + args.duration
    while not stop.is_set() and time.monotonic() < end:
        print(stats.line(time.monotonic() - t0), flush=True)
        try:
            await asyncio.wait_for(stop.wait(), min(1.0, max(0.01, end - time.monotonic())))
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("done " + stats.line(time.monotonic() - t0), flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--infohash", required=True, help="40 hex digits")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--duration", type=float, default=60.0, help="seconds before it stops by itself")
    p.add_argument("--concurrency", type=int, default=16, help="connections in their handshake at once")
    p.add_argument("--spacing", type=float, default=0.005, help="seconds between starting two connections")
    p.add_argument("--request-rate", type=int, default=0, help="bytes/s of block requests, all together (0 = none)")
    p.add_argument("--paused", action="store_true", help="send requests only after SIGUSR1")
    p.add_argument("--pipeline", type=int, default=4, help="outstanding requests per unchoked connection")
    p.add_argument("--size", type=int, default=0, help="the torrent's total size (for requests)")
    p.add_argument("--piece-length", type=int, default=0, help="the torrent's piece length (for requests)")
    a = p.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        p.error("loopback addresses only")
    try:
        a.infohash = bytes.fromhex(a.infohash)
    except ValueError:
        a.infohash = b""
    if len(a.infohash) != 20:
        p.error("--infohash: 40 hex digits")
    if not (1 <= a.count <= 5000) or not (1 <= a.concurrency <= 1000) or a.duration <= 0:
        p.error("--count 1..5000, --concurrency 1..1000, --duration > 0")
    if a.request_rate < 0 or not (1 <= a.pipeline <= 64):
        p.error("--request-rate >= 0, --pipeline 1..64")
    if a.request_rate > 0 and (a.size <= 0 or a.piece_length <= 0):
        p.error("--request-rate needs --size and --piece-length")
    return a


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
