#!/usr/bin/env bash
# FTP test server: pyftpdlib (PyPI) on 127.0.0.1, one virtual user with full
# rights on STATE_DIR/root, passive mode on a fixed port range.
#
#   scripts/services/ftp.sh start|stop|status|env|install [STATE_DIR]
#
# Env: FTP_PORT (2131), FTP_PASV_MIN/FTP_PASV_MAX (30100/30119), FTP_USER
#      (hsftp), FTP_PASSWORD (hsftp-pass), FTP_STATE_DIR, HINDSIGHT_TOOLS_DIR.
# Prints FTP_HOST FTP_PORT FTP_USER FTP_PASSWORD FTP_PASV_RANGE FTP_ROOT_DIR.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init ftp FTP "$@"

PORT="${FTP_PORT:-2131}"
PMIN="${FTP_PASV_MIN:-30100}"
PMAX="${FTP_PASV_MAX:-30119}"
FUSER="${FTP_USER:-hsftp}"
FPASS="${FTP_PASSWORD:-hsftp-pass}"
VENV="$HINDSIGHT_TOOLS_DIR/venv-ftp"

do_install() {
    hs_venv venv-ftp pyftpdlib pyftpdlib >/dev/null
}

do_start() {
    hs_require_free_port "$PORT"
    mkdir -p "$STATE/root"
    hs_spawn "$VENV/bin/python" "$here/ftp_server.py" --port "$PORT" --root "$STATE/root" \
        --user "$FUSER" --password "$FPASS" --pasv-min "$PMIN" --pasv-max "$PMAX"
    hs_wait_port "$PORT" 30
    hs_emit_env <<EOF
FTP_HOST=127.0.0.1
FTP_PORT=$PORT
FTP_USER=$FUSER
FTP_PASSWORD=$FPASS
FTP_PASV_RANGE=$PMIN-$PMAX
FTP_ROOT_DIR=$STATE/root
EOF
}

hs_main
