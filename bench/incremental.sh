#!/usr/bin/env bash
# bench/incremental.sh: one full and one incremental backup with hindsight,
# timed against cp -a / cp -al / rsync / rsnapshot on the standard corpus.
#
# usage:  cargo build --release --workspace && bench/incremental.sh
#
# environment knobs (see bench/README.md):
#   BENCH_FILES=100000        corpus size (entries); 1000000 for the memory-scaling run
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (corpus, copies, logs, results)
#   HINDSIGHTD, HINDSIGHT     binaries (default ${CARGO_TARGET_DIR:-target}/release/...)
#   BENCH_PEERS="cp rsync rsnapshot"     peers to time ("none" for hindsight only)
#   BENCH_PEERS_ONLY=1        skip hindsight (no binaries needed)
#   BENCH_VERIFY=1            0: skip, 1: compare snapshot metadata, full: also contents
#   BENCH_WARM=1              read the corpus once before timing (warm page cache)
#   BENCH_DAMON=pause         pause the VM's DAMON page-out while measuring (keep: leave it
#                             running; see damon_pause in lib.sh)
#   BENCH_NO_INSTALL=1        never run apt-get
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MUTATE_SEED=2
JOB=bench
DEST_NAME=bench

BENCH_FILES=${BENCH_FILES:-100000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
BENCH_PEERS_ONLY=${BENCH_PEERS_ONLY:-0}
BENCH_PEERS=${BENCH_PEERS-cp rsync rsnapshot}
BENCH_VERIFY=${BENCH_VERIFY:-1}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
check_bench_files

PEERS=()
for p in ${BENCH_PEERS//,/ }; do
    case $p in
        cp | rsync | rsnapshot) PEERS+=("$p") ;;
        none) ;;
        *) die "BENCH_PEERS: unknown peer '$p' (known: cp rsync rsnapshot, or none)" ;;
    esac
done
has_peer() { local p; for p in "${PEERS[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }

case $BENCH_PEERS_ONLY in
    1) RUN_HS=0 ;;
    0 | "") RUN_HS=1 ;;
    *) die "BENCH_PEERS_ONLY must be 0 or 1" ;;
esac
case $BENCH_VERIFY in 0 | 1 | full) ;; *) die "BENCH_VERIFY must be 0, 1 or full" ;; esac
(( RUN_HS || ${#PEERS[@]} )) || die "nothing to measure: BENCH_PEERS_ONLY=1 and BENCH_PEERS=none"

# ---------------------------------------------------------------- 1. binaries and tools
if (( RUN_HS )); then
    resolve_binaries "or run only the peer tools with BENCH_PEERS_ONLY=1"
fi
ensure_packages rsync:rsync rsnapshot:rsnapshot /usr/bin/time:time
RSNAPSHOT=$(command -v rsnapshot)
RSYNC=$(command -v rsync)
CP=$(command -v cp)

# ---------------------------------------------------------------- 2. work dir
bench_workdir
HS=$W/hindsight
PD=$W/peers
RUN=$W/run
bench_lock incremental.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$HS/hindsightd.pid
VERIFY_FAILED=0

install_traps daemon_run_cleanup

pause_trash_deletions
stop_leftover_daemon "$HS/hindsightd.pid" "$HS/state"

# move the previous run's trees out of the way (deleted in the background at the end)
for d in "$HS" "$PD" "$RUN" "$CORPUS.partial"; do to_trash "$d"; done
mkdir -p "$RUN" "$PD"
RESULTS=$RUN/results.jsonl
: >"$RESULTS"
META=$RUN/meta.tsv
: >"$META"

# ---------------------------------------------------------------- corpus
corpus_check
copies=0
(( corpus_ok )) || copies=$(( copies + 1 ))
(( RUN_HS )) && copies=$(( copies + 1 ))
for p in "${PEERS[@]}"; do copies=$(( copies + 1 )); done
has_peer cp && copies=$(( copies + 1 ))  # cp -a and cp -a + sync
check_space $(( copies * CORPUS_BYTES + CORPUS_BYTES / 10 + (1 << 30) )) $(( (copies + 1) * N * 21 / 20 )) \
    "$copies copies of a ~$(( CORPUS_BYTES >> 20 )) MiB corpus" \
    "Time fewer peers (e.g. BENCH_PEERS=cp, or BENCH_PEERS=none for hindsight only)."
corpus_generate "$RUN"

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta files "$N"
meta corpus "$CORPUS"
meta corpus_bytes "$CORPUS_BYTES"
meta corpus_seed "$CORPUS_SEED"
meta mutate_seed "$MUTATE_SEED"
meta corpus_fingerprint "$FINGERPRINT"
meta bench_dir "$W"
meta_machine
meta peers "${PEERS[*]:-none}"
meta cp_version "$("$CP" --version | sed -n 1p)"
meta rsync_version "$("$RSYNC" --version | sed -n 1p)"
meta rsnapshot_version "$("$RSNAPSHOT" version 2>/dev/null | sed -n 1p || true)"

warn_if_busy "cpu s is steadier"
damon_pause

mem_avail=$(( $(awk '/^MemAvailable:/{print $2}' /proc/meminfo) * 1024 ))
if (( CORPUS_BYTES > mem_avail / 2 )); then
    warn "the corpus ($(( CORPUS_BYTES >> 30 )) GiB) does not fit in the page cache next to its copies: timings are cold-cache and not comparable with PEERS.md (memory figures are)"
    meta cache "cold: corpus larger than half of MemAvailable"
elif [[ $BENCH_WARM == 1 ]]; then
    log "reading the corpus once to warm the page cache (BENCH_WARM=0 to skip)"
    warm_corpus
    meta cache "warm"
fi

# ---------------------------------------------------------------- timing helpers
# peer_timed, hs_timed and hs are in lib.sh

# hs_verify PHASE: compare the newest snapshot with the corpus
hs_verify() {
    local phase=$1
    [[ $BENCH_VERIFY == 0 ]] && return 0
    local snap tree res rc=0 flag=()
    [[ $BENCH_VERIFY == full ]] && flag=(--content)
    if ! hs snapshot list --job "$JOB" --json >"$RUN/snapshots-$phase.json" 2>"$RUN/snapshots-$phase.err" \
        || ! snap=$(py snapshot-path "$RUN/snapshots-$phase.json" 2>>"$RUN/snapshots-$phase.err"); then
        tail_log "$RUN/snapshots-$phase.err"
        warn "could not find the $phase snapshot to verify it"
        meta "verify_$phase" "not checked: snapshot list failed"
        VERIFY_FAILED=1
        return 0
    fi
    tree=$snap/tree$CORPUS
    log "verifying the $phase snapshot against the corpus ($tree)"
    res=$(py compare "$CORPUS" "$tree" "${flag[@]}" 2>&1) || rc=$?
    printf '%s\n' "$res" >"$RUN/verify-$phase.txt"
    if (( rc != 0 )); then
        printf '%s\n' "$res" | head -n 22 >&2
        warn "the $phase snapshot does not match the corpus (details: $RUN/verify-$phase.txt)"
        meta "verify_$phase" "FAILED: $(head -n 1 <<<"$res")"
        VERIFY_FAILED=1
    else
        log "  $res"
        meta "verify_$phase" "ok: $res"
    fi
}

# ---------------------------------------------------------------- 3. daemon, destination, job
if (( RUN_HS )); then
    mkdir -p "$HS/state" "$HS/dest"
    SOCK=$HS/hindsightd.sock
    meta hindsightd "$HINDSIGHTD"
    meta hindsight "$HINDSIGHT"
    meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
    meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
    meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"

    start_daemon "$HS/state" "$SOCK" --no-mount
    meta hindsightd_idle_vmhwm_kib "$(daemon_vm VmHWM)"
    log "hindsightd ready (pid $HSD_PID, VmHWM $(( $(daemon_vm VmHWM) / 1024 )) MiB idle)"

    hs destination add "$DEST_NAME" --type local --path "$HS/dest" >"$RUN/setup.log" 2>&1 \
        || { tail_log "$RUN/setup.log"; die "hindsight destination add failed"; }
    hs job add "$JOB" --source "$CORPUS" --destination "$DEST_NAME" >>"$RUN/setup.log" 2>&1 \
        || { tail_log "$RUN/setup.log"; die "hindsight job add failed"; }
fi

# ---------------------------------------------------------------- 4. full backups (unmutated corpus)
if (( RUN_HS )); then
    hs_timed full "$JOB" 0
    hs_verify full
fi
if has_peer cp; then
    peer_timed full "cp -a" - "" "$CP" -a "$CORPUS" "$PD/cp-full"
    # hindsight flushes its snapshot to disk before it becomes visible; this is
    # cp -a held to the same durability.
    peer_timed full "cp -a + sync" - "durable like a hindsight snapshot" \
        sh -c '"$1" -a "$2" "$3" && sync' sh "$CP" "$CORPUS" "$PD/cp-sync-full"
fi
if has_peer rsync; then
    peer_timed full "rsync -a" - "" "$RSYNC" -a "$CORPUS/" "$PD/rsync-full/"
fi
if has_peer rsnapshot; then
    conf=$PD/rsnapshot.conf
    {
        printf 'config_version\t1.2\n'
        printf 'snapshot_root\t%s/\n' "$PD/rsnapshot"
        printf 'no_create_root\t0\n'
        printf 'cmd_cp\t%s\n' "$CP"
        printf 'cmd_rm\t%s\n' "$(command -v rm)"
        printf 'cmd_rsync\t%s\n' "$RSYNC"
        printf 'lockfile\t%s\n' "$PD/rsnapshot.pid"
        printf 'verbose\t2\n'
        printf 'retain\talpha\t5\n'
        printf 'backup\t%s/\tlocalhost/\n' "$CORPUS"
    } >"$conf"
    "$RSNAPSHOT" -c "$conf" configtest >"$RUN/rsnapshot-configtest.log" 2>&1 \
        || { tail_log "$RUN/rsnapshot-configtest.log"; die "rsnapshot configtest failed for $conf"; }
    peer_timed full "rsnapshot" - "1st run" "$RSNAPSHOT" -c "$conf" alpha
fi

# ---------------------------------------------------------------- 5. mutate, incrementals
set_state mutated
log "mutating the corpus (mutate.py --seed $MUTATE_SEED)"
python3 "$MUTATE" "$CORPUS" --seed "$MUTATE_SEED" >"$RUN/mutate.log" 2>&1 \
    || { tail_log "$RUN/mutate.log"; die "mutate.py failed"; }
cat "$RUN/mutate.log" >&2
meta mutate "$(tail -n 1 "$RUN/mutate.log")"

peer_timed incremental "stat walk" /dev/null "floor: find -printf" find "$CORPUS" -printf '%s %T@\n'
if (( RUN_HS )); then
    hs_timed incremental "$JOB" 1
    hs_verify incremental
fi
PREV=
if has_peer cp; then PREV=$PD/cp-full; elif has_peer rsync; then PREV=$PD/rsync-full; fi
if has_peer cp; then
    peer_timed incremental "cp -al" - "floor; PREV = cp -a copy" "$CP" -al "$PREV" "$PD/cpal-new"
fi
if has_peer rsync; then
    peer_timed incremental "rsync --link-dest" - "PREV = $(basename "$PREV")" \
        "$RSYNC" -a --delete --link-dest="$PREV" "$CORPUS/" "$PD/rsync-incr/"
fi
if has_peer rsnapshot; then
    peer_timed incremental "rsnapshot" - "2nd run" "$RSNAPSHOT" -c "$conf" alpha
fi

# ---------------------------------------------------------------- 6. report
stop_daemon
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
py report "$RUN" "$W/results-incremental.json" "$W/results"

# ---------------------------------------------------------------- corpus back to its generated state
if has_peer cp; then
    log "restoring the corpus to its generated state from the cp -a copy"
    if "$RSYNC" -aH --delete "$PD/cp-full/" "$CORPUS/" >"$RUN/restore.log" 2>&1 \
        && [[ $(fingerprint "$CORPUS") == "$FINGERPRINT" ]]; then
        set_state pristine
    else
        warn "could not restore the corpus; it will be regenerated on the next run"
    fi
else
    log "the corpus stays mutated (no cp -a copy to restore it from); it is regenerated on the next run"
fi

if (( VERIFY_FAILED )); then
    warn "hindsight snapshots did not match the corpus: the timings above are not valid (see $RUN/verify-*.txt)"
    exit 3
fi
trees="$RUN $PD"
(( RUN_HS )) && trees+=" $HS"
log "done; this run's logs and trees ($trees) stay until the next run moves them to $TRASH"
