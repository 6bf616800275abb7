"""The event backbone against the real RabbitMQ and PostgreSQL: an event committed with its state
change reaches its consumer exactly once, whatever happens in between."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import eventlet
import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Queue
from nameko.testing.services import entrypoint_hook

from crm_platform.consumer import dead_letter_queue_name
from crm_platform.db import SessionFactory, make_engine
from crm_platform.deadletters import list_dead_letters, redrive_dead_letters
from crm_platform.observability import EVENTS_CONSUMED
from crm_platform.outbox import ConfirmingPublisher, OutboxRelay, emit, emit_many
from crm_platform.testing import wait_for

from . import probe_services
from .probe_services import ProbeService, SinkService

ROOT = Path(__file__).resolve().parents[2]
HANDLER = "sink.handle_thing_happened"

pytestmark = pytest.mark.integration


@pytest.fixture
def start_probe(container_factory, service_config, probe_db):
    def start():
        container = container_factory(ProbeService, service_config(db_url=probe_db))
        container.start()
        return container
    return start


@pytest.fixture
def start_sink(container_factory, service_config, sink_db):
    def start():
        container = container_factory(SinkService, service_config(db_url=sink_db))
        container.start()
        return container
    return start


@pytest.fixture(autouse=True)
def _no_failing_values():
    probe_services.FAILING.clear()
    yield
    probe_services.FAILING.clear()


def make_thing(probe, n, **kwargs) -> str:
    thing_id = str(uuid.uuid4())
    with entrypoint_hook(probe, "make_thing") as call:
        call(thing_id, n, **kwargs)
    return thing_id


def consumed(outcome: str) -> float:
    return EVENTS_CONSUMED.labels("sink", HANDLER, outcome)._value.get()


def test_event_committed_with_its_change_is_delivered_once(start_probe, start_sink, probe_sql,
                                                           sink_sql):
    start_sink()
    probe = start_probe()

    thing_id = make_thing(probe, 7)

    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 1, message="delivery")
    row = sink_sql.rows("SELECT thing_id, n FROM received")[0]
    assert (str(row["thing_id"]), row["n"]) == (thing_id, 7)
    wait_for(lambda: probe_sql.scalar(
        "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 1)
    eventlet.sleep(0.5)  # nothing more arrives later
    assert sink_sql.scalar("SELECT count(*) FROM received") == 1
    assert sink_sql.scalar("SELECT count(*) FROM processed_events") == 1


def test_a_change_that_rolls_back_emits_nothing(start_probe, probe_sql):
    probe = start_probe()

    with pytest.raises(RuntimeError):
        make_thing(probe, 1, fail_after_emit=True)

    assert probe_sql.scalar("SELECT count(*) FROM things") == 0
    assert probe_sql.scalar("SELECT count(*) FROM outbox") == 0


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_broker_restart_between_commit_and_relay(start_probe, start_sink, probe_db, probe_sql,
                                                 sink_sql):
    start_sink()
    start_probe()
    rabbitmqctl("stop_app")
    try:
        # The service's transaction commits while the broker is down: state and event together.
        sessions = SessionFactory(make_engine(probe_db, pool_size=1))
        thing_id = str(uuid.uuid4())
        with sessions.session() as session:
            session.execute(sa.insert(probe_services.things).values(id=thing_id, n=3))
            emit(session, "probe", "thing_happened", {"thing_id": thing_id, "n": 3})
        sessions.engine.dispose()
        # The relay keeps failing and says why on the waiting row.
        wait_for(lambda: probe_sql.scalar(
            "SELECT last_error FROM outbox WHERE published_at IS NULL"), timeout=20,
            message="the relay to record the broker failure")
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")

    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 1, timeout=60,
             message="delivery after the broker came back")
    eventlet.sleep(1)
    assert sink_sql.scalar("SELECT count(*) FROM received") == 1
    assert str(sink_sql.scalar("SELECT thing_id FROM received")) == thing_id
    assert probe_sql.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


def run_sink_process(tmp_path, rabbit_config, sink_db, **env):
    config = tmp_path / "sink.yaml"
    config.write_text(json.dumps({
        "AMQP_URI": rabbit_config["AMQP_URI"], "DB_URL": sink_db,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0", "EVENT_RETRY_DELAYS_MS": "100,200",
    }))
    return subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "--config", str(config),
         "tests.backbone.probe_services:SinkService"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def test_consumer_killed_mid_handler_applies_the_event_once(start_probe, rabbit_config, sink_db,
                                                            sink_sql, tmp_path):
    marker = tmp_path / "inside-handler"
    sink = run_sink_process(tmp_path, rabbit_config, sink_db, SINK_HANG_MARKER=str(marker))
    try:
        probe = start_probe()
        wait_for(lambda: sink.poll() is None and _queue_exists(rabbit_config), timeout=30,
                 message="the sink process to declare its queue")
        thing_id = make_thing(probe, 11)
        wait_for(marker.exists, timeout=30, message="the sink to enter its handler")
        os.killpg(sink.pid, signal.SIGKILL)  # kill -9 while the handler's transaction is open
        sink.wait(timeout=10)
        assert sink_sql.scalar("SELECT count(*) FROM received") == 0
    finally:
        if sink.poll() is None:
            os.killpg(sink.pid, signal.SIGKILL)

    restarted = run_sink_process(tmp_path, rabbit_config, sink_db)
    try:
        wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 1, timeout=30,
                 message="redelivery to the restarted consumer")
        eventlet.sleep(1)
        assert sink_sql.scalar("SELECT count(*) FROM received") == 1
        assert str(sink_sql.scalar("SELECT thing_id FROM received")) == thing_id
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=20)


def _queue_exists(rabbit_config) -> bool:
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        try:
            Queue(f"evt-probe-thing_happened--{HANDLER}", channel=conn.channel(),
                  durable=True).queue_declare(passive=True)
            return True
        except Exception:  # noqa: BLE001 - not declared yet
            return False


def test_the_same_event_delivered_twice_changes_nothing(start_probe, start_sink, probe_sql,
                                                        sink_sql):
    start_sink()
    probe = start_probe()
    make_thing(probe, 5)
    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 1)
    duplicates_before = consumed("duplicate")

    # As after a relay crash between publish and commit: the row is sent again.
    probe_sql.execute("UPDATE outbox SET published_at = NULL")

    wait_for(lambda: consumed("duplicate") == duplicates_before + 1,
             message="the second delivery to reach the handler")
    assert sink_sql.scalar("SELECT count(*) FROM received") == 1
    assert sink_sql.scalar("SELECT count(*) FROM processed_events") == 1


def test_a_handler_that_always_fails_ends_in_the_dead_letter_queue(start_probe, start_sink,
                                                                   rabbit_config, sink_sql):
    probe_services.FAILING.add(3)
    start_sink()
    probe = start_probe()
    retried_before = consumed("retried")

    ids = {n: make_thing(probe, n) for n in range(1, 6)}

    amqp = rabbit_config["AMQP_URI"]
    letters = wait_for(lambda: list_dead_letters(amqp, "sink"), timeout=30,
                       message="the failing event to be dead-lettered")
    assert len(letters) == 1
    letter = letters[0]
    assert letter.handler == HANDLER
    assert letter.reason == "handler_error"
    assert letter.error_type == "ValueError"
    assert "sink refuses n=3" in letter.error
    assert letter.attempts == 3  # the first try and two retries (EVENT_RETRY_DELAYS_MS=100,200)
    assert letter.event["payload"] == {"thing_id": ids[3], "n": 3}
    assert consumed("retried") == retried_before + 2
    # Nothing else is lost; the failed one left no half-applied state.
    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 4)
    assert sorted(r["n"] for r in sink_sql.rows("SELECT n FROM received")) == [1, 2, 4, 5]

    # Once the cause is fixed, a re-drive applies it.
    probe_services.FAILING.clear()
    assert redrive_dead_letters(amqp, "sink") == 1
    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 5,
             message="the re-driven event to be handled")
    assert list_dead_letters(amqp, "sink") == []


def test_an_event_breaking_its_contract_is_dead_lettered_at_once(start_sink, rabbit_config,
                                                                 sink_sql):
    start_sink()
    envelope = {"event_id": str(uuid.uuid4()), "type": "thing_happened", "version": 1,
                "source": "probe", "occurred_at": "2026-11-27T10:00:00+00:00",
                "payload": {"thing_id": "not-a-uuid", "n": "many"}}
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        conn.Producer().publish(json.dumps(envelope), exchange=Exchange("probe.events", "topic",
                                durable=True), routing_key="thing_happened",
                                content_type="application/json", declare=[])

    letters = wait_for(lambda: list_dead_letters(rabbit_config["AMQP_URI"], "sink"), timeout=15)
    assert [(x.reason, x.attempts) for x in letters] == [("contract_violation", 1)]
    assert "thing_id" in letters[0].headers["x-crm-traceback"]
    assert sink_sql.scalar("SELECT count(*) FROM received") == 0


def test_two_relays_never_send_the_same_row(probe_db, probe_sql, rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as conn:
        queue = Queue("count-things", exchange=Exchange("probe.events", "topic", durable=True),
                      routing_key="thing_happened", durable=True)
        queue(conn.channel()).declare()

    sessions = SessionFactory(make_engine(probe_db, pool_size=4))
    with sessions.session() as session:
        for n in range(2000):
            emit(session, "probe", "thing_happened", {"thing_id": str(uuid.uuid4()), "n": n})
    relays = [OutboxRelay(sessions, ConfirmingPublisher(amqp, "probe"), "probe", batch_size=100)
              for _ in range(2)]

    def drain(relay):
        sent = 0
        while (batch := relay.relay_once()):
            sent += batch
        return sent

    pool = eventlet.GreenPool()
    sent = list(pool.imap(drain, relays))
    for relay in relays:
        relay.publisher.close()
    sessions.engine.dispose()

    assert sum(sent) == 2000
    assert all(s > 0 for s in sent), f"both relays should have worked: {sent}"
    seen = []
    with Connection(amqp) as conn:
        q = queue(conn.channel())
        while (message := q.get(no_ack=True)) is not None:
            seen.append(json.loads(message.body)["event_id"])
    assert len(seen) == 2000
    assert len(set(seen)) == 2000
    assert probe_sql.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


def test_dead_letter_queue_is_named_per_service():
    assert dead_letter_queue_name("sink") == "sink.dead_letters"


def test_events_added_in_bulk_are_delivered_like_single_ones(start_probe, start_sink, probe_db,
                                                             probe_sql, sink_sql):
    start_sink()
    start_probe()  # its relay sends what the bulk insert commits
    sessions = SessionFactory(make_engine(probe_db, pool_size=1))
    with sessions.session() as session:
        count = emit_many(session, "probe", [
            ("thing_happened", {"thing_id": str(uuid.uuid4()), "n": n}) for n in range(1500)])
    sessions.engine.dispose()

    assert count == 1500
    wait_for(lambda: sink_sql.scalar("SELECT count(*) FROM received") == 1500, timeout=60,
             message="every bulk-added event to be handled")
    assert sink_sql.scalar("SELECT count(DISTINCT n) FROM received") == 1500
    assert probe_sql.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


def test_handled_event_ids_are_forgotten_after_the_inbox_retention(sink_db, sink_sql):
    """The relay's hourly housekeeping keeps ``processed_events`` to the retention window."""
    old, recent = uuid.uuid4(), uuid.uuid4()
    sink_sql.execute("INSERT INTO processed_events (consumer, event_id, handled_at) VALUES "
                     "('sink.handle', :old, now() - interval '31 days'), "
                     "('sink.handle', :recent, now() - interval '29 days')",
                     old=old, recent=recent)
    sessions = SessionFactory(make_engine(sink_db, pool_size=1))
    try:
        assert OutboxRelay(sessions, None, "sink", inbox_retention_days=0).purge_handled() == 0
        assert OutboxRelay(sessions, None, "sink", inbox_retention_days=30).purge_handled() == 1
    finally:
        sessions.engine.dispose()
    assert [str(r["event_id"]) for r in sink_sql.rows("SELECT event_id FROM processed_events")] \
        == [str(recent)]
