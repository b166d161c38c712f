#!/usr/bin/env bash
# SMTP test server: aiosmtpd (PyPI) on 127.0.0.1; every message it accepts is
# stored in a Maildir (STATE_DIR/maildir/new/) with X-MailFrom / X-RcptTo
# headers added. AUTH PLAIN/LOGIN is offered (also without TLS) and accepts
# only SMTP_USER/SMTP_PASSWORD; STARTTLS is offered with a self-signed
# certificate (a client that verifies certificates refuses it), and a second
# port speaks TLS from the first byte (implicit TLS, like port 465).
#
#   scripts/services/smtp.sh start|stop|status|env|install [STATE_DIR]
#
# Env: SMTP_PORT (2525), SMTP_TLS_PORT (SMTP_PORT + 1), SMTP_USER (hsmail), SMTP_PASSWORD (hsmail-pass),
#      SMTP_STATE_DIR, HINDSIGHT_TOOLS_DIR (where the venv lives).
# Prints SMTP_HOST SMTP_PORT SMTP_TLS_PORT SMTP_USER SMTP_PASSWORD SMTP_MAILDIR.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init smtp SMTP "$@"

PORT="${SMTP_PORT:-2525}"
TLS_PORT="${SMTP_TLS_PORT:-$((PORT + 1))}"
SUSER="${SMTP_USER:-hsmail}"
SPASS="${SMTP_PASSWORD:-hsmail-pass}"
VENV="$HINDSIGHT_TOOLS_DIR/venv-aiosmtpd"

do_install() {
    hs_venv venv-aiosmtpd aiosmtpd aiosmtpd >/dev/null
}

do_start() {
    hs_require_free_port "$PORT"
    hs_require_free_port "$TLS_PORT"
    # Python's Maildir does not create these when the directory exists.
    mkdir -p "$STATE/maildir/cur" "$STATE/maildir/new" "$STATE/maildir/tmp"
    if [ ! -f "$STATE/cert.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
            -addext subjectAltName=IP:127.0.0.1 -keyout "$STATE/key.pem" -out "$STATE/cert.pem" 2>/dev/null \
            || hs_die "openssl could not make the test certificate"
    fi
    hs_spawn "$VENV/bin/python" "$here/smtp_sink.py" --port "$PORT" --maildir "$STATE/maildir" \
        --user "$SUSER" --password "$SPASS" --cert "$STATE/cert.pem" --key "$STATE/key.pem" --tls-port "$TLS_PORT"
    hs_wait_port "$PORT" 30
    hs_wait_port "$TLS_PORT" 30
    hs_emit_env <<ENV
SMTP_HOST=127.0.0.1
SMTP_PORT=$PORT
SMTP_TLS_PORT=$TLS_PORT
SMTP_USER=$SUSER
SMTP_PASSWORD=$SPASS
SMTP_MAILDIR=$STATE/maildir
ENV
}

hs_main
