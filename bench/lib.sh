# shellcheck shell=bash disable=SC2034
# bench/lib.sh: bash helpers shared by the bench/*.sh scripts.
# Sourced, never run. The sourcing script sets SCRIPT_DIR (the bench/ dir)
# before sourcing, and `set -Eeuo pipefail` itself.
#
# What is here:
#   log/warn/die/jstr/py/tail_log     messages and the python helper
#   resolve_binaries                   HINDSIGHTD / HINDSIGHT from the release build
#   ensure_packages                    apt-get install of missing tools
#   bench_workdir / bench_lock         W, TRASH, CORPUS, STAMP; the per-BENCH_DIR lock
#   trash: to_trash, pause_trash_deletions, resume_trash_deletions, start_trash_deletion
#   corpus: stamp_get, fingerprint, corpus_check, check_space, corpus_generate, set_state, warm_corpus
#   daemon: start_daemon, check_daemon, stop_daemon, stop_leftover_daemon, daemon_ticks, pid_vm
#   meta, meta_machine                 the run's meta.tsv
#   hs, elapsed, build_release         the CLI on $SOCK, EPOCHREALTIME differences, cargo build
#   wait_disk_quiet                    before a timed run: no discards of earlier deletions running
#   peer_timed, hs_timed               one timed peer command / `job run --wait` into $RESULTS
#   mounts: is_mounted, mounts_under, wait_gone, find_mount_pid, drop_caches_init,
#           drop_caches, hang_report

REPO=$(cd "$SCRIPT_DIR/.." && pwd)
HELPER=$SCRIPT_DIR/benchutil.py
GEN=$SCRIPT_DIR/corpus/gen_corpus.py
MUTATE=$SCRIPT_DIR/corpus/mutate.py
PICK=$SCRIPT_DIR/corpus/pick_targets.py
CORPUS_SEED=1

# ---------------------------------------------------------------- messages
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

# ---------------------------------------------------------------- knobs
check_bench_files() {
    if ! [[ $BENCH_FILES =~ ^[0-9]+$ ]] || (( BENCH_FILES < 1000 )); then
        die "BENCH_FILES must be an integer >= 1000 (got '$BENCH_FILES')"
    fi
    N=$BENCH_FILES
}

# ---------------------------------------------------------------- binaries and tools
# resolve_binaries [HINT]: set HINDSIGHTD and HINDSIGHT (absolute), or die with HINT
resolve_binaries() {
    local hint=${1:-}
    local target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
    HINDSIGHTD=${HINDSIGHTD:-$target_dir/release/hindsightd}
    HINDSIGHT=${HINDSIGHT:-$target_dir/release/hindsight}
    local b
    for b in "$HINDSIGHTD" "$HINDSIGHT"; do
        if [[ ! -x $b ]]; then
            die "hindsight binary not found or not executable: $b
  build the release binaries first:   (cd $REPO && cargo build --release --workspace)
  or point HINDSIGHTD=... HINDSIGHT=... at them${hint:+,
  $hint}"
        fi
    done
    HINDSIGHTD=$(realpath "$HINDSIGHTD")
    HINDSIGHT=$(realpath "$HINDSIGHT")
    case $HINDSIGHTD in */debug/*) warn "$HINDSIGHTD looks like a debug build: timings will not be representative" ;; esac
    # a stale build measures other code than the checkout (seen: target/ left from an
    # earlier session while the builds went to CARGO_TARGET_DIR)
    local newer
    newer=$(find "$REPO" -path "$REPO/target" -prune -o \( -name '*.rs' -o -name Cargo.toml \) -newer "$HINDSIGHTD" -print -quit 2>/dev/null || true)
    [[ -z $newer ]] || warn "$HINDSIGHTD is older than the sources (e.g. $newer): rebuild, or set CARGO_TARGET_DIR to where the builds go"
}

# ensure_packages CHECK:PACKAGE...: install (apt-get) the packages whose CHECK fails.
# CHECK is a command name, or an absolute path that must be executable.
ensure_packages() {
    command -v python3 >/dev/null || die "python3 is required"
    local spec chk pkg missing=() pkgs=()
    for spec in "$@"; do
        chk=${spec%%:*} pkg=${spec#*:}
        if [[ $chk == /* ]]; then [[ -x $chk ]] && continue; else command -v "$chk" >/dev/null && continue; fi
        missing+=("$chk") pkgs+=("$pkg")
    done
    (( ${#missing[@]} )) || return 0
    if [[ ${BENCH_NO_INSTALL:-0} == 1 ]]; then
        die "missing: ${missing[*]} (BENCH_NO_INSTALL=1); install with: apt-get install -y --no-install-recommends ${pkgs[*]}"
    fi
    if [[ $(id -u) != 0 ]]; then
        die "missing: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
    fi
    log "installing ${pkgs[*]} with apt-get (missing: ${missing[*]})"
    local apt_log
    apt_log=$(mktemp /tmp/hindsight-bench-apt.XXXXXX)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$apt_log" 2>&1 || { tail_log "$apt_log"; die "apt-get update failed (log: $apt_log)"; }
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$apt_log" 2>&1 \
        || { tail_log "$apt_log"; die "apt-get install ${pkgs[*]} failed (log: $apt_log)"; }
    rm -f "$apt_log"
}

# ---------------------------------------------------------------- work dir, lock
# bench_workdir: create BENCH_DIR; set W, TRASH, CORPUS, STAMP, RUN_ID
bench_workdir() {
    mkdir -p "$BENCH_DIR"
    W=$(cd "$BENCH_DIR" && pwd -P)
    [[ $W != *$'\t'* && $W != *$'\n'* ]] || die "BENCH_DIR must not contain tabs or newlines"
    TRASH=$W/trash
    CORPUS=$W/corpus-$N
    STAMP=$W/corpus-$N.stamp
    RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$TRASH"
}

# bench_lock NAME: one benchmark at a time per BENCH_DIR (they share the corpus)
bench_lock() {
    exec 9>"$W/.lock"
    flock -n 9 || die "another benchmark ($1 or another bench/*.sh) is already running on $W"
}

# ---------------------------------------------------------------- trash
PAUSED=()

# true when PID is a live `rm -rf` of something under $TRASH (started by an earlier run)
is_trash_rm() {
    local pid=$1 cmd
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == rm\ * && $cmd == *" $TRASH/"* ]]
}

# delete everything in $TRASH in the background (this disk frees ~300 files/s).
# --one-file-system: never descend into something still mounted in the trash.
start_trash_deletion() {
    local e pid started=()
    shopt -s nullglob dotglob
    for e in "$TRASH"/*; do
        [[ $e == *.pid ]] && continue
        if [[ -f $e.pid ]] && is_trash_rm "$(<"$e.pid")"; then
            continue                                  # still being deleted (resumed already)
        fi
        nohup nice -n 19 rm -rf --one-file-system -- "$e" </dev/null >/dev/null 2>&1 9>&- &
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

# pause background deletions of earlier runs while we measure (resume_trash_deletions on exit)
pause_trash_deletions() {
    local f pid
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
}

resume_trash_deletions() {
    local p
    for p in "${PAUSED[@]}"; do kill -CONT "$p" 2>/dev/null; done
    PAUSED=()
}

# move a tree out of the way (deleted in the background at the end)
to_trash() {
    local src=$1 dst=$TRASH/$RUN_ID
    [[ -e $src || -L $src ]] || return 0
    mkdir -p "$dst"
    mv -- "$src" "$dst/$(basename -- "$src").$(date +%s%N)"
}

# ---------------------------------------------------------------- meta
# META must be set (the run's meta.tsv)
meta() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')" >>"$META"; }

meta_machine() {
    meta host "$(uname -n)"
    meta kernel "$(uname -r)"
    meta cpus "$(nproc)"
    meta mem_total_kib "$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
    meta filesystem "$(findmnt -n -o SOURCE,FSTYPE,OPTIONS -T "$W" 2>/dev/null || echo unknown)"
    meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    meta python_version "$(python3 --version 2>&1)"
}

# warn_if_busy: warning when the 1-minute load average is above half the CPUs
warn_if_busy() {
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load1" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
        warn "load average is $load1 on $(nproc) CPUs: the machine is busy, wall times will be inflated${1:+ ($1)}"
    fi
}

# ---------------------------------------------------------------- corpus
stamp_get() { [[ -f $STAMP ]] || return 0; sed -n "s/^$1=//p" "$STAMP" | sed -n 1p; }

# identity of the tree: names, types, sizes, mtimes, modes, link counts, link targets
# (not directory sizes, which ext4 never shrinks)
fingerprint() {
    find "$1" \( -type d -printf '%P\t%y\t-\t%T@\t%m\0' \) -o -printf '%P\t%y\t%s\t%T@\t%m\t%n\t%l\0' \
        | LC_ALL=C sort -z | sha256sum | cut -d' ' -f1
}

# corpus_check: set corpus_ok (1 when $CORPUS is there and matches its stamp) and
# CORPUS_BYTES (size of one copy, an estimate when the corpus has to be generated)
corpus_check() {
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
    CORPUS_BYTES=$(stamp_get bytes)
    (( corpus_ok )) && [[ $CORPUS_BYTES =~ ^[0-9]+$ ]] || CORPUS_BYTES=$(( N * 23200 ))
}

# check_space NEED_BYTES INODES WHAT HINT: die when BENCH_DIR lacks the space or inodes
check_space() {
    local need=$1 need_inodes=$2 what=$3 hint=${4:-}
    local avail inodes
    avail=$(df -B1 --output=avail "$W" | tail -n 1 | tr -d ' ')
    if (( need > avail )); then
        die "not enough disk space in $W: need ~$(( need >> 30 )) GiB ($what), $(( avail >> 30 )) GiB free.
  ${hint:+$hint
  }Use another BENCH_DIR, or wait for the background deletion of $TRASH to free space."
    fi
    inodes=$(df --output=iavail "$W" | tail -n 1 | tr -d ' ')
    if [[ $inodes =~ ^[0-9]+$ ]] && (( inodes > 0 && inodes < need_inodes )); then
        die "not enough free inodes in $W: ${inodes} free, need ~$need_inodes"
    fi
}

# corpus_generate LOGDIR: (re)generate $CORPUS and its stamp unless corpus_ok
corpus_generate() {
    local logdir=$1
    if (( corpus_ok )); then
        log "reusing the corpus $CORPUS ($N entries, $(( CORPUS_BYTES >> 20 )) MiB)"
    else
        to_trash "$CORPUS"
        rm -f "$STAMP"
        log "generating the corpus: $N entries (seed $CORPUS_SEED, ~$(( CORPUS_BYTES >> 20 )) MiB, about 35 s per 100k files)"
        python3 "$GEN" "$CORPUS.partial" --files "$N" --seed "$CORPUS_SEED" >"$logdir/gen_corpus.log" 2>&1 \
            || { tail_log "$logdir/gen_corpus.log"; die "corpus generation failed"; }
        cat "$logdir/gen_corpus.log" >&2
        mv -- "$CORPUS.partial" "$CORPUS"
        local bytes
        bytes=$(sed -n 's/.* bytes=\([0-9]*\) .*/\1/p' "$logdir/gen_corpus.log")
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
        corpus_ok=1
    fi
    FINGERPRINT=$(stamp_get fingerprint)
}

set_state() {
    sed -i "s/^state=.*/state=$1/" "$STAMP"
}

# read the corpus once (page cache)
warm_corpus() {
    tar -C "$W" -cf - "corpus-$N" | cat >/dev/null
}

# ---------------------------------------------------------------- daemon
# The sourcing script sets HSD_LOG (log file) and HSD_PIDFILE before start_daemon.
HSD_PID=
HSD_LOG=${HSD_LOG:-/dev/null}
HSD_PIDFILE=${HSD_PIDFILE:-}

# start_daemon STATE_DIR SOCKET [ARGS...]: start hindsightd, wait until `hindsight status` works
start_daemon() {
    local state=$1 sock=$2
    shift 2
    (( ${#sock} < 100 )) || die "socket path too long (${#sock} bytes, max 107): use a shorter BENCH_DIR"
    log "starting hindsightd (state $state, socket $sock $*, log $HSD_LOG)"
    "$HINDSIGHTD" --state-dir "$state" --socket "$sock" "$@" </dev/null >>"$HSD_LOG" 2>&1 9>&- &
    HSD_PID=$!
    [[ -z $HSD_PIDFILE ]] || echo "$HSD_PID" >"$HSD_PIDFILE"
    local i ready=0
    for (( i = 0; i < 300; i++ )); do
        check_daemon
        if "$HINDSIGHT" --socket "$sock" status >"$HSD_LOG.status" 2>&1; then ready=1; break; fi
        sleep 0.1
    done
    (( ready )) || { tail_log "$HSD_LOG.status"; tail_log "$HSD_LOG"; die "hindsightd not ready after 30 s (hindsight status keeps failing)"; }
}

check_daemon() {
    kill -0 "$HSD_PID" 2>/dev/null && return 0
    tail_log "$HSD_LOG" 40
    HSD_PID=
    die "hindsightd exited unexpectedly (log: $HSD_LOG)"
}

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
    (( rc == 0 )) || warn "hindsightd exited with status $rc (log: $HSD_LOG)"
    [[ -z $HSD_PIDFILE ]] || rm -f "$HSD_PIDFILE"
    HSD_PID=
}

# stop_leftover_daemon PIDFILE STATE_DIR: a daemon left over by an interrupted earlier run
stop_leftover_daemon() {
    local pidfile=$1 state=$2 old i
    [[ -f $pidfile ]] || return 0
    old=$(<"$pidfile")
    if [[ $old =~ ^[0-9]+$ ]] && [[ -r /proc/$old/cmdline ]] \
        && tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF -- "--state-dir $state"; then
        log "stopping hindsightd left over from an earlier run (pid $old)"
        kill -TERM "$old" 2>/dev/null || true
        for (( i = 0; i < 300; i++ )); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$old" 2>/dev/null && die "leftover hindsightd (pid $old) does not stop; stop it and retry"
    fi
    return 0
}

CLK_TCK=$(getconf CLK_TCK)
# pid_ticks PID: utime+stime(+children) of a process, in clock ticks
pid_ticks() {
    local s rest
    s=$(<"/proc/$1/stat")
    rest=${s##*) }
    local -a f
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
    echo $(( f[11] + f[12] + f[13] + f[14] ))
}
daemon_ticks() { pid_ticks "$HSD_PID"; }

# pid_vm PID KEY: a /proc/PID/status value in KiB (VmHWM, VmRSS)
pid_vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
daemon_vm() { pid_vm "$HSD_PID" "$1"; }

# daemon_run_cleanup [CMD...]: the end of a run that started a daemon (an
# EXIT trap: `install_traps daemon_run_cleanup` or `install_traps
# "daemon_run_cleanup stop_services"`): the daemon stopped, CMD run, DAMON
# and the trash deletions resumed, the trash deleted in the background; exits
# with the run's status
daemon_run_cleanup() {
    local rc=$?
    set +e
    stop_daemon
    "$@"
    damon_resume
    resume_trash_deletions
    start_trash_deletion
    exit "$rc"
}

# install_traps FN: run FN on exit, report the failing line on ERR, and turn
# INT/TERM into the usual exit statuses (so FN still runs)
install_traps() {
    # shellcheck disable=SC2064  # FN is expanded now, on purpose
    trap "$1" EXIT
    trap 'printf "error: unexpected failure at %s line %s: %s\n" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND" >&2' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# hs ARGS...: the CLI on the daemon socket $SOCK (set by the sourcing script)
# shellcheck disable=SC2153
hs() { "$HINDSIGHT" --socket "$SOCK" "$@"; }

# elapsed T0 T1: seconds between two $EPOCHREALTIME values
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

# fastest WALL...: the 1-based position of the smallest of these times (1 when none is given)
fastest() {
    printf '%s\n' "$@" | awk 'NR == 1 || $1 + 0 < min { min = $1 + 0; at = NR } END { print at ? at : 1 }'
}

# build_release: `cargo build --release --workspace` in the repository (BENCH_BUILD=0 skips it).
# CARGO_TARGET_DIR is used as set; the caller may default it.
build_release() {
    [[ ${BENCH_BUILD:-1} == 1 ]] || return 0
    command -v cargo >/dev/null || die "cargo not found (BENCH_BUILD=0 to use existing binaries)"
    local blog
    blog=$(mktemp /tmp/hindsight-bench-build.XXXXXX)
    log "building the release binaries (cargo build --release --workspace, CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target})"
    if ! (cd "$REPO" && cargo build --release --workspace) >"$blog" 2>&1; then
        tail_log "$blog" 30
        die "cargo build --release failed (log: $blog; BENCH_BUILD=0 to use existing binaries)"
    fi
    rm -f "$blog"
}

# ---------------------------------------------------------------- disk quiet
# wait_disk_quiet [MAX_S]: wait (at most MAX_S, default 60) until the disk under $W has been
# busy less than 5% of one second. On this machine deleted files keep the disk busy with
# discards for minutes, and a run measured meanwhile is not comparable with one that is not.
wait_disk_quiet() {
    local max=${1:-60} dev name t0 busy waited=0
    dev=$(findmnt -n -o SOURCE --target "$W" 2>/dev/null) || return 0
    name=$(basename -- "$(readlink -f -- "$dev")")
    grep -q " $name " /proc/diskstats || return 0
    while (( waited < max )); do
        t0=$(awk -v d="$name" '$3 == d { print $13 }' /proc/diskstats)
        sleep 1
        busy=$(( $(awk -v d="$name" '$3 == d { print $13 }' /proc/diskstats) - t0 ))
        (( busy < 50 )) && break
        waited=$(( waited + 1 ))
    done
    (( waited == 0 )) || log "  waited ${waited} s for the disk to be quiet (io ms in the last second: $busy)"
}

# ---------------------------------------------------------------- timed runs
# Both append one JSON line to $RESULTS (see `benchutil.py record`) and keep their
# time -v output and logs in $RUN.

# peer_timed PHASE TOOL STDOUT NOTE cmd...: time cmd with GNU time (wall, cpu of the tree, max RSS)
peer_timed() {
    local phase=$1 tool=$2 out=$3 note=$4
    shift 4
    local label=${phase}-${tool//[^a-zA-Z0-9]/_}
    local tf=$RUN/time-$label.txt lf=$RUN/$label.log
    [[ $out == - ]] && out=$lf
    sync
    wait_disk_quiet
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

# hs_timed PHASE JOB RESET_HWM: one `hindsight job run JOB --wait`, timed. Wall: the CLI's
# (as the user sees it); cpu: the daemon's utime+stime; peak: the daemon's VmHWM, reset
# first (clear_refs) when RESET_HWM is 1 so that it covers this run only.
hs_timed() {
    local phase=$1 job=$2 reset=${3:-0}
    local tf=$RUN/time-$phase-hindsight.txt out=$RUN/$phase-hindsight.log
    check_daemon
    local hwm_note="daemon cpu; VmHWM since daemon start"
    if (( reset )); then
        if echo 5 >"/proc/$HSD_PID/clear_refs" 2>/dev/null; then
            hwm_note="daemon cpu; VmHWM of this run"
        else
            hwm_note="daemon cpu; VmHWM since daemon start (clear_refs refused)"
        fi
    fi
    sync
    wait_disk_quiet
    local load t0 t1
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$phase: hindsight job run $job --wait"
    t0=$(daemon_ticks)
    local rc=0
    /usr/bin/time -v -o "$tf" "$HINDSIGHT" --socket "$SOCK" job run "$job" --wait >"$out" 2>&1 </dev/null || rc=$?
    check_daemon
    t1=$(daemon_ticks)
    local hwm rss
    hwm=$(daemon_vm VmHWM)
    rss=$(daemon_vm VmRSS)
    if (( rc != 0 )); then
        tail_log "$out"
        tail_log "$HSD_LOG" 30
        die "hindsight job run $job ($phase) failed with exit status $rc (output: $out, daemon log: $HSD_LOG)"
    fi
    local wall cli_cpu cli_rss
    read -r wall cli_cpu cli_rss _ < <(py gnutime "$tf")
    local cpu
    cpu=$(awk -v a="$t0" -v b="$t1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    local summary="{}"
    if hs run list --job "$job" --json >"$RUN/runs-$phase.json" 2>"$RUN/runs-$phase.err"; then
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
    py record "$RESULTS" "$phase" hindsight "$wall" "$cpu" "$hwm" "hindsight job run $job --wait" "$extra"
}

# ---------------------------------------------------------------- FUSE mounts
is_mounted() { findmnt -n -M "$1" >/dev/null 2>&1; }

# mounts_under DIR: every mount below DIR (an interrupted earlier run, or this one), deepest first
mounts_under() {
    awk -v m="$1/" '{ p = $5; gsub(/\\040/, " ", p); if (index(p, m) == 1) print p }' /proc/self/mountinfo | sort -r
}

# wait_gone PID SECONDS: wait until PID has exited (our child or not)
wait_gone() {
    local pid=$1 n=$(( $2 * 10 )) i
    for (( i = 0; i < n; i++ )); do
        kill -0 "$pid" 2>/dev/null || return 0
        # a zombie child of ours counts as gone
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
        sleep 0.1
    done
    return 1
}

# find_mount_pid DIR: the `hindsight mount` process serving DIR (the --background parent has exited)
find_mount_pid() {
    local want=$1 p args
    for p in /proc/[0-9]*; do
        args=$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null) || continue
        [[ $args == "$HINDSIGHT"$'\n'mount$'\n'* ]] || continue
        [[ $args == *$'\n'"$want" ]] || continue
        [[ $args == *--background* ]] && continue
        echo "${p#/proc/}"
        return 0
    done
    return 1
}

# drop_caches_init: can we drop the caches (BENCH_DROP=op|mount|none)? sets DROP_OK
DROP_OK=0
drop_caches_init() {
    DROP_OK=1
    if [[ $BENCH_DROP != none ]]; then
        if ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
            warn "cannot write /proc/sys/vm/drop_caches (not root?): cold runs are whatever the cache holds"
            DROP_OK=0
            meta drop "$BENCH_DROP (unavailable: drop_caches not writable)"
        fi
    fi
}
drop_caches() {
    (( DROP_OK )) && [[ $BENCH_DROP != none ]] || return 0
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# damon_pause / damon_resume: this kind of VM runs DAMON (kdamond) with a `pageout`
# scheme that evicts page cache found idle in a few samples about every 5 s, to hand
# memory back to the host. A "warm" run then finds a random part of its caches gone
# (the mounts' cached directory listings, native's directory blocks, part of the big
# file) and measures a partly cold run. BENCH_DAMON=pause (the default of mount.sh)
# stops the running kdamonds for the benchmark and restarts them on exit;
# BENCH_DAMON=keep leaves them running. The choice is recorded in the results.
DAMON_PAUSED=()
damon_pause() {
    local k n=0
    BENCH_DAMON=${BENCH_DAMON:-pause}
    case $BENCH_DAMON in pause | keep) ;; *) die "BENCH_DAMON must be pause or keep" ;; esac
    for k in /sys/kernel/mm/damon/admin/kdamonds/[0-9]*; do
        [[ $(cat "$k/state" 2>/dev/null) == on ]] && n=$((n + 1))
    done
    if (( n == 0 )); then
        meta damon "none running"
        return 0
    fi
    if [[ $BENCH_DAMON != pause ]]; then
        meta damon "kept running ($n kdamond(s), BENCH_DAMON=$BENCH_DAMON)"
        return 0
    fi
    for k in /sys/kernel/mm/damon/admin/kdamonds/[0-9]*; do
        [[ $(cat "$k/state" 2>/dev/null) == on ]] || continue
        if echo off >"$k/state" 2>/dev/null; then
            DAMON_PAUSED+=("$k")
        else
            warn "cannot stop $k: warm runs may find their caches evicted"
        fi
    done
    meta damon "paused during the run (${#DAMON_PAUSED[@]} of $n kdamond(s), BENCH_DAMON=pause)"
    log "DAMON page-out paused for the run (${#DAMON_PAUSED[@]} kdamond(s)); restarted on exit"
}
damon_resume() {
    local k
    for k in "${DAMON_PAUSED[@]}"; do
        echo on >"$k/state" 2>/dev/null || warn "could not restart $k (echo on >$k/state)"
    done
    DAMON_PAUSED=()
}

# hang_report TOOL PID: what the serving process and the kernel show while an operation
# hangs (in $RUN/hang-TOOL.txt; $BENCH_OP_TIMEOUT or the 3rd argument is the timeout shown)
hang_report() {
    local tool=$1 pid=$2 out=$RUN/hang-$1.txt t
    {
        echo "== $(date -u +%FT%TZ) $tool: operation timed out after ${3:-$BENCH_OP_TIMEOUT} s"
        echo "== fuse connections (waiting requests)"
        if compgen -G '/sys/fs/fuse/connections/*/waiting' >/dev/null; then
            for t in /sys/fs/fuse/connections/*; do echo "$t waiting=$(cat "$t/waiting" 2>/dev/null)"; done
        else
            echo "(fusectl is not mounted on /sys/fs/fuse/connections)"
        fi
        if [[ -n $pid && -d /proc/$pid ]]; then
            echo "== threads of pid $pid: comm state wchan / kernel stack"
            for t in /proc/"$pid"/task/*; do
                echo "-- $(cat "$t/comm") $(awk '{print $3}' "$t/stat") $(cat "$t/wchan" 2>/dev/null)"
                cat "$t/stack" 2>/dev/null
            done
        else
            echo "== serving process $pid is gone"
        fi
    } >"$out" 2>&1
    warn "$tool: details in $out"
}
