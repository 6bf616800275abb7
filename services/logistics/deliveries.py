"""What sales and reports read from logistics: the deliveries of a client or a deal, and the
delivery report (on time, freight cost per tonne, per region). A mixin of ``LogisticsService``.

The report counts the orders delivered in the period (``delivered_at`` in [date_from, date_to)
business-zone days): on time when delivered by the end of the window. Freight cost per tonne is
the sum of the delivered orders' cost shares over their tonnes. The same figures can be kept by a
read model from ``delivery_status_changed`` alone (it carries the window, weight, cost share,
region and actual times)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from crm_platform.errors import ValidationFailed
from crm_platform.rpc import rpc

from .models import transport_orders

REPORT_ROLES = ("dispatcher", "admin", "director", "sales_head", "integration")


def _ratio(part: Decimal, whole: Decimal, places: str = "0.01") -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal(places), ROUND_HALF_UP))


class DeliveryRpc:
    @rpc
    def client_deliveries(self, client_id: str, limit: int = 100) -> list[dict]:
        """Transport orders of a client, newest first, with their trip, status and times (who may
        see them: as ``list_transport_orders``)."""
        return self.list_transport_orders({"client_id": client_id}, limit=limit)[::-1]

    @rpc
    def deal_deliveries(self, deal_id: str, limit: int = 100) -> list[dict]:
        """Transport orders logistics knows to belong to a deal (hand-made for it, or learned
        from the deal's stage moves); the deal's own timeline is the complete view."""
        return self.list_transport_orders({"deal_id": deal_id}, limit=limit)[::-1]

    @rpc
    def delivery_report(self, date_from: str, date_to: str, region: str | None = None) -> dict:
        """Deliveries of the period [date_from, date_to) (ISO dates, business time zone): how
        many, on time and late, the share on time; tonnes, freight cost and cost per tonne;
        the same per region; and the orders now late and still on the way (dispatchers,
        admins, directors, sales heads — a sales head sees the department's regions)."""
        identity = self.caller.require(*REPORT_ROLES)
        errors: dict = {}
        days = {}
        for key, value in (("date_from", date_from), ("date_to", date_to)):
            try:
                days[key] = date.fromisoformat(str(value)[:10])
            except ValueError:
                errors[key] = ["ожидается дата ГГГГ-ММ-ДД"]
        if not errors and days["date_to"] <= days["date_from"]:
            errors["date_to"] = ["должна быть позже date_from"]
        if not errors and days["date_to"] - days["date_from"] > timedelta(days=3700):
            errors["date_to"] = ["период не длиннее 10 лет"]
        if errors:
            raise ValidationFailed("Период не распознан", fields=errors)
        zone = self._zone()
        start = datetime(days["date_from"].year, days["date_from"].month, days["date_from"].day,
                         tzinfo=zone)
        end = datetime(days["date_to"].year, days["date_to"].month, days["date_to"].day,
                       tzinfo=zone)
        t = transport_orders
        scope = sa.true()
        if region:
            scope = t.c.region == region.upper()
        if identity.role == "sales_head":
            scope = sa.and_(scope, t.c.region.in_(list(identity.regions) or [""]))
        on_time = sa.case((t.c.delivered_at <= t.c.window_end, 1), else_=0)
        query = (sa.select(sa.func.coalesce(t.c.region, "").label("region"),
                           sa.func.count().label("delivered"),
                           sa.func.sum(on_time).label("on_time"),
                           sa.func.coalesce(sa.func.sum(t.c.weight_kg), 0).label("kg"),
                           sa.func.coalesce(sa.func.sum(t.c.freight_cost), 0).label("cost"))
                 .where(t.c.status == "delivered", t.c.delivered_at >= start,
                        t.c.delivered_at < end, scope)
                 .group_by(sa.func.coalesce(t.c.region, "")).order_by("region"))
        with self.db.session() as session:
            rows = session.execute(query).mappings().all()
            still_late = session.execute(sa.select(sa.func.count()).where(
                t.c.late_at.is_not(None), t.c.status.notin_(["delivered", "cancelled"]),
                scope)).scalar_one()

        def figures(delivered, punctual, kg, cost) -> dict:
            tonnes = (Decimal(kg) / 1000).quantize(Decimal("0.001"))
            return {"delivered": int(delivered), "on_time": int(punctual),
                    "late": int(delivered) - int(punctual),
                    "on_time_share": _ratio(punctual, delivered, "0.0001"),
                    "tonnes": str(tonnes), "freight_cost": str(Decimal(cost).quantize(
                        Decimal("0.01"))),
                    "cost_per_tonne": _ratio(cost, tonnes)}

        regions = [{"region": r["region"] or None,
                    **figures(r["delivered"], r["on_time"], r["kg"], r["cost"])} for r in rows]
        total = figures(sum(r["delivered"] for r in rows), sum(r["on_time"] for r in rows),
                        sum((Decimal(r["kg"]) for r in rows), Decimal(0)),
                        sum((Decimal(r["cost"]) for r in rows), Decimal(0)))
        return {"date_from": days["date_from"].isoformat(),
                "date_to": days["date_to"].isoformat(), "region": region, "total": total,
                "regions": regions, "late_on_the_way": int(still_late)}
