"""Trips: the planner's proposal, trips made from it or by hand, status per stop, cancellation,
freight cost and its split, the driver's view and delivery-note photos, and the lateness scan.
A mixin of ``LogisticsService``.

Every status change of a transport order is written with its event ``delivery_status_changed``
in one transaction. The lateness scan (every ``LATENESS_SCAN_SECONDS``, 60; 0: off) claims orders
whose window has ended undelivered with ``FOR UPDATE SKIP LOCKED`` and marks them, so several
replicas raise ``delivery_late`` once per order.

Photos of signed delivery notes: JPEG, PNG or WebP (recognised by their first bytes, not by the
name), up to ``LOGISTICS_MAX_PHOTO_BYTES`` (8 MB), stored as
``LOGISTICS_FILES_DIR/<trip id>/<sha256>.<ext>`` (written to a temporary name and renamed, so a
reader never sees half a file; the same photo twice is one file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from nameko.timer import timer

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc

from . import store
from .domain import planner
from .domain.costs import allocate, trip_cost
from .domain.fleet import decimal_in
from .domain.status import check_stop_move, trip_move_targets, trip_status
from .models import (
    carriers,
    delivery_notes,
    drivers,
    transport_orders,
    trip_stops,
    trips,
    vehicles,
)

TRIP_PREFIX = "Р"
LIVE = ("planned", "loading", "in_transit")
TIME_OF = {"loading": "loaded_at", "in_transit": "departed_at", "delivered": "delivered_at"}
PHOTO_TYPES = {b"\xff\xd8\xff": ("image/jpeg", "jpg"), b"\x89PNG\r\n\x1a\n": ("image/png", "png")}
_last_scan: dict[str, float] = {}


def photo_kind(content: bytes) -> tuple[str, str] | None:
    """(content type, extension) of a JPEG, PNG or WebP image, else None."""
    for magic, kind in PHOTO_TYPES.items():
        if content.startswith(magic):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


class TripRpc:
    # -- events --------------------------------------------------------------------------------
    def _emit_status(self, session, order, previous, at, by, *, reason=None) -> None:
        context = store.trip_context(session, [order["trip_id"]]).get(order["trip_id"])
        delivered = order["delivered_at"] if order["status"] == "delivered" else None
        self.outbox.emit(session, "delivery_status_changed", {
            **store.delivery_payload(order, context), "status": order["status"],
            "previous_status": previous, "at": at, "loaded_at": order["loaded_at"],
            "departed_at": order["departed_at"], "delivered_at": delivered,
            "on_time": (delivered <= order["window_end"]) if delivered else None,
            "reason": reason, "changed_by": by})

    # -- the planner ---------------------------------------------------------------------------
    @rpc
    def propose_trips(self, day: str | None = None, region: str | None = None) -> dict:
        """The greedy planner's proposal (see ``domain.planner``) for the orders waiting for a
        trip whose window starts before the end of ``day`` (ISO date in the business time zone;
        default today), on the active vehicles with no live trip that day. Nothing is booked."""
        self.caller.require(*store.MANAGE, "director")
        start, end = self._day_span(day)
        with self.db.session() as session:
            query = sa.select(transport_orders).where(transport_orders.c.status == "new",
                                                      transport_orders.c.window_start < end)
            if region:
                query = query.where(transport_orders.c.region == region.upper())
            rows = session.execute(query).mappings().all()
            busy = sa.select(trips.c.vehicle_id).where(
                trips.c.status.in_(LIVE), trips.c.planned_start < end,
                trips.c.planned_end > start)
            fleet = session.execute(sa.select(vehicles).where(
                vehicles.c.active, vehicles.c.id.notin_(busy))).mappings().all()
        by_id = {str(r["id"]): r for r in rows}
        proposal = planner.propose(
            [planner.OrderToPlan(str(r["id"]), r["number"], r["region"], r["window_start"],
                                 r["window_end"], r["weight_kg"], r["max_length_m"],
                                 r["needs_crane"]) for r in rows],
            [planner.Vehicle(str(v["id"]), v["plate"], v["kind"], v["payload_t"] * 1000,
                             v["body_length_m"]) for v in fleet])

        def order_view(o):
            r = by_id[o.id]
            return {k: store.plain(r[k]) for k in (
                "id", "number", "consignee", "address", "region", "window_start", "window_end",
                "weight_kg", "max_length_m", "needs_crane")}

        return {
            "day": start.date().isoformat() if day is None else day,
            "trips": [{"vehicle_id": t.vehicle.id, "vehicle_plate": t.vehicle.plate,
                       "vehicle_kind": t.vehicle.kind,
                       "payload_kg": store.plain(t.vehicle.payload_kg),
                       "body_length_m": store.plain(t.vehicle.body_length_m),
                       "region": t.region, "weight_kg": store.plain(t.weight_kg),
                       "max_length_m": store.plain(t.max_length_m),
                       "window_start": t.window_start.isoformat(),
                       "window_end": t.window_end.isoformat(),
                       "orders": [order_view(o) for o in t.orders]} for t in proposal.trips],
            "unplaced": [{**order_view(u.order), "reason": u.reason} for u in proposal.unplaced]}

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(str(self.config.get("BUSINESS_TIMEZONE") or "Europe/Moscow"))

    def _day_span(self, day: str | None) -> tuple[datetime, datetime]:
        zone = self._zone()
        if day:
            try:
                local = datetime.fromisoformat(str(day)[:10])
            except ValueError:
                raise ValidationFailed("Дата не распознана", fields={
                    "day": ["ожидается дата ГГГГ-ММ-ДД"]}) from None
        else:
            local = utcnow().astimezone(zone)
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        return start, start + timedelta(days=1)

    # -- making trips --------------------------------------------------------------------------
    @rpc
    @idempotent
    def create_trip(self, data: dict) -> dict:
        """A trip (dispatcher, admin): ``vehicle_id``, ``driver_id``, ``planned_start`` (ISO with
        zone), ``distance_km``, ``duration_h``, optional ``planned_end`` (default start +
        duration) and ``stops`` — ``[{"transport_order_id", "planned_at"?}]`` in delivery order
        (or ``order_ids``). Every order must be waiting (``new``), of known weight, and all of
        them within the vehicle's payload and body length (a crane vehicle for crane orders);
        the vehicle and the driver must be free for the trip's time. The freight cost is
        computed and split over the orders by weight; each order becomes ``planned``."""
        identity = self.caller.require(*store.MANAGE)
        errors: dict = {}
        stops_in = data.get("stops")
        if stops_in is None:
            stops_in = [{"transport_order_id": oid} for oid in data.get("order_ids") or []]
        if not isinstance(stops_in, list) or not stops_in:
            errors["stops"] = ["нужна хотя бы одна заявка"]
            stops_in = []
        start = store.as_time(data.get("planned_start"), "planned_start", errors)
        distance = store_decimal(data.get("distance_km"), "distance_km", errors, Decimal(5000))
        duration = store_decimal(data.get("duration_h"), "duration_h", errors, Decimal(240))
        end = store.as_time(data.get("planned_end"), "planned_end", errors, required=False)
        if end is None and start is not None and duration is not None:
            end = start + timedelta(hours=float(duration))
        if start and end and end < start:
            errors["planned_end"] = ["рейс заканчивается раньше, чем начинается"]
        order_ids, planned_at = [], {}
        for i, stop in enumerate(stops_in):
            try:
                oid = store.as_uuid((stop or {}).get("transport_order_id"),
                                    f"stops.{i}.transport_order_id")
            except ValidationFailed as exc:
                errors.update(exc.fields)
                continue
            if oid in order_ids:
                errors[f"stops.{i}.transport_order_id"] = ["заявка указана дважды"]
            order_ids.append(oid)
            planned_at[oid] = store.as_time(stop.get("planned_at"), f"stops.{i}.planned_at",
                                            errors, required=False)
        for key in ("vehicle_id", "driver_id"):
            if not data.get(key):
                errors[key] = ["обязательное поле"]
        if errors:
            raise ValidationFailed("Рейс не прошёл проверку", fields=errors)
        now = utcnow()
        with self.db.session() as session:
            vehicle = store.get_or_404(session, vehicles, data["vehicle_id"], "Машина")
            driver = store.get_or_404(session, drivers, data["driver_id"], "Водитель")
            if not vehicle["active"]:
                errors["vehicle_id"] = ["машина выведена из работы"]
            if not driver["active"]:
                errors["driver_id"] = ["водитель не работает"]
            orders = {r["id"]: r for r in session.execute(
                sa.select(transport_orders).where(transport_orders.c.id.in_(order_ids))
                .order_by(transport_orders.c.id).with_for_update()).mappings()}
            for i, oid in enumerate(order_ids):
                order = orders.get(oid)
                if order is None:
                    errors[f"stops.{i}.transport_order_id"] = ["заявка не найдена"]
                elif order["status"] != "new":
                    errors[f"stops.{i}.transport_order_id"] = [
                        f"заявка {order['number']} не ожидает рейса (статус {order['status']})"]
                elif order["weight_kg"] is None:
                    errors[f"stops.{i}.transport_order_id"] = [
                        f"у заявки {order['number']} не указан вес"]
            if errors:
                raise ValidationFailed("Рейс не прошёл проверку", fields=errors)
            weight = sum((orders[o]["weight_kg"] for o in order_ids), Decimal(0))
            length = max((orders[o]["max_length_m"] or Decimal(0) for o in order_ids),
                         default=Decimal(0))
            if weight > vehicle["payload_t"] * 1000:
                errors["vehicle_id"] = [f"груз {weight} кг больше грузоподъёмности "
                                        f"{vehicle['payload_t']} т"]
            elif length > vehicle["body_length_m"]:
                errors["vehicle_id"] = [f"длина груза {length} м больше кузова "
                                        f"{vehicle['body_length_m']} м"]
            elif vehicle["kind"] != "crane" and any(orders[o]["needs_crane"] for o in order_ids):
                errors["vehicle_id"] = ["для разгрузки нужна машина с краном"]
            if errors:
                raise ValidationFailed("Машина не подходит для рейса", fields=errors)
            for key, row in (("vehicle_id", vehicle), ("driver_id", driver)):
                clash = session.execute(sa.select(trips.c.number).where(
                    trips.c[key] == row["id"], trips.c.status.in_(LIVE),
                    trips.c.planned_start < end, trips.c.planned_end > start)).scalar()
                if clash:
                    raise Conflict(("Машина" if key == "vehicle_id" else "Водитель")
                                   + f" в это время занят(а) рейсом {clash}",
                                   code="trip_overlap", extra={"field": key, "trip": clash})
            cost, basis = self._cost(session, vehicle, distance, duration, weight)
            shares = allocate(cost, [(o, orders[o]["weight_kg"]) for o in order_ids])
            trip_id = uuid.uuid4()
            session.execute(sa.insert(trips).values(
                id=trip_id, number=store.next_number(session, TRIP_PREFIX, now.year, 5),
                vehicle_id=vehicle["id"], driver_id=driver["id"], status="planned",
                planned_start=start, planned_end=end, distance_km=distance, duration_h=duration,
                cost=cost, cost_basis=basis, created_at=now,
                created_by=store.as_uuid(identity.user_id, "user_id"), updated_at=now))
            session.execute(sa.insert(trip_stops), [
                {"id": uuid.uuid4(), "trip_id": trip_id, "transport_order_id": oid,
                 "position": i + 1, "status": "planned", "planned_at": planned_at.get(oid),
                 "freight_cost": shares[oid], "updated_at": now}
                for i, oid in enumerate(order_ids)])
            for oid in order_ids:
                row = store.update_order(session, oid, {
                    "status": "planned", "trip_id": trip_id, "planned_at": planned_at.get(oid),
                    "freight_cost": shares[oid], "updated_at": now, "cancel_reason": None})
                self._emit_status(session, row, "new", now, identity.user_id)
            return self._trip_view(session, trip_id)

    def _cost(self, session, vehicle, km, hours, weight) -> tuple[Decimal, str]:
        if vehicle["ownership"] == "own":
            cost = trip_cost(ownership="own", km=km, hours=hours, weight_kg=weight,
                             per_km_rate=vehicle["per_km_rate"],
                             per_hour_rate=vehicle["per_hour_rate"])
            return cost, (f"своя машина: {km} км × {vehicle['per_km_rate']} ₽ + {hours} ч × "
                          f"{vehicle['per_hour_rate']} ₽")
        carrier = session.execute(sa.select(carriers).where(
            carriers.c.id == vehicle["carrier_id"])).mappings().one()
        cost = trip_cost(ownership="carrier", km=km, hours=hours, weight_kg=weight,
                         rate_kind=carrier["rate_kind"], rate=carrier["rate"])
        unit = {"per_trip": "за рейс", "per_km": f"× {km} км",
                "per_tonne": f"× {weight / 1000} т"}[carrier["rate_kind"]]
        return cost, f"перевозчик {carrier['name']}: {carrier['rate']} ₽ {unit}"

    def _refresh_trip(self, session, trip_id, now) -> None:
        """The trip's status, actual times and cost split after its stops changed."""
        trip = session.execute(sa.select(trips).where(trips.c.id == trip_id)
                               .with_for_update()).mappings().one()
        stops = session.execute(sa.select(trip_stops, transport_orders.c.weight_kg).join(
            transport_orders, transport_orders.c.id == trip_stops.c.transport_order_id).where(
            trip_stops.c.trip_id == trip_id)).mappings().all()
        status = trip_status([s["status"] for s in stops],
                             cancelled=trip["status"] == "cancelled")
        live = [s for s in stops if s["status"] != "cancelled"]
        values = {"status": status, "updated_at": now}
        if live and status != "cancelled":
            vehicle = session.execute(sa.select(vehicles).where(
                vehicles.c.id == trip["vehicle_id"])).mappings().one()
            weight = sum((s["weight_kg"] or Decimal(0) for s in live), Decimal(0))
            cost, basis = self._cost(session, vehicle, trip["distance_km"], trip["duration_h"],
                                     weight)
            shares = allocate(cost, [(s["transport_order_id"], s["weight_kg"]) for s in live])
            values.update(cost=cost, cost_basis=basis)
            for s in live:
                if s["freight_cost"] != shares[s["transport_order_id"]]:
                    session.execute(sa.update(trip_stops).where(trip_stops.c.id == s["id"])
                                    .values(freight_cost=shares[s["transport_order_id"]]))
                    session.execute(sa.update(transport_orders).where(
                        transport_orders.c.id == s["transport_order_id"]).values(
                        freight_cost=shares[s["transport_order_id"]]))
        if status in ("loading", "in_transit", "delivered") and trip["started_at"] is None:
            values["started_at"] = now
        if status in ("in_transit", "delivered") and trip["departed_at"] is None:
            values["departed_at"] = now
        if status in ("delivered", "cancelled") and trip["finished_at"] is None:
            values["finished_at"] = now
        session.execute(sa.update(trips).where(trips.c.id == trip_id).values(**values))

    # -- status changes ------------------------------------------------------------------------
    @rpc
    def set_stop_status(self, stop_id: str, status: str, reason: str = "") -> dict:
        """Move one stop: ``loading``, ``in_transit``, ``delivered`` (the next status only; the
        trip's driver or a dispatcher) or ``cancelled`` (a dispatcher: the order leaves the trip
        and waits for another). Returns the trip."""
        identity = self.caller.require("driver", *store.MANAGE)
        if status not in ("loading", "in_transit", "delivered", "cancelled"):
            raise ValidationFailed("Неизвестный статус", fields={"status": [
                "loading, in_transit, delivered или cancelled"]})
        now = utcnow()
        with self.db.session() as session:
            stop = store.get_or_404(session, trip_stops, stop_id, "Остановка", lock=True)
            trip = session.execute(sa.select(trips).where(trips.c.id == stop["trip_id"])
                                   .with_for_update()).mappings().one()
            store.check_trip_access(session, identity, trip, write=True)
            if status == "cancelled" and identity.role == "driver":
                raise Forbidden("Снять заявку с рейса может только диспетчер",
                                code="role_required")
            if trip["status"] == "cancelled":
                raise Conflict("Рейс отменён", code="trip_cancelled")
            check_stop_move(stop["status"], status)
            self._move_stop(session, stop, status, now, identity.user_id, reason)
            self._refresh_trip(session, trip["id"], now)
            return self._trip_view(session, trip["id"])

    @rpc
    def set_trip_status(self, trip_id: str, status: str) -> dict:
        """Move every stop of the trip whose next status ``status`` is (``loading`` for the
        whole vehicle, ``in_transit`` when it leaves, ``delivered`` for all stops on the road);
        the trip's driver or a dispatcher. Returns the trip."""
        identity = self.caller.require("driver", *store.MANAGE)
        if status not in ("loading", "in_transit", "delivered"):
            raise ValidationFailed("Неизвестный статус", fields={"status": [
                "loading, in_transit или delivered"]})
        now = utcnow()
        with self.db.session() as session:
            trip = store.get_or_404(session, trips, trip_id, "Рейс", lock=True)
            store.check_trip_access(session, identity, trip, write=True)
            if trip["status"] == "cancelled":
                raise Conflict("Рейс отменён", code="trip_cancelled")
            stops = {s["id"]: s for s in session.execute(sa.select(trip_stops).where(
                trip_stops.c.trip_id == trip["id"]).order_by(trip_stops.c.position)
                .with_for_update()).mappings()}
            for stop_id in trip_move_targets({k: s["status"] for k, s in stops.items()},
                                             status):
                self._move_stop(session, stops[stop_id], status, now, identity.user_id, "")
            self._refresh_trip(session, trip["id"], now)
            return self._trip_view(session, trip["id"])

    def _move_stop(self, session, stop, status, now, by, reason) -> None:
        order = session.execute(sa.select(transport_orders).where(
            transport_orders.c.id == stop["transport_order_id"]).with_for_update()
        ).mappings().one()
        session.execute(sa.update(trip_stops).where(trip_stops.c.id == stop["id"]).values(
            status=status, updated_at=now,
            **({"delivered_at": now} if status == "delivered" else {})))
        if status == "cancelled":
            values = {"status": "new", "trip_id": None, "planned_at": None,
                      "freight_cost": None, "loaded_at": None, "departed_at": None,
                      "updated_at": now}
            reason = " ".join(str(reason or "").split())[:300] or "Снята с рейса"
        else:
            values = {"status": status, TIME_OF[status]: now, "updated_at": now}
        row = store.update_order(session, order["id"], values)
        if status == "cancelled":
            # The event still names the trip it left, for the deal's timeline.
            row = {**row, "trip_id": stop["trip_id"]}
        self._emit_status(session, row, order["status"], now, by, reason=reason or None)

    @rpc
    def cancel_trip(self, trip_id: str, reason: str = "") -> dict:
        """Cancel a trip that has not left (dispatcher, admin): its orders wait for another."""
        identity = self.caller.require(*store.MANAGE)
        now = utcnow()
        reason = " ".join(str(reason or "").split())[:300] or "Рейс отменён"
        with self.db.session() as session:
            trip = store.get_or_404(session, trips, trip_id, "Рейс", lock=True)
            stops = session.execute(sa.select(trip_stops).where(
                trip_stops.c.trip_id == trip["id"]).with_for_update()).mappings().all()
            if trip["status"] == "cancelled":
                raise Conflict("Рейс уже отменён", code="trip_cancelled")
            if any(s["status"] in ("in_transit", "delivered") for s in stops):
                raise Conflict("Рейс уже в пути: снимайте заявки по одной",
                               code="trip_on_the_road")
            session.execute(sa.update(trips).where(trips.c.id == trip["id"]).values(
                status="cancelled", cancel_reason=reason, updated_at=now))
            for stop in stops:
                if stop["status"] != "cancelled":
                    self._move_stop(session, stop, "cancelled", now, identity.user_id, reason)
            self._refresh_trip(session, trip["id"], now)
            return self._trip_view(session, trip["id"])

    # -- reading -------------------------------------------------------------------------------
    def _trip_view(self, session, trip_id) -> dict:
        row = session.execute(
            sa.select(trips, vehicles.c.plate.label("vehicle_plate"),
                      vehicles.c.kind.label("vehicle_kind"),
                      drivers.c.full_name.label("driver_name"),
                      drivers.c.phone.label("driver_phone"))
            .join(vehicles, vehicles.c.id == trips.c.vehicle_id)
            .join(drivers, drivers.c.id == trips.c.driver_id)
            .where(trips.c.id == trip_id)).mappings().one()
        stops = session.execute(
            sa.select(trip_stops, transport_orders.c.number.label("order_number"),
                      transport_orders.c.consignee, transport_orders.c.address,
                      transport_orders.c.region, transport_orders.c.window_start,
                      transport_orders.c.window_end, transport_orders.c.weight_kg,
                      transport_orders.c.client_id, transport_orders.c.deal_id,
                      transport_orders.c.shipment_number)
            .join(transport_orders,
                  transport_orders.c.id == trip_stops.c.transport_order_id)
            .where(trip_stops.c.trip_id == trip_id).order_by(trip_stops.c.position)
        ).mappings().all()
        notes: dict = {}
        for note in session.execute(sa.select(delivery_notes).where(
                delivery_notes.c.trip_id == trip_id).order_by(
                delivery_notes.c.uploaded_at)).mappings():
            notes.setdefault(note["stop_id"], []).append(store.row_dict(note, without=("path",)))
        return {**store.row_dict(row), "stops": [
            {**store.row_dict(s), "delivery_notes": notes.get(s["id"], [])} for s in stops]}

    @rpc
    def get_trip(self, trip_id: str) -> dict:
        """A trip with its vehicle, driver, cost and stops (each with its order and photos)."""
        identity = self.caller.require()
        with self.db.session() as session:
            trip = store.get_or_404(session, trips, trip_id, "Рейс")
            store.check_trip_access(session, identity, trip, write=False)
            return self._trip_view(session, trip["id"])

    @rpc
    def list_trips(self, filters: dict | None = None, limit: int = 100) -> list[dict]:
        """Trips by ``status`` (one or a list), ``day`` (their planned start, business time
        zone), ``vehicle_id``, ``driver_id``; newest first (dispatchers, admins, directors)."""
        self.caller.require(*store.READ_ALL)
        query = self._trips_query(filters).order_by(trips.c.planned_start.desc(), trips.c.number)
        with self.db.session() as session:
            ids = session.execute(query.limit(max(1, min(int(limit), 500)))).scalars().all()
            return [self._trip_view(session, t) for t in ids]

    @rpc
    def page_trips(self, filters: dict | None = None, limit: int = 100, cursor: str | None = None,
                   sort: str | None = None) -> dict:
        """``list_trips`` in cursor pages: ``{"items", "next_cursor"}``, by ``sort``
        (``-planned_start`` — the default, ``planned_start``, ``number``)."""
        self.caller.require(*store.READ_ALL)
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, self._trips_query(filters), sort=sort, default="-planned_start",
                id_column=trips.c.id,
                sorts={"planned_start": trips.c.planned_start, "number": trips.c.number},
                cursor=cursor, limit=max(1, min(int(limit), 500)))
            return {"items": [self._trip_view(session, r["id"]) for r in rows],
                    "next_cursor": next_cursor}

    def _trips_query(self, filters: dict | None):
        filters = filters or {}
        query = sa.select(trips.c.id)
        status = filters.get("status")
        if status:
            query = query.where(trips.c.status.in_([status] if isinstance(status, str)
                                                   else list(status)))
        if filters.get("day"):
            start, end = self._day_span(filters["day"])
            query = query.where(trips.c.planned_start >= start, trips.c.planned_start < end)
        for key in ("vehicle_id", "driver_id"):
            if filters.get(key):
                query = query.where(trips.c[key] == store.as_uuid(filters[key], key))
        return query

    @rpc
    def my_trips(self, day: str | None = None) -> list[dict]:
        """The calling driver's trips of ``day`` (default today) and any of theirs still on the
        road from before (role ``driver``)."""
        identity = self.caller.require("driver")
        start, end = self._day_span(day)
        with self.db.session() as session:
            driver = store.driver_of_user(session, identity)
            ids = session.execute(sa.select(trips.c.id).where(
                trips.c.driver_id == driver["id"], trips.c.status != "cancelled",
                sa.or_(sa.and_(trips.c.planned_start >= start, trips.c.planned_start < end),
                       sa.and_(trips.c.planned_start < start, trips.c.status.in_(LIVE))))
                .order_by(trips.c.planned_start)).scalars().all()
            return [self._trip_view(session, t) for t in ids]

    # -- delivery-note photos ------------------------------------------------------------------
    @rpc
    @idempotent
    def attach_delivery_note(self, stop_id: str, content_base64: str) -> dict:
        """Store a photo of the signed delivery note of a stop (the trip's driver or a
        dispatcher): JPEG, PNG or WebP up to ``LOGISTICS_MAX_PHOTO_BYTES``."""
        identity = self.caller.require("driver", *store.MANAGE)
        limit = as_int(self.config.get("LOGISTICS_MAX_PHOTO_BYTES"), 8 * 1024 * 1024)
        try:
            content = base64.b64decode(content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("Файл не прочитан", fields={"file": ["ожидается base64"]}) \
                from None
        if not content:
            raise ValidationFailed("Файл пуст", fields={"file": ["пустой файл"]})
        if len(content) > limit:
            raise ValidationFailed("Файл слишком велик", fields={
                "file": [f"не больше {limit // (1024 * 1024)} МБ"]})
        kind = photo_kind(content)
        if kind is None:
            raise ValidationFailed("Это не фотография", fields={
                "file": ["допустимы JPEG, PNG и WebP"]})
        content_type, ext = kind
        digest = hashlib.sha256(content).hexdigest()
        now = utcnow()
        with self.db.session() as session:
            stop = store.get_or_404(session, trip_stops, stop_id, "Остановка")
            trip = session.execute(sa.select(trips).where(trips.c.id == stop["trip_id"])
                                   ).mappings().one()
            store.check_trip_access(session, identity, trip, write=True)
            if stop["status"] == "cancelled":
                raise Conflict("Заявка снята с рейса", code="stop_cancelled")
            relative = f"{trip['id']}/{digest}.{ext}"
            self._write_file(relative, content)
            existing = session.execute(sa.select(delivery_notes).where(
                delivery_notes.c.stop_id == stop["id"], delivery_notes.c.sha256 == digest)
            ).mappings().first()
            if existing is None:
                existing = session.execute(sa.insert(delivery_notes).values(
                    id=uuid.uuid4(), stop_id=stop["id"], trip_id=trip["id"], sha256=digest,
                    content_type=content_type, size=len(content), path=relative,
                    uploaded_at=now, uploaded_by=store.as_uuid(identity.user_id, "user_id"))
                    .returning(*delivery_notes.c)).mappings().one()
            return store.row_dict(existing, without=("path",))

    def _files_dir(self) -> Path:
        return Path(str(self.config.get("LOGISTICS_FILES_DIR") or "run/logistics-files"))

    def _write_file(self, relative: str, content: bytes) -> None:
        target = self._files_dir() / relative
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_bytes(content)
        os.replace(temporary, target)

    @rpc
    def get_delivery_note(self, note_id: str) -> dict:
        """A stored delivery-note photo: ``content_type``, ``content_base64``, ``sha256`` (the
        trip's driver, dispatchers, admins, directors)."""
        identity = self.caller.require()
        with self.db.session() as session:
            note = store.get_or_404(session, delivery_notes, note_id, "Фото накладной")
            trip = session.execute(sa.select(trips).where(trips.c.id == note["trip_id"])
                                   ).mappings().one()
            store.check_trip_access(session, identity, trip, write=False)
        path = self._files_dir() / note["path"]
        if not path.exists():
            raise NotFound("Файл фотографии не найден в хранилище", code="file_missing")
        return {"content_type": note["content_type"], "sha256": note["sha256"],
                "content_base64": base64.b64encode(path.read_bytes()).decode()}

    # -- lateness ------------------------------------------------------------------------------
    @timer(interval=10)
    def lateness_timer(self):
        every = as_int(self.config.get("LATENESS_SCAN_SECONDS"), 60)
        if every <= 0 or time.monotonic() - _last_scan.get("at", -1e9) < every:
            return
        _last_scan["at"] = time.monotonic()
        self._scan_lateness()

    @rpc
    def run_lateness_scan(self) -> int:
        """Raise ``delivery_late`` for every order whose window ended undelivered (admin,
        integration; the timer does the same). Returns how many were late."""
        self.caller.require("admin", "integration", "dispatcher")
        return self._scan_lateness()

    def _scan_lateness(self) -> int:
        total = 0
        while True:
            now = utcnow()
            with self.db.session() as session:
                rows = session.execute(sa.select(transport_orders).where(
                    transport_orders.c.late_at.is_(None),
                    transport_orders.c.status.notin_(["delivered", "cancelled"]),
                    transport_orders.c.window_end < now)
                    .order_by(transport_orders.c.window_end).limit(200)
                    .with_for_update(skip_locked=True)).mappings().all()
                if not rows:
                    return total
                context = store.trip_context(session, [r["trip_id"] for r in rows])
                session.execute(sa.update(transport_orders).where(
                    transport_orders.c.id.in_([r["id"] for r in rows])).values(late_at=now))
                self.outbox.emit_many(session, [("delivery_late", {
                    **store.delivery_payload(r, context.get(r["trip_id"])),
                    "status": r["status"], "detected_at": now}) for r in rows])
                total += len(rows)


def store_decimal(value, field: str, errors: dict, high: Decimal) -> Decimal | None:
    return decimal_in(value, field, errors, low=Decimal(0), high=high)
