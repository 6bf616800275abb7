"""``GET /api/v1/calls/<id>/recording`` through the gateway: a token is needed, the telephony
service's link is a 302 (or JSON with ``?format=json``), its 404 stays a 404. The telephony
service here is a stand-in that answers ``recording_link``; the real one, with its access rules,
is covered by the telephony suite."""

from __future__ import annotations

import uuid

import pytest

from crm_platform.errors import NotFound, register_remote_errors
from crm_platform.identity import Caller
from crm_platform.rpc import rpc

from .test_api import problem

pytestmark = pytest.mark.integration

KNOWN = str(uuid.uuid4())
URL = "https://pbx.example.ru/records/a.wav?expires=1&token=abc"


class FakeTelephony:
    name = "telephony"
    caller = Caller()

    @rpc
    def recording_link(self, call_id):
        identity = self.caller.require()
        if call_id != KNOWN or identity.username != "ivanov":
            raise NotFound("Запись разговора не найдена", code="recording_not_found")
        return {"url": URL, "expires_at": "2026-01-01T00:00:00+00:00"}


@pytest.fixture
def telephony(container_factory, service_config):
    register_remote_errors()
    container_factory(FakeTelephony, service_config()).start()


def test_recording_redirects_with_a_token_only(api, telephony, manager_token, admin_token):
    path = f"/api/v1/calls/{KNOWN}/recording"
    problem(api.get(path), 401)
    found = api.get(path, manager_token, allow_redirects=False)
    assert found.status_code == 302 and found.headers["Location"] == URL
    assert found.headers["Cache-Control"] == "no-store"
    as_json = api.get(path + "?format=json", manager_token)
    assert as_json.status_code == 200 and as_json.json()["url"] == URL
    problem(api.get(path, admin_token, allow_redirects=False), 404, "recording_not_found")
    problem(api.get(f"/api/v1/calls/{uuid.uuid4()}/recording", manager_token), 404)
    assert api.get("/api/v1/calls/not-a-uuid/recording", manager_token).status_code == 404
