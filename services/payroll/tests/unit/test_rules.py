"""Facts, months, attribution, the document workflow's role rules, and schemes as data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from services.payroll.domain.facts import (
    DocumentState,
    OwnerPeriod,
    apply_revision,
    call_counts,
    erp_facts,
    meeting_counts,
    new_client_counts,
    owner_at,
)
from services.payroll.domain.months import month_of, next_month, previous_month
from services.payroll.domain.workflow import (
    Actor,
    DocumentRef,
    can_see,
    check_approve,
    check_confirm,
    check_export,
    check_recompute,
    check_return,
)
from services.payroll.schemes import SchemeSchema, definition_of, scheme_from_definition


def test_months_are_moscow_months():
    assert month_of(datetime(2026, 10, 31, 20, 59, tzinfo=UTC)) == date(2026, 10, 1)
    assert month_of(datetime(2026, 10, 31, 21, 0, tzinfo=UTC)) == date(2026, 11, 1)  # 00:00 MSK
    assert next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert previous_month(date(2026, 1, 1)) == date(2025, 12, 1)
    with pytest.raises(ValueError):
        month_of(datetime(2026, 10, 1))


def test_a_document_keeps_its_newest_revision_and_counts_only_while_posted():
    state = apply_revision(None, "posted", 1)
    assert state == DocumentState(1, True)
    state = apply_revision(state, "unposted", 2)
    assert state == DocumentState(2, False)
    assert apply_revision(state, "changed", 1) is None     # late and older: nothing
    assert apply_revision(state, "unposted", 2) is None    # repeated: nothing
    state = apply_revision(state, "posted", 3)             # posted again: counts again
    assert state.counts
    assert apply_revision(state, "deleted", 4) == DocumentState(4, False)


def test_realisations_give_sales_and_tonnes_payments_give_payments():
    shipment = {"amount": "120000.50", "lines": [
        {"quantity": "10", "amount": "60000", "weight_kg": "1250.5"},
        {"quantity": "1", "amount": "60000.50", "weight_kg": None}]}
    assert erp_facts("shipment", shipment) == {"sales": D("120000.50"),
                                               "shipments": D("1.251")}
    assert erp_facts("payment", {"amount": "5000"}) == {"payments": D("5000")}


def test_which_calls_meetings_and_clients_count():
    call = {"answered": True, "client_id": "c", "user_id": "u", "talk_seconds": 30}
    assert call_counts(call)
    assert not call_counts({**call, "answered": False})
    assert not call_counts({**call, "client_id": None})
    assert not call_counts(call, min_talk_seconds=60)
    meeting = {"kind": "meeting", "status": "done", "assignee_id": "u"}
    assert meeting_counts(meeting)
    assert not meeting_counts({**meeting, "status": "cancelled"})
    assert not meeting_counts({**meeting, "kind": "call"})
    assert new_client_counts({"owner_id": "u", "source": "manual"})
    assert not new_client_counts({"owner_id": "u", "source": "erp"})
    assert not new_client_counts({"owner_id": None, "source": "manual"})


def test_the_owner_at_the_document_date_gets_the_fact():
    t = lambda d: datetime(2026, 10, d, tzinfo=UTC)  # noqa: E731
    periods = [OwnerPeriod(t(10), "ivanov", "ural"), OwnerPeriod(t(20), "petrov", "ural")]
    assert owner_at(periods, t(5)).owner_id == "ivanov"    # before the first known: the first
    assert owner_at(periods, t(15)).owner_id == "ivanov"   # hand-over does not move the past
    assert owner_at(periods, t(20)).owner_id == "petrov"
    assert owner_at([], t(1)) is None


MANAGER = Actor("m1", "manager", "ural")
OTHER = Actor("m2", "manager", "ural")
HEAD = Actor("h1", "sales_head", "ural")
OTHER_HEAD = Actor("h2", "sales_head", "volga")
DIRECTOR = Actor("d", "director", None)


def doc(state="draft", stale=False):
    return DocumentRef("m1", "ural", state, stale)


def test_the_manager_confirms_only_their_own_draft():
    check_confirm(MANAGER, doc())
    for actor in (OTHER, HEAD, DIRECTOR):
        with pytest.raises(Forbidden):
            check_confirm(actor, doc())
    with pytest.raises(Conflict):
        check_confirm(MANAGER, doc("approved"))


def test_only_the_head_of_the_department_approves_a_confirmed_fresh_document():
    check_approve(HEAD, doc("confirmed"))
    for actor in (MANAGER, OTHER_HEAD, DIRECTOR):
        with pytest.raises(Forbidden):
            check_approve(actor, doc("confirmed"))
    with pytest.raises(Conflict):
        check_approve(HEAD, doc("draft"))
    with pytest.raises(Conflict) as stale:
        check_approve(HEAD, doc("confirmed", stale=True))
    assert stale.value.code == "stale_document"


def test_frozen_documents_are_not_recomputed_and_returns_need_a_comment():
    check_recompute(MANAGER, doc())
    check_recompute(DIRECTOR, doc())
    for state in ("confirmed", "approved", "exported"):
        with pytest.raises(Conflict):
            check_recompute(HEAD, doc(state))
    with pytest.raises(Forbidden):
        check_recompute(OTHER, doc())
    check_return(HEAD, doc("confirmed"), "пересчитайте оплаты")
    with pytest.raises(ValidationFailed):
        check_return(HEAD, doc("confirmed"), "  ")
    with pytest.raises(Conflict):
        check_return(HEAD, doc("approved"), "поздно")
    check_export(DIRECTOR, doc("approved"))
    with pytest.raises(Forbidden):
        check_export(MANAGER, doc("approved"))
    assert can_see(HEAD, doc()) and not can_see(OTHER_HEAD, doc()) and not can_see(OTHER, doc())


def test_a_scheme_is_data_checked_by_its_schema():
    data = {"position": "manager", "valid_from": "2026-11-01", "fixed": "40000.00",
            "percentages": [{"kpi": "payments", "rate": "0.5", "cap": "30000.00"}],
            "weights": [{"kpi": "sales", "weight": "0.7"},
                        {"kpi": "payments", "weight": "0.3", "cap_pct": "150"}],
            "bonus": {"mode": "marginal", "tiers": [{"from_pct": "80", "rate": "1"},
                                                    {"from_pct": "100", "rate": "2"}]}}
    loaded = SchemeSchema().load(data)
    scheme = scheme_from_definition(definition_of(loaded))
    assert scheme.fixed == D("40000.00") and scheme.bonus.mode == "marginal"
    assert scheme.weights[1].cap_pct == D("150")
    assert scheme.percentages[0].cap == D("30000.00")
    with pytest.raises(Exception) as bad:
        SchemeSchema().load({**data, "valid_from": "2026-11-15",
                             "percentages": [{"kpi": "calls", "rate": "120"}]})
    messages = bad.value.messages
    assert "valid_from" in messages or "percentages" in messages
    assert set(SchemeSchema().validate({**data, "percentages": [
        {"kpi": "calls", "rate": "120"}]})["percentages"][0]) == {"kpi", "rate"}
