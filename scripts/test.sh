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
#
# The remote-destination tests need real servers: scripts/services/ starts an
# S3 server (moto, twice: open, and with authentication enforced), an OpenSSH
# sshd, an FTP server, an SMTP server, PostgreSQL and MariaDB, all on
# 127.0.0.1, while the build runs; their settings are exported to the tests
# (S3_*, S3AUTH_*, SSH_*, FTP_*, SMTP_*, PG_*, MARIADB_*) and they
# are stopped when this script exits. Python tools are cached in venvs under
# $HINDSIGHT_TOOLS_DIR (default /var/tmp/hindsight-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the tests mount filesystems, chown and mknod)" >&2
    exit 1
fi

HS_NAME=test.sh
. scripts/services/lib.sh
# One apt step (at most one apt-get update) for the tests and the services.
hs_apt_install acl attr rsync util-linux passwd coreutils procps e2fsprogs \
    openssh-server openssh-sftp-server openssh-client python3-venv openssl \
    postgresql-15 postgresql-client-15 mariadb-server mariadb-client systemd man-db

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hindsight-target}"
export HINDSIGHT_TEST_DIR="${HINDSIGHT_TEST_DIR:-/var/tmp/hindsight-tests}"
mkdir -p "$HINDSIGHT_TEST_DIR"
mounted_here=0
if ! mountpoint -q "$HINDSIGHT_TEST_DIR"; then
    mount -t tmpfs -o size=6g,mode=1777 hindsight-tests "$HINDSIGHT_TEST_DIR"
    mounted_here=1
fi
services=(moto moto-auth sshd ftp smtp postgres mariadb)
services_dir=$(mktemp -d /tmp/hindsight-services.XXXXXX)
chmod 755 "$services_dir" # sshd reads authorized_keys there as its user
services_job=
cleanup() {
    if [ -n "$services_job" ]; then
        wait "$services_job" 2>/dev/null || true
        for svc in "${services[@]}"; do
            scripts/services/"${svc%-auth}".sh stop "$services_dir/$svc" || true
        done
    fi
    rm -rf "$services_dir"
    if [ "$mounted_here" = 1 ]; then
        umount -l "$HINDSIGHT_TEST_DIR" || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts the servers in parallel, on the first free ports from the defaults
# (another run may hold them: ports are picked and bound under a lock).
start_services() {
    mkdir -p "$HINDSIGHT_TOOLS_DIR"
    exec 9>"$HINDSIGHT_TOOLS_DIR/.ports.lock"
    flock 9
    local i=0 p pids=() svc failed=0
    export MOTO_PORT SSH_PORT FTP_PORT FTP_PASV_MIN FTP_PASV_MAX SMTP_PORT SMTP_TLS_PORT PG_PORT MARIADB_PORT
    SSH_PORT=$(hs_free_port 2232)
    SMTP_PORT=$(hs_free_port 2525)
    SMTP_TLS_PORT=$(hs_free_port $((SMTP_PORT + 1)))
    PG_PORT=$(hs_free_port 15432)
    MARIADB_PORT=$(hs_free_port 13306)
    while :; do # FTP control port and a passive range no other run uses
        FTP_PORT=$((2131 + i)) FTP_PASV_MIN=$((30100 + 20 * i)) FTP_PASV_MAX=$((30119 + 20 * i))
        for p in "$FTP_PORT" $(seq "$FTP_PASV_MIN" "$FTP_PASV_MAX"); do
            if hs_port_open "$p"; then
                i=$((i + 1))
                [ "$i" -lt 50 ] || hs_die "no free FTP ports from 2131 and 30100"
                continue 2
            fi
        done
        break
    done
    MOTO_PORT=$(hs_free_port 19301)
    scripts/services/moto.sh start "$services_dir/moto" >"$services_dir/moto.out" 2>"$services_dir/moto.err" 9>&- &
    pids+=($!)
    MOTO_PORT=$(hs_free_port 19351)
    MOTO_AUTH=1 scripts/services/moto.sh start "$services_dir/moto-auth" \
        >"$services_dir/moto-auth.out" 2>"$services_dir/moto-auth.err" 9>&- &
    pids+=($!)
    scripts/services/sshd.sh start "$services_dir/sshd" >"$services_dir/sshd.out" 2>"$services_dir/sshd.err" 9>&- &
    pids+=($!)
    scripts/services/ftp.sh start "$services_dir/ftp" >"$services_dir/ftp.out" 2>"$services_dir/ftp.err" 9>&- &
    pids+=($!)
    scripts/services/smtp.sh start "$services_dir/smtp" >"$services_dir/smtp.out" 2>"$services_dir/smtp.err" 9>&- &
    pids+=($!)
    scripts/services/postgres.sh start "$services_dir/postgres" >"$services_dir/postgres.out" 2>"$services_dir/postgres.err" 9>&- &
    pids+=($!)
    scripts/services/mariadb.sh start "$services_dir/mariadb" >"$services_dir/mariadb.out" 2>"$services_dir/mariadb.err" 9>&- &
    pids+=($!)
    for i in "${!services[@]}"; do
        svc=${services[$i]}
        if ! wait "${pids[$i]}"; then
            echo "scripts/test.sh: could not start $svc:" >&2
            cat "$services_dir/$svc.err" >&2
            failed=1
        fi
    done
    [ "$failed" = 0 ] || return 1
    echo "test servers started in $((SECONDS - services_start)) s, in parallel with the build" >&2
}
services_start=$SECONDS
start_services &
services_job=$!

cargo fmt --all --check
cargo build --workspace --all-targets --locked
wait "$services_job" || exit 1
set -a
. "$services_dir/moto.out"
. <(sed -n 's/^S3_/S3AUTH_/p' "$services_dir/moto-auth.out")
. "$services_dir/sshd.out"
. "$services_dir/ftp.out"
. "$services_dir/smtp.out"
. "$services_dir/postgres.out"
. "$services_dir/mariadb.out"
set +a
echo "test servers: S3 $S3_ENDPOINT, S3 with authentication $S3AUTH_ENDPOINT," \
    "sshd $SSH_HOST:$SSH_PORT, FTP $FTP_HOST:$FTP_PORT, SMTP $SMTP_HOST:$SMTP_PORT," \
    "PostgreSQL $PG_HOST:$PG_PORT, MariaDB $MARIADB_HOST:$MARIADB_PORT"

log=$(mktemp)
status=0
cargo test --workspace --locked -- "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test target).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
