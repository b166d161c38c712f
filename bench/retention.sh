#!/usr/bin/env bash
# bench/retention.sh: deleting a snapshot through Hindsight (the path retention
# takes: rename to .deleting-*, then the background deleter) against `rm -rf`
# of the same kind of tree, and how much a backup running at the same time
# slows down under each (issue 4, target: at most 20% slower).
#
# usage:  cargo build --release --workspace && bench/retention.sh
#
# environment knobs (see bench/README.md):
#   BENCH_FILES=100000        entries of the deleted tree (the standard corpus, corpus-N)
#   BENCH_BACKUP_FILES=20000  entries of the corpus backed up while deleting (corpus-M)
#   BENCH_RUNS=3              timed backups per condition (median reported)
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (corpus, trees, logs, results)
#   HINDSIGHTD, HINDSIGHT     binaries (default ${CARGO_TARGET_DIR:-target}/release/...)
#   BENCH_WARM=1              read both corpora once before timing (warm page cache)
#   BENCH_DELETE_TIMEOUT=3600 seconds to wait for one deletion to finish
#   BENCH_NO_INSTALL=1        never run apt-get
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

POLL=0.2                       # polling interval for the .deleting-* directory (s)

BENCH_FILES=${BENCH_FILES:-100000}
BENCH_BACKUP_FILES=${BENCH_BACKUP_FILES:-20000}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_DELETE_TIMEOUT=${BENCH_DELETE_TIMEOUT:-3600}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
check_bench_files
NA=$N
if ! [[ $BENCH_BACKUP_FILES =~ ^[0-9]+$ ]] || (( BENCH_BACKUP_FILES < 1000 )); then
    die "BENCH_BACKUP_FILES must be an integer >= 1000 (got '$BENCH_BACKUP_FILES')"
fi
NB=$BENCH_BACKUP_FILES
if ! [[ $BENCH_RUNS =~ ^[0-9]+$ ]] || (( BENCH_RUNS < 1 )); then die "BENCH_RUNS must be an integer >= 1"; fi
[[ $BENCH_DELETE_TIMEOUT =~ ^[0-9]+$ ]] || die "BENCH_DELETE_TIMEOUT must be a number of seconds"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash >= 5 is required (EPOCHREALTIME)"

# ---------------------------------------------------------------- binaries and tools
resolve_binaries
ensure_packages /usr/bin/time:time
RM=$(command -v rm)
CP=$(command -v cp)

# ---------------------------------------------------------------- work dir
bench_workdir
R=$W/retention
RUN=$R/run
HS=$R/hindsight
VICTIMS=$R/victims
SOCK=$HS/hindsightd.sock
bench_lock retention.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$HS/hindsightd.pid
BG_RM_PID=                     # the concurrent `rm -rf` while it runs

cleanup() {
    local rc=$?
    set +e
    if [[ -n $BG_RM_PID ]]; then
        kill -TERM "$BG_RM_PID" 2>/dev/null
        wait "$BG_RM_PID" 2>/dev/null
    fi
    stop_daemon
    # the big trees of this run (snapshots, copies, a deletion that was still going) go to the trash
    to_trash "$VICTIMS"
    to_trash "$HS"
    resume_trash_deletions
    start_trash_deletion
    exit "$rc"
}
install_traps cleanup

pause_trash_deletions
stop_leftover_daemon "$HSD_PIDFILE" "$HS/state"

# move the previous run's trees out of the way (deleted in the background at the end)
to_trash "$R"
to_trash "$W/corpus-$NA.partial"
to_trash "$W/corpus-$NB.partial"
mkdir -p "$RUN" "$HS/state" "$VICTIMS"
RESULTS=$RUN/results.jsonl
: >"$RESULTS"
META=$RUN/meta.tsv
: >"$META"

# ---------------------------------------------------------------- corpora
# use_corpus N: point the lib.sh corpus variables (N, CORPUS, STAMP) at corpus-N
use_corpus() { N=$1; CORPUS=$W/corpus-$N; STAMP=$W/corpus-$N.stamp; }

use_corpus "$NB"
corpus_check
B_OK=$corpus_ok B_BYTES=$CORPUS_BYTES
use_corpus "$NA"
corpus_check
A_BYTES=$CORPUS_BYTES
# the deleted trees: snapshot A and a cp -a copy, then one or two copies and snapshots at a
# time (what is left of them waits for the trash); the backed-up corpus: up to
# 4 * BENCH_RUNS full backups (more when pairs are repeated), one fresh destination each
copies=4
(( corpus_ok )) || copies=$(( copies + 1 ))
b_copies=$(( 4 * BENCH_RUNS + 2 ))
(( B_OK )) || b_copies=$(( b_copies + 1 ))
check_space $(( copies * A_BYTES + b_copies * B_BYTES + (1 << 30) )) \
    $(( (copies + 1) * NA * 21 / 20 + (b_copies + 1) * NB * 21 / 20 )) \
    "$copies copies of a ~$(( A_BYTES >> 20 )) MiB corpus and $b_copies of a ~$(( B_BYTES >> 20 )) MiB one" \
    "Use smaller BENCH_FILES / BENCH_BACKUP_FILES or fewer BENCH_RUNS."
corpus_generate "$RUN"
CORPUS_A=$CORPUS A_BYTES=$CORPUS_BYTES A_FP=$FINGERPRINT
use_corpus "$NB"
corpus_check
corpus_generate "$RUN"
CORPUS_B=$CORPUS B_BYTES=$CORPUS_BYTES B_FP=$FINGERPRINT
use_corpus "$NA"

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta files "$NA"
meta corpus "$CORPUS_A"
meta corpus_bytes "$A_BYTES"
meta corpus_fingerprint "$A_FP"
meta backup_files "$NB"
meta backup_corpus "$CORPUS_B"
meta backup_corpus_bytes "$B_BYTES"
meta backup_corpus_fingerprint "$B_FP"
meta corpus_seed "$CORPUS_SEED"
meta runs "$BENCH_RUNS"
meta poll_s "$POLL"
meta bench_dir "$W"
meta_machine
meta io_scheduler "$(d=$(findmnt -n -o SOURCE -T "$W" 2>/dev/null); d=${d#/dev/}; cat "/sys/block/$d/queue/scheduler" 2>/dev/null || echo unknown)"
meta hindsightd "$HINDSIGHTD"
meta hindsight "$HINDSIGHT"
meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
meta rm_version "$("$RM" --version | sed -n 1p)"

warn_if_busy "the slowdown figures are then unreliable"
if [[ $BENCH_WARM == 1 ]]; then
    log "reading both corpora once to warm the page cache (BENCH_WARM=0 to skip)"
    use_corpus "$NB"; warm_corpus
    use_corpus "$NA"; warm_corpus
    meta cache warm
fi

# ---------------------------------------------------------------- helpers
hs() { "$HINDSIGHT" --socket "$SOCK" "$@"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
entries() { find "$1" | wc -l; }

# snapshot_of JOB: "ID<TAB>PATH" of the job's newest snapshot
snapshot_of() {
    local job=$1 out=$RUN/snapshots-$1.json
    hs snapshot list --job "$job" --json >"$out" 2>"$out.err" || { tail_log "$out.err"; die "hindsight snapshot list --job $job failed"; }
    py snapshot-info "$out" || die "no snapshot of job $job in $out"
}

# make_snapshot JOB: an untimed full backup (the tree to delete)
make_snapshot() {
    local job=$1 out=$RUN/make-$1.log
    log "backup of job $job (untimed: the tree to delete)"
    check_daemon
    hs job run "$job" --wait >"$out" 2>&1 </dev/null || { tail_log "$out"; tail_log "$HSD_LOG" 30; die "hindsight job run $job failed"; }
}

# timed_backup PHASE RUN JOB COND PAIR: one full backup of corpus B to a fresh destination, timed.
# COND is a command that must be true before and after the backup (the deletion is still going).
timed_backup() {
    local phase=$1 i=$2 job=$3 cond=$4 pair=$5
    local tf=$RUN/time-$phase-$i.txt out=$RUN/$phase-$i.log
    check_daemon
    sync
    local overlap=true load t0 t1
    if ! $cond; then overlap=false; fi
    load=$(load1)
    t0=$(daemon_ticks)
    local rc=0
    /usr/bin/time -v -o "$tf" "$HINDSIGHT" --socket "$SOCK" job run "$job" --wait >"$out" 2>&1 </dev/null || rc=$?
    t1=$(daemon_ticks)
    if ! $cond; then overlap=false; fi
    check_daemon
    if (( rc != 0 )); then
        tail_log "$out"
        tail_log "$HSD_LOG" 30
        die "hindsight job run $job ($phase #$i) failed with exit status $rc (output: $out)"
    fi
    local wall cli_cpu cpu summary="{}"
    read -r wall cli_cpu _ < <(py gnutime "$tf")
    cpu=$(awk -v a="$t0" -v b="$t1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    if hs run list --job "$job" --json >"$RUN/runs-$job.json" 2>"$RUN/runs-$job.err"; then
        summary=$(py run-summary "$RUN/runs-$job.json" 2>>"$RUN/runs-$job.err") || summary="{}"
    fi
    log "  $phase #$i: wall ${wall} s, daemon cpu ${cpu} s (load $load)$([[ $overlap == true ]] || echo ', WARNING: the deletion was not going on for the whole backup')"
    [[ $overlap == true ]] || warn "$phase #$i: the deletion ended before the backup did; this run does not count"
    local extra
    extra=$(python3 -c '
import json, sys
e = json.loads(sys.argv[1])
e.update({"run": int(sys.argv[2]), "load1": float(sys.argv[3]), "overlap": sys.argv[4] == "true",
          "cli_cpu_s": float(sys.argv[5]), "job": sys.argv[6], "pair": sys.argv[7],
          "note": "daemon cpu (the deleter thread included)"})
print(json.dumps(e))' "$summary" "$i" "$load" "$overlap" "$cli_cpu" "$job" "$pair")
    py record "$RESULTS" "$phase" hindsight "$wall" "$cpu" "$(daemon_vm VmHWM)" "hindsight job run $job --wait" "$extra"
}

# ---------------------------------------------------------------- daemon, destinations, jobs
start_daemon "$HS/state" "$SOCK" --no-mount
log "hindsightd ready (pid $HSD_PID)"
setup() { hs "$@" >>"$RUN/setup.log" 2>&1 || { tail_log "$RUN/setup.log"; die "hindsight $* failed"; }; }
# job `del`: the corpus to delete (snapshots A, C...); one destination
setup destination add del --type local --path "$HS/dest-del"
setup job add del --source "$CORPUS_A" --destination del
# the timed backups: one job and one fresh destination each, so every one is a full backup.
# Each concurrent phase may need more than BENCH_RUNS attempts (a backup that outlasts the
# deletion does not count): up to 2 * BENCH_RUNS jobs per phase, and as many baselines.
MAX_TRIES=$(( 2 * BENCH_RUNS ))
for (( i = 1; i <= 2 * MAX_TRIES; i++ )); do
    for phase in baseline during-rm during-delete; do
        [[ $phase != baseline ]] && (( i > MAX_TRIES )) && continue
        setup destination add "b-$phase-$i" --type local --path "$HS/dest-b-$phase-$i"
        setup job add "b-$phase-$i" --source "$CORPUS_B" --destination "b-$phase-$i"
    done
done

# timed_sync: seconds one `sync` takes (the discards of freed blocks are paid at the journal
# commit, so a deletion is not over on disk when the last unlink returns)
timed_sync() { local t0=$EPOCHREALTIME; sync; elapsed "$t0" "$EPOCHREALTIME"; }

# ---------------------------------------------------------------- 1. snapshot A and the rm -rf copy
make_snapshot del
IFS=$'\t' read -r SNAP_A_ID SNAP_A_PATH < <(snapshot_of del)
log "snapshot A: id $SNAP_A_ID, $SNAP_A_PATH"
log "cp -a of the corpus (the rm -rf victim: same files, shared with nothing)"
"$CP" -a "$CORPUS_A" "$VICTIMS/copy-alone"

# ---------------------------------------------------------------- 2. rm -rf alone
COPY=$VICTIMS/copy-alone
n=$(entries "$COPY")
meta rm_entries "$n"
log "rm -rf of the cp -a copy ($n entries), alone"
sync
load=$(load1)
tf=$RUN/time-rm-alone.txt
/usr/bin/time -v -o "$tf" "$RM" -rf -- "$COPY" >"$RUN/rm-alone.log" 2>&1 || { tail_log "$RUN/rm-alone.log"; die "rm -rf failed"; }
sync_s=$(timed_sync)
read -r wall cpu rss _ < <(py gnutime "$tf")
log "  rm -rf: ${wall} s ($(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.0f", n / w }') entries/s), cpu ${cpu} s; sync after it ${sync_s} s"
py record "$RESULTS" delete "rm -rf" "$wall" "$cpu" "$rss" "rm -rf COPY" \
    "{\"entries\": $n, \"load1\": $load, \"sync_after_s\": $sync_s, \"note\": \"cp -a copy of the corpus, alone\"}"

# ---------------------------------------------------------------- 3. hindsight delete alone
# hs_delete ID PATH: `snapshot delete`, check it is invisible at once; sets DELETING, DEL_T0,
# DEL_CLI_S, DEL_VISIBLE
hs_delete() {
    local id=$1 path=$2 t1
    DELETING=$(dirname "$path")/.deleting-$(basename "$path")
    DEL_T0=$EPOCHREALTIME
    hs snapshot delete "$id" >"$RUN/delete-$id.log" 2>&1 || { tail_log "$RUN/delete-$id.log"; die "hindsight snapshot delete $id failed"; }
    t1=$EPOCHREALTIME
    DEL_CLI_S=$(elapsed "$DEL_T0" "$t1")
    # invisible at once: gone from the list and renamed on disk
    local vis=ok
    hs snapshot list --json >"$RUN/snapshots-after-delete-$id.json" 2>/dev/null || vis="snapshot list failed"
    if ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d if isinstance(d,list) else d.get("snapshots",[]); sys.exit(any(s.get("id")==int(sys.argv[2]) for s in d))' \
        "$RUN/snapshots-after-delete-$id.json" "$id"; then vis="still listed after snapshot delete returned"; fi
    [[ -e $path ]] && vis="the snapshot dir is still there after snapshot delete returned"
    [[ -d $DELETING ]] || vis="no $DELETING after snapshot delete returned (already finished?)"
    DEL_VISIBLE=$vis
    [[ $vis == ok ]] || warn "snapshot $id: $vis"
}

# wait_deleted DIR: poll every POLL s until DIR is gone; prints the seconds since DEL_T0
wait_deleted() {
    local dir=$1 deadline=$(( ${EPOCHREALTIME%.*} + BENCH_DELETE_TIMEOUT ))
    while [[ -e $dir ]]; do
        check_daemon
        (( ${EPOCHREALTIME%.*} < deadline )) || die "$dir still there after $BENCH_DELETE_TIMEOUT s"
        sleep "$POLL"
    done
    elapsed "$DEL_T0" "$EPOCHREALTIME"
}

n=$(entries "$SNAP_A_PATH")
meta hindsight_entries "$n"
log "hindsight snapshot delete $SNAP_A_ID (snapshot A, $n entries, its files shared with nothing), alone"
sync
load=$(load1)
c0=$(daemon_ticks)
hs_delete "$SNAP_A_ID" "$SNAP_A_PATH"
wall=$(wait_deleted "$DELETING")
c1=$(daemon_ticks)
sync_s=$(timed_sync)
cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
log "  hindsight: snapshot delete returned after ${DEL_CLI_S} s; .deleting-* gone after ${wall} s ($(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.0f", n / w }') entries/s), daemon cpu ${cpu} s; sync after it ${sync_s} s"
# the catalog row goes right after the files
sleep 0.5
left=$(hs snapshot list --job del --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else d.get("snapshots",[]); print(len(d))' || echo "?")
py record "$RESULTS" delete hindsight "$wall" "$cpu" "$(daemon_vm VmHWM)" "hindsight snapshot delete ID; until .deleting-* is gone" \
    "{\"entries\": $n, \"load1\": $load, \"sync_after_s\": $sync_s, \"cli_s\": $DEL_CLI_S, \"invisible_at_once\": $(jstr "$DEL_VISIBLE"), \"snapshots_left\": $(jstr "$left"), \"note\": \"snapshot A (full, unshared), alone; polled every $POLL s\"}"

# ---------------------------------------------------------------- 4. the timed backups
# paired PHASE PREPARE IDLE START RUNNING: BENCH_RUNS pairs of timed backups. For each pair:
# PREPARE makes the tree to delete (untimed: a cp -a copy or a full snapshot, unshared), IDLE
# waits until no deletion is going on, settle, then one baseline backup, then START starts deleting the
# tree and one backup of PHASE runs while RUNNING is true. The two backups of a pair are a few
# seconds apart, so a change in the machine's load hits both. A backup that outlasts its
# deletion does not count: the pair is repeated (at most 2 * BENCH_RUNS attempts).
# settle: before a baseline, right after an untimed cp -a or backup of the big corpus: read
# the backup corpus again (page cache), sync, and wait (at most 20 s) until the disk has had
# no write or discard for 1 s, so that the writeback of that copy does not land on the baseline
DISK_STAT=/sys/class/block/$(basename "$(findmnt -n -o SOURCE -T "$W" 2>/dev/null || echo none)")/stat
settle() {
    local t0=$EPOCHREALTIME prev cur quiet=0 k
    use_corpus "$NB"; warm_corpus; use_corpus "$NA"
    sync
    if [[ -r $DISK_STAT ]]; then
        prev=$(awk '{ print $5, $12 }' "$DISK_STAT")
        for (( k = 0; k < 100 && quiet < 5; k++ )); do
            sleep 0.2
            cur=$(awk '{ print $5, $12 }' "$DISK_STAT")
            if [[ $cur == "$prev" ]]; then quiet=$(( quiet + 1 )); else quiet=0; fi
            prev=$cur
        done
        (( quiet >= 5 )) || warn "the disk did not go quiet within 20 s (someone else writing?)"
    fi
    log "  settled in $(elapsed "$t0" "$EPOCHREALTIME") s (page cache, sync, quiet disk)"
}

BASE_K=0
paired() {
    local phase=$1 prepare=$2 idle=$3 start=$4 running=$5 i counted=0
    STARTED=0
    for (( i = 1; i <= MAX_TRIES && counted < BENCH_RUNS; i++ )); do
        $prepare
        $idle
        settle
        BASE_K=$(( BASE_K + 1 ))
        timed_backup baseline "$BASE_K" "b-baseline-$BASE_K" true "$phase-$i"
        $start
        STARTED=$(( STARTED + 1 ))
        sleep 0.5
        timed_backup "$phase" "$i" "b-$phase-$i" "$running" "$phase-$i"
        [[ $(tail -n 1 "$RESULTS") == *'"overlap": true'* ]] && counted=$(( counted + 1 ))
    done
    (( counted == BENCH_RUNS )) || warn "$phase: only $counted of $BENCH_RUNS backups overlapped a deletion"
    meta "${phase}_deletions_started" "$STARTED"
}

# the rm -rf phase: a cp -a copy (untimed), then rm -rf of it in the background
RM_COPY=
prepare_rm() {
    RM_COPY=$VICTIMS/copy-concurrent-$(( STARTED + 1 ))
    log "cp -a of the corpus (untimed: the tree rm -rf deletes during the next backup)"
    "$CP" -a "$CORPUS_A" "$RM_COPY"
    meta rm_concurrent_entries "$(entries "$RM_COPY")"
}
start_rm() {
    log "rm -rf of the copy in the background"
    "$RM" -rf -- "$RM_COPY" </dev/null >>"$RUN/rm-concurrent.log" 2>&1 9>&- &
    BG_RM_PID=$!
}
rm_running() { [[ -n $BG_RM_PID ]] && kill -0 "$BG_RM_PID" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$BG_RM_PID/stat" 2>/dev/null) != Z ]]; }
stop_rm() {
    [[ -n $BG_RM_PID ]] || return 0
    if rm_running; then
        log "  stopping the rm -rf (pid $BG_RM_PID); what is left goes to the trash"
        kill -TERM "$BG_RM_PID" 2>/dev/null || true
    fi
    wait "$BG_RM_PID" 2>/dev/null || true
    BG_RM_PID=
}

# the hindsight phase: a full snapshot of job del (untimed; shared with nothing since the
# job has no other snapshot left), then `snapshot delete`
HS_ID='' HS_PATH='' DELETING=''
prepare_hs() {
    make_snapshot del
    IFS=$'\t' read -r HS_ID HS_PATH < <(snapshot_of del)
    meta hindsight_concurrent_entries "$(entries "$HS_PATH")"
}
hs_deleting() { [[ -n $DELETING && -d $DELETING ]]; }
wait_hs_idle() {
    if hs_deleting; then
        log "  waiting for the previous deletion to finish"
        wait_deleted "$DELETING" >/dev/null
    fi
    # the job's previous snapshots are all gone: the next one shares nothing
    return 0
}
start_hs() {
    log "hindsight snapshot delete $HS_ID in the background"
    hs_delete "$HS_ID" "$HS_PATH"
    meta "hindsight_concurrent_invisible_at_once" "$DEL_VISIBLE"
}

log "backups of corpus-$NB ($NB entries), each time a baseline then one while deleting: rm -rf of a cp -a copy"
paired during-rm prepare_rm stop_rm start_rm rm_running
stop_rm
log "backups of corpus-$NB ($NB entries), each time a baseline then one while deleting: hindsight snapshot delete"
paired during-delete prepare_hs wait_hs_idle start_hs hs_deleting
if hs_deleting; then
    meta hindsight_concurrent_left "$(entries "$DELETING") entries still to delete after the last backup; the rest goes to the trash"
fi

# ---------------------------------------------------------------- 7. report
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
check_daemon
# deletion errors the daemon logged
if grep -qiE 'error|panic' "$HSD_LOG"; then
    meta log_errors "$(grep -ciE 'error|panic' "$HSD_LOG") lines, first: $(grep -iE 'error|panic' "$HSD_LOG" | head -n 1 | cut -c1-200)"
fi
stop_daemon
py retention-report "$RUN" "$W/results-retention.json" "$W/results"
log "done; logs in $RUN; the trees of this run ($HS, $VICTIMS) go to $TRASH and are deleted in the background"
