from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.logistics.domain.planner import OrderToPlan, Vehicle, propose

D = Decimal
DAY = datetime(2026, 12, 1, 6, tzinfo=UTC)


def order(n, region="RU-SVE", weight="1000", length="6", start=0, hours=10, crane=False):
    return OrderToPlan(id=f"o{n}", number=f"T-{n}", region=region,
                       window_start=DAY + timedelta(hours=start),
                       window_end=DAY + timedelta(hours=start + hours),
                       weight_kg=None if weight is None else D(weight),
                       max_length_m=D(length), needs_crane=crane)


def vehicle(plate, payload_t, length, kind="curtain_sider"):
    return Vehicle(id=plate, plate=plate, kind=kind, payload_kg=D(payload_t) * 1000,
                   body_length_m=D(length))


def ids(trip):
    return [o.id for o in trip.orders]


def test_same_region_and_window_share_a_vehicle_within_payload():
    proposal = propose([order(1, weight="8000"), order(2, weight="7000"),
                        order(3, weight="6000")],
                       [vehicle("А001АА66", 20, "13.6"), vehicle("В002ВВ66", 10, "13.6")])
    # 8 + 7 fit 20 t together with nothing else over 20: 8 + 7 = 15, + 6 = 21 > 20
    assert [sorted(ids(t)) for t in proposal.trips] == [["o1", "o2"], ["o3"]]
    big, small = proposal.trips
    assert big.vehicle.plate == "А001АА66" and small.vehicle.plate == "В002ВВ66"
    assert big.weight_kg == D("15000") and not proposal.unplaced


def test_regions_and_disjoint_windows_are_not_mixed():
    proposal = propose([order(1), order(2, region="RU-TA"), order(3, start=24, hours=4)],
                       [vehicle(p, 20, "13.6") for p in ("А001АА66", "В002ВВ66", "Е003ЕЕ66")])
    assert sorted(sorted(ids(t)) for t in proposal.trips) == [["o1"], ["o2"], ["o3"]]
    window = next(t for t in proposal.trips if ids(t) == ["o1"])
    assert window.window_end == DAY + timedelta(hours=10)


def test_overlapping_windows_narrow_the_common_window():
    proposal = propose([order(1, start=0, hours=10), order(2, start=4, hours=10)],
                       [vehicle("А001АА66", 20, "13.6")])
    (trip,) = proposal.trips
    assert trip.window_start == DAY + timedelta(hours=4)
    assert trip.window_end == DAY + timedelta(hours=10)
    assert ids(trip) == ["o1", "o2"]       # stops by window end


def test_body_length_and_crane_limit_the_vehicle():
    proposal = propose([order(1, length="12"), order(2, crane=True)],
                       [vehicle("А001АА66", 20, "7", kind="crane"),
                        vehicle("В002ВВ66", 5, "13.6")])
    trips = {t.vehicle.plate: ids(t) for t in proposal.trips}
    assert trips == {"В002ВВ66": ["o1"], "А001АА66": ["o2"]}


def test_what_cannot_be_placed_is_said_why():
    proposal = propose([order(1, weight=None), order(2, weight="30000"), order(3),
                        order(4, region="RU-TA")],
                       [vehicle("А001АА66", 20, "13.6")])
    reasons = {u.order.id: u.reason for u in proposal.unplaced}
    assert "вес" in reasons["o1"] and "грузоподъёмности" in reasons["o2"]
    assert len(proposal.trips) == 1 and len(reasons) == 3   # one of o3/o4 had no vehicle left
    assert "заняты" in (reasons.get("o3") or reasons.get("o4"))
