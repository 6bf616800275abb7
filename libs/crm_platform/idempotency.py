"""``Idempotency-Key`` for creating requests, kept in the service's own database.

The gateway owns no database: for a request with an ``Idempotency-Key`` it puts the key and a
fingerprint of the request (sha256 of method, path and body) into the RPC context
(``IDEMPOTENCY_CONTEXT_KEY``). A service marks its creating RPCs::

    class DealsService(PersistentService):      # PersistentService brings ``self.idempotency``
        @rpc
        @idempotent
        def create_deal(self, data, ...):
            ...

Without a key in the context the method simply runs. With one, the first call claims
``(caller, key)`` in the ``idempotency_keys`` table, runs the method and stores its result; a
repeat with the same fingerprint gets the stored result (and the reply says it was replayed, so
the gateway answers ``Idempotent-Replayed: true``); the same key with another request is 422
``idempotency_key_reused``; a repeat while the first still runs is 409 ``idempotency_in_progress``
(retry after a second). An error drops the claim, so the caller may try again.

The claim, the method's own transaction(s) and the stored result are separate transactions: the
methods own their sessions. The window: when the process dies after the method committed but
before the result was stored, the claim stays ``running``; a retry gets 409 until the claim is
``STALE_AFTER`` old, then runs the method again (the services' own duplicate checks — same INN,
phone, open deal — make most repeats return the existing record). Keys are kept for a day
(``purge_idempotency_keys``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from datetime import timedelta

import sqlalchemy as sa
from kombu.utils import json as kombu_json
from nameko.exceptions import IncorrectSignature
from nameko.extensions import DependencyProvider
from sqlalchemy.dialects.postgresql import insert

from .errors import Conflict, ValidationFailed
from .identity import IDENTITY_CONTEXT_KEY
from .tables import idempotency_keys

log = logging.getLogger(__name__)

IDEMPOTENCY_CONTEXT_KEY = "crm_idempotency"
# Set on the service's worker context when the reply is a stored one; the platform's RPC
# entrypoint then adds REPLAYED_REPLY_KEY to the reply body (plain nameko clients ignore it).
REPLAYED_ATTR = "crm_idempotent_replayed"
REPLAYED_REPLY_KEY = "idempotent_replayed"
HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 200
STALE_AFTER = timedelta(minutes=5)
RETENTION = timedelta(hours=24)
RETRY_AFTER_SECONDS = 1


def valid_key(key: str) -> bool:
    """1..200 visible ASCII characters (RFC 9110 token-ish; no spaces or controls)."""
    return 0 < len(key) <= KEY_MAX_LENGTH and all(0x21 <= ord(ch) <= 0x7E for ch in key)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path (with query) and the raw body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body or b""):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _wire(result):
    """The result as the RPC reply carries it (JSON via kombu), so a replay is the same value."""
    return json.loads(kombu_json.dumps(result))


def _unwire(stored):
    return kombu_json.loads(json.dumps(stored))


def claim(session, caller: str, key: str, print_: str, operation: str) -> dict | None:
    """Claim ``(caller, key)``. Returns None when this call should run the operation, or
    ``{"response": ...}`` to replay; raises for a reused key or one still in progress."""
    inserted = session.execute(
        insert(idempotency_keys)
        .values(caller=caller, key=key, fingerprint=print_, operation=operation,
                status="running")
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    ).first()
    if inserted is not None:
        return None
    row = session.execute(
        sa.select(idempotency_keys, sa.func.now().label("now"))
        .where(idempotency_keys.c.caller == caller, idempotency_keys.c.key == key)
        .with_for_update()
    ).mappings().first()
    if row is None:  # purged between the two statements: claim again
        return claim(session, caller, key, print_, operation)
    if row["fingerprint"] != print_ or row["operation"] != operation:
        raise ValidationFailed(
            "Ключ идемпотентности уже использован для другого запроса",
            fields={HEADER: ["ключ уже использован с другим телом или адресом запроса"]},
            code="idempotency_key_reused")
    if row["status"] == "done":
        return {"response": _unwire(row["response"])}
    if row["now"] - row["created_at"] < STALE_AFTER:
        raise Conflict("Запрос с этим ключом идемпотентности ещё выполняется, повторите позже",
                       code="idempotency_in_progress",
                       extra={"retry_after": RETRY_AFTER_SECONDS, "retryable": True})
    # The first attempt died after claiming (see the module's note): this one takes over.
    session.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.caller == caller, idempotency_keys.c.key == key)
        .values(created_at=sa.func.now()))
    return None


def complete(session, caller: str, key: str, result) -> None:
    session.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.caller == caller, idempotency_keys.c.key == key)
        .values(status="done", response=_wire(result), completed_at=sa.func.now()))


def release(session, caller: str, key: str) -> None:
    session.execute(
        sa.delete(idempotency_keys)
        .where(idempotency_keys.c.caller == caller, idempotency_keys.c.key == key,
               idempotency_keys.c.status == "running"))


def purge_idempotency_keys(session, older_than: timedelta = RETENTION) -> int:
    result = session.execute(
        sa.delete(idempotency_keys).where(
            idempotency_keys.c.created_at
            < sa.func.now() - sa.text(f"interval '{int(older_than.total_seconds())} seconds'")))
    return result.rowcount or 0


class IdempotencyAccessor:
    def __init__(self, worker_ctx):
        self.worker_ctx = worker_ctx

    def run(self, sessions, operation: str, call):
        """Run ``call()`` once per idempotency key of the request (see the module's doc)."""
        request = self.worker_ctx.data.get(IDEMPOTENCY_CONTEXT_KEY)
        identity = self.worker_ctx.data.get(IDENTITY_CONTEXT_KEY) or {}
        if not request or not identity.get("user_id"):
            return call()
        # Consumed here: RPCs this method makes to other services must not claim it again.
        self.worker_ctx.data.pop(IDEMPOTENCY_CONTEXT_KEY, None)
        caller, key = str(identity["user_id"]), str(request["key"])
        with sessions.session() as session:
            found = claim(session, caller, key, str(request["fingerprint"]), operation)
        if found is not None:
            setattr(self.worker_ctx, REPLAYED_ATTR, True)
            return found["response"]
        try:
            result = call()
        except BaseException:
            try:
                with sessions.session() as session:
                    release(session, caller, key)
            except Exception:  # noqa: BLE001 - the method's error is the one to report
                log.warning("could not release idempotency key %s of %s; it frees itself after "
                            "%s", key, caller, STALE_AFTER, exc_info=True)
            raise
        with sessions.session() as session:
            complete(session, caller, key, result)
        return result


class Idempotency(DependencyProvider):
    """``self.idempotency`` of a service; used through ``@idempotent``."""

    def get_dependency(self, worker_ctx):
        return IdempotencyAccessor(worker_ctx)


def idempotent(method):
    """Mark a creating RPC method (put it under ``@rpc``). The service needs ``db`` and
    ``idempotency`` dependencies (``PersistentService`` has both)."""

    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:  # nameko checks the wrapper's (any) signature: check the method's, as it would
            signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None
        return self.idempotency.run(self.db, f"{type(self).name}.{method.__name__}",
                                    lambda: method(self, *args, **kwargs))

    wrapper.crm_idempotent = True
    return wrapper
