#!/usr/bin/env python3
# Hindsight benchmark corpus: this is the project's standard corpus script,
# copied verbatim (below this note) from the planning docs' shared bench
# directory (bench/gen_corpus.py there), so the project works without it and its
# figures stay comparable with the peer baseline (PEERS.md). Do not change
# the generation logic: same N and seed must keep giving the same tree.
"""Deterministic synthetic "home / web account" corpus generator.

usage: gen_corpus.py OUTDIR [--files N] [--seed S]

Everything (tree shape, names, sizes, contents, mtimes) comes from one seeded
random.Random, so the same N and seed give a byte-identical tree.

Shape (defaults, N=100000):
  * ~N/20 directories, random recursive tree, depth <= 8, Pareto-skewed
    popularity so some dirs are big and many are small (mean ~20 files/dir)
  * sizes: 1% empty, 90.5% 0.5-16 KiB, 7% 16-100 KiB, 1.5% 100 KiB-2 MiB
    (all log-uniform), plus max(2, N//10000) files of 20-100 MiB
  * ~50% of files text-ish (compressible, Zipf word soup), the rest random bytes
  * ~0.5% symlinks (relative, some to dirs, some dangling), 20 hardlinked pairs
  * a few nasty names: spaces, unicode, newline, '?', '*', leading '-', quotes
  * deterministic mtimes in 2020..2024
"""
import argparse
import math
import os
import random
import sys
import time

BASE_MTIME = 1577836800  # 2020-01-01
SPAN = 4 * 365 * 86400

WORDS_SEED_VOCAB = 4000
EXT_TEXT = [".txt", ".html", ".php", ".js", ".css", ".json", ".md", ".py", ".log", ".xml", ".csv", ".c"]
EXT_BIN = [".jpg", ".png", ".gz", ".zip", ".bin", ".pdf", ".mp3", ".woff", ".db", ".o"]

NASTY_NAMES = [
    "my documents with spaces.txt",
    "r\u00e9sum\u00e9 \u00fcn\u00efc\u00f6d\u00e9 \u65e5\u672c\u8a9e.txt",
    "line\nbreak.txt",
    "what?.txt",
    "star*.log",
    "-leading-dash.txt",
    "quote's \"double\".md",
    "tab\there.txt",
    "emoji \U0001F600.bin",
    "back\\slash.txt",
    "[brackets] {braces} (parens).txt",
    "trailing space .txt",
]


def make_vocab(rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = set()
    while len(vocab) < WORDS_SEED_VOCAB:
        n = max(1, min(14, int(rng.expovariate(1 / 5.0)) + 1))
        vocab.add("".join(rng.choice(letters) for _ in range(n)))
    vocab = sorted(vocab)
    rng.shuffle(vocab)
    return vocab


def make_text_pool(rng, vocab, size):
    """A block of Zipf-distributed word soup with code/log/html-ish line shapes."""
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    words = rng.choices(vocab, weights=weights, k=size // 5 + 1000)
    out = []
    total = 0
    i = 0
    punct = [" ", " ", " ", " ", ", ", ". ", " = ", "(", ") ", "; ", ": ", " <", "> ", "/", "_"]
    pw = rng.choices(punct, k=len(words))
    while total < size and i < len(words) - 20:
        ln = rng.randint(3, 16)
        indent = " " * (4 * rng.randint(0, 3))
        parts = [indent]
        for j in range(ln):
            parts.append(words[i + j])
            parts.append(pw[i + j])
        i += ln
        line = "".join(parts).rstrip() + "\n"
        out.append(line)
        total += len(line)
        if i >= len(words) - 40:
            i = 0
    return "".join(out).encode()[:size]


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def pick_size(rng):
    r = rng.random()
    if r < 0.01:
        return 0
    if r < 0.915:
        return log_uniform(rng, 512, 16 * 1024)
    if r < 0.985:
        return log_uniform(rng, 16 * 1024, 100 * 1024)
    return log_uniform(rng, 100 * 1024, 2 * 1024 * 1024)


class Writer:
    def __init__(self, rng, pool):
        self.rng = rng
        self.pool = pool
        self.plen = len(pool)

    def text(self, n):
        rng = self.rng
        if n <= 65536:
            off = rng.randrange(0, self.plen - n - 1)
            return self.pool[off:off + n]
        chunks = []
        left = n
        while left > 0:
            k = min(left, 65536)
            off = rng.randrange(0, self.plen - k - 1)
            chunks.append(self.pool[off:off + k])
            left -= k
        return b"".join(chunks)

    def binary(self, n):
        return self.rng.randbytes(n)

    def write(self, path, n, is_text, bigfile=False):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if n:
                if bigfile:
                    left = n
                    while left > 0:
                        k = min(left, 4 << 20)
                        os.write(fd, self.text(k) if is_text else self.binary(k))
                        left -= k
                else:
                    data = self.text(n) if is_text else self.binary(n)
                    os.write(fd, data)
        finally:
            os.close(fd)


def make_name(rng, vocab, ext):
    k = rng.choice([1, 1, 2, 2, 3])
    sep = rng.choice(["_", "-", ".", ""])
    return sep.join(rng.choice(vocab[:1500]) for _ in range(k)) + ext


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.time()
    rng = random.Random(args.seed)
    N = args.files
    out = os.path.abspath(args.outdir)
    if os.path.exists(out) and os.listdir(out):
        sys.exit(f"{out} exists and is not empty")
    os.makedirs(out, exist_ok=True)

    vocab = make_vocab(rng)
    pool = make_text_pool(rng, vocab, 16 << 20)
    w = Writer(rng, pool)

    # ---- directory tree
    ndirs = max(1, N // 20)
    dirs = [("", 0)]  # (relpath, depth)
    used = {""}
    while len(dirs) < ndirs:
        cands = dirs if len(dirs) < 50 else None
        p, d = rng.choice(cands or dirs)
        if d >= 8:
            continue
        name = make_name(rng, vocab, "")
        rel = os.path.join(p, name) if p else name
        if rel in used:
            continue
        used.add(rel)
        dirs.append((rel, d + 1))
    for rel, _ in dirs[1:]:
        os.makedirs(os.path.join(out, rel), exist_ok=True)
    weights = [rng.paretovariate(1.5) for _ in dirs]

    # ---- files
    nbig = max(2, N // 10000)
    nnasty = len(NASTY_NAMES)
    nsym = N // 200
    nhard = min(20, N // 1000)
    nreg = N - nsym - nhard  # regular files incl. big + nasty
    placement = rng.choices(range(len(dirs)), weights=weights, k=nreg)
    big_idx = set(rng.sample(range(nreg), nbig))
    files = []  # relpaths of regular files
    total = 0
    for i in range(nreg):
        drel = dirs[placement[i]][0]
        is_text = rng.random() < 0.5
        if i in big_idx:
            size = log_uniform(rng, 20 << 20, 100 << 20)
        else:
            size = pick_size(rng)
        if i < nnasty:
            name = NASTY_NAMES[i]
        else:
            name = make_name(rng, vocab, rng.choice(EXT_TEXT if is_text else EXT_BIN))
        rel = os.path.join(drel, name) if drel else name
        if rel in used:
            rel = os.path.join(drel, f"{i}_{name}") if drel else f"{i}_{name}"
        used.add(rel)
        w.write(os.path.join(out, rel), size, is_text, bigfile=size > (8 << 20))
        total += size
        files.append(rel)

    # ---- hardlinked pairs (second name in another dir)
    hard = []
    for j in range(nhard):
        src = rng.choice(files)
        drel = dirs[rng.randrange(len(dirs))][0]
        rel = os.path.join(drel, f"hardlink_{j}_" + os.path.basename(src))
        if rel in used:
            continue
        used.add(rel)
        os.link(os.path.join(out, src), os.path.join(out, rel))
        hard.append(rel)

    # ---- symlinks (relative; to files, to dirs, some dangling)
    nsl = 0
    for j in range(nsym):
        drel = dirs[placement[rng.randrange(nreg)]][0]
        r = rng.random()
        if r < 0.6:
            tgt = rng.choice(files)
        elif r < 0.9:
            tgt = dirs[rng.randrange(len(dirs))][0] or "."
        else:
            tgt = "does/not/exist_" + str(j)
        rel = os.path.join(drel, f"link_{j}_" + os.path.basename(tgt.rstrip("/") or "root"))
        if rel in used:
            continue
        used.add(rel)
        target = os.path.relpath(os.path.join(out, tgt), os.path.join(out, drel or "."))
        os.symlink(target, os.path.join(out, rel))
        nsl += 1

    # ---- deterministic mtimes (files, then dirs deepest first)
    for rel in files:
        t = BASE_MTIME + rng.randrange(SPAN)
        os.utime(os.path.join(out, rel), (t, t))
    for rel, _ in sorted(dirs, key=lambda x: -x[1]):
        t = BASE_MTIME + rng.randrange(SPAN)
        os.utime(os.path.join(out, rel) if rel else out, (t, t))

    print(f"corpus={out} regular_files={len(files)} hardlinks={len(hard)} symlinks={nsl} "
          f"dirs={len(dirs)} bytes={total} ({total / 2**30:.2f} GiB) big_files={nbig} "
          f"seconds={time.time() - t0:.1f}")


if __name__ == "__main__":
    main()
