#!/bin/bash
# demo.sh -- a swarm on loopback: shoal-tracker, one seeder and three leechers of an
# example folder, with live progress.  Installs what is missing and builds first.
#   examples/demo.sh [SIZE_MIB]      (default 256)
set -eu
cd "$(dirname "$0")/.."
tests/deps.sh
make -s -j2 all
BIN=$PWD/build
SIZE=${1:-256}
DEMO=$(mktemp -d /tmp/shoal-demo.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DEMO"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== making an example folder of ${SIZE} MiB in $DEMO/share"
mkdir -p "$DEMO/share/photos"
head -c $((SIZE * 1024 * 1024 * 3 / 4)) /dev/urandom > "$DEMO/share/video.bin"
head -c $((SIZE * 1024 * 1024 / 4)) /dev/urandom > "$DEMO/share/photos/album.bin"
echo "hello from shoal" > "$DEMO/share/README.txt"

TPORT=$(port)
echo "== starting shoal-tracker on 127.0.0.1:$TPORT"
"$BIN/shoal-tracker" --bind 127.0.0.1 --port "$TPORT" --interval 5 2>"$DEMO/tracker.log" &
PIDS+=($!)
sleep 0.3

echo "== seeding (creates share.torrent next to the folder)"
SHOAL_ANNOUNCE_FLOOR=5 "$BIN/shoal" seed "$DEMO/share" --announce "http://127.0.0.1:$TPORT/announce" \
  --bind 127.0.0.1 --port "$(port)" -q > "$DEMO/seeder.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -qs '^port:' "$DEMO/seeder.out" && break; sleep 0.2; done
cat "$DEMO/seeder.out"

echo "== three leechers download from the seeder and from each other"
for i in 1 2; do
  SHOAL_ANNOUNCE_FLOOR=5 "$BIN/shoal" get "$DEMO/share.torrent" -o "$DEMO/leech$i" --bind 127.0.0.1 \
    --port "$(port)" -q > "$DEMO/leech$i.out" 2>&1 &
  PIDS+=($!)
done
# the third one in front of you, with its progress bar
SHOAL_ANNOUNCE_FLOOR=5 "$BIN/shoal" get "$DEMO/share.torrent" -o "$DEMO/leech3" --bind 127.0.0.1 --port "$(port)"
for p in "${PIDS[@]:2}"; do wait "$p"; done
for i in 1 2 3; do
  if diff -r "$DEMO/share" "$DEMO/leech$i/share" >/dev/null; then
    echo "leecher $i: identical to the source"
  else
    echo "leecher $i: DIFFERENT from the source"; exit 1
  fi
done
echo "== done"
