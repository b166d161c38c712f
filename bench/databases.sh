#!/usr/bin/env bash
# bench/databases.sh: database dumps through Hindsight, timed in the same run against the bare
# dump tools writing to a local file on the same disk: a PostgreSQL database (`pg_dump -Fc`)
# and a MariaDB database (`mysqldump`, plain SQL, which Hindsight stores uncompressed), each
# BENCH_DB_MB MiB, on private servers started by this script. The rounds alternate which tool
# goes first; the second and later Hindsight runs dump the unchanged database again, and what
# they store anew (the dump is hardlinked to the previous snapshot's) is measured.
#
# usage:  bench/databases.sh                   (uses the release binaries; it never builds)
#         BENCH_DB_MB=64 bench/databases.sh    (a quick run)
#
# environment knobs (see bench/README.md, "Database dump benchmark"):
#   BENCH_DB_MB=2048          size of each database in MiB (as the server reports it)
#   BENCH_DIR=/var/tmp/hindsight-bench   work dir (this script's files under databases/; the
#                             servers' data, with the generated databases, stays between runs)
#   BENCH_ENGINES="postgresql mariadb"   which servers
#   BENCH_ROUNDS=2            rounds of (bare dump, hindsight run), alternating which goes first
#   BENCH_PG_PORT=15599, BENCH_MARIADB_PORT=13599   the servers' ports on 127.0.0.1
#   BENCH_REGENERATE=0        1: drop and generate the databases again
#   BENCH_WARM=1              an untimed dump to /dev/null first (the database in the page cache)
#   BENCH_DAMON=pause, BENCH_NO_INSTALL=0   as in incremental.sh
#   HINDSIGHTD, HINDSIGHT     binaries (default ${CARGO_TARGET_DIR:-target}/release/...)
#   PG_VERSION=15             the PostgreSQL server (scripts/services/postgres.sh)
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

BENCH_DB_MB=${BENCH_DB_MB:-2048}
BENCH_DIR=${BENCH_DIR:-/var/tmp/hindsight-bench}
BENCH_ENGINES=${BENCH_ENGINES:-postgresql mariadb}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_PG_PORT=${BENCH_PG_PORT:-15599}
BENCH_MARIADB_PORT=${BENCH_MARIADB_PORT:-13599}
BENCH_REGENERATE=${BENCH_REGENERATE:-0}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_NO_INSTALL=${BENCH_NO_INSTALL:-0}
PG_VERSION=${PG_VERSION:-15}

# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
SERVICES=$REPO/scripts/services

TARGET_WALL_RATIO=1.1           # hindsight / bare tool, wall
TARGET_NEW_PCT=1                # second run: new bytes stored, % of the dump
GEN_BATCH=1000000               # rows per INSERT ... SELECT while generating
TOOL_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin   # the PATH hindsightd gives dump tools
PG_PASS=hs-bench-pg-pass
MY_USER=hs
MY_PASS=hs-bench-db-pass

# ---------------------------------------------------------------- arguments
if ! [[ $BENCH_DB_MB =~ ^[0-9]+$ ]] || (( BENCH_DB_MB < 16 )); then
    die "BENCH_DB_MB must be an integer >= 16 (got '$BENCH_DB_MB')"
fi
if ! [[ $BENCH_ROUNDS =~ ^[0-9]+$ ]] || (( BENCH_ROUNDS < 1 )); then
    die "BENCH_ROUNDS must be an integer >= 1 (got '$BENCH_ROUNDS'; 2 or more to measure an unchanged run)"
fi
ENGINES=()
for e in ${BENCH_ENGINES//,/ }; do
    case $e in postgresql | mariadb) ENGINES+=("$e") ;; *) die "BENCH_ENGINES: unknown '$e' (known: postgresql mariadb)" ;; esac
done
(( ${#ENGINES[@]} )) || die "nothing to measure (BENCH_ENGINES)"
has_engine() { local e; for e in "${ENGINES[@]}"; do [[ $e == "$1" ]] && return 0; done; return 1; }
for v in BENCH_REGENERATE BENCH_WARM; do
    case ${!v} in 0 | 1) ;; *) die "$v must be 0 or 1" ;; esac
done
DB=bench_${BENCH_DB_MB}mb       # the database's name, on both servers
N=0                             # bench_workdir names the shared corpus after N; this script has none

# per engine: the hindsight database server, the dump's extension, the bare tool
declare -A SERVER=([postgresql]=pg [mariadb]=mariadb)
declare -A EXT=([postgresql]=pgdump [mariadb]=sql)
declare -A TOOL=([postgresql]="pg_dump -Fc" [mariadb]=mysqldump)

# ---------------------------------------------------------------- binaries and tools
resolve_binaries
pkgs=(/usr/bin/time:time)
if has_engine postgresql; then
    pkgs+=("/usr/lib/postgresql/$PG_VERSION/bin/pg_ctl:postgresql-$PG_VERSION"
        "/usr/lib/postgresql/$PG_VERSION/bin/pg_dump:postgresql-client-$PG_VERSION")
fi
has_engine mariadb && pkgs+=(/usr/sbin/mariadbd:mariadb-server mysqldump:mariadb-client)
ensure_packages "${pkgs[@]}"
MYSQL=$(command -v mariadb || command -v mysql || true)
has_engine mariadb && [[ -z $MYSQL ]] && die "no mariadb (or mysql) client in PATH"

# ---------------------------------------------------------------- work dir
bench_workdir
D=$W/databases
RUN=$D/run
HS=$D/hindsight
BARE_DIR=$D/bare
PG_DIR=$D/servers/postgres
MY_DIR=$D/servers/mariadb
bench_lock databases.sh

HSD_LOG=$RUN/hindsightd.log
HSD_PIDFILE=$D/hindsightd.pid
CHECK_FAILED=0

stop_services() {
    if [[ -d $PG_DIR ]]; then bash "$SERVICES/postgres.sh" stop "$PG_DIR" >/dev/null 2>&1 || warn "could not stop the PostgreSQL server ($PG_DIR)"; fi
    if [[ -d $MY_DIR ]]; then bash "$SERVICES/mariadb.sh" stop "$MY_DIR" >/dev/null 2>&1 || warn "could not stop the MariaDB server ($MY_DIR)"; fi
    return 0
}
install_traps "daemon_run_cleanup stop_services"

pause_trash_deletions
stop_leftover_daemon "$HSD_PIDFILE" "$HS/state"
stop_services   # an interrupted earlier run's servers
# the previous run's files (deleted in the background at the end); the servers' data stays
for d in "$RUN" "$HS" "$BARE_DIR" "$D/bin"; do to_trash "$d"; done
mkdir -p "$RUN" "$HS/state" "$HS/dest" "$BARE_DIR" "$D/bin" "$D/servers"

# a private copy: CARGO_TARGET_DIR may be rebuilt by someone else while this runs
cp -p -- "$HINDSIGHTD" "$D/bin/hindsightd"
cp -p -- "$HINDSIGHT" "$D/bin/hindsight"
HINDSIGHTD=$D/bin/hindsightd HINDSIGHT=$D/bin/hindsight
"$HINDSIGHT" database add --help 2>&1 | grep -q -- '--engine' \
    || die "$HINDSIGHT has no 'database add --engine' (an older build?)"

RESULTS=$RUN/results.jsonl
: >"$RESULTS"
EXTRA=$RUN/extra.tsv            # engine round tool key value (sizes, sync, snapshots, checks)
: >"$EXTRA"
META=$RUN/meta.tsv
: >"$META"
extra() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$EXTRA"; }

meta run_id "$RUN_ID"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta db_mb "$BENCH_DB_MB"
meta database "$DB"
meta engines "${ENGINES[*]}"
meta rounds "$BENCH_ROUNDS"
meta bench_dir "$W"
meta_machine
meta uptime_start "$(uptime)"
meta hindsightd "$HINDSIGHTD"
meta hindsight_version "$("$HINDSIGHT" --version 2>/dev/null | sed -n 1p || true)"
meta hindsightd_mtime "$(date -u -r "$D/bin/hindsightd" +%Y-%m-%dT%H:%M:%SZ)"
meta git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"

# ---------------------------------------------------------------- servers
# env_get FILE KEY: a KEY=VALUE line of a service's env file
env_get() { sed -n "s/^$2=//p" "$1" | sed -n 1p; }

# client credentials, as hindsightd writes them for its dump tools (files readable by root only)
PGPASS=$RUN/pgpass
MYCNF=$RUN/my.cnf
PG_PASS_FILE=$RUN/pg.password
MY_PASS_FILE=$RUN/mariadb.password
(
    umask 077
    printf '*:*:*:postgres:%s\n' "$PG_PASS" >"$PGPASS"
    printf '%s\n' "$PG_PASS" >"$PG_PASS_FILE"
    printf '[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nprotocol=tcp\nport=%s\n[mysql]\nconnect-timeout=10\n' \
        "$MY_USER" "$MY_PASS" "$BENCH_MARIADB_PORT" >"$MYCNF"
    printf '%s\n' "$MY_PASS" >"$MY_PASS_FILE"
)

if has_engine postgresql; then
    # the port is written into postgresql.conf when the cluster is created: follow BENCH_PG_PORT
    if [[ -f $PG_DIR/data/postgresql.conf ]]; then
        sed -i "s/^port = [0-9]*\$/port = $BENCH_PG_PORT/" "$PG_DIR/data/postgresql.conf"
    fi
    log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$BENCH_PG_PORT (data in $PG_DIR)"
    mkdir -p "$PG_DIR"
    PG_PORT=$BENCH_PG_PORT PG_VERSION=$PG_VERSION PG_SUPERUSER=postgres PG_PASSWORD=$PG_PASS \
        bash "$SERVICES/postgres.sh" start "$PG_DIR" >"$RUN/postgres.env" 2>"$RUN/postgres-start.log" \
        || { tail_log "$RUN/postgres-start.log"; tail_log "$PG_DIR/server.log"; die "could not start PostgreSQL"; }
    PG_HOST=$(env_get "$RUN/postgres.env" PG_HOST)
    PG_PORT=$(env_get "$RUN/postgres.env" PG_PORT)
    PG_USER=$(env_get "$RUN/postgres.env" PG_USER)
fi
if has_engine mariadb; then
    log "starting MariaDB on 127.0.0.1:$BENCH_MARIADB_PORT (data in $MY_DIR)"
    mkdir -p "$MY_DIR"
    MARIADB_PORT=$BENCH_MARIADB_PORT MARIADB_USER=$MY_USER MARIADB_PASSWORD=$MY_PASS \
        bash "$SERVICES/mariadb.sh" start "$MY_DIR" >"$RUN/mariadb.env" 2>"$RUN/mariadb-start.log" \
        || { tail_log "$RUN/mariadb-start.log"; tail_log "$MY_DIR/server.log"; die "could not start MariaDB"; }
    MY_PORT=$(env_get "$RUN/mariadb.env" MARIADB_PORT)
fi

# pg_sql DB ARGS...: psql on the bench server (SQL on stdin or with -c), unaligned, no headers
pg_sql() {
    local db=$1
    shift
    env -i PATH="$TOOL_PATH" LANG=C.UTF-8 PGPASSFILE="$PGPASS" PGHOST="$PG_HOST" PGPORT="$PG_PORT" \
        PGUSER="$PG_USER" PGDATABASE="$db" PGSSLMODE=prefer PGOPTIONS="-c client_min_messages=warning" \
        psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}
# my_sql ARGS...: the mariadb client on the bench server (SQL on stdin or with -e)
my_sql() { "$MYSQL" --defaults-extra-file="$MYCNF" --batch --skip-column-names "$@"; }

# ---------------------------------------------------------------- test data
# The same rows on both servers, generated server-side and deterministic: a customers table
# (100,000 rows) and an orders table filled until the database reaches BENCH_DB_MB MiB. The
# text mixes numbers, a few phrases and an md5 (hex): it compresses about like real data.
PHRASES="'express delivery','gift wrap','leave at the door','call before delivery','fragile','business address','second attempt','pick-up point','no invoice in the parcel','weekend delivery','priority','standard'"
STATUSES="'new','paid','shipped','delivered','returned'"

pg_exists() { [[ $(pg_sql postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") == 1 ]]; }
pg_marker() { pg_sql "$DB" -c "SELECT mb FROM bench_generated" 2>/dev/null || true; }
pg_size() { pg_sql "$DB" -c "SELECT pg_database_size(current_database())"; }
pg_create() {
    pg_sql postgres -c "DROP DATABASE IF EXISTS $DB"
    pg_sql postgres -c "CREATE DATABASE $DB"
    pg_sql "$DB" <<SQL
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    country char(2) NOT NULL,
    created_at timestamp NOT NULL
);
INSERT INTO customers
SELECT g, 'Customer ' || g, 'customer' || g || '@example.' || (ARRAY['com','org','net','de','fr'])[1 + g % 5],
       (ARRAY['DE','FR','US','GB','IT','ES','NL','SE'])[1 + g % 8], timestamp '2015-01-01' + g * interval '37 minutes'
FROM generate_series(1, 100000) g;
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    created_at timestamp NOT NULL,
    status text NOT NULL,
    amount numeric(10,2) NOT NULL,
    sku text NOT NULL,
    note text NOT NULL
);
SQL
}
pg_insert() {
    pg_sql "$DB" <<SQL
INSERT INTO orders
SELECT g, 1 + (g * 7919) % 100000, timestamp '2020-01-01' + g * interval '17 seconds',
       (ARRAY[$STATUSES])[1 + g % 5], ((g * 31337) % 100000) / 100.0,
       'SKU-' || lpad(((g * 104729) % 50000)::text, 6, '0'),
       'order ' || g || ' of customer ' || (1 + (g * 7919) % 100000) || ': ' || (ARRAY[$PHRASES])[1 + g % 12]
           || ', ' || (ARRAY[$PHRASES])[1 + (g / 7) % 12] || ', ref ' || md5(g::text)
FROM generate_series($1::bigint, $2::bigint) g;
SQL
}
pg_finish() {
    pg_sql "$DB" -c "VACUUM (FREEZE, ANALYZE)"
    pg_sql "$DB" -c "CREATE TABLE bench_generated AS SELECT $BENCH_DB_MB AS mb, $1::bigint AS order_rows, now() AS finished_at"
    pg_sql "$DB" -c "CHECKPOINT"
}
pg_version() { pg_sql postgres -c "SHOW server_version"; }

my_exists() { [[ -n $(my_sql -e "SELECT 1 FROM information_schema.schemata WHERE schema_name = '$DB'") ]]; }
my_marker() { my_sql -e "SELECT mb FROM $DB.bench_generated" 2>/dev/null || true; }
my_size() {
    my_sql -D "$DB" -e "ANALYZE TABLE customers, orders" >/dev/null
    my_sql -e "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = '$DB'"
}
my_create() {
    my_sql <<SQL
DROP DATABASE IF EXISTS $DB;
CREATE DATABASE $DB CHARACTER SET utf8mb4;
USE $DB;
CREATE TABLE customers (
    id int NOT NULL PRIMARY KEY,
    name varchar(64) NOT NULL,
    email varchar(128) NOT NULL,
    country char(2) NOT NULL,
    created_at datetime NOT NULL
) ENGINE=InnoDB;
INSERT INTO customers
SELECT seq, CONCAT('Customer ', seq), CONCAT('customer', seq, '@example.', ELT(1 + seq % 5, 'com','org','net','de','fr')),
       ELT(1 + seq % 8, 'DE','FR','US','GB','IT','ES','NL','SE'), TIMESTAMP'2015-01-01 00:00:00' + INTERVAL seq * 37 MINUTE
FROM seq_1_to_100000;
CREATE TABLE orders (
    id bigint NOT NULL PRIMARY KEY,
    customer_id int NOT NULL,
    created_at datetime NOT NULL,
    status varchar(16) NOT NULL,
    amount decimal(10,2) NOT NULL,
    sku varchar(16) NOT NULL,
    note varchar(255) NOT NULL
) ENGINE=InnoDB;
SQL
}
my_insert() {
    my_sql -D "$DB" <<SQL
INSERT INTO orders
SELECT seq, 1 + (seq * 7919) % 100000, TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq * 17 SECOND,
       ELT(1 + seq % 5, $STATUSES), ((seq * 31337) % 100000) / 100,
       CONCAT('SKU-', LPAD((seq * 104729) % 50000, 6, '0')),
       CONCAT('order ', seq, ' of customer ', 1 + (seq * 7919) % 100000, ': ', ELT(1 + seq % 12, $PHRASES),
              ', ', ELT(1 + (seq DIV 7) % 12, $PHRASES), ', ref ', MD5(seq))
FROM seq_$1_to_$2;
SQL
}
my_finish() {
    my_sql -D "$DB" <<SQL
CREATE TABLE bench_generated ENGINE=InnoDB AS SELECT $BENCH_DB_MB AS mb, $1 AS order_rows, NOW() AS finished_at;
FLUSH TABLES customers, orders FOR EXPORT;
UNLOCK TABLES;
SQL
}
my_version() { my_sql -e "SELECT VERSION()"; }

# fn ENGINE NAME ARGS...: the engine's NAME function (pg_NAME or my_NAME)
fn() {
    local e=$1 name=$2
    shift 2
    if [[ $e == postgresql ]]; then "pg_$name" "$@"; else "my_$name" "$@"; fi
}

# generate ENGINE: (re)create the database and fill orders until it holds BENCH_DB_MB MiB
generate() {
    local e=$1 target=$(( BENCH_DB_MB << 20 )) next=1 batch=50000 size base per_row remaining t0
    t0=$EPOCHREALTIME
    log "$e: generating $DB ($BENCH_DB_MB MiB; about 35 s per GiB on 2 vCPUs)"
    fn "$e" create
    base=$(fn "$e" size)
    while :; do
        fn "$e" insert "$next" $(( next + batch - 1 ))
        next=$(( next + batch ))
        size=$(fn "$e" size)
        log "  $e: $(( next - 1 )) rows, $(( size >> 20 )) of $BENCH_DB_MB MiB"
        per_row=$(( (size - base) / (next - 1) ))
        (( per_row > 0 )) || per_row=1
        remaining=$(( (target - size) / per_row ))
        # stop within 0.5% (or 1,000 rows) of the target; near it, approach in smaller steps
        (( remaining > 1000 && remaining > (next - 1) / 200 )) || break
        if (( remaining > GEN_BATCH )); then batch=$GEN_BATCH; else batch=$(( remaining * 9 / 10 + 1 )); fi
    done
    fn "$e" finish $(( next - 1 ))
    extra "$e" 0 generate seconds "$(elapsed "$t0" "$EPOCHREALTIME")"
    extra "$e" 0 generate order_rows $(( next - 1 ))
}

# ---------------------------------------------------------------- databases
for e in "${ENGINES[@]}"; do
    fn "$e" version >/dev/null || die "$e: cannot connect to the bench server"
    meta "${e}_server_version" "$(fn "$e" version)"
    reuse=0
    if (( BENCH_REGENERATE == 0 )) && fn "$e" exists; then
        if [[ $(fn "$e" marker) == "$BENCH_DB_MB" ]]; then
            reuse=1
        else
            log "$e: $DB is there but was not generated to the end: generating it again"
        fi
    fi
    if (( reuse )); then
        log "$e: reusing $DB ($(( $(fn "$e" size) >> 20 )) MiB; BENCH_REGENERATE=1 to generate it again)"
        extra "$e" 0 generate reused 1
    else
        # the database itself, plus its dump twice (hindsight's and the bare one) and WAL or redo
        check_space $(( BENCH_DB_MB * 4 << 20 )) 1000 "a $BENCH_DB_MB MiB $e database and its dumps" \
            "Use a smaller BENCH_DB_MB."
        generate "$e"
        extra "$e" 0 generate reused 0
    fi
    extra "$e" 0 database bytes "$(fn "$e" size)"
done
check_space $(( ${#ENGINES[@]} * BENCH_DB_MB * 2 << 20 )) 1000 "the dumps of ${#ENGINES[@]} $BENCH_DB_MB MiB database(s), twice" \
    "Use a smaller BENCH_DB_MB, or fewer BENCH_ENGINES."
meta pg_dump_version "$(pg_dump --version 2>/dev/null || echo none)"
meta mysqldump_version "$(mysqldump --version 2>/dev/null || echo none)"

# ---------------------------------------------------------------- daemon, destination, jobs
SOCK=$D/hsd.sock
start_daemon "$HS/state" "$SOCK" --no-mount
hs destination add bench --type local --path "$HS/dest" >>"$RUN/setup.log" 2>&1 \
    || { tail_log "$RUN/setup.log"; die "hindsight destination add failed"; }
for e in "${ENGINES[@]}"; do
    if [[ $e == postgresql ]]; then
        hs database add "${SERVER[$e]}" --engine postgresql --host "$PG_HOST" --port "$PG_PORT" --user "$PG_USER" \
            --password-file "$PG_PASS_FILE" >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight database add ${SERVER[$e]} failed"; }
    else
        hs database add "${SERVER[$e]}" --engine mysql --host 127.0.0.1 --port "$MY_PORT" --user "$MY_USER" \
            --password-file "$MY_PASS_FILE" >>"$RUN/setup.log" 2>&1 \
            || { tail_log "$RUN/setup.log"; die "hindsight database add ${SERVER[$e]} failed"; }
    fi
    hs database test "${SERVER[$e]}" >"$RUN/database-test-$e.txt" 2>&1 \
        || { tail_log "$RUN/database-test-$e.txt"; die "hindsight database test ${SERVER[$e]} failed"; }
    hs job add "db-$e" --destination bench --database "${SERVER[$e]}:$DB" >>"$RUN/setup.log" 2>&1 \
        || { tail_log "$RUN/setup.log"; die "hindsight job add db-$e failed"; }
done

damon_pause
warn_if_busy "wall times will be noisy"

# ---------------------------------------------------------------- one dump
# bare_cmd ENGINE: BARE = the bare tool's command, as hindsightd runs it (same flags, same
# environment: a fixed PATH, the credentials in a file)
bare_cmd() {
    if [[ $1 == postgresql ]]; then
        BARE=(env -i PATH="$TOOL_PATH" LANG=C.UTF-8 PGPASSFILE="$PGPASS" PGCONNECT_TIMEOUT=10 PGAPPNAME=bench
            PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGUSER="$PG_USER" PGSSLMODE=prefer PGDATABASE="$DB"
            pg_dump --format=custom --no-password)
    else
        BARE=(env -i PATH="$TOOL_PATH" LANG=C.UTF-8 mysqldump --defaults-extra-file="$MYCNF" --single-transaction
            --routines --triggers --events --skip-dump-date --opt --skip-lock-tables -- "$DB")
    fi
}

# bare ENGINE ROUND: the bare tool into a new file next to the destination; then `sync`, timed
bare() {
    local e=$1 r=$2 out=$BARE_DIR/$DB.${EXT[$1]} t0
    bare_cmd "$e"
    rm -f -- "$out"
    peer_timed "$e-$r" "${TOOL[$e]}" "$out" "into a file on the destination's disk" "${BARE[@]}"
    t0=$EPOCHREALTIME
    sync
    extra "$e" "$r" bare sync_s "$(elapsed "$t0" "$EPOCHREALTIME")"
    extra "$e" "$r" bare dump_bytes "$(stat -c %s "$out")"
}

# hindsight ENGINE ROUND: `hindsight job run db-ENGINE --wait`; then the snapshot's dump
# (size, inode, links) and what the job's snapshots take on disk (du counts hardlinks once)
declare -A FIRST_INODE
hindsight() {
    local e=$1 r=$2 job=db-$1 snaps name path added files_added dump inode links
    hs_timed "$e-$r" "$job" 1
    snaps=$RUN/snapshots-$e-$r.json
    hs snapshot list --job "$job" --json >"$snaps" 2>"$snaps.err" || { tail_log "$snaps.err"; die "hindsight snapshot list --job $job failed"; }
    IFS=$'\t' read -r name path added files_added < <(python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import benchutil as b
s = b.newest(b.load_list(sys.argv[2], "snapshots"))
print("\t".join(str(s.get(k)) for k in ("name", "path", "bytes_added", "files_added")))' "$SCRIPT_DIR" "$snaps")
    dump=$path/tree/.hindsight/databases/${SERVER[$e]}/$DB.${EXT[$e]}
    if [[ ! -s $dump ]]; then
        warn "$e: no dump at $dump"
        find "$path/tree" -maxdepth 5 >&2 || true
        die "$e: hindsight's snapshot $name holds no dump of $DB"
    fi
    read -r inode links < <(stat -c '%i %h' "$dump")
    (( r > 1 )) || FIRST_INODE[$e]=$inode
    extra "$e" "$r" hindsight snapshot "$name"
    extra "$e" "$r" hindsight bytes_added "$added"
    extra "$e" "$r" hindsight files_added "$files_added"
    extra "$e" "$r" hindsight dump_bytes "$(stat -c %s "$dump")"
    extra "$e" "$r" hindsight dump_links "$links"
    extra "$e" "$r" hindsight dump_hardlinked "$([[ $inode == "${FIRST_INODE[$e]}" && $r -gt 1 ]] && echo 1 || echo 0)"
    extra "$e" "$r" hindsight stored_bytes_total "$(du -s -B1 "$HS/dest/$job" | cut -f1)"
    log "  snapshot $name: dump $(( $(stat -c %s "$dump") >> 10 )) KiB, bytes_added $added, links $links"
    HS_DUMP=$dump
}

# pg_toc FILE: a custom-format dump's table of contents, without its comments (the header)
pg_toc() { env -i PATH="$TOOL_PATH" LANG=C.UTF-8 pg_restore --list -- "$1" | grep -v '^;'; }

# compare ENGINE ROUND: hindsight's dump against the bare one, which ran with the same flags.
# mysqldump's must be the same bytes. pg_dump's are the same size and hold the same entries,
# but differ in a few bytes: the header's dump time (hindsight sets it to the epoch, so that
# an unchanged database dumps to the same bytes), and the data offsets of the table of
# contents, which pg_dump fills in by seeking back when it writes to a file, not to a pipe.
compare() {
    local e=$1 r=$2 a=$BARE_DIR/$DB.${EXT[$1]} b=$HS_DUMP listed diffs verdict
    if [[ $(stat -c %s "$a") != "$(stat -c %s "$b")" ]]; then
        verdict="sizes differ: bare $(stat -c %s "$a"), hindsight $(stat -c %s "$b")"
    else
        # cmp -l: one line per differing byte (at most 1001 kept)
        listed=$({ cmp -l -- "$a" "$b" 2>/dev/null || true; } | head -n 1001)
        diffs=$(grep -c . <<<"$listed" || true)
        if (( diffs == 0 )); then
            verdict=identical
        elif (( diffs > 1000 )); then
            verdict="different (over 1000 bytes)"
        elif [[ $e == postgresql ]] && diff -q <(pg_toc "$a") <(pg_toc "$b") >/dev/null; then
            verdict="same entries; $diffs bytes of header time and data offsets differ"
        else
            verdict="different ($diffs bytes)"
        fi
    fi
    extra "$e" "$r" hindsight same_as_bare "$verdict"
    case $verdict in
        identical | same\ entries*) log "  $e round $r: hindsight's dump vs the bare one: $verdict" ;;
        *) warn "$e round $r: hindsight's dump vs the bare one: $verdict"; CHECK_FAILED=1 ;;
    esac
}

# ---------------------------------------------------------------- rounds
for e in "${ENGINES[@]}"; do
    if [[ $BENCH_WARM == 1 ]]; then
        log "$e: an untimed dump to /dev/null first (the database in the page cache; BENCH_WARM=0 to skip)"
        bare_cmd "$e"
        t0=$EPOCHREALTIME
        "${BARE[@]}" >/dev/null 2>"$RUN/warm-$e.err" || { tail_log "$RUN/warm-$e.err"; die "$e: the warm-up dump failed"; }
        meta "warm_${e}_s" "$(elapsed "$t0" "$EPOCHREALTIME")"
    fi
    for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
        meta "load_${e}_$r" "$(cut -d' ' -f1-3 /proc/loadavg)"
        if (( r % 2 )); then
            extra "$e" "$r" round order "bare first"
            bare "$e" "$r"
            hindsight "$e" "$r"
        else
            extra "$e" "$r" round order "hindsight first"
            hindsight "$e" "$r"
            bare "$e" "$r"
        fi
        compare "$e" "$r"
    done
done

# ---------------------------------------------------------------- report
stop_daemon
stop_services
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta uptime_end "$(uptime)"
python3 - "$SCRIPT_DIR" "$RUN" "$W/results-databases.json" "$W/results" "$TARGET_WALL_RATIO" "$TARGET_NEW_PCT" <<'PY'
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import benchutil as b

run, json_out, archive_dir = sys.argv[2:5]
target_ratio, target_pct = float(sys.argv[5]), float(sys.argv[6])
meta = b.read_meta(os.path.join(run, "meta.tsv"))
rows = b.read_jsonl(os.path.join(run, "results.jsonl"))
extra = {}
with open(os.path.join(run, "extra.tsv")) as f:
    for line in f:
        e, r, tool, k, v = line.rstrip("\n").split("\t")
        n = b.num(v)
        extra.setdefault((e, int(r), tool), {})[k] = int(n) if isinstance(n, float) and v.isdigit() else n


def pct(part, whole):
    return None if part is None or not whole else round(100.0 * part / whole, 4)


def mib(v):
    return "-" if v is None else f"{v / 2**20:.1f}"


result = {"meta": meta, "engines": {}, "targets": {}}
table = []
for e in meta["engines"].split():
    gen = extra.get((e, 0, "generate"), {})
    eng = {"database": meta["database"], "database_bytes": extra.get((e, 0, "database"), {}).get("bytes"),
           "generated": {"reused": gen.get("reused") == 1, "seconds": gen.get("seconds"),
                         "order_rows": gen.get("order_rows")}, "runs": []}
    prev_stored = 0
    for r in range(1, int(meta["rounds"]) + 1):
        phase = f"{e}-{r}"
        bare = next((x for x in rows if x["phase"] == phase and x["tool"] != "hindsight"), {})
        hs = next((x for x in rows if x["phase"] == phase and x["tool"] == "hindsight"), {})
        bare = {**bare, **extra.get((e, r, "bare"), {})}
        hs = {**hs, **extra.get((e, r, "hindsight"), {})}
        if bare.get("wall_s") is not None and bare.get("sync_s") is not None:
            bare["wall_with_sync_s"] = round(bare["wall_s"] + bare["sync_s"], 4)
        stored = hs.get("stored_bytes_total")
        if stored is not None:
            hs["stored_new_bytes"] = int(stored - prev_stored)
            prev_stored = stored
        hs["stored_new_pct_of_dump"] = pct(hs.get("stored_new_bytes"), hs.get("dump_bytes"))
        hs["bytes_added_pct_of_dump"] = pct(hs.get("bytes_added"), hs.get("dump_bytes"))
        one = {"round": r, "order": extra.get((e, r, "round"), {}).get("order"), "bare": bare, "hindsight": hs,
               "ratio_wall": b.ratio(hs.get("wall_s"), bare.get("wall_s")),
               "ratio_wall_over_bare_with_sync": b.ratio(hs.get("wall_s"), bare.get("wall_with_sync_s")),
               "ratio_cpu": b.ratio(hs.get("cpu_s"), bare.get("cpu_s"))}
        eng["runs"].append(one)
        table.append([e, str(r), one["order"] or "-", b.fmt(bare.get("wall_s")), b.fmt(bare.get("wall_with_sync_s")),
                      b.fmt(bare.get("cpu_s")), b.fmt(hs.get("wall_s")), b.fmt(hs.get("cpu_s")),
                      b.fmt(one["ratio_wall"], 3), b.fmt(one["ratio_wall_over_bare_with_sync"], 3),
                      mib(hs.get("dump_bytes")), str(hs.get("stored_new_bytes", "-")),
                      str(hs.get("bytes_added", "-")),
                      {1: "yes", 0: "no"}.get(hs.get("dump_hardlinked"), "-") if r > 1 else "-",
                      str(hs.get("same_as_bare", "-")).split(";")[0]])
    runs = eng["runs"]
    walls = lambda side, key="wall_s": [x[side][key] for x in runs if x[side].get(key) is not None]
    eng["ratio_wall"] = b.ratio(b.median(walls("hindsight")), b.median(walls("bare")))
    eng["ratio_wall_over_bare_with_sync"] = b.ratio(b.median(walls("hindsight")), b.median(walls("bare", "wall_with_sync_s")))
    eng["ratio_cpu"] = b.ratio(b.median(walls("hindsight", "cpu_s")), b.median(walls("bare", "cpu_s")))
    later = [x["hindsight"] for x in runs[1:]]
    new_pcts = [h["stored_new_pct_of_dump"] for h in later if h.get("stored_new_pct_of_dump") is not None]
    eng["unchanged_run_stored_new_pct"] = max(new_pcts) if new_pcts else None
    added_pcts = [h["bytes_added_pct_of_dump"] for h in later if h.get("bytes_added_pct_of_dump") is not None]
    eng["unchanged_run_bytes_added_pct"] = max(added_pcts) if added_pcts else None
    tool = "pg_dump -Fc" if e == "postgresql" else "mysqldump"
    result["engines"][e] = eng
    result["targets"][f"{e}_wall_over_bare"] = b.target(
        eng["ratio_wall"], target_ratio, label=f"{e}: hindsight / {tool} to a file (wall, medians of {len(runs)})")
    result["targets"][f"{e}_unchanged_run_new_pct"] = b.target(
        eng["unchanged_run_stored_new_pct"], target_pct,
        label=f"{e}: unchanged run, new bytes stored (% of the dump)")

cols = ["engine", "round", "order", "bare s", "+sync s", "bare cpu", "hindsight s", "hs cpu", "ratio",
        "ratio/+sync", "dump MiB", "new stored B", "bytes_added", "hardlinked", "same as bare"]
print()
print(f"Database dumps: {meta['database']} ({meta['db_mb']} MiB per database), {meta['rounds']} round(s), "
      f"run {meta['run_id']}")
print()
b.print_table(cols, table, ["<", ">", "<", ">", ">", ">", ">", ">", ">", ">", ">", ">", ">", "<", "<"],
              gap=lambda i, row: row[0] != table[i - 1][0])
print()
for e, eng in result["engines"].items():
    size = eng["database_bytes"]
    gen = eng["generated"]
    how = "reused" if gen["reused"] else f"generated in {b.fmt(gen['seconds'], 0)} s"
    print(f"{e}: database {mib(size)} MiB ({how}); ratio wall {b.fmt(eng['ratio_wall'], 3)}, "
          f"over bare + sync {b.fmt(eng['ratio_wall_over_bare_with_sync'], 3)}, cpu {b.fmt(eng['ratio_cpu'], 3)}; "
          f"unchanged run: stored {b.fmt(eng['unchanged_run_stored_new_pct'], 4)} %, "
          f"bytes_added {b.fmt(eng['unchanged_run_bytes_added_pct'], 4)} % of the dump")
print()
for t in result["targets"].values():
    v = t["value"]
    print(f"  {t['label']}: {b.fmt(v, 3)} (target <= {t['target_max']}) {b.pass_word(t['pass'])}")

b.write_results(result, json_out, None, "databases")
os.makedirs(archive_dir, exist_ok=True)
arch = os.path.join(archive_dir, f"databases-{meta['db_mb']}mb-{meta['run_id']}.json")
with open(arch, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(f"         {arch}")
PY

if (( CHECK_FAILED )); then
    warn "a hindsight dump differs from the bare tool's (see above and $EXTRA): the timings compare different work"
    exit 3
fi
log "done; $RUN, $HS and $BARE_DIR stay until the next run moves them to $TRASH; the servers' data stays in $D/servers"
