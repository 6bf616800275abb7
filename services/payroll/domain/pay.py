"""Pay formulas: what a manager earns for a month from a pay scheme, the plans and the facts.

Money rules
-----------
* Everything is ``Decimal``; no float ever enters.
* Each line is computed exactly and then rounded **once, to kopecks, ROUND_HALF_UP**
  (0.005 -> 0.01); a line's cap applies to the rounded amount.
* The total is the **sum of the rounded lines** (never the rounded sum of exact amounts), so the
  lines a person reads always add up to the total they are paid.
* Fulfilment (fact / plan x 100) is kept exact for every decision (tiers, weights); documents show
  it rounded to 0.01 %.

A scheme (one version for one position, see ``Scheme``)
-------------------------------------------------------
* ``fixed``: the fixed part (line ``fixed``).
* ``percentages``: ``rate`` % of a KPI's fact, each with an optional ``cap`` (line ``percent``).
  Money KPIs only make sense here: ``sales`` (realisations, ₽), ``payments`` (received, ₽).
* ``weights``: per-KPI weights of the **weighted fulfilment**
  ``F = sum(w_k * min(f_k, cap_k)) / sum(w_k)`` over the KPIs that have a plan (a KPI without a
  plan drops out with its weight; none left: no fulfilment, no bonus). Default: sales only.
* ``bonus``: tiers on ``F`` — ``[{"from": 80, "rate": 1}, {"from": 100, "rate": 2}]`` means below
  80 % nothing, from 80 % 1 %, from 100 % 2 % — of a base: a KPI's fact (``base_kpi``) or a fixed
  target amount (``base_amount``), with an optional ``cap`` (line ``bonus``). Two modes:

  - ``whole`` (the default): the rate of the highest tier reached applies to the **whole** base.
    Plan 1 000 000, fact 1 100 000 (F = 110 %), tiers 80 %: 1 %, 100 %: 2 % ->
    1 100 000 x 2 % = **22 000.00**; at F = 99.99 % the rate is 1 %. Simple to explain, with a
    step at each threshold.
  - ``marginal``: the base is spread evenly over the fulfilment points reached (base / F per
    point) and the points inside each band earn that band's rate, like tax brackets. Same case:
    10 000 per point; 80–100 % is 20 points x 10 000 x 1 % = 2 000, 100–110 % is 10 points x
    10 000 x 2 % = 2 000 -> **4 000.00**; points below 80 % earn nothing. No steps.

* ``total_cap``: the variable part (every line but ``fixed`` and corrections) is capped; the
  excess comes off as a ``cap`` line with a negative amount, so the lines still add up.

Corrections
-----------
An approved month is frozen. When its facts change later, the month is recomputed with *its own*
scheme version and plans and today's facts; the difference from what was approved (less any
correction already paid for it) is a ``correction`` line in the next open month (``correction``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

KPIS = ("sales", "shipments", "payments", "new_clients", "calls", "meetings")
KPI_TITLES = {
    "sales": "Продажи (реализации), ₽",
    "shipments": "Отгрузки, т",
    "payments": "Поступления оплат, ₽",
    "new_clients": "Новые клиенты",
    "calls": "Звонки",
    "meetings": "Встречи",
}
MONEY_KPIS = ("sales", "payments")
KOPECK = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def money(value: Decimal) -> Decimal:
    """Kopecks, half up: the one rounding of every line."""
    return Decimal(value).quantize(KOPECK, rounding=ROUND_HALF_UP)


def show(value: Decimal | None) -> str:
    """A number for a formula text: no exponent, no trailing zeros beyond kopecks."""
    if value is None:
        return "—"
    value = Decimal(value)
    text = f"{value:,.2f}" if value != value.to_integral_value() else f"{value:,.0f}"
    return text.replace(",", " ")


def pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{money(value)} %"


# -- the scheme --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PercentRule:
    kpi: str
    rate: Decimal                 # percent of the fact
    cap: Decimal | None = None


@dataclass(frozen=True)
class Tier:
    from_pct: Decimal
    rate: Decimal                 # percent of the bonus base


@dataclass(frozen=True)
class Weight:
    kpi: str
    weight: Decimal
    cap_pct: Decimal | None = None   # fulfilment of this KPI counts at most this much


@dataclass(frozen=True)
class Bonus:
    tiers: tuple[Tier, ...]
    base_kpi: str | None = "sales"
    base_amount: Decimal | None = None
    mode: str = "whole"               # whole | marginal
    cap: Decimal | None = None

    def sorted_tiers(self) -> tuple[Tier, ...]:
        return tuple(sorted(self.tiers, key=lambda t: t.from_pct))


@dataclass(frozen=True)
class Scheme:
    fixed: Decimal = ZERO
    percentages: tuple[PercentRule, ...] = ()
    weights: tuple[Weight, ...] = ()
    bonus: Bonus | None = None
    total_cap: Decimal | None = None
    what_if_kpi: str = "sales"

    def effective_weights(self) -> tuple[Weight, ...]:
        return self.weights or (Weight("sales", Decimal(1)),)


# -- results -----------------------------------------------------------------------------------

@dataclass
class Line:
    kind: str                          # fixed | percent | bonus | cap | correction
    title: str
    amount: Decimal
    formula: str
    kpi: str | None = None
    plan: Decimal | None = None
    fact: Decimal | None = None
    fulfilment: Decimal | None = None  # %, exact
    source_month: date | None = None   # corrections: the month corrected

    def as_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "amount": self.amount,
                "formula": self.formula, "kpi": self.kpi, "plan": self.plan, "fact": self.fact,
                "fulfilment": None if self.fulfilment is None else money(self.fulfilment),
                "source_month": self.source_month}


@dataclass
class KpiFigure:
    kpi: str
    plan: Decimal | None
    fact: Decimal
    fulfilment: Decimal | None        # %, exact

    def as_dict(self) -> dict:
        return {"kpi": self.kpi, "title": KPI_TITLES[self.kpi], "plan": self.plan,
                "fact": self.fact,
                "fulfilment": None if self.fulfilment is None else money(self.fulfilment)}


@dataclass
class Pay:
    lines: list[Line]
    kpis: list[KpiFigure]
    weighted_fulfilment: Decimal | None
    tier: Tier | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    def with_lines(self, extra: list[Line]) -> Pay:
        return replace(self, lines=[*self.lines, *extra])


def _fact(facts: dict, kpi: str) -> Decimal:
    value = facts.get(kpi)
    return ZERO if value is None else Decimal(value)


def fulfilment(plan: Decimal | None, fact: Decimal) -> Decimal | None:
    """fact / plan x 100, exact; ``None`` when there is no (positive) plan."""
    if plan is None or Decimal(plan) <= 0:
        return None
    return Decimal(fact) * HUNDRED / Decimal(plan)


def weighted_fulfilment(scheme: Scheme, plans: dict, facts: dict) -> Decimal | None:
    total_weight = ZERO
    accumulated = ZERO
    for w in scheme.effective_weights():
        f = fulfilment(plans.get(w.kpi), facts.get(w.kpi, ZERO))
        if f is None or w.weight <= 0:
            continue
        if w.cap_pct is not None:
            f = min(f, w.cap_pct)
        accumulated += w.weight * f
        total_weight += w.weight
    if total_weight == 0:
        return None
    return accumulated / total_weight


def tier_for(bonus: Bonus, f: Decimal | None) -> Tier | None:
    if f is None:
        return None
    reached = [t for t in bonus.sorted_tiers() if f >= t.from_pct]
    return reached[-1] if reached else None


def _capped(amount: Decimal, cap: Decimal | None) -> tuple[Decimal, str]:
    amount = money(amount)
    if cap is not None and amount > cap:
        return money(cap), f", ограничено {show(cap)}"
    return amount, ""


def _bonus_line(bonus: Bonus, plans: dict, facts: dict, f: Decimal | None) -> Line:
    if bonus.base_amount is not None:
        base, base_text = Decimal(bonus.base_amount), f"целевой бонус {show(bonus.base_amount)}"
    else:
        kpi = bonus.base_kpi or "sales"
        base = Decimal(facts.get(kpi, ZERO))
        base_text = f"факт «{KPI_TITLES[kpi]}» {show(base)}"
    tier = tier_for(bonus, f)
    title = "Бонус за выполнение плана"
    if f is None:
        return Line("bonus", title, ZERO, "нет плана — бонус не начисляется",
                    kpi=bonus.base_kpi)
    if tier is None:
        lowest = bonus.sorted_tiers()[0].from_pct if bonus.tiers else None
        return Line("bonus", title, ZERO,
                    f"выполнение {pct(f)} ниже порога {pct(lowest)} — 0", kpi=bonus.base_kpi,
                    fulfilment=f)
    if bonus.mode == "marginal":
        tiers = bonus.sorted_tiers()
        parts, exact = [], ZERO
        for i, t in enumerate(tiers):
            upper = tiers[i + 1].from_pct if i + 1 < len(tiers) else None
            if f <= t.from_pct:
                break
            top = f if upper is None else min(f, upper)
            points = top - t.from_pct
            exact += base * points / f * t.rate / HUNDRED
            parts.append(f"{show(money(points))} п.п. × {show(t.rate)} %")
        amount, capped = _capped(exact, bonus.cap)
        formula = (f"{base_text} / {pct(f)} на пункт выполнения: " + " + ".join(parts)
                   + f" = {show(amount)}{capped}")
    else:
        amount, capped = _capped(base * tier.rate / HUNDRED, bonus.cap)
        formula = (f"выполнение {pct(f)} ≥ {pct(tier.from_pct)}: {base_text} × {show(tier.rate)} % "
                   f"= {show(amount)}{capped}")
    return Line("bonus", title, amount, formula, kpi=bonus.base_kpi, fulfilment=f)


def compute_pay(scheme: Scheme, plans: dict, facts: dict) -> Pay:
    """The lines of one month: fixed, percentages, the tiered bonus, the total cap."""
    facts = {k: _fact(facts, k) for k in KPIS}
    plans = {k: (None if plans.get(k) is None else Decimal(plans[k])) for k in KPIS}
    kpis = [KpiFigure(k, plans[k], facts[k], fulfilment(plans[k], facts[k])) for k in KPIS]
    lines: list[Line] = []
    if scheme.fixed:
        lines.append(Line("fixed", "Оклад", money(scheme.fixed), f"оклад {show(scheme.fixed)}"))
    for rule in scheme.percentages:
        fact = facts[rule.kpi]
        amount, capped = _capped(fact * rule.rate / HUNDRED, rule.cap)
        lines.append(Line(
            "percent", f"{show(rule.rate)} % от «{KPI_TITLES[rule.kpi]}»", amount,
            f"{show(fact)} × {show(rule.rate)} % = {show(amount)}{capped}", kpi=rule.kpi,
            plan=plans[rule.kpi], fact=fact, fulfilment=fulfilment(plans[rule.kpi], fact)))
    f = weighted_fulfilment(scheme, plans, facts)
    tier = None
    if scheme.bonus is not None:
        tier = tier_for(scheme.bonus, f)
        line = _bonus_line(scheme.bonus, plans, facts, f)
        if line.kpi:
            line.plan, line.fact = plans[line.kpi], facts[line.kpi]
        lines.append(line)
    if scheme.total_cap is not None:
        variable = sum((ln.amount for ln in lines if ln.kind != "fixed"), ZERO)
        if variable > scheme.total_cap:
            cut = money(scheme.total_cap) - variable
            lines.append(Line("cap", "Ограничение переменной части", cut,
                              f"переменная часть {show(variable)} > предел "
                              f"{show(scheme.total_cap)}: {show(cut)}"))
    return Pay(lines, kpis, f, tier)


# -- what if -----------------------------------------------------------------------------------

@dataclass
class NextTier:
    kpi: str
    from_pct: Decimal
    rate: Decimal
    more_needed: Decimal      # of ``kpi`` (its unit), rounded up to kopecks
    pay_then: Decimal         # the month's pay with that much more

    def as_dict(self) -> dict:
        return {"kpi": self.kpi, "title": KPI_TITLES[self.kpi], "from_pct": self.from_pct,
                "rate": self.rate, "more_needed": self.more_needed, "pay_then": self.pay_then}


def next_tier(scheme: Scheme, plans: dict, facts: dict) -> NextTier | None:
    """How much more of the scheme's ``what_if_kpi`` (shipments as realisations, ₽) lifts the
    weighted fulfilment to the next bonus tier; ``None`` when there is no higher tier, or that KPI
    has no plan or weight (more of it cannot help), or a fulfilment cap stops it short."""
    if scheme.bonus is None or not scheme.bonus.tiers:
        return None
    kpi = scheme.what_if_kpi
    facts = {k: _fact(facts, k) for k in KPIS}
    f = weighted_fulfilment(scheme, plans, facts)
    if f is None:
        return None
    higher = [t for t in scheme.bonus.sorted_tiers() if t.from_pct > f]
    if not higher:
        return None
    target = higher[0]
    plan = plans.get(kpi)
    weights = [w for w in scheme.effective_weights()
               if w.weight > 0 and fulfilment(plans.get(w.kpi), facts[w.kpi]) is not None]
    mine = [w for w in weights if w.kpi == kpi]
    if not mine or plan is None or Decimal(plan) <= 0:
        return None
    total_weight = sum((w.weight for w in weights), ZERO)
    # F rises by weight/total x 100/plan per unit of the KPI (while its own cap does not bite).
    per_unit = mine[0].weight / total_weight * HUNDRED / Decimal(plan)
    needed = ((target.from_pct - f) / per_unit).quantize(KOPECK, rounding=ROUND_CEILING)
    lifted = {**facts, kpi: facts[kpi] + needed}
    reached = weighted_fulfilment(scheme, plans, lifted)
    if reached is None or reached < target.from_pct:
        return None
    return NextTier(kpi, target.from_pct, target.rate, needed,
                    compute_pay(scheme, plans, lifted).total)


# -- corrections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrozenMonth:
    """An approved (or exported) month as it was approved, and what corrected it since."""

    month: date
    approved_total: Decimal
    approved_facts: dict
    corrected_since: Decimal = ZERO      # corrections for it in later approved documents


def correction(frozen: FrozenMonth, recomputed: Pay, current_facts: dict) -> Line | None:
    """The correction of a frozen month: recomputed (its scheme, its plans, today's facts)
    minus approved minus already corrected; ``None`` when nothing is owed either way."""
    from .months import month_label

    amount = money(recomputed.total) - money(frozen.approved_total) - money(frozen.corrected_since)
    if amount == 0:
        return None
    changed = [f"{KPI_TITLES[k]}: {show(Decimal(frozen.approved_facts.get(k) or 0))} → "
               f"{show(Decimal(current_facts.get(k) or 0))}"
               for k in KPIS
               if Decimal(frozen.approved_facts.get(k) or 0) != Decimal(current_facts.get(k) or 0)]
    formula = (f"пересчёт {month_label(frozen.month)} по текущим фактам {show(recomputed.total)}"
               f" − утверждено {show(frozen.approved_total)}")
    if frozen.corrected_since:
        formula += f" − учтено ранее {show(frozen.corrected_since)}"
    formula += f" = {show(amount)}"
    if changed:
        formula += " (" + "; ".join(changed) + ")"
    return Line("correction", f"Корректировка за {month_label(frozen.month)}", amount, formula,
                source_month=frozen.month)
