#!/bin/bash
# test_faults.sh -- shoal under injected faults, each process in its own network
# namespace (a bridge namespace as the switch, one namespace per node, addresses
# 10.231.1.N that exist only inside them; needs root, skipped otherwise):
#  1. 5 % packet loss on every link: a seeder and four leechers of a multi-file
#     torrent found through a tracker all complete with identical files;
#  2. one TCP reset after 1 MB on the seeder's link: the leecher reconnects and
#     completes;
#  3. a slow seeder (tc tbf) killed with SIGKILL once every piece is held by one
#     of two slower leechers, each still missing pieces the other has: both
#     complete from each other;
#  4. the tracker killed with SIGKILL mid-swarm: the leechers go on with the
#     peers they know and complete;
#  5. disk full (a 2 MiB tmpfs for a bigger torrent): `shoal get` exits 1 with
#     one error line naming the problem, what it wrote verifies, and after the
#     tmpfs is made bigger a second run resumes from those pieces and completes;
#  6. too few file descriptors (prlimit --nofile=N for a range of N): never a
#     crash or a hang; either complete and correct, or exit 1 naming the problem.
# For diagnosis: FAULTS="1 3" runs only some scenarios; FAULTS_V=-v more log
# from the leechers of 3 and the gets of 6; FAULTS_DEBUG=1 shows the pieces of
# the leechers of 3 as they arrive; FAULTS_NOFILE="13 14 15" other limits for 6.
# SANITIZE_OK
source "$(dirname "$0")/lib.sh"
source "$ROOT/tests/run/faults/net.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
PIECES="$ROOT/tests/run/faults/pieces.py"
FAULTS=${FAULTS:-"1 2 3 4 5 6 7"}
NSCEN=$(echo $FAULTS | wc -w)
export SHOAL_ANNOUNCE_FLOOR=1

skip_all() {
  echo "skipped: $*"
  echo "0 passed, 0 failed, $NSCEN skipped"
  exit 0
}

MOUNTS=()
faults_cleanup() {
  local pid m
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
  net_cleanup
  cleanup
}
trap faults_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || skip_all "needs root and network namespaces"
command -v nft >/dev/null && command -v tc >/dev/null && command -v ip >/dev/null ||
  skip_all "needs ip and tc (iproute2) and nft (nftables)"
net_init || skip_all "needs root and network namespaces (ip netns add failed)"
# trk: tracker; s: seeder; l1..l4: leechers.
for node in "trk 10" "s 1" "l1 11" "l2 12" "l3 13" "l4 14"; do
  net_node $node || { fail "network namespace node $node"; finish; }
done
# A connection to a closed port is refused (not unreachable): the switch forwards.
refused() { in_ns l1 timeout 5 bash -c "exec 3<>/dev/tcp/$IP_s/9" 2>&1 | grep -q 'refused'; }
check "the nodes reach each other across the switch" wait_for 10 "the switch to forward" refused
TRACKER_URL="http://$IP_trk:6969/announce"

# ---- helpers ----
verified() {  # torrent, dir -> "GOOD TOTAL"
  python3 "$PIECES" count "$1" "$2"
}
completed() { grep -qs '^complete: ' "$TMP/$1.out"; }
on_disk() { local n; n=$(du -sB1 "$1" 2>/dev/null | cut -f1); echo "${n:-0}"; }

start_tracker_ns() {  # name
  ns_start "$1" trk "$TRACKER_BIN" --bind "$IP_trk" --port 6969 --interval 2
  wait_for 20 "tracker $1 listening" ns_port_open trk "$IP_trk" 6969
}
stop() {  # name (SIGTERM, bounded wait; SIGKILL at exit otherwise)
  local pid
  eval "pid=\${PID_$1:-}"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait_exit $((20 * SLOW)) "$pid"
}
# stop, and check it ended cleanly (exit 0: no sanitizer report either).
stop_check() {  # label, name
  stop "$2"
  check "$1: $2 stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
}
start_seeder() {  # name, node, src, torrent, port
  ns_start_shoal "$1" "$2" seed "$3" "$4" --bind "$(eval echo \$IP_$2)" --port "$5"
  wait_for $((30 * SLOW)) "seeder $1 listening" ns_port_open "$2" "$(eval echo \$IP_$2)" "$5"
}
# Waits for a `get` to exit; checks it exited 0 with identical files.
check_get() {  # label, name, secs, src, dir
  local pid
  eval "pid=\$PID_$2"
  wait_exit "$3" "$pid"
  check "$1: $2 exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  check "$1: $2 has identical files" same_tree "$4" "$5/$(basename "$4")"
}

# A multi-file data set: about 4 MiB in three files, 64 KiB pieces.
src="$TMP/src/album"
mkdir -p "$src/b"
make_file "$src/a.bin" $((1536 * 1024 + 1)) 31
make_file "$src/b/c.bin" $((2 * 1048576 - 3)) 32
make_file "$src/d.bin" 500000 33
shoal create "$src" -o "$TMP/album.torrent" --piece-size 64K --announce "$TRACKER_URL" -q >/dev/null
check "torrent created" test -s "$TMP/album.torrent"

# ---- 1. 5 % loss everywhere ----
scenario1() {
  local i ok dropped=0 n
  fault_clear_all
  for n in trk s l1 l2 l3 l4; do fault_loss "$n" 5; done
  start_tracker_ns s1_trk
  start_seeder s1_seed s "$src" "$TMP/album.torrent" 7010
  check "1: seeder listens" test $? -eq 0
  for i in 1 2 3 4; do
    mkdir -p "$TMP/s1_l$i"
    ns_start_shoal "s1_l$i" "l$i" get "$TMP/album.torrent" -o "$TMP/s1_l$i" --bind "$(eval echo \$IP_l$i)" --port 7011
  done
  for i in 1 2 3 4; do
    check_get "1 (5% loss)" "s1_l$i" $((90 * SLOW)) "$src" "$TMP/s1_l$i"
  done
  for n in trk s l1 l2 l3 l4; do
    i=$(in_ns "$n" nft list table inet shoal_loss | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
    dropped=$((dropped + ${i:-0}))
  done
  echo "# 1: $dropped packets dropped"
  check "1: packets were really dropped ($dropped)" test "$dropped" -gt 20
  stop_check 1 s1_seed
  stop_check 1 s1_trk
  fault_clear_all
}

# ---- 2. one reset after 1 MB ----
scenario2() {
  local r c
  fault_clear_all
  fault_reset_once s 7020 1000000
  # the seeder a little slow so the transfer is still going when the reset comes
  fault_rate s 40mbit
  start_seeder s2_seed s "$src" "$TMP/album.torrent" 7020
  check "2: seeder listens" test $? -eq 0
  mkdir -p "$TMP/s2_l1"
  ns_start_shoal s2_l1 l1 get "$TMP/album.torrent" -o "$TMP/s2_l1" --bind "$IP_l1" --port 7021 \
    --peer "$IP_s:7020" -v
  check_get "2 (reset)" s2_l1 $((60 * SLOW)) "$src" "$TMP/s2_l1"
  r=$(resets_sent s)
  check "2: the seeder's link sent one reset (${r:-none})" test "${r:-0}" -eq 1
  c=$(grep -c "peer $IP_s:7020: connected" "$TMP/s2_l1.err")
  check "2: the leecher connected to the seeder again after the reset ($c connections)" test "$c" -ge 2
  stop_check 2 s2_seed
  fault_clear_all
}

# ---- 3. the seeder killed while two leechers hold different parts ----
scenario3() {
  local split a b u oa ob tot i
  fault_clear_all
  # The seeder sends about one copy in 5 s, about half to each leecher (none
  # can receive more than 5 of its 8 Mbit/s); the leechers trade with each
  # other at a tenth of that, so when the last piece has left the seeder each
  # still misses pieces only the other has.
  fault_rate s 8mbit
  fault_rate l1 700kbit
  fault_rate l2 700kbit
  fault_rate_in l1 5mbit
  fault_rate_in l2 5mbit
  # small pieces: the requests a leecher keeps outstanding at the seeder cover
  # a small part of the torrent, so the two rarely ask it for the same piece
  # before the last few
  shoal create "$src" -o "$TMP/album16.torrent" --piece-size 16K --announce "$TRACKER_URL" -q >/dev/null
  start_tracker_ns s3_trk
  start_seeder s3_seed s "$src" "$TMP/album16.torrent" 7030
  check "3: seeder listens" test $? -eq 0
  for i in 1 2; do
    mkdir -p "$TMP/s3_l$i"
    ns_start_shoal "s3_l$i" "l$i" get "$TMP/album16.torrent" -o "$TMP/s3_l$i" --seed \
      --bind "$(eval echo \$IP_l$i)" --port 7031 -v ${FAULTS_V:-}
  done
  split=""
  local end=$((SECONDS + 60 * SLOW))
  while [ $SECONDS -lt $end ]; do
    split=$(python3 "$PIECES" split "$TMP/album16.torrent" "$TMP/s3_l1" "$TMP/s3_l2")
    read -r a b u oa ob tot <<<"$split"
    [ -n "${FAULTS_DEBUG:-}" ] && echo "# $SECONDS: $split"
    [ "$u" -ge "$tot" ] && break
    completed s3_l1 || completed s3_l2 && break
    sleep 0.2
  done
  { kill -KILL "$PID_s3_seed"; wait_exit 5 "$PID_s3_seed"; } 2>/dev/null
  echo "# 3: seeder killed; pieces l1 $a, l2 $b, both $u, only l1 $oa, only l2 $ob, of $tot"
  check "3: every piece was held by a leecher when the seeder was killed ($u of $tot)" test "$u" -eq "$tot"
  check "3: each leecher held part of the data ($a and $b of $tot)" test "$a" -gt 0 -a "$b" -gt 0
  check "3: neither was complete; each missed pieces the other had ($ob, $oa)" test "$oa" -gt 0 -a "$ob" -gt 0
  check "3: the leechers were connected to each other" \
    grep -q "peer $IP_l2:[0-9]*: connected" "$TMP/s3_l1.err"
  check "3: the seeder died by SIGKILL (rc $WAIT_RC)" test "$WAIT_RC" -eq 137
  # the rest goes at full speed: the point is only where it comes from
  fault_clear l1
  fault_clear l2
  for i in 1 2; do
    check "3: leecher $i completes without the seeder" \
      wait_for $((60 * SLOW)) "leecher $i to complete" completed "s3_l$i"
    check "3: leecher $i has identical files" same_tree "$src" "$TMP/s3_l$i/album"
  done
  for i in 1 2; do
    stop "s3_l$i"
    check "3: leecher $i stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  done
  stop_check 3 s3_trk
  fault_clear_all
}

# ---- 4. the tracker killed mid-swarm ----
scenario4() {
  local i n have
  fault_clear_all
  fault_rate s 4mbit
  start_tracker_ns s4_trk
  start_seeder s4_seed s "$src" "$TMP/album.torrent" 7040
  check "4: seeder listens" test $? -eq 0
  for i in 1 2 3; do
    mkdir -p "$TMP/s4_l$i"
    ns_start_shoal "s4_l$i" "l$i" get "$TMP/album.torrent" -o "$TMP/s4_l$i" --seed \
      --bind "$(eval echo \$IP_l$i)" --port 7041 -v
  done
  # every leecher has data and is connected to another leecher, all of which
  # it learnt from the tracker
  has_data() {
    local i
    for i in 1 2 3; do
      [ "$(on_disk "$TMP/s4_l$i/album")" -gt 300000 ] || return 1
      grep -q "peer 10.231.1.1[1-3]:[0-9]*: connected" "$TMP/s4_l$i.err" || return 1
    done
  }
  check "4: every leecher is downloading, connected to the seeder and another leecher" \
    wait_for $((30 * SLOW)) "data at every leecher" has_data
  { kill -KILL "$PID_s4_trk"; wait_exit 5 "$PID_s4_trk"; } 2>/dev/null
  have=""; for i in 1 2 3; do have="$have $(on_disk "$TMP/s4_l$i/album")"; done
  echo "# 4: tracker killed; bytes on disk:$have"
  check "4: no leecher was complete when the tracker died" \
    bash -c "! grep -qs '^complete:' '$TMP/s4_l1.out' '$TMP/s4_l2.out' '$TMP/s4_l3.out'"
  for i in 1 2 3; do
    check "4: leecher $i completes without the tracker" \
      wait_for $((60 * SLOW)) "leecher $i to complete" completed "s4_l$i"
    check "4: leecher $i has identical files" same_tree "$src" "$TMP/s4_l$i/album"
  done
  n=$(cat "$TMP"/s4_l?.err | grep -c "announce: ")
  echo "# 4: $n announce failures logged by the leechers"
  for i in 1 2 3; do
    stop "s4_l$i"
    check "4: leecher $i stops cleanly on SIGTERM with the tracker gone (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  done
  stop_check 4 s4_seed
  fault_clear_all
}

# ---- 5. disk full ----
scenario5() {
  local small="$TMP/small" good tot n m errs
  fault_clear_all
  # 6 MiB in two files, 64 KiB pieces, into 2 MiB
  local big="$TMP/src5/big"
  mkdir -p "$big" "$small"
  make_file "$big/x.bin" $((4 * 1048576 + 11)) 51
  make_file "$big/y.bin" $((2 * 1048576 - 5)) 52
  shoal create "$big" -o "$TMP/big.torrent" --piece-size 64K -q >/dev/null
  if ! mount -t tmpfs -o size=2m shoal-faults "$small"; then
    echo "# 5: skipped: cannot mount a tmpfs"
    return
  fi
  MOUNTS+=("$small")
  fault_rate s 40mbit
  start_seeder s5_seed s "$big" "$TMP/big.torrent" 7050
  check "5: seeder listens" test $? -eq 0
  ns_start_shoal s5_get l1 get "$TMP/big.torrent" -o "$small" --bind "$IP_l1" --port 7051 --peer "$IP_s:7050"
  wait_exit $((60 * SLOW)) "$PID_s5_get"
  check "5: get on a full disk exits 1 (rc $WAIT_RC)" test "$WAIT_RC" -eq 1
  # stderr, progress lines aside: exactly one line, naming the problem
  errs=$(grep -v '^shoal: \(downloading\|done\) ' "$TMP/s5_get.err")
  echo "# 5: stderr: $errs"
  check "5: one error line names the problem" \
    test "$(echo "$errs" | wc -l)" -eq 1 -a "$(echo "$errs" | grep -ci 'no space left\|disk full')" -eq 1
  read -r good tot <<<"$(verified "$TMP/big.torrent" "$small")"
  echo "# 5: $good of $tot pieces verify on the full disk ($(on_disk "$small") bytes)"
  check "5: what was written verifies ($good pieces)" test "${good:-0}" -gt 0
  mount -o remount,size=64m "$small"
  ns_start_shoal s5_again l1 get "$TMP/big.torrent" -o "$small" --bind "$IP_l1" --port 7052 --peer "$IP_s:7050" -v
  wait_for $((30 * SLOW)) "the resume check" grep -q 'pieces already here' "$TMP/s5_again.err"
  read -r n m <<<"$(sed -n 's/.*: \([0-9]*\) of \([0-9]*\) pieces already here.*/\1 \2/p' "$TMP/s5_again.err" | head -n 1)"
  check "5: the second run resumes from the pieces on disk (${n:-?} of ${m:-?}, $good verify)" \
    test "${n:-0}" -gt 0 -a "${n:-0}" -eq "$good"
  check_get "5 (resume)" s5_again $((60 * SLOW)) "$big" "$small"
  stop_check 5 s5_seed
  umount "$small" && MOUNTS=()
  fault_clear_all
}

# ---- 6. too few file descriptors ----
scenario6() {
  local k rc n pid ok=0 failed=0 what
  fault_clear_all
  # four peers to take descriptors: the seeder and three more seeders
  start_seeder s6_seed s "$src" "$TMP/album.torrent" 7060
  for n in 2 3 4; do
    start_seeder "s6_seed$n" "l$n" "$src" "$TMP/album.torrent" 7060
  done
  local peers="--peer $IP_s:7060 --peer $IP_l2:7060 --peer $IP_l3:7060 --peer $IP_l4:7060"
  for k in ${FAULTS_NOFILE:-5 6 8 10 12 14 16 20 24 32}; do
    rm -rf "$TMP/s6_get"; mkdir -p "$TMP/s6_get"
    # (LeakSanitizer needs descriptors of its own at exit: not under this limit)
    ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
      ns_start "s6_k$k" l1 prlimit --nofile=$k:$k $SHOAL_WRAP "$SHOAL_BIN" get "$TMP/album.torrent" \
      -o "$TMP/s6_get" --bind "$IP_l1" --port 7061 $peers ${FAULTS_V:-}
    eval "pid=\$PID_s6_k$k"
    { wait_exit $((20 * SLOW)) "$pid"; } 2>/dev/null   # (no "Aborted" from bash)
    rc=$WAIT_RC
    # its first line on stderr that is neither progress nor the tracker
    # (there is none in this scenario)
    what=$(grep -v '^shoal: \(downloading\|done\|tracker\) ' "$TMP/s6_k$k.err" | head -n 1)
    echo "# 6: nofile=$k: rc $rc${what:+: $what}"
    case $rc in
      0) check "6: nofile=$k: complete and identical" same_tree "$src" "$TMP/s6_get/album"
         ok=$((ok + 1)) ;;
      1) check "6: nofile=$k: exit 1 names the problem" \
           grep -qi 'too many open files\|file descriptors\|EMFILE' "$TMP/s6_k$k.err"
         failed=$((failed + 1)) ;;
      124) fail "6: nofile=$k: still running after $((20 * SLOW)) s with $(on_disk "$TMP/s6_get/album") bytes on disk${what:+ (said: $what)}"
         echo "# 6: its descriptors: $(ls -l /proc/$pid/fd 2>/dev/null | sed -n 's/.* \([0-9]*\) -> /\1:/p' | tr '\n' ' ')"
         { kill -KILL "$pid"; wait_exit 5 "$pid"; } 2>/dev/null ;;
      *) if [ "$rc" -gt 128 ]; then
           fail "6: nofile=$k: crashed: killed by signal $((rc - 128))"
         else
           fail "6: nofile=$k: exit code $rc (neither success nor a runtime failure)"
         fi ;;
    esac
  done
  check "6: a low limit makes get fail cleanly ($failed values)" test "$failed" -gt 0
  check "6: a modest limit still completes ($ok values)" test "$ok" -gt 0
  for n in "" 2 3 4; do stop_check 6 "s6_seed$n"; done
  fault_clear_all
}

# ---- 7. half-open connections are bounded ----
# SYNs from l1 to ports 7100-7199 vanish, so each dial hangs in SYN-SENT
# until its 10 s time-out; with 30 such peers at most 8 may be pending.
scenario7() {
  local peers="" i n max=0
  fault_clear_all
  in_ns l1 nft add table inet shoal_syn
  in_ns l1 nft add chain inet shoal_syn out '{ type filter hook output priority 0; }'
  in_ns l1 nft add rule inet shoal_syn out tcp flags syn tcp dport 7100-7199 drop
  for i in $(seq 0 29); do peers="$peers --peer 10.231.1.$((2 + i % 5)):$((7100 + i))"; done
  mkdir -p "$TMP/s7_get"
  ns_start_shoal s7_get l1 get "$TMP/album.torrent" -o "$TMP/s7_get" --bind "$IP_l1" --port 7071 $peers
  # ss reads the socket table while it changes: a dial closed at its time-out
  # and the next one opened can both be counted once.  A real excess lasts
  # (each hung dial stays 10 s), so a sample counts as the smaller of two
  # readings taken back to back.
  local n2
  for i in $(seq 30); do
    n=$(in_ns l1 ss -Htn state syn-sent | wc -l)
    n2=$(in_ns l1 ss -Htn state syn-sent | wc -l)
    [ "$n2" -lt "$n" ] && n=$n2
    [ "$n" -gt "$max" ] && max=$n
    sleep 0.2
  done
  echo "# 7: at most $max connections half-open at once"
  check "7: dialling really hung (some SYN-SENT seen: $max)" test "$max" -gt 0
  check "7: at most 8 half-open connections at once ($max)" test "$max" -le 8
  kill -TERM "$PID_s7_get"; wait_exit 20 "$PID_s7_get"
  check "7: get stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  in_ns l1 nft delete table inet shoal_syn 2>/dev/null
}

for s in $FAULTS; do
  echo "# ---- scenario $s ($SECONDS s) ----"
  "scenario$s"
done
check "no sanitizer report from any process" \
  bash -c "! grep -l 'Sanitizer\|runtime error:' '$TMP'/*.err"
echo "# done in $SECONDS s"
finish
