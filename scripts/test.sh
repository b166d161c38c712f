#!/usr/bin/env bash
# Installs what the test suite needs, then builds and runs every test:
# unit tests of each crate and the end-to-end suite (real daemon, real CLI,
# real directories). Run as root on Debian 12 with Rust stable.
#
#   scripts/test.sh            # everything
#   scripts/test.sh roundtrip  # only tests whose name contains "roundtrip"
#
# CARGO_TARGET_DIR defaults to /var/tmp/hindsight-target so that repeated runs
# reuse the build; test trees live on a tmpfs (deleting files on this kind of
# disk is slow), mounted at $HINDSIGHT_TEST_DIR for the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the tests mount filesystems, chown and mknod)" >&2
    exit 1
fi

packages=(acl attr rsync util-linux passwd coreutils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hindsight-target}"
export HINDSIGHT_TEST_DIR="${HINDSIGHT_TEST_DIR:-/var/tmp/hindsight-tests}"
mkdir -p "$HINDSIGHT_TEST_DIR"
mounted_here=0
if ! mountpoint -q "$HINDSIGHT_TEST_DIR"; then
    mount -t tmpfs -o size=6g,mode=1777 hindsight-tests "$HINDSIGHT_TEST_DIR"
    mounted_here=1
fi
cleanup() {
    if [ "$mounted_here" = 1 ]; then
        umount -l "$HINDSIGHT_TEST_DIR" || true
    fi
}
trap cleanup EXIT

cargo fmt --all --check
cargo build --workspace --all-targets --locked
log=$(mktemp)
status=0
cargo test --workspace --locked -- "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test target).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
