#!/usr/bin/env bash
# bench/remote.sh: full and incremental backups of the standard corpus to remote
# destinations, timed in the same run against restic: Hindsight to the loopback S3
# server (moto) and to sshd (hardlink trees extracted by tar on the server), restic to the same S3
# server (s3 backend) and over SFTP to the same sshd.
#
# usage:  bench/remote.sh          (builds the release binaries first; BENCH_BUILD=0 skips)
#
# environment knobs (see bench/README.md, "Remote benchmark"):
#   BENCH_FILES=100000        corpus size (entries)
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (shared corpus; this script's files in remote/)
#   BENCH_DESTS="s3 ssh"      which remote kinds to measure
#   BENCH_TOOLS="hindsight restic"       which tools
#   BENCH_VERIFY=1            0: no check; 1: the ssh snapshots' metadata against the corpus
#   BENCH_BUILD=1             0: use HINDSIGHTD/HINDSIGHT as they are
#   BENCH_PACK_SIZE=           the s3 destination's pack_size option in MiB (default: hindsight's, 8)
#   BENCH_WARM=1, BENCH_DAMON=pause, BENCH_NO_INSTALL=0     as in incremental.sh
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MUTATE_SEED=2
BENCH_FILES=${BENCH_FILES:-100000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
BENCH_DESTS=${BENCH_DESTS:-s3 ssh}
BENCH_TOOLS=${BENCH_TOOLS:-hindsight restic}
BENCH_VERIFY=${BENCH_VERIFY:-1}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/hindsight-target}

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
SERVICES=$REPO/scripts/services

# ---------------------------------------------------------------- arguments
check_bench_files
DESTS=() TOOLS=()
for d in ${BENCH_DESTS//,/ }; do
    case $d in s3 | ssh) DESTS+=("$d") ;; *) die "BENCH_DESTS: unknown '$d' (known: s3 ssh)" ;; esac
done
for t in ${BENCH_TOOLS//,/ }; do
    case $t in hindsight | restic) TOOLS+=("$t") ;; *) die "BENCH_TOOLS: unknown '$t' (known: hindsight restic)" ;; esac
done
(( ${#DESTS[@]} && ${#TOOLS[@]} )) || die "nothing to measure (BENCH_DESTS, BENCH_TOOLS)"
has() { local x want=$1; shift; for x in "$@"; do [[ $x == "$want" ]] && return 0; done; return 1; }
has_dest() { has "$1" "${DESTS[@]}"; }
has_tool() { has "$1" "${TOOLS[@]}"; }
case $BENCH_VERIFY in 0 | 1) ;; *) die "BENCH_VERIFY must be 0 or 1" ;; esac
[[ $(id -u) == 0 ]] || die "must run as root (the test sshd and its user)"

# ---------------------------------------------------------------- binaries and tools
if has_tool hindsight; then
    build_release
    resolve_binaries "or set BENCH_TOOLS=restic"
fi
pkgs=(/usr/bin/time:time rsync:rsync curl:curl)
has_tool restic && pkgs+=(restic:restic)
ensure_packages "${pkgs[@]}"

# ---------------------------------------------------------------- work dir
bench_workdir
R=$W/remote
RUN=$R/run
HS=$R/hindsight
MOTO_DIR=$R/moto
SSHD_DIR=$R/sshd
bench_lock remote.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$R/hindsightd.pid
VERIFY_FAILED=0
REMOTE_ROOT=   # on the sshd side (a local path, the server is this machine)

# end_ssh_sessions: the per-connection sshd processes of this script's servers (this run's or an
# interrupted earlier run's: their log, fd 2, is under $W). Stopping sshd leaves them running,
# and hindsight's ControlMaster connection (ssh -M, it outlives hindsightd) would carry the
# next run's sessions past the new server, unlogged and unmeasured.
end_ssh_sessions() {
    local p cmd err
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ $cmd == "sshd: "* ]] || continue
        err=$(readlink "$p/fd/2" 2>/dev/null) || continue
        [[ $err == "$W/"* ]] || continue
        kill -TERM "${p#/proc/}" 2>/dev/null || true
    done
}
stop_services() {
    end_ssh_sessions
    [[ -d $MOTO_DIR ]] && bash "$SERVICES/moto.sh" stop "$MOTO_DIR" >/dev/null 2>&1
    [[ -d $SSHD_DIR ]] && bash "$SERVICES/sshd.sh" stop "$SSHD_DIR" >/dev/null 2>&1
    return 0
}
install_traps "daemon_run_cleanup stop_services"

pause_trash_deletions
stop_leftover_daemon "$HSD_PIDFILE" "$HS/state"
stop_services   # an interrupted earlier run's servers
for d in "$R" "$CORPUS.partial"; do to_trash "$d"; done
mkdir -p "$RUN" "$HS/state"
if has_tool hindsight; then
    # a private copy: CARGO_TARGET_DIR may be shared with other worktrees that rebuild it
    mkdir -p "$R/bin"
    cp -p -- "$HINDSIGHTD" "$R/bin/hindsightd"
    cp -p -- "$HINDSIGHT" "$R/bin/hindsight"
    HINDSIGHTD=$R/bin/hindsightd HINDSIGHT=$R/bin/hindsight
    "$HINDSIGHT" destination add --help 2>&1 | grep -q -- '--option' \
        || die "$HINDSIGHT has no 'destination add --option' (an older build in a shared CARGO_TARGET_DIR?)"
fi
RESULTS=$RUN/results.jsonl
: >"$RESULTS"
STORE=$RUN/remote.tsv          # phase tool dest key value (what the servers saw)
: >"$STORE"
META=$RUN/meta.tsv
: >"$META"

# ---------------------------------------------------------------- corpus
corpus_check
# corpus (if generated) + hindsight and restic on each destination (restic ~0.7 of the corpus;
# moto keeps objects over 5 MiB in temporary files, under $MOTO_DIR/tmp)
copies=$(( ${#DESTS[@]} * ${#TOOLS[@]} ))
(( corpus_ok )) || copies=$(( copies + 1 ))
check_space $(( copies * CORPUS_BYTES * 11 / 10 + (1 << 30) )) $(( (copies + 1) * N * 21 / 20 )) \
    "$copies copies of a ~$(( CORPUS_BYTES >> 20 )) MiB corpus" "Measure less (BENCH_DESTS=s3 or BENCH_TOOLS=hindsight)."
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
meta uptime_start "$(uptime)"
meta dests "${DESTS[*]}"
meta tools "${TOOLS[*]}"

# ---------------------------------------------------------------- servers
# free_port BASE: the services' own helper (scripts/services/lib.sh)
free_port() { bash -c '. "$1/lib.sh"; hs_free_port "$2"' _ "$SERVICES" "$1"; }
# env_get FILE KEY: a KEY=VALUE line of a service's env file
env_get() { sed -n "s/^$2=//p" "$1" | sed -n 1p; }

if has_dest s3; then
    mkdir -p "$MOTO_DIR/tmp"
    port=$(free_port 19500)
    log "starting moto (S3) on 127.0.0.1:$port (state $MOTO_DIR)"
    TMPDIR=$MOTO_DIR/tmp MOTO_PORT=$port S3_BUCKET=bench bash "$SERVICES/moto.sh" start "$MOTO_DIR" >"$RUN/moto.env" 2>"$RUN/moto-start.log" \
        || { tail_log "$RUN/moto-start.log"; die "could not start moto"; }
    S3_ENDPOINT=$(env_get "$RUN/moto.env" S3_ENDPOINT)
    S3_BUCKET=$(env_get "$RUN/moto.env" S3_BUCKET)
    S3_ACCESS_KEY=$(env_get "$RUN/moto.env" S3_ACCESS_KEY)
    S3_SECRET_KEY=$(env_get "$RUN/moto.env" S3_SECRET_KEY)
    S3_REGION=$(env_get "$RUN/moto.env" S3_REGION)
    MOTO_LOG=$MOTO_DIR/server.log
    MOTO_PID=$(<"$MOTO_DIR/pid")
    meta moto_version "$("${HINDSIGHT_TOOLS_DIR:-/var/tmp/hindsight-tools}/venv-moto/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown)"
    meta s3_endpoint "$S3_ENDPOINT"
fi
if has_dest ssh; then
    port=$(free_port 19600)
    log "starting sshd on 127.0.0.1:$port (state $SSHD_DIR)"
    mkdir -p "$SSHD_DIR"
    SSH_PORT=$port bash "$SERVICES/sshd.sh" start "$SSHD_DIR" >"$RUN/sshd.env" 2>"$RUN/sshd-start.log" \
        || { tail_log "$RUN/sshd-start.log"; die "could not start sshd"; }
    SSH_PORT=$(env_get "$RUN/sshd.env" SSH_PORT)
    SSH_USER=$(env_get "$RUN/sshd.env" SSH_USER)
    SSH_KEY=$(env_get "$RUN/sshd.env" SSH_KEY)
    SSH_KNOWN_HOSTS=$(env_get "$RUN/sshd.env" SSH_KNOWN_HOSTS)
    SSH_HOME=$(env_get "$RUN/sshd.env" SSH_REMOTE_HOME)
    SSHD_LOG=$SSHD_DIR/server.log
    SSHD_PID=$(<"$SSHD_DIR/pid")
    REMOTE_ROOT=$SSH_HOME/hindsight-bench-remote
    to_trash "$REMOTE_ROOT"     # an earlier run's trees (same filesystem: a rename)
    install -d -o "$SSH_USER" -m 755 "$REMOTE_ROOT"
    meta ssh_version "$(ssh -V 2>&1)"
    meta sshd_port "$SSH_PORT"
fi
if has_tool restic; then
    meta restic_version "$(restic version 2>/dev/null | sed -n 1p)"
    export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$R/restic-cache
    RESTIC_S3=s3:${S3_ENDPOINT:-}/${S3_BUCKET:-}/restic
    RESTIC_SFTP=sftp:${SSH_USER:-}@127.0.0.1:$REMOTE_ROOT/restic
    SFTP_CMD="ssh -p ${SSH_PORT:-} -i ${SSH_KEY:-} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${SSH_KNOWN_HOSTS:-} ${SSH_USER:-}@127.0.0.1 -s sftp"
fi
# restic_argv DEST: RARGV = restic on that destination's repository
restic_argv() {
    if [[ $1 == s3 ]]; then
        RARGV=(restic -r "$RESTIC_S3" -o s3.bucket-lookup=path)
    else
        RARGV=(restic -r "$RESTIC_SFTP" -o sftp.command="$SFTP_CMD")
    fi
}

# ---------------------------------------------------------------- what the servers saw
# server_probe PHASE TOOL DEST WHEN: WHEN=before remembers the log offsets and the server's cpu;
# WHEN=after writes the requests, connections, server cpu, objects and bytes stored to $STORE.
declare -A PROBE
# mux_ticks: cpu ticks of the ssh clients connected to our sshd that are not hindsightd's
# children: hindsight's ControlMaster (ssh -M, detached), which does the encryption of its
# sessions and is not in the daemon's cpu. 0 without an ssh destination.
mux_ticks() {
    local t=0 p
    [[ -n ${SSH_PORT:-} ]] || { echo 0; return 0; }
    for p in $(ss -Htnp state established "( dport = :$SSH_PORT )" 2>/dev/null | { grep -o 'pid=[0-9]*' || true; } | cut -d= -f2 | sort -u); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == ssh ]] || continue
        [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == *'[mux]'* ]] || continue
        t=$(( t + $(pid_ticks "$p" 2>/dev/null || echo 0) ))
    done
    echo "$t"
}
server_probe() {
    local phase=$1 tool=$2 dest=$3 when=$4 log pid prefix
    if [[ $dest == s3 ]]; then log=$MOTO_LOG pid=$MOTO_PID; else log=$SSHD_LOG pid=$SSHD_PID; fi
    if [[ $when == before ]]; then
        PROBE[off]=$(stat -c %s "$log")
        PROBE[mux]=$(mux_ticks)
        # the server's cpu: its process tree, sampled (sshd does not collect its children's cpu)
        PROBE[cpufile]=$RUN/server-cpu-$phase-$tool.txt
        python3 "$HELPER" tree-cpu "$pid" "${PROBE[cpufile]}" 9>&- &
        PROBE[sampler]=$!
        local i
        for (( i = 0; i < 100; i++ )); do [[ -e ${PROBE[cpufile]}.ready ]] && break; sleep 0.05; done
        return 0
    fi
    local cpu mux
    mux=$(mux_ticks)
    kill -TERM "${PROBE[sampler]}" 2>/dev/null || true
    wait "${PROBE[sampler]}" || true
    cpu=$(cat "${PROBE[cpufile]}" 2>/dev/null || echo -)
    printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$dest" server_cpu_s "$cpu" >>"$STORE"
    if [[ $dest == ssh && $tool == hindsight ]]; then
        cpu=$(awk -v a="${PROBE[mux]}" -v b="$mux" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
        printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$dest" ssh_master_cpu_s "$cpu" >>"$STORE"
    fi
    if [[ $dest == s3 ]]; then
        prefix=hindsight/
        [[ $tool == restic ]] && prefix=restic/
        py http-log-count "$log" "${PROBE[off]}" | while IFS=$'\t' read -r k v; do
            printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$dest" "$k" "$v"
        done >>"$STORE"
        py s3-usage "$S3_ENDPOINT" "$S3_BUCKET" "$prefix" | while IFS=$'\t' read -r k v; do
            printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$dest" "$k" "$v"
        done >>"$STORE"
    else
        # sshd (LogLevel VERBOSE) logs each login and each session: a remote command (hindsight's
        # shell commands, rsync) or the sftp subsystem (restic), multiplexed or not
        local dir=$REMOTE_ROOT/$tool logins sessions files bytes
        logins=$(tail -c +$(( PROBE[off] + 1 )) "$log" | grep -c 'Accepted publickey' || true)
        sessions=$(tail -c +$(( PROBE[off] + 1 )) "$log" | grep -c 'Starting session:' || true)
        files=$(find "$dir" -type f | wc -l)
        bytes=$(du -sb "$dir" | cut -f1)
        printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$dest" ssh_logins "$logins" "$phase" "$tool" "$dest" ssh_sessions "$sessions" \
            "$phase" "$tool" "$dest" objects "$files" "$phase" "$tool" "$dest" bytes "$bytes" >>"$STORE"
    fi
}

# ---------------------------------------------------------------- daemon, destinations, jobs
if has_tool hindsight; then
    SOCK=$R/hsd.sock
    meta hindsightd "$HINDSIGHTD"
    meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
    meta hindsightd_mtime "$(date -u -r "$HINDSIGHTD" +%Y-%m-%dT%H:%M:%SZ)"
    meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
    start_daemon "$HS/state" "$SOCK" --no-mount
    hs destination types >"$RUN/destination-types.txt" 2>&1 || true
    if has_dest s3; then
        hs destination add s3 --type s3 -o bucket="$S3_BUCKET" -o endpoint="$S3_ENDPOINT" -o region="$S3_REGION" \
            -o access_key="$S3_ACCESS_KEY" -o secret_key="$S3_SECRET_KEY" -o path=/hindsight \
            ${BENCH_PACK_SIZE:+-o pack_size="$BENCH_PACK_SIZE"} >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight destination add (s3) failed"; }
        hs job add bench-s3 --source "$CORPUS" --destination s3 >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight job add bench-s3 failed"; }
    fi
    if has_dest ssh; then
        if ! grep -qw ssh "$RUN/destination-types.txt"; then
            die "this hindsight has no ssh destination type (see $RUN/destination-types.txt); run with BENCH_DESTS=s3"
        fi
        install -d -o "$SSH_USER" -m 755 "$REMOTE_ROOT/hindsight"
        hs destination add ssh --type ssh -o host=127.0.0.1 -o port="$SSH_PORT" -o username="$SSH_USER" \
            -o private_key="$SSH_KEY" -o known_hosts="$SSH_KNOWN_HOSTS" -o path="$REMOTE_ROOT/hindsight" >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight destination add (ssh) failed"; }
        hs job add bench-ssh --source "$CORPUS" --destination ssh >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight job add bench-ssh failed"; }
    fi
fi
if has_tool restic; then
    # after the daemon started: hindsight gets its keys only from its destination options
    has_dest s3 && export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=$S3_REGION
    for d in "${DESTS[@]}"; do
        restic_argv "$d"
        "${RARGV[@]}" init >"$RUN/restic-init-$d.log" 2>&1 || { tail_log "$RUN/restic-init-$d.log"; die "restic init ($d) failed"; }
    done
fi

damon_pause
if [[ $BENCH_WARM == 1 ]]; then
    log "reading the corpus once to warm the page cache (BENCH_WARM=0 to skip)"
    warm_corpus
    meta cache warm
fi

# ---------------------------------------------------------------- one backup
# ssh_snapshot_tree: the newest hindsight snapshot's tree of the corpus on the sshd side
ssh_snapshot_tree() {
    local d
    d=$(find "$REMOTE_ROOT/hindsight/bench-ssh" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' \
        | sort -n | tail -n 1 | cut -d' ' -f2-)
    [[ -n $d ]] && echo "$d/tree$CORPUS"
}

backup() {
    local phase=$1 tool=$2 dest=$3
    warn_if_busy "$phase $tool $dest"
    meta "load_${phase}_${tool}_${dest}" "$(cut -d' ' -f1-3 /proc/loadavg)"
    server_probe "$phase-$dest" "$tool" "$dest" before
    if [[ $tool == hindsight ]]; then
        hs_timed "$phase-$dest" "bench-$dest" 1
    else
        restic_argv "$dest"
        # from $W, so that restic's snapshot holds corpus-N (as in mount.sh and PEERS.md)
        (cd "$W" && peer_timed "$phase-$dest" restic - "cpu: restic and its ssh child" "${RARGV[@]}" backup "corpus-$N")
    fi
    server_probe "$phase-$dest" "$tool" "$dest" after
    if [[ $tool == hindsight && $dest == ssh ]]; then
        local tree res rc=0
        tree=$(ssh_snapshot_tree)
        [[ $phase == full ]] && FULL_SSH_TREE=$tree
        [[ $BENCH_VERIFY == 1 ]] || return 0
        log "verifying the $phase ssh snapshot against the corpus ($tree)"
        res=$(py compare "$CORPUS" "$tree" 2>&1) || rc=$?
        printf '%s\n' "$res" >"$RUN/verify-$phase-ssh.txt"
        if (( rc )); then
            head -n 12 <<<"$res" >&2
            warn "the $phase ssh snapshot does not match the corpus"
            meta "verify_${phase}_ssh" "FAILED: $(head -n 1 <<<"$res")"
            VERIFY_FAILED=1
        else
            meta "verify_${phase}_ssh" "ok: $res"
        fi
    fi
}
FULL_SSH_TREE=
for d in "${DESTS[@]}"; do for t in "${TOOLS[@]}"; do backup full "$t" "$d"; done; done

set_state mutated
log "mutating the corpus (mutate.py --seed $MUTATE_SEED)"
python3 "$MUTATE" "$CORPUS" --seed "$MUTATE_SEED" >"$RUN/mutate.log" 2>&1 \
    || { tail_log "$RUN/mutate.log"; die "mutate.py failed"; }
cat "$RUN/mutate.log" >&2
meta mutate "$(tail -n 1 "$RUN/mutate.log")"
[[ $BENCH_WARM == 1 ]] && warm_corpus

for d in "${DESTS[@]}"; do for t in "${TOOLS[@]}"; do backup incremental "$t" "$d"; done; done

# ---------------------------------------------------------------- report
stop_daemon
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta uptime_end "$(uptime)"
py remote-report "$RUN" "$W/results-remote.json" "$W/results"

# ---------------------------------------------------------------- corpus back to its generated state
# the full ssh snapshot is a plain tree of the unmutated corpus on this machine
if [[ -n $FULL_SSH_TREE && -d $FULL_SSH_TREE ]]; then
    log "restoring the corpus to its generated state from the full ssh snapshot"
    if rsync -aH --no-owner --no-group --delete "$FULL_SSH_TREE/" "$CORPUS/" >"$RUN/restore.log" 2>&1 \
        && [[ $(fingerprint "$CORPUS") == "$FINGERPRINT" ]]; then
        set_state pristine
    else
        warn "could not restore the corpus; it will be regenerated on the next run"
    fi
else
    log "the corpus stays mutated (no full ssh snapshot to restore it from); it is regenerated on the next run"
fi

if (( VERIFY_FAILED )); then
    warn "hindsight ssh snapshots did not match the corpus: the timings above are not valid (see $RUN/verify-*.txt)"
    exit 3
fi
log "done; $R (and the sshd side, $REMOTE_ROOT) stay until the next run moves them to $TRASH"
