"""The platform frame every service stands on: each starts on its migrated database (with its
defaults: no PBX, no 1C, no mailbox configured), answers health and readiness, and keeps its dead
letters for admins only. Every package under ``services/`` is checked, so a new one is too."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import requests
from nameko.testing.services import entrypoint_hook

from crm_platform.errors import Forbidden, Unauthenticated
from crm_platform.identity import IDENTITY_CONTEXT_KEY

pytestmark = pytest.mark.integration

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
FRAMES = [(d.name, "".join(part.title() for part in d.name.split("_")) + "Service")
          for d in sorted(SERVICES_DIR.iterdir()) if (d / "service.py").exists()]


@pytest.mark.parametrize(("name", "cls"), FRAMES)
def test_every_service_starts_answers_health_and_guards_its_dead_letters(
        name, cls, container_factory, service_config, service_db):
    service = getattr(importlib.import_module(f"services.{name}.service"), cls)
    config = service_config(db_url=service_db(name))
    container = container_factory(service, config)
    container.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok",
                                                                 "service": name}
    assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
    with pytest.raises(Unauthenticated):
        with entrypoint_hook(container, "list_dead_letters") as hook:
            hook()
    manager = {"user_id": "00000000-0000-4000-8000-000000000001", "role": "manager"}
    with pytest.raises(Forbidden):
        with entrypoint_hook(container, "list_dead_letters",
                             context_data={IDENTITY_CONTEXT_KEY: manager}) as hook:
            hook()
    admin = {"user_id": "00000000-0000-4000-8000-000000000002", "role": "admin"}
    with entrypoint_hook(container, "list_dead_letters",
                         context_data={IDENTITY_CONTEXT_KEY: admin}) as hook:
        assert hook() == []
