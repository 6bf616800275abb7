"""ABC analysis of clients by revenue: pure computation on exact decimals.

Clients are ranked by revenue, largest first. A client is in class **A** while the revenue of the
clients ranked above it is below 80 % of the total (so the client that crosses 80 % is still A, and
A covers at least 80 %), in **B** while it is below 95 %, and in **C** otherwise. Clients with no
(or negative) revenue are always C and do not count in the total. Clients with equal revenue
share one class, the one the first of them gets: the order among equals is arbitrary, their class
must not be.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

A_SHARE = Decimal("0.80")
B_SHARE = Decimal("0.95")
CLASSES = ("A", "B", "C")
SHARE_PLACES = Decimal("0.0001")
ZERO = Decimal("0")


@dataclass(frozen=True)
class AbcItem:
    key: Hashable
    revenue: Decimal
    share: Decimal             # of the total, 4 places
    cumulative_share: Decimal  # of the total including this client, 4 places
    abc_class: str


@dataclass(frozen=True)
class ClassTotal:
    clients: int
    revenue: Decimal
    share: Decimal


@dataclass(frozen=True)
class AbcResult:
    total: Decimal
    items: list[AbcItem] = field(default_factory=list)    # ranked, largest first
    classes: dict[str, ClassTotal] = field(default_factory=dict)


def _share(part: Decimal, total: Decimal) -> Decimal:
    if total <= 0:
        return ZERO.quantize(SHARE_PLACES)
    return (part / total).quantize(SHARE_PLACES)


def classify(revenues: Iterable[tuple[Hashable, Decimal]], *, a_share: Decimal = A_SHARE,
             b_share: Decimal = B_SHARE) -> AbcResult:
    """Classify ``(key, revenue)`` pairs; ties are ranked by ``str(key)`` for a stable order."""
    if not (ZERO < a_share <= b_share <= 1):
        raise ValueError("need 0 < a_share <= b_share <= 1")
    pairs = [(key, Decimal(revenue)) for key, revenue in revenues]
    pairs.sort(key=lambda pair: (-pair[1], str(pair[0])))
    total = sum((r for _, r in pairs if r > 0), ZERO)

    items: list[AbcItem] = []
    cumulative = ZERO
    group_revenue: Decimal | None = None
    group_class = "C"
    for key, revenue in pairs:
        if revenue <= 0:
            abc_class = "C"
        else:
            if revenue != group_revenue:  # a new tie group: its class from what ranks above
                group_revenue = revenue
                if cumulative < total * a_share:
                    group_class = "A"
                elif cumulative < total * b_share:
                    group_class = "B"
                else:
                    group_class = "C"
            abc_class = group_class
            cumulative += revenue
        items.append(AbcItem(key, revenue, _share(max(revenue, ZERO), total),
                             _share(cumulative, total), abc_class))

    classes = {}
    for name in CLASSES:
        members = [item for item in items if item.abc_class == name]
        revenue = sum((max(i.revenue, ZERO) for i in members), ZERO)
        classes[name] = ClassTotal(len(members), revenue, _share(revenue, total))
    return AbcResult(total, items, classes)
