"""Fleet and people: carriers, vehicles, drivers, and the product reference data that gives the
weight and length of what 1C ships. A mixin of ``LogisticsService``; dispatchers and admins
change them, directors and integrations read them."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain.fleet import check_carrier, check_driver, check_vehicle, decimal_in
from .models import carriers, drivers, product_specs, vehicles


class FleetRpc:
    # -- carriers ------------------------------------------------------------------------------
    @rpc
    def list_carriers(self, include_inactive: bool = False) -> list[dict]:
        """Hired carriers with their rate (``rate_kind`` per_trip / per_km / per_tonne)."""
        self.caller.require(*store.READ_ALL)
        with self.db.session() as session:
            query = sa.select(carriers).order_by(carriers.c.name)
            if not include_inactive:
                query = query.where(carriers.c.active)
            return [store.row_dict(r) for r in session.execute(query).mappings()]

    @rpc
    @idempotent
    def save_carrier(self, data: dict, carrier_id: str | None = None) -> dict:
        """Create (no ``carrier_id``) or replace a carrier: name, inn, phone, rate_kind, rate,
        active (dispatcher, admin)."""
        self.caller.require(*store.MANAGE)
        values = check_carrier(data)
        now = utcnow()
        with self.db.session() as session:
            row = store.save_row(session, carriers, carrier_id, values, "Перевозчик", now)
            return store.row_dict(row)

    # -- vehicles ------------------------------------------------------------------------------
    @rpc
    def list_vehicles(self, include_inactive: bool = False) -> list[dict]:
        """Vehicles: plate, kind, payload (t), body length (m), own or a carrier's, rates."""
        self.caller.require(*store.READ_ALL)
        with self.db.session() as session:
            query = (sa.select(vehicles, carriers.c.name.label("carrier_name"))
                     .outerjoin(carriers, carriers.c.id == vehicles.c.carrier_id)
                     .order_by(vehicles.c.plate))
            if not include_inactive:
                query = query.where(vehicles.c.active)
            return [store.row_dict(r) for r in session.execute(query).mappings()]

    @rpc
    @idempotent
    def save_vehicle(self, data: dict, vehicle_id: str | None = None) -> dict:
        """Create or replace a vehicle (dispatcher, admin). The plate is normalised and unique;
        an own vehicle needs ``per_km_rate`` and ``per_hour_rate``, a hired one its carrier."""
        self.caller.require(*store.MANAGE)
        now = utcnow()
        with self.db.session() as session:
            def carrier_exists(cid) -> bool:
                try:
                    key = store.as_uuid(cid, "carrier_id")
                except ValidationFailed:
                    return False
                return session.execute(sa.select(carriers.c.id).where(
                    carriers.c.id == key)).first() is not None

            values = check_vehicle(data, carrier_exists=carrier_exists)
            clash = session.execute(sa.select(vehicles.c.id).where(
                vehicles.c.plate == values["plate"])).scalar()
            if clash is not None and str(clash) != str(vehicle_id or ""):
                raise Conflict(f"Машина с номером {values['plate']} уже есть",
                               code="vehicle_exists", extra={"vehicle_id": str(clash)})
            try:
                row = store.save_row(session, vehicles, vehicle_id, values, "Машина", now)
                session.flush()
            except IntegrityError:
                raise Conflict(f"Машина с номером {values['plate']} уже есть",
                               code="vehicle_exists") from None
            return store.row_dict(row)

    # -- drivers -------------------------------------------------------------------------------
    @rpc
    def list_drivers(self, include_inactive: bool = False) -> list[dict]:
        """Drivers: name, phone (E.164), licence, linked login (``user_id``), carrier."""
        self.caller.require(*store.READ_ALL)
        with self.db.session() as session:
            query = sa.select(drivers).order_by(drivers.c.full_name)
            if not include_inactive:
                query = query.where(drivers.c.active)
            return [store.row_dict(r) for r in session.execute(query).mappings()]

    @rpc
    @idempotent
    def save_driver(self, data: dict, driver_id: str | None = None) -> dict:
        """Create or replace a driver (dispatcher, admin). ``user_id`` links a CRM login with
        role ``driver`` (one driver per login): that login opens the driver page."""
        self.caller.require(*store.MANAGE)
        now = utcnow()
        with self.db.session() as session:
            def carrier_exists(cid) -> bool:
                try:
                    key = store.as_uuid(cid, "carrier_id")
                except ValidationFailed:
                    return False
                return session.execute(sa.select(carriers.c.id).where(
                    carriers.c.id == key)).first() is not None

            values = check_driver(data, carrier_exists=carrier_exists)
            if values["user_id"]:
                values["user_id"] = store.as_uuid(values["user_id"], "user_id")
                clash = session.execute(sa.select(drivers.c.id).where(
                    drivers.c.user_id == values["user_id"])).scalar()
                if clash is not None and str(clash) != str(driver_id or ""):
                    raise Conflict("Этот логин уже привязан к другому водителю",
                                   code="driver_login_taken", extra={"driver_id": str(clash)})
            row = store.save_row(session, drivers, driver_id, values, "Водитель", now)
            return store.row_dict(row)

    # -- product reference data ----------------------------------------------------------------
    @rpc
    def save_product_spec(self, product_guid: str, data: dict) -> dict:
        """Weight per unit (kg), longest piece (m) and volume per unit (m³) of a 1C product, used
        when a shipment line carries no weight (dispatcher, admin)."""
        self.caller.require(*store.MANAGE)
        guid = store.as_uuid(product_guid, "product_guid")
        errors: dict = {}
        values = {
            "name": str(data.get("name") or "")[:500],
            "kg_per_unit": decimal_in(data.get("kg_per_unit"), "kg_per_unit", errors,
                                      low=Decimal(0), high=Decimal(100000), required=False),
            "length_m": decimal_in(data.get("length_m"), "length_m", errors, low=Decimal(0),
                                   high=Decimal(30), required=False),
            "m3_per_unit": decimal_in(data.get("m3_per_unit"), "m3_per_unit", errors,
                                      low=Decimal(0), high=Decimal(1000), required=False),
            "updated_at": utcnow()}
        if errors:
            raise ValidationFailed("Характеристики товара не прошли проверку", fields=errors)
        with self.db.session() as session:
            row = session.execute(pg_insert(product_specs).values(product_guid=guid, **values)
                                  .on_conflict_do_update(index_elements=["product_guid"],
                                                         set_=values)
                                  .returning(*product_specs.c)).mappings().one()
            return store.row_dict(row)

    @rpc
    def list_product_specs(self) -> list[dict]:
        """The product reference data (weight, length, volume per unit)."""
        self.caller.require(*store.READ_ALL)
        with self.db.session() as session:
            return [store.row_dict(r) for r in session.execute(
                sa.select(product_specs).order_by(product_specs.c.name)).mappings()]

    def _vehicle(self, session, vehicle_id):
        row = store.get_or_404(session, vehicles, vehicle_id, "Машина")
        if not row["active"]:
            raise NotFound("Машина выведена из работы", code="vehicle_inactive")
        return row
