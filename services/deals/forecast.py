"""The forecast: the pipeline by expected close month, weighted by probability, against the plan.

For each month and group (manager, department, region, or the month alone):

* ``won`` — deals closed won in the month (their shipped sum);
* ``committed`` — open deals expected that month that already have a posted customer order;
* ``weighted`` — Σ amount × probability over open deals expected that month, the probability being
  the stage's default (or the deal's own), or with ``weights="learned"`` the win rate learned for
  the stage over the last 12 months (where it stands on enough deals);
* ``best_case`` — ``won`` + every open deal expected that month at full amount;
* ``plan`` — the sales plans from payroll for the managers in the group.

A deal's amount is its ordered sum once it has an order, else its potential.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time
from decimal import Decimal

import sqlalchemy as sa

from crm_platform.errors import ValidationFailed
from crm_platform.rpc import rpc

from . import store
from .domain.deal_input import parse_uuid
from .models import deals, departments, sales_plans, staff

GROUPS = ("manager", "department", "region", "month")
FIGURES = ("won", "committed", "weighted", "best_case", "pipeline")
ZERO = Decimal("0.00")
MIN_WIN_SAMPLES = 10


def _month(value: str, field: str) -> date:
    try:
        return date.fromisoformat(f"{value}-01" if len(str(value)) == 7 else str(value)).replace(
            day=1)
    except ValueError:
        raise ValidationFailed("Месяц не распознан", fields={field: ["ГГГГ-ММ"]}) from None


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


class ForecastEntrypoints:
    @rpc
    def forecast(self, month_from: str, month_to: str | None = None, group_by: str = "manager",
                 filters: dict | None = None, weights: str = "stage") -> dict:
        """Rows per (month, group) with plan, won, committed, weighted, best case and pipeline;
        totals per month. A manager sees own deals, a sales head the department."""
        identity = self.caller.require("manager", "sales_head", "director", "admin")
        if group_by not in GROUPS:
            raise ValidationFailed("Неизвестная группировка", fields={"group_by": list(GROUPS)})
        if weights not in ("stage", "learned"):
            raise ValidationFailed("Веса", fields={"weights": ["stage или learned"]})
        first = _month(month_from, "month_from")
        last = _month(month_to or month_from, "month_to")
        if last < first or (last.year - first.year) * 12 + last.month - first.month > 36:
            raise ValidationFailed("Период", fields={"month_to": ["от month_from, до 36 месяцев"]})
        with self.db.session() as session:
            rows = self._forecast_deals(session, identity, first, last, filters or {})
            funnels_ = {fid: (store.funnel_of(r), r["learned"] or {})
                        for fid, r in store.funnels_by_id(session).items()}
            names = self._group_names(session, group_by, rows)
            table: dict = defaultdict(lambda: {f: ZERO for f in FIGURES} | {"deals": 0})
            for row, figure_values in self._figures(rows, funnels_, weights, first, last):
                key = (row["_month"], self._group_key(group_by, row))
                for figure, value in figure_values.items():
                    table[key][figure] += value
                table[key]["deals"] += 1
            plans = self._plans(session, identity, group_by, first, last, filters or {})
            for key in plans:
                table.setdefault(key, {f: ZERO for f in FIGURES} | {"deals": 0})
            result = []
            for (month, group), figures in sorted(table.items(), key=lambda kv: (
                    kv[0][0], str(kv[0][1]))):
                plan = plans.get((month, group))
                result.append({
                    "month": month.isoformat()[:7], "group": str(group) if group else None,
                    "group_name": names.get(group, group), "plan": _m(plan),
                    **{f: _m(v.quantize(Decimal("0.01"))) for f, v in figures.items()
                       if f != "deals"}, "deals": figures["deals"],
                    "fulfilment_percent": float(round(
                        (figures["won"] / plan) * 100, 1)) if plan else None,
                })
            return {"group_by": group_by, "weights": weights, "rows": result}

    @rpc
    def forecast_deals(self, month: str, figure: str, filters: dict | None = None,
                       weights: str = "stage") -> list[dict]:
        """The deals behind one figure of one month (with each deal's contribution)."""
        identity = self.caller.require("manager", "sales_head", "director", "admin")
        if figure not in FIGURES:
            raise ValidationFailed("Показатель", fields={"figure": list(FIGURES)})
        first = _month(month, "month")
        with self.db.session() as session:
            rows = self._forecast_deals(session, identity, first, first, filters or {})
            funnels_ = {fid: (store.funnel_of(r), r["learned"] or {})
                        for fid, r in store.funnels_by_id(session).items()}
            names = store.names_of(session, [r["owner_id"] for r in rows])
            clients = store.client_names(session, [r["client_id"] for r in rows])
            out = []
            for row, values in self._figures(rows, funnels_, weights, first, first):
                if values[figure] == 0 and figure != "pipeline":
                    continue
                view = store.deal_dict(row, funnels_[row["funnel_id"]][0], names, clients)
                view["contribution"] = _m(values[figure].quantize(Decimal("0.01")))
                out.append(view)
            return sorted(out, key=lambda d: Decimal(d["contribution"]), reverse=True)

    # -- pieces -----------------------------------------------------------------------------------
    def _forecast_deals(self, session, identity, first: date, last: date, filters: dict):
        tz = store.work_calendar(session).tz
        start = datetime.combine(first, time(0), tz)
        end = datetime.combine(_next_month(last), time(0), tz)
        query = store.visible(sa.select(deals), deals, identity).where(sa.or_(
            sa.and_(deals.c.closed_at.is_(None), deals.c.expected_close_date >= first,
                    deals.c.expected_close_date < _next_month(last)),
            sa.and_(deals.c.stage == "closed_won", deals.c.closed_at >= start,
                    deals.c.closed_at < end)))
        for key in ("owner_id", "department_id"):
            if filters.get(key):
                query = query.where(getattr(deals.c, key) == parse_uuid(filters[key], key))
        if filters.get("region"):
            query = query.where(deals.c.region == filters["region"])
        rows = []
        for row in session.execute(query).mappings():
            row = dict(row)
            if row["closed_at"] is not None:
                row["_month"] = row["closed_at"].astimezone(tz).date().replace(day=1)
            else:
                row["_month"] = row["expected_close_date"].replace(day=1)
            rows.append(row)
        return rows

    @staticmethod
    def _figures(rows, funnels_, weights, first, last):
        for row in rows:
            funnel, learned = funnels_[row["funnel_id"]]
            amount = store.pipeline_amount(row)
            values = {f: ZERO for f in FIGURES}
            if row["stage"] == "closed_won":
                won = row["shipped_amount"] or amount
                values.update(won=won, best_case=won)
            else:
                probability = Decimal(store.effective_probability(row, funnel)) / 100
                if weights == "learned":
                    item = learned.get(row["stage"]) or {}
                    if item.get("win_rate") is not None and \
                            item.get("win_samples", 0) >= MIN_WIN_SAMPLES:
                        probability = Decimal(str(item["win_rate"]))
                values.update(pipeline=amount, weighted=amount * probability,
                              best_case=amount,
                              committed=amount if row["has_orders"] else ZERO)
            yield row, values

    @staticmethod
    def _group_key(group_by, row):
        return {"manager": row["owner_id"], "department": row["department_id"],
                "region": row["region"], "month": None}[group_by]

    @staticmethod
    def _group_names(session, group_by, rows) -> dict:
        if group_by == "manager":
            ids = {r["owner_id"] for r in rows}
            return dict(session.execute(sa.select(staff.c.user_id, staff.c.full_name).where(
                staff.c.user_id.in_(ids))).all()) if ids else {}
        if group_by == "department":
            return dict(session.execute(sa.select(departments.c.department_id,
                                                  departments.c.name)).all())
        return {}

    @staticmethod
    def _plans(session, identity, group_by, first, last, filters) -> dict:
        """(month, group) -> plan sum; regions have no plans."""
        if group_by == "region" or filters.get("region"):
            return {}
        query = sa.select(sales_plans).where(sales_plans.c.month >= first,
                                             sales_plans.c.month <= last)
        if identity.role == "manager":
            query = query.where(sales_plans.c.user_id == identity.user_id)
        elif identity.role == "sales_head":
            query = query.where(sales_plans.c.department_id == identity.department_id)
        if filters.get("owner_id"):
            query = query.where(sales_plans.c.user_id == parse_uuid(filters["owner_id"],
                                                                    "owner_id"))
        if filters.get("department_id"):
            query = query.where(sales_plans.c.department_id == parse_uuid(
                filters["department_id"], "department_id"))
        plans: dict = defaultdict(lambda: ZERO)
        for plan in session.execute(query).mappings():
            key = {"manager": plan["user_id"], "department": plan["department_id"],
                   "month": None}[group_by]
            plans[(plan["month"], key)] += plan["sales_amount"]
        return dict(plans)


def _m(value) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"
