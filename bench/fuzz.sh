#!/usr/bin/env bash
# bench/fuzz.sh: runs every cargo-fuzz target of fuzz/ for a set time, one
# after the other, and reports what each did and found.
#
# The targets feed arbitrary bytes to the readers of what a destination holds
# (indexes, manifests, markers, tar headers, archives, gzip members, xattrs,
# the output of commands on SSH servers); see bench/README.md, "Fuzzing".
#
# usage:  bench/fuzz.sh [TARGET...]      (default: every fuzz/fuzz_targets/*.rs)
#
# environment knobs:
#   FUZZ_SECONDS=60           seconds per target (libFuzzer -max_total_time)
#   FUZZ_TIMEOUT=25           seconds one input may take before it counts as a hang
#   FUZZ_RSS_MB=2048          memory of a target before it counts as a crash
#   FUZZ_TARGET_DIR=/var/tmp/hindsight-fuzz-target   the fuzz build (becomes
#                             CARGO_TARGET_DIR: never the workspace's target dir)
#   FUZZ_NEW_CORPUS=$FUZZ_TARGET_DIR/corpus   where the inputs a run adds go
#                             (<dir>/<target>/); `fuzz/corpus` grows the checked-in corpus
#   FUZZ_BUILD_JOBS=1         cargo build jobs (leaves the other core alone)
#   FUZZ_NO_INSTALL=0         1: never `cargo install cargo-fuzz`
#
# Exits 1 when a target crashed, hung or ran out of memory (or did not run);
# the inputs that did it are listed under the table.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-25}
RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/hindsight-fuzz-target}
NEW_CORPUS=${FUZZ_NEW_CORPUS:-$FUZZ_TARGET_DIR/corpus}
for knob in SECONDS_PER_TARGET TIMEOUT RSS_MB; do
    [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
done
[[ $NEW_CORPUS == /* ]] || NEW_CORPUS=$REPO/$NEW_CORPUS

# Set here, whatever the caller exported: a fuzz build (nightly, sanitizer
# flags) in the workspace's target dir would rebuild all of it both ways.
export CARGO_TARGET_DIR=$FUZZ_TARGET_DIR
export CARGO_BUILD_JOBS=${FUZZ_BUILD_JOBS:-1}
# The targets write a small file per input (indexes): on a RAM disk when there is one.
if [[ -d /dev/shm && -w /dev/shm ]]; then
    export TMPDIR=/dev/shm
fi

cd "$REPO"
cargo +nightly --version >/dev/null 2>&1 || die "a nightly toolchain is needed (rustup toolchain install nightly)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    [[ ${FUZZ_NO_INSTALL:-0} == 1 ]] && die "cargo-fuzz is missing (cargo install cargo-fuzz)"
    log "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

if (( $# > 0 )); then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
for t in "${targets[@]}"; do
    [[ -f fuzz/fuzz_targets/$t.rs ]] || die "no target $t in fuzz/fuzz_targets/"
    [[ -d fuzz/corpus/$t ]] || die "target $t has no corpus fuzz/corpus/$t"
done

LOGS=$FUZZ_TARGET_DIR/logs
mkdir -p "$LOGS"
log "building ${#targets[@]} targets in $FUZZ_TARGET_DIR (log: $LOGS/build.log)"
if ! cargo +nightly fuzz build --debug-assertions --target-dir "$FUZZ_TARGET_DIR" >"$LOGS/build.log" 2>&1; then
    tail -n 30 "$LOGS/build.log" >&2
    die "the fuzz targets do not build"
fi

# final_stat LOG NAME: the value of libFuzzer's `stat::NAME` line (-print_final_stats)
final_stat() { grep -o "stat::$2: *[0-9]*" "$1" | tail -n 1 | grep -o '[0-9]*$' || true; }

# One line per target: name, seconds, executions, new corpus entries, crashes.
rows=()
found=()
failed=0
for t in "${targets[@]}"; do
    artifacts=fuzz/artifacts/$t
    mkdir -p "$artifacts"
    before=$(ls -A "$artifacts")
    corpora=("fuzz/corpus/$t")
    if [[ $NEW_CORPUS/$t != "$REPO/fuzz/corpus/$t" ]]; then
        mkdir -p "$NEW_CORPUS/$t"
        # libFuzzer writes new inputs to the first directory.
        corpora=("$NEW_CORPUS/$t" "fuzz/corpus/$t")
    fi
    log "fuzzing $t for ${SECONDS_PER_TARGET}s (log: $LOGS/$t.log)"
    start=$(date +%s)
    rc=0
    cargo +nightly fuzz run --debug-assertions --target-dir "$FUZZ_TARGET_DIR" "$t" "${corpora[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -print_final_stats=1 >"$LOGS/$t.log" 2>&1 || rc=$?
    wall=$(( $(date +%s) - start ))

    # libFuzzer's final stats; the last status line when it stopped on a crash.
    execs=$(final_stat "$LOGS/$t.log" number_of_executed_units)
    [[ -n $execs ]] || execs=$(grep -o '^#[0-9]*' "$LOGS/$t.log" | tail -n 1 | tr -d '#' || true)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$LOGS/$t.log" | tail -n 1 | awk '{print $5}' || true)
    [[ -n $secs ]] || secs=$wall
    added=$(final_stat "$LOGS/$t.log" new_units_added)

    crashes=0
    while IFS= read -r f; do
        [[ -n $f ]] || continue
        grep -qxF -- "$f" <<<"$before" && continue
        case $f in
            slow-unit-*) ;;
            *) crashes=$((crashes + 1)); found+=("$t: $artifacts/$f") ;;
        esac
    done <<<"$(ls -A "$artifacts")"
    if (( rc != 0 && crashes == 0 )); then
        crashes=1
        found+=("$t: exit status $rc without an artifact, see $LOGS/$t.log")
    fi
    (( crashes == 0 )) || failed=1
    rows+=("$t ${secs} ${execs:-?} ${added:-?} $crashes")
done

printf '\n%-20s %8s %12s %10s %12s %8s\n' target seconds executions exec/s new-corpus crashes
for r in "${rows[@]}"; do
    read -r t secs execs added crashes <<<"$r"
    rate='?'
    [[ $execs =~ ^[0-9]+$ && $secs =~ ^[0-9]+$ ]] && (( secs > 0 )) && rate=$(( execs / secs ))
    printf '%-20s %8s %12s %10s %12s %8s\n' "$t" "$secs" "$execs" "$rate" "$added" "$crashes"
done
printf '\nnew corpus entries are in %s/<target>/; logs in %s\n' "$NEW_CORPUS" "$LOGS"
if (( failed )); then
    printf '\ncrashing inputs (reproduce: cargo +nightly fuzz run TARGET FILE):\n'
    printf '  %s\n' "${found[@]}"
    exit 1
fi
