"""A known month of events (October 2026) for the reports tests: three clients, six calls, three
e-mails, four deals with their moves, two tasks, five ERP documents (one re-sent in an older
revision, one un-posted) and plans. ``publish_scenario`` sends them as the producers would, in the
order their services would (the organisation and the clients first, each producer's events in its
own order) and returns every envelope by source, for the replay test's fake producers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from kombu import Connection, Exchange

from crm_platform.clock import clock
from crm_platform.observability import REGISTRY
from crm_platform.organisation import departments_table, staff_table
from crm_platform.testing import publish_events, wait_for

UTC = UTC
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def at(month, day, hour=9, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Ids:
    def __init__(self):
        for name in ("c1", "c2", "c3", "d1", "d2", "d3", "d5", "t1", "t2", "inv1", "inv2",
                     "ord1", "pay1", "shp1", *[f"call{n}" for n in range(1, 7)]):
            setattr(self, name, str(uuid.uuid4()))


def directory_events(org) -> list[tuple[str, str, dict]]:
    metadata = sa.MetaData()
    staff, departments = staff_table(metadata), departments_table(metadata)
    items = []
    usernames = {p["user_id"]: name for name, p in org.people.items()}
    with org.engine.connect() as conn:
        for d in conn.execute(sa.select(departments)).mappings():
            items.append(("directory", "department_changed", {
                "department_id": d["department_id"], "name": d["name"],
                "head_user_id": d["head_user_id"], "regions": list(d["regions"])}))
        for p in conn.execute(sa.select(staff)).mappings():
            items.append(("directory", "user_changed", {
                "user_id": p["user_id"], "username": usernames[str(p["user_id"])],
                "full_name": p["full_name"], "role": p["role"],
                "department_id": p["department_id"], "active": p["active"]}))
    return items


def republish(amqp_uri: str, envelope: dict) -> None:
    """The very same envelope again (a redelivery: same event id)."""
    with Connection(amqp_uri) as conn:
        conn.Producer().publish(
            json.dumps(envelope), exchange=Exchange(f"{envelope['source']}.events", "topic",
                                                    durable=True),
            routing_key=envelope["type"], content_type="application/json", declare=[],
            delivery_mode=2)


def _client(ids, org, key, owner, dept, region, segment, status):
    return {"client_id": getattr(ids, key), "short_name": f"ООО «Клиент {key.upper()}»",
            "region": region, "status": status, "segment": segment, "owner_id": org.id(owner),
            "department_id": str(org.departments[dept])}


def _erp(ids, key, client, revision, amount, day, number):
    return {"document_guid": getattr(ids, key), "document_version": f"v{revision}",
            "client_id": client, "number": number, "document_date": day,
            "amount": amount, "revision": revision}


def publish_scenario(amqp_uri: str, org, ids: Ids, wait_count) -> dict[str, list[dict]]:
    """Publish everything; ``wait_count(n)`` waits until the service has handled n events."""
    sent: dict[str, list[dict]] = {}
    total = 0

    def send(items, when=None):
        nonlocal total
        if when is not None:
            clock.travel_to(when)
        envelopes = publish_events(amqp_uri, items)
        for envelope in envelopes:
            sent.setdefault(envelope["source"], []).append(envelope)
        total += len(envelopes)
        return envelopes

    u1, u2, v1 = org.id("m.ural.1"), org.id("m.ural.2"), org.id("m.volga.1")
    ural, volga = str(org.departments["ural"]), str(org.departments["volga"])

    send(directory_events(org), at(9, 1))
    send([("clients", "client_created", {
        **_client(ids, org, "c1", "m.ural.1", "ural", "RU-SVE", "roofing", "potential"),
        "source": "manual"})], at(10, 2))
    send([("clients", "client_created", {
        **_client(ids, org, "c2", "m.ural.2", "ural", "RU-PER", "facade", "active"),
        "source": "manual"})], at(10, 3))
    send([("clients", "client_created", {
        **_client(ids, org, "c3", "m.volga.1", "volga", "RU-TA", "roofing", "potential"),
        "source": "manual"})], at(10, 4))
    december = date(2026, 12, 1)
    send([("payroll", "sales_plan_changed", {"user_id": u1, "department_id": ural,
                                             "month": december,
                                             "sales_amount": Decimal("300000.00")}),
          ("payroll", "sales_plan_changed", {"user_id": v1, "department_id": volga,
                                             "month": december,
                                             "sales_amount": Decimal("100000.00")})],
         at(10, 4, 10))
    wait_count(total)

    def call(key, user, client, direction, answered, started, talk, deal=None):
        return ("telephony", "call_registered", {
            "call_id": getattr(ids, key), "client_id": client, "user_id": user,
            "direction": direction, "answered": answered, "started_at": started,
            "duration_seconds": talk + 10, "talk_seconds": talk, "deal_id": deal})

    calls = send([
        call("call1", u1, ids.c1, "inbound", True, at(10, 5, 7), 60),
        call("call2", u1, None, "outbound", False, at(10, 5, 8), 0),
        call("call3", u1, None, "outbound", True, at(10, 12, 8), 120, deal=ids.d1),
        call("call4", u2, ids.c2, "inbound", True, at(10, 6, 8), 30),
        call("call5", v1, ids.c3, "outbound", False, at(10, 20, 8), 0),
        call("call6", u2, ids.c2, "inbound", True, at(11, 27, 8), 45),
    ], at(11, 27, 8, 30))
    # The same call registered again (a re-sent webhook: new event, same call id).
    send([call("call1", u1, ids.c1, "inbound", True, at(10, 5, 7), 60)])

    def mail(message_id, user, client, direction, sent_at):
        return ("mail", "email_registered", {"message_id": message_id, "client_id": client,
                                             "user_id": user, "direction": direction,
                                             "sent_at": sent_at, "subject": "Кровля"})

    send([mail("<m1@x>", u1, ids.c1, "inbound", at(10, 5, 10)),
          mail("<m2@x>", u1, ids.c1, "outbound", at(10, 6, 10)),
          mail("<m3@x>", v1, ids.c3, "outbound", at(10, 7, 10)),
          mail("<m2@x>", u1, ids.c1, "outbound", at(10, 6, 10))])   # the same message again

    def created(key, owner, client, source, when, dept):
        return ("deals", "deal_created", {
            "deal_id": getattr(ids, key), "client_id": client, "owner_id": owner,
            "created_at": when, "source": source, "department_id": dept, "stage": "new",
            "title": f"Сделка {key}"})

    def moved(key, owner, client, dept, frm, to, when, cause="user"):
        return ("deals", "deal_stage_changed", {
            "deal_id": getattr(ids, key), "client_id": client, "owner_id": owner,
            "department_id": dept, "from_stage": frm, "to_stage": to, "at": when,
            "cause": cause})

    def updated(key, owner, client, dept, amount, close, probability):
        return ("deals", "deal_updated", {
            "deal_id": getattr(ids, key), "client_id": client, "owner_id": owner,
            "department_id": dept, "amount": amount, "expected_close_date": close,
            "probability": probability, "changed_fields": ["amount"]})

    task = {"deal_id": None, "kind": "call", "title": "Перезвонить", "source": "manual"}
    deal_events = send([
        created("d1", u1, ids.c1, "call", at(10, 5, 9), ural),
        created("d2", u1, ids.c1, "web", at(10, 6, 9), ural),
        created("d3", v1, ids.c3, "call", at(10, 7, 9), volga),
        moved("d1", u1, ids.c1, ural, "new", "qualified", at(10, 6, 10)),
        moved("d3", v1, ids.c3, volga, "new", "qualified", at(10, 8, 9)),
        moved("d1", u1, ids.c1, ural, "qualified", "proposal", at(10, 8, 10)),
        moved("d2", u1, ids.c1, ural, "new", "lost", at(10, 9, 9)),
        created("d5", u2, ids.c2, "manual", at(10, 10, 9), ural),
        moved("d1", u1, ids.c1, ural, "proposal", "invoiced", at(10, 10, 10), "erp"),
        updated("d3", v1, ids.c3, volga, Decimal("50000.00"), date(2026, 12, 15), 40),
        updated("d5", u2, ids.c2, ural, Decimal("200000.00"), date(2026, 12, 20), 50),
        moved("d1", u1, ids.c1, ural, "invoiced", "closed_won", at(10, 20, 10), "erp"),
        ("deals", "task_created", {**task, "task_id": ids.t1, "client_id": ids.c1,
                                   "assignee_id": u1, "department_id": ural,
                                   "due_at": at(10, 6, 12)}),
        ("deals", "task_created", {**task, "task_id": ids.t2, "client_id": ids.c2,
                                   "assignee_id": u2, "department_id": ural,
                                   "due_at": at(10, 14, 12)}),
        ("deals", "task_completed", {**task, "task_id": ids.t1, "client_id": ids.c1,
                                     "assignee_id": u1, "department_id": ural,
                                     "due_at": at(10, 6, 12), "status": "done",
                                     "completed_at": at(10, 6, 11), "completed_by": u1}),
    ], at(10, 10, 12))
    send([("deals", "deal_stalled", {
        "deal_id": ids.d3, "client_id": ids.c3, "owner_id": v1, "department_id": volga,
        "stage": "qualified", "stage_entered_at": at(10, 8, 9), "limit_hours": 72}),
        ("deals", "task_overdue", {**task, "task_id": ids.t2, "client_id": ids.c2,
                                   "assignee_id": u2, "department_id": ural,
                                   "due_at": at(10, 14, 12)})], at(10, 15, 9))
    # A stage move delivered twice over (new event id, same move).
    send([moved("d1", u1, ids.c1, ural, "new", "qualified", at(10, 6, 10))])

    send([
        ("erp_bridge", "erp_order_posted", _erp(ids, "ord1", ids.c1, 1, Decimal("2000.00"),
                                                at(10, 9, 7), "ORD-1")),
        ("erp_bridge", "erp_invoice_posted", _erp(ids, "inv1", ids.c1, 1, Decimal("1000.00"),
                                                  at(10, 10, 7), "INV-1")),
        ("erp_bridge", "erp_invoice_changed", _erp(ids, "inv1", ids.c1, 3, Decimal("1500.00"),
                                                   at(10, 10, 7), "INV-1")),
        # revision 2 arrives after revision 3: an older state, it must change nothing
        ("erp_bridge", "erp_invoice_changed", _erp(ids, "inv1", ids.c1, 2, Decimal("1200.00"),
                                                   at(10, 10, 7), "INV-1")),
        ("erp_bridge", "erp_invoice_posted", _erp(ids, "inv2", ids.c3, 1, Decimal("500.00"),
                                                  at(10, 12, 7), "INV-2")),
        ("erp_bridge", "erp_invoice_unposted", _erp(ids, "inv2", ids.c3, 2, Decimal("500.00"),
                                                    at(10, 12, 7), "INV-2")),
        ("erp_bridge", "erp_payment_posted", _erp(ids, "pay1", ids.c1, 1, Decimal("1500.00"),
                                                  at(10, 15, 7), "PAY-1")),
        ("erp_bridge", "erp_shipment_posted", _erp(ids, "shp1", ids.c1, 1, Decimal("1500.00"),
                                                   at(10, 18, 7), "SHP-1")),
    ], at(10, 18, 12))
    send([("clients", "client_updated", {
        **_client(ids, org, "c2", "m.ural.2", "ural", "RU-PER", "facade", "potential"),
        "changed_fields": ["status"]})], at(10, 20, 12))
    send([("clients", "client_updated", {
        **_client(ids, org, "c3", "m.volga.1", "volga", "RU-TA", "roofing", "active"),
        "changed_fields": ["status"]})], at(10, 21, 12))
    wait_count(total)
    # Redeliveries of events already handled (same event ids): a call and a stage move.
    before = duplicates("handle_calls"), duplicates("handle_deals")
    republish(amqp_uri, calls[0])
    republish(amqp_uri, deal_events[3])
    wait_for(lambda: (duplicates("handle_calls"), duplicates("handle_deals")) == (
        before[0] + 1, before[1] + 1), message="the redeliveries seen as duplicates")
    clock.travel_to(NOW)
    return sent


def duplicates(handler: str) -> float:
    return REGISTRY.get_sample_value("crm_events_consumed_total", {
        "service": "reports", "handler": f"reports.{handler}", "outcome": "duplicate"}) or 0.0


def handled_events(sql) -> int:
    return sql.scalar("SELECT count(*) FROM processed_events")


def make_waiter(sql):
    def wait_count(n):
        wait_for(lambda: handled_events(sql) >= n, timeout=20,
                 message=f"{n} events handled by reports")
    return wait_count
