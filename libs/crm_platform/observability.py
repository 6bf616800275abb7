"""Metrics, structured logs and the call-id chain.

Metrics are process-global (one service per process in production); every series carries a
``service`` label, so several containers in one test process share them without "Duplicated
timeseries". ``Observability`` is the dependency that times every entrypoint and tags log lines with
the worker's call id chain.
"""

from __future__ import annotations

import logging
import threading
import time

from nameko.extensions import DependencyProvider
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

REGISTRY = CollectorRegistry(auto_describe=True)

ENTRYPOINT_CALLS = Counter(
    "crm_entrypoint_calls_total",
    "Entrypoint calls (rpc, http, event, timer) by outcome",
    ["service", "kind", "entrypoint", "outcome"],
    registry=REGISTRY,
)
ENTRYPOINT_ERRORS = Counter(
    "crm_entrypoint_errors_total",
    "Entrypoint calls that raised, by exception type",
    ["service", "kind", "entrypoint", "error"],
    registry=REGISTRY,
)
ENTRYPOINT_LATENCY = Histogram(
    "crm_entrypoint_duration_seconds",
    "Entrypoint latency",
    ["service", "kind", "entrypoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENTS_CONSUMED = Counter(
    "crm_events_consumed_total",
    "Events reaching a handler, by outcome (ok, duplicate, error, retried, dead_lettered, "
    "contract_violation)",
    ["service", "handler", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "crm_dead_letters_total",
    "Events moved to the dead-letter queue",
    ["service", "handler", "reason"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "crm_outbox_published_total", "Events relayed from the outbox to RabbitMQ", ["service"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "crm_outbox_pending", "Events in the outbox not yet confirmed by RabbitMQ", ["service"],
    registry=REGISTRY,
)
OUTBOX_LAG = Gauge(
    "crm_outbox_lag_seconds", "Age of the oldest unsent outbox event (0 when none)", ["service"],
    registry=REGISTRY,
)
OUTBOX_ERRORS = Counter(
    "crm_outbox_relay_errors_total", "Relay passes that failed (broker or database)", ["service"],
    registry=REGISTRY,
)
EVENTS_UNROUTABLE = Counter(
    "crm_events_unroutable_total",
    "Events the broker returned because no queue was bound (nobody listens yet)",
    ["service", "type"],
    registry=REGISTRY,
)

# The worker currently running in this green thread (eventlet patches threading.local).
_current = threading.local()


def current_call_id_stack() -> list[str]:
    return getattr(_current, "call_id_stack", None) or []


class ContextFilter(logging.Filter):
    """Adds the service name and call id chain of the running worker to every record."""

    def __init__(self, service: str = ""):
        super().__init__()
        self.service = service

    def filter(self, record):
        stack = current_call_id_stack()
        record.service = getattr(_current, "service", None) or self.service
        record.call_id = stack[-1] if stack else None
        record.call_id_stack = stack
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(call_id)s %(call_id_stack)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure_json_logging(service: str = "", level: str = "INFO") -> None:
    """Structured JSON logs on stderr (used by services via ``config.yaml`` and by tools)."""
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def entrypoint_kind(entrypoint) -> str:
    name = type(entrypoint).__name__.lower()
    for kind in ("rpc", "http", "event", "timer"):
        if kind in name:
            return kind
    return name


class Observability(DependencyProvider):
    """Times every entrypoint of the service and exposes the call id chain to the log filter."""

    def __init__(self):
        self._started: dict[int, float] = {}

    def worker_setup(self, worker_ctx):
        self._started[id(worker_ctx)] = time.perf_counter()
        _current.call_id_stack = worker_ctx.call_id_stack
        _current.service = worker_ctx.service_name

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(id(worker_ctx), None)
        ep = worker_ctx.entrypoint
        labels = (worker_ctx.service_name, entrypoint_kind(ep), ep.method_name)
        if started is not None:
            ENTRYPOINT_LATENCY.labels(*labels).observe(time.perf_counter() - started)
        if exc_info is None:
            outcome = "ok"
        else:
            outcome = "error"
            ENTRYPOINT_ERRORS.labels(*labels, exc_info[0].__name__).inc()
        ENTRYPOINT_CALLS.labels(*labels, outcome).inc()

    def worker_teardown(self, worker_ctx):
        self._started.pop(id(worker_ctx), None)
        _current.call_id_stack = None
        _current.service = None
