#!/usr/bin/env bash
# bench/history.sh: file history answered from the snapshots' indexes (issue 19): `hindsight
# versions`, `hindsight find` and `hindsight diff` over SNAPSHOTS snapshots of one job, each
# taken after one standard mutation of the corpus (mutate.py), timed in the same run against
# `restic find` and `restic diff` over a local restic repository that backs the same tree up
# after each mutation, in the same loop. The generation of the snapshots is timed separately.
#
# usage:  bench/history.sh                         (uses the release binaries; BENCH_BUILD=1 builds first)
#         N=2000 SNAPSHOTS=5 bench/history.sh      (a quick run)
#
# environment knobs (see bench/README.md, "History benchmark"):
#   N (or BENCH_FILES)=100000     corpus size (entries)
#   SNAPSHOTS (or BENCH_SNAPSHOTS)=100   snapshots of the job, each after one mutation
#   BENCH_RUNS=5              timed warm runs of each query and tool (median reported)
#   BENCH_COLD_RUNS=3         timed cold runs (sync; echo 3 > drop_caches before each); 0: none
#   BENCH_QUERY_BUDGET=120    seconds: no further run of a query once its runs took this long
#   BENCH_FIND_PATTERN='a*.csv'   the find pattern (129 files of the 100k corpus)
#   BENCH_RESTIC=1            0: hindsight only (no restic repository, no ratios)
#   BENCH_REUSE=0             1: time the queries again on the previous run's snapshots (same N and
#                             SNAPSHOTS; e.g. after a rebuild), without generating them again
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (shared corpus; this script's files in history/)
#   BENCH_BUILD=0             1: cargo build --release --workspace first
#   HINDSIGHTD, HINDSIGHT     binaries (default ${CARGO_TARGET_DIR:-target}/release/...)
#   BENCH_WARM=1, BENCH_DAMON=pause, BENCH_NO_INSTALL=0     as in incremental.sh
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MUTATE_SEED=2                  # seed of the first mutation (the standard one); mutation i uses MUTATE_SEED + i - 1
JOB=history
DEST_NAME=bench
RETAIN=9999                    # the job's manual schedule keeps every snapshot (the default keeps 14)

BENCH_FILES=${BENCH_FILES:-${N:-100000}}
BENCH_SNAPSHOTS=${BENCH_SNAPSHOTS:-${SNAPSHOTS:-100}}
BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_COLD_RUNS=${BENCH_COLD_RUNS:-3}
BENCH_QUERY_BUDGET=${BENCH_QUERY_BUDGET:-120}
BENCH_FIND_PATTERN=${BENCH_FIND_PATTERN:-a*.csv}
BENCH_RESTIC=${BENCH_RESTIC:-1}
BENCH_REUSE=${BENCH_REUSE:-0}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
BENCH_BUILD=${BENCH_BUILD:-0}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}
BENCH_DROP=op                  # lib.sh's drop_caches: drop when asked

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
check_bench_files
S=$BENCH_SNAPSHOTS
if ! [[ $S =~ ^[0-9]+$ ]] || (( S < 2 || S > RETAIN )); then
    die "SNAPSHOTS must be an integer from 2 to $RETAIN (got '$S')"
fi
for v in BENCH_RUNS BENCH_COLD_RUNS BENCH_QUERY_BUDGET; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( BENCH_RUNS >= 1 )) || die "BENCH_RUNS must be >= 1"
[[ -n $BENCH_FIND_PATTERN && $BENCH_FIND_PATTERN != */* ]] || die "BENCH_FIND_PATTERN must be a name pattern (no /)"
for v in BENCH_RESTIC BENCH_REUSE BENCH_WARM; do
    case ${!v} in 0 | 1) ;; *) die "$v must be 0 or 1" ;; esac
done
[[ -n ${EPOCHREALTIME:-} ]] || die "bash >= 5 is required (EPOCHREALTIME)"
TOOLS=(hindsight)
(( BENCH_RESTIC )) && TOOLS+=(restic)

# ---------------------------------------------------------------- binaries and tools
build_release
resolve_binaries
pkgs=(/usr/bin/time:time)
(( BENCH_RESTIC )) && pkgs+=(restic:restic)
ensure_packages "${pkgs[@]}"

# ---------------------------------------------------------------- work dir
bench_workdir
H=$W/history
RUN=$H/run
HS=$H/hindsight
RREPO=$H/restic
SRC=$H/src                     # a cp -a copy of the corpus, mutated SNAPSHOTS times (the shared corpus stays pristine)
SOCK=$H/hsd.sock
bench_lock history.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$H/hindsightd.pid
CHECK_FAILED=0

install_traps daemon_run_cleanup

pause_trash_deletions
stop_leftover_daemon "$HSD_PIDFILE" "$HS/state"
# BENCH_REUSE=1: the previous run's snapshots, source copy, restic repository and generation
# figures stay, its query results go. Otherwise its trees go (deleted in the background at the end).
declare -A OLD=()
if (( BENCH_REUSE )); then
    if [[ -f $RUN/meta.tsv ]]; then
        while IFS=$'\t' read -r k v; do OLD[$k]=$v; done <"$RUN/meta.tsv"
    fi
    if [[ ${OLD[files]:-} != "$N" || ${OLD[snapshots]:-} != "$S" || -z ${OLD[generation_s]:-} ]] \
        || [[ ! -f $RUN/generation.tsv || ! -f $RUN/track.pickle || ! -d $HS/state || ! -d $SRC ]] \
        || { (( BENCH_RESTIC )) && [[ ! -d $RREPO || ${OLD[tools]:-} != *restic* ]]; }; then
        die "BENCH_REUSE=1: $H holds no complete run with N=$N and SNAPSHOTS=$S$( (( BENCH_RESTIC )) && echo ', restic included') to reuse (run once without BENCH_REUSE)"
    fi
    log "reusing the $S snapshots of run ${OLD[run_id]} (${OLD[date]}); its query results go to the trash"
    mv -- "$RUN" "$H/run.reused"
    mkdir -p "$RUN"
    cp -p -- "$H/run.reused/generation.tsv" "$H/run.reused/track.pickle" "$RUN/"
    to_trash "$H/run.reused"
    to_trash "$CORPUS.partial"
else
    for d in "$H" "$CORPUS.partial"; do to_trash "$d"; done
fi
mkdir -p "$RUN" "$HS/state" "$HS/dest" "$H/bin"

# a private copy: the release build may be rebuilt by someone else while this runs
cp -p -- "$HINDSIGHTD" "$H/bin/hindsightd"
cp -p -- "$HINDSIGHT" "$H/bin/hindsight"
HINDSIGHTD=$H/bin/hindsightd HINDSIGHT=$H/bin/hindsight
for c in versions find diff; do
    "$HINDSIGHT" "$c" --help >/dev/null 2>&1 || die "$HINDSIGHT has no '$c' command (an older build?)"
done

RESULTS=$RUN/results.jsonl     # the timed queries (one JSON object per run)
: >"$RESULTS"
GENTSV=$RUN/generation.tsv     # one line per snapshot: what its mutation and backups took
if (( ! BENCH_REUSE )); then
    printf 'snapshot\tseed\tmutate_s\ttrack_s\thindsight_s\thindsight_cpu_s\trestic_s\trestic_cpu_s\trestic_rss_kib\tload1\n' >"$GENTSV"
fi
META=$RUN/meta.tsv
: >"$META"
TRACK=$RUN/track.py
cat >"$TRACK" <<'PY'
"""What each mutation did to each regular file, from `find -printf '%s\t%T@\t%P\0'` listings.

track.py update STATE I  (listing on stdin): after mutation I, record each file's size and mtime;
    a size that differs from the listing of I-1 counts as a content change, an mtime alone as a touch
track.py pick STATE S: the file for `versions`: in all S snapshots, a plain name, the most content
    changes (then the fewest touches, then the path); prints PATH, CHANGES, TOUCHES, FIRST, LAST
"""
import os
import pickle
import re
import sys

mode, state = sys.argv[1], sys.argv[2]
if mode == "update":
    i = int(sys.argv[3])
    st = {}
    if i > 1:
        with open(state, "rb") as f:
            st = pickle.load(f)
    for rec in sys.stdin.buffer.read().split(b"\0"):
        if not rec:
            continue
        size, mtime, path = rec.split(b"\t", 2)
        size = int(size)
        s = st.get(path)
        if s is None or s[3] != i - 1:
            st[path] = [size, mtime, i, i, 0, 0]       # size, mtime, first, last, changes, touches
            continue
        if size != s[0]:
            s[4] += 1
        elif mtime != s[1]:
            s[5] += 1
        s[0], s[1], s[3] = size, mtime, i
    with open(state + ".tmp", "wb") as f:
        pickle.dump(st, f)
    os.replace(state + ".tmp", state)
elif mode == "pick":
    n = int(sys.argv[3])
    with open(state, "rb") as f:
        st = pickle.load(f)
    plain = re.compile(rb"^[A-Za-z0-9._/-]+$")
    cands = [(p, s) for p, s in st.items() if s[3] == n and plain.match(p)]
    everywhere = [(p, s) for p, s in cands if s[2] == 1]
    cands = everywhere or cands
    if not cands:
        sys.exit("no regular file with a plain name in the last snapshot")
    p, s = min(cands, key=lambda x: (-x[1][4], x[1][5], x[0]))
    print("\t".join([p.decode(), str(s[4]), str(s[5]), str(s[2]), str(s[3])]))
PY

# ---------------------------------------------------------------- corpus
if (( BENCH_REUSE )); then
    CORPUS_BYTES=${OLD[corpus_bytes]} FINGERPRINT=${OLD[corpus_fingerprint]}
else
    corpus_check
    # the copy; the hindsight destination: one copy, what the mutations write (about 2% of the corpus each),
    # each snapshot's directories (4 KiB each, one per 20 entries) and index (about 250 B per entry);
    # restic: about 0.7 of the corpus and its share of the mutations
    copies=$(( 3 + S * 4 / 100 ))
    (( corpus_ok )) || copies=$(( copies + 1 ))
    check_space $(( copies * CORPUS_BYTES + S * N * 500 + (1 << 30) )) $(( (copies + 1) * N + S * N / 10 )) \
        "~$copies copies of a ~$(( CORPUS_BYTES >> 20 )) MiB corpus and $S snapshots' directories and indexes" \
        "Use fewer SNAPSHOTS or a smaller N."
    corpus_generate "$RUN"
fi

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta files "$N"
meta snapshots "$S"
meta corpus "$CORPUS"
meta corpus_bytes "$CORPUS_BYTES"
meta corpus_seed "$CORPUS_SEED"
meta corpus_fingerprint "$FINGERPRINT"
meta mutate_seed "$MUTATE_SEED"
meta source "$SRC"
meta find_pattern "$BENCH_FIND_PATTERN"
meta warm_runs "$BENCH_RUNS"
meta cold_runs "$BENCH_COLD_RUNS"
meta query_budget_s "$BENCH_QUERY_BUDGET"
meta tools "${TOOLS[*]}"
meta bench_dir "$W"
meta_machine
meta uptime_start "$(uptime)"
meta hindsightd "$HINDSIGHTD"
meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
meta git_dirty "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l) modified tracked files"
(( BENCH_RESTIC )) && meta restic_version "$(restic version 2>/dev/null | sed -n 1p)"

if (( BENCH_REUSE )); then
    meta generation_reused "snapshots of run ${OLD[run_id]} (${OLD[date]}; hindsightd of ${OLD[hindsightd_mtime]}, commit ${OLD[git_commit]})"
    for k in copy_s generation_s generation_uptime_start; do
        [[ -z ${OLD[$k]:-} ]] || meta "$k" "${OLD[$k]}"
    done
    [[ -n ${OLD[generation_uptime_start]:-} ]] || meta generation_uptime_start "${OLD[uptime_start]:-}"
else
    log "copying the corpus to $SRC (cp -a; the mutations go there)"
    t0=$EPOCHREALTIME
    cp -a -- "$CORPUS" "$SRC"
    meta copy_s "$(elapsed "$t0" "$EPOCHREALTIME")"
fi

damon_pause
if (( BENCH_COLD_RUNS )); then
    drop_caches_init
    if (( DROP_OK )); then meta drop "before each cold run: sync; echo 3 > /proc/sys/vm/drop_caches"; else BENCH_COLD_RUNS=0; fi
fi

# ---------------------------------------------------------------- daemon, destination, job, repository
start_daemon "$HS/state" "$SOCK" --no-mount
log "hindsightd ready (pid $HSD_PID)"
setup() { hs "$@" >>"$RUN/setup.log" 2>&1 || { tail_log "$RUN/setup.log"; die "hindsight $* failed"; }; }
if (( ! BENCH_REUSE )); then
    setup destination add "$DEST_NAME" --type local --path "$HS/dest"
    setup job add "$JOB" --source "$SRC" --destination "$DEST_NAME" --schedule manual --retain "$RETAIN"
fi
if (( BENCH_RESTIC )); then
    export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$H/restic-cache
    RARGV=(restic -r "$RREPO")
    if (( ! BENCH_REUSE )); then
        "${RARGV[@]}" init >"$RUN/restic-init.log" 2>&1 || { tail_log "$RUN/restic-init.log"; die "restic init failed"; }
    fi
fi
warn_if_busy "the query times will be noisy"
if [[ $BENCH_WARM == 1 ]] && (( ! BENCH_REUSE )); then
    log "reading the copy once to warm the page cache (BENCH_WARM=0 to skip)"
    tar -C "$H" -cf - src | cat >/dev/null
    meta cache warm
fi

# ---------------------------------------------------------------- 1. the snapshots
# gen_one I: mutation I (seed MUTATE_SEED + I - 1), what it changed (for the versions check),
# then `hindsight job run --wait` and `restic backup` of the same tree
gen_one() {
    local i=$1 seed=$(( MUTATE_SEED + $1 - 1 )) t0 t1 t2 t3 t4 c0 c1 load rw=- rc=- rr=-
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$EPOCHREALTIME
    echo "== snapshot $i: mutate.py --seed $seed" >>"$RUN/mutate.log"
    python3 "$MUTATE" "$SRC" --seed "$seed" >>"$RUN/mutate.log" 2>&1 || { tail_log "$RUN/mutate.log"; die "mutate.py --seed $seed failed"; }
    t1=$EPOCHREALTIME
    find "$SRC" -type f -printf '%s\t%T@\t%P\0' | python3 "$TRACK" update "$RUN/track.pickle" "$i" \
        || die "track.py update $i failed"
    t2=$EPOCHREALTIME
    check_daemon
    c0=$(daemon_ticks)
    echo "== snapshot $i" >>"$RUN/backup-hindsight.log"
    if ! hs job run "$JOB" --wait >>"$RUN/backup-hindsight.log" 2>&1 </dev/null; then
        tail_log "$RUN/backup-hindsight.log"
        tail_log "$HSD_LOG" 30
        die "hindsight job run $JOB (snapshot $i) failed"
    fi
    check_daemon
    c1=$(daemon_ticks)
    t3=$EPOCHREALTIME
    if (( BENCH_RESTIC )); then
        echo "== snapshot $i" >>"$RUN/backup-restic.log"
        /usr/bin/time -f '%e %U %S %M' -o "$RUN/time-restic-backup.txt" "${RARGV[@]}" backup "$SRC" \
            >>"$RUN/backup-restic.log" 2>&1 </dev/null || { tail_log "$RUN/backup-restic.log"; die "restic backup (snapshot $i) failed"; }
        read -r rw rc rr < <(awk '{ printf "%.3f %.3f %d\n", $1, $2 + $3, $4 }' "$RUN/time-restic-backup.txt")
    fi
    t4=$EPOCHREALTIME
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$seed" "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" \
        "$(elapsed "$t2" "$t3")" "$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')" \
        "$rw" "$rc" "$rr" "$load" >>"$GENTSV"
    log "  snapshot $i/$S: mutate $(elapsed "$t0" "$t1") s, hindsight $(elapsed "$t2" "$t3") s$( (( BENCH_RESTIC )) && echo ", restic $rw s"), load $load"
}

if (( ! BENCH_REUSE )); then
    log "generating $S snapshots: mutate.py, then hindsight job run $JOB --wait$( (( BENCH_RESTIC )) && echo ' and restic backup'), $S times"
    meta generation_uptime_start "$(uptime)"
    GEN_T0=$EPOCHREALTIME
    for (( i = 1; i <= S; i++ )); do
        gen_one "$i"
        if (( i == 1 || i % 10 == 0 )) && (( i < S )); then
            log "  $(awk -v a="$GEN_T0" -v b="$EPOCHREALTIME" -v i="$i" -v n="$S" 'BEGIN { printf "%.0f s so far, about %.0f s to go", b - a, (b - a) / i * (n - i) }')"
        fi
    done
    GEN_S=$(elapsed "$GEN_T0" "$EPOCHREALTIME")
    meta generation_s "$GEN_S"
    log "generated $S snapshots in $GEN_S s"
fi

# ---------------------------------------------------------------- 2. what the queries ask
hs snapshot list --job "$JOB" --json >"$RUN/snapshots.json" 2>"$RUN/snapshots.err" \
    || { tail_log "$RUN/snapshots.err"; die "hindsight snapshot list --job $JOB failed"; }
read -r hs_count HS_A HS_B < <(python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import benchutil as b
ids = sorted(s["id"] for s in b.load_list(sys.argv[2], "snapshots"))
print(len(ids), *(ids[-2:] if len(ids) >= 2 else ["-", "-"]))' "$SCRIPT_DIR" "$RUN/snapshots.json")
(( hs_count == S )) || die "hindsight lists $hs_count snapshots of job $JOB, not $S (retention? see $RUN/snapshots.json)"
meta hindsight_diff_ids "$HS_A $HS_B"
if (( BENCH_RESTIC )); then
    "${RARGV[@]}" snapshots --json >"$RUN/restic-snapshots.json" 2>"$RUN/restic-snapshots.err" \
        || { tail_log "$RUN/restic-snapshots.err"; die "restic snapshots failed"; }
    read -r r_count R_A R_B < <(python3 -c '
import json, sys
s = sorted(json.load(open(sys.argv[1])) or [], key=lambda x: x["time"])
print(len(s), *([x["short_id"] for x in s[-2:]] if len(s) >= 2 else ["-", "-"]))' "$RUN/restic-snapshots.json")
    (( r_count == S )) || die "restic lists $r_count snapshots, not $S (see $RUN/restic-snapshots.json)"
    meta restic_diff_ids "$R_A $R_B"
    meta restic_repo_bytes "$(du -sb "$RREPO" | cut -f1)"
fi
meta index_bytes_total "$(find "$HS/dest" -mindepth 2 -maxdepth 4 -name index.sqlite -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"

IFS=$'\t' read -r rel changes touches first last < <(python3 "$TRACK" pick "$RUN/track.pickle" "$S") \
    || die "could not pick a file for versions"
VFILE=$SRC/$rel
meta versions_file "$VFILE"
meta versions_content_changes "$changes"
meta versions_touches "$touches"
meta versions_in_snapshots "$first-$last"
log "versions of $VFILE: $changes content change(s) and $touches touch(es) after the first snapshot, in snapshots $first-$last"

# ---------------------------------------------------------------- 3. the queries
# hs_query PHASE OUT ARGS...: one `hindsight ARGS...`, timed. Wall: EPOCHREALTIME around the
# CLI (µs, /usr/bin/time -v gives 10 ms), as the user sees it; cpu: the daemon's utime+stime (it
# answers) plus the CLI's; peak: the daemon's VmHWM, reset first (clear_refs). As peer_timed:
# sync and a quiet disk first.
hs_query() {
    local phase=$1 out=$2
    shift 2
    local tf=$RUN/time-$phase-hindsight.txt err=$RUN/$phase-hindsight.err
    check_daemon
    sync
    wait_disk_quiet
    local hwm_note="VmHWM of this query"
    echo 5 >"/proc/$HSD_PID/clear_refs" 2>/dev/null || hwm_note="VmHWM since daemon start (clear_refs refused)"
    local load c0 c1 t0 t1 rc=0
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$phase: hindsight $*"
    c0=$(daemon_ticks)
    t0=$EPOCHREALTIME
    /usr/bin/time -v -o "$tf" "$HINDSIGHT" --socket "$SOCK" "$@" >"$out" 2>"$err" </dev/null || rc=$?
    t1=$EPOCHREALTIME
    check_daemon
    c1=$(daemon_ticks)
    if (( rc != 0 )); then
        tail_log "$err"
        tail_log "$HSD_LOG" 20
        die "hindsight $* ($phase) failed with exit status $rc"
    fi
    local wall cli_wall cli_cpu cli_rss dcpu cpu hwm
    wall=$(elapsed "$t0" "$t1")
    read -r cli_wall cli_cpu cli_rss _ < <(py gnutime "$tf")
    dcpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    cpu=$(awk -v a="$dcpu" -v b="$cli_cpu" 'BEGIN { printf "%.3f", a + b }')
    hwm=$(daemon_vm VmHWM)
    log "  wall ${wall} s, cpu ${cpu} s (daemon ${dcpu} s), daemon VmHWM $(( hwm / 1024 )) MiB, output $(stat -c %s "$out") B"
    py record "$RESULTS" "$phase" hindsight "$wall" "$cpu" "$hwm" "hindsight $*" \
        "{\"load1\": $load, \"daemon_cpu_s\": $dcpu, \"cli_cpu_s\": $cli_cpu, \"cli_wall_s\": $cli_wall, \"cli_peak_rss_mib\": $(( cli_rss / 1024 )), \"note\": $(jstr "$hwm_note")}"
}

# query Q TOOL PHASE OUT: one run of query Q (versions, find, diff) by TOOL
query() {
    local q=$1 tool=$2 phase=$3 out=$4
    if [[ $tool == hindsight ]]; then
        case $q in
            versions) hs_query "$phase" "$out" versions "$VFILE" --job "$JOB" --json ;;
            find) hs_query "$phase" "$out" find "$BENCH_FIND_PATTERN" --job "$JOB" --json ;;
            diff) hs_query "$phase" "$out" diff "$HS_A" "$HS_B" --json ;;
        esac
    else
        case $q in
            find) peer_timed "$phase" restic "$out" "all $S snapshots" "${RARGV[@]}" find --json "$BENCH_FIND_PATTERN" ;;
            diff) peer_timed "$phase" restic "$out" "snapshots $R_A $R_B" "${RARGV[@]}" diff --json "$R_A" "$R_B" ;;
        esac
    fi
}

# measure Q TEMP RUNS: RUNS timed runs of Q by each tool, alternating (cold: the caches dropped
# before each run); a tool's runs stop early once they took BENCH_QUERY_BUDGET s
measure() {
    local q=$1 temp=$2 runs=$3 r tool t0
    local -a tools=("${TOOLS[@]}")
    [[ $q == versions ]] && tools=(hindsight)
    local -A spent=() stopped=()
    for (( r = 1; r <= runs; r++ )); do
        for tool in "${tools[@]}"; do
            if (( r > 1 )) && awk -v s="${spent[$tool]:-0}" -v b="$BENCH_QUERY_BUDGET" 'BEGIN { exit !(s > b) }'; then
                if [[ -z ${stopped[$tool]:-} ]]; then
                    warn "$q $temp ($tool): $(( r - 1 )) run(s) took ${spent[$tool]} s, over BENCH_QUERY_BUDGET=$BENCH_QUERY_BUDGET s: no more runs"
                    meta "budget_${q}_${temp}_$tool" "stopped after $(( r - 1 )) run(s), ${spent[$tool]} s"
                    stopped[$tool]=1
                fi
                continue
            fi
            [[ $temp == cold ]] && drop_caches
            t0=$EPOCHREALTIME
            query "$q" "$tool" "$q-$temp" "$RUN/out-$q-$temp-$tool-$r.json"
            spent[$tool]=$(awk -v s="${spent[$tool]:-0}" -v d="$(elapsed "$t0" "$EPOCHREALTIME")" 'BEGIN { printf "%.3f", s + d }')
        done
    done
}

meta loadavg_queries_start "$(cut -d' ' -f1-3 /proc/loadavg)"
warn_if_busy "the query times will be noisy"
for q in versions find diff; do
    if (( BENCH_COLD_RUNS )); then
        measure "$q" cold "$BENCH_COLD_RUNS"
    fi
    # one untimed run of each tool: the indexes (and restic's cache) in the page cache
    for tool in "${TOOLS[@]}"; do
        [[ $q == versions && $tool != hindsight ]] && continue
        log "$q: an untimed run of $tool first (warm caches)"
        query "$q" "$tool" "$q-warmup" "$RUN/out-$q-warmup-$tool.json"
    done
    measure "$q" warm "$BENCH_RUNS"
done

# ---------------------------------------------------------------- 4. report
check_daemon
if grep -qiE '(^|[^a-z])(error|panic)' "$HSD_LOG"; then
    meta log_errors "$(grep -ciE '(^|[^a-z])(error|panic)' "$HSD_LOG") lines, first: $(grep -iE '(^|[^a-z])(error|panic)' "$HSD_LOG" | head -n 1 | cut -c1-200)"
fi
stop_daemon
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta uptime_end "$(uptime)"
rc=0
python3 - "$SCRIPT_DIR" "$RUN" "$W/results-history.json" "$W/results" <<'PY' || rc=$?
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import benchutil as b

run, json_out, archive_dir = sys.argv[2:5]
# targets from the issue (19), in seconds of wall time
TARGETS = (("versions", "warm", 0.2), ("versions", "cold", 2.0), ("find", "warm", 1.0), ("diff", "warm", 1.0))
meta = b.read_meta(os.path.join(run, "meta.tsv"))
rows = b.read_jsonl(os.path.join(run, "results.jsonl"))
snaps = int(meta["snapshots"])
tools = meta["tools"].split()


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


# ---- generation
gen = []
with open(os.path.join(run, "generation.tsv")) as f:
    head = f.readline().rstrip("\n").split("\t")
    for line in f:
        gen.append({k: b.num(v) for k, v in zip(head, line.rstrip("\n").split("\t"))})


def gsum(key, rows_):
    vals = [r[key] for r in rows_ if isinstance(r.get(key), float)]
    return round(sum(vals), 3) if vals else None


def gmed(key, rows_):
    vals = [r[key] for r in rows_ if isinstance(r.get(key), float)]
    return round(b.median(vals), 3) if vals else None


generation = {"snapshots": len(gen), "wall_s": b.num(meta.get("generation_s")), "mutate_s": gsum("mutate_s", gen),
              "track_s": gsum("track_s", gen), "per_snapshot": gen}
for tool in tools:
    k = f"{tool}_s"
    generation[tool] = {"first_s": gen[0].get(k) if gen else None, "first_cpu_s": gen[0].get(f"{tool}_cpu_s") if gen else None,
                        "later_median_s": gmed(k, gen[1:]), "later_median_cpu_s": gmed(f"{tool}_cpu_s", gen[1:]),
                        "total_s": gsum(k, gen), "total_cpu_s": gsum(f"{tool}_cpu_s", gen)}

# ---- queries
queries = {}
for q in ("versions", "find", "diff"):
    for tool in tools:
        if q == "versions" and tool != "hindsight":
            continue
        for temp in ("warm", "cold"):
            rs = [r for r in rows if r["phase"] == f"{q}-{temp}" and r["tool"] == tool]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs if r.get("wall_s") is not None]
            cpus = [r["cpu_s"] for r in rs if r.get("cpu_s") is not None]
            peaks = [r["peak_rss_mib"] for r in rs if r.get("peak_rss_mib") is not None]
            one = {"runs": len(rs), "runs_wall_s": walls, "median_wall_s": b.median(walls),
                   "min_wall_s": min(walls) if walls else None, "max_wall_s": max(walls) if walls else None,
                   "median_cpu_s": b.median(cpus), "peak_rss_mib": max(peaks) if peaks else None,
                   "out_bytes": size(os.path.join(run, f"out-{q}-{temp}-{tool}-1.json")), "load1": [r.get("load1") for r in rs],
                   "command": rs[0].get("command")}
            if tool == "hindsight":
                one["median_daemon_cpu_s"] = b.median([r["daemon_cpu_s"] for r in rs if r.get("daemon_cpu_s") is not None])
            queries.setdefault(q, {}).setdefault(tool, {})[temp] = one

ratios_wall, ratios_cpu = {}, {}
for q in ("find", "diff"):
    for temp in ("warm", "cold"):
        h = queries.get(q, {}).get("hindsight", {}).get(temp)
        r = queries.get(q, {}).get("restic", {}).get(temp)
        if h and r:
            ratios_wall[f"{q}_{temp}"] = b.ratio(h["median_wall_s"], r["median_wall_s"])
            ratios_cpu[f"{q}_{temp}"] = b.ratio(h["median_cpu_s"], r["median_cpu_s"])

targets = {}
for q, temp, limit in TARGETS:
    h = queries.get(q, {}).get("hindsight", {}).get(temp)
    targets[f"{q}_{temp}_s"] = b.target(h and h["median_wall_s"], limit,
                                        label=f"hindsight {q} ({temp}, median of {h['runs'] if h else 0})")

# ---- what the answers say (the first warm run of each)
checks = {}
problems = []
out = lambda q, tool: os.path.join(run, f"out-{q}-warm-{tool}-1.json")
v = load(out("versions", "hindsight"))
if isinstance(v, list):
    changes, touches = int(meta["versions_content_changes"]), int(meta["versions_touches"])
    first, last = (int(x) for x in meta["versions_in_snapshots"].split("-"))
    in_snaps = sum(len(x.get("snapshots", [])) for x in v)
    c = {"file": meta["versions_file"], "versions": len(v), "snapshots": in_snaps,
         "expected_versions": f"{1 + changes}" + (f"-{1 + changes + touches}" if touches else ""),
         "expected_snapshots": last - first + 1}
    # a rewrite to the same size counts as a touch here: between 1 + changes and 1 + changes + touches
    c["ok"] = 1 + changes <= len(v) <= 1 + changes + touches and in_snaps == last - first + 1
    checks["versions"] = c
    if not c["ok"]:
        problems.append(f"versions: {len(v)} versions in {in_snaps} snapshots, expected {c['expected_versions']} in {c['expected_snapshots']}")
f = load(out("find", "hindsight"))
if isinstance(f, list):
    c = {"pattern": meta["find_pattern"], "hindsight_paths": len(f),
         "hindsight_path_snapshots": sum(len(m.get("snapshots", [])) for m in f)}
    rf = load(out("find", "restic"))
    if isinstance(rf, dict):
        rf = [rf]
    if isinstance(rf, list):
        paths = set()
        hits = 0
        for snap in rf:
            for m in snap.get("matches") or []:
                paths.add(m.get("path"))
            hits += int(snap.get("hits") or len(snap.get("matches") or []))
        c.update({"restic_paths": len(paths), "restic_path_snapshots": hits})
        c["ok"] = c["restic_paths"] == c["hindsight_paths"] and hits == c["hindsight_path_snapshots"]
        if not c["ok"]:
            problems.append(f"find: hindsight {c['hindsight_paths']} paths / {c['hindsight_path_snapshots']} (path, snapshot) "
                            f"pairs, restic {len(paths)} / {hits}")
    checks["find"] = c
d = load(out("diff", "hindsight"))
if isinstance(d, dict):
    whats = {}
    for e in d.get("entries", []):
        if e.get("change") == "changed":
            key = "+".join(e.get("what") or ["?"])
            whats[key] = whats.get(key, 0) + 1
    c = {"hindsight_ids": meta.get("hindsight_diff_ids"), "hindsight_added": d.get("added"),
         "hindsight_removed": d.get("removed"), "hindsight_changed": d.get("changed"), "hindsight_changed_by_what": whats}
    stats = [x for x in load_lines(out("diff", "restic")) if x.get("message_type") == "statistics"]
    if stats:
        s = stats[-1]
        n = lambda side: sum(int((s.get(side) or {}).get(k) or 0) for k in ("files", "dirs", "others"))
        c.update({"restic_ids": meta.get("restic_diff_ids"), "restic_added": n("added"), "restic_removed": n("removed"),
                  "restic_changed_files": s.get("changed_files")})
        c["ok"] = c["restic_added"] == c["hindsight_added"] and c["restic_removed"] == c["hindsight_removed"]
        if not c["ok"]:
            problems.append(f"diff: hindsight +{c['hindsight_added']} -{c['hindsight_removed']}, "
                            f"restic +{c['restic_added']} -{c['restic_removed']}")
    checks["diff"] = c

result = {"benchmark": "history", "meta": meta, "generation": generation, "queries": queries,
          "ratios_wall": ratios_wall, "ratios_cpu": ratios_cpu, "targets": targets, "checks": checks,
          "check_problems": problems}

# ---- print
files, cb = meta.get("files"), meta.get("corpus_bytes")
print()
print(f"hindsight history benchmark: {files:,} files" + (f" ({cb / 2**30:.2f} GiB)" if isinstance(cb, int) else "")
      + f", {snaps} snapshots of one job, {meta.get('bench_dir', '?')}, {meta.get('date', '')}")
for k in ("uptime_start", "uptime_end"):
    if meta.get(k):
        print(f"{k.replace('_', ' ')}: {meta[k].strip()}")
print()
g = generation
if meta.get("generation_reused"):
    print(f"generation reused (BENCH_REUSE=1): {meta['generation_reused']}")
print(f"generation of the {snaps} snapshots: {b.fmt(g['wall_s'], 0)} s in all (mutate.py {b.fmt(g['mutate_s'], 0)} s, "
      f"tracking the changes {b.fmt(g['track_s'], 0)} s)")
for tool in tools:
    t = g[tool]
    print(f"  {tool:9} first (full) {b.fmt(t['first_s'])} s (cpu {b.fmt(t['first_cpu_s'])} s), later ones median "
          f"{b.fmt(t['later_median_s'])} s (cpu {b.fmt(t['later_median_cpu_s'])} s), all {b.fmt(t['total_s'], 0)} s")
ib, rb = b.num(meta.get("index_bytes_total")), b.num(meta.get("restic_repo_bytes"))
if ib:
    print(f"  hindsight indexes: {ib / 2**20:.0f} MiB in all ({ib / snaps / 2**20:.1f} MiB per snapshot)"
          + (f"; restic repository {rb / 2**20:.0f} MiB" if rb else ""))
print()
cols = ("query", "tool", "warm median s", "runs", "min-max s", "cold median s", "runs", "cpu s (warm)", "peak MiB", "output KiB")
table = []
for q in ("versions", "find", "diff"):
    for tool in tools:
        e = queries.get(q, {}).get(tool)
        if not e:
            continue
        w, c = e.get("warm") or {}, e.get("cold") or {}
        table.append((q, tool, b.fmt(w.get("median_wall_s"), 3), str(w.get("runs", "-")),
                      f"{b.fmt(w.get('min_wall_s'), 3)}-{b.fmt(w.get('max_wall_s'), 3)}" if w else "-",
                      b.fmt(c.get("median_wall_s"), 3), str(c.get("runs", "-")), b.fmt(w.get("median_cpu_s"), 3),
                      b.fmt(w.get("peak_rss_mib"), 1), b.fmt((w.get("out_bytes") or 0) / 1024, 1)))
b.print_table(cols, table, ("<", "<", ">", ">", ">", ">", ">", ">", ">", ">"), gap=lambda i, r: r[0] != table[i - 1][0])
print()
print(f"  versions {meta['versions_file']} --job; find {meta['find_pattern']!r} --job (all {snaps} snapshots);")
print(f"  diff of the last two snapshots (hindsight {meta.get('hindsight_diff_ids', '?')}"
      + (f", restic {meta.get('restic_diff_ids')}" if meta.get("restic_diff_ids") else "") + ")")
print("  hindsight: wall of the CLI (EPOCHREALTIME); cpu = hindsightd's utime+stime + the CLI's; peak = hindsightd's")
print("  VmHWM, reset before each query. restic: /usr/bin/time -v (cpu of restic, peak = its max RSS), local repository.")
print("  cold: sync; echo 3 > /proc/sys/vm/drop_caches before each run; warm: after an untimed run")
print()
if ratios_wall:
    print("ratios hindsight / restic (medians of this run)")
    for k, val in ratios_wall.items():
        print(f"  {k.replace('_', ' '):12} wall {b.fmt(val, 3):>7}   cpu {b.fmt(ratios_cpu.get(k), 3):>7}")
    print()
print("targets (issue 19)")
for t in targets.values():
    print(f"  {t['label']:44} {b.fmt(t['value'], 3):>8} s   target <= {t['target_max']} s   {b.pass_word(t['pass'])}")
print()
print("checks (the first warm answer of each)")
for k, c in checks.items():
    ok = c.get("ok")
    print(f"  {k:8} " + ", ".join(f"{kk} {vv}" for kk, vv in c.items() if kk != "ok")
          + ("" if ok is None else ("  ok" if ok else "  MISMATCH")))
for k in ("log_errors",) + tuple(k for k in meta if k.startswith("budget_")):
    if meta.get(k):
        print(f"  {k.replace('_', ' ')}: {meta[k]}")

b.write_results(result, json_out, archive_dir, "history")
sys.exit(3 if problems else 0)
PY
if (( rc == 3 )); then
    CHECK_FAILED=1
elif (( rc != 0 )); then
    die "the report failed (exit status $rc); the measurements are in $RESULTS and $GENTSV"
fi

if (( CHECK_FAILED )); then
    warn "an answer does not match what the mutations did or what restic found (see the checks above and $RUN/out-*.json)"
    exit 3
fi
log "done; $H (the mutated copy, the destination with its $S snapshots, the restic repository, the logs in $RUN) stays until the next run moves it to $TRASH"
