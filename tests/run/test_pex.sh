#!/bin/bash
# test_pex.sh -- peer exchange (BEP 11): a seeder tells a newcomer about the other
# peers it is connected to; a private torrent (BEP 27) never does.
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

src="$TMP/data.bin"
make_file "$src" 300000 21
shoal create "$src" -o "$TMP/pub.torrent" --piece-size 16K -q >/dev/null
shoal create "$src" -o "$TMP/priv.torrent" --piece-size 16K --private -q >/dev/null

# Two scripted peers: one stays connected and says it listens on port P; the
# other must hear about P from the seeder.
for kind in pub priv; do
  ih=$("$SHOAL_BIN" info "$TMP/$kind.torrent" | sed -n 's/^infohash: *//p')
  start_shoal "seed_$kind" seed "$src" "$TMP/$kind.torrent" --bind 127.0.0.1 --port "$(free_port)"
  sport=$(shoal_port "seed_$kind")
  p=$(free_port)
  start "hold_$kind" python3 "$ROOT/tests/run/pex_observer.py" --port "$sport" --infohash "$ih" \
    --advertise "$p" --hold --seconds 40
  if [ "$kind" = pub ]; then
    check "a public torrent's seeder tells a newcomer about its other peer" \
      python3 "$ROOT/tests/run/pex_observer.py" --port "$sport" --infohash "$ih" --want "$p" --seconds 20
  else
    check "a private torrent's seeder never sends PEX" \
      bash -c "! python3 '$ROOT/tests/run/pex_observer.py' --port '$sport' --infohash '$ih' --want '$p' --seconds 10"
  fi
  eval kill -TERM \$PID_seed_$kind \$PID_hold_$kind
done
finish
