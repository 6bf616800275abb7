"""The funnel's stage machine and the ERP documents' effect on a deal, without a database.

The central property: whatever the order of the ERP events, and however often each arrives, the
deal ends in the state that the final set of documents implies.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_platform.errors import Forbidden, ValidationFailed
from services.deals.domain.erp import Document, document_from_event, facts_of, fold
from services.deals.domain.funnel import (
    DEFAULT_STAGES,
    ERP_STAGES,
    ErpFacts,
    check_manual_move,
    check_reopen,
    current_stage,
    erp_stage,
    funnel_from_config,
    payment_status,
    validate_stages,
)

FUNNEL = funnel_from_config(uuid.uuid4(), "Основная", list(DEFAULT_STAGES))
ORDER = uuid.uuid4()
D = Decimal


def doc(kind, amount, *, revision=1, state="posted", guid=None, order=ORDER, allocations=()):
    return Document(guid=guid or uuid.uuid4(), kind=kind, revision=revision, state=state,
                    amount=D(amount), order_guid=None if kind == "order" else order,
                    allocations=tuple(allocations))


def facts(*docs, anchors=(ORDER,)):
    return facts_of(docs, anchors)


# -- the ladder -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("documents", "stage", "payment"), [
    ([], None, "unpaid"),
    ([doc("order", "100", guid=ORDER)], "order_confirmed", "unpaid"),
    ([doc("order", "100", guid=ORDER), doc("invoice", "100")], "invoiced", "unpaid"),
    ([doc("order", "100", guid=ORDER), doc("invoice", "100"), doc("payment", "30")],
     "invoiced", "partially_paid"),
    ([doc("order", "100", guid=ORDER), doc("invoice", "100"), doc("shipment", "40")],
     "partially_shipped", "unpaid"),
    ([doc("order", "100", guid=ORDER), doc("shipment", "60"), doc("shipment", "40")],
     "shipped", "unpaid"),
    ([doc("order", "100", guid=ORDER), doc("shipment", "100"), doc("payment", "99.99")],
     "shipped", "partially_paid"),
    ([doc("order", "100", guid=ORDER), doc("shipment", "100"), doc("payment", "100")],
     "closed_won", "paid"),
    # Prepaid before shipping: paid, but not won until shipped.
    ([doc("order", "100", guid=ORDER), doc("invoice", "100"), doc("payment", "100")],
     "invoiced", "paid"),
    # An un-posted shipment counts for nothing.
    ([doc("order", "100", guid=ORDER), doc("shipment", "100", state="unposted")],
     "order_confirmed", "unpaid"),
    # Once all is shipped the shipped sum is what is owed (more goods went than ordered).
    ([doc("order", "100", guid=ORDER), doc("shipment", "120"), doc("payment", "100")],
     "shipped", "partially_paid"),
    ([doc("order", "100", guid=ORDER), doc("shipment", "120"), doc("payment", "120")],
     "closed_won", "paid"),
])
def test_the_stage_documents_imply(documents, stage, payment):
    result = facts(*documents)
    assert erp_stage(result) == stage
    assert payment_status(result) == payment


def test_payments_count_only_their_allocation_to_the_deals_orders():
    other = uuid.uuid4()
    payment = doc("payment", "150", allocations=[(ORDER, D("100")), (other, D("50"))])
    assert facts(doc("order", "100", guid=ORDER), payment).paid == D("100")
    assert facts(doc("order", "50", guid=other), payment, anchors=(other,)).paid == D("50")
    # No breakdown but a header order: the whole payment pays that order.
    assert facts(doc("order", "100", guid=ORDER), doc("payment", "70")).paid == D("70")


def test_an_invoice_without_an_order_is_its_own_anchor():
    invoice = Document(guid=uuid.uuid4(), kind="invoice", revision=1, state="posted",
                       amount=D("10"), order_guid=None)
    assert invoice.anchors() == (invoice.guid,)
    assert erp_stage(facts_of([invoice], invoice.anchors())) == "invoiced"


def test_documents_come_from_events():
    payload = {"document_guid": ORDER, "revision": 3, "amount": D("12.50"), "number": "1",
               "order_guid": None, "allocations": [], "client_id": None}
    document = document_from_event("erp_order_unposted", payload)
    assert (document.kind, document.state, document.revision) == ("order", "unposted", 3)
    assert document_from_event("erp_payment_changed", {**payload, "allocations": [
        {"order_guid": ORDER, "amount": D("5")}]}).allocations == ((ORDER, D("5")),)
    with pytest.raises(ValueError):
        document_from_event("erp_counterparty_upserted", payload)


def test_current_stage_lost_wins_then_erp_then_manual():
    posted = facts(doc("order", "1", guid=ORDER))
    assert current_stage("proposal", ErpFacts(), lost=False) == "proposal"
    assert current_stage("proposal", posted, lost=False) == "order_confirmed"
    assert current_stage("proposal", posted, lost=True) == "lost"


# -- manual moves ----------------------------------------------------------------------------------


def test_manual_moves():
    none = ErpFacts()
    check_manual_move(FUNNEL, current="new", target="proposal", facts=none, role="manager",
                      reason=None)
    check_manual_move(FUNNEL, current="proposal", target="new", facts=none, role="manager",
                      reason=None)                                # back is allowed too
    check_manual_move(FUNNEL, current="invoiced", target="lost", facts=none, role="manager",
                      reason="Отказ")                             # lost from any open stage
    for target in ERP_STAGES:
        with pytest.raises(ValidationFailed):
            check_manual_move(FUNNEL, current="proposal", target=target, facts=none,
                              role="sales_head", reason=None)
    with pytest.raises(ValidationFailed):                         # no reason
        check_manual_move(FUNNEL, current="new", target="lost", facts=none, role="manager",
                          reason="  ")
    with pytest.raises(ValidationFailed):                         # not in this funnel
        check_manual_move(FUNNEL, current="new", target="negotiation", facts=none,
                          role="manager", reason=None)
    with pytest.raises(ValidationFailed):                         # documents decide now
        check_manual_move(FUNNEL, current="order_confirmed", target="proposal",
                          facts=facts(doc("order", "1", guid=ORDER)), role="manager",
                          reason=None)
    with pytest.raises(ValidationFailed):                         # closed
        check_manual_move(FUNNEL, current="lost", target="new", facts=none, role="manager",
                          reason=None)
    with pytest.raises(ValidationFailed):
        check_manual_move(FUNNEL, current="closed_won", target="lost", facts=none,
                          role="manager", reason="x")


def test_reopen_is_for_heads_and_lost_deals():
    check_reopen("lost", "sales_head")
    with pytest.raises(Forbidden):
        check_reopen("lost", "manager")
    with pytest.raises(ValidationFailed):
        check_reopen("proposal", "sales_head")


def test_funnel_settings_keep_the_erp_ladder_and_name_bad_fields():
    stages = validate_stages([
        {"code": "new", "probability": 5, "limit": {"amount": 4, "unit": "working_hours"},
         "tasks": [{"title": "Позвонить", "due": {"amount": 1, "unit": "working_hours"}}]},
        {"code": "meeting", "title": "Встреча", "probability": 25, "limit_mode": "learned",
         "limit": {"amount": 3, "unit": "working_days"}},
        {"code": "invoiced", "probability": 85},
    ])
    assert [s["code"] for s in stages] == ["new", "meeting", *ERP_STAGES, "lost"]
    assert next(s for s in stages if s["code"] == "invoiced")["probability"] == 85
    assert stages[0]["tasks"][0]["assignee"] == "owner"
    with pytest.raises(ValidationFailed) as caught:
        validate_stages([{"code": "new", "probability": 150, "limit": {"amount": 0},
                          "tasks": [{"title": "", "due": {"amount": 1, "unit": "weeks"},
                                     "assignee": "boss"}]}])
    assert set(caught.value.fields) == {"stages.0.probability", "stages.0.limit",
                                        "stages.0.tasks.0.title", "stages.0.tasks.0.due",
                                        "stages.0.tasks.0.assignee"}
    with pytest.raises(ValidationFailed):
        validate_stages([{"code": "invoiced"}])        # no manual stage at all


# -- the property: order and repetition do not matter ----------------------------------------------

OTHER_ORDER = uuid.uuid4()
amounts = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@st.composite
def document_histories(draw):
    """A few documents of two orders, each with a history of states (revisions 1..n), as the
    bridge would emit them: posted, changed (new sum), un-posted, deleted, re-posted."""
    orders = [ORDER, OTHER_ORDER]
    histories = []
    for order in orders:
        histories.append(("order", order, order))
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["invoice", "shipment", "payment"]))
        histories.append((kind, uuid.uuid4(), draw(st.sampled_from(orders))))
    events = []
    for kind, guid, order in histories:
        for revision in range(1, draw(st.integers(1, 4)) + 1):
            state = draw(st.sampled_from(["posted", "posted", "unposted", "deleted"]))
            allocations = ()
            if kind == "payment" and draw(st.booleans()):
                split = draw(amounts)
                allocations = ((ORDER, split), (OTHER_ORDER, draw(amounts)))
            events.append(Document(
                guid=guid, kind=kind, revision=revision, state=state, amount=draw(amounts),
                order_guid=None if kind == "order" else order, allocations=allocations))
    return events


def final_documents(events):
    latest = {}
    for event in events:
        if event.guid not in latest or event.revision > latest[event.guid].revision:
            latest[event.guid] = event
    return list(latest.values())


def deal_state(registry, anchors):
    result = facts_of(registry.values(), anchors)
    return result, current_stage("proposal", result, lost=False), payment_status(result)


@settings(max_examples=300, deadline=None)
@given(events=document_histories(), data=st.data())
def test_any_order_and_repetition_of_events_ends_in_the_state_of_the_final_documents(events,
                                                                                        data):
    delivered = data.draw(st.permutations(events + data.draw(
        st.lists(st.sampled_from(events), max_size=len(events)))))
    registry: dict = {}
    for event in delivered:
        fold(registry, event)
    expected = {d.guid: d for d in final_documents(events)}
    assert registry == expected
    for anchors in ({ORDER}, {OTHER_ORDER}, {ORDER, OTHER_ORDER}):
        assert deal_state(registry, anchors) == deal_state(expected, anchors)


@settings(max_examples=200, deadline=None)
@given(events=document_histories())
def test_repeating_a_stale_or_seen_state_changes_nothing(events):
    registry: dict = {}
    for event in events:
        fold(registry, event)
    before = dict(registry)
    for event in events:
        assert fold(registry, event) is False
    assert registry == before


@settings(max_examples=200, deadline=None)
@given(events=document_histories())
def test_the_stage_is_monotonic_in_what_is_shipped_and_paid(events):
    """Posting one more shipment or payment never moves a deal down the ladder."""
    registry: dict = {}
    for event in events:
        fold(registry, event)
    ladder = {None: -1, **{s: i for i, s in enumerate(ERP_STAGES)}}
    _, before, _ = deal_state(registry, {ORDER})
    before_rank = ladder.get(before if before in ERP_STAGES else None)
    extra = Document(guid=uuid.uuid4(), kind="payment", revision=1, state="posted",
                     amount=D("1"), order_guid=ORDER)
    registry[extra.guid] = extra
    _, after, _ = deal_state(registry, {ORDER})
    assert ladder.get(after if after in ERP_STAGES else None) >= before_rank
