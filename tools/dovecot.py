"""A private Dovecot IMAP server for tests and benchmarks (never the system one).

    with Dovecot.start(users={"m1": "secret"}) as imap:
        imap.port                    # 127.0.0.1:<free port>, plaintext login allowed
        imap.append("m1", "INBOX", raw_bytes)
        imap.new_uidvalidity("m1", "INBOX")

Everything lives in a fresh folder directly under the system temp folder (Dovecot's mail
processes run as an unprivileged user, who must be able to enter every folder above the data):
its own config (``dovecot -c``), ``base_dir``, logs, a ``passwd-file`` user database and maildirs.
The server runs in the foreground (``-F``) as our child process and is stopped by its pid.
Needs the OS package ``dovecot-imapd`` (``scripts/common.sh`` ``ensure_dovecot``).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from crm_platform.testing import free_port

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.info.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
default_internal_user = {user}
default_login_user = {user}
mail_max_userip_connections = 100
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def available() -> bool:
    return bool(shutil.which("dovecot") and shutil.which("doveadm"))


def _run_user() -> pwd.struct_passwd:
    for name in ("dovecot", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user for Dovecot (dovecot or nobody)")


class Dovecot:
    """One private Dovecot instance; ``stop()`` kills it and removes its folder."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, users: dict):
        self.root = root
        self.port = port
        self.host = "127.0.0.1"
        self.process = process
        self.users = dict(users)

    @classmethod
    def start(cls, users: dict[str, str], timeout: float = 15.0) -> Dovecot:
        if not available():
            raise RuntimeError("Dovecot is not installed: run scripts/common.sh ensure_dovecot "
                               "(apt-get install dovecot-imapd)")
        root = Path(tempfile.mkdtemp(prefix="roofcrm-dovecot-", dir=tempfile.gettempdir()))
        os.chmod(root, 0o755)
        run_as = _run_user()
        for sub in ("run", "state", "log", "mail"):
            (root / sub).mkdir()
        os.chown(root / "mail", run_as.pw_uid, run_as.pw_gid)
        port = free_port()
        (root / "dovecot.conf").write_text(CONFIG.format(
            root=root, port=port, uid=run_as.pw_uid, gid=run_as.pw_gid, user=run_as.pw_name))
        instance = cls(root, port, None, users)
        instance._write_users()
        process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=open(root / "log" / "stderr.log", "wb"))
        instance.process = process
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = imaplib.IMAP4(instance.host, port, timeout=2)
                conn.logout()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "log" / "stderr.log").read_text(errors="replace")
                    instance.stop()
                    raise RuntimeError(f"Dovecot did not start: {log[-2000:]}") from None
                time.sleep(0.05)
        return instance

    def _write_users(self) -> None:
        lines = [f"{name}:{{PLAIN}}{password}::::::" for name, password in self.users.items()]
        path = self.root / "users"
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o644)

    def add_user(self, name: str, password: str) -> None:
        """Add a user and return once Dovecot accepts its login (so the service's own first
        login cannot be refused)."""
        self.users[name] = password
        self._write_users()
        self.connect(name).logout()

    def connect(self, user: str) -> imaplib.IMAP4:
        # Dovecot re-reads the passwd-file at most once a second: a user added within the same
        # second as the last login is not known yet, so a refused login is retried briefly.
        deadline = time.monotonic() + 3
        while True:
            conn = imaplib.IMAP4(self.host, self.port, timeout=30)
            try:
                conn.login(user, self.users[user])
                return conn
            except imaplib.IMAP4.error:
                conn.shutdown()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def append(self, user: str, folder: str, *messages: bytes) -> None:
        """APPEND each raw message to ``folder`` (created when missing)."""
        conn = self.connect(user)
        try:
            conn.create(folder)      # "already exists" is fine
            for raw in messages:
                typ, data = conn.append(folder, None, None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND failed: {data}")
        finally:
            conn.logout()

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(["doveadm", "-c", str(self.root / "dovecot.conf"), *args],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def uidvalidity(self, user: str, folder: str) -> int:
        out = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", folder)
        return int(out.strip().split("=")[-1])

    def new_uidvalidity(self, user: str, folder: str) -> int:
        """Give ``folder`` a new UIDVALIDITY (its messages get new UIDs), as after a server
        migration: IMAP itself cannot do that to INBOX."""
        old = self.uidvalidity(user, folder)
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(old + 7), folder)
        return self.uidvalidity(user, folder)

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
