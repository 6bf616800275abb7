"""KPI facts follow the ERP documents (posting, a newer revision, un-posting, deletion, a stale
resend), go to the client's owner at the document date, and count calls, meetings, new clients."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from kombu import Connection, Exchange

from crm_platform.clock import clock
from crm_platform.testing import publish_events

from .conftest import moment

pytestmark = pytest.mark.integration

NOV = "2026-11-01"


def test_realisations_follow_posting_revisions_unposting_and_deletion(payroll):
    client = payroll.client("m.ural.1")
    guid = str(uuid.uuid4())
    shipment = lambda action, revision, amount: payroll.erp(  # noqa: E731
        "shipment", action, client, guid=guid, revision=revision, amount=amount,
        date="2026-11-10T09:00:00", weight_kg="2500")

    shipment("posted", 1, "100000.00")
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("100000.00")
    assert payroll.fact("m.ural.1", NOV, "shipments") == Decimal("2.500")
    shipment("changed", 2, "150000.00")
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("150000.00")
    shipment("changed", 1, "999999.00")           # a late resend of an older revision
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("150000.00")
    shipment("unposted", 3, "150000.00")
    assert payroll.fact("m.ural.1", NOV, "sales") == 0
    assert payroll.fact("m.ural.1", NOV, "shipments") == 0
    shipment("posted", 4, "120000.00")            # posted again: restored, with its new sum
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("120000.00")
    shipment("deleted", 5, "120000.00")
    assert payroll.fact("m.ural.1", NOV, "sales") == 0

    pay_guid = str(uuid.uuid4())
    payroll.erp("payment", "posted", client, guid=pay_guid, revision=1, amount="70000.00",
                date="2026-11-12T09:00:00")
    payroll.erp("payment", "unposted", client, guid=pay_guid, revision=2, amount="70000.00",
                date="2026-11-12T09:00:00")
    payroll.erp("payment", "posted", client, guid=pay_guid, revision=3, amount="65000.00",
                date="2026-11-12T09:00:00")
    widget = payroll.widget("m.ural.1", NOV)
    assert {k["kpi"]: k["fact"] for k in widget["kpis"]}["payments"] == "65000.00"
    assert widget["projected_pay"] == "40650.00"   # fixed + 1 % of payments, no plan

    # Every change pushed the widget; the last one carries the figures above.
    pushed = [p for p in payroll.outbox("kpi_changed")
              if p["user_id"] == payroll.org.id("m.ural.1")]
    assert len(pushed) >= 9
    assert pushed[-1]["projected_pay"] == "40650.00"
    assert pushed[-1]["cause"] == "erp_payment_posted"


def test_a_document_goes_to_the_owner_at_its_date_and_hand_overs_keep_the_past(payroll):
    clock.travel_to(moment("2026-11-05T08:00:00"))
    client = payroll.client("m.ural.1")
    clock.travel_to(moment("2026-11-20T08:00:00"))
    payroll.publish(("clients", "client_owner_changed", {
        "client_id": client, "previous_owner_id": payroll.org.id("m.ural.1"),
        "new_owner_id": payroll.org.id("m.ural.2"), "reason": "transfer",
        "new_department_id": payroll.org.departments["ural"]}))
    clock.reset()
    before, after, october = (str(uuid.uuid4()) for _ in range(3))
    payroll.erp("shipment", "posted", client, guid=before, revision=1, amount="10000.00",
                date="2026-11-15T09:00:00")
    payroll.erp("shipment", "posted", client, guid=after, revision=1, amount="20000.00",
                date="2026-11-25T09:00:00")
    payroll.erp("shipment", "posted", client, guid=october, revision=1, amount="5000.00",
                date="2026-10-20T09:00:00")
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("10000.00")
    assert payroll.fact("m.ural.2", NOV, "sales") == Decimal("20000.00")
    assert payroll.fact("m.ural.1", "2026-10-01", "sales") == Decimal("5000.00")

    # A shipment dated 31.10 23:30 Moscow time counts in October, 01.11 00:30 in November.
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="1.00", date="2026-10-31T20:30:00")
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="2.00", date="2026-10-31T21:30:00")
    assert payroll.fact("m.ural.1", "2026-10-01", "sales") == Decimal("5001.00")
    assert payroll.fact("m.ural.1", NOV, "sales") == Decimal("10002.00")


def test_a_document_of_a_client_not_known_yet_is_attributed_when_it_arrives(payroll):
    client = str(uuid.uuid4())
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="30000.00", date="2026-11-03T09:00:00")
    assert payroll.fact("m.volga.1", NOV, "sales") == 0
    payroll.client("m.volga.1", client_id=client, source="erp")
    assert payroll.fact("m.volga.1", NOV, "sales") == Decimal("30000.00")
    assert payroll.fact("m.volga.1", NOV, "new_clients") == 0   # from the ERP: not a catch
    # A merged duplicate's documents count for the survivor's owner.
    survivor = payroll.client("m.volga.2")
    payroll.publish(("clients", "clients_merged", {"survivor_id": survivor,
                                                   "merged_id": client}))
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="700.00", date="2026-11-04T09:00:00")
    assert payroll.fact("m.volga.2", NOV, "sales") == Decimal("700.00")
    assert payroll.fact("m.volga.2", NOV, "new_clients") == 1


def test_calls_and_meetings_count_by_the_stated_rule(payroll):
    manager = payroll.org.id("m.ural.1")
    client = str(uuid.uuid4())
    call = {"client_id": client, "user_id": manager, "direction": "outbound", "answered": True,
            "started_at": moment("2026-11-10T07:00:00"), "duration_seconds": 90,
            "talk_seconds": 80}
    counted = {**call, "call_id": str(uuid.uuid4())}
    # Skipped calls are not recorded at all; each batch ends with a counted event to wait on
    # (one queue: the skipped ones are taken first).
    publish_events(payroll.amqp_uri, [
        ("telephony", "call_registered", {**call, "call_id": str(uuid.uuid4()),
                                          "answered": False}),
        ("telephony", "call_registered", {**call, "call_id": str(uuid.uuid4()),
                                          "client_id": None})])
    envelope = payroll.publish(("telephony", "call_registered", counted))[0]
    payroll.publish(("telephony", "call_registered", {**call, "call_id": str(uuid.uuid4()),
                                                      "direction": "inbound"}))
    task = {"deal_id": None, "client_id": client, "assignee_id": manager, "kind": "meeting",
            "title": "Встреча на объекте", "source": "manual", "status": "done",
            "completed_at": moment("2026-11-11T12:00:00")}
    publish_events(payroll.amqp_uri, [("deals", "task_completed", {
        **task, "task_id": str(uuid.uuid4()), "status": "cancelled"})])
    payroll.publish(("deals", "task_completed", {**task, "task_id": str(uuid.uuid4())}))

    # The same event delivered again counts once.
    with Connection(payroll.amqp_uri) as conn:
        conn.Producer().publish(json.dumps(envelope), exchange=Exchange(
            "telephony.events", "topic", durable=True), routing_key="call_registered",
            content_type="application/json", declare=[])
    payroll.publish(("telephony", "call_registered", {**call, "call_id": str(uuid.uuid4())}))
    assert payroll.fact("m.ural.1", NOV, "calls") == 3
    assert payroll.fact("m.ural.1", NOV, "meetings") == 1
    assert payroll.sql.scalar("SELECT count(*) FROM kpi_facts WHERE kpi = 'calls'") == 3
