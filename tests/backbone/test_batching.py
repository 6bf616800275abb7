"""The batched event handler against the real RabbitMQ and PostgreSQL: many events per worker and
per transaction, each applied exactly once, a poison event retried and dead-lettered alone, a
broken one dead-lettered at once, nothing lost when a replica stops mid-stream."""

from __future__ import annotations

import json
import socket
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Queue
from sqlalchemy.dialects.postgresql import UUID

from crm_platform.batching import EVENT_BATCHES_SPLIT, BatchEventHandler, batch_event_handler
from crm_platform.contracts import make_envelope, parse_envelope
from crm_platform.db import SessionFactory, make_engine
from crm_platform.deadletters import list_dead_letters
from crm_platform.inbox import claim_events
from crm_platform.observability import EVENTS_CONSUMED
from crm_platform.outbox import ConfirmingPublisher, OutgoingMessage
from crm_platform.service import PersistentService
from crm_platform.testing import SqlReader, empty_database, wait_for

pytestmark = pytest.mark.integration

SERVICE = "batchsink"
HANDLER = f"{SERVICE}.handle_clients"
QUEUE = f"evt-clients-batch--{HANDLER}"

batch_metadata = sa.MetaData()
applied = sa.Table(
    "applied", batch_metadata,
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("short_name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
)

# What the handler saw and what it refuses (in-process containers only; reset by a fixture).
BATCH_SIZES: list[int] = []
POISON: set[str] = set()
SLOW = {"seconds": 0.0}


class BatchSinkService(PersistentService):
    name = SERVICE

    @batch_event_handler("clients", ["client_created", "client_updated"])
    def handle_clients(self, events):
        BATCH_SIZES.append(len(events))
        with self.db.session() as session:
            fresh = claim_events(session, events)
            if fresh:
                session.execute(sa.insert(applied), [
                    {"event_id": e.event_id, "client_id": e.payload["client_id"],
                     "short_name": e.payload["short_name"], "type": e.type} for e in fresh])
            refused = [e.payload["short_name"] for e in events
                       if e.payload["short_name"] in POISON]
            if refused:
                raise ValueError(f"refuses {refused[0]}")
        if SLOW["seconds"]:
            eventlet.sleep(SLOW["seconds"])


@pytest.fixture(autouse=True)
def _fresh_handler_state():
    BATCH_SIZES.clear()
    POISON.clear()
    SLOW["seconds"] = 0.0
    yield
    POISON.clear()
    SLOW["seconds"] = 0.0


@pytest.fixture
def batch_db(test_databases):
    url = test_databases.blank(SERVICE, batch_metadata)
    empty_database(url)
    return url


@pytest.fixture
def batch_sql(batch_db):
    db = SqlReader(batch_db)
    yield db
    db.dispose()


@pytest.fixture
def start_batch_sink(container_factory, service_config, batch_db):
    def start(**overrides):
        config = service_config(db_url=batch_db, EVENT_RETRY_DELAYS_MS="50,100",
                                EVENT_BATCH_SIZE=100, EVENT_BATCH_MAX_WAIT_MS=20, **overrides)
        container = container_factory(BatchSinkService, config)
        container.start()
        return container
    return start


def client_event(name: str, event_type: str = "client_created", *, event_id=None) -> dict:
    payload = {"client_id": str(uuid.uuid4()), "short_name": name, "status": "active"}
    if event_type == "client_updated":
        payload["changed_fields"] = ["status"]
    return make_envelope("clients", event_type, payload, event_id=event_id)


def publish(amqp_uri: str, envelopes: list[dict]) -> None:
    """Publish to clients.events with batched publisher confirms (500 in flight per wait)."""
    publisher = ConfirmingPublisher(amqp_uri, "clients")
    try:
        for start in range(0, len(envelopes), 500):
            publisher.publish_batch([
                OutgoingMessage(exchange="clients.events", routing_key=env["type"],
                                body=json.dumps(env).encode(), message_id=env["event_id"],
                                headers={})
                for env in envelopes[start:start + 500]])
    finally:
        publisher.close()


def consumed(outcome: str) -> float:
    return EVENTS_CONSUMED.labels(SERVICE, HANDLER, outcome)._value.get()


def applied_count(sql) -> int:
    return sql.scalar("SELECT count(*) FROM applied")


def test_a_stream_is_applied_once_in_batches(start_batch_sink, rabbit_config, batch_sql):
    start_batch_sink()
    ok_before = consumed("ok")
    envelopes = [client_event(f"c{n}", "client_updated" if n % 10 == 0 else "client_created")
                 for n in range(2000)]

    publish(rabbit_config["AMQP_URI"], envelopes)

    wait_for(lambda: applied_count(batch_sql) == 2000, timeout=30, message="all 2,000 applied")
    eventlet.sleep(0.3)  # nothing arrives twice later
    assert applied_count(batch_sql) == 2000
    assert batch_sql.scalar("SELECT count(*) FROM processed_events") == 2000
    assert batch_sql.scalar("SELECT count(*) FROM applied WHERE type = 'client_updated'") == 200
    assert sum(BATCH_SIZES) == 2000
    assert max(BATCH_SIZES) > 1, BATCH_SIZES
    assert max(BATCH_SIZES) <= 100  # EVENT_BATCH_SIZE
    assert len(BATCH_SIZES) < 200, f"events should come in batches: {len(BATCH_SIZES)} batches"
    wait_for(lambda: consumed("ok") == ok_before + 2000, message="every event counted ok")
    assert queue_state(rabbit_config["AMQP_URI"]) == (0, 1)  # the handler's own queue, empty


def test_the_same_event_delivered_twice_is_applied_once(start_batch_sink, rabbit_config,
                                                        batch_sql):
    start_batch_sink()
    duplicates_before = consumed("duplicate")
    first = client_event("twice")
    others = [client_event(f"d{n}") for n in range(50)]

    # The copy right behind the original lands in the same batch; the later one in another.
    publish(rabbit_config["AMQP_URI"], [first, first, *others])
    wait_for(lambda: applied_count(batch_sql) == 51)
    publish(rabbit_config["AMQP_URI"], [first])
    wait_for(lambda: consumed("duplicate") == duplicates_before + 2,
             message="both copies to be recognised")

    assert applied_count(batch_sql) == 51
    assert batch_sql.scalar("SELECT count(*) FROM applied WHERE short_name = 'twice'") == 1
    assert batch_sql.scalar("SELECT count(*) FROM processed_events") == 51


def test_a_poison_event_is_retried_then_dead_lettered_alone(start_batch_sink, rabbit_config,
                                                            batch_sql):
    POISON.add("poison")
    start_batch_sink()
    retried_before = consumed("retried")
    split_before = EVENT_BATCHES_SPLIT.labels(SERVICE, HANDLER)._value.get()
    envelopes = [client_event(f"p{n}") for n in range(300)]
    envelopes[150] = poison = client_event("poison")

    publish(rabbit_config["AMQP_URI"], envelopes)

    amqp = rabbit_config["AMQP_URI"]
    letters = wait_for(lambda: list_dead_letters(amqp, SERVICE), timeout=30,
                       message="the poison event to be dead-lettered")
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.handler, letter.reason, letter.error_type) == (HANDLER, "handler_error",
                                                                  "ValueError")
    assert letter.original_queue == QUEUE
    assert letter.attempts == 3  # the first single run and two retries (50 ms, 100 ms)
    assert "refuses poison" in letter.error
    assert letter.event["event_id"] == poison["event_id"]
    assert consumed("retried") == retried_before + 2
    # Its batch failed once, then ran one by one: everything else is applied, the poison not.
    wait_for(lambda: applied_count(batch_sql) == 299)
    assert batch_sql.scalar("SELECT count(*) FROM applied WHERE short_name = 'poison'") == 0
    assert EVENT_BATCHES_SPLIT.labels(SERVICE, HANDLER)._value.get() >= split_before + 1
    assert 1 in BATCH_SIZES and max(BATCH_SIZES) > 1


def test_an_event_breaking_its_contract_is_dead_lettered_at_once(start_batch_sink, rabbit_config,
                                                                 batch_sql):
    start_batch_sink()
    violations_before = consumed("contract_violation")
    broken = {"event_id": str(uuid.uuid4()), "type": "client_created", "version": 1,
              "source": "clients", "occurred_at": "2026-11-27T10:00:00+00:00",
              "payload": {"client_id": "not-a-uuid", "short_name": "broken"}}
    good = [client_event(f"g{n}") for n in range(20)]

    publish(rabbit_config["AMQP_URI"], [*good[:10], broken, *good[10:]])
    with Connection(rabbit_config["AMQP_URI"]) as conn:  # not even JSON
        conn.Producer().publish(b"\x00garbage", exchange=Exchange("clients.events", "topic",
                                durable=True), routing_key="client_created",
                                content_type="application/json", declare=[])

    letters = wait_for(lambda: len(list_dead_letters(rabbit_config["AMQP_URI"], SERVICE)) == 2
                       and list_dead_letters(rabbit_config["AMQP_URI"], SERVICE), timeout=15)
    assert [(x.reason, x.attempts, x.handler) for x in letters] == [
        ("contract_violation", 1, HANDLER)] * 2
    assert letters[0].event["event_id"] == broken["event_id"]
    assert "client_id" in letters[0].headers["x-crm-traceback"]
    wait_for(lambda: applied_count(batch_sql) == 20)
    assert batch_sql.scalar("SELECT count(*) FROM applied WHERE short_name = 'broken'") == 0
    assert consumed("contract_violation") == violations_before + 2
    assert sum(BATCH_SIZES) == 20  # the handler never saw them


def test_a_replica_stopped_mid_stream_loses_nothing(start_batch_sink, rabbit_config, batch_sql):
    SLOW["seconds"] = 0.02  # keep the stream going while the first replica stops
    first = start_batch_sink()
    envelopes = [client_event(f"s{n}") for n in range(2000)]
    publish(rabbit_config["AMQP_URI"], envelopes)
    wait_for(lambda: applied_count(batch_sql) >= 200, timeout=30, message="the stream to start")

    first.stop()  # the running batch finishes and is acked; the waiting ones go back
    stopped_at = applied_count(batch_sql)
    assert 0 < stopped_at < 2000
    eventlet.sleep(0.2)
    assert applied_count(batch_sql) == stopped_at  # the stopped replica took nothing more

    SLOW["seconds"] = 0.0
    start_batch_sink()
    wait_for(lambda: applied_count(batch_sql) == 2000, timeout=30,
             message="the new replica to apply the rest")
    eventlet.sleep(0.3)
    assert applied_count(batch_sql) == 2000
    assert batch_sql.scalar("SELECT count(DISTINCT short_name) FROM applied") == 2000
    assert batch_sql.scalar("SELECT count(*) FROM processed_events") == 2000


def test_claim_events_returns_the_unseen_ones_in_order(batch_db):
    sessions = SessionFactory(make_engine(batch_db, pool_size=1))
    try:
        events = [parse_envelope(client_event(f"e{n}"), handler=HANDLER) for n in range(5)]
        with sessions.session() as session:
            assert claim_events(session, events[:2]) == events[:2]
        with sessions.session() as session:
            batch = [events[4], events[1], events[3], events[4], events[0], events[2]]
            assert claim_events(session, batch) == [events[4], events[3], events[2]]
        with sessions.session() as session:
            assert claim_events(session, events, consumer="other.handler") == events
            assert claim_events(session, []) == []
        with pytest.raises(ValueError):
            with sessions.session() as session:
                claim_events(session, [parse_envelope(client_event("x"))])
    finally:
        sessions.engine.dispose()


def queue_state(amqp_uri: str) -> tuple[int, int]:
    """(ready messages, consumers) of the handler's queue, as the broker sees it now."""
    with Connection(amqp_uri) as conn:
        _, messages, consumers = Queue(QUEUE, channel=conn.channel(), durable=True
                                       ).queue_declare(passive=True)
    return messages, consumers


def test_a_lost_connection_is_restored_and_loses_nothing(start_batch_sink, rabbit_config,
                                                         batch_sql):
    SLOW["seconds"] = 0.01
    container = start_batch_sink()
    handler = next(e for e in container.entrypoints if isinstance(e, BatchEventHandler))
    publish(rabbit_config["AMQP_URI"], [client_event(f"r{n}") for n in range(2000)])
    wait_for(lambda: applied_count(batch_sql) >= 200, timeout=30, message="the stream to start")
    lost = handler._conn

    # As on a network failure: the socket dies under the consumer with a batch running.
    lost.connection.sock.shutdown(socket.SHUT_RDWR)

    wait_for(lambda: handler._conn not in (None, lost) and queue_state(
        rabbit_config["AMQP_URI"])[1] == 1, timeout=20, message="the handler to reconnect")
    SLOW["seconds"] = 0.0
    wait_for(lambda: applied_count(batch_sql) == 2000, timeout=30,
             message="the rest after the reconnect")
    eventlet.sleep(0.3)
    assert applied_count(batch_sql) == 2000
    assert batch_sql.scalar("SELECT count(*) FROM processed_events") == 2000
    assert queue_state(rabbit_config["AMQP_URI"]) == (0, 1)
