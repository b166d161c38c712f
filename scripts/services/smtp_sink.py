#!/usr/bin/env python3
"""SMTP server of the notification tests (aiosmtpd): every accepted message is
stored in a Maildir (MAILDIR/new/<file>, with X-MailFrom / X-RcptTo / X-Peer
headers added). AUTH PLAIN/LOGIN is offered, also without TLS, and accepts only
--user/--password; it is optional for clients. STARTTLS is offered with
--cert/--key, and with --tls-port a second listener speaks TLS from the first
byte (implicit TLS, as on port 465). Runs in the foreground until SIGTERM or
SIGINT."""
import argparse
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class LoggingMailbox(Mailbox):
    def handle_message(self, message):
        super().handle_message(message)
        print(f"stored message from={message['X-MailFrom']} to={message['X-RcptTo']} "
              f"subject={message['Subject']!r}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls-port", type=int)
    a = ap.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == a.user
              and auth_data.password.decode() == a.password)
        return AuthResult(success=ok, handled=False)

    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)

    ctl = Controller(
        LoggingMailbox(a.maildir), hostname=a.host, port=a.port,
        authenticator=authenticator, auth_required=False, auth_require_tls=False,
        tls_context=tls, require_starttls=False, ready_timeout=10,
    )
    ctl.start()
    print(f"smtp server on {a.host}:{a.port}, maildir {a.maildir}", flush=True)
    implicit = None
    if a.tls_port:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(a.cert, a.key)
        implicit = Controller(
            LoggingMailbox(a.maildir), hostname=a.host, port=a.tls_port, ssl_context=server_tls,
            authenticator=authenticator, auth_required=False, auth_require_tls=False, ready_timeout=10,
        )
        implicit.start()
        print(f"smtp server with implicit TLS on {a.host}:{a.tls_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    ctl.stop()
    if implicit:
        implicit.stop()


if __name__ == "__main__":
    main()
