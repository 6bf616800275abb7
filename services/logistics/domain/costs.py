"""Freight cost of a trip and its split over the transport orders it carries.

The cost of a trip:

* own vehicle: ``per_km_rate`` × km + ``per_hour_rate`` × hours (the vehicle's rates: fuel, wear
  and the driver's time);
* hired vehicle, by its carrier's rate: ``per_trip`` — the rate; ``per_km`` — rate × km;
  ``per_tonne`` — rate × tonnes carried (the orders' weights).

Rounded to kopecks (half up). The split over the orders is by weight, in whole kopecks: each order
gets ``floor(cost × its weight / total weight)`` kopecks and the kopecks left over go to the
heaviest order (the first of equals in the given order), so the shares always add up to the cost
exactly. Orders of unknown or zero weight get nothing unless every order is weightless: then the
cost is split evenly the same way (remainder to the first).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

KOPECK = Decimal("0.01")


def trip_cost(*, ownership: str, km: Decimal, hours: Decimal, weight_kg: Decimal,
              per_km_rate: Decimal | None = None, per_hour_rate: Decimal | None = None,
              rate_kind: str | None = None, rate: Decimal | None = None) -> Decimal:
    """The trip's freight cost in roubles (two places)."""
    km, hours, weight_kg = Decimal(km or 0), Decimal(hours or 0), Decimal(weight_kg or 0)
    if ownership == "own":
        cost = Decimal(per_km_rate or 0) * km + Decimal(per_hour_rate or 0) * hours
    elif rate_kind == "per_trip":
        cost = Decimal(rate or 0)
    elif rate_kind == "per_km":
        cost = Decimal(rate or 0) * km
    elif rate_kind == "per_tonne":
        cost = Decimal(rate or 0) * weight_kg / 1000
    else:
        raise ValueError(f"unknown carrier rate {rate_kind!r}")
    return cost.quantize(KOPECK, rounding=ROUND_HALF_UP)


def allocate(cost: Decimal, weights: list[tuple[str, Decimal | None]]) -> dict[str, Decimal]:
    """``{order_id: share}`` of ``cost`` over ``weights`` [(order_id, weight_kg)], by weight, in
    kopecks, the remainder to the heaviest."""
    if not weights:
        return {}
    total_kop = int((Decimal(cost) / KOPECK).to_integral_value(rounding=ROUND_HALF_UP))
    basis = [(oid, Decimal(w) if w is not None and Decimal(w) > 0 else Decimal(0))
             for oid, w in weights]
    total_weight = sum(w for _, w in basis)
    if total_weight == 0:
        basis = [(oid, Decimal(1)) for oid, _ in basis]
        total_weight = Decimal(len(basis))
    shares = {oid: int(total_kop * w // total_weight) for oid, w in basis}
    remainder = total_kop - sum(shares.values())
    heaviest = max(basis, key=lambda item: item[1])[0]   # max() keeps the first of equals
    shares[heaviest] += remainder
    return {oid: (Decimal(kop) * KOPECK).quantize(KOPECK) for oid, kop in shares.items()}
