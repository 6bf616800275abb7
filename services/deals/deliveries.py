"""Deliveries on the deal: the logistics service's ``delivery_status_changed`` and
``delivery_late``. A mixin of ``DealsService``.

* Each transport order is one ``delivery`` entry on its deal's timeline (ref: the transport order
  id), replaced by each newer state (``sequence``; older or repeated events change nothing):
  status, trip, vehicle, driver, planned and actual times, the window, its freight cost share.
* The deal: the event's ``deal_id`` when logistics knows it, else the deal of the ERP shipment
  (``shipment_guid``: its anchors in ``deal_orders``) or of the customer order. A shipment this
  service has not received yet is retried (the handler raises; the platform retries and finally
  dead-letters); a transport order with no ERP document and no deal touches no deal.
* The shipment step: the ERP shipment stays the source of ``shipped_amount`` and the stage; the
  delivery step is closed when every transport order of the deal is delivered (or cancelled) and
  at least one was delivered — ``deal_deliveries`` answers it (``all_delivered``), the owner is
  notified ("Заказ доставлен"), and the open "delivery late" tasks of that order are closed.
* ``delivery_late``: a task for the deal's owner (``source = delivery_late``, due in two working
  hours, one per transport order) and the timeline entry marked late.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.consumer import event_handler
from crm_platform.inbox import claim_event
from crm_platform.rpc import rpc

from . import client_timeline, moves, store
from .models import deal_orders, deals, erp_documents, tasks, timeline

STATUS_TITLES = {"new": "ожидает рейса", "planned": "запланирован рейс", "loading": "погрузка",
                 "in_transit": "в пути", "delivered": "доставлен", "cancelled": "доставка отменена"}
ENTRY_FIELDS = ("transport_order_id", "number", "sequence", "trip_id", "trip_number", "status",
                "previous_status", "at", "window_start", "window_end", "planned_at",
                "loaded_at", "departed_at", "delivered_at", "on_time", "vehicle_plate",
                "driver_name", "weight_kg", "freight_cost", "reason", "shipment_guid")


class ShipmentNotYetKnown(Exception):
    """The delivery names an ERP shipment this service has not received yet: try again later."""


class DeliveryEntrypoints:
    def _deal_of_delivery(self, session, p):
        if p.get("deal_id"):
            return session.execute(sa.select(deals).where(deals.c.id == p["deal_id"])
                                   ).mappings().first()
        anchors = [p["order_guid"]] if p.get("order_guid") else []
        if p.get("shipment_guid"):
            doc = session.execute(sa.select(erp_documents.c.anchors, erp_documents.c.order_guid)
                                  .where(erp_documents.c.guid == p["shipment_guid"])).first()
            if doc is None:
                raise ShipmentNotYetKnown(str(p["shipment_guid"]))
            anchors = (list(doc.anchors or []) + [g for g in (doc.order_guid,) if g] + anchors
                       + [p["shipment_guid"]])
        if not anchors:
            return None
        return session.execute(
            sa.select(deals).join(deal_orders, deal_orders.c.deal_id == deals.c.id)
            .where(deal_orders.c.order_guid.in_(anchors)).limit(1)).mappings().first()

    @staticmethod
    def _upsert_delivery(session, deal_id, at, ref: str, data: dict, *, late_only=False):
        """The deal's delivery entry for one transport order. A status replaces the entry only
        when its ``sequence`` is higher (concurrent workers may apply events out of order); the
        ``late`` mark, once set, stays. Returns whether the row was written."""
        row = store.timeline_row(deal_id, at, "delivery", ref, data)
        insert = pg_insert(timeline).values(**row)
        if late_only:
            statement = insert.on_conflict_do_update(
                index_elements=["deal_id", "kind", "ref"],
                set_={"data": timeline.c.data.op("||")(sa.text(
                    "jsonb_build_object('late', true)"))})
        else:
            kept_late = sa.text("jsonb_build_object('late', coalesce((timeline.data->>'late')"
                                "::boolean, false) OR coalesce((excluded.data->>'late')"
                                "::boolean, false))")
            statement = insert.on_conflict_do_update(
                index_elements=["deal_id", "kind", "ref"],
                set_={"at": insert.excluded.at,
                      "data": insert.excluded.data.op("||")(kept_late)},
                where=sa.text("coalesce((timeline.data->>'sequence')::int, 0) < "
                              "(excluded.data->>'sequence')::int"))
        written = session.execute(statement.returning(timeline.c.id)).first() is not None
        DeliveryEntrypoints._delivery_to_client(session, deal_id, ref)
        return written

    @staticmethod
    def _delivery_to_client(session, deal_id, ref: str) -> None:
        """The client's feed shows the deal's delivery entry as it now stands (the deal's row
        decided which state wins, under its lock, so a copy of it is never older)."""
        row = session.execute(sa.select(timeline, deals.c.client_id).join(
            deals, deals.c.id == timeline.c.deal_id).where(
            timeline.c.deal_id == deal_id, timeline.c.kind == "delivery",
            timeline.c.ref == ref)).mappings().first()
        if row is not None:
            client_timeline.record(session, [client_timeline.deal_entry(row["client_id"], row)])

    @event_handler("logistics", "delivery_status_changed")
    def handle_delivery_status_changed(self, event):
        """A transport order of a deal changed status: the deal's delivery entry follows it; a
        delivery notifies the owner and closes the order's "delivery late" task."""
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            deal = self._deal_of_delivery(session, p)
            if deal is None:
                return
            written = self._upsert_delivery(
                session, deal["id"], p["at"], str(p["transport_order_id"]),
                {**{k: p.get(k) for k in ENTRY_FIELDS}, "late": False,
                 "title": STATUS_TITLES.get(p["status"], p["status"])})
            if written and p["status"] == "delivered":
                store.notify(session, deal["owner_id"], "delivery_delivered",
                             f"Заказ доставлен клиенту: {p['number']}", now, deal_id=deal["id"],
                             client_id=deal["client_id"])
                late_tasks = session.execute(sa.select(tasks).where(
                    tasks.c.deal_id == deal["id"], tasks.c.source == "delivery_late",
                    tasks.c.status == "open", tasks.c.title.contains(p["number"]))
                ).mappings().all()
                moves.close_tasks(session, self.outbox, [dict(t) for t in late_tasks], "done",
                                  by=None, at=now, result="Заказ доставлен")

    @event_handler("logistics", "delivery_late")
    def handle_delivery_late(self, event):
        """A delivery window ended without delivery: a task for the deal's owner (one per
        transport order) and the delivery entry marked late."""
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            deal = self._deal_of_delivery(session, p)
            if deal is None:
                return
            # Before any status reached us (sequence 0), the entry is made from this event.
            self._upsert_delivery(
                session, deal["id"], p["detected_at"], str(p["transport_order_id"]),
                {**{k: p.get(k) for k in ENTRY_FIELDS}, "sequence": 0, "late": True,
                 "title": STATUS_TITLES.get(p["status"], p["status"])}, late_only=True)
            exists = session.execute(sa.select(tasks.c.id).where(
                tasks.c.deal_id == deal["id"], tasks.c.source == "delivery_late",
                tasks.c.title.contains(p["number"]))).first()
            current = session.execute(sa.select(timeline.c.data["status"].astext).where(
                timeline.c.deal_id == deal["id"], timeline.c.kind == "delivery",
                timeline.c.ref == str(p["transport_order_id"]))).scalar()
            # Delivered (or cancelled) by the time we hear of it: nobody needs to call.
            if exists is not None or current in ("delivered", "cancelled"):
                return
            calendar = store.work_calendar(session)
            window = p["window_end"].astimezone(calendar.tz)
            moves.create_task(
                session, self.outbox, at=now, deal_id=deal["id"], client_id=deal["client_id"],
                assignee_id=deal["owner_id"], department_id=deal["department_id"], kind="call",
                title=(f"Доставка {p['number']} опаздывает (окно до "
                       f"{window:%d.%m %H:%M}): предупредите клиента"),
                source="delivery_late", due_at=calendar.due(now, 2, "working_hours"))

    @rpc
    def deal_deliveries(self, deal_id: str) -> dict:
        """The deal's deliveries as the logistics events told them, newest first, and whether
        the delivery step is closed (``all_delivered``: every transport order delivered or
        cancelled, at least one delivered). The shipped sum stays the ERP's."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_deal(session, identity, deal_id)
            entries = [r["data"] for r in session.execute(sa.select(timeline).where(
                timeline.c.deal_id == row["id"], timeline.c.kind == "delivery").order_by(
                timeline.c.at.desc())).mappings()]
        statuses = [e.get("status") for e in entries]
        delivered = statuses.count("delivered")
        return {"deal_id": str(row["id"]), "deliveries": entries, "orders": len(entries),
                "delivered": delivered, "late": sum(1 for e in entries if e.get("late")),
                "all_delivered": delivered > 0 and all(
                    s in ("delivered", "cancelled") for s in statuses),
                "shipped_amount": str(row["shipped_amount"])}
