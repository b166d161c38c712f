#!/usr/bin/env bash
# PostgreSQL test server: a throwaway cluster (initdb + pg_ctl) in
# STATE_DIR/data, TCP on 127.0.0.1 with scram password authentication, its
# Unix socket in STATE_DIR/sock. As root the server runs as the OS user
# `postgres` (created by the Debian package); the system cluster is untouched.
#
#   scripts/services/postgres.sh start|stop|status|env|install [STATE_DIR]
#
# Env: PG_PORT (15432), PG_VERSION (15), PG_SUPERUSER (postgres),
#      PG_PASSWORD (hs-pg-pass), POSTGRES_STATE_DIR.
# Prints PG_HOST PG_PORT PG_USER PG_PASSWORD PG_SOCKET_DIR PG_BIN.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init postgres POSTGRES "$@"

PORT="${PG_PORT:-15432}"
VER="${PG_VERSION:-15}"
BIN="/usr/lib/postgresql/$VER/bin"
SUPER="${PG_SUPERUSER:-postgres}"
PASS="${PG_PASSWORD:-hs-pg-pass}"
DATA="$STATE/data"
SOCK="$STATE/sock"
if [ "$(id -u)" = 0 ]; then OSUSER=postgres; else OSUSER="$(id -un)"; fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$OSUSER" -- "$@"; else "$@"; fi; }

do_install() {
    [ -x "$BIN/pg_ctl" ] || hs_apt_install "postgresql-$VER" "postgresql-client-$VER"
}

do_start() {
    hs_require_free_port "$PORT"
    chmod 755 "$STATE"
    if [ ! -s "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA" "$SOCK"
        chown "$OSUSER" "$DATA" "$SOCK"
        chmod 700 "$DATA"
        printf '%s\n' "$PASS" >"$STATE/pwfile"
        chown "$OSUSER" "$STATE/pwfile"
        chmod 600 "$STATE/pwfile"
        as_pg "$BIN/initdb" -D "$DATA" -U "$SUPER" --pwfile="$STATE/pwfile" --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$STATE/initdb.log" 2>&1 \
            || { cat "$STATE/initdb.log" >&2; hs_die "initdb failed"; }
        rm -f "$STATE/pwfile"
        cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
logging_collector = off
CONF
    fi
    mkdir -p "$SOCK"
    chown "$OSUSER" "$SOCK"
    touch "$LOGFILE"
    chown "$OSUSER" "$LOGFILE"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >/dev/null || { tail -20 "$LOGFILE" >&2; hs_die "pg_ctl start failed"; }
    head -n1 "$DATA/postmaster.pid" >"$PIDFILE"
    hs_emit_env <<ENV
PG_HOST=127.0.0.1
PG_PORT=$PORT
PG_USER=$SUPER
PG_PASSWORD=$PASS
PG_SOCKET_DIR=$SOCK
PG_BIN=$BIN
ENV
}

do_stop() {
    # "fast" shutdown: disconnects clients, a clean checkpoint.
    [ -s "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1
    rm -f "$PIDFILE"
}

hs_main
