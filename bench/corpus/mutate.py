#!/usr/bin/env python3
# Hindsight benchmark corpus: this is the project's standard corpus script,
# copied verbatim (below this note) from the planning docs' shared bench
# directory (bench/mutate.py there), so the project works without it and its
# figures stay comparable with the peer baseline (PEERS.md). Do not change
# the generation logic: same N and seed must keep giving the same tree.
"""Deterministic "one day of activity" mutation of a corpus made by gen_corpus.py.

usage: mutate.py OUTDIR [--seed S]

Walks OUTDIR in sorted order (regular files only; symlinks untouched) and, with
random.Random(seed), picks disjoint sets of existing regular files:
  * 1%   content change: files <= 1 MiB are rewritten with new content of
         +-10% size; bigger files get a 4 KiB block overwritten in place at a
         random offset plus 1 KiB appended (the "log / database" pattern)
  * 0.5% deleted
  * 0.5% mtime-only touch (content identical)
  * plus 0.5% new files (0.5-64 KiB, half text half random) in random dirs
Modified/added/touched files get deterministic new mtimes (after 2025-01-01),
so running it twice on identical trees with the same seed gives identical trees.
"""
import argparse
import math
import os
import random

NEW_BASE = 1735689600  # 2025-01-01


def walk(root):
    files, dirs = [], [""]
    for dp, dn, fn in os.walk(root):
        dn.sort()
        rel = os.path.relpath(dp, root)
        rel = "" if rel == "." else rel
        for d in dn:
            if not os.path.islink(os.path.join(dp, d)):
                dirs.append(os.path.join(rel, d) if rel else d)
        for f in sorted(fn):
            p = os.path.join(dp, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.join(rel, f) if rel else f)
    files.sort()
    dirs.sort()
    return files, dirs


def content(rng, n):
    if rng.random() < 0.5:
        words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
                 for _ in range(400)]
        out = bytearray()
        while len(out) < n:
            out += b" ".join(rng.choices(words, k=12)) + b"\n"
        return bytes(out[:n])
    return rng.randbytes(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    root = os.path.abspath(args.outdir)
    rng = random.Random(args.seed)
    files, dirs = walk(root)
    n = len(files)
    k_mod, k_del, k_touch, k_add = n // 100, n // 200, n // 200, n // 200
    chosen = rng.sample(files, k_mod + k_del + k_touch)
    mod, dele, touch = chosen[:k_mod], chosen[k_mod:k_mod + k_del], chosen[k_mod + k_del:]
    bytes_written = 0
    for rel in mod:
        p = os.path.join(root, rel)
        size = os.path.getsize(p)
        if size <= (1 << 20):
            ns = max(0, int(size * rng.uniform(0.9, 1.1)))
            data = content(rng, ns)
            with open(p, "wb") as f:
                f.write(data)
            bytes_written += ns
        else:
            off = rng.randrange(0, size - 4096)
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(rng.randbytes(4096))
                f.seek(0, 2)
                f.write(content(rng, 1024))
            bytes_written += 5120
        t = NEW_BASE + rng.randrange(86400)
        os.utime(p, (t, t))
    for rel in dele:
        os.unlink(os.path.join(root, rel))
    for rel in touch:
        t = NEW_BASE + rng.randrange(86400)
        os.utime(os.path.join(root, rel), (t, t))
    added = 0
    for j in range(k_add):
        d = rng.choice(dirs)
        name = f"new_{args.seed}_{j}.{rng.choice(['txt', 'html', 'jpg', 'json'])}"
        p = os.path.join(root, d, name)
        if os.path.exists(p):
            continue
        ns = int(math.exp(rng.uniform(math.log(512), math.log(64 * 1024))))
        with open(p, "wb") as f:
            f.write(content(rng, ns))
        t = NEW_BASE + rng.randrange(86400)
        os.utime(p, (t, t))
        bytes_written += ns
        added += 1
    print(f"mutated={root} files_before={n} modified={len(mod)} deleted={len(dele)} "
          f"touched={len(touch)} added={added} bytes_written={bytes_written}")


if __name__ == "__main__":
    main()
