#!/usr/bin/env python3
"""Small helpers for bench/incremental.sh (python3 standard library only).

usage:
  benchutil.py gnutime TIMEFILE
      parse the output of `/usr/bin/time -v -o TIMEFILE` and print
      "WALL_S CPU_S MAXRSS_KIB EXIT_STATUS"
  benchutil.py record RESULTS.jsonl PHASE TOOL WALL_S CPU_S RSS_KIB COMMAND [EXTRA_JSON]
      append one measurement (one JSON object per line)
  benchutil.py snapshot-path SNAPSHOT_LIST.json
      print the path of the newest snapshot in `hindsight snapshot list --json`
  benchutil.py run-summary RUN_LIST.json
      print a JSON summary (id, state, stats, duration_s) of the newest run in
      `hindsight run list --json`
  benchutil.py compare SOURCE COPY [--content]
      compare two trees: entry names, types, sizes, mtimes, permission bits and
      symlink targets (and file contents with --content); exit 1 on differences
  benchutil.py report RUNDIR JSON_OUT [ARCHIVE_DIR]
      print the results table and ratios, write JSON_OUT (and a copy in ARCHIVE_DIR)
"""
import datetime
import filecmp
import json
import os
import stat
import sys

MIB = 1024 * 1024

# Targets from the issue (see bench/README.md).
TARGET_FULL_OVER_CP_A = 1.1
TARGET_INCR_OVER_RSNAPSHOT = 0.5
TARGET_INCR_OVER_CP_AL = 1.3
TARGET_PEAK_MIB = 64


def die(msg):
    print(f"benchutil: error: {msg}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------- gnutime
def parse_wall(text):
    # "h:mm:ss" or "m:ss.ss"
    secs = 0.0
    for part in text.strip().split(":"):
        secs = secs * 60 + float(part)
    return secs


def gnutime(path):
    vals = {"wall": None, "user": 0.0, "sys": 0.0, "rss": 0, "exit": 0}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("Command exited with non-zero status"):
                vals["exit"] = int(line.rsplit(" ", 1)[1])
            elif line.startswith("Command terminated by signal"):
                vals["exit"] = 128 + int(line.rsplit(" ", 1)[1])
            elif line.startswith("User time (seconds):"):
                vals["user"] = float(line.rsplit(":", 1)[1])
            elif line.startswith("System time (seconds):"):
                vals["sys"] = float(line.rsplit(":", 1)[1])
            elif line.startswith("Elapsed (wall clock) time"):
                vals["wall"] = parse_wall(line.split("):", 1)[1])
            elif line.startswith("Maximum resident set size (kbytes):"):
                vals["rss"] = int(line.rsplit(":", 1)[1])
            elif line.startswith("Exit status:"):
                vals["exit"] = int(line.rsplit(":", 1)[1])
    if vals["wall"] is None:
        die(f"{path}: no 'Elapsed (wall clock)' line; not GNU time -v output?")
    print(f"{vals['wall']:.3f} {vals['user'] + vals['sys']:.3f} {vals['rss']} {vals['exit']}")


# --------------------------------------------------------------------------- record
def num(s):
    if s in ("", "-", "null", "None"):
        return None
    try:
        return float(s)
    except ValueError:
        return s


def record(path, phase, tool, wall, cpu, rss_kib, command, extra="{}"):
    rss = num(rss_kib)
    obj = {
        "phase": phase,
        "tool": tool,
        "wall_s": num(wall),
        "cpu_s": num(cpu),
        "peak_rss_mib": round(rss / 1024, 2) if isinstance(rss, float) else None,
        "command": command,
    }
    try:
        extra_obj = json.loads(extra) if extra else {}
    except json.JSONDecodeError as e:
        die(f"bad extra JSON {extra!r}: {e}")
    obj.update(extra_obj)
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


# --------------------------------------------------------------------------- hindsight JSON
def load_list(path, key):
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        for k in (key, "items", "data", "results"):
            if isinstance(data.get(k), list):
                return data[k]
        die(f"{path}: expected a JSON list (or an object with '{key}')")
    if not isinstance(data, list):
        die(f"{path}: expected a JSON list")
    return data


def newest(items):
    def key(o):
        i = o.get("id")
        return (i if isinstance(i, (int, float)) else -1, str(o.get("name", "")), str(o.get("finished", "")))
    return max(items, key=key)


def snapshot_path(path):
    snaps = load_list(path, "snapshots")
    if not snaps:
        die(f"{path}: no snapshot listed")
    s = newest(snaps)
    if not s.get("path"):
        die(f"{path}: newest snapshot has no 'path'")
    print(s["path"])


def parse_ts(v):
    if not isinstance(v, str) or not v:
        return None
    v = v.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        return datetime.datetime.fromisoformat(v)
    except ValueError:
        return None


def run_summary(path):
    runs = load_list(path, "runs")
    if not runs:
        die(f"{path}: no run listed")
    r = newest(runs)
    out = {"run_id": r.get("id"), "run_state": r.get("state"), "run_stats": r.get("stats")}
    start, end = parse_ts(r.get("started_at")), parse_ts(r.get("finished_at"))
    queued = parse_ts(r.get("queued_at"))
    if start and end:
        out["run_duration_s"] = round((end - start).total_seconds(), 3)
    if queued and end:
        out["run_queued_to_finished_s"] = round((end - queued).total_seconds(), 3)
    if r.get("errors"):
        out["run_errors"] = r["errors"][:5]
    print(json.dumps(out))


# --------------------------------------------------------------------------- compare
def listing(root):
    out = {}
    root = os.path.abspath(root)
    for dp, dns, fns in os.walk(root):
        rel = os.path.relpath(dp, root)
        rel = "" if rel == "." else rel
        for name in dns + fns:
            p = os.path.join(dp, name)
            st = os.lstat(p)
            r = os.path.join(rel, name) if rel else name
            if stat.S_ISDIR(st.st_mode):
                out[r] = ("d", None, None, stat.S_IMODE(st.st_mode), None)
            elif stat.S_ISLNK(st.st_mode):
                out[r] = ("l", None, None, None, os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[r] = ("f", st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), None)
            else:
                out[r] = ("o", None, None, stat.S_IMODE(st.st_mode), None)
    return out


def compare(src, dst, content=False):
    if not os.path.isdir(dst):
        print(f"copy not found: {dst!r}")
        sys.exit(1)
    a, b = listing(src), listing(dst)
    diffs = []
    for r in sorted(a.keys() - b.keys()):
        diffs.append(f"missing in copy: {r!r}")
    for r in sorted(b.keys() - a.keys()):
        diffs.append(f"extra in copy: {r!r}")
    names = ("type", "size", "mtime_ns", "mode", "symlink target")
    checked = 0
    for r in sorted(a.keys() & b.keys()):
        x, y = a[r], b[r]
        for i, n in enumerate(names):
            if x[i] != y[i]:
                diffs.append(f"{n} differs: {r!r}: {x[i]!r} != {y[i]!r}")
                break
        else:
            if content and x[0] == "f":
                checked += 1
                if not filecmp.cmp(os.path.join(src, r), os.path.join(dst, r), shallow=False):
                    diffs.append(f"content differs: {r!r}")
    nf = sum(1 for v in a.values() if v[0] == "f")
    if diffs:
        print(f"{len(diffs)} differences (source entries={len(a)}, copy entries={len(b)}); first ones:")
        for d in diffs[:20]:
            print("  " + d)
        sys.exit(1)
    extra = f", contents of {checked} files compared" if content else ""
    print(f"identical: {len(a)} entries ({nf} regular files){extra}")


# --------------------------------------------------------------------------- report
NUMERIC_META = ("files", "corpus_bytes", "corpus_seed", "mutate_seed", "cpus", "mem_total_kib",
                "hindsightd_idle_vmhwm_kib")


def read_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" in line:
                    k, v = line.split("\t", 1)
                    if k in NUMERIC_META:
                        try:
                            v = int(v)
                        except ValueError:
                            pass
                    meta[k] = v
    return meta


def fmt(v, nd=2):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def report(rundir, json_out, archive_dir=None):
    runs = []
    rpath = os.path.join(rundir, "results.jsonl")
    if os.path.exists(rpath):
        with open(rpath) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    meta = read_meta(os.path.join(rundir, "meta.tsv"))

    def get(phase, tool):
        for r in runs:
            if r["phase"] == phase and r["tool"] == tool:
                return r
        return None

    hs_full, hs_incr = get("full", "hindsight"), get("incremental", "hindsight")
    cp_a, cp_al = get("full", "cp -a"), get("incremental", "cp -al")
    rsnap = get("incremental", "rsnapshot")

    def rat(x, y, key="wall_s"):
        return ratio(x and x.get(key), y and y.get(key))

    peaks = [r["peak_rss_mib"] for r in (hs_full, hs_incr) if r and r.get("peak_rss_mib") is not None]
    hs_peak = max(peaks) if peaks else None
    checks = [
        ("hindsight full / cp -a", "hindsight_full_over_cp_a", rat(hs_full, cp_a), TARGET_FULL_OVER_CP_A, "x"),
        ("hindsight incremental / rsnapshot", "hindsight_incremental_over_rsnapshot", rat(hs_incr, rsnap),
         TARGET_INCR_OVER_RSNAPSHOT, "x"),
        ("hindsight incremental / cp -al", "hindsight_incremental_over_cp_al", rat(hs_incr, cp_al),
         TARGET_INCR_OVER_CP_AL, "x"),
        ("hindsightd peak memory (VmHWM)", "hindsightd_peak_mib", hs_peak, TARGET_PEAK_MIB, " MiB"),
    ]
    ratios = {key: val for _, key, val, _, _ in checks[:3]}
    ratios_cpu = {
        "hindsight_full_over_cp_a": rat(hs_full, cp_a, "cpu_s"),
        "hindsight_incremental_over_rsnapshot": rat(hs_incr, rsnap, "cpu_s"),
        "hindsight_incremental_over_cp_al": rat(hs_incr, cp_al, "cpu_s"),
    }
    targets = {}
    for label, key, val, tgt, unit in checks:
        targets[key] = {"value": val, "target_max": tgt,
                        "pass": None if val is None else bool(val <= tgt)}

    result = {
        "benchmark": "incremental",
        "meta": meta,
        "runs": runs,
        "ratios_wall": ratios,
        "ratios_cpu": ratios_cpu,
        "targets": targets,
    }

    # ---- table
    files = meta.get("files")
    gib = meta.get("corpus_bytes")
    head = f"hindsight incremental benchmark: {files:,} files" if isinstance(files, int) else "hindsight benchmark"
    if isinstance(gib, (int, float)):
        head += f" ({gib / 2**30:.2f} GiB)"
    head += f", {meta.get('bench_dir', '?')}, {meta.get('date', '')}"
    print()
    print(head)
    if meta.get("loadavg_start"):
        print(f"load average at start: {meta['loadavg_start']} (on {meta.get('cpus', '?')} CPUs)")
    print()
    cols = ("phase", "tool", "wall s", "cpu s", "peak RSS MiB", "note")
    rows = []
    for r in runs:
        rows.append((r["phase"], r["tool"], fmt(r.get("wall_s")), fmt(r.get("cpu_s")),
                     fmt(r.get("peak_rss_mib"), 1), r.get("note", "")))
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    align = ("<", "<", ">", ">", ">", "<")

    def line(vals):
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(vals, align, widths)).rstrip()

    print(line(cols))
    print(line(["-" * w for w in widths]))
    prev = None
    for row in rows:
        if prev is not None and row[0] != prev:
            print()
        prev = row[0]
        print(line(row))
    print()
    print("target check (wall-clock ratios; memory = max daemon VmHWM of the two runs)")
    for label, key, val, tgt, unit in checks:
        if val is None:
            status, shown = "n/a", "-"
        else:
            status = "PASS" if val <= tgt else "FAIL"
            shown = f"{val:.2f}{unit}"
        print(f"  {label:36} {shown:>11}   target <= {tgt}{unit}   {status}")
    for k in ("verify_full", "verify_incremental"):
        if meta.get(k):
            print(f"  {k.replace('_', ' ')}: {meta[k]}")

    # ---- memory scaling across earlier runs with other corpus sizes
    if archive_dir and os.path.isdir(archive_dir):
        latest = {}
        for name in sorted(os.listdir(archive_dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(archive_dir, name)) as f:
                    old = json.load(f)
            except (OSError, json.JSONDecodeError):
                continue
            n = old.get("meta", {}).get("files")
            t = old.get("targets", {}).get("hindsightd_peak_mib", {}).get("value")
            if n is not None and t is not None:
                latest[n] = (t, old.get("meta", {}).get("date", name))
        if files is not None and hs_peak is not None:
            latest[files] = (hs_peak, meta.get("date", "this run"))
        if len(latest) > 1:
            print()
            print("hindsightd peak memory by corpus size (latest run of each size; target: flat):")
            for n in sorted(latest):
                print(f"  {int(n):>10,} files: {latest[n][0]:7.1f} MiB   ({latest[n][1]})")

    os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
    tmp = json_out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, json_out)
    print()
    print(f"results: {json_out}")
    if archive_dir:
        os.makedirs(archive_dir, exist_ok=True)
        stamp = str(meta.get("run_id", "run")).replace("/", "_")
        arch = os.path.join(archive_dir, f"incremental-{files}-{stamp}.json")
        with open(arch, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"         {arch}")


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[1], argv[2:]
    if cmd == "gnutime" and len(args) == 1:
        gnutime(args[0])
    elif cmd == "record" and len(args) in (7, 8):
        record(*args)
    elif cmd == "snapshot-path" and len(args) == 1:
        snapshot_path(args[0])
    elif cmd == "run-summary" and len(args) == 1:
        run_summary(args[0])
    elif cmd == "compare" and len(args) in (2, 3):
        compare(args[0], args[1], content=len(args) == 3 and args[2] == "--content")
    elif cmd == "report" and len(args) in (2, 3):
        report(*args)
    else:
        die(f"bad arguments: {' '.join(argv[1:])!r} (see --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
