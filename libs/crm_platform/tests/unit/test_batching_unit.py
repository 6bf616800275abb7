"""The pure parts of the batched event handler: what goes out when, and with which context."""

import pytest

from crm_platform.batching import (
    BatchEventHandler,
    BatchPlan,
    batch_queue_name,
    batch_settings,
    shared_context,
)
from crm_platform.observability import entrypoint_kind


def test_a_batch_goes_out_when_full():
    plan = BatchPlan(batch_size=3, max_wait_s=10.0)
    for n in range(5):
        plan.add(n, now=0.0)
    assert plan.next_batch(now=0.0) == [0, 1, 2]
    assert plan.in_flight == [0, 1, 2]


def test_a_partial_batch_waits_for_its_oldest_message_to_age():
    plan = BatchPlan(batch_size=10, max_wait_s=0.05)
    plan.add("a", now=1.00)
    plan.add("b", now=1.03)
    assert plan.next_batch(now=1.04) is None
    assert plan.due_in(now=1.04) == pytest.approx(0.01)
    assert plan.next_batch(now=1.05) == ["a", "b"]
    assert plan.due_in(now=1.05) is None


def test_only_one_batch_is_in_flight():
    plan = BatchPlan(batch_size=2, max_wait_s=0.0)
    for n in range(4):
        plan.add(n, now=0.0)
    assert plan.next_batch(now=1.0) == [0, 1]
    assert plan.full
    assert plan.next_batch(now=1.0) is None
    assert plan.finished() == [0, 1]
    assert plan.next_batch(now=1.0) == [2, 3]


def test_a_failed_batch_is_rerun_one_by_one_before_anything_newer():
    plan = BatchPlan(batch_size=3, max_wait_s=0.0)
    for n in range(6):
        plan.add(n, now=0.0)
    assert plan.next_batch(now=0.0) == [0, 1, 2]
    plan.finished(split=True)
    runs = []
    while (batch := plan.next_batch(now=0.0)) is not None:
        runs.append(batch)
        plan.finished()
    assert runs == [[0], [1], [2], [3, 4, 5]]


def test_a_failed_single_is_not_split_again():
    plan = BatchPlan(batch_size=3, max_wait_s=0.0)
    plan.add("poison", now=0.0)
    assert plan.next_batch(now=0.0) == ["poison"]
    plan.finished(split=True)
    assert plan.next_batch(now=0.0) is None


def test_a_lost_connection_forgets_what_waits_but_not_the_running_batch():
    plan = BatchPlan(batch_size=2, max_wait_s=0.0)
    for n in range(5):
        plan.add(n, now=0.0)
    plan.next_batch(now=0.0)
    plan.forget_waiting()
    assert plan.in_flight == [0, 1]
    assert plan.next_batch(now=0.0) is None
    plan.finished()
    assert plan.next_batch(now=0.0) is None


def test_the_batch_context_keeps_only_what_every_message_shares():
    chain = ["erp_bridge.import.1"]
    assert shared_context([
        {"call_id_stack": chain, "x-crm-attempts": 1, "a": 1},
        {"call_id_stack": chain, "a": 2},
    ]) == {"call_id_stack": chain}
    assert shared_context([{"call_id_stack": chain}]) == {"call_id_stack": chain}
    assert shared_context([]) == {}


def test_settings_come_from_arguments_then_config_then_defaults():
    assert batch_settings({}, None, None) == (200, 0.05)
    assert batch_settings({"EVENT_BATCH_SIZE": "500", "EVENT_BATCH_MAX_WAIT_MS": 20},
                          None, None) == (500, 0.02)
    assert batch_settings({"EVENT_BATCH_SIZE": 500}, 50, 0) == (50, 0.0)
    assert batch_settings({}, 0, None)[0] == 1


def test_each_handler_has_its_own_queue():
    assert batch_queue_name("erp_bridge", "deals", "handle_erp_documents") == (
        "evt-erp_bridge-batch--deals.handle_erp_documents")


def test_the_handler_takes_one_type_or_several_and_counts_as_an_event_entrypoint():
    assert BatchEventHandler("clients", "client_created").event_types == ["client_created"]
    handler = BatchEventHandler("erp_bridge", ["erp_invoice_posted", "erp_shipment_posted"],
                                batch_size=50, max_wait_ms=10)
    assert handler.event_types == ["erp_invoice_posted", "erp_shipment_posted"]
    assert entrypoint_kind(handler) == "event"
    with pytest.raises(ValueError):
        BatchEventHandler("clients", [])
