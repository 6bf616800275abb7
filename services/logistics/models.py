"""Tables of the logistics service (its own database; no other service reads them)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

MONEY = sa.Numeric(14, 2)
RATE = sa.Numeric(12, 2)
KG = sa.Numeric(12, 3)
METRES = sa.Numeric(6, 2)
TZ = sa.DateTime(timezone=True)

# -- fleet and people ------------------------------------------------------------------------------

carriers = sa.Table(
    "carriers", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("inn", sa.String(12)),
    sa.Column("phone", sa.String(20)),
    sa.Column("rate_kind", sa.String(10), nullable=False),     # per_trip | per_km | per_tonne
    sa.Column("rate", RATE, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.CheckConstraint("rate_kind in ('per_trip','per_km','per_tonne')",
                       name="ck_carriers_rate_kind"),
)

vehicles = sa.Table(
    "vehicles", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("plate", sa.String(12), nullable=False, unique=True),   # normalised
    sa.Column("kind", sa.String(20), nullable=False),   # curtain_sider | flatbed | crane
    sa.Column("payload_t", sa.Numeric(6, 3), nullable=False),
    sa.Column("body_length_m", METRES, nullable=False),
    sa.Column("volume_m3", sa.Numeric(7, 2)),
    sa.Column("ownership", sa.String(10), nullable=False),           # own | carrier
    sa.Column("carrier_id", UUID(as_uuid=True), sa.ForeignKey("carriers.id")),
    sa.Column("per_km_rate", RATE),      # own vehicles
    sa.Column("per_hour_rate", RATE),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.CheckConstraint("kind in ('curtain_sider','flatbed','crane')", name="ck_vehicles_kind"),
    sa.CheckConstraint("(ownership = 'own' AND carrier_id IS NULL) OR "
                       "(ownership = 'carrier' AND carrier_id IS NOT NULL)",
                       name="ck_vehicles_owner"),
)

drivers = sa.Table(
    "drivers", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("full_name", sa.String(300), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("licence", sa.String(20), nullable=False),
    sa.Column("user_id", UUID(as_uuid=True), unique=True),   # the driver's CRM login, if any
    sa.Column("carrier_id", UUID(as_uuid=True), sa.ForeignKey("carriers.id")),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# Reference data for the weight and length of what 1C ships (see domain.cargo).
product_specs = sa.Table(
    "product_specs", metadata,
    sa.Column("product_guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(500), nullable=False, server_default=""),
    sa.Column("kg_per_unit", sa.Numeric(12, 4)),
    sa.Column("length_m", METRES),
    sa.Column("m3_per_unit", sa.Numeric(12, 6)),
    sa.Column("updated_at", TZ, nullable=False),
)

# The clients' names and regions, from the clients service's events (consignee and region of
# orders made from 1C shipments).
client_replica = sa.Table(
    "client_replica", metadata,
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False),
    sa.Column("region", sa.String(16)),
    sa.Column("owner_id", UUID(as_uuid=True)),
    sa.Column("updated_at", TZ, nullable=False),
)

# -- transport orders and trips --------------------------------------------------------------------

transport_orders = sa.Table(
    "transport_orders", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("number", sa.String(40), nullable=False, unique=True),
    sa.Column("source", sa.String(10), nullable=False),          # erp | manual
    sa.Column("shipment_guid", UUID(as_uuid=True), unique=True),
    sa.Column("shipment_number", sa.String(100)),
    sa.Column("shipment_revision", sa.Integer),                 # the newest revision applied
    sa.Column("order_guid", UUID(as_uuid=True)),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("consignee", sa.String(300), nullable=False, server_default=""),
    sa.Column("address", sa.String(500), nullable=False, server_default=""),
    sa.Column("region", sa.String(16)),
    sa.Column("window_start", TZ, nullable=False),
    sa.Column("window_end", TZ, nullable=False),
    sa.Column("weight_kg", KG),                                # null: unknown (see cargo)
    sa.Column("volume_m3", sa.Numeric(10, 3)),
    sa.Column("max_length_m", METRES),
    sa.Column("needs_crane", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("lines", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False, server_default="1"),
    sa.Column("trip_id", UUID(as_uuid=True)),                   # the current trip
    sa.Column("planned_at", TZ),
    sa.Column("loaded_at", TZ),
    sa.Column("departed_at", TZ),
    sa.Column("delivered_at", TZ),
    sa.Column("freight_cost", MONEY),
    sa.Column("late_at", TZ),                 # when delivery_late was raised (once)
    sa.Column("flag", sa.String(300)),         # something the dispatcher must look at
    sa.Column("cancel_reason", sa.String(300)),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", TZ, nullable=False),
    sa.CheckConstraint("window_start <= window_end", name="ck_transport_orders_window"),
    sa.CheckConstraint(
        "status in ('new','planned','loading','in_transit','delivered','cancelled')",
        name="ck_transport_orders_status"),
)
sa.Index("ix_transport_orders_status", transport_orders.c.status, transport_orders.c.window_end)
sa.Index("ix_transport_orders_client", transport_orders.c.client_id)
sa.Index("ix_transport_orders_deal", transport_orders.c.deal_id)
sa.Index("ix_transport_orders_lateness", transport_orders.c.window_end,
         postgresql_where=sa.and_(transport_orders.c.late_at.is_(None),
                                  transport_orders.c.status.notin_(["delivered", "cancelled"])))

trips = sa.Table(
    "trips", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("number", sa.String(40), nullable=False, unique=True),
    sa.Column("vehicle_id", UUID(as_uuid=True), sa.ForeignKey("vehicles.id"), nullable=False),
    sa.Column("driver_id", UUID(as_uuid=True), sa.ForeignKey("drivers.id"), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("planned_start", TZ, nullable=False),
    sa.Column("planned_end", TZ, nullable=False),
    sa.Column("started_at", TZ),       # loading began
    sa.Column("departed_at", TZ),
    sa.Column("finished_at", TZ),
    sa.Column("distance_km", sa.Numeric(8, 1), nullable=False),
    sa.Column("duration_h", sa.Numeric(6, 2), nullable=False),
    sa.Column("cost", MONEY, nullable=False),
    sa.Column("cost_basis", sa.String(300), nullable=False),
    sa.Column("cancel_reason", sa.String(300)),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True)),
    sa.Column("updated_at", TZ, nullable=False),
    sa.CheckConstraint("status in ('planned','loading','in_transit','delivered','cancelled')",
                       name="ck_trips_status"),
)
sa.Index("ix_trips_driver_start", trips.c.driver_id, trips.c.planned_start)

trip_stops = sa.Table(
    "trip_stops", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("trip_id", UUID(as_uuid=True), sa.ForeignKey("trips.id"), nullable=False),
    sa.Column("transport_order_id", UUID(as_uuid=True), sa.ForeignKey("transport_orders.id"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("planned_at", TZ),
    sa.Column("delivered_at", TZ),
    sa.Column("freight_cost", MONEY, nullable=False, server_default="0"),
    sa.Column("updated_at", TZ, nullable=False),
    sa.CheckConstraint("status in ('planned','loading','in_transit','delivered','cancelled')",
                       name="ck_trip_stops_status"),
)
sa.Index("ix_trip_stops_trip", trip_stops.c.trip_id, trip_stops.c.position)
# An order is on at most one live trip.
sa.Index("ux_trip_stops_live_order", trip_stops.c.transport_order_id, unique=True,
         postgresql_where=trip_stops.c.status != "cancelled")

# Photos of signed delivery notes: the file is LOGISTICS_FILES_DIR/<trip id>/<sha256>.<ext>.
delivery_notes = sa.Table(
    "delivery_notes", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stop_id", UUID(as_uuid=True), sa.ForeignKey("trip_stops.id"), nullable=False),
    sa.Column("trip_id", UUID(as_uuid=True), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(50), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    sa.Column("uploaded_at", TZ, nullable=False),
    sa.Column("uploaded_by", UUID(as_uuid=True)),
    sa.UniqueConstraint("stop_id", "sha256", name="uq_delivery_notes_stop_file"),
)

# Numbers of orders and trips (ТЗ-2026-000123, Р-2026-00045): sequences, so concurrent handlers
# never wait on each other for a number (a rolled-back transaction leaves a gap).
NUMBER_SEQUENCES = {"ТЗ": sa.Sequence("transport_order_number_seq", metadata=metadata),
                    "Р": sa.Sequence("trip_number_seq", metadata=metadata)}
