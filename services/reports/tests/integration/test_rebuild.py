"""Rebuild by replay: the producers' histories (fake producer services holding the scenario's
events in their outboxes, answering the platform's ``export_events``) -> ``reports.rebuild`` ->
the same numbers; live redeliveries after it change nothing."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden
from crm_platform.service import PersistentService
from crm_platform.tables import outbox
from crm_platform.testing import SqlReader, wait_for
from services.reports.projection import SOURCES

from .scenario import duplicates, republish

OCT = {"period": "month", "date": "2026-10-15"}
CHECKED = [("calls", {**OCT, "group_by": "week,department"}),
           ("calls", {**OCT, "group_by": "client"}),
           ("new_leads", OCT), ("funnel", {**OCT, "group_by": "department,stage"}),
           ("stage_time", OCT), ("stuck_deals", {}),
           ("new_clients", {**OCT, "group_by": "segment"}),
           ("idle_clients", {"days": 30}), ("sales", {**OCT, "group_by": "manager"}),
           ("forecast", {"period": "month", "date": "2026-12-01"}),
           ("activity", {**OCT, "group_by": "manager,week"})]


def figures(reports) -> dict:
    out = {}
    for name, params in CHECKED:
        result = reports.report(name, **params)
        out[(name, str(params))] = (result["rows"], result["totals"])
    return out


def fake_producer(name: str):
    """A service answering as ``name`` with nothing but the platform (``export_events``)."""
    return type(f"Fake{name.title().replace('_', '')}", (PersistentService,), {"name": name})


def test_rebuild_replays_producers_history(reports, test_databases, service_config,
                                           container_factory, rabbit_config):
    before = figures(reports)
    assert before[("calls", str({**OCT, "group_by": "week,department"}))][1]["calls"] == 5
    # No producer answers yet: the rebuild refuses and empties nothing.
    refused = reports.svc.call("rebuild", as_user="admin")
    failed = wait_for(lambda: (s := reports.svc.call("rebuild_status", refused["run_id"],
                                                     as_user="admin"))["status"] != "running"
                      and s, timeout=60, message="the refused rebuild")
    assert failed["status"] == "failed" and "directory" in failed["error"]
    assert figures(reports) == before

    readers = []
    for source in SOURCES:
        url = test_databases.blank(f"fake_{source}")
        sql = SqlReader(url)
        readers.append(sql)
        sql.execute("TRUNCATE outbox")
        with sql.engine.begin() as conn:
            for envelope in reports.sent.get(source, []):
                conn.execute(sa.insert(outbox).values(
                    event_id=uuid.UUID(envelope["event_id"]), source=source,
                    type=envelope["type"], envelope=envelope, published_at=utcnow()))
        container_factory(fake_producer(source), service_config(
            db_url=url, OUTBOX_POLL_INTERVAL=3600)).start()

    with_forbidden = False
    try:
        reports.svc.call("rebuild", as_user="director")
    except Forbidden:
        with_forbidden = True
    assert with_forbidden

    started = reports.svc.call("rebuild", as_user="admin")
    status = wait_for(lambda: (s := reports.svc.call("rebuild_status", started["run_id"],
                                                      as_user="admin"))["status"] != "running"
                      and s, timeout=60, message="the rebuild to finish")
    assert status["status"] == "done", status
    replayed = {source: sum(1 for _ in reports.sent.get(source, [])) for source in SOURCES}
    assert {s: status["per_source"][s]["events"] for s in SOURCES} == replayed
    assert figures(reports) == before

    # A live redelivery of a replayed event is a duplicate (claimed under the live name).
    seen = duplicates("handle_calls")
    republish(rabbit_config["AMQP_URI"], reports.sent["telephony"][0])
    wait_for(lambda: duplicates("handle_calls") == seen + 1, message="the redelivery")
    assert figures(reports) == before
    for sql in readers:
        sql.dispose()
