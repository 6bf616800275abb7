"""Attachment content, content-addressed by sha256, in a folder (``MAIL_ATTACHMENTS_DIR``;
default ``<system temp>/roofcrm-mail-attachments``). The same file attached to a hundred messages
is stored once. In production the folder is a volume (or a bucket mounted as one)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def default_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "roofcrm-mail-attachments")


class AttachmentStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_of(self, sha256: str) -> Path:
        if not SHA256.match(sha256 or ""):
            raise ValueError("not a sha256")
        return self.root / sha256[:2] / sha256

    def put(self, sha256: str, content: bytes) -> None:
        """Store once; a concurrent writer of the same content is harmless (atomic rename)."""
        path = self.path_of(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()

    def has(self, sha256: str) -> bool:
        # An erased attachment keeps its row with no hash: nothing to find.
        return bool(SHA256.match(sha256 or "")) and self.path_of(sha256).exists()

    def remove(self, sha256: str) -> bool:
        """Delete the content (personal data erasure); True when there was a file."""
        try:
            self.path_of(sha256).unlink()
        except FileNotFoundError:
            return False
        return True
