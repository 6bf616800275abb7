"""Reading one IMAP folder incrementally with imapclient (RFC 3501, INTEGRATION-FORMATS §3).

``SELECT`` (read-only) gives ``UIDVALIDITY``; new messages are ``UID SEARCH <last+1>:*`` and
``UID FETCH (BODY.PEEK[] INTERNALDATE RFC822.SIZE)`` in chunks, keeping only ``uid > last`` (the
server may answer a range past the end with the last message). Sockets are plain Python sockets,
so under eventlet's monkey-patching the I/O is cooperative. ``BODY.PEEK`` leaves \\Seen alone.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient

FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes
    internal_date: datetime | None


class ImapFolderReader:
    """One connection, logged in; ``with ImapFolderReader.open(...) as reader``."""

    def __init__(self, client: IMAPClient):
        self.client = client

    @classmethod
    def open(cls, host: str, port: int, tls: bool, login: str, password: str,
             timeout: float = 30.0) -> ImapFolderReader:
        context = ssl.create_default_context() if tls else None
        client = IMAPClient(host, port=port, ssl=tls, ssl_context=context, timeout=timeout)
        client.normalise_times = False          # tz-aware INTERNALDATE
        try:
            client.login(login, password)
        except Exception:
            client.shutdown()
            raise
        return cls(client)

    def folders(self) -> list[str]:
        return [name for _flags, _sep, name in self.client.list_folders()]

    def select(self, folder: str) -> int:
        """Select ``folder`` read-only; its UIDVALIDITY."""
        info = self.client.select_folder(folder, readonly=True)
        return int(info[b"UIDVALIDITY"])

    def new_uids(self, last_uid: int) -> list[int]:
        uids = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in uids if uid > last_uid)

    def fetch(self, uids: list[int], chunk: int = 200) -> Iterator[list[FetchedMessage]]:
        for start in range(0, len(uids), chunk):
            part = uids[start:start + chunk]
            data = self.client.fetch(part, FETCH_ITEMS)
            out = []
            for uid in sorted(data):
                if uid not in part:
                    continue
                item = data[uid]
                raw = item.get(b"BODY[]") or b""
                when = item.get(b"INTERNALDATE")
                if when is not None:
                    when = when.replace(tzinfo=UTC) if when.tzinfo is None \
                        else when.astimezone(UTC)
                out.append(FetchedMessage(uid=uid, raw=raw, internal_date=when))
            yield out

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
