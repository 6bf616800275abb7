"""The funnel board's column heads: how many deals and how much money each stage holds, for the
deals the caller may see and the board's filters, counted in the database (a board shows a few
cards per column; its sums must still cover every deal)."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from crm_platform.rpc import rpc

from . import store
from .models import deals


class BoardEntrypoints:
    """A mixin of ``DealsService`` (uses its ``_filter_deals``)."""

    @rpc
    def stage_totals(self, filters: dict | None = None) -> list[dict]:
        """Per stage of the deals matching ``filters`` (as ``list_deals``'s), those the caller
        may see: ``[{"stage", "deals", "amount", "stalled"}]`` — ``amount`` is the pipeline
        value (the ordered sum once there is an order, else the potential), a decimal string."""
        identity = self.caller.require()
        value = sa.case((deals.c.ordered_amount > 0, deals.c.ordered_amount),
                        else_=sa.func.coalesce(deals.c.amount, 0))
        query = self._filter_deals(store.visible(sa.select(
            deals.c.stage, sa.func.count().label("deals"),
            sa.func.coalesce(sa.func.sum(value), 0).label("amount"),
            sa.func.count(deals.c.stalled_at).label("stalled")), deals, identity),
            filters or {}).group_by(deals.c.stage).order_by(deals.c.stage)
        with self.db.session() as session:
            return [{"stage": r.stage, "deals": r.deals,
                     "amount": str(Decimal(r.amount).quantize(Decimal("0.01"))),
                     "stalled": r.stalled} for r in session.execute(query)]
