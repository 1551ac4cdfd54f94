#!/usr/bin/env python3
"""lt_driver.py -- a libtorrent (python3-libtorrent) seeder or leecher for the shoal
benchmark, TCP only on loopback.

  lt_driver.py seed TORRENT DATA_DIR --port N
      seeds DATA_DIR/<name> without re-hashing it (seed mode); prints "port: N"
      and then "ready" once it is seeding; runs until SIGTERM/SIGINT.  On SIGUSR1
      (within 0.2 s) and on exit it prints one line
      "stats: payload_upload=B upload=B payload_download=B download=B peers=N"
      (the torrent's byte counters since it was added; upload includes protocol
      overhead).
  lt_driver.py get TORRENT OUT_DIR --port N --peer HOST:PORT [--peer ...] [--timeout S] [--seed]
      downloads into OUT_DIR, connected to the given peers (connect_peer);
      prints "complete: ..." as soon as every piece has been downloaded and
      passed its hash check (is_seeding) and exits 0 then -- or, with --seed,
      keeps sharing until SIGTERM/SIGINT (or the time-out) and prints the stats
      line on SIGUSR1 and on exit.  Exits 1 on a torrent error, 2 when the
      download is not complete within --timeout seconds.

uTP is off both ways, DHT/LSD/UPnP/NAT-PMP are off, several connections per IP
are allowed, and it listens on 127.0.0.1 only.  Everything else is libtorrent's
default.
"""
import argparse
import os
import signal
import sys
import time

T0 = time.monotonic()

import libtorrent as lt  # noqa: E402  (the clock starts before the import)


def make_session(port):
    cat = lt.alert.category_t
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "127.0.0.1",
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": cat.error_notification | cat.status_notification,
    }
    return lt.session(settings)


def drain(ses, quiet_types=()):
    """Pops alerts; prints errors to stderr; returns the list."""
    alerts = ses.pop_alerts()
    for a in alerts:
        if a.category() & lt.alert.category_t.error_notification:
            sys.stderr.write("lt: %s: %s\n" % (type(a).__name__, a.message()))
    sys.stderr.flush()
    return alerts


def add(ses, torrent, save_path, seed):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    if seed:
        atp.flags |= lt.torrent_flags.seed_mode
    return ses.add_torrent(atp)


def print_stats(h):
    st = h.status()
    print("stats: payload_upload=%d upload=%d payload_download=%d download=%d peers=%d"
          % (st.total_payload_upload, st.total_upload, st.total_payload_download, st.total_download,
             st.num_peers), flush=True)


def on_signals(stop, dump):
    """SIGTERM/SIGINT append to stop, SIGUSR1 to dump (checked by the loops)."""
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGUSR1, lambda *_: dump.append(1))


def cmd_seed(args):
    stop, dump = [], []
    on_signals(stop, dump)
    ses = make_session(args.port)
    h = add(ses, args.torrent, args.dir, seed=True)
    print("port: %d" % ses.listen_port(), flush=True)
    ready = False
    while not stop:
        ses.wait_for_alert(200)
        drain(ses)
        st = h.status()
        if st.errc.value() != 0:
            sys.stderr.write("lt: torrent error: %s\n" % st.errc.message())
            os._exit(1)
        if not ready and st.is_seeding:
            ready = True
            print("ready", flush=True)
        if dump:
            del dump[:]
            print_stats(h)
    print_stats(h)
    os._exit(0)


def cmd_get(args):
    stop, dump = [], []
    if args.seed:
        on_signals(stop, dump)
    ses = make_session(args.port)
    h = add(ses, args.torrent, args.dir, seed=False)
    print("port: %d" % ses.listen_port(), flush=True)
    for peer in args.peer:
        host, _, port = peer.rpartition(":")
        h.connect_peer((host, int(port)))
    deadline = time.monotonic() + args.timeout
    complete = False
    while time.monotonic() < deadline and not stop:
        ses.wait_for_alert(50)
        drain(ses)
        st = h.status()
        if st.errc.value() != 0:
            sys.stderr.write("lt: torrent error: %s\n" % st.errc.message())
            sys.stderr.flush()
            os._exit(1)
        if st.is_seeding and not complete:
            complete = True
            secs = time.monotonic() - T0
            print("complete: %s (%d bytes in %.2f s since start)" % (st.name, st.total_wanted, secs), flush=True)
            if not args.seed:
                # no session teardown: the figure is "all pieces verified", not shutdown
                os._exit(0)
        if dump:
            del dump[:]
            print_stats(h)
    if complete:
        print_stats(h)
        os._exit(0)
    if stop:
        print_stats(h)
        sys.stderr.write("lt: stopped before the download was complete\n")
        sys.stderr.flush()
        os._exit(2)
    sys.stderr.write("lt: timed out after %d s\n" % args.timeout)
    sys.stderr.flush()
    os._exit(2)


def main():
    p = argparse.ArgumentParser(description="libtorrent seeder/leecher for the shoal benchmark")
    p.add_argument("mode", choices=["seed", "get"])
    p.add_argument("torrent")
    p.add_argument("dir")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--peer", action="append", default=[], help="HOST:PORT to connect to (get; repeatable)")
    p.add_argument("--seed", action="store_true", help="get: keep sharing once complete, until SIGTERM")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    if args.mode == "get":
        if not args.peer:
            p.error("get needs --peer HOST:PORT")
        cmd_get(args)
    else:
        cmd_seed(args)


if __name__ == "__main__":
    main()
