"""Reading and writing the logistics tables: rows as JSON-friendly dicts, numbering, access."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.identity import Identity

from .models import NUMBER_SEQUENCES, drivers, transport_orders, trips, vehicles

MANAGE = ("dispatcher", "admin")
READ_ALL = ("dispatcher", "admin", "director", "integration")


def plain(value):
    """A value as it crosses RPC: Decimals as strings, times in ISO 8601, UUIDs as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def row_dict(row, *, without=()) -> dict:
    return {k: plain(v) for k, v in dict(row).items() if k not in without}


def as_uuid(value, field: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed("Неверный идентификатор", fields={field: ["ожидается UUID"]}) \
            from None


def as_time(value, field: str, errors: dict, *, required: bool = True) -> datetime | None:
    if value is None or value == "":
        if required:
            errors[field] = ["обязательное поле"]
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            errors[field] = ["ожидается дата и время ISO 8601"]
            return None
    if moment.tzinfo is None:
        errors[field] = ["укажите часовой пояс (например, +03:00 или Z)"]
        return None
    return moment


def next_number(session, prefix: str, year: int, width: int) -> str:
    """``ТЗ-2026-000001``: the prefix's sequence with the year for people to read (the sequence
    does not restart with the year; numbers are unique, not gap-free)."""
    value = session.execute(NUMBER_SEQUENCES[prefix].next_value()).scalar_one()
    return f"{prefix}-{year}-{value:0{width}d}"


def get_or_404(session, table: sa.Table, row_id, what: str, *, lock: bool = False):
    query = sa.select(table).where(table.c.id == as_uuid(row_id, "id"))
    if lock:
        query = query.with_for_update()
    row = session.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"{what} не найден(а)", code="not_found", extra={"id": str(row_id)})
    return row


def save_row(session, table: sa.Table, row_id, values: dict, what: str, now: datetime) -> dict:
    """Update the row ``row_id`` of ``table`` (404 naming ``what`` when missing), or insert a new
    one when ``row_id`` is empty; returns the row as stored."""
    if row_id:
        get_or_404(session, table, row_id, what, lock=True)
        query = sa.update(table).where(table.c.id == as_uuid(row_id, "id")).values(
            updated_at=now, **values)
    else:
        query = sa.insert(table).values(id=uuid.uuid4(), created_at=now, updated_at=now,
                                        **values)
    return session.execute(query.returning(*table.c)).mappings().one()


def driver_of_user(session, identity: Identity):
    """The driver record linked to the caller's login (role ``driver``)."""
    row = session.execute(sa.select(drivers).where(
        drivers.c.user_id == as_uuid(identity.user_id, "user_id"))).mappings().first()
    if row is None or not row["active"]:
        raise Forbidden("Ваша учётная запись не привязана к водителю", code="not_a_driver")
    return row


def check_trip_access(session, identity: Identity, trip, *, write: bool) -> None:
    """Dispatchers and admins manage every trip; directors and integrations read them; a driver
    reaches only their own trips."""
    if identity.role in MANAGE or (not write and identity.role in READ_ALL):
        return
    if identity.role == "driver":
        driver = driver_of_user(session, identity)
        if driver["id"] == trip["driver_id"]:
            return
    raise Forbidden("Нет доступа к этому рейсу", code="trip_forbidden")


def trip_context(session, trip_ids) -> dict:
    """trip id -> {number, plate, driver_name}: what delivery events name besides the order."""
    ids = [t for t in set(trip_ids) if t]
    if not ids:
        return {}
    rows = session.execute(
        sa.select(trips.c.id, trips.c.number, vehicles.c.plate, drivers.c.full_name)
        .join(vehicles, vehicles.c.id == trips.c.vehicle_id)
        .join(drivers, drivers.c.id == trips.c.driver_id)
        .where(trips.c.id.in_(ids))).all()
    return {r.id: {"number": r.number, "plate": r.plate, "driver_name": r.full_name}
            for r in rows}


def delivery_payload(order, context: dict | None) -> dict:
    """The part of both delivery events that describes the order (see the contracts)."""
    context = context or {}
    return {
        "transport_order_id": order["id"], "number": order["number"],
        "sequence": order["sequence"], "trip_id": order["trip_id"],
        "trip_number": context.get("number"), "deal_id": order["deal_id"],
        "client_id": order["client_id"], "shipment_guid": order["shipment_guid"],
        "order_guid": order["order_guid"], "region": order["region"],
        "window_start": order["window_start"], "window_end": order["window_end"],
        "planned_at": order["planned_at"], "weight_kg": order["weight_kg"],
        "freight_cost": order["freight_cost"], "vehicle_plate": context.get("plate"),
        "driver_name": context.get("driver_name"),
    }


def update_order(session, order_id, values: dict):
    """Update a transport order, bumping its ``sequence``; returns the new row."""
    return session.execute(
        sa.update(transport_orders).where(transport_orders.c.id == order_id)
        .values(sequence=transport_orders.c.sequence + 1, **values)
        .returning(*transport_orders.c)).mappings().one()
