"""Reports as SQL over the read models.

Additive reports (calls, new leads, new clients, invoices, sales, activity) and the funnel read the
daily rollups: a range scan over day buckets, filtered and grouped by the slices. With a client
filter or grouping they read the facts (the rollups have no client); ``naive=True`` reads the
facts always — the benchmark's baseline, and in tests a second way to the same numbers. Time in
stage, stuck deals, idle clients and the forecast read small current-state tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from .domain.catalogue import ReportParams, derive, totals, zero_row
from .domain.funnel import (
    LADDER,
    LOST,
    RANK,
    bucket_value,
    conversion,
    percentile_of_counts,
    win_rate,
)
from .domain.periods import BUCKETS, bucket_end, bucket_start, bucket_starts
from .models import (
    NONE_ID,
    Rollup,
    call_facts,
    calls_rollup,
    client_changes,
    client_facts,
    clients_rollup,
    deal_facts,
    departments,
    email_facts,
    emails_rollup,
    erp_documents,
    erp_rollup,
    funnel_rollup,
    leads_rollup,
    sales_plans,
    staff,
    stage_stays,
    stay_histogram,
    task_marks,
    tasks_rollup,
)
from .roi import roi_report

# Up to this many stays time in stage is computed exactly from the stays themselves.
EXACT_LIMIT = 100_000

SLICE_COLUMNS = {"manager": "user_id", "department": "department_id", "region": "region",
                 "segment": "segment", "client": "client_id", "source": "source",
                 "kind": "kind", "stage": "stage"}


@dataclass(frozen=True)
class Source:
    rollup: Rollup
    fact: sa.Table
    # measure -> (expression over a rollup table ``t``, expression over the facts)
    measures: dict
    fact_where: tuple = ()


def _sum(column):
    return sa.func.coalesce(sa.func.sum(column), 0)


def _count_if(condition):
    return sa.func.count().filter(condition)


def _sum_if(column, condition):
    return sa.func.coalesce(sa.func.sum(column).filter(condition), 0)


def _summed(name: str):
    return lambda t: _sum(t.c[name])


def _erp_measures() -> dict:
    out = {}
    for kind, plural, amount in (("order", "orders", "ordered_amount"),
                                 ("invoice", "invoices", "invoiced_amount"),
                                 ("payment", "payments", "paid_amount"),
                                 ("shipment", "shipments", "shipped_amount")):
        out[plural] = (lambda t, k=kind: _sum_if(t.c.documents, t.c.kind == k),
                       _count_if(erp_documents.c.kind == kind))
        out[amount] = (lambda t, k=kind: _sum_if(t.c.amount, t.c.kind == k),
                       _sum_if(erp_documents.c.amount, erp_documents.c.kind == kind))
    return out


SOURCES = {
    "calls": Source(calls_rollup, call_facts, {
        "calls": (_summed("calls"), sa.func.count()),
        "inbound": (_summed("inbound"), _sum(call_facts.c.inbound)),
        "answered": (_summed("answered"), _sum(call_facts.c.answered)),
        "targeted": (_summed("targeted"), _sum(call_facts.c.targeted)),
        "talk_seconds": (_summed("talk_seconds"), _sum(call_facts.c.talk_seconds)),
    }),
    "emails": Source(emails_rollup, email_facts, {
        "emails": (_summed("emails"), sa.func.count()),
    }),
    "tasks": Source(tasks_rollup, task_marks, {
        "tasks_done": (_summed("tasks_done"), _count_if(task_marks.c.mark == "done")),
        "tasks_overdue": (_summed("tasks_overdue"), _count_if(task_marks.c.mark == "overdue")),
    }),
    "leads": Source(leads_rollup, deal_facts, {
        "leads": (_summed("leads"), sa.func.count()),
    }),
    "clients": Source(clients_rollup, client_changes, {
        "created": (_summed("created"), _sum(client_changes.c.created)),
        "potential_growth": (_summed("potential_delta"), _sum(client_changes.c.potential_delta)),
    }),
    "erp": Source(erp_rollup, erp_documents, _erp_measures(),
                  fact_where=(erp_documents.c.active,)),
}


def rollup_table(rollup: Rollup, params: ReportParams) -> sa.Table:
    """The smallest grain that answers: by month for whole months bucketed by month or coarser,
    else by day; without region and segment (by user) when neither is asked for."""
    whole_months = params.first.day == 1 and bucket_end(bucket_start(params.last, "month"),
                                                          "month") == params.last
    lean = (params.region is None and params.segment is None
            and not {"region", "segment"} & set(params.group_by))
    if whole_months and params.bucket in (None, "month", "quarter", "year"):
        return rollup.monthly_by_user if lean else rollup.monthly
    return rollup.by_user if lean else rollup.daily


REPORT_SOURCES = {
    "calls": ("calls",), "new_leads": ("leads",), "new_clients": ("clients",),
    "invoices": ("erp",), "sales": ("erp",), "activity": ("calls", "emails", "tasks"),
}


def _filters(table: sa.Table, params: ReportParams, *, user="user_id",
             department="department_id") -> list:
    c = table.c
    where = []
    for value, column in ((params.manager_id, user), (params.scope_user, user),
                          (params.department_id, department),
                          (params.scope_department, department),
                          (params.region, "region"), (params.segment, "segment"),
                          (params.client_id, "client_id")):
        if value is not None:
            where.append(c[column] == value)
    return where


def _group_columns(table: sa.Table, params: ReportParams, day_column="day") -> list:
    columns = []
    for item in params.group_by:
        if item in BUCKETS:
            expr = sa.cast(sa.func.date_trunc(item, table.c[day_column]), sa.Date)
            columns.append(expr.label("g_bucket"))
        else:
            columns.append(table.c[SLICE_COLUMNS[item]].label(f"g_{item}"))
    return columns


def _figure(value, kind: str):
    """SQL sums come back as numeric: counts as int, money as Decimal to the kopeck."""
    if kind == "money":
        return Decimal(value or 0).quantize(Decimal("0.01"))
    return int(value or 0)


def _group_keys(params: ReportParams) -> list[str]:
    return ["g_bucket" if g in BUCKETS else f"g_{g}" for g in params.group_by]


class ReportQueries:
    """Runs one report for already checked and scoped parameters (``catalogue.scope``)."""

    def __init__(self, session, now: datetime, exact_limit: int = EXACT_LIMIT):
        self.session = session
        self.now = now
        self.exact_limit = exact_limit

    def run(self, params: ReportParams, *, naive: bool = False) -> dict:
        kind = params.report.kind
        if kind == "additive":
            rows = self.additive(params, naive=naive)
            result = {"rows": rows, "totals": totals(params.report, rows)}
        elif kind == "funnel":
            result = self.funnel(params, naive=naive)
        elif kind == "stage_time":
            result = self.stage_time(params)
        elif kind == "stuck":
            result = self.stuck(params)
        elif kind == "idle":
            result = self.idle(params)
        elif kind == "roi":
            result = roi_report(self.session, params, _filters(deal_facts, params))
        else:
            result = self.forecast(params)
        result["rows"] = self.named(params, result["rows"])
        return result

    # -- additive --------------------------------------------------------------------------
    def additive(self, params: ReportParams, *, naive: bool = False) -> list[dict]:
        report = params.report
        wanted = [m.key for m in report.measures if not m.derived]
        kinds = {m.key: m.kind for m in report.measures}
        use_facts = naive or params.needs_facts
        parts = []
        for name in REPORT_SOURCES[report.name]:
            source = SOURCES[name]
            table = source.fact if use_facts else rollup_table(source.rollup, params)
            measures = [(source.measures[m][1] if use_facts else source.measures[m][0](table))
                        .label(m) if m in source.measures else sa.literal(0).label(m)
                        for m in wanted]
            groups = _group_columns(table, params)
            where = [table.c.day.between(params.first, params.last), *_filters(table, params)]
            if use_facts:
                where.extend(source.fact_where)
            query = sa.select(*groups, *measures).where(*where)
            if groups:
                query = query.group_by(*[g.element for g in groups])
            parts.append(query)
        keys = _group_keys(params)
        if len(parts) == 1:
            query = parts[0]
        else:
            union = sa.union_all(*parts).subquery()
            query = sa.select(*[union.c[k] for k in keys],
                              *[sa.func.sum(union.c[m]).label(m) for m in wanted])
            if keys:
                query = query.group_by(*[union.c[k] for k in keys])
        if keys:
            query = query.order_by(*[sa.text(k) for k in keys])
        rows = []
        width = len(keys)
        convert = [(m, kinds[m]) for m in wanted]
        for values in self.session.execute(query).all():
            out = dict(zip(keys, values[:width], strict=True))
            empty = True
            for (measure, kind), value in zip(convert, values[width:], strict=True):
                value = out[measure] = _figure(value, kind)
                empty = empty and not value
            if empty:
                continue   # nothing (or figures taken back to zero, e.g. an un-posted document)
            rows.append(derive(report, out))
        if params.group_by == (params.bucket,) and params.bucket:
            rows = self._fill_buckets(params, rows)
        return rows

    @staticmethod
    def _fill_buckets(params: ReportParams, rows: list[dict]) -> list[dict]:
        """Grouped by time only: every bucket of the period, empty ones as zeros."""
        have = {row["g_bucket"]: row for row in rows}
        return [have.get(start) or {"g_bucket": start, **zero_row(params.report)}
                for start in bucket_starts(params.first, params.last, params.bucket)]

    # -- funnel ----------------------------------------------------------------------------
    def funnel(self, params: ReportParams, *, naive: bool = False) -> dict:
        group = [g for g in params.group_by if g != "stage"]
        inner = replace(params, group_by=tuple(group))
        keys = _group_keys(inner)
        if naive or params.needs_facts:
            ladder = sa.values(sa.column("stage", sa.String), sa.column("rank", sa.Integer),
                               name="ladder").data([(s, RANK[s]) for s in LADDER])
            t = deal_facts
            groups = _group_columns(t, inner)
            where = [t.c.day.between(params.first, params.last), *_filters(t, params)]
            reached = sa.select(*groups, ladder.c.stage.label("stage"),
                                sa.func.count().label("deals")).select_from(
                t.join(ladder, t.c.max_rank >= ladder.c.rank)).where(*where).group_by(
                *[g.element for g in groups], ladder.c.stage)
            lost = sa.select(*groups, sa.literal(LOST).label("stage"),
                             sa.func.count().label("deals")).where(*where, t.c.lost)
            if groups:
                lost = lost.group_by(*[g.element for g in groups])
            query = sa.union_all(reached, lost)
        else:
            t = rollup_table(funnel_rollup, params)
            groups = _group_columns(t, inner)
            query = sa.select(*groups, t.c.stage.label("stage"), _sum(t.c.deals).label("deals")
                              ).where(t.c.day.between(params.first, params.last),
                                      *_filters(t, params)).group_by(
                *[g.element for g in groups], t.c.stage)
        per_group: dict[tuple, dict] = {}
        overall: dict[str, int] = {}
        for row in self.session.execute(query).mappings():
            key = tuple(row[k] for k in keys)
            count = int(row["deals"] or 0)
            if not count:
                continue
            per_group.setdefault(key, {})[row["stage"]] = count
            overall[row["stage"]] = overall.get(row["stage"], 0) + count
        rows = []
        for key in sorted(per_group, key=lambda k: tuple(str(v) for v in k)):
            for line in conversion(per_group[key]):
                rows.append({**dict(zip(keys, key, strict=True)), "g_stage": line["stage"],
                             "deals": line["deals"], "from_previous": line["from_previous"],
                             "from_first": line["from_first"]})
        return {"rows": rows, "totals": {
            "deals": overall.get(LADDER[0], 0), "won": overall.get(LADDER[-1], 0),
            "lost": overall.get(LOST, 0), "win_rate": win_rate(overall),
            "stages": conversion(overall)}}

    # -- time in stage ---------------------------------------------------------------------
    def stage_time(self, params: ReportParams) -> dict:
        """Exact percentiles over the stays; over more than ``exact_limit`` closed stays, when
        only departments and whole months matter, the closed ones come from the histogram
        (within 2.5 %) and the open ones from the stays (``totals.approximate``)."""
        if self._histogram_fits(params):
            result = self._stage_time_from_histogram(params)
            if result is not None:
                return result
        return self._stage_time_exact(params)

    def _histogram_fits(self, params: ReportParams) -> bool:
        whole_months = params.first.day == 1 and bucket_end(
            bucket_start(params.last, "month"), "month") == params.last
        return (whole_months and params.manager_id is None and params.scope_user is None
                and params.client_id is None and params.region is None
                and params.segment is None
                and set(params.group_by) <= {"stage", "department", "month", "quarter", "year"})

    def _stage_time_from_histogram(self, params: ReportParams) -> dict | None:
        h, t = stay_histogram, stage_stays
        group = tuple(g for g in params.group_by if g != "stage")
        inner = replace(params, group_by=group)
        keys = _group_keys(inner)
        dept_filters = [c == v for c, v in (
            (h.c.department_id, params.department_id),
            (h.c.department_id, params.scope_department)) if v is not None]
        closed = []
        if params.status != "open":
            groups = _group_columns(h, inner)
            closed = self.session.execute(
                sa.select(*groups, h.c.stage.label("g_stage"), h.c.bucket,
                          sa.func.sum(h.c.stays).label("n"), sa.func.max(h.c.max_seconds)
                          .label("top")).where(
                    h.c.day.between(params.first, params.last), *dept_filters)
                .group_by(*[g.element for g in groups], h.c.stage, h.c.bucket)).mappings().all()
            if sum(int(r["n"]) for r in closed) <= self.exact_limit:
                return None
        opened = []
        if params.status != "closed":
            now = sa.literal(self.now, sa.DateTime(timezone=True))
            groups = _group_columns(t, inner)
            opened = self.session.execute(
                sa.select(*groups, t.c.stage.label("g_stage"),
                          sa.extract("epoch", now - t.c.entered_at).label("seconds")).where(
                    t.c.left_at.is_(None), t.c.day.between(params.first, params.last),
                    *_filters(t, params))).mappings().all()
            if params.status == "open":
                return None if len(opened) <= self.exact_limit else self._from_pairs(
                    keys, [], opened)
        return self._from_pairs(keys, closed, opened)

    def _from_pairs(self, keys, closed, opened) -> dict:
        per_group: dict[tuple, list] = {}
        tops: dict[tuple, float] = {}
        for row in closed:
            key = tuple(row[k] for k in [*keys, "g_stage"])
            per_group.setdefault(key, []).append((bucket_value(row["bucket"]), int(row["n"])))
            tops[key] = max(tops.get(key, 0.0), float(row["top"]))
        for row in opened:
            key = tuple(row[k] for k in [*keys, "g_stage"])
            per_group.setdefault(key, []).append((float(row["seconds"]), 1))
            tops[key] = max(tops.get(key, 0.0), float(row["seconds"]))

        def figures(pairs, top):
            return {"stays": sum(n for _, n in pairs),
                    "median": percentile_of_counts(pairs, 0.5),
                    "p75": percentile_of_counts(pairs, 0.75), "max": top}

        order = {stage: index for index, stage in enumerate(LADDER)}
        rows = [self._stay_row({**dict(zip([*keys, "g_stage"], key, strict=True)),
                                **figures(pairs, tops[key])}, [*keys, "g_stage"])
                for key, pairs in per_group.items()]
        rows.sort(key=lambda r: (tuple(str(r[k]) for k in keys),
                                 order.get(r["g_stage"], 99), r["g_stage"]))
        everything = [pair for pairs in per_group.values() for pair in pairs]
        totals = self._stay_row(figures(everything, max(tops.values(), default=None)), [])
        totals["approximate"] = True
        return {"rows": rows, "totals": totals}

    def _stage_time_exact(self, params: ReportParams) -> dict:
        t = stage_stays
        now = sa.literal(self.now, sa.DateTime(timezone=True))
        seconds = sa.func.coalesce(t.c.seconds, sa.extract("epoch", now - t.c.entered_at))
        where = [t.c.day.between(params.first, params.last), *_filters(t, params)]
        if params.status == "open":
            where.append(t.c.left_at.is_(None))
        elif params.status == "closed":
            where.append(t.c.left_at.is_not(None))

        def figures():
            return (sa.func.count().label("stays"),
                    sa.func.percentile_cont(0.5).within_group(seconds).label("median"),
                    sa.func.percentile_cont(0.75).within_group(seconds).label("p75"),
                    sa.func.max(seconds).label("max"))

        group = tuple(g for g in params.group_by if g != "stage")
        inner = replace(params, group_by=group)
        groups = _group_columns(t, inner)
        keys = _group_keys(inner)
        query = sa.select(*groups, t.c.stage.label("g_stage"), *figures()).where(*where) \
            .group_by(*[g.element for g in groups], t.c.stage)
        order = {stage: index for index, stage in enumerate(LADDER)}
        rows = [self._stay_row(row, keys + ["g_stage"])
                for row in self.session.execute(query).mappings()]
        rows.sort(key=lambda r: (tuple(str(r[k]) for k in keys),
                                 order.get(r["g_stage"], 99), r["g_stage"]))
        total = self.session.execute(sa.select(*figures()).where(*where)).mappings().one()
        return {"rows": rows, "totals": self._stay_row(total, [])}

    @staticmethod
    def _stay_row(row, keys) -> dict:
        def hours(value):
            return None if value is None else round(float(value) / 3600, 2)
        return {**{k: row[k] for k in keys}, "stays": int(row["stays"]),
                "median_hours": hours(row["median"]), "p75_hours": hours(row["p75"]),
                "max_hours": hours(row["max"])}

    # -- current state ---------------------------------------------------------------------
    def _owner_filters(self, params: ReportParams) -> list:
        t = deal_facts
        where = []
        for value, column in ((params.manager_id, t.c.owner_id), (params.scope_user, t.c.owner_id),
                              (params.department_id, t.c.owner_department_id),
                              (params.scope_department, t.c.owner_department_id),
                              (params.client_id, t.c.client_id)):
            if value is not None:
                where.append(column == value)
        return where

    def stuck(self, params: ReportParams) -> dict:
        t = deal_facts
        where = [t.c.open, t.c.stalled_at.is_not(None), *self._owner_filters(params)]
        rows = [{"deal_id": r.deal_id, "title": r.title, "stage": r.stage,
                 "manager_id": r.owner_id, "department_id": r.owner_department_id,
                 "client_id": r.client_id, "stalled_at": r.stalled_at,
                 "stage_entered_at": r.stage_entered_at, "amount": r.amount}
                for r in self.session.execute(
                    sa.select(t).where(*where).order_by(t.c.stalled_at, t.c.deal_id)
                    .limit(params.limit))]
        by_manager = self.session.execute(
            sa.select(t.c.owner_id, sa.func.count(), _sum(t.c.amount)).where(*where)
            .group_by(t.c.owner_id).order_by(t.c.owner_id)).all()
        return {"rows": rows, "totals": {
            "deals": sum(n for _, n, _ in by_manager),
            "amount": sum((a for _, _, a in by_manager), Decimal("0.00")),
            "by_manager": [{"manager_id": m, "deals": n, "amount": a}
                           for m, n, a in by_manager]}}

    def idle(self, params: ReportParams) -> dict:
        t = client_facts
        since = self.now - timedelta(days=params.days)
        touched = sa.func.coalesce(t.c.last_interaction_at, t.c.created_at)
        where = [t.c.known, t.c.owner_id != NONE_ID, touched < since]
        for value, column in ((params.manager_id, t.c.owner_id), (params.scope_user, t.c.owner_id),
                              (params.department_id, t.c.department_id),
                              (params.scope_department, t.c.department_id),
                              (params.region, t.c.region), (params.segment, t.c.segment),
                              (params.client_id, t.c.client_id)):
            if value is not None:
                where.append(column == value)
        rows = []
        for r in self.session.execute(sa.select(t, touched.label("touched")).where(*where)
                                      .order_by(touched, t.c.client_id).limit(params.limit)):
            rows.append({"client_id": r.client_id, "client": r.short_name,
                         "manager_id": r.owner_id, "department_id": r.department_id,
                         "last_interaction_at": r.last_interaction_at,
                         "idle_days": (self.now - r.touched).days})
        by_manager = self.session.execute(
            sa.select(t.c.owner_id, sa.func.count()).where(*where).group_by(t.c.owner_id)
            .order_by(t.c.owner_id)).all()
        return {"rows": rows, "totals": {
            "clients": sum(n for _, n in by_manager), "days": params.days,
            "by_manager": [{"manager_id": m, "clients": n} for m, n in by_manager]}}

    def forecast(self, params: ReportParams) -> dict:
        t, plans = deal_facts, sales_plans
        bucket = params.bucket or "month"
        slices = [g for g in params.group_by if g not in BUCKETS]
        deal_cols = {"manager": t.c.owner_id, "department": t.c.owner_department_id}
        plan_cols = {"manager": plans.c.user_id, "department": plans.c.department_id}
        d_bucket = sa.cast(sa.func.date_trunc(bucket, t.c.expected_close_date), sa.Date)
        weighted = sa.func.round(
            _sum(sa.func.coalesce(t.c.amount, 0) * sa.func.coalesce(t.c.probability, 0)) / 100, 2)
        deals = sa.select(d_bucket.label("g_bucket"),
                          *[deal_cols[s].label(f"g_{s}") for s in slices],
                          sa.func.count().label("deals"), _sum(t.c.amount).label("pipeline"),
                          weighted.label("weighted")).where(
            t.c.open, t.c.expected_close_date.between(params.first, params.last),
            *self._owner_filters(params)).group_by(d_bucket, *[deal_cols[s] for s in slices])
        p_bucket = sa.cast(sa.func.date_trunc(bucket, plans.c.month), sa.Date)
        plan_where = [plans.c.month.between(bucket_start(params.first, "month"), params.last)]
        for value, column in ((params.manager_id, plans.c.user_id),
                              (params.scope_user, plans.c.user_id),
                              (params.department_id, plans.c.department_id),
                              (params.scope_department, plans.c.department_id)):
            if value is not None:
                plan_where.append(column == value)
        plan_query = sa.select(p_bucket.label("g_bucket"),
                               *[plan_cols[s].label(f"g_{s}") for s in slices],
                               _sum(plans.c.sales_amount).label("plan")).where(
            *plan_where).group_by(p_bucket, *[plan_cols[s] for s in slices])
        keys = ["g_bucket", *[f"g_{s}" for s in slices]]
        merged: dict[tuple, dict] = {}
        zero = Decimal("0.00")
        for row in self.session.execute(deals).mappings():
            merged[tuple(row[k] for k in keys)] = {
                "deals": row["deals"], "pipeline": row["pipeline"] or zero,
                "weighted": row["weighted"] or zero, "plan": zero}
        for row in self.session.execute(plan_query).mappings():
            entry = merged.setdefault(tuple(row[k] for k in keys), {
                "deals": 0, "pipeline": zero, "weighted": zero, "plan": zero})
            entry["plan"] = row["plan"]
        rows = [derive(params.report, {**dict(zip(keys, key, strict=True)), **figures})
                for key, figures in sorted(merged.items(),
                                           key=lambda kv: tuple(str(v) for v in kv[0]))]
        return {"rows": rows, "totals": totals(params.report, rows)}

    # -- names -----------------------------------------------------------------------------
    def named(self, params: ReportParams, rows: list[dict]) -> list[dict]:
        """Group keys as columns with names: ``period_start``, ``manager_id`` + ``manager``,
        ``department_id`` + ``department``, ``client_id`` + ``client``; "none" as null."""
        if not rows:
            return rows
        renames, ids = {}, {}
        for key in rows[0]:
            if key == "g_bucket":
                renames[key] = ("period_start", False)
            elif key.startswith("g_"):
                name = key[2:]
                is_id = name in ("manager", "department", "client")
                renames[key] = (f"{name}_id" if is_id else name, is_id)
        out = []
        for row in rows:
            item = dict(row)
            for key, (target, is_id) in renames.items():
                value = item.pop(key)
                item[target] = (None if value == NONE_ID else value) if is_id else (
                    value if target == "period_start" else value or None)
            out.append(item)
        for id_key, name_key, id_column, name_column in (
                ("manager_id", "manager", staff.c.user_id, staff.c.full_name),
                ("department_id", "department", departments.c.department_id, departments.c.name),
                ("client_id", "client", client_facts.c.client_id, client_facts.c.short_name)):
            if id_key not in out[0] or (name_key in out[0] and id_key != "department_id"
                                        and out[0].get(name_key) is not None):
                continue
            ids = {item[id_key] for item in out}
            names = self._names(id_column, name_column, ids)
            for item in out:
                if item.get(name_key) is None:
                    item[name_key] = names.get(item[id_key])
        return out

    def _names(self, id_column, name_column, ids) -> dict:
        ids = {i for i in ids if isinstance(i, uuid.UUID) and i != NONE_ID}
        if not ids:
            return {}
        return dict(self.session.execute(sa.select(id_column, name_column)
                                         .where(id_column.in_(ids))).all())


def columns_for(params: ReportParams, rows: list[dict]) -> list[dict]:
    """The table's columns for CSV/XLSX: the group keys (with names), then the figures."""
    titles = {"period_start": "Период", "manager": "Менеджер", "department": "Отдел",
              "region": "Регион", "segment": "Сегмент", "client": "Клиент",
              "source": "Источник", "kind": "Документ", "stage": "Этап"}
    columns = []
    if params.report.kind in ("stuck", "idle", "roi"):
        return [{"key": m.key, "title": m.title} for m in params.report.measures]
    for item in params.group_by:
        key = "period_start" if item in BUCKETS else item
        if key not in [c["key"] for c in columns]:
            columns.append({"key": key, "title": titles[key]})
    if params.report.kind in ("funnel", "stage_time") and "stage" not in params.group_by:
        columns.append({"key": "stage", "title": titles["stage"]})
    columns += [{"key": m.key, "title": m.title} for m in params.report.measures]
    return columns
