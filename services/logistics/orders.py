"""Transport orders: made from posted 1C shipments (``erp_bridge`` events) or by hand; what is
known of the client (name, region) from the clients service's events; the deal learned from the
deals service's ``deal_stage_changed`` that names the shipment. A mixin of ``LogisticsService``.

From 1C, per shipment (its ``document_guid``), newest ``revision`` only (older or repeated events
change nothing):

* ``erp_shipment_posted`` / ``erp_shipment_changed``: the order is made (status ``new``) or its
  cargo, client and numbers follow the newer version. Consignee and region come from the client
  (address: the dispatcher fills it in); the window is the shipment's date +
  ``DELIVERY_WINDOW_HOURS`` (48); weight, volume and the longest piece come from the lines
  (``domain.cargo``). A shipment posted again after an un-posting re-opens its cancelled order.
  A changed shipment whose order is already on a trip keeps its trip and gets a flag for the
  dispatcher when its weight changed.
* ``erp_shipment_unposted`` / ``erp_shipment_deleted``: an order not yet on the road (``new``,
  ``planned``, ``loading``) is cancelled (taken off its trip); one ``in_transit`` or
  ``delivered`` is not touched but flagged: the goods are out, a person must decide.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.inbox import claim_event
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc

from . import store
from .domain.cargo import ProductSpec, cargo_of
from .domain.fleet import decimal_in
from .models import client_replica, product_specs, transport_orders, trip_stops

ORDER_PREFIX = "ТЗ"
OPEN_STATUSES = ("new", "planned", "loading", "in_transit")
EDITABLE = ("consignee", "address", "region", "window_start", "window_end", "weight_kg",
            "volume_m3", "max_length_m", "needs_crane", "note", "deal_id")


def _specs(session, lines: list[dict]) -> dict:
    guids = {str(line["product_guid"]) for line in lines if line.get("product_guid")}
    if not guids:
        return {}
    rows = session.execute(sa.select(product_specs).where(
        product_specs.c.product_guid.in_([uuid.UUID(g) for g in guids]))).mappings()
    return {str(r["product_guid"]): ProductSpec(r["kg_per_unit"], r["length_m"], r["m3_per_unit"])
            for r in rows}


def _plain_lines(lines: list[dict]) -> list[dict]:
    return [{k: store.plain(v) for k, v in line.items()} for line in lines]


class OrderRpc:
    # -- 1C shipments --------------------------------------------------------------------------
    @event_handler("erp_bridge", "erp_shipment_posted")
    def handle_erp_shipment_posted(self, event):
        self._apply_shipment(event, alive=True)

    @event_handler("erp_bridge", "erp_shipment_changed")
    def handle_erp_shipment_changed(self, event):
        self._apply_shipment(event, alive=True)

    @event_handler("erp_bridge", "erp_shipment_unposted")
    def handle_erp_shipment_unposted(self, event):
        self._apply_shipment(event, alive=False)

    @event_handler("erp_bridge", "erp_shipment_deleted")
    def handle_erp_shipment_deleted(self, event):
        self._apply_shipment(event, alive=False)

    def _apply_shipment(self, event, *, alive: bool) -> None:
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            order = session.execute(sa.select(transport_orders).where(
                transport_orders.c.shipment_guid == p["document_guid"])
                .with_for_update()).mappings().first()
            if order is not None and (order["shipment_revision"] or 0) >= p["revision"]:
                return                                   # an older or repeated state
            if alive:
                self._shipment_alive(session, order, p, now)
            elif order is not None:
                self._shipment_gone(session, order, p, now)
            else:
                # Un-posted before we ever saw it posted: remember the revision only, so a late
                # "posted" of an older revision does not make an order.
                self._insert_order(session, p, now, status="cancelled",
                                   cancel_reason="Отгрузка отменена в 1С")

    def _client(self, session, client_id):
        if client_id is None:
            return None
        return session.execute(sa.select(client_replica).where(
            client_replica.c.client_id == client_id)).mappings().first()

    def _insert_order(self, session, p, now, *, status="new", cancel_reason=None):
        lines = p.get("lines") or []
        cargo = cargo_of(lines, _specs(session, lines))
        client = self._client(session, p["client_id"])
        start = p["document_date"]
        hours = as_int(self.config.get("DELIVERY_WINDOW_HOURS"), 48)
        row = session.execute(sa.insert(transport_orders).values(
            id=uuid.uuid4(), number=store.next_number(session, ORDER_PREFIX, now.year, 6),
            source="erp", shipment_guid=p["document_guid"], shipment_number=p["number"],
            shipment_revision=p["revision"], order_guid=p["order_guid"],
            client_id=p["client_id"], consignee=client["short_name"] if client else "",
            region=client["region"] if client else None, window_start=start,
            window_end=start + timedelta(hours=hours), weight_kg=cargo.weight_kg,
            volume_m3=cargo.volume_m3, max_length_m=cargo.max_length_m,
            lines=_plain_lines(lines), status=status, cancel_reason=cancel_reason,
            flag=("Вес не определён: " + ", ".join(cargo.unknown_lines)[:250]
                  if cargo.unknown_lines else None),
            created_at=now, updated_at=now).returning(*transport_orders.c)).mappings().one()
        if status == "new":
            self._emit_status(session, row, None, now, None)
        return row

    def _shipment_alive(self, session, order, p, now):
        if order is None:
            self._insert_order(session, p, now)
            return
        lines = p.get("lines") or []
        cargo = cargo_of(lines, _specs(session, lines))
        values = {"shipment_revision": p["revision"], "shipment_number": p["number"],
                  "order_guid": p["order_guid"], "lines": _plain_lines(lines),
                  "updated_at": now}
        if p["client_id"] and p["client_id"] != order["client_id"]:
            client = self._client(session, p["client_id"])
            values.update(client_id=p["client_id"])
            if client is not None:
                values.update(consignee=client["short_name"], region=client["region"])
        if order["status"] in ("new", "cancelled"):
            values.update(weight_kg=cargo.weight_kg, volume_m3=cargo.volume_m3,
                          max_length_m=cargo.max_length_m,
                          flag=("Вес не определён: " + ", ".join(cargo.unknown_lines)[:250]
                                if cargo.unknown_lines else None))
        elif cargo.weight_kg != order["weight_kg"]:
            values["flag"] = (f"Отгрузка {p['number']} изменена в 1С после планирования: вес "
                              f"{cargo.weight_kg} кг вместо {order['weight_kg']} кг")
        if order["status"] == "cancelled" and order["source"] == "erp" \
                and (order["cancel_reason"] or "").endswith("в 1С"):
            values.update(status="new", cancel_reason=None, trip_id=None, planned_at=None,
                          freight_cost=None)
            row = store.update_order(session, order["id"], values)
            self._emit_status(session, row, "cancelled", now, None,
                              reason="Отгрузка снова проведена в 1С")
        else:
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.id == order["id"]).values(**values))

    def _shipment_gone(self, session, order, p, now):
        values = {"shipment_revision": p["revision"], "updated_at": now}
        if order["status"] in ("new", "planned", "loading"):
            reason = "Отгрузка отменена в 1С"
            self._cancel_order(session, order, now, reason, by=None, extra=values)
        elif order["status"] in ("in_transit", "delivered"):
            values["flag"] = (f"Отгрузка {p['number']} отменена в 1С, а заказ уже "
                              + ("в пути" if order["status"] == "in_transit" else "доставлен"))
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.id == order["id"]).values(**values))
        else:
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.id == order["id"]).values(**values))

    # -- replicas of clients and deals ----------------------------------------------------------
    @event_handler("clients", "client_created")
    def handle_client_created(self, event):
        self._upsert_client(event)

    @event_handler("clients", "client_updated")
    def handle_client_updated(self, event):
        self._upsert_client(event)

    def _upsert_client(self, event):
        p = event.payload
        values = {"short_name": p["short_name"], "region": p["region"],
                  "owner_id": p["owner_id"], "updated_at": utcnow()}
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(pg_insert(client_replica).values(client_id=p["client_id"], **values)
                            .on_conflict_do_update(index_elements=["client_id"], set_=values))
            # Orders still waiting for a plan take the client's name and region when they had
            # none (a shipment that arrived before the client's card).
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.client_id == p["client_id"],
                transport_orders.c.status == "new", transport_orders.c.region.is_(None))
                .values(region=p["region"]))
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.client_id == p["client_id"],
                transport_orders.c.status == "new", transport_orders.c.consignee == "")
                .values(consignee=p["short_name"]))

    @event_handler("clients", "client_owner_changed")
    def handle_client_owner_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.update(client_replica).where(
                client_replica.c.client_id == p["client_id"]).values(owner_id=p["new_owner_id"]))

    @event_handler("clients", "clients_merged")
    def handle_clients_merged(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.client_id == p["merged_id"]).values(
                client_id=p["survivor_id"]))
            session.execute(sa.delete(client_replica).where(
                client_replica.c.client_id == p["merged_id"]))

    @event_handler("deals", "deal_stage_changed")
    def handle_deal_stage_changed(self, event):
        """A move caused by a 1C document names it: when that is a shipment of ours, its
        transport order learns the deal."""
        p = event.payload
        if not p.get("document_guid"):
            return
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.update(transport_orders).where(
                transport_orders.c.shipment_guid == p["document_guid"],
                transport_orders.c.deal_id.is_(None)).values(deal_id=p["deal_id"]))

    # -- by hand -------------------------------------------------------------------------------
    def _order_fields(self, data: dict, *, partial: bool) -> dict:
        errors: dict = {}
        out: dict = {}
        for key in ("consignee", "address"):
            if key in data or not partial:
                text = " ".join(str(data.get(key) or "").split())
                if not text and not partial:
                    errors[key] = ["обязательное поле"]
                elif len(text) > (300 if key == "consignee" else 500):
                    errors[key] = ["слишком длинно"]
                out[key] = text
        if "region" in data or not partial:
            region = str(data.get("region") or "").strip().upper()
            if not region and not partial:
                errors["region"] = ["обязательное поле (код региона, например RU-SVE)"]
            elif region and len(region) > 16:
                errors["region"] = ["код региона не длиннее 16 символов"]
            out["region"] = region or None
        for key in ("window_start", "window_end"):
            if key in data or not partial:
                out[key] = store.as_time(data.get(key), key, errors)
        limits = {"weight_kg": Decimal(60000), "volume_m3": Decimal(200),
                  "max_length_m": Decimal(25)}
        for key, high in limits.items():
            if key in data:
                out[key] = decimal_in(data.get(key), key, errors, low=Decimal(0), high=high,
                                      required=False)
        if "needs_crane" in data:
            out["needs_crane"] = bool(data["needs_crane"])
        if "note" in data:
            out["note"] = str(data.get("note") or "")[:2000]
        for key in ("deal_id", "client_id"):
            if key in data:
                out[key] = store.as_uuid(data[key], key) if data[key] else None
        if not partial and out.get("weight_kg") is None and "weight_kg" not in errors:
            errors["weight_kg"] = ["обязательное поле"]
        if out.get("window_start") and out.get("window_end") \
                and out["window_start"] > out["window_end"]:
            errors["window_end"] = ["окно доставки заканчивается раньше, чем начинается"]
        if errors:
            raise ValidationFailed("Заявка не прошла проверку", fields=errors)
        return out

    @rpc
    @idempotent
    def create_transport_order(self, data: dict) -> dict:
        """A transport order by hand (dispatcher, admin): consignee, address, region,
        window_start/window_end, weight_kg (required), volume_m3, max_length_m, needs_crane,
        note, client_id, deal_id."""
        identity = self.caller.require(*store.MANAGE)
        values = self._order_fields(data, partial=False)
        now = utcnow()
        with self.db.session() as session:
            row = session.execute(sa.insert(transport_orders).values(
                id=uuid.uuid4(), number=store.next_number(session, ORDER_PREFIX, now.year, 6),
                source="manual", status="new", created_at=now, updated_at=now,
                created_by=store.as_uuid(identity.user_id, "user_id"), **values)
                .returning(*transport_orders.c)).mappings().one()
            self._emit_status(session, row, None, now, identity.user_id)
            return store.row_dict(row, without=("lines",))

    @rpc
    def update_transport_order(self, order_id: str, changes: dict) -> dict:
        """Change an order's address, region, window, cargo, note or deal (dispatcher, admin).
        The cargo and window of an order already on a trip stay as planned (take it off first)."""
        self.caller.require(*store.MANAGE)
        values = self._order_fields(changes, partial=True)
        with self.db.session() as session:
            order = store.get_or_404(session, transport_orders, order_id, "Заявка", lock=True)
            if order["status"] in ("delivered", "cancelled"):
                raise Conflict("Заявка закрыта", code="order_closed")
            planned = {"window_start", "window_end", "weight_kg", "max_length_m", "needs_crane"}
            if order["status"] != "new" and planned & set(values):
                raise Conflict("Заявка уже в рейсе: сначала снимите её с рейса",
                               code="order_on_trip")
            merged = {**order, **values}
            if merged["window_start"] > merged["window_end"]:
                raise ValidationFailed("Заявка не прошла проверку", fields={
                    "window_end": ["окно доставки заканчивается раньше, чем начинается"]})
            if "weight_kg" in values and values["weight_kg"] is not None:
                values["flag"] = None
            row = session.execute(sa.update(transport_orders).where(
                transport_orders.c.id == order["id"]).values(updated_at=utcnow(), **values)
                .returning(*transport_orders.c)).mappings().one()
            return store.row_dict(row, without=("lines",))

    @rpc
    def cancel_transport_order(self, order_id: str, reason: str = "") -> dict:
        """Cancel an order not yet delivered (dispatcher, admin); it leaves its trip."""
        identity = self.caller.require(*store.MANAGE)
        reason = " ".join(str(reason or "").split())[:300] or "Отменена диспетчером"
        now = utcnow()
        with self.db.session() as session:
            order = store.get_or_404(session, transport_orders, order_id, "Заявка", lock=True)
            if order["status"] in ("delivered", "cancelled"):
                raise Conflict("Доставленную или отменённую заявку отменить нельзя",
                               code="order_closed", extra={"order_status": order["status"]})
            row = self._cancel_order(session, order, now, reason, by=identity.user_id)
            return store.row_dict(row, without=("lines",))

    def _cancel_order(self, session, order, now, reason, *, by, extra=None):
        trip_id = order["trip_id"]
        if trip_id is not None:
            session.execute(sa.update(trip_stops).where(
                trip_stops.c.transport_order_id == order["id"],
                trip_stops.c.status != "cancelled").values(status="cancelled", updated_at=now))
        row = store.update_order(session, order["id"], {
            **(extra or {}), "status": "cancelled", "cancel_reason": reason, "updated_at": now})
        self._emit_status(session, row, order["status"], now, by, reason=reason)
        if trip_id is not None:
            self._refresh_trip(session, trip_id, now)
        return row

    @rpc
    def list_transport_orders(self, filters: dict | None = None, limit: int = 200) -> list[dict]:
        """Orders by ``status`` (one or a list), ``region``, ``client_id``, ``deal_id``,
        ``trip_id``, ``window_from``/``window_to`` (ISO), newest window last. Dispatchers,
        admins, directors and integrations see all; a sales head those of the department's
        regions; a manager those of own clients."""
        query = self._orders_query(filters, self.caller.require()).order_by(
            transport_orders.c.window_end, transport_orders.c.number)
        with self.db.session() as session:
            rows = session.execute(query.limit(max(1, min(int(limit), 1000)))).mappings().all()
            return self._order_items(session, rows)

    @rpc
    def page_transport_orders(self, filters: dict | None = None, limit: int = 100,
                              cursor: str | None = None, sort: str | None = None) -> dict:
        """``list_transport_orders`` in cursor pages: ``{"items", "next_cursor"}``, by ``sort``
        (``window_end`` — the default, ``window_start``, ``number``; ``-`` descending)."""
        query = self._orders_query(filters, self.caller.require())
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, query, sort=sort, default="window_end", id_column=transport_orders.c.id,
                sorts={"window_end": transport_orders.c.window_end,
                       "window_start": transport_orders.c.window_start,
                       "number": transport_orders.c.number},
                cursor=cursor, limit=max(1, min(int(limit), 500)))
            return {"items": self._order_items(session, rows), "next_cursor": next_cursor}

    @staticmethod
    def _order_items(session, rows) -> list[dict]:
        context = store.trip_context(session, [r["trip_id"] for r in rows])
        return [{**store.row_dict(r, without=("lines",)),
                 "trip_number": context.get(r["trip_id"], {}).get("number"),
                 "vehicle_plate": context.get(r["trip_id"], {}).get("plate"),
                 "driver_name": context.get(r["trip_id"], {}).get("driver_name")}
                for r in rows]

    def _orders_query(self, filters: dict | None, identity):
        filters = filters or {}
        errors: dict = {}
        query = sa.select(transport_orders)
        status = filters.get("status")
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in ("new",) + OPEN_STATUSES[1:]
                   + ("delivered", "cancelled")]
            if bad:
                errors["status"] = [f"неизвестный статус: {', '.join(bad)}"]
            query = query.where(transport_orders.c.status.in_(statuses))
        for key in ("client_id", "deal_id", "trip_id"):
            if filters.get(key):
                query = query.where(transport_orders.c[key] == store.as_uuid(filters[key], key))
        if filters.get("region"):
            query = query.where(transport_orders.c.region == str(filters["region"]).upper())
        for key, op in (("window_from", "ge"), ("window_to", "le")):
            if filters.get(key):
                moment = store.as_time(filters[key], key, errors)
                if moment is not None:
                    column = transport_orders.c.window_end
                    query = query.where(column >= moment if op == "ge" else column <= moment)
        if errors:
            raise ValidationFailed("Фильтр не прошёл проверку", fields=errors)
        query = self._visible_orders(query, identity)
        return query

    @staticmethod
    def _visible_orders(query, identity):
        if identity.role in store.READ_ALL:
            return query
        if identity.role == "sales_head":
            return query.where(transport_orders.c.region.in_(list(identity.regions) or [""]))
        if identity.role == "manager":
            owned = sa.select(client_replica.c.client_id).where(
                client_replica.c.owner_id == store.as_uuid(identity.user_id, "user_id"))
            return query.where(transport_orders.c.client_id.in_(owned))
        return query.where(sa.false())

    @rpc
    def get_transport_order(self, order_id: str) -> dict:
        """One order with its 1C lines and its stops on trips (current and cancelled ones)."""
        identity = self.caller.require()
        with self.db.session() as session:
            query = self._visible_orders(sa.select(transport_orders).where(
                transport_orders.c.id == store.as_uuid(order_id, "order_id")), identity)
            row = session.execute(query).mappings().first()
            if row is None:
                store.get_or_404(session, transport_orders, order_id, "Заявка")
                raise Forbidden("Нет доступа к заявке", code="order_forbidden")
            stops = session.execute(sa.select(trip_stops).where(
                trip_stops.c.transport_order_id == row["id"]).order_by(
                trip_stops.c.updated_at)).mappings().all()
            context = store.trip_context(session, [row["trip_id"]])
            return {**store.row_dict(row), "stops": [store.row_dict(s) for s in stops],
                    "trip_number": context.get(row["trip_id"], {}).get("number")}
