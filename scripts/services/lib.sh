# Helpers shared by the test-service scripts in this folder (moto.sh, sshd.sh,
# ftp.sh) and by scripts/test.sh. Sourced, never run on its own.
#
# Every service script follows the same interface:
#
#   NAME.sh start|stop|status|env|install [STATE_DIR]
#
#   - STATE_DIR: the 2nd argument, else $<NAME>_STATE_DIR, else
#     /tmp/hindsight-services/NAME. It holds the PID, the log (server.log),
#     keys and configs, and `env`, the saved KEY=VALUE settings.
#   - start (the default) installs what is missing, starts the server in the
#     background, waits until it answers and prints KEY=VALUE lines on stdout
#     (also saved to STATE_DIR/env); everything else goes to stderr. If the
#     server recorded in STATE_DIR is already running it only prints the env.
#   - stop: TERM, then KILL after a grace period; nothing if not running.
#   - status exits 0 (running) or 1; env prints the saved settings.
#   - Servers listen on 127.0.0.1 only. Python tools live in venvs under
#     $HINDSIGHT_TOOLS_DIR (default /var/tmp/hindsight-tools, outside the
#     clone, so that repeated runs reuse them).

set -euo pipefail

HS_NAME="${HS_NAME:-services}"
HINDSIGHT_TOOLS_DIR="${HINDSIGHT_TOOLS_DIR:-/var/tmp/hindsight-tools}"

hs_log() { echo "[$HS_NAME] $*" >&2; }
hs_die() {
    echo "[$HS_NAME] ERROR: $*" >&2
    exit 1
}

# hs_init NAME UPPERNAME "$@": sets HS_NAME, HS_CMD, STATE, PIDFILE, ENVFILE, LOGFILE.
hs_init() {
    HS_NAME="$1"
    local var="$2_STATE_DIR"
    shift 2
    HS_CMD="${1:-start}"
    STATE="${2:-${!var:-/tmp/hindsight-services/$HS_NAME}}"
    case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
    PIDFILE="$STATE/pid"
    ENVFILE="$STATE/env"
    LOGFILE="$STATE/server.log"
}

# hs_pid_alive PID: 0 if the process runs (a zombie, not reaped yet, does not).
hs_pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != "Z" ]
}

# hs_alive [PIDFILE]: 0 if the process recorded there runs.
hs_alive() {
    local f="${1:-$PIDFILE}" pid
    [ -s "$f" ] || return 1
    pid="$(head -n1 "$f")"
    [ -n "$pid" ] && hs_pid_alive "$pid"
}

# hs_port_open PORT: 0 if something accepts TCP connections on 127.0.0.1:PORT.
hs_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hs_free_port BASE: prints the first port >= BASE nobody listens on.
hs_free_port() {
    local p="$1"
    while hs_port_open "$p"; do
        p=$((p + 1))
        [ "$p" -lt $(($1 + 200)) ] || hs_die "no free port in $1..$p"
    done
    echo "$p"
}

# hs_require_free_port PORT...: fails if a port is already taken.
hs_require_free_port() {
    local p
    for p in "$@"; do
        ! hs_port_open "$p" || hs_die "127.0.0.1:$p is already in use (set ${HS_NAME^^}_PORT to another port)"
    done
}

# hs_spawn CMD...: starts CMD in its own session, output to $LOGFILE, PID to $PIDFILE.
hs_spawn() {
    setsid "$@" >"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
}

# hs_wait_port PORT TIMEOUT_S: waits until our server (alive in $PIDFILE)
# accepts connections on 127.0.0.1:PORT; on failure shows the log and dies.
hs_wait_port() {
    local port="$1" i=0
    while [ "$i" -lt $(($2 * 20)) ]; do
        if ! hs_alive; then
            tail -n 20 "$LOGFILE" >&2 || true
            hs_die "the server exited before listening on 127.0.0.1:$port (log: $LOGFILE)"
        fi
        if hs_port_open "$port"; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    tail -n 20 "$LOGFILE" >&2 || true
    hs_die "timed out after $2 s waiting for 127.0.0.1:$port (log: $LOGFILE)"
}

# hs_stop [GRACE_S]: stops the server recorded in $PIDFILE (TERM, then KILL).
hs_stop() {
    local grace="${1:-10}" pid i=0
    [ -s "$PIDFILE" ] || return 0
    pid="$(head -n1 "$PIDFILE")"
    if hs_pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        while hs_pid_alive "$pid" && [ "$i" -lt $((grace * 20)) ]; do
            sleep 0.05
            i=$((i + 1))
        done
        if hs_pid_alive "$pid"; then
            hs_log "PID $pid still alive after ${grace}s, sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PIDFILE"
}

# hs_emit_env: saves the KEY=VALUE lines on stdin to $ENVFILE and prints them.
hs_emit_env() {
    cat >"$ENVFILE.tmp"
    mv "$ENVFILE.tmp" "$ENVFILE"
    cat "$ENVFILE"
}

hs_print_env() {
    [ -s "$ENVFILE" ] || hs_die "no settings in $ENVFILE (not started?)"
    cat "$ENVFILE"
}

# hs_main: dispatches $HS_CMD to the script's do_install / do_start functions.
hs_main() {
    case "$HS_CMD" in
    install) do_install ;;
    start)
        if hs_alive; then
            hs_print_env
        else
            mkdir -p "$STATE"
            do_install
            do_start
        fi
        ;;
    stop) if declare -F do_stop >/dev/null; then do_stop; else hs_stop; fi ;;
    status) if hs_alive; then echo running; else
        echo stopped
        return 1
    fi ;;
    env) hs_print_env ;;
    *) hs_die "unknown command $HS_CMD (start|stop|status|env|install)" ;;
    esac
}

# hs_apt_install PACKAGE...: installs the missing Debian packages, with at most
# one `apt-get update`. A policy-rc.d guard keeps postinst scripts from
# starting system daemons (sshd on 0.0.0.0:22).
hs_apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || hs_die "missing packages ${missing[*]}: run as root to install them"
    hs_log "installing: ${missing[*]}"
    local guard=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    local rc=0
    {
        apt-get -o DPkg::Lock::Timeout=600 update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
                --no-install-recommends "${missing[@]}" >/dev/null
    } >&2 || rc=$?
    [ "$guard" = 0 ] || rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || hs_die "apt-get failed for ${missing[*]}"
}

# hs_python: the interpreter the venvs are made from (the system one, so that
# the cached venvs keep working whatever python3 comes first in PATH).
hs_python() {
    if [ -n "${HS_PYTHON:-}" ]; then
        echo "$HS_PYTHON"
    elif [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    else
        echo python3
    fi
}

# hs_venv NAME CHECK_MODULE PIP_ARGS...: makes sure the venv
# $HINDSIGHT_TOOLS_DIR/NAME can import CHECK_MODULE, else (re)creates it and
# pip-installs PIP_ARGS. Serialised by a lock, so concurrent runs share it.
# Prints the venv's path.
hs_venv() {
    local dir="$HINDSIGHT_TOOLS_DIR/$1" mod="$2" py
    shift 2
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import $mod" 2>/dev/null; then
        echo "$dir"
        return 0
    fi
    mkdir -p "$HINDSIGHT_TOOLS_DIR"
    (
        flock 9
        if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import $mod" 2>/dev/null; then exit 0; fi
        py="$(hs_python)"
        "$py" -c 'import ensurepip, venv' 2>/dev/null || hs_apt_install python3-venv
        hs_log "installing $* into $dir"
        rm -rf "$dir"
        "$py" -m venv "$dir"
        "$dir/bin/pip" install -q --disable-pip-version-check --no-compile "$@" >&2
    ) 9>"$HINDSIGHT_TOOLS_DIR/.$1.lock"
    echo "$dir"
}
