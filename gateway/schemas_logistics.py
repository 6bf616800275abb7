"""Schemas of the logistics API (/api/v1/logistics/...): the gateway's own, never the service's.

Requests are strict on shape (unknown fields are refused with 422 naming them); the logistics
service checks the meaning (a plate that is no plate, a window that ends before it starts, a
vehicle too small for the cargo: its 422 names the field). Money, weights and lengths go in as
numbers or decimal strings and come out as strings; times go in with their zone and come out in
ISO 8601.
"""

from marshmallow import Schema, fields, validate

from .schemas import DecimalString, cursor_field, limit_field, sort_field

VEHICLE_TYPES = ["curtain_sider", "flatbed", "crane"]
OWNERSHIP = ["own", "carrier"]
RATE_KINDS = ["per_trip", "per_km", "per_tonne"]
ORDER_STATUSES = ["new", "planned", "loading", "in_transit", "delivered", "cancelled"]
TRIP_STATUSES = ["planned", "loading", "in_transit", "delivered", "cancelled"]
STOP_MOVES = ["loading", "in_transit", "delivered", "cancelled"]
TRIP_MOVES = ["loading", "in_transit", "delivered"]
DAY = validate.Regexp(r"^\d{4}-\d{2}-\d{2}$", error="дата ГГГГ-ММ-ДД")


def _decimal(**kwargs) -> fields.Decimal:
    return DecimalString(as_string=True, allow_nan=False, **kwargs)


def _time(**kwargs) -> fields.AwareDateTime:
    return fields.AwareDateTime(**kwargs)


class FleetListQuery(Schema):
    include_inactive = fields.Boolean(load_default=False)


class CarrierSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    inn = fields.String(allow_none=True, validate=validate.Length(max=12))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    rate_kind = fields.String(required=True, validate=validate.OneOf(RATE_KINDS),
                              metadata={"description": "за рейс, за км или за тонну"})
    rate = _decimal(required=True, places=2)
    active = fields.Boolean(load_default=True)


class VehicleSchema(Schema):
    id = fields.UUID(dump_only=True)
    plate = fields.String(required=True, validate=validate.Length(min=1, max=20),
                          metadata={"description": "госномер; хранится как А123ВС77"})
    kind = fields.String(required=True, validate=validate.OneOf(VEHICLE_TYPES))
    payload_t = _decimal(required=True, places=3)
    body_length_m = _decimal(required=True, places=2)
    volume_m3 = _decimal(allow_none=True, places=2)
    ownership = fields.String(load_default="own", validate=validate.OneOf(OWNERSHIP))
    carrier_id = fields.UUID(allow_none=True)
    carrier_name = fields.String(dump_only=True, allow_none=True)
    per_km_rate = _decimal(allow_none=True, places=2)
    per_hour_rate = _decimal(allow_none=True, places=2)
    active = fields.Boolean(load_default=True)


class DriverSchema(Schema):
    id = fields.UUID(dump_only=True)
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    phone = fields.String(required=True, validate=validate.Length(max=40))
    licence = fields.String(required=True, validate=validate.Length(max=40))
    user_id = fields.UUID(allow_none=True,
                          metadata={"description": "логин водителя (роль driver)"})
    carrier_id = fields.UUID(allow_none=True)
    active = fields.Boolean(load_default=True)


class ProductSpecSchema(Schema):
    product_guid = fields.UUID(dump_only=True)
    name = fields.String(load_default="", validate=validate.Length(max=500))
    kg_per_unit = _decimal(allow_none=True, places=4)
    length_m = _decimal(allow_none=True, places=2)
    m3_per_unit = _decimal(allow_none=True, places=6)


class TransportOrderCreateSchema(Schema):
    consignee = fields.String(required=True, validate=validate.Length(max=300))
    address = fields.String(required=True, validate=validate.Length(max=500))
    region = fields.String(required=True, validate=validate.Length(max=16))
    window_start = _time(required=True)
    window_end = _time(required=True)
    weight_kg = _decimal(required=True, places=3)
    volume_m3 = _decimal(allow_none=True, places=3)
    max_length_m = _decimal(allow_none=True, places=2)
    needs_crane = fields.Boolean(load_default=False)
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    client_id = fields.UUID(allow_none=True)
    deal_id = fields.UUID(allow_none=True)


class TransportOrderUpdateSchema(Schema):
    consignee = fields.String(validate=validate.Length(max=300))
    address = fields.String(validate=validate.Length(max=500))
    region = fields.String(validate=validate.Length(max=16))
    window_start = _time()
    window_end = _time()
    weight_kg = _decimal(allow_none=True, places=3)
    volume_m3 = _decimal(allow_none=True, places=3)
    max_length_m = _decimal(allow_none=True, places=2)
    needs_crane = fields.Boolean()
    note = fields.String(validate=validate.Length(max=2000))
    deal_id = fields.UUID(allow_none=True)


class TransportOrderSchema(Schema):
    id = fields.UUID()
    number = fields.String()
    source = fields.String(metadata={"description": "erp или manual"})
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    shipment_guid = fields.UUID(allow_none=True)
    shipment_number = fields.String(allow_none=True)
    order_guid = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    deal_id = fields.UUID(allow_none=True)
    consignee = fields.String()
    address = fields.String()
    region = fields.String(allow_none=True)
    window_start = fields.String(metadata={"format": "date-time"})
    window_end = fields.String(metadata={"format": "date-time"})
    weight_kg = fields.String(allow_none=True)
    volume_m3 = fields.String(allow_none=True)
    max_length_m = fields.String(allow_none=True)
    needs_crane = fields.Boolean()
    trip_id = fields.UUID(allow_none=True)
    trip_number = fields.String(allow_none=True)
    vehicle_plate = fields.String(allow_none=True)
    driver_name = fields.String(allow_none=True)
    planned_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    loaded_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    departed_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    delivered_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    freight_cost = fields.String(allow_none=True)
    late_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    flag = fields.String(allow_none=True,
                         metadata={"description": "на что диспетчеру обратить внимание"})
    cancel_reason = fields.String(allow_none=True)
    note = fields.String()


class TransportOrderListQuery(Schema):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    region = fields.String(validate=validate.Length(max=16))
    client_id = fields.UUID()
    deal_id = fields.UUID()
    trip_id = fields.UUID()
    window_from = _time()
    window_to = _time()
    sort = sort_field(["window_end", "window_start", "number"], "window_end")
    limit = limit_field(100, 500)
    cursor = cursor_field()


class LogisticsCancelSchema(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=300))


class TripProposalQuery(Schema):
    day = fields.String(validate=DAY)
    region = fields.String(validate=validate.Length(max=16))


class ProposedOrderSchema(Schema):
    id = fields.UUID()
    number = fields.String()
    consignee = fields.String()
    address = fields.String()
    region = fields.String(allow_none=True)
    window_start = fields.String()
    window_end = fields.String()
    weight_kg = fields.String(allow_none=True)
    max_length_m = fields.String(allow_none=True)
    needs_crane = fields.Boolean()
    reason = fields.String(metadata={"description": "почему не вошла в рейс (unplaced)"})


class ProposedTripSchema(Schema):
    vehicle_id = fields.UUID()
    vehicle_plate = fields.String()
    vehicle_kind = fields.String()
    payload_kg = fields.String()
    body_length_m = fields.String()
    region = fields.String(allow_none=True)
    weight_kg = fields.String()
    max_length_m = fields.String()
    window_start = fields.String()
    window_end = fields.String()
    orders = fields.List(fields.Nested(ProposedOrderSchema))


class TripProposalSchema(Schema):
    day = fields.String()
    trips = fields.List(fields.Nested(ProposedTripSchema))
    unplaced = fields.List(fields.Nested(ProposedOrderSchema))


class TripStopInSchema(Schema):
    transport_order_id = fields.UUID(required=True)
    planned_at = _time(allow_none=True)


class TripCreateSchema(Schema):
    vehicle_id = fields.UUID(required=True)
    driver_id = fields.UUID(required=True)
    planned_start = _time(required=True)
    planned_end = _time(allow_none=True)
    distance_km = _decimal(required=True, places=1)
    duration_h = _decimal(required=True, places=2)
    stops = fields.List(fields.Nested(TripStopInSchema),
                        metadata={"description": "заявки в порядке доставки"})
    order_ids = fields.List(fields.UUID(), metadata={"description": "или просто заявки"})


class DeliveryNoteSchema(Schema):
    id = fields.UUID()
    stop_id = fields.UUID()
    trip_id = fields.UUID()
    sha256 = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    uploaded_at = fields.String(metadata={"format": "date-time"})
    uploaded_by = fields.UUID(allow_none=True)


class TripStopSchema(Schema):
    id = fields.UUID()
    transport_order_id = fields.UUID()
    position = fields.Integer()
    status = fields.String()
    planned_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    freight_cost = fields.String()
    order_number = fields.String()
    consignee = fields.String()
    address = fields.String()
    region = fields.String(allow_none=True)
    window_start = fields.String()
    window_end = fields.String()
    weight_kg = fields.String(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    deal_id = fields.UUID(allow_none=True)
    shipment_number = fields.String(allow_none=True)
    delivery_notes = fields.List(fields.Nested(DeliveryNoteSchema))


class TripSchema(Schema):
    id = fields.UUID()
    number = fields.String()
    status = fields.String(validate=validate.OneOf(TRIP_STATUSES))
    vehicle_id = fields.UUID()
    vehicle_plate = fields.String()
    vehicle_kind = fields.String()
    driver_id = fields.UUID()
    driver_name = fields.String()
    driver_phone = fields.String()
    planned_start = fields.String()
    planned_end = fields.String()
    started_at = fields.String(allow_none=True)
    departed_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    distance_km = fields.String()
    duration_h = fields.String()
    cost = fields.String()
    cost_basis = fields.String()
    cancel_reason = fields.String(allow_none=True)
    stops = fields.List(fields.Nested(TripStopSchema))


class TripListQuery(Schema):
    status = fields.String(validate=validate.OneOf(TRIP_STATUSES))
    day = fields.String(validate=DAY)
    vehicle_id = fields.UUID()
    driver_id = fields.UUID()
    sort = sort_field(["planned_start", "number"], "-planned_start")
    limit = limit_field(100, 500)
    cursor = cursor_field()


class LogisticsDayQuery(Schema):
    day = fields.String(validate=DAY)


class StopStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STOP_MOVES))
    reason = fields.String(load_default="", validate=validate.Length(max=300))


class TripStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(TRIP_MOVES))


class DeliveryReportQuery(Schema):
    date_from = fields.String(required=True, validate=DAY)
    date_to = fields.String(required=True, validate=DAY)
    region = fields.String(validate=validate.Length(max=16))


class DeliveryReportFiguresSchema(Schema):
    region = fields.String(allow_none=True)
    delivered = fields.Integer()
    on_time = fields.Integer()
    late = fields.Integer()
    on_time_share = fields.String(allow_none=True)
    tonnes = fields.String()
    freight_cost = fields.String()
    cost_per_tonne = fields.String(allow_none=True)


class DeliveryReportSchema(Schema):
    date_from = fields.String()
    date_to = fields.String()
    region = fields.String(allow_none=True)
    total = fields.Nested(DeliveryReportFiguresSchema)
    regions = fields.List(fields.Nested(DeliveryReportFiguresSchema))
    late_on_the_way = fields.Integer()


class DealDeliveriesSchema(Schema):
    deal_id = fields.UUID()
    deliveries = fields.List(fields.Dict())
    orders = fields.Integer()
    delivered = fields.Integer()
    late = fields.Integer()
    all_delivered = fields.Boolean()
    shipped_amount = fields.String()
