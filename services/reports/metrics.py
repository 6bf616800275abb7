"""Business gauges for Prometheus (Grafana's sales dashboards), per department id ("none" for
figures without one), refreshed from the read models on a timer: cheap queries over today's
rollup rows and two partial indexes. Registered in the process-wide ``crm_platform`` registry
(one definition per process, so several containers in one test process share them)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from prometheus_client import Gauge

from crm_platform.observability import REGISTRY

from .models import NONE_ID, calls_rollup, deal_facts, leads_rollup, task_facts

CALLS_TODAY = Gauge("crm_calls_today", "Calls registered today (business day), by department",
                    ["department"], registry=REGISTRY)
NEW_LEADS_TODAY = Gauge("crm_new_leads_today", "Deals (leads) created today, by department",
                        ["department"], registry=REGISTRY)
STUCK_DEALS = Gauge("crm_stuck_deals", "Open deals past their stage's limit now, by department",
                    ["department"], registry=REGISTRY)
OVERDUE_TASKS = Gauge("crm_overdue_tasks", "Open tasks past their due time now, by department",
                      ["department"], registry=REGISTRY)


def label(department_id) -> str:
    return "none" if department_id in (None, NONE_ID) else str(department_id)


def business_figures(session, today: date) -> dict[str, dict[str, int]]:
    """{gauge name: {department label: value}} from the read models."""
    calls, leads = calls_rollup.by_user, leads_rollup.by_user
    queries = {
        "crm_calls_today": sa.select(calls.c.department_id, sa.func.sum(calls.c.calls))
        .where(calls.c.day == today).group_by(calls.c.department_id),
        "crm_new_leads_today": sa.select(leads.c.department_id, sa.func.sum(leads.c.leads))
        .where(leads.c.day == today).group_by(leads.c.department_id),
        "crm_stuck_deals": sa.select(deal_facts.c.owner_department_id, sa.func.count())
        .where(deal_facts.c.open, deal_facts.c.stalled_at.is_not(None))
        .group_by(deal_facts.c.owner_department_id),
        "crm_overdue_tasks": sa.select(task_facts.c.department_id, sa.func.count())
        .where(task_facts.c.open, task_facts.c.overdue).group_by(task_facts.c.department_id),
    }
    figures = {}
    for name, query in queries.items():
        values: dict[str, int] = {}
        for department_id, value in session.execute(query).all():
            values[label(department_id)] = values.get(label(department_id), 0) + int(value or 0)
        figures[name] = values
    return figures


GAUGES = {"crm_calls_today": CALLS_TODAY, "crm_new_leads_today": NEW_LEADS_TODAY,
          "crm_stuck_deals": STUCK_DEALS, "crm_overdue_tasks": OVERDUE_TASKS}


def publish(figures: dict[str, dict[str, int]]) -> None:
    """Set the gauges to exactly these figures (departments no longer present drop out)."""
    for name, gauge in GAUGES.items():
        gauge.clear()
        for department, value in figures.get(name, {}).items():
            gauge.labels(department).set(value)
