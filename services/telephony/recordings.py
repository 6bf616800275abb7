"""Links to call recordings: short-lived, signed, and only for those who may see the client.

The audio never passes through the CRM: it stays on the PBX (or its storage), whose web server or
a small storage proxy serves ``RECORDINGS_BASE_URL/<path>?expires=<unix>&token=<hex>`` after
checking ``token == hmac_sha256(RECORDINGS_SECRET, path + str(expires))`` and that ``expires`` has
not passed (``verify_recording_token`` is that check). ``path`` is the recording as the PBX reported
it (a file path, a Zadarma record id), without the leading ``/``, percent-encoded as in the URL.

Who may have a link: for a call with a client, whoever the clients service lets read that client
(``get_client`` asked as the caller); for a call without one, the call's manager, the sales head of
its department, and the director. Everyone else, an unknown call and a call without a recording
all get the same 404.

Config: ``RECORDINGS_BASE_URL``, ``RECORDINGS_SECRET``, ``RECORDINGS_TTL_SECONDS`` (300).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import Forbidden, NotFound
from crm_platform.rpc import rpc

from .models import calls, departments

DEFAULT_TTL_SECONDS = 300


def recording_path(recording: str) -> str:
    """The recording as it appears in the URL (and in the signed string)."""
    return quote(recording.strip().lstrip("/"), safe="/")


def recording_token(secret: str, path: str, expires: int) -> str:
    return hmac.new(secret.encode("utf-8"), f"{path}{expires}".encode(),
                    hashlib.sha256).hexdigest()


def verify_recording_token(secret: str, path: str, expires, token: str,
                           now: float | None = None) -> bool:
    """What the PBX's web server (or the storage proxy) checks: the token, then the time."""
    try:
        expires = int(expires)
    except (TypeError, ValueError):
        return False
    if not hmac.compare_digest(recording_token(secret, path, expires), str(token or "")):
        return False
    return expires >= (time.time() if now is None else now)


def _not_found() -> NotFound:
    return NotFound("Запись разговора не найдена", code="recording_not_found")


class Recordings:
    """Mixin of ``TelephonyService``: needs ``db``, ``caller``, ``config``, ``clients_rpc``."""

    @rpc
    def recording_link(self, call_id: str) -> dict:
        """``{"url", "expires_at"}``: a link to the call's recording, valid
        ``RECORDINGS_TTL_SECONDS``; 404 when the caller may not see the call or it has none."""
        identity = self.caller.require()
        try:
            key = uuid.UUID(str(call_id))
        except ValueError:
            raise _not_found() from None
        with self.db.session() as session:
            call = session.execute(sa.select(
                calls.c.call_id, calls.c.client_id, calls.c.user_id, calls.c.department_id,
                calls.c.recording).where(calls.c.call_id == key)).first()
            if call is None:
                raise _not_found()
            if call.client_id is None:
                head = None
                if call.department_id is not None:
                    head = session.execute(sa.select(departments.c.head_user_id).where(
                        departments.c.department_id == call.department_id)).scalar()
                allowed = identity.role == "director" or (
                    call.user_id is not None and str(call.user_id) == identity.user_id) or (
                    identity.role == "sales_head" and head is not None
                    and str(head) == identity.user_id)
                if not allowed:
                    raise _not_found()
        if call.client_id is not None:
            try:
                self.clients_rpc.get_client(str(call.client_id))    # as the caller
            except (Forbidden, NotFound):
                raise _not_found() from None
        if not (call.recording or "").strip():
            raise _not_found()
        secret = str(self.config.get("RECORDINGS_SECRET") or "")
        base = str(self.config.get("RECORDINGS_BASE_URL") or "").rstrip("/")
        if not secret or not base:
            raise _not_found()                 # recordings are not served in this installation
        ttl = as_int(self.config.get("RECORDINGS_TTL_SECONDS"), DEFAULT_TTL_SECONDS)
        expires = int(utcnow().timestamp()) + max(1, ttl)
        path = recording_path(call.recording)
        token = recording_token(secret, path, expires)
        return {"url": f"{base}/{path}?expires={expires}&token={token}",
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()}
