"""Base classes every service inherits: health, readiness, metrics, and for services with a
database the session dependency, the outbox, the caller identity and the dead-letter RPCs.

    class ClientsService(PersistentService):
        name = "clients"

Each service serves ``/healthz`` (the process answers), ``/readyz`` (its database and RabbitMQ are
reachable) and ``/metrics`` (Prometheus) on its own ``WEB_SERVER_ADDRESS``.
"""

from __future__ import annotations

import json
import time

from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from .audit import AccessAudit, list_denials
from .db import Database
from .deadletters import list_dead_letters, redrive_dead_letters
from .idempotency import Idempotency
from .identity import Caller
from .observability import REGISTRY, Observability
from .outbox import Outbox, export_events
from .rpc import rpc
from .web import http


class BrokerProbe(DependencyProvider):
    """Checks that RabbitMQ accepts a connection; answers are cached for a second so a busy
    probe endpoint does not open a connection per request."""

    def setup(self):
        self.amqp_uri = self.container.config[AMQP_URI_CONFIG_KEY]
        self._checked_at = 0.0
        self._last: str | None = None

    def check(self) -> str | None:
        now = time.monotonic()
        if now - self._checked_at < 1.0:
            return self._last
        try:
            with Connection(self.amqp_uri, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            self._last = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            self._last = f"{type(exc).__name__}: {exc}"
        self._checked_at = now
        return self._last

    def get_dependency(self, worker_ctx):
        return self


def json_response(data, status=200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status,
                    mimetype="application/json")


class ObservableService:
    """Health, readiness and metrics endpoints, and per-entrypoint metrics and log context."""

    observability = Observability()
    broker = BrokerProbe()

    def readiness_problems(self) -> dict:
        problems = {}
        broker_error = self.broker.check()
        if broker_error:
            problems["rabbitmq"] = broker_error
        return problems

    @http("GET", "/healthz")
    def healthz(self, request):
        return json_response({"status": "ok", "service": self.name})

    @http("GET", "/readyz")
    def readyz(self, request):
        problems = self.readiness_problems()
        if problems:
            return json_response({"status": "unavailable", "service": self.name,
                                  "problems": problems}, status=503)
        return json_response({"status": "ready", "service": self.name})

    @http("GET", "/metrics")
    def metrics(self, request):
        return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


class PersistentService(ObservableService):
    """A service with its own database: sessions, outbox relay, caller identity, dead letters."""

    db = Database()
    outbox = Outbox()
    caller = Caller()
    idempotency = Idempotency()  # Idempotency-Key of creating RPCs (``@idempotent``)
    access_audit = AccessAudit()  # every Forbidden recorded in ``access_denials`` (audit.py)

    def readiness_problems(self) -> dict:
        problems = super().readiness_problems()
        try:
            self.db.ping()
        except Exception as exc:  # noqa: BLE001
            problems["postgresql"] = f"{type(exc).__name__}: {exc}"
        return problems

    @rpc
    def list_dead_letters(self, limit: int = 100) -> list[dict]:
        """Dead-lettered events of this service (admin only): handler, reason, error, attempts."""
        self.caller.require("admin")
        return [letter.summary() for letter in list_dead_letters(
            self.config_amqp_uri(), self.name, limit=limit)]

    @rpc
    def redrive_dead_letters(self, handler: str | None = None) -> int:
        """Send this service's dead letters (of one handler, or all) back for another try
        (admin only); returns how many were moved."""
        self.caller.require("admin")
        return redrive_dead_letters(self.config_amqp_uri(), self.name, handler=handler)

    @rpc
    def access_denials(self, after: int = 0, limit: int = 100) -> list[dict]:
        """Callers this service refused (admin only): who, role, operation, resource, reason,
        when; id > ``after``, oldest first."""
        self.caller.require("admin")
        with self.db.session() as session:
            return list_denials(session, after, limit)

    @rpc
    def export_events(self, after: int = 0, limit: int = 1000,
                      event_types: list[str] | None = None) -> dict:
        """This service's event history for replay (admin or integration accounts, e.g. a read
        model rebuilding itself): published outbox envelopes with id > ``after`` in the order
        they were sent, at most ``limit`` (≤ 5000), optionally only ``event_types``. Returns
        ``{"events": [...], "next_after": <id>, "done": bool}``. History reaches back as far as
        ``OUTBOX_RETENTION_DAYS`` keeps it (0: all of it)."""
        self.caller.require("admin", "integration")
        with self.db.session() as session:
            return export_events(session, after, limit, event_types)

    def config_amqp_uri(self) -> str:
        return self.broker.amqp_uri
