#!/usr/bin/python3
# lt_client.py -- a libtorrent (python3-libtorrent) node for shoal's interop tests:
# seeds or downloads one .torrent over TCP only on 127.0.0.1, with DHT, LSD, PEX, UPnP,
# NAT-PMP and uTP off and several connections per IP allowed; prints its version,
# byte counters and what it received from / sent to each peer.
#
#   lt_client.py TORRENT --dir DIR --port PORT [--seed] [--peer HOST:PORT]...
#                [--timeout S] [--linger S] [--no-tracker] [--download-limit BYTES_PER_S]
#
# Download (default): exits 0 once every piece is downloaded and hashing the files
# on disk again (here, piece by piece) matches the torrent; 1 on time-out or error;
# 2 on bad usage.
# --seed: DIR already holds the data; exits 1 if the check finds a piece missing,
# otherwise seeds until SIGTERM/SIGINT or --timeout (exit 0 then).
# --linger S: after a completed download, keep seeding S seconds before exiting.
#
# Output lines ("key: value"), flushed as they happen:
#   version: libtorrent 2.0.8.0
#   port: PORT                           once listening
#   complete: NAME                       download done and verified
#   tracker-reply: URL peers=N           a tracker answered an announce (N peers)
#   downloaded: N / uploaded: N          payload bytes, at exit
#   peer: IP:PORT pid=HEX client=NAME recv=N sent=N   one per peer seen, at exit
#     recv: bytes of the blocks that came from that peer (block_finished alerts),
#     less those of pieces that failed their hash check; sent: bytes of the blocks
#     uploaded to it (block_uploaded alerts).
import argparse
import hashlib
import os
import signal
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:  # the test must fail, not skip
    print("error: python3-libtorrent is not installed (%s)" % e, flush=True)
    sys.exit(1)

BLOCK = 16 * 1024


def out(key, value):
    print("%s: %s" % (key, value), flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description="libtorrent node for interop tests")
    ap.add_argument("torrent")
    ap.add_argument("--dir", required=True, help="save path (the torrent's name is created inside)")
    ap.add_argument("--port", type=int, required=True, help="listen port on 127.0.0.1")
    ap.add_argument("--seed", action="store_true", help="DIR holds the data: seed it")
    ap.add_argument("--peer", action="append", default=[], help="HOST:PORT to connect to (repeatable)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up after S seconds")
    ap.add_argument("--linger", type=float, default=0.0, help="seed S seconds after completing")
    ap.add_argument("--no-tracker", action="store_true", help="drop the torrent's announce URLs")
    ap.add_argument("--download-limit", type=int, default=0, help="bytes/s for this torrent (0: none)")
    ap.add_argument("-v", action="store_true", help="print every alert")
    a = ap.parse_args()
    peers = []
    for p in a.peer:
        host, sep, port = p.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            ap.error("bad --peer %r (HOST:PORT)" % p)
        peers.append((host, int(port)))
    a.peers = peers
    return a


def verify_files(ti, save_path):
    """Hashes every piece from the files under save_path; returns "" when all match,
    otherwise a description of the first mismatch."""
    fs = ti.files()
    plen = ti.piece_length()
    files = [(os.path.join(save_path, fs.file_path(i)), fs.file_size(i),
              bool(fs.file_flags(i) & fs.flag_pad_file)) for i in range(fs.num_files())]
    piece = 0
    h = hashlib.sha1()
    have = 0
    for path, size, pad in files:
        left = size
        f = None if pad else open(path, "rb")
        try:
            while left:
                n = min(left, plen - have, 1 << 20)
                data = bytes(n) if pad else f.read(n)
                if len(data) != n:
                    return "%s is short" % path
                h.update(data)
                have += n
                left -= n
                if have == plen:
                    if h.digest() != bytes(ti.hash_for_piece(piece)):
                        return "piece %d" % piece
                    piece += 1
                    h = hashlib.sha1()
                    have = 0
        finally:
            if f:
                f.close()
    if have:
        if h.digest() != bytes(ti.hash_for_piece(piece)):
            return "piece %d" % piece
        piece += 1
    if piece != ti.num_pieces():
        return "%d pieces hashed, %d expected" % (piece, ti.num_pieces())
    return ""


def make_session(port):
    s = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "auto_manage_startup": 0,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 5,
        "max_failcount": 100,
        "alert_queue_size": 100000,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification
                       | lt.alert.category_t.tracker_notification
                       | lt.alert.category_t.connect_notification
                       | lt.alert.category_t.peer_notification
                       | lt.alert.category_t.storage_notification
                       | lt.alert.category_t.piece_progress_notification
                       | lt.alert.category_t.block_progress_notification
                       | lt.alert.category_t.upload_notification),
    }
    return lt.session(s)


def main():
    a = parse_args()
    out("version", "libtorrent %s" % lt.__version__)
    stop = {"sig": None}

    def on_signal(signum, frame):
        stop["sig"] = signum
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        ti = lt.torrent_info(a.torrent)
    except RuntimeError as e:
        out("error", "cannot read %s: %s" % (a.torrent, e))
        return 1
    ses = make_session(a.port)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = a.dir
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    if a.download_limit:
        atp.download_limit = a.download_limit
    if a.no_tracker:
        atp.trackers = []
        atp.flags |= lt.torrent_flags.override_trackers
    h = ses.add_torrent(atp)
    name = ti.name()

    recv = {}        # pid hex -> bytes of verified blocks
    ep_of = {}       # pid hex -> "ip:port"
    client_of = {}   # pid hex -> client name
    sent = {}        # pid hex -> bytes of blocks uploaded (block_uploaded alerts)
    by_piece = {}    # piece -> {pid hex: bytes} of the blocks received for it

    def block_len(piece, block):
        start = block * BLOCK
        return max(0, min(BLOCK, ti.piece_size(piece) - start))

    def note_peers():
        try:
            infos = h.get_peer_info()
        except RuntimeError:
            return
        for pi in infos:
            pid = bytes(pi.pid.to_bytes()).hex() if hasattr(pi.pid, "to_bytes") else str(pi.pid)
            ep = "%s:%d" % (pi.ip[0], pi.ip[1])
            ep_of.setdefault(pid, ep)
            try:
                client_of[pid] = pi.client.decode("utf-8", "replace") if isinstance(pi.client, bytes) else str(pi.client)
            except Exception:
                client_of[pid] = "?"

    def pid_hex(alert):
        try:
            return bytes(alert.pid.to_bytes()).hex()
        except Exception:
            return str(alert.pid)

    listening = []

    def handle_alerts():
        ev = {}
        for al in ses.pop_alerts():
            if a.v:
                print("alert: %s: %s" % (type(al).__name__, al.message()), flush=True)
            if isinstance(al, lt.listen_succeeded_alert):
                if not listening and al.socket_type == lt.socket_type_t.tcp:
                    listening.append(al.port)
                    out("port", al.port)
            elif isinstance(al, lt.listen_failed_alert):
                out("error", "listen failed: %s" % al.message())
                ev["rc"] = 1
            elif isinstance(al, lt.block_finished_alert):
                pid = pid_hex(al)
                ep_of.setdefault(pid, "%s:%d" % (al.endpoint[0], al.endpoint[1]))
                n = block_len(al.piece_index, al.block_index)
                recv[pid] = recv.get(pid, 0) + n
                d = by_piece.setdefault(al.piece_index, {})
                d[pid] = d.get(pid, 0) + n
            elif isinstance(al, lt.block_uploaded_alert):
                pid = pid_hex(al)
                ep_of.setdefault(pid, "%s:%d" % (al.endpoint[0], al.endpoint[1]))
                sent[pid] = sent.get(pid, 0) + block_len(al.piece_index, al.block_index)
            elif isinstance(al, lt.hash_failed_alert):
                # the blocks of a piece that failed its check do not count
                out("hash-failed", "piece %d" % al.piece_index)
                for pid, n in by_piece.pop(al.piece_index, {}).items():
                    recv[pid] -= n
            elif isinstance(al, lt.torrent_checked_alert):
                ev["checked"] = True
            elif isinstance(al, lt.torrent_finished_alert):
                ev["finished"] = True
            elif isinstance(al, lt.peer_disconnected_alert):
                note_peers()
            elif isinstance(al, (lt.file_error_alert, lt.torrent_error_alert)):
                out("error", al.message())
                ev["rc"] = 1
            elif isinstance(al, lt.tracker_error_alert):
                out("tracker-error", al.message())
            elif isinstance(al, lt.tracker_reply_alert):
                out("tracker-reply", "%s peers=%d" % (al.tracker_url(), al.num_peers))
        return ev

    totals = [0, 0]   # payload down/up, highest seen
    deadline = time.monotonic() + a.timeout
    complete_at = None
    state = "start"          # start (libtorrent checks the files) -> running -> done
    rc = None
    last_dial = 0.0
    while rc is None:
        now = time.monotonic()
        if stop["sig"] is not None:
            out("stopped", "signal %d" % stop["sig"])
            rc = 0 if (a.seed or state == "done") else 1
            break
        if now >= deadline:
            if a.seed or state == "done":
                rc = 0
            else:
                st = h.status()
                out("error", "timed out after %.0f s in state %s (%.1f%%, %d peers)"
                    % (a.timeout, state, st.progress * 100, st.num_peers))
                rc = 1
            break
        if complete_at is not None and now >= complete_at + a.linger:
            rc = 0
            break
        ses.wait_for_alert(100)
        ev = handle_alerts()
        if ev.get("rc") is not None:
            rc = ev["rc"]
        checked = ev.get("checked", False)
        if rc is not None:
            break
        note_peers()
        st = h.status()
        totals[0] = max(totals[0], st.total_payload_download)
        totals[1] = max(totals[1], st.total_payload_upload)
        if state == "start":
            if not checked:
                continue
            state = "running"
            if a.seed:
                if st.num_pieces != ti.num_pieces():
                    out("error", "seed data incomplete: %d of %d pieces"
                        % (st.num_pieces, ti.num_pieces()))
                    rc = 1
                    break
                out("seeding", name)
        if state == "running" and a.peers and now - last_dial >= 2.0:
            # (Re)dial the given peers that are not connected now.
            last_dial = now
            current = set((pi.ip[0], pi.ip[1]) for pi in h.get_peer_info())
            for peer in a.peers:
                if peer not in current:
                    try:
                        h.connect_peer(peer)
                    except RuntimeError as e:
                        out("error", "connect_peer %s:%d: %s" % (peer[0], peer[1], e))
        if not a.seed and state == "running" and st.num_pieces == ti.num_pieces():
            # Every piece passed libtorrent's check on arrival; hash the files again here.
            h.flush_cache()
            bad = verify_files(ti, a.dir)
            for _ in range(10):          # writes may still be on their way to the disk
                if not bad:
                    break
                time.sleep(0.3)
                bad = verify_files(ti, a.dir)
            if bad:
                out("error", "files on disk do not match: %s" % bad)
                rc = 1
                break
            state = "done"
            out("complete", name)
            complete_at = now
    # Alerts still queued (the last blocks) count too.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ses.wait_for_alert(100)
        handle_alerts()
    note_peers()
    st = h.status()
    out("downloaded", max(totals[0], st.total_payload_download))
    out("uploaded", max(totals[1], st.total_payload_upload))
    for pid in sorted(set(recv) | set(sent) | set(ep_of)):
        if pid == "00" * 20 and not recv.get(pid) and not sent.get(pid):
            continue   # a connection that never got as far as a handshake
        out("peer", "%s pid=%s client=%s recv=%d sent=%d"
            % (ep_of.get(pid, "?"), pid, client_of.get(pid, "?"), recv.get(pid, 0), sent.get(pid, 0)))
    ses.pause()
    del ses
    return rc


if __name__ == "__main__":
    sys.exit(main())
