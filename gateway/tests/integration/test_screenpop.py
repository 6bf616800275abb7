"""Screen pop over HTTP: a ``telephony.call_ringing`` event on the real broker reaches the ringing
manager's open Server-Sent Events stream at the gateway (and nobody else's), with the unknown
number's "create lead" hint or the client card summary read as the manager."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import eventlet
import pytest
import requests
from eventlet.queue import Empty, LightQueue

from crm_platform.testing import publish_events, wait_for
from services.clients.service import ClientsService

from .test_api import problem

pytestmark = pytest.mark.integration

PATH = "/api/v1/screen-pop"


class SseReader:
    """An open event stream read in a green thread: ``next_block()`` -> (fields, received_at)."""

    def __init__(self, url: str, headers: dict | None = None):
        self.response = requests.get(url, headers=headers or {}, stream=True, timeout=30)
        self.blocks: LightQueue = LightQueue()
        self._thread = eventlet.spawn(self._read) if self.response.status_code == 200 else None

    def _read(self):
        buffer = ""
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                received = time.monotonic()
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self.blocks.put((block, received))
        except Exception:  # noqa: BLE001 - closed by the test
            pass

    def next_block(self, timeout: float = 5.0) -> tuple[dict, float]:
        block, received = self.blocks.get(timeout=timeout)
        fields: dict = {"comments": []}
        for line in block.split("\n"):
            if line.startswith(":"):
                fields["comments"].append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        return fields, received

    def next_event(self, timeout: float = 5.0) -> tuple[dict, float]:
        """The next block with an ``event:`` (skips comments)."""
        deadline = time.monotonic() + timeout
        while True:
            fields, received = self.next_block(max(0.01, deadline - time.monotonic()))
            if "event" in fields:
                return fields, received

    def close(self):
        if self._thread is not None:
            self._thread.kill()  # first: closing under a reading thread is a reentrant call
        self.response.close()


def ring(user_id, *, client_id=None, number="+73431234567", call_key=None) -> dict:
    return {"call_key": call_key or f"call-{uuid.uuid4().hex[:10]}", "pbx": "asterisk",
            "extension": "101", "user_id": user_id, "external_number": number,
            "client_id": client_id, "direction": "inbound", "at": datetime.now(UTC)}


def publish_ring(rabbit_config, payload) -> float:
    started = time.monotonic()
    publish_events(rabbit_config["AMQP_URI"], [("telephony", "call_ringing", payload)])
    return started


@pytest.fixture
def open_stream(api):
    readers = []

    def open_(token=None, *, query_token=None):
        url = api.base_url + PATH + (f"?access_token={query_token}" if query_token else "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reader = SseReader(url, headers)
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        reader.close()


def test_an_unknown_number_ringing_pops_up_create_lead(api, manager, manager_token,
                                                       open_stream, rabbit_config):
    stream = open_stream(manager_token)
    assert stream.response.status_code == 200
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    hello, _ = stream.next_block()  # the stream is open and subscribed
    assert "connected" in hello["comments"] and hello["retry"] == "3000"

    # A ring of somebody else's call first: never shown on this stream.
    publish_ring(rabbit_config, ring(str(uuid.uuid4()), call_key="not-mine"))
    payload = ring(manager["id"], number="+73431234567")
    published = publish_ring(rabbit_config, payload)
    fields, received = stream.next_event()
    delay = received - published
    assert fields["event"] == "ringing"
    data = json.loads(fields["data"])
    assert data["call_key"] == payload["call_key"]
    assert data == {
        "call_key": payload["call_key"], "pbx": "asterisk", "direction": "inbound",
        "external_number": "+73431234567", "at": payload["at"].isoformat(),
        "unknown": True, "hint": "Неизвестный номер — создать лид",
        "create_lead": {"method": "POST", "path": "/api/v1/deals",
                        "body": {"source": "call", "lead": {"phone": "+73431234567"}}},
    }
    assert fields["id"]  # the event id
    assert delay < 0.3, f"screen pop took {delay * 1000:.0f} ms"
    with pytest.raises(Empty):
        stream.next_event(timeout=0.5)


def test_bad_or_missing_token_is_a_401_problem(api):
    for kwargs in ({"headers": {"Authorization": "Bearer not-a-token"}},
                   {"params": {"access_token": "not-a-token"}}, {}):
        response = requests.get(api.base_url + PATH, timeout=10, **kwargs)
        assert response.status_code == 401, response.text
        body = problem(response, 401)
        assert body["code"] in ("invalid_token", "missing_token")


def test_access_token_in_the_query_and_streams_hold_no_worker(api, manager, manager_token,
                                                             open_stream, rabbit_config):
    # More open streams than the gateway's max_workers (20): each used a worker only to start.
    streams = [open_stream(query_token=manager_token) for _ in range(22)]
    for stream in streams:
        assert stream.response.status_code == 200
        stream.next_block()
    started = time.monotonic()
    assert api.get("/api/v1/me", manager_token).status_code == 200
    assert time.monotonic() - started < 2.0

    payload = ring(manager["id"], number=None)
    published = publish_ring(rabbit_config, payload)
    delays = []
    for stream in streams:  # every stream of the manager gets it
        fields, received = stream.next_event()
        data = json.loads(fields["data"])
        assert data["call_key"] == payload["call_key"] and data["unknown"] is True
        assert "create_lead" not in data  # no number to create a lead with
        delays.append(received - published)
    assert max(delays) < 0.3, delays


@pytest.fixture
def clients_service(api, container_factory, service_config, service_db):
    """The clients service, started before the manager is created so it replicates them."""
    container = container_factory(ClientsService, service_config(db_url=service_db("clients")))
    container.start()
    return container


def test_a_known_client_pops_up_its_card(clients_service, api, manager, manager_token,
                                         open_stream, rabbit_config):
    def create_client():
        response = api.post("/api/v1/clients", manager_token, json={
            "short_name": "ООО «Стройметалл»", "inn": "7707083893", "region": "RU-MOW",
            "phones": ["8 (343) 123-45-67"]})
        return response.json()["client"] if response.status_code == 201 else None

    client = wait_for(create_client, message="the clients service knows the manager")
    stream = open_stream(query_token=manager_token)
    stream.next_block()

    payload = ring(manager["id"], client_id=client["id"])
    published = publish_ring(rabbit_config, payload)
    fields, received = stream.next_event()
    data = json.loads(fields["data"])
    assert data["call_key"] == payload["call_key"] and data["unknown"] is False
    assert data["client"] == {
        "id": client["id"], "short_name": "ООО «Стройметалл»", "inn": "7707083893",
        "owner_name": "Иванов Иван", "link": f"/api/v1/clients/{client['id']}"}
    assert received - published < 0.3, f"{(received - published) * 1000:.0f} ms"

    # A client the manager may not see (or that does not exist) is an unknown number.
    missing = ring(manager["id"], client_id=str(uuid.uuid4()))
    publish_ring(rabbit_config, missing)
    fields, _ = stream.next_event()
    data = json.loads(fields["data"])
    assert data["call_key"] == missing["call_key"] and data["unknown"] is True
