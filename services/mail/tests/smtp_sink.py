"""A real SMTP server for the tests (aiosmtpd), run as its own process: AUTH PLAIN/LOGIN with one
login, every accepted message written to a folder as ``<n>.eml`` with ``<n>.json`` (envelope,
the login used).

    python -m services.mail.tests.smtp_sink --port 2525 --dir /tmp/x --login u --password p
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder: Path):
        self.folder = folder
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        (self.folder / f"{n}.eml").write_bytes(envelope.original_content or envelope.content)
        (self.folder / f"{n}.json").write_text(json.dumps({
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.login.decode() if session.auth_data else None}))
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            auth_data.login.decode() == args.login and \
            auth_data.password.decode() == args.password
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    controller = Controller(Sink(Path(args.dir)), hostname="127.0.0.1", port=args.port,
                            authenticator=authenticator, auth_require_tls=False,
                            auth_required=True)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
