#!/bin/bash
# test_tracker.sh -- shoal-tracker as a process on loopback: real HTTP announces and
# scrapes (BEP 3, 23, 48, 7), malformed requests, HTTP limits (head size, keep-alive
# bound, pipelining, idle time-out, connection cap), IPv6 on ::1, clean exit on
# SIGINT/SIGTERM, bad usage.
# SANITIZE_OK
source "$(dirname "$0")/lib.sh"

# Starts a tracker on ADDR with port 0 and waits for its "listening on" line;
# sets TPORT to the port it chose.
start_tracker_any() {  # name, addr, extra args...
  local name=$1 addr=$2; shift 2
  start "$name" "$TRACKER_BIN" --bind "$addr" --port 0 "$@"
  TPORT=""
  if wait_for 20 "$name to print its address" grep -q 'listening on' "$TMP/$name.err"; then
    TPORT=$(sed -n 's/^shoal-tracker: listening on .*:\([0-9][0-9]*\)$/\1/p' "$TMP/$name.err" | head -n 1)
  fi
}

# Runs the Python checks against a tracker; their ok/not ok lines count here,
# and a crash of the checker counts as a failure.
run_py() {  # mode, host, port
  run_py_checks "$1" "$TMP/checks.py" "$@"
}

cat >"$TMP/checks.py" <<'PY'
import select, socket, struct, sys, time, urllib.parse

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET

def connect(timeout=5):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s

pending = {}  # bytes read past the last response, per socket

def read_response(s):
    """One HTTP response: (status, headers dict, body); None on EOF."""
    data = pending.pop(s.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None if not data else ("partial", {}, data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    pending[s.fileno()] = rest[n:]
    return status, hdrs, rest[:n]

def eof_soon(s, secs):
    s.settimeout(secs)
    try:
        while True:
            c = s.recv(65536)
            if not c:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True

def get(target, extra_headers=""):
    s = connect()
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" % (target, extra_headers)).encode())
    r = read_response(s)
    s.close()
    return r

def ih(n):
    return bytes([0, ord("&"), ord("="), 0xff, ord("%"), ord("+"), ord(" ")] + [7] * 11 + [n >> 8 & 255, n & 255])

def pid(n):
    return b"-SH0001-" + b"%012d" % n

def q(**kw):
    parts = []
    for k, v in kw.items():
        if isinstance(v, bytes):
            v = urllib.parse.quote_from_bytes(v, safe="")
        parts.append("%s=%s" % (k, v))
    return "&".join(parts)

def announce(t, p, pport, left, **extra):
    args = dict(info_hash=ih(t), peer_id=pid(p), port=pport, uploaded=0, downloaded=0, left=left)
    args.update(extra)
    r = get("/announce?" + q(**args))
    if r is None or r[0] != 200:
        return {"_status": r and r[0]}
    return bdecode(r[2])

def scrape(*ts):
    r = get("/scrape" + ("?" + "&".join(q(info_hash=ih(t)) for t in ts) if ts else ""))
    return bdecode(r[2])

me4 = socket.inet_aton("127.0.0.1")

if mode == "v4":
    # The idle connection: opened first, checked last (time-out 15 s).
    idle = connect()
    idle_t0 = time.monotonic()

    a = announce(1, 1, 6881, 1000, event="started")
    ok(a.get(b"interval") == 1800 and a.get(b"min interval") == 900, "announce: interval 1800, min interval 900")
    ok(a.get(b"complete") == 0 and a.get(b"incomplete") == 1, "announce: first leecher counted")
    ok(a.get(b"peers") == b"" and b"peers6" not in a, "announce: alone, empty compact peers")
    b = announce(1, 2, 51413, 0, event="started")
    ok(b.get(b"complete") == 1 and b.get(b"incomplete") == 1, "announce: seed counted")
    ok(b.get(b"peers") == me4 + struct.pack(">H", 6881), "announce: seed gets the leecher, compact 6 bytes")
    c = announce(1, 1, 6881, 500, compact=0)
    pl = c.get(b"peers")
    ok(isinstance(pl, list) and len(pl) == 1 and pl[0] == {b"ip": b"127.0.0.1", b"peer id": pid(2), b"port": 51413},
       "announce compact=0: list of {ip, peer id, port}")
    c = announce(1, 1, 6881, 500, compact=0, no_peer_id=1)
    ok(c.get(b"peers") == [{b"ip": b"127.0.0.1", b"port": 51413}], "announce no_peer_id=1: no peer id")
    c = announce(1, 1, 6881, 500)
    ok(c.get(b"peers") == me4 + struct.pack(">H", 51413), "announce: never the requester itself")

    s = scrape(1)
    f = s.get(b"files", {})
    ok(f == {ih(1): {b"complete": 1, b"downloaded": 0, b"incomplete": 1}}, "scrape one infohash")
    announce(1, 1, 6881, 0, event="completed")
    s = scrape(1, 2)
    f = s.get(b"files", {})
    ok(f.get(ih(1)) == {b"complete": 2, b"downloaded": 1, b"incomplete": 0}, "completed counts in downloaded")
    ok(f.get(ih(2)) == {b"complete": 0, b"downloaded": 0, b"incomplete": 0}, "scrape of an unknown infohash: zeros")
    announce(1, 2, 51413, 0, event="stopped")
    f = scrape(1)[b"files"]
    ok(f.get(ih(1), {}).get(b"complete") == 1, "stopped removes the peer")
    d = announce(1, 1, 6881, 0)
    ok(d.get(b"peers") == b"", "stopped peer no longer handed out")

    # Many peers: numwant default 50, clamped at 200.  All on 127.0.0.1, other ports.
    for i in range(250):
        announce(3, 100 + i, 10000 + i, 5, numwant=0)
    w = announce(3, 999, 9999, 5, numwant=1000)
    ok(len(w.get(b"peers", b"")) == 200 * 6, "numwant=1000 clamped to 200 peers")
    ok(w.get(b"incomplete") == 251, "251 leechers counted")
    w = announce(3, 999, 9999, 5)
    ok(len(w.get(b"peers", b"")) == 50 * 6, "numwant default 50")
    peers = [w[b"peers"][i:i+6] for i in range(0, 300, 6)]
    ok(len(set(peers)) == 50 and me4 + struct.pack(">H", 9999) not in peers, "50 distinct peers, not self")
    s = scrape()
    ok(set(s.get(b"files", {}).keys()) == {ih(1), ih(3)}, "scrape without info_hash: all swarms")

    # Malformed announces: HTTP 200 with a failure reason.
    def failure(target):
        r = get(target)
        if r is None or r[0] != 200:
            return None
        return bdecode(r[2]).get(b"failure reason")
    good = dict(info_hash=ih(1), peer_id=pid(1), port=6881, uploaded=0, downloaded=0, left=0)
    def bad(**over):
        args = dict(good); args.update(over)
        args = {k: v for k, v in args.items() if v is not None}
        return failure("/announce?" + q(**args))
    ok(bad(info_hash=ih(1)[:19]) == b"invalid info_hash", "info_hash of 19 bytes refused")
    ok(bad(info_hash=ih(1) + b"x") == b"invalid info_hash", "info_hash of 21 bytes refused")
    ok(failure("/announce?info_hash=%zz&peer_id=x") == b"invalid info_hash", "bad %-escape refused")
    ok(bad(peer_id=b"short") == b"invalid peer_id", "short peer_id refused")
    ok(bad(port=0) == b"invalid port", "port 0 refused")
    ok(bad(port=70000) == b"invalid port", "port 70000 refused")
    ok(bad(port="12a") == b"invalid port", "port 12a refused")
    ok(bad(left=-1) == b"invalid left", "negative left refused")
    ok(bad(uploaded="99999999999999999999") == b"invalid uploaded", "overflowing uploaded refused")
    ok(bad(event="paused") == b"invalid event", "unknown event refused")
    ok(bad(port=None) == b"missing port", "missing port reported")
    ok(failure("/announce") == b"missing info_hash", "announce without a query")
    ok(bad(numwant=-5) == b"invalid numwant", "negative numwant refused")
    ok(failure("/scrape?info_hash=abc") == b"invalid info_hash", "scrape with a bad info_hash")

    # HTTP level.
    r = get("/nothing-here")
    ok(r is not None and r[0] == 404, "unknown path: 404")
    r = get("/announce?" + q(**good) + "&pad=" + "x" * 9000)
    ok(r is not None and r[0] == 431, "request line over 8 KiB: 431")
    r = get("/scrape", "X-Big: " + "y" * 9000 + "\r\n")
    ok(r is not None and r[0] == 431, "headers over 8 KiB: 431")
    sk = connect()
    sk.sendall(b"POST /announce HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    r = read_response(sk)
    ok(r is not None and r[0] == 405 and r[1].get("connection") == "close" and eof_soon(sk, 5),
       "POST: 405 and close")
    sk.close()
    sk = connect()
    sk.sendall(b"GET /scrape HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
    r = read_response(sk)
    ok(r is not None and r[0] == 413, "GET with a body: 413")
    sk.close()
    sk = connect()
    sk.sendall(b"HELLO THERE\r\n\r\n")
    r = read_response(sk)
    ok(r is not None and r[0] == 400 and eof_soon(sk, 5), "garbage: 400 and close")
    sk.close()
    sk = connect()
    sk.sendall(b"GET /scrape HTTP/1.0\r\n\r\n")
    r = read_response(sk)
    ok(r is not None and r[0] == 200 and r[1].get("connection") == "close" and eof_soon(sk, 5),
       "HTTP/1.0 without keep-alive: answered, then closed")
    sk.close()

    # Keep-alive: sequential requests on one connection, then pipelined ones.
    sk = connect()
    statuses = []
    for i in range(5):
        sk.sendall(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n")
        r = read_response(sk)
        statuses.append(r and (r[0], r[1].get("connection")))
    ok(statuses == [(200, "keep-alive")] * 5, "keep-alive: 5 requests on one connection")
    sk.sendall(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
    got = []
    for i in range(4):
        r = read_response(sk)
        got.append(r and r[0])
    ok(got == [200, 200, 200, 404], "pipelined requests answered in order: %r" % got)
    sk.close()

    # The 100th request on a connection is its last.
    sk = connect()
    last = None
    count = 0
    for i in range(101):
        try:
            sk.sendall(b"GET /scrape?info_hash=" + urllib.parse.quote_from_bytes(ih(1)).encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            r = read_response(sk)
        except (BrokenPipeError, ConnectionResetError):
            r = None
        if r is None:
            break
        count += 1
        last = r
    ok(count == 100 and last[1].get("connection") == "close", "keep-alive bounded: %d requests, last says close" % count)
    sk.close()

    # Connection cap (1024): the connections over it are closed at once; the
    # first ones still work; after they close, new ones are served again.
    time.sleep(1)  # let earlier connections finish closing
    many = []
    for i in range(1030):
        many.append(connect())
    poller = select.poll()
    for s in many:
        poller.register(s.fileno(), select.POLLIN)
    t0 = time.monotonic()
    closed = set()
    while time.monotonic() - t0 < 2:
        for fd, ev in poller.poll(200):
            closed.add(fd)
            poller.unregister(fd)
    # idle + 1030 = 1031 connections: 7 over the cap.
    ok(len(closed) == 7, "connection cap: %d of 1031 refused (want 7)" % len(closed))
    many[0].sendall(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n")
    r = read_response(many[0])
    ok(r is not None and r[0] == 200, "a connection under the cap is served")
    for s in many:
        s.close()
    ok_again = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and not ok_again:
        try:
            r = get("/scrape")
            ok_again = r is not None and r[0] == 200
        except OSError:
            pass
        if not ok_again:
            time.sleep(0.2)
    ok(ok_again, "served again once connections closed")

    # The idle connection was closed by the server 15 s after it opened.
    closed_idle = eof_soon(idle, max(0.5, 20 - (time.monotonic() - idle_t0)))
    el = time.monotonic() - idle_t0
    ok(closed_idle and el >= 14, "idle connection closed after %.1f s (time-out 15 s)" % el)
    idle.close()

elif mode == "v6":
    a = announce(5, 1, 6881, 10)
    ok(a.get(b"incomplete") == 1 and a.get(b"peers") == b"", "IPv6: first peer")
    b = announce(5, 2, 6882, 0)
    want = socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">H", 6881)
    ok(b.get(b"peers6") == want and b.get(b"peers") == b"", "IPv6: peers6 holds [::1]:6881 (18 bytes)")
    c = announce(5, 1, 6881, 10, compact=0)
    ok(c.get(b"peers") == [{b"ip": b"::1", b"peer id": pid(2), b"port": 6882}], "IPv6: compact=0 gives ip ::1")
PY

check "tracker binary exists" test -x "$TRACKER_BIN"

# Bad usage: exit 2, nothing started.
for args in "--port 70000" "--port -1" "--port 12a" "--bind nowhere" "--bind 1.2.3" "--interval 0" \
            "--interval 99999999999" "--frobnicate" "--port" "--bind 127.0.0.1 --bind ::1 --bind nowhere" \
            "$(printf -- '--bind 127.0.0.1 %.0s' 1 2 3 4 5 6 7 8 9)"; do
  timeout 10 "$TRACKER_BIN" $args >/dev/null 2>&1
  rc=$?
  check "bad usage '$args' exits 2 (rc $rc)" test "$rc" -eq 2
done

start_tracker_any t4 127.0.0.1 -v
check "IPv4 tracker prints 'listening on 127.0.0.1:PORT'" test -n "$TPORT"
if [ -n "$TPORT" ]; then
  # A second tracker on the same port cannot bind: exit 1.
  timeout 10 "$TRACKER_BIN" --bind 127.0.0.1 --port "$TPORT" >/dev/null 2>"$TMP/inuse.err"
  rc=$?
  check "port in use exits 1 (rc $rc)" test "$rc" -eq 1
  run_py v4 127.0.0.1 "$TPORT"
  kill -INT "$PID_t4"
  wait_exit 10 "$PID_t4"
  check "SIGINT: tracker exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
fi

start_tracker_any t6 ::1
check "IPv6 tracker prints 'listening on [::1]:PORT'" grep -q 'listening on \[::1\]:' "$TMP/t6.err"
if [ -n "$TPORT" ]; then
  run_py v6 ::1 "$TPORT"
  kill -TERM "$PID_t6"
  wait_exit 10 "$PID_t6"
  check "SIGTERM: tracker exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
fi

finish
