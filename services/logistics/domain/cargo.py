"""What a shipment weighs and how long its longest piece is, from the ERP document's lines.

The 1C shipment's lines carry quantity, unit (OKEI code) and, when 1C fills it, ``weight_kg``.
The rule, line by line:

1. the line's own ``weight_kg`` when 1C sent it;
2. else, when the unit is tonnes (OKEI ``168``), quantity × 1000 kg; kilograms (``166``):
   quantity;
3. else the product's reference data kept by logistics (``product_specs``: kg per unit and the
   piece length, set by the dispatcher for each product GUID): quantity × kg per unit;
4. else the weight is unknown: the order gets ``weight_known = False`` and the planner leaves it
   out until the dispatcher enters the weight by hand.

The length is the longest ``length_m`` among the lines' products (sheets and panels are cut to
length, so the reference data holds the longest piece usually made); unknown when no line's
product has one. The volume is the sum of quantity × m³ per unit where known.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

OKEI_TONNE = "168"
OKEI_KG = "166"
GRAM = Decimal("0.001")


@dataclass(frozen=True)
class ProductSpec:
    kg_per_unit: Decimal | None = None
    length_m: Decimal | None = None
    m3_per_unit: Decimal | None = None


@dataclass(frozen=True)
class Cargo:
    weight_kg: Decimal | None        # None: at least one line's weight is unknown
    max_length_m: Decimal | None
    volume_m3: Decimal | None
    unknown_lines: tuple[str, ...]   # names of lines whose weight could not be derived


def _line_weight(line: dict, spec: ProductSpec | None) -> Decimal | None:
    if line.get("weight_kg") is not None:
        return Decimal(str(line["weight_kg"]))
    quantity = Decimal(str(line.get("quantity") or 0))
    unit = (line.get("unit_code") or "").strip()
    if unit == OKEI_TONNE:
        return quantity * 1000
    if unit == OKEI_KG:
        return quantity
    if spec is not None and spec.kg_per_unit is not None:
        return quantity * spec.kg_per_unit
    return None


def cargo_of(lines: list[dict], specs: dict) -> Cargo:
    """The cargo of a document's ``lines`` with ``specs`` (product GUID as str -> ProductSpec)."""
    weight = Decimal(0)
    unknown: list[str] = []
    lengths: list[Decimal] = []
    volume = Decimal(0)
    volume_known = False
    for line in lines:
        guid = line.get("product_guid")
        spec = specs.get(str(guid)) if guid else None
        line_weight = _line_weight(line, spec)
        if line_weight is None:
            unknown.append(line.get("product_name") or str(guid or "?"))
        else:
            weight += line_weight
        if spec is not None and spec.length_m is not None:
            lengths.append(spec.length_m)
        if spec is not None and spec.m3_per_unit is not None:
            volume += Decimal(str(line.get("quantity") or 0)) * spec.m3_per_unit
            volume_known = True
    return Cargo(
        weight_kg=None if unknown or not lines else weight.quantize(GRAM),
        max_length_m=max(lengths) if lengths else None,
        volume_m3=volume.quantize(GRAM) if volume_known else None,
        unknown_lines=tuple(unknown))
