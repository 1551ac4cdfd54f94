#!/bin/bash
# test_timeouts.sh -- a peer cannot hold a connection without talking: a connection
# that sends no handshake is closed after the handshake time-out (20 s), and one
# that goes silent after the handshake after the idle time-out (120 s), while
# the node keeps serving others.  Real time-outs, so this runs only in the
# normal pass (about two minutes).
source "$(dirname "$0")/lib.sh"

src="$TMP/data.bin"
make_file "$src" 200000 31
shoal create "$src" -o "$TMP/t.torrent" --piece-size 16K -q >/dev/null
ih=$("$SHOAL_BIN" info "$TMP/t.torrent" | sed -n 's/^infohash: *//p')
start_shoal seeder seed "$src" "$TMP/t.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder)

# Each probe connects, optionally handshakes, then stays silent and reports
# after how many seconds the seeder closed the connection.
probe() {  # name, handshake (0/1), max seconds
  python3 - "$sport" "$ih" "$2" "$3" >"$TMP/$1.probe" 2>&1 <<'PY' &
import socket, sys, time
port, ih, hs, limit = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
t0 = time.time()
if hs:
    s.sendall(b"\x13BitTorrent protocol" + bytes(8) + ih + b"-TO0001-silentsilent")
s.settimeout(1)
while time.time() - t0 < limit:
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    except ConnectionResetError:
        d = b""
    if not d:
        print("closed after %.1f" % (time.time() - t0))
        sys.exit(0)
print("still open after %.1f" % (time.time() - t0))
sys.exit(1)
PY
  eval "PID_$1=$!"
  PIDS+=("$!")
}
probe nohs 0 40
probe idle 1 170
wait_exit 45 "$PID_nohs"; rc=$WAIT_RC
secs=$(sed -n 's/^closed after //p' "$TMP/nohs.probe")
check "no handshake: closed ($(cat "$TMP/nohs.probe"))" test "$rc" -eq 0
check "no handshake: not before the 20 s time-out" awk -v s="${secs:-0}" 'BEGIN { exit !(s >= 19 && s <= 25) }'

# the node serves others while the silent peer waits
mkdir -p "$TMP/l"
start_shoal leech get "$TMP/t.torrent" -o "$TMP/l" --bind 127.0.0.1 --port "$(free_port)" --peer "127.0.0.1:$sport" -q
wait_exit 30 "$PID_leech"
check "another peer is served meanwhile (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

wait_exit 175 "$PID_idle"; rc=$WAIT_RC
secs=$(sed -n 's/^closed after //p' "$TMP/idle.probe")
check "silent after the handshake: closed ($(cat "$TMP/idle.probe"))" test "$rc" -eq 0
check "silent after the handshake: not before the 120 s idle time-out" \
  awk -v s="${secs:-0}" 'BEGIN { exit !(s >= 119 && s <= 130) }'
kill -TERM "$PID_seeder"; wait_exit 20 "$PID_seeder"
check "seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
