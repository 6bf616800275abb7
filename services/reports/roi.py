"""The ROI report's read models and query (issue 13): lead sources from ``deal_created``'s
``source_detail`` and campaign budgets from ``clients.campaign_changed``; the maths in
``domain.roi``.

``lead_sources`` (in ``models``) holds one row per deal (the source fields, the campaign the deal
names); ``campaign_costs`` the newest known state of each campaign (by ``changed_at``). Both are
emptied and replayed by a rebuild (``campaign_changed`` comes with the clients' events). The report
joins them with ``deal_facts`` (the deal's cohort day, owner, department, current stage and
amount), so access rules and filters are those of the other deal reports.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .domain.funnel import RANK, WON
from .domain.roi import Lead, roi_rows
from .models import campaign_costs, deal_facts, lead_sources


def _text(detail: dict, key: str, limit: int) -> str | None:
    value = detail.get(key)
    return str(value)[:limit] if value not in (None, "") else None


def record_lead_source(session, payload: dict) -> None:
    """Called for every new deal (in the deals batch's transaction)."""
    detail = payload.get("source_detail") or {}
    campaign_id = detail.get("campaign_id")
    try:
        campaign_id = uuid.UUID(str(campaign_id)) if campaign_id else None
    except ValueError:
        campaign_id = None
    session.execute(pg_insert(lead_sources).values(
        deal_id=payload["deal_id"],
        source_kind=str(detail.get("kind") or payload.get("source") or "")[:30],
        form_key=_text(detail, "form_key", 100), utm_source=_text(detail, "utm_source", 200),
        utm_medium=_text(detail, "utm_medium", 200),
        utm_campaign=_text(detail, "utm_campaign", 200),
        our_number=_text(detail, "our_number", 20), campaign_id=campaign_id,
    ).on_conflict_do_nothing())


def apply_campaign_changed(session, payload: dict) -> None:
    """Keep the newest state of a campaign (an older event arriving late changes nothing)."""
    values = {"name": payload["name"][:200], "budget": payload["budget"],
              "utm_campaign": payload.get("utm_campaign"), "state": payload["state"],
              "changed_at": payload["changed_at"]}
    stmt = pg_insert(campaign_costs).values(campaign_id=payload["campaign_id"], **values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["campaign_id"], set_=values,
        where=campaign_costs.c.changed_at <= stmt.excluded.changed_at))


def roi_report(session, params, filters) -> dict:
    """Rows and totals for ``params`` (``group_by`` source or campaign)."""
    d, s, c = deal_facts.c, lead_sources.c, campaign_costs.c
    by_utm = sa.select(c.campaign_id).where(c.utm_campaign == s.utm_campaign) \
        .order_by(c.changed_at.desc()).limit(1).scalar_subquery()
    campaign = sa.func.coalesce(s.campaign_id, sa.case((s.utm_campaign.is_not(None), by_utm)))
    qualified = d.max_rank >= RANK["qualified"]
    won = d.stage == WON
    # One row per source and outcome, counted and summed by the database: the report reads a
    # handful of rows whatever the period (five years are ~500k deals).
    rows = session.execute(
        sa.select(s.source_kind, s.form_key, s.utm_source, s.utm_medium, s.utm_campaign,
                  s.our_number, campaign.label("campaign_id"), qualified.label("qualified"),
                  won.label("won"), sa.func.count().label("count"),
                  sa.func.coalesce(sa.func.sum(d.amount).filter(won), 0).label("won_amount"))
        .select_from(deal_facts.outerjoin(lead_sources, s.deal_id == d.deal_id))
        .where(d.day.between(params.first, params.last), *filters)
        .group_by(sa.text("1, 2, 3, 4, 5, 6, 7, 8, 9"))).all()
    leads = [Lead(r.source_kind or "", r.form_key, r.utm_source, r.utm_medium, r.utm_campaign,
                  r.our_number, str(r.campaign_id) if r.campaign_id else None,
                  qualified=bool(r.qualified), won=bool(r.won),
                  won_amount=Decimal(r.won_amount or 0), count=r.count) for r in rows]
    costs = {str(r.campaign_id): {"name": r.name, "budget": r.budget}
             for r in session.execute(sa.select(campaign_costs)).all()}
    group = "campaign" if "campaign" in params.group_by else "source"
    return roi_rows(leads, costs, group)
