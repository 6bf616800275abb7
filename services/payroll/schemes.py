"""Pay schemes as data: a version of a position's scheme is a JSON document checked by these
marshmallow schemas (so a new scheme needs no code), turned into ``domain.pay.Scheme``.

    {"position": "manager", "valid_from": "2026-11-01", "name": "Менеджер 2026",
     "fixed": "40000.00",
     "percentages": [{"kpi": "payments", "rate": "0.5", "cap": "30000.00"}],
     "weights": [{"kpi": "sales", "weight": "0.7"}, {"kpi": "payments", "weight": "0.3",
                  "cap_pct": "150"}],
     "bonus": {"base_kpi": "sales", "mode": "whole",
               "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"}],
               "cap": "100000.00"},
     "total_cap": "150000.00", "what_if_kpi": "sales"}
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .domain.pay import KPIS, MONEY_KPIS, Bonus, PercentRule, Scheme, Tier, Weight

_money = {"places": 2, "as_string": True, "allow_nan": False}
_rate = {"as_string": True, "allow_nan": False, "validate": validate.Range(min=0, max=100)}


def _positive_money(**kwargs):
    return fields.Decimal(validate=validate.Range(min=0), **_money, **kwargs)


class PercentRuleSchema(Schema):
    kpi = fields.String(required=True, validate=validate.OneOf(MONEY_KPIS))
    rate = fields.Decimal(required=True, **_rate)
    cap = _positive_money(allow_none=True, load_default=None)


class TierSchema(Schema):
    from_pct = fields.Decimal(required=True, as_string=True, allow_nan=False,
                              validate=validate.Range(min=0, max=1000))
    rate = fields.Decimal(required=True, **_rate)


class WeightSchema(Schema):
    kpi = fields.String(required=True, validate=validate.OneOf(KPIS))
    weight = fields.Decimal(required=True, as_string=True, allow_nan=False,
                            validate=validate.Range(min=0, max=100, min_inclusive=False))
    cap_pct = fields.Decimal(allow_none=True, load_default=None, as_string=True,
                             allow_nan=False, validate=validate.Range(min=0, max=1000))


class BonusSchema(Schema):
    tiers = fields.List(fields.Nested(TierSchema), required=True,
                        validate=validate.Length(min=1, max=10))
    base_kpi = fields.String(allow_none=True, load_default="sales",
                             validate=validate.OneOf(MONEY_KPIS))
    base_amount = _positive_money(allow_none=True, load_default=None)
    mode = fields.String(load_default="whole", validate=validate.OneOf(["whole", "marginal"]))
    cap = _positive_money(allow_none=True, load_default=None)

    @validates_schema
    def _tiers_distinct(self, data, **kwargs):
        starts = [t["from_pct"] for t in data.get("tiers") or []]
        if len(starts) != len(set(starts)):
            raise ValidationError("пороги ступеней повторяются", "tiers")


def _first_day(value) -> None:
    if value.day != 1:
        raise ValidationError("схема действует с первого числа месяца")


class SchemeSchema(Schema):
    """One version of a position's pay scheme."""

    id = fields.Integer(dump_only=True)
    position = fields.String(required=True, validate=validate.Length(min=1, max=50))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    valid_from = fields.Date(required=True, validate=_first_day, metadata={
        "description": "the first month it applies to (its first day)"})
    version = fields.Integer(dump_only=True)
    fixed = _positive_money(load_default=Decimal("0.00"))
    percentages = fields.List(fields.Nested(PercentRuleSchema), load_default=list,
                              validate=validate.Length(max=10))
    weights = fields.List(fields.Nested(WeightSchema), load_default=list,
                          validate=validate.Length(max=len(KPIS)))
    bonus = fields.Nested(BonusSchema, allow_none=True, load_default=None)
    total_cap = _positive_money(allow_none=True, load_default=None)
    what_if_kpi = fields.String(load_default="sales", validate=validate.OneOf(KPIS))
    created_at = fields.AwareDateTime(dump_only=True)
    created_by = fields.String(dump_only=True, allow_none=True)

    @validates_schema
    def _checks(self, data, **kwargs):
        kpis = [w["kpi"] for w in data.get("weights") or []]
        if len(kpis) != len(set(kpis)):
            raise ValidationError("показатель указан дважды", "weights")


DEFINITION_FIELDS = ("fixed", "percentages", "weights", "bonus", "total_cap", "what_if_kpi")


def scheme_from_definition(definition: dict) -> Scheme:
    """The domain scheme from a stored (dumped) definition."""
    data = SchemeSchema(only=DEFINITION_FIELDS).load(definition)
    bonus = data.get("bonus")
    return Scheme(
        fixed=data["fixed"],
        percentages=tuple(PercentRule(p["kpi"], p["rate"], p.get("cap"))
                          for p in data["percentages"]),
        weights=tuple(Weight(w["kpi"], w["weight"], w.get("cap_pct")) for w in data["weights"]),
        bonus=None if bonus is None else Bonus(
            tiers=tuple(Tier(t["from_pct"], t["rate"]) for t in bonus["tiers"]),
            base_kpi=None if bonus.get("base_amount") is not None else bonus.get("base_kpi"),
            base_amount=bonus.get("base_amount"), mode=bonus["mode"], cap=bonus.get("cap")),
        total_cap=data.get("total_cap"), what_if_kpi=data["what_if_kpi"])


def definition_of(data: dict) -> dict:
    """The JSON kept in the database of a loaded scheme (decimals as strings)."""
    return SchemeSchema(only=DEFINITION_FIELDS).dump(data)
