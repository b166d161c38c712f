#!/usr/bin/env bash
# MariaDB test server: mariadb-install-db into STATE_DIR/data, then mariadbd
# run directly (no mysqld_safe, no systemd) on 127.0.0.1 with its socket in
# STATE_DIR. As root the server runs as the OS user `mysql` (created by the
# Debian package); the system instance (/var/lib/mysql) is untouched. The first
# start creates a password user with every privilege (root authenticates by
# the Unix socket only).
#
#   scripts/services/mariadb.sh start|stop|status|env|install [STATE_DIR]
#
# Env: MARIADB_PORT (13306), MARIADB_USER (hs), MARIADB_PASSWORD (hs-db-pass),
#      MARIADB_STATE_DIR.
# Prints MARIADB_HOST MARIADB_PORT MARIADB_USER MARIADB_PASSWORD MARIADB_SOCKET.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init mariadb MARIADB "$@"

PORT="${MARIADB_PORT:-13306}"
DBUSER="${MARIADB_USER:-hs}"
PASS="${MARIADB_PASSWORD:-hs-db-pass}"
DATA="$STATE/data"
SOCK="$STATE/mysqld.sock"
if [ "$(id -u)" = 0 ]; then OSUSER=mysql; else OSUSER="$(id -un)"; fi

do_install() {
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || hs_apt_install mariadb-server mariadb-client
}

do_start() {
    hs_require_free_port "$PORT"
    chmod 755 "$STATE"
    local first=0
    if [ ! -d "$DATA/mysql" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        chown "$OSUSER" "$DATA" "$STATE"
        mariadb-install-db --no-defaults --datadir="$DATA" --user="$OSUSER" \
            --auth-root-authentication-method=socket --skip-test-db >"$STATE/install-db.log" 2>&1 \
            || { cat "$STATE/install-db.log" >&2; hs_die "mariadb-install-db failed"; }
        first=1
    fi
    touch "$LOGFILE"
    chown "$OSUSER" "$LOGFILE"
    hs_spawn /usr/sbin/mariadbd --no-defaults --datadir="$DATA" --socket="$SOCK" --port="$PORT" \
        --bind-address=127.0.0.1 --pid-file="$STATE/mariadbd.pid" --user="$OSUSER" --skip-name-resolve \
        --log-error="$LOGFILE" --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
        --skip-log-bin --max-connections=100 --character-set-server=utf8mb4
    local i=0
    until mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; do
        hs_alive || { tail -30 "$LOGFILE" >&2; hs_die "mariadbd exited"; }
        i=$((i + 1))
        [ "$i" -lt 600 ] || hs_die "mariadbd did not come up in 60 s"
        sleep 0.1
    done
    if [ "$first" = 1 ]; then
        mariadb --no-defaults --socket="$SOCK" -uroot <<SQL
CREATE USER IF NOT EXISTS '$DBUSER'@'127.0.0.1' IDENTIFIED BY '$PASS';
CREATE USER IF NOT EXISTS '$DBUSER'@'localhost' IDENTIFIED BY '$PASS';
GRANT ALL PRIVILEGES ON *.* TO '$DBUSER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DBUSER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    fi
    hs_emit_env <<ENV
MARIADB_HOST=127.0.0.1
MARIADB_PORT=$PORT
MARIADB_USER=$DBUSER
MARIADB_PASSWORD=$PASS
MARIADB_SOCKET=$SOCK
ENV
}

hs_main
