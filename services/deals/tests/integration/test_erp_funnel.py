"""The funnel driven by 1C: erp_bridge events delivered through the real RabbitMQ move deals up
and down the ladder, in any order and however often they come."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_platform.clock import clock, utcnow

pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")


class Documents:
    """ERP document events as the bridge emits them: each new state of a document gets the next
    revision."""

    def __init__(self, client_id=None, counterparty_guid=None):
        self.client_id = client_id
        self.counterparty_guid = counterparty_guid
        self.revisions: dict = {}

    def event(self, kind, action, amount, *, guid=None, order=None, allocations=None,
              deal_id=None, number="УТ-1"):
        guid = guid or uuid.uuid4()
        self.revisions[guid] = self.revisions.get(guid, 0) + 1
        payload = {"document_guid": guid, "document_version": f"v{self.revisions[guid]}",
                   "revision": self.revisions[guid], "client_id": self.client_id,
                   "counterparty_guid": self.counterparty_guid, "number": number,
                   "document_date": utcnow(), "amount": Decimal(amount), "order_guid": order}
        if kind == "order":
            payload["deal_id"] = deal_id
        if kind == "payment":
            payload["allocations"] = allocations or []
        return ("erp_bridge", f"erp_{kind}_{action}", payload), guid


def deal_of(svc, deal_id):
    return svc.get_deal(deal_id, as_user="director")


def test_documents_move_an_open_deal_up_the_ladder_and_back(svc, org, bus):
    clock.travel_to(datetime(2026, 12, 7, 10, 0, tzinfo=MSK))
    client = org.add_client("ООО «Профиль-Урал»")
    deal = svc.create_deal({"client_id": client, "amount": "500000"})["deal"]
    svc.move_stage(deal["id"], "proposal")
    docs = Documents(client)

    order, order_guid = docs.event("order", "posted", "480000.00")
    bus.deliver_many([order])
    state = deal_of(svc, deal["id"])
    assert state["stage"] == "order_confirmed" and state["erp"]["ordered"] == "480000.00"
    assert state["pipeline_amount"] == "480000.00"

    invoice, _ = docs.event("invoice", "posted", "480000.00", order=order_guid)
    part, part_guid = docs.event("shipment", "posted", "200000.00", order=order_guid)
    bus.deliver_many([invoice, part])
    assert deal_of(svc, deal["id"])["stage"] == "partially_shipped"

    rest, _ = docs.event("shipment", "posted", "280000.00", order=order_guid)
    bus.deliver_many([rest])
    state = deal_of(svc, deal["id"])
    assert (state["stage"], state["payment_status"]) == ("shipped", "unpaid")

    payment, payment_guid = docs.event("payment", "posted", "480000.00", allocations=[
        {"order_guid": order_guid, "amount": Decimal("480000.00")}])
    bus.deliver_many([payment])
    state = deal_of(svc, deal["id"])
    assert (state["stage"], state["payment_status"], state["open"]) == (
        "closed_won", "paid", False)

    # The bank statement is cancelled in 1C: the payment is un-posted and the deal goes back.
    unposted, _ = docs.event("payment", "unposted", "480000.00", guid=payment_guid,
                             allocations=[{"order_guid": order_guid,
                                           "amount": Decimal("480000.00")}])
    bus.deliver_many([unposted])
    state = deal_of(svc, deal["id"])
    assert (state["stage"], state["payment_status"], state["open"]) == (
        "shipped", "unpaid", True)
    # A shipment deleted in 1C: partially shipped again.
    deleted, _ = docs.event("shipment", "deleted", "200000.00", guid=part_guid,
                            order=order_guid)
    bus.deliver_many([deleted])
    assert deal_of(svc, deal["id"])["stage"] == "partially_shipped"

    history = svc.stage_history(deal["id"], as_user="director")
    assert [(h["to_stage"], h["cause"]) for h in history] == [
        ("new", "user"), ("proposal", "user"), ("order_confirmed", "erp"), ("partially_shipped",
                                                                           "erp"),
        ("shipped", "erp"), ("closed_won", "erp"), ("shipped", "erp"),
        ("partially_shipped", "erp")]
    assert history[2]["document_guid"] == str(order_guid)
    documents = svc.deal_documents(deal["id"], as_user="director")
    assert {(d["kind"], d["state"]) for d in documents} == {
        ("order", "posted"), ("invoice", "posted"), ("shipment", "posted"),
        ("shipment", "deleted"), ("payment", "unposted")}
    timeline = svc.deal_timeline(deal["id"], limit=100, as_user="director")["items"]
    assert sum(1 for t in timeline if t["kind"] == "erp") == 5


def test_an_order_without_a_deal_opens_one_for_the_clients_owner(svc, org, bus):
    client = org.add_client("Кровля-Сервис", owner="m.ural.2")
    docs = Documents(client)
    order, order_guid = docs.event("order", "posted", "12000.00", number="ЗК-77")
    bus.deliver_many([order])
    deals = svc.list_deals({"client_id": client}, as_user="director")["items"]
    assert len(deals) == 1
    assert deals[0]["owner_id"] == org.id("m.ural.2") and deals[0]["source"] == "erp"
    assert deals[0]["stage"] == "order_confirmed" and "ЗК-77" in deals[0]["title"]
    # The next document of the same order finds the same deal.
    invoice, _ = docs.event("invoice", "posted", "12000.00", order=order_guid)
    bus.deliver_many([invoice])
    assert [d["stage"] for d in svc.list_deals({"client_id": client},
                                               as_user="director")["items"]] == ["invoiced"]


def test_an_order_naming_its_deal_goes_to_that_deal(svc, org, bus):
    client = org.add_client("Металл-Центр")
    first = svc.create_deal({"client_id": client, "title": "Склад"})["deal"]
    second = svc.create_deal({"client_id": client, "title": "Цех"})["deal"]
    order, _ = Documents(client).event("order", "posted", "1.00", deal_id=uuid.UUID(first["id"]))
    bus.deliver_many([order])
    assert deal_of(svc, first["id"])["stage"] == "order_confirmed"
    assert deal_of(svc, second["id"])["stage"] == "new"


def test_documents_of_an_unmatched_counterparty_wait_for_their_client(svc, org, bus):
    counterparty = uuid.uuid4()
    docs = Documents(None, counterparty)
    order, _ = docs.event("order", "posted", "777.00")
    bus.deliver_many([order])
    assert org.count("deals") == 0
    client_id = uuid.uuid4()
    bus.deliver("clients", "client_created", {
        "client_id": client_id, "short_name": "Новый из 1С", "status": "active",
        "owner_id": org.id("m.volga.1"), "department_id": org.departments["volga"],
        "erp_counterparty_guid": counterparty})
    deals = svc.list_deals({"client_id": str(client_id)}, as_user="director")["items"]
    assert [(d["stage"], d["owner_id"]) for d in deals] == [
        ("order_confirmed", org.id("m.volga.1"))]


def test_shuffled_and_repeated_events_end_in_the_same_state(svc, org, bus):
    """Many deals, their documents' whole histories shuffled and partly sent twice: each deal
    ends where its final documents say, the same as when sent in order."""
    rng = random.Random(7)
    expected = {}
    events = []
    for n in range(12):
        client = org.add_client(f"Клиент {n}")
        deal = svc.create_deal({"client_id": client})["deal"]
        docs = Documents(client)
        order, order_guid = docs.event("order", "posted", "1000.00", deal_id=uuid.UUID(
            deal["id"]))
        history = [order]
        shipped = rng.choice([0, 400, 1000])
        paid = rng.choice([0, 1000])
        if shipped:
            history.append(docs.event("shipment", "posted", f"{shipped}.00",
                                      order=order_guid)[0])
        if paid:
            pay, pay_guid = docs.event("payment", "posted", "1000.00", order=order_guid)
            history.append(pay)
            if rng.random() < 0.5:      # changed, then un-posted
                history.append(docs.event("payment", "changed", "500.00", guid=pay_guid,
                                          order=order_guid)[0])
                history.append(docs.event("payment", "unposted", "500.00", guid=pay_guid,
                                          order=order_guid)[0])
                paid = 0
        stage = {0: "order_confirmed", 400: "partially_shipped", 1000: "shipped"}[shipped]
        if shipped == 1000 and paid:
            stage = "closed_won"
        expected[deal["id"]] = stage
        events += history
    delivered = events + rng.sample(events, len(events) // 2)
    rng.shuffle(delivered)
    bus.deliver_many(delivered)
    actual = {deal_id: deal_of(svc, deal_id)["stage"] for deal_id in expected}
    assert actual == expected
    assert org.count("erp_documents") == len({e[2]["document_guid"] for e in events})
