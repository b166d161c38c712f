#!/usr/bin/env bash
# bench/archive.sh: the archived and compressed snapshot structures against tar,
# and browsing the compressed snapshot against ratarmount and archivemount.
#
# In one run, on the standard corpus (see bench/README.md, "Archive benchmark"):
#   - a `compressed` hindsight backup vs `tar cf - | pigz -6` and `tar czf` (gzip -6):
#     wall, cpu, output size;
#   - an `archived` hindsight backup vs `tar cf`;
#   - browsing the compressed snapshot: the Hindsight mounts (standalone and the daemon's)
#     vs ratarmount and archivemount on the SAME .tar.gz (the snapshot's data.tar.gz):
#     time until usable, find, cat of 200 small files, the largest file, an rsync -a
#     restore of a ~100 MiB subdir, peak memory of the mounting process.
#
# usage:  bench/archive.sh            (builds the release binaries first)
#
# environment knobs (see bench/README.md):
#   BENCH_FILES=100000        corpus size (entries)
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir, shared with the other scripts
#   CARGO_TARGET_DIR=/var/tmp/hindsight-target   where the release binaries are built
#   BENCH_BUILD=1             0: do not run cargo build (use HINDSIGHTD/HINDSIGHT as they are)
#   HINDSIGHTD, HINDSIGHT     binaries (default $CARGO_TARGET_DIR/release/...)
#   BENCH_PEERS_ONLY=0        1: no hindsight at all; the peers browse `tar czf`'s archive
#   BENCH_TOOLS="hindsight hindsightd ratarmount archivemount"   what to browse
#   BENCH_RUNS=3              runs of each browse operation (first = cold, median of the others = warm)
#   BENCH_DROP=op             op | mount | none (as in mount.sh)
#   BENCH_OP_TIMEOUT=300      seconds before one browse operation counts as hung
#   BENCH_SLOW_TIMEOUT=60     cap of archivemount's data operations (cat, big read, restore)
#   BENCH_MOUNT_TIMEOUT=120   seconds to wait for a mount to become usable
#   BENCH_WARM=1              read the corpus right before each timed backup (this VM's page
#                             cache drains within about a minute: without it, whichever tool
#                             runs second reads a warmer corpus)
#   BENCH_DAMON=pause         pause the VM's DAMON page-out while measuring (keep: leave it
#                             running; see damon_pause in lib.sh)
#   BENCH_NO_INSTALL=1        never run apt-get / pip
#   BENCH_PEER_ARCHIVE=snapshot  what ratarmount/archivemount mount: snapshot (the compressed
#                             snapshot's data.tar.gz) or tar-czf (tar czf's archive of the corpus)
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DEST_NAME=bench
JOB_GZ=compressed
JOB_TAR=archived
POLL=0.02                      # mount-usable polling interval (s)
OPS=(find cat200 bigread restore)
RATARMOUNT_SPEC=ratarmount     # pip requirement installed into the venv

BENCH_FILES=${BENCH_FILES:-100000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/hindsight-target}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_PEERS_ONLY=${BENCH_PEERS_ONLY:-0}
BENCH_TOOLS=${BENCH_TOOLS-hindsight hindsightd ratarmount archivemount}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DROP=${BENCH_DROP:-op}
BENCH_OP_TIMEOUT=${BENCH_OP_TIMEOUT:-300}
BENCH_SLOW_TIMEOUT=${BENCH_SLOW_TIMEOUT:-60}
BENCH_MOUNT_TIMEOUT=${BENCH_MOUNT_TIMEOUT:-120}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}
BENCH_PEER_ARCHIVE=${BENCH_PEER_ARCHIVE:-snapshot}

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
check_bench_files
case $BENCH_PEERS_ONLY in 1) RUN_HS=0 ;; 0 | "") RUN_HS=1 ;; *) die "BENCH_PEERS_ONLY must be 0 or 1" ;; esac
TOOLS=(native)
for t in ${BENCH_TOOLS//,/ }; do
    case $t in
        native) ;;
        hindsight | hindsightd) (( RUN_HS )) && TOOLS+=("$t") ;;
        ratarmount | archivemount) TOOLS+=("$t") ;;
        *) die "BENCH_TOOLS: unknown tool '$t' (known: hindsight hindsightd ratarmount archivemount)" ;;
    esac
done
has_tool() { local t; for t in "${TOOLS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }
[[ $BENCH_RUNS =~ ^[0-9]+$ ]] && (( BENCH_RUNS >= 2 )) || die "BENCH_RUNS must be an integer >= 2"
case $BENCH_DROP in op | mount | none) ;; *) die "BENCH_DROP must be op, mount or none" ;; esac
for v in BENCH_OP_TIMEOUT BENCH_SLOW_TIMEOUT BENCH_MOUNT_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || die "$v must be a number of seconds"
done
[[ -n ${EPOCHREALTIME:-} ]] || die "bash >= 5 is required (EPOCHREALTIME)"
case $BENCH_PEER_ARCHIVE in snapshot | tar-czf) ;; *) die "BENCH_PEER_ARCHIVE must be snapshot or tar-czf" ;; esac

# ---------------------------------------------------------------- 1. binaries and tools
if (( RUN_HS )); then
    build_release
    resolve_binaries "or time only the peers with BENCH_PEERS_ONLY=1"
fi
pkgs=(rsync:rsync /usr/bin/time:time timeout:coreutils md5sum:coreutils pigz:pigz gzip:gzip tar:tar)
has_tool archivemount && pkgs+=(archivemount:archivemount)
has_tool ratarmount && pkgs+=(fusermount3:fuse3)
ensure_packages "${pkgs[@]}"
RSYNC=$(command -v rsync)
if (( ${#TOOLS[@]} > 1 )) && [[ ! -e /dev/fuse ]]; then die "/dev/fuse is missing: FUSE mounts are not possible here"; fi

# ---------------------------------------------------------------- 2. work dir
bench_workdir
A=$W/archive
RUN=$A/run
HS=$A/hindsight
PD=$A/peers
MNT=$A/mnt
RESTORE=$A/restore
SOCK=$HS/hindsightd.sock
VENV=$W/venv-ratarmount        # kept across runs
bench_lock archive.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$HS/hindsightd.pid
HS_FAILED=()                   # what went wrong on the hindsight side (exit 3)

# mounts of this run: MOUNTED[tool]=mountpoint, MPID[tool]=serving process
declare -A MOUNTED=() MPID=()

# unmount_tool TOOL: unmount and stop the serving process; 0 when it went cleanly.
# hindsightd's mount stays (it is the daemon's); only the others are unmounted.
unmount_tool() {
    local tool=$1 mnt=${MOUNTED[$1]:-} pid=${MPID[$1]:-} rc=0
    [[ -n $mnt ]] || return 0
    if [[ $tool == hindsightd ]]; then
        unset "MOUNTED[$tool]" "MPID[$tool]"
        return 0
    fi
    if is_mounted "$mnt"; then
        case $tool in
            hindsight) "$HINDSIGHT" umount "$mnt" >>"$RUN/umount-$tool.log" 2>&1 || rc=1 ;;
            *) umount "$mnt" >>"$RUN/umount-$tool.log" 2>&1 || rc=1 ;;
        esac
    fi
    if [[ -n $pid ]] && ! wait_gone "$pid" 15; then
        warn "$tool (pid $pid) still running 15 s after unmounting; sending SIGTERM"
        rc=1
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
    if is_mounted "$mnt"; then
        warn "$mnt is still mounted; detaching it (umount -l)"
        rc=1
        umount -l "$mnt" 2>/dev/null || true
    fi
    if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
    unset "MOUNTED[$tool]" "MPID[$tool]"
    rm -f "$A/pids/$tool.pid"
    return "$rc"
}

cleanup() {
    local rc=$?
    set +e
    local t m
    for t in "${!MOUNTED[@]}"; do unmount_tool "$t"; done
    stop_daemon
    for m in $(mounts_under "$A"); do umount -l "$m" 2>/dev/null; done
    damon_resume
    resume_trash_deletions
    if [[ -d $RESTORE ]] && ! mounts_under "$A" | grep -q .; then to_trash "$RESTORE"; fi
    start_trash_deletion
    exit "$rc"
}
install_traps cleanup

pause_trash_deletions

# leftovers of an interrupted earlier run: serving processes, mounts, the daemon
stop_leftover_daemon "$HSD_PIDFILE" "$HS/state"
shopt -s nullglob
for f in "$A"/pids/*.pid; do
    old=$(<"$f") || continue
    if [[ $old =~ ^[0-9]+$ ]] && [[ -r /proc/$old/cmdline ]] && tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF -- "$A/"; then
        log "stopping $(basename "$f" .pid) mount left over from an earlier run (pid $old)"
        kill -TERM "$old" 2>/dev/null || true
        wait_gone "$old" 10 || kill -KILL "$old" 2>/dev/null || true
    fi
    rm -f -- "$f"
done
shopt -u nullglob
for m in $(mounts_under "$A"); do
    log "unmounting $m left over from an earlier run"
    umount -l "$m" || die "cannot unmount $m"
done

# ratarmount: pip, in a venv of its own (kept in BENCH_DIR across runs)
RATARMOUNT=$VENV/bin/ratarmount
if has_tool ratarmount && [[ ! -x $RATARMOUNT ]]; then
    [[ $BENCH_NO_INSTALL == 1 ]] && die "ratarmount is not installed in $VENV (BENCH_NO_INSTALL=1)"
    log "installing ratarmount with pip into $VENV"
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        ensure_packages /nonexistent/needs-python3-venv:python3-venv
    fi
    rm -rf "$VENV"
    { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "$RATARMOUNT_SPEC"; } >"$W/venv-ratarmount.log" 2>&1 \
        || { tail_log "$W/venv-ratarmount.log"; rm -rf "$VENV"; die "pip install ratarmount failed"; }
    [[ -x $RATARMOUNT ]] || die "ratarmount not found in $VENV after pip install"
fi

# move the previous run's trees out of the way (deleted in the background at the end)
to_trash "$A"
to_trash "$CORPUS.partial"
mkdir -p "$RUN" "$HS/state" "$HS/dest" "$PD" "$MNT" "$RESTORE" "$A/pids" "$A/targets" "$A/ratarmount-index"
META=$RUN/meta.tsv
: >"$META"
damon_pause
RESULTS=$RUN/results.jsonl     # the backups (benchutil.py record)
: >"$RESULTS"
SIZES=$RUN/sizes.tsv           # phase tool output_bytes path
: >"$SIZES"
RUNS=$RUN/runs.tsv             # tool op run wall_s server_cpu_s load1 status detail
: >"$RUNS"
MOUNTS=$RUN/mounts.tsv         # tool usable_s vmhwm_ready_kib vmhwm_after_kib vmrss_after_kib pid status
: >"$MOUNTS"
CHECKS=$RUN/checks.tsv         # tool key value
: >"$CHECKS"
check() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$CHECKS"; }

# ---------------------------------------------------------------- corpus
corpus_check
# hindsight: compressed (~0.7 of the corpus) + archived (~1.05); peers: two tar (1.05 each), two tar.gz (0.7 each)
copies=4
(( RUN_HS )) && copies=6
(( corpus_ok )) || copies=$(( copies + 1 ))
check_space $(( copies * CORPUS_BYTES * 21 / 20 + ${#TOOLS[@]} * BENCH_RUNS * (110 << 20) + (1 << 30) )) \
    $(( N * 21 / 20 * (corpus_ok ? 1 : 2) + ${#TOOLS[@]} * BENCH_RUNS * N / 20 + 10000 )) \
    "~$copies copies of a ~$(( CORPUS_BYTES >> 20 )) MiB corpus and $(( ${#TOOLS[@]} * BENCH_RUNS )) restores"
corpus_generate "$RUN"

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta files "$N"
meta corpus "$CORPUS"
meta corpus_bytes "$CORPUS_BYTES"
meta corpus_seed "$CORPUS_SEED"
meta corpus_fingerprint "$FINGERPRINT"
meta bench_dir "$W"
meta_machine
meta tools "${TOOLS[*]}"
meta runs "$BENCH_RUNS"
meta drop "$BENCH_DROP"
meta op_timeout_s "$BENCH_OP_TIMEOUT"
meta slow_timeout_s "$BENCH_SLOW_TIMEOUT"
meta tar_version "$(tar --version | sed -n 1p)"
meta gzip_version "$(gzip --version | sed -n 1p)"
meta pigz_version "$(pigz --version 2>&1 | sed -n 1p)"
meta rsync_version "$("$RSYNC" --version | sed -n 1p)"
has_tool ratarmount && meta ratarmount_version "$("$RATARMOUNT" --version 2>&1 | grep -iE '^(ratarmount|ratarmountcore|rapidgzip|indexed_gzip|mfusepy) ' | tr '\n' ';')"
has_tool archivemount && meta archivemount_version "$(archivemount -V 2>&1 | tr '\n' ';')"
if (( RUN_HS )); then
    meta hindsightd "$HINDSIGHTD"
    meta hindsight "$HINDSIGHT"
    meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
    meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
    meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
    meta git_uncommitted "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | awk '{print $2}' | tr '\n' ' ')"
fi
warn_if_busy "cpu s is the steadier figure for the backups"

# ---------------------------------------------------------------- 3. browse targets (before anything else reads the corpus)
log "picking the browse targets (pick_targets.py)"
python3 "$PICK" "$CORPUS" "$A/targets" >"$RUN/targets.log" 2>&1 || { tail_log "$RUN/targets.log"; die "pick_targets.py failed"; }
cat "$RUN/targets.log" >&2
SMALL_LIST=$A/targets/small200.list
BIG=$(<"$A/targets/big.path")
SUB=$(<"$A/targets/subdir.path")
meta targets "$(tr '\n' ';' <"$RUN/targets.log")"
[[ -f $CORPUS/$BIG && -d $CORPUS/$SUB ]] || die "pick_targets.py picked paths that are not in the corpus"
meta big_bytes "$(stat -c %s "$CORPUS/$BIG")"
meta small_files "$(wc -l <"$SMALL_LIST")"
meta subdir_files "$(find "$CORPUS/$SUB" -type f | wc -l)"

# warm: read the corpus, so that every timed backup starts from the same page cache
warm() {
    [[ $BENCH_WARM == 1 ]] || return 0
    log "reading the corpus to warm the page cache (BENCH_WARM=0 to skip)"
    warm_corpus
}
[[ $BENCH_WARM == 1 ]] && meta cache "warmed before each backup"

# ---------------------------------------------------------------- 4. daemon, destination, jobs
if (( RUN_HS )); then
    mkdir -p "$MNT/hindsightd"
    start_daemon "$HS/state" "$SOCK" --mountpoint "$MNT/hindsightd"
    log "hindsightd ready (pid $HSD_PID, mount on $MNT/hindsightd)"
    MOUNTED[hindsightd]=$MNT/hindsightd
    MPID[hindsightd]=$HSD_PID
    meta hindsightd_idle_vmhwm_kib "$(daemon_vm VmHWM)"
    setup() { hs "$@" >>"$RUN/setup.log" 2>&1 || { tail_log "$RUN/setup.log"; die "hindsight $* failed"; }; }
    setup destination add "$DEST_NAME" --type local --path "$HS/dest"
    for s in "$JOB_GZ" "$JOB_TAR"; do
        if ! hs job add "$s" --source "$CORPUS" --destination "$DEST_NAME" --structure "$s" >>"$RUN/setup.log" 2>&1; then
            tail_log "$RUN/setup.log"
            die "hindsight job add --structure $s failed: this build cannot write $s snapshots yet
  (BENCH_PEERS_ONLY=1 runs the peers alone)"
        fi
    done
fi

# ---------------------------------------------------------------- 5. backups
# size PHASE TOOL PATH: record the output size of a backup
size() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(stat -c %s "$3")" "$3" >>"$SIZES"; }

# snapshot_dir JOB: the job's newest snapshot directory
snapshot_dir() {
    local out=$RUN/snapshots-$1.json
    hs snapshot list --job "$1" --json >"$out" 2>"$out.err" || { tail_log "$out.err"; die "hindsight snapshot list --job $1 failed"; }
    py snapshot-path "$out" || die "no snapshot of job $1 in $out"
}

SNAP_GZ='' SNAP_TAR=''
# compressed: hindsight, pigz, gzip (tar czf is the size reference: gzip -6)
if (( RUN_HS )); then
    warm
    hs_timed compressed "$JOB_GZ" 1
    SNAP_GZ=$(snapshot_dir "$JOB_GZ")
    [[ -f $SNAP_GZ/data.tar.gz ]] || die "the compressed snapshot has no data.tar.gz: $SNAP_GZ"
    size compressed hindsight "$SNAP_GZ/data.tar.gz"
    meta snapshot_compressed "$SNAP_GZ"
    meta snapshot_compressed_du_bytes "$(du -sb "$SNAP_GZ" | cut -f1)"
fi
warm
peer_timed compressed "tar | pigz -6" - "tar cf - | pigz -6 (2 threads)" \
    bash -c 'set -o pipefail; tar -C "$1" -cf - "$2" | pigz -6 >"$3"' _ "$W" "corpus-$N" "$PD/pigz.tar.gz"
size compressed "tar | pigz -6" "$PD/pigz.tar.gz"
warm
peer_timed compressed "tar czf" - "gzip -6, one thread" tar -C "$W" -czf "$PD/gzip.tar.gz" "corpus-$N"
size compressed "tar czf" "$PD/gzip.tar.gz"

# archived: hindsight, tar cf
if (( RUN_HS )); then
    warm
    hs_timed archived "$JOB_TAR" 1
    SNAP_TAR=$(snapshot_dir "$JOB_TAR")
    [[ -f $SNAP_TAR/data.tar ]] || die "the archived snapshot has no data.tar: $SNAP_TAR"
    size archived hindsight "$SNAP_TAR/data.tar"
    meta snapshot_archived "$SNAP_TAR"
    meta snapshot_archived_du_bytes "$(du -sb "$SNAP_TAR" | cut -f1)"
fi
warm
peer_timed archived "tar cf" - "" tar -C "$W" -cf "$PD/c.tar" "corpus-$N"
size archived "tar cf" "$PD/c.tar"
# hindsight flushes a snapshot to disk before it becomes visible: tar cf held to the same durability
warm
peer_timed archived "tar cf + sync" - "durable like a hindsight snapshot" \
    sh -c 'tar -C "$1" -cf "$2" "$3" && sync' sh "$W" "$PD/c-sync.tar" "corpus-$N"
size archived "tar cf + sync" "$PD/c-sync.tar"

# the archive the peers browse: hindsight's data.tar.gz (a standard .tar.gz), else tar czf's
if (( RUN_HS )); then
    log "checking data.tar.gz with gzip -t (untimed)"
    if gzip -t "$SNAP_GZ/data.tar.gz" 2>"$RUN/gzip-t.err"; then
        check archive gzip_t ok
    else
        check archive gzip_t "FAILED: $(head -c 200 "$RUN/gzip-t.err")"
        HS_FAILED+=("gzip -t of data.tar.gz failed")
    fi
fi
if (( RUN_HS )) && [[ $BENCH_PEER_ARCHIVE == snapshot ]]; then
    ARCHIVE=$SNAP_GZ/data.tar.gz
    PREFIX=${CORPUS#/}          # hindsight's tar mirrors the absolute source paths
else
    ARCHIVE=$PD/gzip.tar.gz
    PREFIX=corpus-$N
fi
meta browsed_archive "$ARCHIVE"
meta browsed_archive_bytes "$(stat -c %s "$ARCHIVE")"

# ---------------------------------------------------------------- 6. mounting
SNAP_NAME=$(basename "${SNAP_GZ:-none}")
declare -A SNAP=(
    [native]=$CORPUS
    [hindsight]=$MNT/hindsight/$JOB_GZ/$SNAP_NAME$CORPUS
    [hindsightd]=$MNT/hindsightd/$DEST_NAME/$JOB_GZ/$SNAP_NAME$CORPUS
    [ratarmount]=$MNT/ratarmount/$PREFIX
    [archivemount]=$MNT/archivemount/$PREFIX
)

# mount_tool TOOL [LABEL]: mount, time until `ls` of the corpus dir succeeds; 1 on failure
MOUNT_T0='' MOUNT_T1=''
mount_tool() {
    local tool=$1 label=${2:-$1} mnt=$MNT/$1 log=$RUN/mount-${2:-$1}.log pid=
    mkdir -p "$mnt"
    MOUNT_T0=$EPOCHREALTIME
    case $tool in
        hindsight)
            if ! "$HINDSIGHT" mount --destination "$HS/dest" "$mnt" --background >"$log" 2>&1 </dev/null 9>&-; then
                tail_log "$log"
                return 1
            fi
            MOUNTED[$tool]=$mnt
            pid=$(find_mount_pid "$mnt") || { warn "hindsight: no \`hindsight mount\` process serves $mnt"; return 1; }
            ;;
        ratarmount)
            # the index goes beside the run, never into the hindsight destination
            "$RATARMOUNT" -f --index-file "$A/ratarmount-index/data.tar.gz.index.sqlite" "$ARCHIVE" "$mnt" \
                </dev/null >"$log" 2>&1 9>&- &
            pid=$!
            MOUNTED[$tool]=$mnt
            ;;
        archivemount)
            archivemount -f -o ro,readonly "$ARCHIVE" "$mnt" </dev/null >"$log" 2>&1 9>&- &
            pid=$!
            MOUNTED[$tool]=$mnt
            ;;
    esac
    MPID[$tool]=$pid
    [[ -z $pid ]] || echo "$pid" >"$A/pids/$tool.pid"
    local deadline=$(( ${MOUNT_T0%.*} + BENCH_MOUNT_TIMEOUT ))
    until ls -- "${SNAP[$tool]}" >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail_log "$log"
            warn "$label: the mount process (pid $pid) exited before ${SNAP[$tool]} could be listed"
            return 1
        fi
        if (( ${EPOCHREALTIME%.*} >= deadline )); then
            warn "$label: ${SNAP[$tool]} could not be listed within $BENCH_MOUNT_TIMEOUT s"
            return 1
        fi
        sleep "$POLL"
    done
    MOUNT_T1=$EPOCHREALTIME
    return 0
}

# ---------------------------------------------------------------- 7. operations
op_timeout() {
    case $1:$2 in
        archivemount:cat200 | archivemount:bigread | archivemount:restore) echo "$BENCH_SLOW_TIMEOUT" ;;
        *) echo "$BENCH_OP_TIMEOUT" ;;
    esac
}

# op_cmd TOOL OP RUN TIMEOUT: one operation (output in RUN/out-TOOL-OP-RUN), under a timeout
op_cmd() {
    local tool=$1 op=$2 run=$3 to=$4 s=${SNAP[$1]} out=$RUN/out-$1-$2-$3
    case $op in
        find) timeout -k 5 "$to" find "$s" 2>"$out.err" | wc -l >"$out" ;;
        # wc -c: how far it got when it timed out
        cat200) timeout -k 5 "$to" xargs -d '\n' -a "$RUN/small-$tool.list" cat 2>"$out.err" | wc -c >"$out" ;;
        bigread) timeout -k 5 "$to" cat "$s/$BIG" >/dev/null 2>"$out.err" ;;
        restore) timeout -k 5 "$to" "$RSYNC" -a "$s/$SUB/" "$RESTORE/$tool-$run/" 2>"$out.err" ;;
    esac
}

record_failure() {
    local tool=$1 what=$2
    printf '%s\t%s\t%s\n' "$tool" failure "$what" >>"$CHECKS"
    case $tool in hindsight | hindsightd | native) HS_FAILED+=("$tool: $what") ;; esac
}

# browse TOOL: every operation BENCH_RUNS times; an operation that times out or fails is
# not repeated (recorded, the tool goes on with the next operation); 1 when the mount died
browse() {
    local tool=$1 pid=${MPID[$1]:-} op run rc t0 t1 wall c0 c1 cpu load status to detail
    sed "s|^|${SNAP[$tool]}/|" "$SMALL_LIST" >"$RUN/small-$tool.list"
    for op in "${OPS[@]}"; do
        to=$(op_timeout "$tool" "$op")
        for (( run = 1; run <= BENCH_RUNS; run++ )); do
            if (( run == 1 )) && [[ $BENCH_DROP == op ]]; then drop_caches; else sync; fi
            wait_disk_quiet 10
            load=$(cut -d' ' -f1 /proc/loadavg)
            c0=
            if [[ -n $pid ]]; then c0=$(pid_ticks "$pid" 2>/dev/null) || c0=; fi
            rc=0
            t0=$EPOCHREALTIME
            op_cmd "$tool" "$op" "$run" "$to" || rc=$?
            t1=$EPOCHREALTIME
            wall=$(elapsed "$t0" "$t1")
            cpu=-
            if [[ -n $c0 ]] && c1=$(pid_ticks "$pid" 2>/dev/null); then
                cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }')
            fi
            status=ok detail=-
            if (( rc == 124 || rc == 137 )); then
                status=timeout
            elif (( rc != 0 )); then
                status="exit $rc"
            fi
            case $op in
                cat200) detail="bytes=$(tr -d ' ' <"$RUN/out-$tool-$op-$run")" ;;
                restore) detail="files=$(find "$RESTORE/$tool-$run" -type f 2>/dev/null | wc -l)" ;;
            esac
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$op" "$run" "$wall" "$cpu" "$load" "$status" "$detail" >>"$RUNS"
            log "  $tool $op #$run: ${wall} s (server cpu $cpu s)$([[ $status == ok ]] || echo " $status")$([[ $detail == - ]] || echo " $detail")"
            if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
                record_failure "$tool" "the mount process (pid $pid) exited during $op run $run"
                return 1
            fi
            if [[ $status == timeout ]]; then
                warn "$tool: $op did not finish within $to s: not repeated"
                hang_report "$tool" "$pid" "$to"
                case $tool in hindsight | hindsightd | native) record_failure "$tool" "$op run $run: timeout" ;; esac
                break
            elif [[ $status != ok ]]; then
                # recorded; not repeated; the tool goes on with the next operation
                warn "$tool: $op (run $run) failed: $status"
                [[ -s $RUN/out-$tool-$op-$run.err ]] && tail_log "$RUN/out-$tool-$op-$run.err" 5
                record_failure "$tool" "$op run $run: $status"
                break
            fi
        done
    done
    return 0
}

# ---------------------------------------------------------------- 8. correctness (not timed)

# ok_runs TOOL OP: the runs of OP that ended well
ok_runs() { awk -F'\t' -v t="$1" -v o="$2" '$1 == t && $2 == o && $7 == "ok" { print $3 }' "$RUNS"; }

verify() {
    local tool=$1 s=${SNAP[$1]} v run to
    to=$(op_timeout "$tool" cat200)
    for run in $(ok_runs "$tool" find); do check "$tool" "find_lines_$run" "$(tr -d ' ' <"$RUN/out-$tool-find-$run")"; done
    if [[ -n $(ok_runs "$tool" cat200) ]]; then
        # hashes only, in list order (the names differ by the tool's prefix)
        v=$(timeout -k 5 "$to" xargs -d '\n' -a "$RUN/small-$tool.list" md5sum | cut -d' ' -f1 | md5sum | cut -d' ' -f1) || v=error
        check "$tool" small_md5 "$v"
    else
        check "$tool" small_md5 "not checked (cat200 did not finish)"
    fi
    if [[ -n $(ok_runs "$tool" bigread) ]]; then
        v=$(timeout -k 5 "$(op_timeout "$tool" bigread)" md5sum <"$s/$BIG" | cut -d' ' -f1) || v=error
        check "$tool" big_md5 "$v"
    else
        check "$tool" big_md5 "not checked (bigread did not finish)"
    fi
    for run in $(ok_runs "$tool" restore); do
        check "$tool" "restored_files_$run" "$(find "$RESTORE/$tool-$run" -type f | wc -l)"
    done
    if [[ -n $(ok_runs "$tool" restore) ]]; then
        # names, types, sizes, mtimes (ns), modes, link targets, against the corpus
        if v=$(py compare "$CORPUS/$SUB" "$RESTORE/$tool-1" 2>&1); then
            check "$tool" restore_metadata ok
        else
            printf '%s\n' "$v" >"$RUN/restore-compare-$tool.txt"
            check "$tool" restore_metadata "$(head -n 1 <<<"$v") (see restore-compare-$tool.txt)"
        fi
    fi
    return 0
}

# ---------------------------------------------------------------- 9. one tool
measure() {
    local tool=$1 usable=- hwm_ready=- hwm=- rss=- status=ok pid
    log "---- $tool"
    meta "loadavg_before_$tool" "$(cut -d' ' -f1-3 /proc/loadavg)"
    warn_if_busy
    case $tool in
        native) ;;
        hindsightd)
            # the daemon's mount has been there since it started; its peak memory is
            # reset so that VmHWM covers browsing only (not the backups)
            check_daemon
            echo 5 >"/proc/$HSD_PID/clear_refs" 2>/dev/null || check hindsightd clear_refs "refused: VmHWM covers the backups too"
            ls -- "${SNAP[$tool]}" >/dev/null 2>&1 || { record_failure "$tool" "${SNAP[$tool]} is not in the daemon's mount"; return 0; }
            hwm_ready=$(daemon_vm VmHWM)
            drop_caches
            ;;
        *)
            if [[ $tool == ratarmount ]]; then
                # first mount: ratarmount builds its index (gzip seek points and the file list)
                drop_caches
                if mount_tool ratarmount ratarmount-index; then
                    local u0 h0
                    u0=$(elapsed "$MOUNT_T0" "$MOUNT_T1")
                    h0=$(pid_vm "${MPID[ratarmount]}" VmHWM 2>/dev/null) || h0=-
                    log "  ratarmount: index built, usable after $u0 s (VmHWM $h0 KiB); remounting with the index"
                    printf '%s\t%s\t%s\t-\t-\t%s\t%s\n' ratarmount-index "$u0" "$h0" "${MPID[ratarmount]}" ok >>"$MOUNTS"
                    check ratarmount index_bytes "$(stat -c %s "$A/ratarmount-index/data.tar.gz.index.sqlite" 2>/dev/null || echo -)"
                    unmount_tool ratarmount || check ratarmount unmount "not clean after the index build"
                else
                    printf '%s\t-\t-\t-\t-\t%s\t%s\n' ratarmount-index "${MPID[ratarmount]:--}" "mount failed" >>"$MOUNTS"
                    unmount_tool ratarmount || true
                fi
            fi
            drop_caches
            if ! mount_tool "$tool"; then
                record_failure "$tool" "mount failed (log: $RUN/mount-$tool.log)"
                printf '%s\t-\t-\t-\t-\t%s\t%s\n' "$tool" "${MPID[$tool]:--}" "mount failed" >>"$MOUNTS"
                unmount_tool "$tool" || true
                return 0
            fi
            usable=$(elapsed "$MOUNT_T0" "$MOUNT_T1")
            pid=${MPID[$tool]:-}
            if [[ -n $pid ]]; then hwm_ready=$(pid_vm "$pid" VmHWM 2>/dev/null) || hwm_ready=-; fi
            log "  $tool: usable after $usable s (pid ${pid:-?}, VmHWM ${hwm_ready} KiB)"
            ;;
    esac
    if ! browse "$tool"; then status=failed; fi
    pid=${MPID[$tool]:-}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        hwm=$(pid_vm "$pid" VmHWM 2>/dev/null) || hwm=-
        rss=$(pid_vm "$pid" VmRSS 2>/dev/null) || rss=-
        log "  $tool: VmHWM after all operations ${hwm} KiB (VmRSS $rss KiB)"
    fi
    [[ $status == ok ]] && verify "$tool"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$usable" "$hwm_ready" "$hwm" "$rss" "${pid:--}" "$status" >>"$MOUNTS"
    if [[ $tool != native ]] && ! unmount_tool "$tool"; then
        check "$tool" unmount "not clean (log: $RUN/umount-$tool.log)"
        [[ $tool == hindsight ]] && HS_FAILED+=("$tool: unmount was not clean")
    fi
    local f=$RUN/mount-$tool.log
    [[ $tool == hindsightd ]] && f=$HSD_LOG
    if [[ -s $f ]] && grep -qiE 'error|panic' "$f"; then
        check "$tool" log_errors "$(grep -ciE 'error|panic' "$f") lines in $(basename "$f"), first: $(grep -iE 'error|panic' "$f" | head -n 1 | cut -c1-200)"
    fi
    return 0
}

drop_caches_init
meta loadavg_browse_start "$(cut -d' ' -f1-3 /proc/loadavg)"
for tool in "${TOOLS[@]}"; do measure "$tool"; done
stop_daemon
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- 10. report
rc=0
py archive-report "$RUN" "$W/results-archive.json" "$W/results" || rc=$?
if (( rc == 3 )) || (( ${#HS_FAILED[@]} )); then
    for f in "${HS_FAILED[@]}"; do warn "$f"; done
    warn "the hindsight side failed or did not match the corpus: see the checks above and $RUN"
    exit 3
fi
(( rc == 0 )) || die "archive-report failed (status $rc)"
log "done; logs in $RUN, trees in $A (moved to $TRASH by the next run)"
