#!/usr/bin/env python3
"""FTP server for the tests (pyftpdlib), run by ftp.sh in the foreground: one
read/write virtual user, passive mode on 127.0.0.1 within a fixed port range."""
import argparse
import logging

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--pasv-min", type=int, required=True)
    ap.add_argument("--pasv-max", type=int, required=True)
    a = ap.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    authorizer = DummyAuthorizer()
    # e=chdir l=list r=retr a=append d=delete f=rename m=mkdir w=store M=chmod T=mtime
    authorizer.add_user(a.user, a.password, a.root, perm="elradfmwMT")

    handler = FTPHandler
    handler.authorizer = authorizer
    handler.passive_ports = range(a.pasv_min, a.pasv_max + 1)
    handler.masquerade_address = "127.0.0.1"
    handler.permit_foreign_addresses = False
    handler.banner = "hindsight test ftp ready"

    server = FTPServer(("127.0.0.1", a.port), handler)
    server.max_cons = 256
    server.max_cons_per_ip = 0
    server.serve_forever()


if __name__ == "__main__":
    main()
