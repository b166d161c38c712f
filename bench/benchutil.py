#!/usr/bin/env python3
"""Small helpers for the bench/*.sh scripts (python3 standard library only).

usage:
  benchutil.py gnutime TIMEFILE
      parse the output of `/usr/bin/time -v -o TIMEFILE` and print
      "WALL_S CPU_S MAXRSS_KIB EXIT_STATUS"
  benchutil.py record RESULTS.jsonl PHASE TOOL WALL_S CPU_S RSS_KIB COMMAND [EXTRA_JSON]
      append one measurement (one JSON object per line)
  benchutil.py snapshot-path SNAPSHOT_LIST.json
      print the path of the newest snapshot in `hindsight snapshot list --json`
  benchutil.py snapshot-info SNAPSHOT_LIST.json
      print "ID<TAB>PATH" of the newest snapshot in `hindsight snapshot list --json`
  benchutil.py run-summary RUN_LIST.json
      print a JSON summary (id, state, stats, duration_s) of the newest run in
      `hindsight run list --json`
  benchutil.py compare SOURCE COPY [--content]
      compare two trees: entry names, types, sizes, mtimes, permission bits and
      symlink targets (and file contents with --content); exit 1 on differences
  benchutil.py report RUNDIR JSON_OUT [ARCHIVE_DIR]
      print the results table and ratios, write JSON_OUT (and a copy in ARCHIVE_DIR)
  benchutil.py mount-report RUNDIR JSON_OUT [ARCHIVE_DIR]
      bench/mount.sh: read RUNDIR/{meta,runs,mounts,checks,backups}.tsv, print the
      browsing table, ratios, targets and checks, write JSON_OUT (and a copy in
      ARCHIVE_DIR); exit 3 when a hindsight mount does not match the native tree
  benchutil.py archive-report RUNDIR JSON_OUT [ARCHIVE_DIR]
      bench/archive.sh: read RUNDIR/{meta,runs,mounts,checks,sizes}.tsv and results.jsonl,
      print the backup and browsing tables and the targets, write JSON_OUT (and a copy in
      ARCHIVE_DIR); exit 3 when a hindsight mount does not match the corpus
  benchutil.py retention-report RUNDIR JSON_OUT [ARCHIVE_DIR]
      bench/retention.sh: read RUNDIR/{meta.tsv,results.jsonl}, print the deletion
      times, the backup slowdowns and the target, write JSON_OUT (and a copy in ARCHIVE_DIR)
  benchutil.py http-log-count LOGFILE OFFSET
      count the HTTP requests a werkzeug/moto access log got after byte OFFSET; print
      "requests_METHOD<TAB>N" lines and "requests<TAB>TOTAL"
  benchutil.py tree-cpu ROOT_PID OUT
      sample the utime+stime of ROOT_PID and its descendants every 0.2 s until SIGTERM
      (or until its parent exits), then write the cpu seconds they used to OUT; OUT.ready
      appears after the first sample. Processes that start and end between two samples
      are missed; a server's reaped children are counted even if it does not collect them
  benchutil.py s3-usage ENDPOINT BUCKET PREFIX
      list the objects under PREFIX (ListObjectsV2, unsigned: moto without auth);
      print "objects<TAB>N" and "bytes<TAB>SUM"
  benchutil.py remote-report RUNDIR JSON_OUT [ARCHIVE_DIR]
      bench/remote.sh: read RUNDIR/{meta.tsv,results.jsonl,remote.tsv}, print the
      table, the hindsight/restic ratios and the targets, write JSON_OUT (and a copy)
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
TARGET_BACKUP_SLOWDOWN_PCT = 20
TARGET_REMOTE_INCR_OVER_RESTIC = 0.5
TARGET_REMOTE_FULL_OVER_RESTIC = 1.0


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


def snapshot_info(path):
    snaps = load_list(path, "snapshots")
    if not snaps:
        die(f"{path}: no snapshot listed")
    s = newest(snaps)
    if s.get("id") is None or not s.get("path"):
        die(f"{path}: newest snapshot has no 'id' or 'path'")
    print(f"{s['id']}\t{s['path']}")


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
                "small_files", "browsed_archive_bytes", "slow_timeout_s", "op_timeout_s",
                "hindsightd_idle_vmhwm_kib", "runs", "big_bytes", "subdir_files",
                "backup_files", "backup_corpus_bytes", "rm_entries", "hindsight_entries",
                "rm_concurrent_entries", "hindsight_concurrent_entries")


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


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def print_table(cols, rows, align, gap=None):
    """Print rows under cols, each column as wide as its widest cell; gap(i, row) true: blank line first."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]

    def line(vals):
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(vals, align, widths)).rstrip()

    print(line(cols))
    print(line(["-" * w for w in widths]))
    for i, r in enumerate(rows):
        if gap and i and gap(i, r):
            print()
        print(line(r))


def write_results(result, json_out, archive_dir, name):
    """Write JSON_OUT (atomically) and a copy ARCHIVE_DIR/NAME-FILES-RUNID.json."""
    meta = result.get("meta", {})
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
        arch = os.path.join(archive_dir, f"{name}-{meta.get('files')}-{stamp}.json")
        with open(arch, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"         {arch}")


def target(val, limit, kind="max", label=None):
    """{value, target_max|target_min, pass} (and label when given)."""
    t = {} if label is None else {"label": label}
    t.update({"value": val, ("target_max" if kind == "max" else "target_min"): limit,
              "pass": None if val is None else bool(val <= limit if kind == "max" else val >= limit)})
    return t


def pass_word(p):
    return "n/a" if p is None else ("PASS" if p else "FAIL")


def report(rundir, json_out, archive_dir=None):
    runs = read_jsonl(os.path.join(rundir, "results.jsonl"))
    meta = read_meta(os.path.join(rundir, "meta.tsv"))

    def get(phase, tool):
        for r in runs:
            if r["phase"] == phase and r["tool"] == tool:
                return r
        return None

    hs_full, hs_incr = get("full", "hindsight"), get("incremental", "hindsight")
    cp_a, cp_al = get("full", "cp -a"), get("incremental", "cp -al")
    cp_a_sync = get("full", "cp -a + sync")
    rsnap = get("incremental", "rsnapshot")

    def rat(x, y, key="wall_s"):
        return ratio(x and x.get(key), y and y.get(key))

    peaks = [r["peak_rss_mib"] for r in (hs_full, hs_incr) if r and r.get("peak_rss_mib") is not None]
    hs_peak = max(peaks) if peaks else None
    checks = [
        ("hindsight full / cp -a", "hindsight_full_over_cp_a", rat(hs_full, cp_a), TARGET_FULL_OVER_CP_A, "x"),
        ("hindsight full / (cp -a + sync)", "hindsight_full_over_cp_a_sync", rat(hs_full, cp_a_sync),
         TARGET_FULL_OVER_CP_A, "x"),
        ("hindsight incremental / rsnapshot", "hindsight_incremental_over_rsnapshot", rat(hs_incr, rsnap),
         TARGET_INCR_OVER_RSNAPSHOT, "x"),
        ("hindsight incremental / cp -al", "hindsight_incremental_over_cp_al", rat(hs_incr, cp_al),
         TARGET_INCR_OVER_CP_AL, "x"),
        ("hindsightd peak memory (VmHWM)", "hindsightd_peak_mib", hs_peak, TARGET_PEAK_MIB, " MiB"),
    ]
    ratios = {key: val for _, key, val, _, _ in checks[:4]}
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
    print_table(cols, rows, ("<", "<", ">", ">", ">", "<"), gap=lambda i, r: r[0] != rows[i - 1][0])
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

    write_results(result, json_out, archive_dir, "incremental")


# --------------------------------------------------------------------------- mount-report
MOUNT_TOOLS = ("native", "hindsight", "hindsightd", "restic", "borg")
MOUNT_OPS = (
    ("find", "find SNAP | wc -l"),
    ("du", "du -sb SNAP"),
    ("cat200", "cat 200 small files (xargs)"),
    ("bigread", "cat largest file > /dev/null"),
    ("bigdd", "dd bs=128k of it (no fadvise; info)"),
    ("restore", "rsync -a subdir restore"),
)
HINDSIGHT_MOUNTS = ("hindsight", "hindsightd")
# sequential reads of the big file: reported with their throughput
BIG_OPS = ("bigread", "bigdd")
# (key, label, op, which, kind, limit): kind "max" = ratio <= limit,
# "min" = throughput ratio >= limit; op None = mount-level value
MOUNT_TARGETS = (
    ("find_warm", "find, warm", "find", "warm", "max", 1.2),
    ("find_cold", "find, cold", "find", "cold", "max", 6.0),
    ("du_warm", "du, warm", "du", "warm", "max", 1.2),
    ("du_cold", "du, cold", "du", "cold", "max", 6.0),
    ("cat200_warm", "cat 200 small files, warm", "cat200", "warm", "max", 2.0),
    ("cat200_cold", "cat 200 small files, cold", "cat200", "cold", "max", 12.0),
    ("bigread_warm", "large file throughput, warm", "bigread", "warm", "min", 0.9),
    ("bigread_cold", "large file throughput, cold", "bigread", "cold", "min", 0.9),
    ("restore_warm", "rsync restore, warm", "restore", "warm", "max", 1.3),
    ("restore_cold", "rsync restore, cold", "restore", "cold", "max", 1.3),
    ("mount_usable", "mount usable (s)", None, "usable_s", "max", 0.5),
    ("mount_memory", "mount memory after all ops (MiB)", None, "vmhwm_after_mib", "max", 64),
)
# checks that must be identical to native
MOUNT_SAME = ("find_lines", "small_md5", "big_md5")


def read_tsv(path, ncols):
    rows = []
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    parts = line.split("\t")
                    rows.append(parts + [""] * (ncols - len(parts)))
    return rows


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def load_browse(rundir, meta, tools, partial=False):
    """Browse results of mount.sh / archive.sh: RUNDIR/{runs,mounts,checks}.tsv.

    runs.tsv: tool op run wall_s server_cpu_s load1 status [detail]; mounts.tsv: tool usable_s
    vmhwm_ready_kib vmhwm_after_kib vmrss_after_kib pid status; checks.tsv: tool key value.
    Returns {tool: {mount, ops: {op: {runs_s, ..., cold_s, warm_s, ratio_cold, ratio_warm}}, checks}}:
    cold = run 1, warm = median of runs 2..N, ratios against "native". An operation with a run
    that did not end well has no cold/warm figure, unless partial: then cold counts when run 1
    ended well and warm when runs 2..N all did.
    """
    res = {t: {"mount": None, "ops": {}, "checks": {}} for t in tools}
    for tool, op, run, wall, cpu, load, status, *rest in read_tsv(os.path.join(rundir, "runs.tsv"), 7):
        if tool not in res:
            continue
        o = res[tool]["ops"].setdefault(op, {"runs_s": [], "server_cpu_s": [], "load1": [], "status": "ok"})
        o["runs_s"].append(float(wall))
        o["server_cpu_s"].append(num(cpu))
        o["load1"].append(num(load))
        o.setdefault("run_status", []).append(status)
        if rest and rest[0] not in ("", "-"):
            o.setdefault("detail", []).append(rest[0])
        if status != "ok":
            o["status"] = f"run {run}: {status}"
    # samples.tsv (mount.sh): tool op run sample wall_s cpu_s; a run's wall is the fastest
    samples_path = os.path.join(rundir, "samples.tsv")
    if os.path.exists(samples_path):
        for tool, op, run, _sample, wall, _cpu in read_tsv(samples_path, 6):
            o = res.get(tool, {}).get("ops", {}).get(op)
            if o is not None and run.isdigit():
                per_run = o.setdefault("samples_s", [])
                while len(per_run) < int(run):
                    per_run.append([])
                per_run[int(run) - 1].append(float(wall))
    for tool, usable, hwm0, hwm1, rss, pid, status in read_tsv(os.path.join(rundir, "mounts.tsv"), 7):
        if tool not in res:
            continue

        def mib(v):
            v = num(v)
            return round(v / 1024, 1) if isinstance(v, float) else None
        res[tool]["mount"] = {"usable_s": num(usable), "vmhwm_ready_mib": mib(hwm0),
                              "vmhwm_after_mib": mib(hwm1), "vmrss_after_mib": mib(rss),
                              "pid": num(pid), "status": status}
    for tool, key, val in read_tsv(os.path.join(rundir, "checks.tsv"), 3):
        if tool not in res:
            continue
        c = res[tool]["checks"]
        if key in c:
            c[key] = f"{c[key]}; {val}"
        else:
            c[key] = val

    big_bytes = meta.get("big_bytes")
    big_bytes = int(big_bytes) if str(big_bytes).isdigit() else None

    # cold = run 1, warm = median of runs 2..N; ratios against native
    for tool in tools:
        for op, o in res[tool]["ops"].items():
            r, st = o["runs_s"], o.pop("run_status")
            if partial:
                cold_ok, warm_ok = st[0] == "ok", len(r) > 1 and all(x == "ok" for x in st[1:])
            else:
                cold_ok = warm_ok = o["status"] == "ok"
            o["cold_s"] = round(r[0], 4) if r and cold_ok else None
            o["warm_s"] = round(median(r[1:]), 4) if len(r) > 1 and warm_ok else None
            if op in BIG_OPS and big_bytes:
                o["cold_mb_s"] = round(big_bytes / o["cold_s"] / 1e6, 1) if o["cold_s"] else None
                o["warm_mb_s"] = round(big_bytes / o["warm_s"] / 1e6, 1) if o["warm_s"] else None
    nat = res.get("native", {}).get("ops", {})
    for tool in tools:
        for op, o in res[tool]["ops"].items():
            n = nat.get(op, {})
            for w in ("cold", "warm"):
                o[f"ratio_{w}"] = ratio(o.get(f"{w}_s"), n.get(f"{w}_s"))
                if op in BIG_OPS:
                    # throughput relative to native (higher is better)
                    o[f"throughput_ratio_{w}"] = ratio(n.get(f"{w}_s"), o.get(f"{w}_s"))
    return res


def mount_report(rundir, json_out, archive_dir=None):
    meta = read_meta(os.path.join(rundir, "meta.tsv"))
    tools = [t for t in MOUNT_TOOLS if t in str(meta.get("tools", "native")).split()]
    res = load_browse(rundir, meta, tools)
    backups = {t: num(w) for t, w in read_tsv(os.path.join(rundir, "backups.tsv"), 2)}

    # correctness: against native
    ncheck = res.get("native", {}).get("checks", {})
    restore_keys = sorted(k for k in ncheck if k.startswith("restored_files_"))
    snap_name = os.path.basename(str(meta.get("snapshot", "")))
    hs_mismatch = []
    for tool in tools:
        c = res[tool]["checks"]
        diffs = []
        if "failure" in c:
            diffs.append(f"failed: {c['failure']}")
        else:
            for k in MOUNT_SAME + tuple(restore_keys):
                if c.get(k) != ncheck.get(k):
                    diffs.append(f"{k}: {c.get(k)!r} != native {ncheck.get(k)!r}")
            if c.get("restore_metadata") != "ok":
                diffs.append(f"restore_metadata: {c.get('restore_metadata')}")
            if "find_lines_vary" in c:
                diffs.append(f"find line count varies between runs: {c['find_lines_vary']}")
            if tool in HINDSIGHT_MOUNTS and os.path.basename(c.get("latest_link", "")) != snap_name:
                diffs.append(f"latest -> {c.get('latest_link')!r}, expected {snap_name!r}")
        res[tool]["matches_native"] = not diffs
        res[tool]["differences"] = diffs
        if diffs and tool in HINDSIGHT_MOUNTS:
            hs_mismatch.append(tool)

    # targets for the hindsight mounts
    targets = {}
    for tool in tools:
        if tool not in HINDSIGHT_MOUNTS:
            continue
        t = {}
        for key, label, op, which, kind, limit in MOUNT_TARGETS:
            if op is None:
                val = (res[tool]["mount"] or {}).get(which)
            elif op == "bigread":
                val = res[tool]["ops"].get(op, {}).get(f"throughput_ratio_{which}")
            else:
                val = res[tool]["ops"].get(op, {}).get(f"ratio_{which}")
            ok = None if val is None else (val <= limit if kind == "max" else val >= limit)
            t[key] = {"label": label, "value": val, ("target_max" if kind == "max" else "target_min"): limit,
                      "pass": ok}
        targets[tool] = t

    result = {"benchmark": "mount", "meta": meta, "backups_s": backups, "tools": res, "targets": targets,
              "hindsight_matches_native": not hs_mismatch}

    # ---- table
    files = meta.get("files")
    head = f"hindsight mount (browsing) benchmark: {files:,} files" if isinstance(files, int) else "mount benchmark"
    cb = meta.get("corpus_bytes")
    if isinstance(cb, int):
        head += f" ({cb / 2**30:.2f} GiB)"
    head += f", {meta.get('bench_dir', '?')}, {meta.get('date', '')}"
    print()
    print(head)
    print(f"load average: start {meta.get('loadavg_start', '?')}, before measuring "
          f"{meta.get('loadavg_measure_start', '?')}, end {meta.get('loadavg_end', '?')} (on {meta.get('cpus', '?')} CPUs)")
    print(f"cold = run 1 after dropping the page/dentry/inode caches (BENCH_DROP={meta.get('drop', '?')}); "
          f"warm = median of runs 2-{meta.get('runs', '?')}; x = ratio to native (lower is better)")
    if meta.get("samples"):
        print(f"samples per run: {meta['samples']}: each run's time is the fastest of its samples, "
              "every sample of a cold run starting from dropped caches")
    if meta.get("damon"):
        print(f"DAMON page-out of the VM: {meta['damon']}")
    if meta.get("targets"):
        print("targets: " + str(meta["targets"]).strip("; "))
    if backups:
        print("backups (not a target): " + ", ".join(f"{t} {v:.1f} s" for t, v in backups.items() if v is not None))
    print()
    cols = ("operation", "tool", "cold s", "x", "warm s", "x", "runs s", "server cpu s")
    rows = []
    for op, label in MOUNT_OPS:
        first = True
        for tool in tools:
            o = res[tool]["ops"].get(op)
            if o is None:
                rows.append((label if first else "", tool, "-", "", "-", "", "(not run)", ""))
                first = False
                continue
            runs = " ".join(f"{x:.3f}" for x in o["runs_s"])
            if o["status"] != "ok":
                runs += f"  FAILED ({o['status']})"
            cpu = " ".join("-" if x is None else f"{x:.2f}" for x in o["server_cpu_s"]) if tool != "native" else ""
            rc, rw = o.get("ratio_cold"), o.get("ratio_warm")
            cold, warm = fmt(o.get("cold_s"), 3), fmt(o.get("warm_s"), 3)
            if op in BIG_OPS:
                cold += f" ({fmt(o.get('cold_mb_s'), 0)} MB/s)"
                warm += f" ({fmt(o.get('warm_mb_s'), 0)} MB/s)"
            rows.append((label if first else "", tool, cold, fmt(rc) if tool != "native" else "",
                         warm, fmt(rw) if tool != "native" else "", runs, cpu))
            first = False
    print_table(cols, rows, ("<", "<", ">", ">", ">", ">", "<", "<"), gap=lambda i, r: bool(r[0]))
    sampled = [(op, tool, o["samples_s"]) for op, _ in MOUNT_OPS for tool in tools
               for o in [res[tool]["ops"].get(op) or {}] if any(len(r) > 1 for r in o.get("samples_s", []))]
    if sampled:
        print()
        print("samples s (run 1 | run 2 | ...)")
        for op, tool, per_run in sampled:
            print(f"  {op:8} {tool:11} " + " | ".join(" ".join(f"{x:.3f}" for x in r) for r in per_run))
    print()
    print("mount             usable s   VmHWM at ready MiB   VmHWM after all ops MiB   VmRSS after MiB   status")
    for tool in tools:
        m = res[tool]["mount"]
        if tool == "native" or not m:
            continue
        print(f"  {tool:14} {fmt(m['usable_s'], 3):>9}   {fmt(m['vmhwm_ready_mib'], 1):>18}   "
              f"{fmt(m['vmhwm_after_mib'], 1):>23}   {fmt(m['vmrss_after_mib'], 1):>15}   {m['status']}")
    for tool in targets:
        print()
        print(f"target check: {tool} (ratios to native measured in this run; large file: throughput ratio)")
        for key, v in targets[tool].items():
            if "target_max" in v:
                tgt = f"<= {v['target_max']}"
            else:
                tgt = f">= {v['target_min']}"
            val = "-" if v["value"] is None else f"{v['value']:.2f}"
            status = "n/a" if v["pass"] is None else ("PASS" if v["pass"] else "FAIL")
            print(f"  {v['label']:34} {val:>8}   target {tgt:8} {status}")
    print()
    print("checks (must be identical to native)")
    for tool in tools:
        c = res[tool]["checks"]
        restored = "/".join(str(c.get(k, "-")) for k in restore_keys)
        verdict = "same as native" if res[tool]["matches_native"] else "DIFFERS: " + "; ".join(res[tool]["differences"])
        if tool == "native":
            verdict = "reference"
        print(f"  {tool:11} find lines {c.get('find_lines', '-'):>7}  small md5 {str(c.get('small_md5', '-'))[:8]:8}  "
              f"big md5 {str(c.get('big_md5', '-'))[:8]:8}  restored files {restored}  "
              f"restore metadata {c.get('restore_metadata', '-')}  du -sb {c.get('du_bytes', '-')}  -> {verdict}")
        for k in ("latest_link", "unmount", "log_errors"):
            if k in c:
                print(f"  {'':11} {k}: {c[k]}")

    write_results(result, json_out, archive_dir, "mount")
    return 3 if hs_mismatch else 0


# --------------------------------------------------------------------------- retention-report
RETENTION_PHASES = (
    ("baseline", "nothing else running"),
    ("during-rm", "while rm -rf of a cp -a copy runs"),
    ("during-delete", "while hindsight deletes a snapshot"),
)


def retention_report(rundir, json_out, archive_dir=None):
    runs = read_jsonl(os.path.join(rundir, "results.jsonl"))
    meta = read_meta(os.path.join(rundir, "meta.tsv"))

    def one(phase, tool):
        for r in runs:
            if r["phase"] == phase and r["tool"] == tool:
                return r
        return None

    # ---- deletion alone
    rm, hs = one("delete", "rm -rf"), one("delete", "hindsight")
    deletion = {}
    for key, r in (("rm_rf", rm), ("hindsight", hs)):
        if r:
            w, n = r.get("wall_s"), r.get("entries")
            deletion[key] = {"wall_s": w, "cpu_s": r.get("cpu_s"), "entries": n,
                             "entries_per_s": round(n / w, 1) if w and isinstance(n, (int, float)) else None,
                             "sync_after_s": r.get("sync_after_s")}
            if key == "hindsight":
                deletion[key].update({"cli_s": r.get("cli_s"), "invisible_at_once": r.get("invisible_at_once"),
                                      "snapshots_left": r.get("snapshots_left")})
    deletion["hindsight_over_rm_rf"] = ratio(hs and hs.get("wall_s"), rm and rm.get("wall_s"))

    # ---- backups: median of the runs during which the deletion went on the whole time
    backups = {}
    for phase, what in RETENTION_PHASES:
        rs = [r for r in runs if r["phase"] == phase and r["tool"] == "hindsight"]
        ok = [r for r in rs if r.get("overlap", True)]
        walls = [r["wall_s"] for r in ok if r.get("wall_s") is not None]
        durs = [r["run_duration_s"] for r in ok if r.get("run_duration_s") is not None]
        backups[phase] = {
            "what": what,
            "runs_wall_s": [r.get("wall_s") for r in rs],
            "runs_run_duration_s": [r.get("run_duration_s") for r in rs],
            "runs_daemon_cpu_s": [r.get("cpu_s") for r in rs],
            "runs_load1": [r.get("load1") for r in rs],
            "runs_overlap": [r.get("overlap", True) for r in rs],
            "counted": len(walls),
            "median_wall_s": round(median(walls), 3) if walls else None,
            "median_run_duration_s": round(median(durs), 3) if durs else None,
        }
    base = backups["baseline"]

    def slow(phase, key):
        a, b = backups[phase][key], base[key]
        if a is None or not b:
            return None
        return round((a - b) / b * 100, 1)

    # each concurrent backup against the baseline run just before it (same "pair")
    base_by_pair = {r.get("pair"): r for r in runs if r["phase"] == "baseline" and r.get("pair")}
    for phase in ("during-rm", "during-delete"):
        backups[phase]["slowdown_pct"] = slow(phase, "median_wall_s")
        backups[phase]["slowdown_run_duration_pct"] = slow(phase, "median_run_duration_s")
        pairs = []
        for r in runs:
            if r["phase"] != phase or not r.get("overlap", True):
                continue
            b = base_by_pair.get(r.get("pair"))
            if b and b.get("wall_s") and r.get("wall_s") is not None:
                pairs.append(round((r["wall_s"] - b["wall_s"]) / b["wall_s"] * 100, 1))
        backups[phase]["paired_slowdowns_pct"] = pairs
        backups[phase]["slowdown_paired_median_pct"] = median(pairs)
    val = backups["during-delete"]["slowdown_pct"]
    targets = {"backup_slowdown_during_delete_pct": {
        "value": val, "target_max": TARGET_BACKUP_SLOWDOWN_PCT,
        "pass": None if val is None else bool(val <= TARGET_BACKUP_SLOWDOWN_PCT)}}
    result = {"benchmark": "retention", "meta": meta, "runs": runs, "deletion": deletion,
              "backups": backups, "targets": targets}

    # ---- table
    files = meta.get("files")
    head = f"hindsight retention (deletion) benchmark: {files:,}-entry tree" if isinstance(files, int) \
        else "retention benchmark"
    cb = meta.get("corpus_bytes")
    if isinstance(cb, int):
        head += f" ({cb / 2**30:.2f} GiB)"
    head += f", {meta.get('bench_dir', '?')}, {meta.get('date', '')}"
    print()
    print(head)
    print(f"load average: start {meta.get('loadavg_start', '?')}, end {meta.get('loadavg_end', '?')} "
          f"(on {meta.get('cpus', '?')} CPUs); filesystem {meta.get('filesystem', '?')}; "
          f"I/O scheduler {meta.get('io_scheduler', '?')}")
    print()
    print("deleting the tree alone")
    print(f"  {'':32} {'wall s':>9} {'cpu s':>8} {'entries':>9} {'entries/s':>10} {'sync after s':>13}")
    for key, label in (("rm_rf", "rm -rf (cp -a copy)"),
                       ("hindsight", "hindsight snapshot delete")):
        d = deletion.get(key)
        if not d:
            print(f"  {label:32} {'-':>9}")
            continue
        print(f"  {label:32} {fmt(d['wall_s']):>9} {fmt(d['cpu_s']):>8} {d['entries'] or '-':>9} "
              f"{fmt(d['entries_per_s'], 0):>10} {fmt(d.get('sync_after_s'), 3):>13}")
    if "hindsight" in deletion:
        d = deletion["hindsight"]
        print(f"  hindsight: `snapshot delete` returned after {fmt(d.get('cli_s'), 3)} s; "
              f"invisible at once: {d.get('invisible_at_once')}; cpu is the daemon's (deleter included)")
    print(f"  hindsight / rm -rf (wall): {fmt(deletion['hindsight_over_rm_rf'])}")
    print()
    nb = meta.get("backup_files")
    print(f"full backup of a {nb:,}-entry corpus to a fresh destination (wall s of `job run --wait`; "
          f"median of the runs that overlapped the deletion)" if isinstance(nb, int) else "backups")
    print(f"  {'':38} {'median s':>9} {'slowdown':>9} {'paired':>8} {'daemon-side median s':>21}   runs s (load1)")
    for phase, what in RETENTION_PHASES:
        b = backups[phase]
        sd = b.get("slowdown_pct")
        sd = "" if phase == "baseline" else ("-" if sd is None else f"{sd:+.1f}%")
        runs_s = " ".join(
            ("-" if w is None else f"{w:.2f}") + (f"({l:.1f})" if isinstance(l, (int, float)) else "")
            + ("" if ov else "*")
            for w, l, ov in zip(b["runs_wall_s"], b["runs_load1"], b["runs_overlap"]))
        pd = b.get("slowdown_paired_median_pct")
        pd = "" if phase == "baseline" else ("-" if pd is None else f"{pd:+.1f}%")
        print(f"  {what:38} {fmt(b['median_wall_s']):>9} {sd:>9} {pd:>8} {fmt(b['median_run_duration_s']):>21}   {runs_s}")
    if any(not ov for b in backups.values() for ov in b["runs_overlap"]):
        print("  * the deletion ended before this backup did: not counted")
    print("  slowdown: of the medians; paired: median of each backup against the baseline run just before it")
    print()
    t = targets["backup_slowdown_during_delete_pct"]
    status = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
    v = "-" if t["value"] is None else f"{t['value']:+.1f}%"
    print(f"target: backup slowdown while hindsight deletes {v:>8}   target <= {TARGET_BACKUP_SLOWDOWN_PCT}%   {status}")
    rm_sd = backups["during-rm"].get("slowdown_pct")
    pd = backups["during-delete"].get("slowdown_paired_median_pct")
    if pd is not None:
        print(f"        paired figure: {pd:+.1f}%" + ("" if (pd <= TARGET_BACKUP_SLOWDOWN_PCT) == t["pass"]
                                                    else "  (disagrees with the medians: the machine was not steady)"))
    if rm_sd is not None:
        rpd = backups["during-rm"].get("slowdown_paired_median_pct")
        print(f"        for comparison, while rm -rf runs: {rm_sd:+.1f}%"
              + ("" if rpd is None else f" (paired {rpd:+.1f}%)"))
    for k in ("log_errors", "hindsight_concurrent_left", "hindsight_concurrent_invisible_at_once"):
        if meta.get(k):
            print(f"  {k.replace('_', ' ')}: {meta[k]}")

    write_results(result, json_out, archive_dir, "retention")


# --------------------------------------------------------------------------- archive-report
ARCHIVE_TOOLS = ("native", "hindsight", "hindsightd", "ratarmount", "archivemount")
ARCHIVE_OPS = (
    ("find", "find SNAP | wc -l"),
    ("cat200", "cat 200 small files (xargs)"),
    ("bigread", "cat largest file > /dev/null"),
    ("restore", "rsync -a subdir restore"),
)
# targets from the issue (see bench/README.md, "Archive benchmark")
TARGET_GZ_WALL_OVER_PIGZ = 1.0
TARGET_GZ_SIZE_OVER_GZIP6 = 1.02
TARGET_TAR_WALL_OVER_TAR_CF = 1.1
TARGET_MOUNT_USABLE_S = 0.5
TARGET_SMALL_MS_PER_FILE = 2.0
TARGET_RESTORE_OVER_RATARMOUNT = 0.5
ARCHIVE_SAME = ("small_md5", "big_md5")


def archive_report(rundir, json_out, archive_dir=None):
    meta = read_meta(os.path.join(rundir, "meta.tsv"))
    runs = read_jsonl(os.path.join(rundir, "results.jsonl"))
    sizes = {(ph, tool): int(b) for ph, tool, b, _ in read_tsv(os.path.join(rundir, "sizes.tsv"), 4)}
    for r in runs:
        r["output_bytes"] = sizes.get((r["phase"], r["tool"]))

    def get(phase, tool):
        return next((r for r in runs if r["phase"] == phase and r["tool"] == tool), None)

    def rat(x, y, key):
        return ratio(x and x.get(key), y and y.get(key))

    hs_gz, pigz, gzip6 = get("compressed", "hindsight"), get("compressed", "tar | pigz -6"), get("compressed", "tar czf")
    hs_tar, tar_cf, tar_cf_sync = get("archived", "hindsight"), get("archived", "tar cf"), get("archived", "tar cf + sync")
    ratios = {
        "compressed_wall_over_pigz": rat(hs_gz, pigz, "wall_s"),
        "compressed_wall_over_tar_czf": rat(hs_gz, gzip6, "wall_s"),
        "compressed_cpu_over_pigz": rat(hs_gz, pigz, "cpu_s"),
        "compressed_cpu_over_tar_czf": rat(hs_gz, gzip6, "cpu_s"),
        "compressed_size_over_gzip6": rat(hs_gz, gzip6, "output_bytes"),
        "compressed_size_over_pigz": rat(hs_gz, pigz, "output_bytes"),
        "archived_wall_over_tar_cf": rat(hs_tar, tar_cf, "wall_s"),
        "archived_cpu_over_tar_cf": rat(hs_tar, tar_cf, "cpu_s"),
        "archived_wall_over_tar_cf_sync": rat(hs_tar, tar_cf_sync, "wall_s"),
        "archived_size_over_tar_cf": rat(hs_tar, tar_cf, "output_bytes"),
    }

    # ---- browsing
    tools = [t for t in ARCHIVE_TOOLS if t in str(meta.get("tools", "native")).split()]
    res = load_browse(rundir, meta, tools, partial=True)
    index_mount = None
    for tool, usable, hwm0, _, _, pid, status in read_tsv(os.path.join(rundir, "mounts.tsv"), 7):
        if tool == "ratarmount-index":
            v = num(hwm0)
            index_mount = {"usable_s": num(usable), "vmhwm_ready_mib": round(v / 1024, 1) if isinstance(v, float) else None,
                           "status": status}
    nsmall = meta.get("small_files") if isinstance(meta.get("small_files"), int) else 200
    rat_ops = res.get("ratarmount", {}).get("ops", {})
    for tool in tools:
        for op, o in res[tool]["ops"].items():
            if op == "cat200":
                for w in ("cold", "warm"):
                    o[f"{w}_ms_per_file"] = round(o[f"{w}_s"] * 1000 / nsmall, 3) if o.get(f"{w}_s") is not None else None
            for w in ("cold", "warm"):
                o[f"over_ratarmount_{w}"] = ratio(o.get(f"{w}_s"), rat_ops.get(op, {}).get(f"{w}_s"))

    # correctness against native (the corpus itself)
    ncheck = res.get("native", {}).get("checks", {})
    hs_mismatch = []
    for tool in tools:
        c, diffs = res[tool]["checks"], []
        if "failure" in c:
            diffs.append(f"failed: {c['failure']}")
        ref_lines = {v for k, v in ncheck.items() if k.startswith("find_lines_")}
        lines = {v for k, v in c.items() if k.startswith("find_lines_")}
        if lines and lines != ref_lines:
            diffs.append(f"find lines {sorted(lines)} != native {sorted(ref_lines)}")
        for k in ARCHIVE_SAME:
            if k in c and not c[k].startswith("not checked") and c[k] != ncheck.get(k):
                diffs.append(f"{k}: {c[k]!r} != native {ncheck.get(k)!r}")
        ref_rest = {v for k, v in ncheck.items() if k.startswith("restored_files_")}
        for k, v in c.items():
            if k.startswith("restored_files_") and {v} != ref_rest:
                diffs.append(f"{k}: {v} != native {sorted(ref_rest)}")
        if "restore_metadata" in c and c["restore_metadata"] != "ok":
            diffs.append(f"restore_metadata: {c['restore_metadata']}")
        res[tool]["matches_native"] = not diffs
        res[tool]["differences"] = diffs
        res[tool]["timed_out"] = [op for op, o in res[tool]["ops"].items() if "timeout" in o["status"]]
        if diffs and tool in HINDSIGHT_MOUNTS:
            hs_mismatch.append(tool)
    archive_checks = {k: v for t, k, v in read_tsv(os.path.join(rundir, "checks.tsv"), 3) if t == "archive"}
    if archive_checks.get("gzip_t", "ok") != "ok":
        hs_mismatch.append("archive")

    # ---- targets
    targets = {
        "compressed_wall_over_pigz": target(ratios["compressed_wall_over_pigz"], TARGET_GZ_WALL_OVER_PIGZ, label="compressed backup wall / tar|pigz"),
        "compressed_size_over_gzip6": target(ratios["compressed_size_over_gzip6"], TARGET_GZ_SIZE_OVER_GZIP6, label="data.tar.gz size / tar czf (gzip -6)"),
        "archived_wall_over_tar_cf": target(ratios["archived_wall_over_tar_cf"], TARGET_TAR_WALL_OVER_TAR_CF, label="archived backup wall / tar cf"),
        "archived_wall_over_tar_cf_sync": target(ratios["archived_wall_over_tar_cf_sync"], TARGET_TAR_WALL_OVER_TAR_CF,
                                                 label="archived backup wall / (tar cf + sync)"),
    }
    for tool in tools:
        if tool not in HINDSIGHT_MOUNTS:
            continue
        ops = res[tool]["ops"]
        if tool == "hindsight":
            targets[f"{tool}_mount_usable_s"] = target((res[tool]["mount"] or {}).get("usable_s"), TARGET_MOUNT_USABLE_S,
                                                       label=f"{tool}: mount usable (s)")
        for w in ("cold", "warm"):
            targets[f"{tool}_cat200_ms_per_file_{w}"] = target(ops.get("cat200", {}).get(f"{w}_ms_per_file"),
                                                               TARGET_SMALL_MS_PER_FILE, label=f"{tool}: small file, {w} (ms/file)")
        for w in ("cold", "warm"):
            targets[f"{tool}_restore_over_ratarmount_{w}"] = target(
                ops.get("restore", {}).get(f"over_ratarmount_{w}"), TARGET_RESTORE_OVER_RATARMOUNT,
                label=f"{tool}: restore / ratarmount, {w}")

    result = {"benchmark": "archive", "meta": meta, "runs": runs, "ratios": ratios,
              "browse": {"archive": meta.get("browsed_archive"), "archive_bytes": meta.get("browsed_archive_bytes"),
                         "ratarmount_index_build": index_mount, "tools": res, "archive_checks": archive_checks},
              "targets": targets, "hindsight_matches_corpus": not hs_mismatch}

    # ---- tables
    files = meta.get("files")
    head = f"hindsight archive benchmark: {files:,} files" if isinstance(files, int) else "archive benchmark"
    cb = meta.get("corpus_bytes")
    if isinstance(cb, int):
        head += f" ({cb / 2**30:.2f} GiB)"
    head += f", {meta.get('bench_dir', '?')}, {meta.get('date', '')}"
    print()
    print(head)
    print(f"load average: start {meta.get('loadavg_start', '?')}, browsing {meta.get('loadavg_browse_start', '?')}, "
          f"end {meta.get('loadavg_end', '?')} (on {meta.get('cpus', '?')} CPUs)")
    print()
    print("backups (warm page cache; hindsight: wall of `job run --wait`, cpu and peak of the daemon)")
    cols = ("structure", "tool", "wall s", "cpu s", "peak RSS MiB", "output bytes", "x wall", "x cpu", "x size")
    ref = {"compressed": pigz, "archived": tar_cf}
    rows = []
    for r in runs:
        rf = ref.get(r["phase"])
        ob = r.get("output_bytes")
        rows.append((r["phase"], r["tool"], fmt(r.get("wall_s")), fmt(r.get("cpu_s")), fmt(r.get("peak_rss_mib"), 1),
                     f"{ob:,}" if ob is not None else "-",
                     fmt(rat(r, rf, "wall_s")), fmt(rat(r, rf, "cpu_s")),
                     fmt(rat(r, gzip6 if r["phase"] == "compressed" else rf, "output_bytes"), 3)))
    print_table(cols, rows, ("<", "<", ">", ">", ">", ">", ">", ">", ">"), gap=lambda i, r: r[0] != rows[i - 1][0])
    print("  x wall, x cpu: over tar | pigz -6 (compressed) or tar cf (archived); x size: over tar czf (gzip -6) or tar cf")
    print()

    print(f"browsing {meta.get('browsed_archive', '?')} ({meta.get('browsed_archive_bytes', '?')} bytes); "
          f"cold = run 1 after dropping caches (BENCH_DROP={meta.get('drop', '?')}), warm = median of runs 2-{meta.get('runs', '?')}")
    cols = ("operation", "tool", "cold s", "warm s", "per file / MB/s (cold, warm)", "x native (c/w)", "x ratarmount (c/w)",
            "server cpu s", "status")
    rows = []
    slow_to = meta.get("slow_timeout_s")
    for op, label in ARCHIVE_OPS:
        first = True
        for tool in tools:
            o = res[tool]["ops"].get(op)
            if o is None:
                rows.append((label if first else "", tool, "-", "-", "", "", "", "", "(not run)"))
                first = False
                continue
            cold, warm = fmt(o.get("cold_s"), 3), fmt(o.get("warm_s"), 3)
            status = o["status"]
            if "timeout" in status:
                t = o["runs_s"][-1]
                status = f"timeout >{int(t)}s" + (f" ({o['detail'][-1]})" if o.get("detail") else "")
                if o.get("cold_s") is None:
                    cold = f"timeout >{int(t)}s"
            extra = ""
            if op == "cat200":
                extra = f"{fmt(o.get('cold_ms_per_file'), 2)}, {fmt(o.get('warm_ms_per_file'), 2)} ms"
            elif op == "bigread":
                extra = f"{fmt(o.get('cold_mb_s'), 0)}, {fmt(o.get('warm_mb_s'), 0)} MB/s"
            xn = "" if tool == "native" else f"{fmt(o.get('ratio_cold'))}/{fmt(o.get('ratio_warm'))}"
            xr = "" if tool in ("native", "ratarmount") else f"{fmt(o.get('over_ratarmount_cold'))}/{fmt(o.get('over_ratarmount_warm'))}"
            cpu = " ".join("-" if x is None else f"{x:.2f}" for x in o["server_cpu_s"]) if tool != "native" else ""
            rows.append((label if first else "", tool, cold, warm, extra, xn, xr, cpu, status))
            first = False
    print_table(cols, rows, ("<", "<", ">", ">", ">", ">", ">", "<", "<"), gap=lambda i, r: bool(r[0]))
    if slow_to:
        print(f"  archivemount's cat, big read and restore are capped at {slow_to} s (BENCH_SLOW_TIMEOUT) and not repeated after a timeout")
    print()
    print("mount             usable s   VmHWM at ready MiB   VmHWM after all ops MiB   VmRSS after MiB   status")
    mrows = []
    if index_mount:
        mrows.append(("ratarmount (index build)", index_mount["usable_s"], index_mount["vmhwm_ready_mib"], None, None,
                      index_mount["status"]))
    for tool in tools:
        m = res[tool]["mount"]
        if tool == "native" or not m:
            continue
        name = tool + (" (index reuse)" if tool == "ratarmount" else " (already mounted)" if tool == "hindsightd" else "")
        mrows.append((name, m["usable_s"], m["vmhwm_ready_mib"], m["vmhwm_after_mib"], m["vmrss_after_mib"], m["status"]))
    for name, u, h0, h1, rss, st in mrows:
        print(f"  {name:26} {fmt(u, 3):>9}   {fmt(h0, 1):>10}   {fmt(h1, 1):>14}   {fmt(rss, 1):>10}   {st}")
    print("  hindsight: standalone `hindsight mount --background`, usable = first `ls` of the corpus dir that succeeds;")
    print("  hindsightd: the daemon's own mount (VmHWM reset before browsing, so it does not count the backups)")
    print()
    print("targets (ratios measured in this run)")
    for key, v in targets.items():
        tgt = f"<= {v['target_max']}" if "target_max" in v else f">= {v['target_min']}"
        val = "-" if v["value"] is None else f"{v['value']:.3f}"
        print(f"  {v['label']:44} {val:>9}   target {tgt:8} {pass_word(v['pass'])}")
    print()
    print("checks (against the corpus)")
    if archive_checks:
        print("  data.tar.gz: " + ", ".join(f"{k} {v}" for k, v in archive_checks.items()))
    for tool in tools:
        c = res[tool]["checks"]
        fl = "/".join(v for k, v in sorted(c.items()) if k.startswith("find_lines_")) or "-"
        rf = "/".join(v for k, v in sorted(c.items()) if k.startswith("restored_files_")) or "-"
        verdict = "reference" if tool == "native" else (
            "same as the corpus" if res[tool]["matches_native"] else "DIFFERS: " + "; ".join(res[tool]["differences"]))
        if res[tool]["timed_out"] and res[tool]["matches_native"]:
            verdict += f" where checked (not checked: {', '.join(res[tool]['timed_out'])}, timed out)"
        print(f"  {tool:12} find lines {fl}  small md5 {str(c.get('small_md5', '-'))[:12]}  big md5 {str(c.get('big_md5', '-'))[:12]}  "
              f"restored files {rf}  restore metadata {str(c.get('restore_metadata', '-'))[:60]}  -> {verdict}")
        for k in ("index_bytes", "clear_refs", "unmount", "log_errors"):
            if k in c:
                print(f"  {'':12} {k}: {c[k]}")

    write_results(result, json_out, archive_dir, "archive")
    return 3 if hs_mismatch else 0


# --------------------------------------------------------------------------- remote.sh
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")


def http_log_count(path, offset):
    """Requests in a werkzeug access log ('... "PUT /bucket/key HTTP/1.1" 200 -') after OFFSET."""
    counts = {m: 0 for m in HTTP_METHODS}
    with open(path, "rb") as f:
        f.seek(int(offset))
        for raw in f:
            line = raw.decode("utf-8", "replace")
            i = line.find('"')
            if i < 0:
                continue
            m = line[i + 1:].split(" ", 1)[0]
            if m in counts and " HTTP/1." in line:
                counts[m] += 1
    for m in HTTP_METHODS:
        print(f"requests_{m}\t{counts[m]}")
    print(f"requests\t{sum(counts.values())}")


def tree_cpu(root, out, interval=0.2):
    import signal
    import time
    root, parent, tck = int(root), os.getppid(), os.sysconf("SC_CLK_TCK")

    def scan():
        procs, kids = {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            f = st[st.rfind(")") + 2:].split()
            # f[1] ppid, f[11] utime, f[12] stime, f[19] starttime (against pid reuse)
            procs[int(d)] = (int(f[1]), int(f[11]) + int(f[12]), f[19])
            kids.setdefault(int(f[1]), []).append(int(d))
        tree, stack = {}, [root]
        while stack:
            p = stack.pop()
            if p in procs:
                tree[(p, procs[p][2])] = procs[p][1]
                stack.extend(kids.get(p, []))
        return tree

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    first = scan()
    last = dict(first)
    open(out + ".ready", "w").close()
    while not stop and os.getppid() == parent:
        time.sleep(interval)
        for k, v in scan().items():
            last[k] = max(last.get(k, 0), v)
    for k, v in scan().items():
        last[k] = max(last.get(k, 0), v)
    with open(out, "w") as f:
        f.write(f"{sum(v - first.get(k, 0) for k, v in last.items()) / tck:.3f}\n")


def s3_usage(endpoint, bucket, prefix):
    import urllib.parse
    import urllib.request
    import xml.etree.ElementTree as ET
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    n = total = 0
    token = None
    while True:
        q = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
        if token:
            q["continuation-token"] = token
        url = f"{endpoint.rstrip('/')}/{bucket}?{urllib.parse.urlencode(q)}"
        with urllib.request.urlopen(url, timeout=300) as r:
            root = ET.fromstring(r.read())
        for c in root.iter(ns + "Contents"):
            n += 1
            total += int(c.find(ns + "Size").text)
        trunc = root.find(ns + "IsTruncated")
        token_el = root.find(ns + "NextContinuationToken")
        if trunc is None or trunc.text != "true" or token_el is None:
            break
        token = token_el.text
    print(f"objects\t{n}")
    print(f"bytes\t{total}")


def remote_report(rundir, json_out, archive_dir=None):
    runs = read_jsonl(os.path.join(rundir, "results.jsonl"))
    meta = read_meta(os.path.join(rundir, "meta.tsv"))
    store = {}
    for phase, tool, dest, key, val in read_tsv(os.path.join(rundir, "remote.tsv"), 5):
        store.setdefault((phase, tool, dest), {})[key] = num(val)
    rows_out = []
    by = {}
    for r in runs:
        phase, dest = r["phase"].rsplit("-", 1)
        s = store.get((r["phase"], r["tool"], dest), {})
        e = dict(r, phase=phase, dest=dest, server=s)
        if s.get("ssh_master_cpu_s") is not None and e.get("cpu_s") is not None:
            # hindsight's ssh ControlMaster (detached, so not in the daemon's own cpu)
            e["daemon_cpu_s"] = e["cpu_s"]
            e["cpu_s"] = round(e["cpu_s"] + s["ssh_master_cpu_s"], 3)
        by[(phase, r["tool"], dest)] = e
        rows_out.append(e)
    # what each backup added on the server
    for e in rows_out:
        prev = by.get(("full", e["tool"], e["dest"])) if e["phase"] == "incremental" else None
        for k in ("bytes", "objects"):
            v = e["server"].get(k)
            p = prev["server"].get(k) if prev else 0
            e["server"][k + "_added"] = None if v is None or p is None else v - p

    ratios_wall, ratios_cpu, targets = {}, {}, {}
    for dest in ("s3", "ssh"):
        for phase, tgt in (("full", TARGET_REMOTE_FULL_OVER_RESTIC), ("incremental", TARGET_REMOTE_INCR_OVER_RESTIC)):
            h, rs = by.get((phase, "hindsight", dest)), by.get((phase, "restic", dest))
            if not (h and rs):
                continue
            key = f"hindsight_{phase}_{dest}_over_restic"
            ratios_wall[key] = ratio(h.get("wall_s"), rs.get("wall_s"))
            ratios_cpu[key] = ratio(h.get("cpu_s"), rs.get("cpu_s"))
            targets[key] = target(ratios_wall[key], tgt, label=f"hindsight {phase} / restic ({dest}), wall")
    result = {"benchmark": "remote", "meta": meta, "runs": rows_out, "ratios_wall": ratios_wall,
              "ratios_cpu": ratios_cpu, "targets": targets}

    files, gib = meta.get("files"), meta.get("corpus_bytes")
    head = f"hindsight remote benchmark: {files:,} files" if isinstance(files, int) else "hindsight remote benchmark"
    if isinstance(gib, (int, float)):
        head += f" ({gib / 2**30:.2f} GiB)"
    print()
    print(head + f", {meta.get('bench_dir', '?')}, {meta.get('date', '')}")
    for k in ("uptime_start", "uptime_end"):
        if meta.get(k):
            print(f"{k.replace('_', ' ')}: {meta[k].strip()}")
    if meta.get("mutate"):
        print(f"mutation: {meta['mutate']}")
    print()

    def mib(v):
        return "-" if v is None else f"{v / MIB:.1f}"

    cols = ("phase", "dest", "tool", "wall s", "cpu s", "peak MiB", "server cpu s", "requests", "PUT", "GET",
            "objects", "stored MiB", "added MiB", "load1")
    rows = []
    for phase in ("full", "incremental"):
        for dest in ("s3", "ssh"):
            for tool in ("hindsight", "restic"):
                e = by.get((phase, tool, dest))
                if not e:
                    continue
                s = e["server"]
                if dest == "s3":
                    rq = "-" if s.get("requests") is None else str(int(s["requests"]))
                else:
                    ses, lg = s.get("ssh_sessions"), s.get("ssh_logins")
                    rq = "-" if ses is None else f"{int(ses)} sess/{int(lg or 0)} login"
                put = "-" if s.get("requests_PUT") is None else str(int(s["requests_PUT"]))
                get = "-" if s.get("requests_GET") is None else str(int(s["requests_GET"]))
                rows.append((phase, dest, tool, fmt(e.get("wall_s")), fmt(e.get("cpu_s")), fmt(e.get("peak_rss_mib"), 1),
                             fmt(s.get("server_cpu_s")), rq, put, get,
                             "-" if s.get("objects") is None else str(int(s["objects"])),
                             mib(s.get("bytes")), mib(s.get("bytes_added")), fmt(e.get("load1"))))
    print_table(cols, rows, ("<", "<", "<", ">", ">", ">", ">", ">", ">", ">", ">", ">", ">", ">"),
                gap=lambda i, r: r[0] != rows[i - 1][0])
    print()
    print("  hindsight: wall of `hindsight job run --wait`, cpu = hindsightd's utime+stime (+ reaped children: ssh;")
    print("    for ssh also its detached ssh ControlMaster, which encrypts the sessions),")
    print("    peak = hindsightd VmHWM reset before each run. restic: /usr/bin/time -v (cpu of restic and its ssh child,")
    print("    peak = largest process). server cpu = moto's or sshd's utime+stime during the run (its process tree,")
    print("    sampled every 0.2 s: sshd does not collect its children's cpu).")
    print("  requests (s3) = HTTP requests in moto's access log during the run (exact count, all methods);")
    print("    ssh: sessions (remote commands, tar streams, the sftp subsystem) and logins in sshd's log; the SFTP")
    print("    requests inside a session are not logged. hindsight keeps one ControlMaster connection (0 logins).")
    print("  objects / stored = what is under the tool's prefix (s3: ListObjectsV2 sizes; ssh: files and du -sb of its")
    print("    directory, hardlinked files counted once); added = growth since the full backup.")
    print("  moto is an in-memory Python server on the same 2 CPUs: its speed bounds both tools alike.")
    print()
    print("ratios hindsight / restic (measured in this run)")
    for key, v in targets.items():
        val = "-" if v["value"] is None else f"{v['value']:.3f}"
        cpu = ratios_cpu.get(key)
        print(f"  {v['label']:40} {val:>7}  (cpu {'-' if cpu is None else f'{cpu:.3f}'})   target <= {v['target_max']}   {pass_word(v['pass'])}")
    for k, v in meta.items():
        if k.startswith("verify_"):
            print(f"  {k}: {v}")
    write_results(result, json_out, archive_dir, "remote")


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
    elif cmd == "snapshot-info" and len(args) == 1:
        snapshot_info(args[0])
    elif cmd == "run-summary" and len(args) == 1:
        run_summary(args[0])
    elif cmd == "compare" and len(args) in (2, 3):
        compare(args[0], args[1], content=len(args) == 3 and args[2] == "--content")
    elif cmd == "report" and len(args) in (2, 3):
        report(*args)
    elif cmd == "mount-report" and len(args) in (2, 3):
        return mount_report(*args)
    elif cmd == "archive-report" and len(args) in (2, 3):
        return archive_report(*args)
    elif cmd == "http-log-count" and len(args) == 2:
        http_log_count(*args)
    elif cmd == "tree-cpu" and len(args) == 2:
        tree_cpu(*args)
    elif cmd == "s3-usage" and len(args) == 3:
        s3_usage(*args)
    elif cmd == "remote-report" and len(args) in (2, 3):
        remote_report(*args)
    elif cmd == "retention-report" and len(args) in (2, 3):
        retention_report(*args)
    else:
        die(f"bad arguments: {' '.join(argv[1:])!r} (see --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
