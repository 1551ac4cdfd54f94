#!/usr/bin/env python3
"""evil_peer.py -- a scripted BitTorrent peer (BEP 3 over TCP, python3 stdlib only)
for shoal's process tests.

  evil_peer.py seed TORRENT DATA [--bind ADDR] [--port N] [--rate BYTES_PER_S]
                    [--corrupt none|all|every:K] [--split N] [--leave-after-copy]
                    [--announce URL] [--stats FILE] [--max-seconds S]
      A seeder of TORRENT whose data is DATA (the file of a single-file torrent,
      the folder of a multi-file one).  Prints "port: N".  --rate caps the
      upload rate (all connections together); --corrupt flips bytes in every
      block it sends (all) or in the blocks of every K-th piece (every:K);
      --split N shows the k-th connection (in handshake order) only the
      pieces p with p % N == k % N, so N leechers get disjoint parts and must
      trade the rest (like BEP 16 super-seeding); --leave-after-copy makes it
      close every connection and exit as soon as each block has been sent
      once.  --announce registers it with an HTTP tracker.  Writes its
      counters as JSON to --stats (connections, blocks_sent, bytes_sent,
      conn_bytes (per connection), corrupt_blocks, closed_by_remote,
      closed_by_us, left_after_copy, ...).
      Ends on SIGTERM/SIGINT, after --max-seconds, or (--leave-after-copy)
      after one copy.

  evil_peer.py attack TORRENT HOST:PORT CASE [--timeout S]
      Connects to a peer of TORRENT and misbehaves in one way (CASE: garbage,
      wrong_infohash, huge_length, huge_length_unknown_id, request_bad_index,
      request_past_piece, request_huge_block, unsolicited_piece, late_bitfield (with
      its spare bits set),
      bitfield_spare_bits, have_bad_index, request_flood; or control, a
      well-behaved leecher), on a fresh connection.  Prints one line and exits 0
      when the peer did what it should (close the connection, or for the
      "control" case serve a correct piece and keep the connection open),
      1 when it did not, 2 on bad usage.
"""
import hashlib
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

PSTR = b"BitTorrent protocol"
BLOCK = 16384
MAX_MSG = 1 << 18            # largest message we accept from anyone
MAX_QUEUE = 1024             # requests queued per connection
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)


# ---- bencode (our own test torrents; depth-bounded) ----

def bdecode(data, max_depth=64):
    def parse(i, depth):
        if depth > max_depth:
            raise ValueError("nesting too deep")
        c = data[i:i + 1]
        if c == b"i":
            j = data.index(b"e", i)
            return int(data[i + 1:j]), j + 1
        if c == b"l":
            i += 1
            out = []
            while data[i:i + 1] != b"e":
                v, i = parse(i, depth + 1)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            while data[i:i + 1] != b"e":
                k, i = parse(i, depth + 1)
                v, i = parse(i, depth + 1)
                out[k] = v
            return out, i + 1
        if c.isdigit():
            j = data.index(b":", i)
            n = int(data[i:j])
            if j + 1 + n > len(data):
                raise ValueError("string past the end")
            return data[j + 1:j + 1 + n], j + 1 + n
        raise ValueError("bad bencode at %d" % i)

    v, end = parse(0, 0)
    if end != len(data):
        raise ValueError("trailing data")
    return v


def info_span(data):
    """Byte span of the top-level 'info' value, for the infohash.  Walks the
    top-level dict, so an 'info' key nested in another value is not taken."""
    i = 1
    while data[i:i + 1] != b"e":
        j = data.index(b":", i)
        n = int(data[i:j])
        k = data[j + 1:j + 1 + n]
        i = j + 1 + n
        start = i
        i = skip(data, i)
        if k == b"info":
            return start, i
    raise ValueError("no 'info' key")


def skip(data, i):
    """Index after the bencoded value at i (iterative)."""
    depth = 0
    while True:
        c = data[i:i + 1]
        if c == b"i":
            i = data.index(b"e", i) + 1
        elif c in (b"l", b"d"):
            depth += 1
            i += 1
            continue
        elif c == b"e":
            depth -= 1
            i += 1
        elif c.isdigit():
            j = data.index(b":", i)
            i = j + 1 + int(data[i:j])
        else:
            raise ValueError("bad bencode")
        if depth == 0:
            return i


class Torrent:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        top = bdecode(raw)
        s, e = info_span(raw)
        self.infohash = hashlib.sha1(raw[s:e]).digest()
        info = top[b"info"]
        self.name = info[b"name"].decode()
        self.piece_length = info[b"piece length"]
        hashes = info[b"pieces"]
        self.hashes = [hashes[k:k + 20] for k in range(0, len(hashes), 20)]
        self.num_pieces = len(self.hashes)
        if b"files" in info:
            self.files = [(os.path.join(*[c.decode() for c in f[b"path"]]), f[b"length"])
                          for f in info[b"files"]]
            self.multi = True
        else:
            self.files = [("", info[b"length"])]
            self.multi = False
        self.total = sum(n for _, n in self.files)

    def piece_size(self, index):
        if index + 1 < self.num_pieces:
            return self.piece_length
        return self.total - self.piece_length * (self.num_pieces - 1)

    def bitfield_len(self):
        return (self.num_pieces + 7) // 8


class Data:
    """Reads torrent bytes by offset from the files under root."""

    def __init__(self, tor, root):
        self.spans = []
        off = 0
        for rel, n in tor.files:
            path = os.path.join(root, rel) if tor.multi else root
            self.spans.append((off, n, path))
            off += n
        self.lock = threading.Lock()

    def read(self, offset, length):
        out = bytearray()
        for start, n, path in self.spans:
            if length == 0:
                break
            if n == 0 or offset >= start + n or offset + length <= start:
                continue
            a = max(offset, start)
            b = min(offset + length, start + n)
            with open(path, "rb") as f:
                f.seek(a - start)
                out += f.read(b - a)
        return bytes(out)


# ---- wire helpers ----

def handshake_bytes(infohash, peer_id):
    return bytes([len(PSTR)]) + PSTR + b"\0" * 8 + infohash + peer_id


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    return buf


def read_msg(sock, deadline):
    """One message as (id, payload); id None for a keep-alive."""
    n = struct.unpack(">I", recv_exact(sock, 4, deadline))[0]
    if n > MAX_MSG:
        raise ValueError("message of %d bytes" % n)
    if n == 0:
        return None, b""
    body = recv_exact(sock, n, deadline)
    return body[0], body[1:]


def new_peer_id():
    return b"-EV0001-" + bytes(random.choice(b"0123456789abcdef") for _ in range(12))


def bitfield_of(num_pieces, pieces):
    bf = bytearray((num_pieces + 7) // 8)
    for i in pieces:
        bf[i >> 3] |= 0x80 >> (i & 7)
    return bytes(bf)


def graceful_close(sock):
    """FIN first, then read until the other side closes (at most 2 s), so data
    already sent is not thrown away by a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        end = time.monotonic() + 2
        while time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            if not sock.recv(65536):
                break
    except OSError:
        pass


# ---- seed mode ----

class Seeder:
    def __init__(self, tor, data, rate, corrupt, stats_path, split=1, leave_after_copy=False):
        self.tor = tor
        self.split = max(1, split)
        self.leave_after_copy = leave_after_copy
        self.slots = 0                       # handshakes so far: the next connection's part
        self.sent_once = set()               # (piece, begin) sent at least once
        self.all_blocks = sum((tor.piece_size(i) + BLOCK - 1) // BLOCK for i in range(tor.num_pieces))
        self.data = data
        self.rate = rate
        self.corrupt = corrupt
        self.stats_path = stats_path
        self.peer_id = new_peer_id()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next_send = time.monotonic()
        self.stats = dict(connections=0, handshakes=0, bad_handshakes=0, blocks_sent=0, bytes_sent=0,
                          corrupt_blocks=0, corrupt_pieces=[], requests=0, cancels=0,
                          closed_by_remote=0, closed_by_us=0, open=0, refused_requests=0,
                          unique_blocks=0, left_after_copy=False, conn_bytes={})
        self.dirty = True

    def bump(self, key, n=1):
        with self.lock:
            self.stats[key] += n
            self.dirty = True

    def write_stats(self):
        if not self.stats_path:
            return
        with self.lock:
            if not self.dirty:
                return
            self.dirty = False
            text = json.dumps(self.stats, sort_keys=True)
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.stats_path)

    def log(self, text):
        print(text, flush=True)

    def pace(self, nbytes):
        """Waits for this many bytes' share of the global rate."""
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_send)
            self.next_send = at + nbytes / self.rate
        delay = at - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)

    def corrupts(self, piece):
        if self.corrupt == "all":
            return True
        if self.corrupt.startswith("every:"):
            return piece % int(self.corrupt[6:]) == 0
        return False

    def block(self, piece, begin, length):
        data = self.data.read(piece * self.tor.piece_length + begin, length)
        if not self.corrupts(piece):
            return data, False
        b = bytearray(data)
        for k in range(0, len(b), 997):
            b[k] ^= 0xA5
        return bytes(b), True

    def serve(self, sock, addr, cid):
        tor = self.tor
        deadline = time.monotonic() + 20
        try:
            hs = recv_exact(sock, 68, deadline)
        except (OSError, EOFError, TimeoutError):
            self.bump("bad_handshakes")
            return "no handshake"
        if hs[0] != 19 or hs[1:20] != PSTR or hs[28:48] != tor.infohash:
            self.bump("bad_handshakes")
            return "bad handshake"
        with self.lock:
            part = self.slots % self.split
            self.slots += 1
        self.bump("handshakes")
        mine = [i for i in range(tor.num_pieces) if i % self.split == part]
        sock.sendall(handshake_bytes(tor.infohash, self.peer_id))
        sock.sendall(msg(BITFIELD, bitfield_of(tor.num_pieces, mine)))
        mine = set(mine)
        queue = []
        rbuf = b""
        choked = True
        while not self.stop.is_set():
            wait = 0 if (queue and not choked) else 0.5
            r, _, _ = select.select([sock], [], [], wait)
            if r:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.bump("closed_by_remote")
                    return "closed by remote"
                rbuf += chunk
                while len(rbuf) >= 4:
                    n = struct.unpack(">I", rbuf[:4])[0]
                    if n > MAX_MSG:
                        self.bump("closed_by_us")
                        return "oversized message"
                    if len(rbuf) < 4 + n:
                        break
                    body, rbuf = rbuf[4:4 + n], rbuf[4 + n:]
                    if n == 0:
                        continue
                    mid, pl = body[0], body[1:]
                    if mid == INTERESTED and choked:
                        choked = False
                        sock.sendall(msg(UNCHOKE))
                    elif mid == REQUEST and len(pl) == 12:
                        req = struct.unpack(">III", pl)
                        piece, begin, length = req
                        self.bump("requests")
                        if piece not in mine:
                            self.bump("refused_requests")
                        elif (0 < length <= BLOCK and begin + length <= tor.piece_size(piece) and
                                len(queue) < MAX_QUEUE):
                            queue.append(req)
                    elif mid == CANCEL and len(pl) == 12:
                        req = struct.unpack(">III", pl)
                        if req in queue:
                            queue.remove(req)
                            self.bump("cancels")
            if queue and not choked:
                piece, begin, length = queue.pop(0)
                self.pace(length + 13)
                if self.stop.is_set():
                    break
                data, bad = self.block(piece, begin, length)
                with self.lock:
                    last = (self.leave_after_copy and (piece, begin) not in self.sent_once and
                            len(self.sent_once) + 1 >= self.all_blocks)
                    self.sent_once.add((piece, begin))
                if last:
                    # said before the block goes out: nobody can be complete yet
                    self.log("leaving: every block was sent once")
                sock.sendall(msg(PIECE, struct.pack(">II", piece, begin) + data))
                with self.lock:
                    self.stats["blocks_sent"] += 1
                    self.stats["bytes_sent"] += length
                    cb = self.stats["conn_bytes"]
                    cb[str(cid)] = cb.get(str(cid), 0) + length
                    self.stats["unique_blocks"] = len(self.sent_once)
                    if last:
                        self.stats["left_after_copy"] = True
                        self.stop.set()
                    if bad:
                        self.stats["corrupt_blocks"] += 1
                        if piece not in self.stats["corrupt_pieces"] and len(self.stats["corrupt_pieces"]) < 1000:
                            self.stats["corrupt_pieces"].append(piece)
                    self.dirty = True
        self.bump("closed_by_us")
        return "stopping"

    def conn_thread(self, sock, addr, cid):
        self.bump("connections")
        self.bump("open")
        self.log("conn %d: from %s:%d" % (cid, addr[0], addr[1]))
        why = "error"
        try:
            why = self.serve(sock, addr, cid)
            if self.stop.is_set():
                graceful_close(sock)
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            self.bump("closed_by_remote")
            why = "closed: %s" % e
        finally:
            sock.close()
            self.bump("open", -1)
        self.log("conn %d: %s" % (cid, why))

    def announce(self, url, port, event):
        q = urllib.parse.urlencode({
            "info_hash": self.tor.infohash, "peer_id": self.peer_id, "port": port,
            "uploaded": 0, "downloaded": 0, "left": 0, "compact": 1, "event": event,
        }, quote_via=urllib.parse.quote)           # %20, never '+', for a space byte
        sep = "&" if "?" in url else "?"
        try:
            with urllib.request.urlopen(url + sep + q, timeout=5) as r:
                r.read(65536)
            self.log("announce %s: ok" % event)
        except OSError as e:
            self.log("announce %s: %s" % (event, e))

    def run(self, bind, port, announce, max_seconds):
        ls = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((bind, port))
        ls.listen(32)
        ls.settimeout(0.2)
        port = ls.getsockname()[1]
        print("port: %d" % port, flush=True)
        print("infohash: %s" % self.tor.infohash.hex(), flush=True)
        if announce:
            self.announce(announce, port, "started")
        end = time.monotonic() + max_seconds
        threads = []
        cid = 0
        last_stats = 0
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                s, addr = ls.accept()
            except socket.timeout:
                s = None
            if s is not None:
                cid += 1
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self.conn_thread, args=(s, addr, cid), daemon=True)
                t.start()
                threads.append(t)
            if time.monotonic() - last_stats > 0.2:
                self.write_stats()
                last_stats = time.monotonic()
        self.stop.set()
        ls.close()
        for t in threads:
            t.join(2)
        if announce:
            self.announce(announce, port, "stopped")
        self.dirty = True
        self.write_stats()
        self.log("stopped: %s" % json.dumps({k: v for k, v in self.stats.items()
                                             if k not in ("corrupt_pieces", "conn_bytes")}))


def cmd_seed(args):
    opts = {"--bind": "127.0.0.1", "--port": "0", "--rate": "0", "--corrupt": "none",
            "--announce": "", "--stats": "", "--max-seconds": "300", "--split": "1"}
    leave = False
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--leave-after-copy":
            leave = True
            i += 1
        elif args[i] in opts and i + 1 < len(args):
            opts[args[i]] = args[i + 1]
            i += 2
        elif args[i].startswith("--"):
            usage("unknown option " + args[i])
        else:
            pos.append(args[i])
            i += 1
    if len(pos) != 2:
        usage("seed takes TORRENT DATA")
    tor = Torrent(pos[0])
    seeder = Seeder(tor, Data(tor, pos[1]), float(opts["--rate"]), opts["--corrupt"], opts["--stats"],
                    int(opts["--split"]), leave)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: seeder.stop.set())
    seeder.run(opts["--bind"], int(opts["--port"]), opts["--announce"], float(opts["--max-seconds"]))
    return 0


# ---- attack mode ----

class Conn:
    def __init__(self, host, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False       # closed already: fine for an attack

    def handshake(self, infohash):
        """Sends ours, reads theirs: their handshake or None if they hung up."""
        self.send(handshake_bytes(infohash, new_peer_id()))
        try:
            return recv_exact(self.sock, 68, time.monotonic() + self.timeout)
        except (EOFError, OSError, TimeoutError):
            return None

    def wait_for(self, mid, secs):
        """Reads messages until one with this id arrives; its payload or None."""
        deadline = time.monotonic() + secs
        try:
            while True:
                got, pl = read_msg(self.sock, deadline)
                if got == mid:
                    return pl
        except (EOFError, OSError, TimeoutError, ValueError):
            return None

    def closed_within(self, secs):
        """True when the other side closes (EOF or reset) within secs; reads and drops data meanwhile."""
        deadline = time.monotonic() + secs
        total = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            total += len(chunk)
            if total > (64 << 20):
                return False

    def close(self):
        self.sock.close()


def case_garbage(c, tor):
    c.send(b"\x42" + os.urandom(99))
    return None


def case_wrong_infohash(c, tor):
    hs = c.handshake(hashlib.sha1(b"some other torrent").digest())
    if hs is not None:
        return "answered a handshake for a torrent it does not have"
    return None


def after_handshake(c, tor):
    hs = c.handshake(tor.infohash)
    if hs is None:
        return "no handshake back"
    if hs[28:48] != tor.infohash:
        return "handshake back names another infohash"
    return None


def unchoked(c, tor, bitfield=True):
    err = after_handshake(c, tor)
    if err:
        return err
    if bitfield:
        c.send(msg(BITFIELD, bytes(tor.bitfield_len())))
    c.send(msg(INTERESTED))
    if c.wait_for(UNCHOKE, 5) is None:
        return "not unchoked after INTERESTED"
    return None


def case_huge_length(c, tor):
    err = after_handshake(c, tor)
    if err:
        return err
    c.send(b"\x7f\xff\xff\xff" + bytes([PIECE]) + b"\0" * 1000)
    return None


def case_huge_length_unknown_id(c, tor):
    err = after_handshake(c, tor)
    if err:
        return err
    c.send(b"\x7f\xff\xff\xff" + b"\x63" + b"\0" * 1000)
    return None


def case_request_bad_index(c, tor):
    err = unchoked(c, tor)
    if err:
        return err
    c.send(msg(REQUEST, struct.pack(">III", tor.num_pieces, 0, BLOCK)))
    return None


def case_request_past_piece(c, tor):
    err = unchoked(c, tor)
    if err:
        return err
    last = tor.num_pieces - 1
    size = tor.piece_size(last)
    begin = max(0, size - 100)
    c.send(msg(REQUEST, struct.pack(">III", last, begin, min(BLOCK, 200))))
    return None


def case_request_huge_block(c, tor):
    err = unchoked(c, tor)
    if err:
        return err
    c.send(msg(REQUEST, struct.pack(">III", 0, 0, 1 << 17)))
    return None


def case_unsolicited_piece(c, tor):
    err = after_handshake(c, tor)
    if err:
        return err
    block = msg(PIECE, struct.pack(">II", 0, 0) + b"\0" * BLOCK)
    for _ in range(40):
        if not c.send(block):
            break
    return None


def case_late_bitfield(c, tor):
    # A late BITFIELD is taken as a run of HAVEs (aria2 sends them); one whose
    # spare bits are set is still malformed and must close the connection.
    if tor.num_pieces % 8 == 0:
        return "SKIP: the torrent has no spare bits (pieces a multiple of 8)"
    err = after_handshake(c, tor)
    if err:
        return err
    c.send(msg(INTERESTED))
    bits = bytearray(tor.bitfield_len())
    bits[-1] |= 0xFF >> (tor.num_pieces % 8)
    c.send(msg(BITFIELD, bytes(bits)))
    return None


def case_bitfield_spare_bits(c, tor):
    if tor.num_pieces % 8 == 0:
        return "SKIP: the torrent has no spare bits (pieces a multiple of 8)"
    err = after_handshake(c, tor)
    if err:
        return err
    bf = bytearray(tor.bitfield_len())
    bf[-1] = (1 << (8 - tor.num_pieces % 8)) - 1     # only the bits past the last piece
    c.send(msg(BITFIELD, bytes(bf)))
    return None


def case_have_bad_index(c, tor):
    err = after_handshake(c, tor)
    if err:
        return err
    c.send(msg(HAVE, struct.pack(">I", tor.num_pieces)))
    return None


def case_request_flood(c, tor):
    err = unchoked(c, tor)
    if err:
        return err
    reqs = b"".join(msg(REQUEST, struct.pack(">III", p % tor.num_pieces, 0, BLOCK)) for p in range(2000))
    c.send(reqs)
    return None


def case_control(c, tor):
    """A well-behaved leecher: gets piece 0, checks its hash; the connection stays open."""
    err = unchoked(c, tor)
    if err:
        return err
    size = tor.piece_size(0)
    for begin in range(0, size, BLOCK):
        c.send(msg(REQUEST, struct.pack(">III", 0, begin, min(BLOCK, size - begin))))
    got = {}
    deadline = time.monotonic() + c.timeout
    try:
        while sum(len(v) for v in got.values()) < size:
            mid, pl = read_msg(c.sock, deadline)
            if mid == PIECE:
                index, begin = struct.unpack(">II", pl[:8])
                if index == 0:
                    got[begin] = pl[8:]
    except (EOFError, OSError, TimeoutError, ValueError) as e:
        return "piece 0 not served: %s" % e
    data = b"".join(got[k] for k in sorted(got))
    if hashlib.sha1(data).digest() != tor.hashes[0]:
        return "piece 0 served with wrong data"
    if c.closed_within(1.0):
        return "closed a well-behaved connection"
    return "KEEP"


CASES = {
    "garbage": case_garbage,
    "wrong_infohash": case_wrong_infohash,
    "huge_length": case_huge_length,
    "huge_length_unknown_id": case_huge_length_unknown_id,
    "request_bad_index": case_request_bad_index,
    "request_past_piece": case_request_past_piece,
    "request_huge_block": case_request_huge_block,
    "unsolicited_piece": case_unsolicited_piece,
    "late_bitfield": case_late_bitfield,
    "bitfield_spare_bits": case_bitfield_spare_bits,
    "have_bad_index": case_have_bad_index,
    "request_flood": case_request_flood,
    "control": case_control,
}


def cmd_attack(args):
    timeout = 5.0
    if "--timeout" in args:
        k = args.index("--timeout")
        timeout = float(args[k + 1])
        del args[k:k + 2]
    if len(args) != 3 or args[2] not in CASES:
        usage("attack takes TORRENT HOST:PORT CASE (cases: %s)" % " ".join(CASES))
    tor = Torrent(args[0])
    host, _, port = args[1].rpartition(":")
    name = args[2]
    try:
        c = Conn(host.strip("[]"), int(port), timeout)
    except OSError as e:
        print("%s: cannot connect: %s" % (name, e))
        return 1
    try:
        t0 = time.monotonic()
        err = CASES[name](c, tor)
        if err == "KEEP":
            print("%s: served correctly, connection kept open" % name)
            return 0
        if err and err.startswith("SKIP"):
            print("%s: %s" % (name, err))
            return 1
        if err:
            print("%s: %s" % (name, err))
            return 1
        if c.closed_within(timeout):
            print("%s: connection closed by the peer after %.2f s" % (name, time.monotonic() - t0))
            return 0
        print("%s: connection still open after %.0f s" % (name, timeout))
        return 1
    finally:
        c.close()


def usage(text):
    sys.stderr.write("evil_peer.py: %s\n%s" % (text, __doc__))
    sys.exit(2)


def main():
    if len(sys.argv) < 2:
        usage("a mode is needed")
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "seed":
        return cmd_seed(args)
    if mode == "attack":
        return cmd_attack(args)
    usage("unknown mode " + mode)


if __name__ == "__main__":
    sys.exit(main())
