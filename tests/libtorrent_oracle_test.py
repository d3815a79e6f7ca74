"""Cross-checks shoal-publish's Merkle roots against libtorrent's BitTorrent v2.

libtorrent (python3-libtorrent) is an independent implementation of BEP 52.
For files at every boundary that matters (one byte, one block +/- 1, one piece
+/- 1, random sizes, an empty file), single files and a nested directory, at
two piece sizes, the pieces root in Shoal's manifest must equal the one in
libtorrent's v2 torrent.

Usage: libtorrent_oracle_test.py PATH_TO_SHOAL_PUBLISH
"""

import json
import os
import random
import subprocess
import sys
import tempfile

import libtorrent as lt

BLOCK = 16384
PIECE_SIZES = [16384, 65536]


def sizes_for(piece):
    rng = random.Random(piece)
    fixed = [1, BLOCK - 1, BLOCK, BLOCK + 1, piece - 1, piece, piece + 1,
             2 * piece, 3 * piece + 7]
    return sorted(set(fixed + [rng.randrange(2, 9 * piece) for _ in range(4)]))


def write(path, size, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))


def libtorrent_roots(path, piece):
    """Maps each file's path (relative to `path` for a directory) to its hex
    pieces root; empty files map to ''."""
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece, flags=lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    tree = ct.generate()[b"info"][b"file tree"]
    roots = {}

    def walk(node, prefix):
        for name, child in node.items():
            if name == b"":
                roots[prefix] = child.get(b"pieces root", b"").hex()
            else:
                sub = name.decode() if not prefix else prefix + "/" + name.decode()
                walk(child, sub)

    walk(tree, "")
    if os.path.isfile(path):
        # A single-file torrent's tree is keyed by the file's own name.
        assert list(roots) == [os.path.basename(path)], roots
    return roots


def shoal_roots(publish, work, key, inputs, piece, version):
    origin = os.path.join(work, "origin")
    out = subprocess.run(
        [publish, "create", "--key=" + key, "--name=oracle", "--version=" + version,
         "--origin=" + origin, "--piece_size=%d" % piece] + inputs,
        check=True, capture_output=True, text=True)
    release_id = out.stdout.strip().splitlines()[-1]
    manifest = os.path.join(origin, "releases", release_id + ".manifest")
    out = subprocess.run([publish, "inspect", "--json", manifest],
                         check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout)
    return {f["path"]: f["pieces_root"] for f in doc["files"]}


def main():
    publish = os.path.abspath(sys.argv[1])
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory() as work:
        key = os.path.join(work, "publisher.key")
        subprocess.run([publish, "keygen", "--out=" + key], check=True,
                       capture_output=True)
        for piece in PIECE_SIZES:
            sizes = sizes_for(piece)
            tree = os.path.join(work, "p%d" % piece, "tree")
            singles = os.path.join(work, "p%d" % piece, "single")
            for i, size in enumerate(sizes):
                write(os.path.join(tree, "dir%d" % (i % 3), "sub", "f%d" % i), size, i)
                write(os.path.join(singles, "s%d" % i, "file%d.bin" % i), size, 100 + i)
            write(os.path.join(tree, "empty"), 0, 0)
            cases = [(tree, "tree")]
            cases += [(os.path.join(singles, "s%d" % i, "file%d.bin" % i), "s%d" % i)
                      for i in range(len(sizes))]
            for path, label in cases:
                expected = libtorrent_roots(path, piece)
                got = shoal_roots(publish, work, key, [path], piece,
                                  "p%d-%s" % (piece, label))
                for name, root in expected.items():
                    checked += 1
                    if got.get(name) != root:
                        failures += 1
                        print("MISMATCH piece=%d %s: libtorrent %s shoal %s" %
                              (piece, name, root, got.get(name)))
                if set(got) != set(expected):
                    failures += 1
                    print("FILE SET DIFFERS piece=%d: %s vs %s" %
                          (piece, sorted(got), sorted(expected)))
    print("%d pieces roots compared with libtorrent %s, %d mismatches" %
          (checked, lt.__version__, failures))
    if checked < 30:
        print("too few roots compared")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
