"""The status machine of stops (one transport order each) and of the trips carrying them.

A transport order is ``new`` until it is put on a trip (``planned``); on the trip each stop goes
``planned → loading → in_transit → delivered``, one step at a time, or ``cancelled`` from any
status before ``delivered`` (the order then returns to ``new`` for another trip unless the order
itself is cancelled). ``delivered`` and ``cancelled`` are final.

A trip's status follows its stops: ``cancelled`` when the dispatcher cancels it (every stop not
delivered is taken off); else ``delivered`` when every stop is delivered or taken off and at least
one was delivered; ``in_transit`` when any stop is in transit or delivered; ``loading`` when any
is loading; ``planned`` otherwise.
"""

from __future__ import annotations

from crm_platform.errors import Conflict

STOP_FLOW = ("planned", "loading", "in_transit", "delivered")
FINAL = ("delivered", "cancelled")
TITLES = {"new": "Ожидает планирования", "planned": "Запланирован", "loading": "Погрузка",
          "in_transit": "В пути", "delivered": "Доставлен", "cancelled": "Отменён"}


def next_status(current: str) -> str | None:
    """The one status a stop may move to next (None when final)."""
    if current in STOP_FLOW[:-1]:
        return STOP_FLOW[STOP_FLOW.index(current) + 1]
    return None


def check_stop_move(current: str, target: str) -> None:
    """Raise ``Conflict`` unless a stop in ``current`` may move to ``target``."""
    if target == "cancelled" and current not in FINAL:
        return
    if target == next_status(current):
        return
    allowed = [s for s in (next_status(current),) if s] + (
        ["cancelled"] if current not in FINAL else [])
    raise Conflict(f"Нельзя перевести остановку из «{TITLES.get(current, current)}» в "
                   f"«{TITLES.get(target, target)}»", code="invalid_status_move",
                   extra={"current": current, "target": target, "allowed": allowed})


def trip_status(stop_statuses: list[str], *, cancelled: bool = False) -> str:
    """The trip's status from its stops' (see the module docstring)."""
    if cancelled:
        return "cancelled"
    live = [s for s in stop_statuses if s != "cancelled"]
    if not live:
        return "cancelled"
    if all(s == "delivered" for s in live):
        return "delivered"
    if any(s in ("in_transit", "delivered") for s in live):
        return "in_transit"
    if any(s == "loading" for s in live):
        return "loading"
    return "planned"


def trip_move_targets(stop_statuses: dict[str, str], target: str) -> list[str]:
    """The stops a trip-wide move to ``target`` applies to: those whose next status it is (the
    driver presses "loading" once for the whole vehicle). Raises ``Conflict`` when none can."""
    movable = [sid for sid, status in stop_statuses.items() if next_status(status) == target]
    if not movable:
        raise Conflict(f"Ни одну остановку рейса нельзя перевести в «{TITLES.get(target, target)}»",
                       code="invalid_status_move", extra={"target": target})
    return movable
