#!/usr/bin/env python3
"""make_bad.py -- writes the hostile .torrent fixtures of tests/data/bad/ and their
EXPECT list (file<TAB>keyword that the one-line error message must contain).

Run from anywhere:  python3 tests/data/make_bad.py
The output is deterministic, so the checked-in files can be regenerated and
compared.  Each fixture has exactly one thing wrong with it; everything else
is a valid BitTorrent v1 metainfo file.
"""
import hashlib
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")

PIECE = 16384
TOTAL = 100000                     # 7 pieces of 16 KiB (the last one shorter)
NPIECES = (TOTAL + PIECE - 1) // PIECE


def enc(v):
    """bencode; dict keys sorted (bytes or str keys)."""
    if isinstance(v, bool):
        raise TypeError("bool")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:" % len(v) + bytes(v)
    if isinstance(v, list):
        return b"l" + b"".join(enc(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted(((k.encode() if isinstance(k, str) else k), x) for k, x in v.items())
        return b"d" + b"".join(enc(k) + enc(x) for k, x in items) + b"e"
    if isinstance(v, Raw):
        return v.data
    raise TypeError(type(v))


class Raw:
    """Bytes put into the output as they are (for malformed encodings)."""

    def __init__(self, data):
        self.data = data


def hashes(n):
    return b"".join(hashlib.sha1(b"piece %d" % i).digest() for i in range(n))


def single(**over):
    info = {"name": "a.bin", "length": TOTAL, "piece length": PIECE, "pieces": hashes(NPIECES)}
    info.update(over)
    return {"announce": "http://127.0.0.1:1/announce", "info": info}


def multi(files, **over):
    total = sum(f["length"] for f in files if isinstance(f, dict) and isinstance(f.get("length"), int))
    total = max(total, 1)
    info = {"name": "album", "files": files, "piece length": PIECE,
            "pieces": hashes((total + PIECE - 1) // PIECE)}
    info.update(over)
    return {"announce": "http://127.0.0.1:1/announce", "info": info}


def f(length, *path, **extra):
    d = {"length": length, "path": list(path)}
    d.update(extra)
    return d


def without(d, key):
    d = dict(d)
    del d[key]
    return d


GOOD = enc(single())

FIXTURES = [
    # paths that would leave the download folder or are ambiguous
    ("abs_path", enc(multi([f(TOTAL, "/etc/passwd")])), "contains '/'"),
    ("abs_path_name", enc(single(name="/etc")), "contains '/'"),
    ("abs_path_empty_first", enc(multi([f(TOTAL, "", "etc", "passwd")])), "path component is empty"),
    ("dotdot_path", enc(multi([f(TOTAL, "..", "..", "etc", "passwd")])), "'..' is not allowed"),
    ("dot_component", enc(multi([f(TOTAL, "a", ".", "b")])), "'.' is not allowed"),
    ("backslash_component", enc(multi([f(TOTAL, "..\\..\\evil.txt")])), "contains '\\'"),
    ("empty_component", enc(multi([f(TOTAL, "a", "", "b")])), "path component is empty"),
    ("empty_path_list", enc(multi([f(TOTAL)])), "empty path"),
    ("file_is_folder", enc(multi([f(40000, "a"), f(60000, "a", "b")])), "is also a folder of file"),
    ("file_is_folder_deep", enc(multi([f(40000, "x", "y", "z"), f(1, "q"), f(59999, "x", "y")])),
     "is also a folder of file"),
    ("file_is_folder_interleaved", enc(multi([f(40000, "a"), f(1, "a-"), f(59999, "a", "x")])),
     "is also a folder of file"),
    ("duplicate_files", enc(multi([f(40000, "dir", "x"), f(60000, "dir", "x")])), "duplicate file path"),
    ("nul_in_component", enc(multi([f(TOTAL, "a\0b")])), "NUL byte"),
    ("path_too_deep", enc(multi([f(TOTAL, *(["d"] * 65))])), "deeper than 64"),
    ("component_too_long", enc(multi([f(TOTAL, "x" * 256)])), "longer than 255"),
    ("path_too_long", enc(multi([f(TOTAL, *(["y" * 200] * 21))])), "path longer than 4096"),
    ("path_not_list", enc(multi([{"length": TOTAL, "path": "a/b"}])), "'path' is not a list"),
    ("symlink_attr", enc(multi([f(40000, "real"), f(60000, "link", attr="l", **{"symlink path": ["real"]})])),
     "symlinks are not supported"),
    # names
    ("name_non_utf8", enc(single(name=b"\xff\xfe\xc0\xaf.bin")), "not valid UTF-8"),
    ("name_overlong_utf8", enc(single(name=b"\xc0\xae\xc0\xae")), "not valid UTF-8"),
    ("name_dotdot", enc(single(name="..")), "'..' is not allowed"),
    ("name_dot", enc(single(name=".")), "'.' is not allowed"),
    ("name_dots", enc(single(name="...")), "made only of dots"),
    ("name_empty", enc(single(name="")), "name is empty"),
    ("name_slash", enc(single(name="a/b")), "contains '/'"),
    ("name_missing", enc({"info": without(single()["info"], "name")}), "missing 'name'"),
    # sizes
    ("negative_file_size", enc(multi([f(-5, "a"), f(TOTAL + 5, "b")])), "negative length"),
    ("negative_length", enc(single(length=-1)), "negative length"),
    ("length_over_limit", enc(single(length=1 << 51)), "exceeds the limit of 1 PiB"),
    ("total_zero", enc(single(length=0)), "total length is 0"),
    ("negative_piece_length", enc(single(**{"piece length": -16384})), "is not positive"),
    ("zero_piece_length", enc(single(**{"piece length": 0})), "piece length 0 is not positive"),
    ("piece_length_1gib", enc(single(**{"piece length": 1 << 30})), "exceeds the limit"),
    ("piece_length_string", enc(single(**{"piece length": "16384"})), "'piece length' is not an integer"),
    ("pieces_not_multiple_of_20", enc(single(pieces=hashes(NPIECES)[:-1])), "not a multiple of 20"),
    ("too_few_pieces", enc(single(pieces=hashes(NPIECES - 1))), "hashes but 7 are needed"),
    ("too_many_pieces", enc(single(pieces=hashes(NPIECES + 50))), "hashes but 7 are needed"),
    ("pieces_missing", enc({"info": without(single()["info"], "pieces")}), "missing 'pieces'"),
    ("pieces_not_string", enc(single(pieces=[1, 2])), "'pieces' is not a string"),
    # structure
    ("length_and_files", enc(multi([f(TOTAL, "a")], length=TOTAL)), "both 'length' and 'files'"),
    ("neither_length_nor_files", enc({"info": without(single()["info"], "length")}),
     "missing 'length' or 'files'"),
    ("files_empty", enc(multi([])), "'files' list is empty"),
    ("file_not_dict", enc(multi([f(TOTAL, "a"), 5])), "not a dictionary"),
    ("missing_info", enc({"announce": "http://127.0.0.1:1/announce"}), "missing 'info'"),
    ("info_not_dict", enc({"info": [1, 2, 3]}), "'info' is not a dictionary"),
    ("top_not_dict", enc([single()]), "top level is not a dictionary"),
    # bencode itself
    ("deep_nesting", b"d4:info" + b"l" * 10000 + b"e" * 10000 + b"e", "nesting too deep"),
    ("string_claims_200mb", b"d8:announce200000000:" + b"x" * 100 + b"e", "string longer than the input"),
    ("string_length_overflow", b"d4:info99999999999999999999999999:xe", "string length too large"),
    ("truncated", GOOD[: len(GOOD) // 2], "malformed bencode"),
    ("truncated_last_byte", GOOD[:-1], "unexpected end of input"),
    ("trailing_garbage", GOOD + b"garbage", "trailing data"),
    ("empty", b"", "empty input"),
    ("leading_zero_int", GOOD.replace(b"6:lengthi%de" % TOTAL, b"6:lengthi00%de" % TOTAL), "invalid integer"),
    ("negative_zero_int", enc(single(length=Raw(b"i-0e"))), "invalid integer"),
    ("int_overflow", enc(single(length=Raw(b"i99999999999999999999e"))), "invalid integer"),
    ("leading_zero_strlen", GOOD.replace(b"4:name5:a.bin", b"4:name05:a.bin"), "leading zero"),
    ("duplicate_key", b"d4:infoi1e4:infoi2ee", "duplicate dictionary key"),
    ("key_not_string", b"di1ei2ee", "dictionary key is not a string"),
    ("unexpected_byte", b"d4:infox", "unexpected byte"),
    ("lone_end", b"e", "unexpected 'e'"),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    names = set()
    lines = []
    for name, data, keyword in FIXTURES:
        if name in names:
            sys.exit("duplicate fixture name " + name)
        names.add(name)
        if data == GOOD:
            sys.exit("fixture %s is not broken" % name)
        with open(os.path.join(OUT, name + ".torrent"), "wb") as out:
            out.write(data)
        lines.append("%s.torrent\t%s\n" % (name, keyword))
    with open(os.path.join(OUT, "EXPECT"), "w") as out:
        out.write("# file<TAB>text the one-line error message must contain (written by make_bad.py)\n")
        out.writelines(lines)
    # the same torrent with nothing wrong: the control for the checks above
    with open(os.path.join(OUT, "control.good"), "wb") as out:
        out.write(GOOD)
    print("%d fixtures in %s" % (len(FIXTURES), OUT))


if __name__ == "__main__":
    main()
