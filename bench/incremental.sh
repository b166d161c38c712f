#!/usr/bin/env bash
# bench/incremental.sh: one full and one incremental backup with hindsight,
# timed against cp -a / cp -al / rsync / rsnapshot on the standard corpus.
#
# usage:  cargo build --release && bench/incremental.sh
#
# environment knobs (see bench/README.md):
#   BENCH_FILES=100000        corpus size (entries); 1000000 for the memory-scaling run
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (corpus, copies, logs, results)
#   HINDSIGHTD, HINDSIGHT     binaries (default ${CARGO_TARGET_DIR:-target}/release/...)
#   BENCH_PEERS="cp rsync rsnapshot"     peers to time ("none" for hindsight only)
#   BENCH_PEERS_ONLY=1        skip hindsight (no binaries needed)
#   BENCH_VERIFY=1            0: skip, 1: compare snapshot metadata, full: also contents
#   BENCH_WARM=1              read the corpus once before timing (warm page cache)
#   BENCH_NO_INSTALL=1        never run apt-get
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
HELPER=$SCRIPT_DIR/benchutil.py
GEN=$SCRIPT_DIR/corpus/gen_corpus.py
MUTATE=$SCRIPT_DIR/corpus/mutate.py

CORPUS_SEED=1
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

# ---------------------------------------------------------------- helpers
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
jstr() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
py() { python3 "$HELPER" "$@"; }

# show the last lines of a log file on stderr
tail_log() {
    local f=$1 n=${2:-20}
    [[ -s $f ]] || return 0
    printf -- '---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" -- "$f" >&2 || true
    printf -- '----\n' >&2
}

# ---------------------------------------------------------------- arguments
if ! [[ $BENCH_FILES =~ ^[0-9]+$ ]] || (( BENCH_FILES < 1000 )); then
    die "BENCH_FILES must be an integer >= 1000 (got '$BENCH_FILES')"
fi
N=$BENCH_FILES

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
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    [[ $TARGET_DIR == /* ]] || TARGET_DIR=$REPO/$TARGET_DIR
    HINDSIGHTD=${HINDSIGHTD:-$TARGET_DIR/release/hindsightd}
    HINDSIGHT=${HINDSIGHT:-$TARGET_DIR/release/hindsight}
    for b in "$HINDSIGHTD" "$HINDSIGHT"; do
        if [[ ! -x $b ]]; then
            die "hindsight binary not found or not executable: $b
  build the release binaries first:   (cd $REPO && cargo build --release)
  or point HINDSIGHTD=... HINDSIGHT=... at them,
  or run only the peer tools with BENCH_PEERS_ONLY=1"
        fi
    done
    HINDSIGHTD=$(realpath "$HINDSIGHTD")
    HINDSIGHT=$(realpath "$HINDSIGHT")
    case $HINDSIGHTD in */debug/*) warn "$HINDSIGHTD looks like a debug build: timings will not be representative" ;; esac
fi

command -v python3 >/dev/null || die "python3 is required"
missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v rsnapshot >/dev/null || missing+=(rsnapshot)
[[ -x /usr/bin/time ]] || missing+=(time)
if (( ${#missing[@]} )); then
    if [[ $BENCH_NO_INSTALL == 1 ]]; then
        die "missing: ${missing[*]} (BENCH_NO_INSTALL=1); install with: apt-get install -y rsync rsnapshot time"
    fi
    if [[ $(id -u) != 0 ]]; then
        die "missing: ${missing[*]}; install them with: sudo apt-get install -y rsync rsnapshot time"
    fi
    log "installing rsync rsnapshot time with apt-get (missing: ${missing[*]})"
    apt_log=$(mktemp /tmp/hindsight-bench-apt.XXXXXX)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$apt_log" 2>&1 || { tail_log "$apt_log"; die "apt-get update failed (log: $apt_log)"; }
    apt-get install -y -q --no-install-recommends rsync rsnapshot time >>"$apt_log" 2>&1 \
        || { tail_log "$apt_log"; die "apt-get install rsync rsnapshot time failed (log: $apt_log)"; }
    rm -f "$apt_log"
fi
RSNAPSHOT=$(command -v rsnapshot)
RSYNC=$(command -v rsync)
CP=$(command -v cp)

# ---------------------------------------------------------------- 2. work dir
mkdir -p "$BENCH_DIR"
W=$(cd "$BENCH_DIR" && pwd -P)
[[ $W != *$'\t'* && $W != *$'\n'* ]] || die "BENCH_DIR must not contain tabs or newlines (rsnapshot.conf is tab-separated)"
TRASH=$W/trash
CORPUS=$W/corpus-$N
STAMP=$W/corpus-$N.stamp
HS=$W/hindsight
PD=$W/peers
RUN=$W/run
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$TRASH"

exec 9>"$W/.lock"
flock -n 9 || die "another bench/incremental.sh is already running on $W"

HSD_PID=
PAUSED=()
VERIFY_FAILED=0

stop_daemon() {
    [[ -n $HSD_PID ]] || return 0
    if kill -0 "$HSD_PID" 2>/dev/null; then
        log "stopping hindsightd (pid $HSD_PID, SIGTERM)"
        kill -TERM "$HSD_PID" 2>/dev/null || true
        local i
        for (( i = 0; i < 600; i++ )); do
            kill -0 "$HSD_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$HSD_PID" 2>/dev/null; then
            warn "hindsightd (pid $HSD_PID) still running 60 s after SIGTERM; leaving it (kill it yourself)"
            HSD_PID=
            return 0
        fi
    fi
    local rc=0
    wait "$HSD_PID" 2>/dev/null || rc=$?
    (( rc == 0 )) || warn "hindsightd exited with status $rc (log: $RUN/hindsightd.log)"
    rm -f "$HS/hindsightd.pid"
    HSD_PID=
}

# true when PID is a live `rm -rf` of something under $TRASH (started by an earlier run)
is_trash_rm() {
    local pid=$1 cmd
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == rm\ * && $cmd == *" $TRASH/"* ]]
}

# delete everything in $TRASH in the background (this disk frees ~300 files/s)
start_trash_deletion() {
    local e pid started=()
    shopt -s nullglob dotglob
    for e in "$TRASH"/*; do
        [[ $e == *.pid ]] && continue
        if [[ -f $e.pid ]] && is_trash_rm "$(<"$e.pid")"; then
            continue                                  # still being deleted (resumed already)
        fi
        nohup nice -n 19 rm -rf -- "$e" </dev/null >/dev/null 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$e.pid"
        started+=("$pid")
    done
    for e in "$TRASH"/*.pid; do                       # pid files of finished deletions
        [[ -e ${e%.pid} ]] || rm -f -- "$e"
    done
    shopt -u nullglob dotglob
    if (( ${#started[@]} )); then
        log "deleting old trees in the background (pids ${started[*]}): $TRASH"
    fi
}

cleanup() {
    local rc=$?
    set +e
    stop_daemon
    local p
    for p in "${PAUSED[@]}"; do kill -CONT "$p" 2>/dev/null; done
    start_trash_deletion
    exit "$rc"
}
trap cleanup EXIT
trap 'printf "error: unexpected failure at %s line %s: %s\n" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# pause background deletions of earlier runs while we measure (resumed on exit)
shopt -s nullglob
for f in "$TRASH"/*.pid; do
    pid=$(<"$f") || continue
    if is_trash_rm "$pid"; then
        kill -STOP "$pid" 2>/dev/null && PAUSED+=("$pid")
    elif [[ ! -e ${f%.pid} ]]; then
        rm -f -- "$f"
    fi
done
shopt -u nullglob
if (( ${#PAUSED[@]} )); then
    log "paused ${#PAUSED[@]} background deletion(s) of earlier runs until this run ends (pids ${PAUSED[*]})"
fi

# a daemon left over by an interrupted earlier run (started by this script)
if [[ -f $HS/hindsightd.pid ]]; then
    old=$(<"$HS/hindsightd.pid")
    if [[ $old =~ ^[0-9]+$ ]] && [[ -r /proc/$old/cmdline ]] \
        && tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF -- "--state-dir $HS/state"; then
        log "stopping hindsightd left over from an earlier run (pid $old)"
        kill -TERM "$old" 2>/dev/null || true
        for (( i = 0; i < 300; i++ )); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$old" 2>/dev/null && die "leftover hindsightd (pid $old) does not stop; stop it and retry"
    fi
fi

# move the previous run's trees out of the way (deleted in the background at the end)
to_trash() {
    local src=$1 dst=$TRASH/$RUN_ID
    [[ -e $src || -L $src ]] || return 0
    mkdir -p "$dst"
    mv -- "$src" "$dst/$(basename -- "$src").$(date +%s%N)"
}
for d in "$HS" "$PD" "$RUN" "$CORPUS.partial"; do to_trash "$d"; done
mkdir -p "$RUN" "$PD"
RESULTS=$RUN/results.jsonl
: >"$RESULTS"

meta() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')" >>"$RUN/meta.tsv"; }
: >"$RUN/meta.tsv"

# ---------------------------------------------------------------- corpus
stamp_get() { [[ -f $STAMP ]] || return 0; sed -n "s/^$1=//p" "$STAMP" | sed -n 1p; }

# identity of the tree: names, types, sizes, mtimes, modes, link counts, link targets
# (not directory sizes, which ext4 never shrinks)
fingerprint() {
    find "$1" \( -type d -printf '%P\t%y\t-\t%T@\t%m\0' \) -o -printf '%P\t%y\t%s\t%T@\t%m\t%n\t%l\0' \
        | LC_ALL=C sort -z | sha256sum | cut -d' ' -f1
}

corpus_ok=0
if [[ -d $CORPUS && -f $STAMP ]]; then
    if [[ $(stamp_get files) == "$N" && $(stamp_get seed) == "$CORPUS_SEED" && $(stamp_get state) == pristine ]]; then
        log "checking the existing corpus $CORPUS"
        if [[ $(fingerprint "$CORPUS") == "$(stamp_get fingerprint)" ]]; then
            corpus_ok=1
        else
            log "the corpus changed since it was generated: regenerating it"
        fi
    else
        log "the corpus is not in its generated state (state=$(stamp_get state)): regenerating it"
    fi
fi

# estimated size of one copy of the corpus (bytes), for the disk check
CORPUS_BYTES=$(stamp_get bytes)
(( corpus_ok )) && [[ $CORPUS_BYTES =~ ^[0-9]+$ ]] || CORPUS_BYTES=$(( N * 23200 ))
copies=0
(( corpus_ok )) || copies=$(( copies + 1 ))
(( RUN_HS )) && copies=$(( copies + 1 ))
for p in "${PEERS[@]}"; do copies=$(( copies + 1 )); done
need=$(( copies * CORPUS_BYTES + CORPUS_BYTES / 10 + (1 << 30) ))
avail=$(df -B1 --output=avail "$W" | tail -n 1 | tr -d ' ')
if (( need > avail )); then
    die "not enough disk space in $W: need ~$(( need >> 30 )) GiB ($copies copies of a ~$(( CORPUS_BYTES >> 20 )) MiB corpus), $(( avail >> 30 )) GiB free.
  Time fewer peers (e.g. BENCH_PEERS=cp, or BENCH_PEERS=none for hindsight only), use another BENCH_DIR,
  or wait for the background deletion of $TRASH to free space."
fi
inodes=$(df --output=iavail "$W" | tail -n 1 | tr -d ' ')
if [[ $inodes =~ ^[0-9]+$ ]] && (( inodes > 0 && inodes < (copies + 1) * N * 21 / 20 )); then
    die "not enough free inodes in $W: ${inodes} free, need ~$(( (copies + 1) * N * 21 / 20 ))"
fi

if (( ! corpus_ok )); then
    to_trash "$CORPUS"
    rm -f "$STAMP"
    log "generating the corpus: $N entries (seed $CORPUS_SEED, ~$(( CORPUS_BYTES >> 20 )) MiB, about 35 s per 100k files)"
    python3 "$GEN" "$CORPUS.partial" --files "$N" --seed "$CORPUS_SEED" >"$RUN/gen_corpus.log" 2>&1 \
        || { tail_log "$RUN/gen_corpus.log"; die "corpus generation failed"; }
    cat "$RUN/gen_corpus.log" >&2
    mv -- "$CORPUS.partial" "$CORPUS"
    bytes=$(sed -n 's/.* bytes=\([0-9]*\) .*/\1/p' "$RUN/gen_corpus.log")
    [[ -n $bytes ]] || bytes=$(du -sb "$CORPUS" | cut -f1)
    {
        echo "files=$N"
        echo "seed=$CORPUS_SEED"
        echo "bytes=$bytes"
        echo "generated=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "state=pristine"
        echo "fingerprint=$(fingerprint "$CORPUS")"
    } >"$STAMP.tmp"
    mv -- "$STAMP.tmp" "$STAMP"
    CORPUS_BYTES=$bytes
else
    log "reusing the corpus $CORPUS ($N entries, $(( CORPUS_BYTES >> 20 )) MiB)"
fi
FINGERPRINT=$(stamp_get fingerprint)

set_state() {
    sed -i "s/^state=.*/state=$1/" "$STAMP"
}

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta files "$N"
meta corpus "$CORPUS"
meta corpus_bytes "$CORPUS_BYTES"
meta corpus_seed "$CORPUS_SEED"
meta mutate_seed "$MUTATE_SEED"
meta corpus_fingerprint "$FINGERPRINT"
meta bench_dir "$W"
meta host "$(uname -n)"
meta kernel "$(uname -r)"
meta cpus "$(nproc)"
meta mem_total_kib "$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
meta filesystem "$(findmnt -n -o SOURCE,FSTYPE,OPTIONS -T "$W" 2>/dev/null || echo unknown)"
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta peers "${PEERS[*]:-none}"
meta cp_version "$("$CP" --version | sed -n 1p)"
meta rsync_version "$("$RSYNC" --version | sed -n 1p)"
meta rsnapshot_version "$("$RSNAPSHOT" version 2>/dev/null | sed -n 1p || true)"
meta python_version "$(python3 --version 2>&1)"

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    warn "load average is $load1 on $(nproc) CPUs: the machine is busy, wall times will be inflated (cpu s is steadier)"
fi

mem_avail=$(( $(awk '/^MemAvailable:/{print $2}' /proc/meminfo) * 1024 ))
if (( CORPUS_BYTES > mem_avail / 2 )); then
    warn "the corpus ($(( CORPUS_BYTES >> 30 )) GiB) does not fit in the page cache next to its copies: timings are cold-cache and not comparable with PEERS.md (memory figures are)"
    meta cache "cold: corpus larger than half of MemAvailable"
elif [[ $BENCH_WARM == 1 ]]; then
    log "reading the corpus once to warm the page cache (BENCH_WARM=0 to skip)"
    tar -C "$W" -cf - "corpus-$N" | cat >/dev/null
    meta cache "warm"
fi

# ---------------------------------------------------------------- timing helpers
# peer_timed PHASE TOOL STDOUT NOTE cmd...: time cmd with GNU time, record it
peer_timed() {
    local phase=$1 tool=$2 out=$3 note=$4
    shift 4
    local label=${phase}-${tool//[^a-zA-Z0-9]/_}
    local tf=$RUN/time-$label.txt lf=$RUN/$label.log
    [[ $out == - ]] && out=$lf
    sync
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$phase: $tool"
    local rc=0
    /usr/bin/time -v -o "$tf" "$@" >"$out" 2>"$lf.err" || rc=$?
    if (( rc != 0 )); then
        tail_log "$lf.err"
        die "$tool ($phase) failed with exit status $rc: $*"
    fi
    local wall cpu rss
    read -r wall cpu rss _ < <(py gnutime "$tf")
    log "  wall ${wall} s, cpu ${cpu} s, max RSS $(( rss / 1024 )) MiB"
    py record "$RESULTS" "$phase" "$tool" "$wall" "$cpu" "$rss" "$*" \
        "{\"load1\": $load, \"note\": $(jstr "$note")}"
}

CLK_TCK=$(getconf CLK_TCK)
# utime+stime(+children) of the daemon, in clock ticks
daemon_ticks() {
    local s rest
    s=$(<"/proc/$HSD_PID/stat")
    rest=${s##*) }
    local -a f
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
    echo $(( f[11] + f[12] + f[13] + f[14] ))
}
daemon_vm() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$HSD_PID/status"; }

hs() { "$HINDSIGHT" --socket "$SOCK" "$@"; }

check_daemon() {
    kill -0 "$HSD_PID" 2>/dev/null && return 0
    tail_log "$RUN/hindsightd.log" 40
    HSD_PID=
    die "hindsightd exited unexpectedly (log: $RUN/hindsightd.log)"
}

# hs_timed PHASE: one `job run --wait`, timed; daemon CPU and VmHWM
hs_timed() {
    local phase=$1
    local tf=$RUN/time-$phase-hindsight.txt out=$RUN/$phase-hindsight.log
    check_daemon
    local hwm_note="daemon cpu; VmHWM since daemon start"
    if [[ $phase != full ]]; then
        # reset the peak-RSS mark so VmHWM covers this run only
        if echo 5 >"/proc/$HSD_PID/clear_refs" 2>/dev/null; then
            hwm_note="daemon cpu; VmHWM of this run"
        else
            hwm_note="daemon cpu; VmHWM since daemon start (clear_refs refused)"
        fi
    fi
    sync
    local load t0 t1
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$phase: hindsight job run $JOB --wait"
    t0=$(daemon_ticks)
    local rc=0
    /usr/bin/time -v -o "$tf" "$HINDSIGHT" --socket "$SOCK" job run "$JOB" --wait >"$out" 2>&1 </dev/null || rc=$?
    check_daemon
    t1=$(daemon_ticks)
    local hwm rss
    hwm=$(daemon_vm VmHWM)
    rss=$(daemon_vm VmRSS)
    if (( rc != 0 )); then
        tail_log "$out"
        tail_log "$RUN/hindsightd.log" 30
        die "hindsight job run ($phase) failed with exit status $rc (output: $out, daemon log: $RUN/hindsightd.log)"
    fi
    local wall cli_cpu cli_rss
    read -r wall cli_cpu cli_rss _ < <(py gnutime "$tf")
    local cpu
    cpu=$(awk -v a="$t0" -v b="$t1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    local summary="{}"
    if hs run list --job "$JOB" --json >"$RUN/runs-$phase.json" 2>"$RUN/runs-$phase.err"; then
        summary=$(py run-summary "$RUN/runs-$phase.json" 2>>"$RUN/runs-$phase.err") || summary="{}"
    fi
    log "  wall ${wall} s, daemon cpu ${cpu} s, daemon VmHWM $(( hwm / 1024 )) MiB (VmRSS now $(( rss / 1024 )) MiB)"
    local extra
    extra=$(python3 -c '
import json, sys
extra = json.loads(sys.argv[1])
extra.update({"load1": float(sys.argv[2]), "note": sys.argv[3], "cli_cpu_s": float(sys.argv[4]),
              "cli_peak_rss_mib": round(int(sys.argv[5]) / 1024, 2),
              "daemon_vmrss_after_mib": round(int(sys.argv[6]) / 1024, 2)})
print(json.dumps(extra))' "$summary" "$load" "$hwm_note" "$cli_cpu" "$cli_rss" "$rss")
    py record "$RESULTS" "$phase" hindsight "$wall" "$cpu" "$hwm" "hindsight job run $JOB --wait" "$extra"
}

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
    (( ${#SOCK} < 100 )) || die "socket path too long (${#SOCK} bytes, max 107): use a shorter BENCH_DIR"
    meta hindsightd "$HINDSIGHTD"
    meta hindsight "$HINDSIGHT"
    meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
    meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
    meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"

    log "starting hindsightd (state $HS/state, socket $SOCK, log $RUN/hindsightd.log)"
    "$HINDSIGHTD" --state-dir "$HS/state" --socket "$SOCK" --no-mount </dev/null >"$RUN/hindsightd.log" 2>&1 9>&- &
    HSD_PID=$!
    echo "$HSD_PID" >"$HS/hindsightd.pid"
    ready=0
    for (( i = 0; i < 300; i++ )); do
        check_daemon
        if hs status >"$RUN/status.log" 2>&1; then ready=1; break; fi
        sleep 0.1
    done
    (( ready )) || { tail_log "$RUN/status.log"; tail_log "$RUN/hindsightd.log"; die "hindsightd not ready after 30 s (hindsight status keeps failing)"; }
    meta hindsightd_idle_vmhwm_kib "$(daemon_vm VmHWM)"
    log "hindsightd ready (pid $HSD_PID, VmHWM $(( $(daemon_vm VmHWM) / 1024 )) MiB idle)"

    hs destination add "$DEST_NAME" --type local --path "$HS/dest" >"$RUN/setup.log" 2>&1 \
        || { tail_log "$RUN/setup.log"; die "hindsight destination add failed"; }
    hs job add "$JOB" --source "$CORPUS" --destination "$DEST_NAME" >>"$RUN/setup.log" 2>&1 \
        || { tail_log "$RUN/setup.log"; die "hindsight job add failed"; }
fi

# ---------------------------------------------------------------- 4. full backups (unmutated corpus)
if (( RUN_HS )); then
    hs_timed full
    hs_verify full
fi
if has_peer cp; then
    peer_timed full "cp -a" - "" "$CP" -a "$CORPUS" "$PD/cp-full"
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
    hs_timed incremental
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
