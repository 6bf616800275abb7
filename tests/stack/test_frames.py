"""The services whose own issues have not filled them yet (mail, payroll, reports, logistics) are
the platform frame: each starts on its migrated database, answers health and readiness, and keeps
its dead letters for admins only. Their issues add their behaviour and its tests."""

from __future__ import annotations

import importlib

import pytest
import requests
from nameko.testing.services import entrypoint_hook

from crm_platform.errors import Forbidden, Unauthenticated
from crm_platform.identity import IDENTITY_CONTEXT_KEY

pytestmark = pytest.mark.integration

FRAMES = [("mail", "MailService"), ("payroll", "PayrollService"),
          ("reports", "ReportsService"), ("logistics", "LogisticsService")]


@pytest.mark.parametrize(("name", "cls"), FRAMES)
def test_a_frame_service_starts_answers_health_and_guards_its_dead_letters(
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
