#!/usr/bin/env python3
# Hindsight benchmark corpus: this is the project's standard corpus script,
# copied verbatim (below this note) from the planning docs' shared bench
# directory (bench/pick_targets.py there), so the project works without it and its
# figures stay comparable with the peer baseline (PEERS.md). Do not change
# the generation logic: same N and seed must keep giving the same tree.
"""Deterministically pick browse-test targets from a corpus (run BEFORE mutate.py).

usage: pick_targets.py CORPUS OUTDIR [--seed 42] [--count 200] [--subdir-mib 100]
writes OUTDIR/small200.list (newline-separated paths relative to CORPUS; names
with a newline are excluded), OUTDIR/big.path (largest regular file) and
OUTDIR/subdir.path (directory whose recursive regular-file bytes are closest
to --subdir-mib MiB among those holding no file >= 20 MiB), plus OUTDIR/targets.txt (summary).
"""
import argparse, os, random
ap = argparse.ArgumentParser()
ap.add_argument("corpus"); ap.add_argument("outdir")
ap.add_argument("--seed", type=int, default=42); ap.add_argument("--count", type=int, default=200)
ap.add_argument("--subdir-mib", type=float, default=100)
a = ap.parse_args()
root = os.path.abspath(a.corpus)
small, big, dsize, dcount, dmax = [], (0, ""), {}, {}, {}
for dp, dn, fn in os.walk(root):
    dn.sort()
    rel = os.path.relpath(dp, root)
    for f in fn:
        p = os.path.join(dp, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        s = os.path.getsize(p)
        r = os.path.normpath(os.path.join(rel, f))
        if 512 <= s <= 16384 and "\n" not in r:
            small.append(r)
        if s > big[0]:
            big = (s, r)
        # accumulate into every ancestor dir (not the root)
        parts = r.split(os.sep)[:-1]
        for i in range(1, len(parts) + 1):
            d = os.sep.join(parts[:i])
            dsize[d] = dsize.get(d, 0) + s
            dcount[d] = dcount.get(d, 0) + 1
            dmax[d] = max(dmax.get(d, 0), s)
small.sort()
pick = random.Random(a.seed).sample(small, a.count)
target = a.subdir_mib * 2**20
# prefer a many-file subtree: no single file >= 20 MiB in it
cands = [d for d in sorted(dsize) if dmax[d] < 20 * 2**20] or sorted(dsize)
sub = min(cands, key=lambda d: abs(dsize[d] - target))
os.makedirs(a.outdir, exist_ok=True)
open(os.path.join(a.outdir, "small200.list"), "w").write("\n".join(pick) + "\n")
open(os.path.join(a.outdir, "big.path"), "w").write(big[1])
open(os.path.join(a.outdir, "subdir.path"), "w").write(sub)
s = (f"small_files={len(pick)} small_bytes={sum(os.path.getsize(os.path.join(root, p)) for p in pick)}\n"
     f"big={big[1]!r} big_bytes={big[0]}\n"
     f"subdir={sub!r} subdir_bytes={dsize[sub]} subdir_files={dcount[sub]}\n")
open(os.path.join(a.outdir, "targets.txt"), "w").write(s)
print(s, end="")
