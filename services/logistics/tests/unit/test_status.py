import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import Conflict
from services.logistics.domain.status import (
    STOP_FLOW,
    check_stop_move,
    next_status,
    trip_move_targets,
    trip_status,
)


def test_stop_goes_one_step_at_a_time():
    check_stop_move("planned", "loading")
    check_stop_move("loading", "in_transit")
    check_stop_move("in_transit", "delivered")
    for current, target in (("planned", "in_transit"), ("planned", "delivered"),
                            ("in_transit", "loading"), ("delivered", "in_transit")):
        with pytest.raises(Conflict) as err:
            check_stop_move(current, target)
        assert err.value.code == "invalid_status_move"


def test_cancel_before_delivery_only():
    for current in ("planned", "loading", "in_transit"):
        check_stop_move(current, "cancelled")
    for current in ("delivered", "cancelled"):
        with pytest.raises(Conflict):
            check_stop_move(current, "cancelled")


@pytest.mark.parametrize("stops, expected", [
    (["planned", "planned"], "planned"),
    (["loading", "planned"], "loading"),
    (["in_transit", "loading"], "in_transit"),
    (["delivered", "in_transit"], "in_transit"),
    (["delivered", "delivered"], "delivered"),
    (["delivered", "cancelled"], "delivered"),
    (["cancelled", "cancelled"], "cancelled"),
])
def test_trip_status_follows_stops(stops, expected):
    assert trip_status(stops) == expected


def test_cancelled_trip_is_cancelled():
    assert trip_status(["delivered", "planned"], cancelled=True) == "cancelled"


def test_trip_move_applies_to_stops_whose_next_status_it_is():
    stops = {"a": "loading", "b": "planned", "c": "loading"}
    assert sorted(trip_move_targets(stops, "in_transit")) == ["a", "c"]
    with pytest.raises(Conflict):
        trip_move_targets(stops, "delivered")


@given(st.lists(st.sampled_from(["loading", "in_transit", "delivered", "cancelled"]),
                max_size=12))
def test_any_walk_of_moves_ends_in_a_known_status(targets):
    status = "planned"
    for target in targets:
        try:
            check_stop_move(status, target)
        except Conflict:
            continue
        assert target == "cancelled" or STOP_FLOW.index(target) == STOP_FLOW.index(status) + 1
        status = target
    assert next_status(status) is None or status in STOP_FLOW
