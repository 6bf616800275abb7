"""What the code says the deployment must contain: every service process and the queues it consumes.

The Kubernetes manifests are generated from this (``python -m deploy.generate``) and checked
against it in ``tests/deploy``, so a new service or a new event handler cannot go unscaled:

* a *service* is every package under ``services/`` with a ``service.py``; its class is
  ``services.<name>.service:<Name>Service`` (the same rule ``./crm`` uses), plus the gateway;
* its *queues* are found by introspecting the class's nameko entrypoints: ``rpc-<service>`` for
  RPC, ``evt-<source>-<type>--<service>.<method>`` for a (service-pool) ``event_handler`` (nameko's
  own naming) and ``crm_platform.batching.batch_queue_name`` for a ``batch_event_handler``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "gateway"


def class_name(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("_")) + "Service"


def k8s_name(service: str) -> str:
    """Kubernetes object names are DNS labels: ``erp_bridge`` -> ``erp-bridge``."""
    return service.replace("_", "-")


def service_names() -> list[str]:
    """Every service in the code (not the gateway), sorted."""
    return sorted(p.name for p in (ROOT / "services").iterdir()
                  if (p / "service.py").is_file() and (p / "__init__.py").is_file())


@dataclass
class Process:
    name: str                       # service name as nameko knows it (``erp_bridge``)
    target: str                     # ``module:Class`` for ``nameko run``
    has_database: bool
    event_queues: list[str] = field(default_factory=list)
    rpc_queue: str | None = None
    secrets: list[str] = field(default_factory=list)   # settings declared ``RequiredSecrets``

    @property
    def k8s(self) -> str:
        return k8s_name(self.name)

    @property
    def queues(self) -> list[str]:
        return ([self.rpc_queue] if self.rpc_queue else []) + self.event_queues


def load_class(target: str):
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def entrypoints(cls) -> list[tuple[str, object]]:
    """(method name, entrypoint) of every entrypoint declared on ``cls`` and its bases."""
    found = []
    for attr in sorted(dir(cls)):
        for ep in getattr(getattr(cls, attr, None), "nameko_entrypoints", ()) or ():
            found.append((attr, ep))
    return found


def queues_of(cls) -> tuple[str | None, list[str]]:
    """(the RPC queue, the event queues) the service class consumes from."""
    from nameko.events import SERVICE_POOL, EventHandler
    from nameko.messaging import Consumer
    from nameko.rpc import Rpc

    from crm_platform.batching import BatchEventHandler, batch_queue_name

    service = cls.name
    rpc_queue, events = None, set()
    for method, ep in entrypoints(cls):
        if isinstance(ep, Rpc):
            rpc_queue = f"rpc-{service}"
        elif isinstance(ep, BatchEventHandler):
            events.add(batch_queue_name(ep.source_service, service, method))
        elif isinstance(ep, EventHandler):
            if ep.handler_type != SERVICE_POOL:
                # Broadcast/singleton queues are per process or shared across services: a
                # ScaledObject on them would mean something else. Decide before adding one.
                raise ValueError(f"{service}.{method}: handler_type {ep.handler_type!r} has no "
                                 "scaling rule in deploy/generate.py yet")
            events.add(f"evt-{ep.source_service}-{ep.event_type}--{service}.{method}")
        elif isinstance(ep, Consumer):
            raise ValueError(f"{service}.{method}: a plain queue consumer ({type(ep).__name__}) "
                             "has no scaling rule in deploy/generate.py yet")
    return rpc_queue, sorted(events)


def processes() -> list[Process]:
    """Every service process and the gateway, with what they consume."""
    from crm_platform.migrate import SERVICES_WITH_DB
    from crm_platform.secrets import secret_names_of

    found = []
    for name in service_names():
        target = f"services.{name}.service:{class_name(name)}"
        cls = load_class(target)
        if cls.name != name:
            raise ValueError(f"{target} is named {cls.name!r}, not {name!r}")
        rpc_queue, events = queues_of(cls)
        found.append(Process(name, target, name in SERVICES_WITH_DB, events, rpc_queue,
                             secret_names_of(cls)))
    gateway = "gateway.service:GatewayService"
    found.append(Process(GATEWAY, gateway, False, secrets=secret_names_of(load_class(gateway))))
    return found
