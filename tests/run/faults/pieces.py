#!/usr/bin/env python3
"""pieces.py -- which pieces of a torrent verify (SHA-1) in a download folder.

  pieces.py count TORRENT DIR         -> "GOOD TOTAL"
  pieces.py split TORRENT DIR1 DIR2   -> "A B UNION ONLY_A ONLY_B TOTAL"
Missing or short files read as absent bytes (the piece does not verify).
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from evil_peer import Torrent  # noqa: E402


def good_pieces(tor, root):
    base = os.path.join(root, tor.name)
    spans, off = [], 0
    for rel, n in tor.files:
        spans.append((off, n, os.path.join(base, rel) if tor.multi else base))
        off += n
    handles = {}
    good = set()
    try:
        for i in range(tor.num_pieces):
            start, size = i * tor.piece_length, tor.piece_size(i)
            h = hashlib.sha1()
            got = 0
            for fstart, n, path in spans:
                if n == 0 or start >= fstart + n or start + size <= fstart:
                    continue
                a, b = max(start, fstart), min(start + size, fstart + n)
                if path not in handles:
                    try:
                        handles[path] = open(path, "rb")
                    except OSError:
                        handles[path] = None
                f = handles[path]
                if f is None:
                    break
                f.seek(a - fstart)
                chunk = f.read(b - a)
                h.update(chunk)
                got += len(chunk)
            if got == size and h.digest() == tor.hashes[i]:
                good.add(i)
    finally:
        for f in handles.values():
            if f:
                f.close()
    return good


def main():
    mode, tor = sys.argv[1], Torrent(sys.argv[2])
    if mode == "count":
        print(len(good_pieces(tor, sys.argv[3])), tor.num_pieces)
    elif mode == "split":
        a, b = good_pieces(tor, sys.argv[3]), good_pieces(tor, sys.argv[4])
        print(len(a), len(b), len(a | b), len(a - b), len(b - a), tor.num_pieces)
    else:
        sys.exit("usage: pieces.py count|split TORRENT DIR...")


if __name__ == "__main__":
    main()
