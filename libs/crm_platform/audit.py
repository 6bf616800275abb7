"""Access denials, audited the same way in every service.

Whenever a caller is refused (``Forbidden``: a role or a scope check of the service's access
code; ``Hidden``: the same refusal answered as a 404), the platform records who (user, role,
department), what (``service.rpc`` and the scalar arguments naming the resource), why (the
error's code and text) and when:

* a row in the service's ``access_denials`` table (its own transaction: the refused call's
  transaction rolled back, the record of the refusal must stay),
* a log line (``access denied``, level WARNING) and
* the metric ``crm_access_denials_total{service, operation, code}``.

Services get it without code of their own: ``AccessAudit`` is a dependency of
``PersistentService`` that looks at the outcome of every entrypoint. Processes without a
database (the gateway) call ``note_denial`` for their own checks: log line and metric.
Admins read the records through ``access_denials`` (a platform RPC of every service).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from prometheus_client import Counter

from .errors import Forbidden, Hidden
from .identity import IDENTITY_CONTEXT_KEY
from .observability import REGISTRY
from .tables import access_denials

log = logging.getLogger("crm_platform.audit")

DENIALS = Counter(
    "crm_access_denials_total", "Callers refused access (Forbidden), by operation and reason",
    ["service", "operation", "code"], registry=REGISTRY,
)

RESOURCE_MAX = 500
_SCALAR_MAX = 80


def _resource(args, kwargs) -> str:
    """The scalar arguments of the refused call (ids, names of things): enough to tell which
    resource was asked for, and never a whole payload (it may hold personal data)."""
    parts = [str(a) for a in args if isinstance(a, str | int) and not isinstance(a, bool)
             and len(str(a)) <= _SCALAR_MAX]
    parts += [f"{k}={v}" for k, v in sorted((kwargs or {}).items())
              if isinstance(v, str | int) and not isinstance(v, bool)
              and len(str(v)) <= _SCALAR_MAX]
    return ", ".join(parts)[:RESOURCE_MAX]


def note_denial(service: str, who: dict | None, operation: str, resource: str,
                error: Forbidden | Hidden, session_factory=None) -> None:
    """Record one refusal: metric, log line and, with a ``session_factory``, a table row.
    Never raises: a failing audit must not turn a 403 into a 500."""
    who = who or {}
    code = str(getattr(error, "code", "") or "forbidden")[:100]
    reason = str(getattr(error, "detail", "") or error)[:1000]
    DENIALS.labels(service, operation, code).inc()
    log.warning("access denied", extra={
        "denied_user": who.get("user_id"), "denied_role": who.get("role"),
        "operation": f"{service}.{operation}", "resource": resource, "code": code})
    if session_factory is None:
        return
    try:
        with session_factory.session() as session:
            session.execute(sa.insert(access_denials).values(
                user_id=str(who.get("user_id") or "")[:64] or None,
                username=str(who.get("username") or "")[:100],
                role=str(who.get("role") or "")[:20],
                department_id=str(who.get("department_id") or "")[:64] or None,
                service=service[:50], operation=operation[:200], resource=resource,
                code=code, reason=reason))
    except Exception:  # noqa: BLE001 - the audit must never change the caller's answer
        log.exception("could not store an access denial of %s.%s", service, operation)


class AccessAudit(DependencyProvider):
    """Notes every ``Forbidden`` an entrypoint of the service raises for a caller."""

    def _factory(self):
        from .db import Database

        for dependency in self.container.dependencies:
            if isinstance(dependency, Database):
                return dependency.factory
        return None

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        if not exc_info or not isinstance(exc_info[1], Forbidden | Hidden):
            return
        note_denial(worker_ctx.service_name, worker_ctx.data.get(IDENTITY_CONTEXT_KEY),
                    worker_ctx.entrypoint.method_name,
                    _resource(worker_ctx.args, worker_ctx.kwargs), exc_info[1],
                    self._factory())


def list_denials(session, after: int = 0, limit: int = 100) -> list[dict]:
    """Denials with id > ``after``, oldest first (at most 1000)."""
    rows = session.execute(sa.select(access_denials).where(access_denials.c.id > int(after))
                           .order_by(access_denials.c.id).limit(max(1, min(int(limit), 1000))))
    return [{**row, "at": row["at"].isoformat()} for row in rows.mappings()]
