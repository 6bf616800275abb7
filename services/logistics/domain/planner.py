"""The greedy trip planner: which transport orders go together, on which vehicle.

Input: the orders waiting for a trip (region, delivery window, weight, longest piece) and the
vehicles free that day (payload, body length, type). Output: proposed trips (a vehicle and its
orders in stop order) and the orders it could not place, each with the reason.

How it decides (a first-fit-decreasing bin packing per region, greedy, not optimal):

1. Orders of unknown weight, or heavier / longer than every available vehicle, are set aside with
   the reason. Orders that need a crane (``needs_crane``) only go on ``crane`` vehicles.
2. Orders are grouped by region (a vehicle does not cross regions in one trip).
3. Within a region, orders are taken by the end of their window (the most urgent first), then by
   weight, heaviest first.
4. Each order joins the first open group of its region that it fits: the group's common window
   (the intersection of its orders' windows) still overlaps the order's window, the total weight
   stays within the payload and the longest piece within the body length of the largest vehicle
   still free for it, and a crane order only joins a group that may take a crane vehicle. Else it
   opens a new group.
5. Groups get vehicles heaviest group first: the smallest free vehicle (by payload, then body
   length) that carries the group's weight and longest piece (a crane vehicle if any order needs
   one); a group no free vehicle can carry is split off into "unplaced" with the reason.
6. Stops within a trip follow the window end, then the order number.

Each vehicle is proposed at most once. A dispatcher reviews the proposal and creates the trips
from it (or changes it); nothing is booked by proposing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class OrderToPlan:
    id: str
    number: str
    region: str | None
    window_start: datetime
    window_end: datetime
    weight_kg: Decimal | None
    max_length_m: Decimal | None = None
    needs_crane: bool = False


@dataclass(frozen=True)
class Vehicle:
    id: str
    plate: str
    kind: str
    payload_kg: Decimal
    body_length_m: Decimal


@dataclass
class Group:
    region: str | None
    orders: list[OrderToPlan] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    weight: Decimal = Decimal(0)
    length: Decimal = Decimal(0)
    needs_crane: bool = False

    def add(self, order: OrderToPlan) -> None:
        self.orders.append(order)
        self.weight += order.weight_kg or Decimal(0)
        self.length = max(self.length, order.max_length_m or Decimal(0))
        self.needs_crane = self.needs_crane or order.needs_crane


@dataclass(frozen=True)
class ProposedTrip:
    vehicle: Vehicle
    orders: tuple[OrderToPlan, ...]
    weight_kg: Decimal
    max_length_m: Decimal
    window_start: datetime
    window_end: datetime
    region: str | None


@dataclass(frozen=True)
class Unplaced:
    order: OrderToPlan
    reason: str


@dataclass(frozen=True)
class Proposal:
    trips: tuple[ProposedTrip, ...]
    unplaced: tuple[Unplaced, ...]


def _fits(vehicle: Vehicle, weight: Decimal, length: Decimal, crane: bool) -> bool:
    return (vehicle.payload_kg >= weight and vehicle.body_length_m >= length
            and (vehicle.kind == "crane" or not crane))


def _overlap(start_a, end_a, start_b, end_b) -> tuple[datetime, datetime] | None:
    start, end = max(start_a, start_b), min(end_a, end_b)
    return (start, end) if start <= end else None


def _frontier(vehicles: list[Vehicle]) -> list[Vehicle]:
    """The vehicles no other one beats on both payload and body length: whether *some* vehicle
    carries a load is decided by these few instead of the whole fleet."""
    best: list[Vehicle] = []
    for v in sorted(vehicles, key=lambda v: (-v.payload_kg, -v.body_length_m)):
        if not best or v.body_length_m > best[-1].body_length_m:
            best.append(v)
    return best


def propose(orders: list[OrderToPlan], vehicles: list[Vehicle]) -> Proposal:
    """A proposal for ``orders`` on ``vehicles`` (see the module docstring)."""
    any_vehicle = _frontier(vehicles)
    crane_vehicle = _frontier([v for v in vehicles if v.kind == "crane"])

    def carriable(weight: Decimal, length: Decimal, crane: bool) -> bool:
        return any(_fits(v, weight, length, crane)
                   for v in (crane_vehicle if crane else any_vehicle))

    unplaced: list[Unplaced] = []
    placeable: list[OrderToPlan] = []
    for order in orders:
        length = order.max_length_m or Decimal(0)
        if order.weight_kg is None:
            unplaced.append(Unplaced(order, "вес груза неизвестен: укажите его в заявке"))
        elif not carriable(order.weight_kg, length, order.needs_crane):
            unplaced.append(Unplaced(order, "нет свободной машины такой грузоподъёмности, длины "
                                            "кузова" + (" и с краном" if order.needs_crane
                                                        else "")))
        else:
            placeable.append(order)

    groups: list[Group] = []
    by_region: dict[str | None, list[Group]] = {}
    placeable.sort(key=lambda o: (o.region or "", o.window_end, -(o.weight_kg or 0), o.number))
    for order in placeable:
        length = order.max_length_m or Decimal(0)
        target = None
        for group in by_region.get(order.region, ()):
            window = _overlap(group.start, group.end, order.window_start, order.window_end)
            if window is None:
                continue
            crane = group.needs_crane or order.needs_crane
            if carriable(group.weight + order.weight_kg, max(group.length, length), crane):
                target = group
                target.start, target.end = window
                break
        if target is None:
            target = Group(order.region, start=order.window_start, end=order.window_end)
            groups.append(target)
            by_region.setdefault(order.region, []).append(target)
        target.add(order)

    free = sorted(vehicles, key=lambda v: (v.payload_kg, v.body_length_m, v.plate))
    trips: list[ProposedTrip] = []
    for group in sorted(groups, key=lambda g: (-g.weight, g.end)):
        vehicle = next((v for v in free if _fits(v, group.weight, group.length,
                                                 group.needs_crane)), None)
        if vehicle is None:
            unplaced.extend(Unplaced(o, "все подходящие машины уже заняты другими рейсами "
                                        "предложения") for o in group.orders)
            continue
        free.remove(vehicle)
        stops = tuple(sorted(group.orders, key=lambda o: (o.window_end, o.number)))
        trips.append(ProposedTrip(vehicle, stops, group.weight, group.length, group.start,
                                  group.end, group.region))
    trips.sort(key=lambda t: (t.region or "", t.window_start, t.vehicle.plate))
    return Proposal(tuple(trips), tuple(unplaced))
