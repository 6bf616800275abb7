"""Logistics routes of the gateway: the JSON API (/api/v1/logistics/..., deliveries of a client
and a deal) and the pages of drivers and dispatchers (/logistics/...). A mixin of
``GatewayService``.

The logistics service decides who may do what (dispatchers and admins manage; a driver reaches
only their own trips; managers see the deliveries of their own clients); the gateway checks shapes
and sizes. Pages use the cookie session of ``gateway.pages``; every form carries its CSRF token.
"""

from __future__ import annotations

import base64
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from crm_platform.errors import DomainError, ValidationFailed

from ..api import ApiRpcProxy, api
from ..pages import page, render, safe_next, see_other
from ..schemas import page_of
from ..schemas_logistics import (
    CarrierSchema,
    DealDeliveriesSchema,
    DeliveryNoteSchema,
    DeliveryReportQuery,
    DeliveryReportSchema,
    DriverSchema,
    FleetListQuery,
    LogisticsCancelSchema,
    LogisticsDayQuery,
    ProductSpecSchema,
    StopStatusSchema,
    TransportOrderCreateSchema,
    TransportOrderListQuery,
    TransportOrderSchema,
    TransportOrderUpdateSchema,
    TripCreateSchema,
    TripListQuery,
    TripProposalQuery,
    TripProposalSchema,
    TripSchema,
    TripStatusSchema,
    VehicleSchema,
)
from .deals import to_rpc

TAGS = ["logistics"]
MAX_PHOTO_BYTES = 8 * 1024 * 1024
PAGE_PHOTO_BYTES = MAX_PHOTO_BYTES + 64 * 1024      # the form around the photo
STATUS_TITLES = {"new": "Ожидает рейса", "planned": "Запланирован", "loading": "Погрузка",
                 "in_transit": "В пути", "delivered": "Доставлен", "cancelled": "Отменён"}
NEXT_ACTION = {"planned": ("loading", "Начать погрузку"),
               "loading": ("in_transit", "Выехал"),
               "in_transit": ("delivered", "Доставлено")}
MANAGERS = ("dispatcher", "admin")


def _photo_bytes(request, limit: int = MAX_PHOTO_BYTES) -> bytes:
    too_big = ValidationFailed("Файл слишком велик", fields={"file": [
        f"не больше {limit // (1024 * 1024)} МБ"]})
    if request.content_length and request.content_length > limit:
        raise too_big
    content = request.stream.read(limit + 1)
    if len(content) > limit:
        raise too_big
    if not content:
        raise ValidationFailed("Нет файла", fields={"file": ["пустое тело запроса"]})
    return content


class LogisticsRoutes:
    logistics_rpc = ApiRpcProxy("logistics")
    logistics_deals_rpc = ApiRpcProxy("deals")
    logistics_config = Config()

    # -- fleet ----------------------------------------------------------------------------------
    @api("GET", "/api/v1/logistics/carriers", query=FleetListQuery,
         response=CarrierSchema, many=True, summary="Перевозчики и их тарифы", tags=TAGS)
    def list_carriers(self, request, query):
        return self.logistics_rpc.list_carriers(query["include_inactive"])

    @api("POST", "/api/v1/logistics/carriers", body=CarrierSchema, response=CarrierSchema,
         status=201, idempotent=True, summary="Добавить перевозчика (диспетчер)", tags=TAGS)
    def create_carrier(self, request, body):
        """Rates: ``per_trip`` (a sum per trip), ``per_km``, ``per_tonne``."""
        return 201, self.logistics_rpc.save_carrier(to_rpc(body))

    @api("PUT", "/api/v1/logistics/carriers/<uuid:carrier_id>", body=CarrierSchema,
         response=CarrierSchema, summary="Изменить перевозчика (диспетчер)", tags=TAGS)
    def update_carrier(self, request, carrier_id, body):
        return self.logistics_rpc.save_carrier(to_rpc(body), str(carrier_id))

    @api("GET", "/api/v1/logistics/vehicles", query=FleetListQuery,
         response=VehicleSchema, many=True, summary="Машины", tags=TAGS)
    def list_vehicles(self, request, query):
        return self.logistics_rpc.list_vehicles(query["include_inactive"])

    @api("POST", "/api/v1/logistics/vehicles", body=VehicleSchema, response=VehicleSchema,
         status=201, idempotent=True, summary="Добавить машину (диспетчер)", tags=TAGS)
    def create_vehicle(self, request, body):
        """Own vehicles need ``per_km_rate`` and ``per_hour_rate``; hired ones a carrier. The
        plate is normalised (``а 123 вс 77`` → ``А123ВС77``) and unique (409)."""
        return 201, self.logistics_rpc.save_vehicle(to_rpc(body))

    @api("PUT", "/api/v1/logistics/vehicles/<uuid:vehicle_id>", body=VehicleSchema,
         response=VehicleSchema, summary="Изменить машину (диспетчер)", tags=TAGS)
    def update_vehicle(self, request, vehicle_id, body):
        return self.logistics_rpc.save_vehicle(to_rpc(body), str(vehicle_id))

    @api("GET", "/api/v1/logistics/drivers", query=FleetListQuery,
         response=DriverSchema, many=True, summary="Водители", tags=TAGS)
    def list_drivers(self, request, query):
        return self.logistics_rpc.list_drivers(query["include_inactive"])

    @api("POST", "/api/v1/logistics/drivers", body=DriverSchema, response=DriverSchema,
         status=201, idempotent=True, summary="Добавить водителя (диспетчер)", tags=TAGS)
    def create_driver(self, request, body):
        """``user_id``: the driver's own login (role ``driver``) for the driver page."""
        return 201, self.logistics_rpc.save_driver(to_rpc(body))

    @api("PUT", "/api/v1/logistics/drivers/<uuid:driver_id>", body=DriverSchema,
         response=DriverSchema, summary="Изменить водителя (диспетчер)", tags=TAGS)
    def update_driver(self, request, driver_id, body):
        return self.logistics_rpc.save_driver(to_rpc(body), str(driver_id))

    @api("GET", "/api/v1/logistics/products", response=ProductSpecSchema, many=True,
         summary="Вес и длина товаров 1С (справочник логистики)", tags=TAGS)
    def list_product_specs(self, request):
        return self.logistics_rpc.list_product_specs()

    @api("PUT", "/api/v1/logistics/products/<uuid:product_guid>", body=ProductSpecSchema,
         response=ProductSpecSchema, summary="Вес и длина товара 1С (диспетчер)", tags=TAGS)
    def save_product_spec(self, request, product_guid, body):
        """Used when a shipment line from 1C carries no weight: kg per unit, longest piece."""
        return self.logistics_rpc.save_product_spec(str(product_guid), to_rpc(body))

    # -- transport orders -----------------------------------------------------------------------
    @api("GET", "/api/v1/logistics/orders", query=TransportOrderListQuery,
         response=page_of(TransportOrderSchema), summary="Транспортные заявки (постранично)",
         tags=TAGS)
    def list_transport_orders(self, request, query):
        """Filter by status, region, client, deal, trip, window; soonest window end first unless
        ``sort``; pass ``next_cursor`` as ``cursor`` for the next page."""
        filters = to_rpc({k: v for k, v in query.items() if k not in ("limit", "cursor", "sort")})
        return self.logistics_rpc.page_transport_orders(
            filters, limit=query["limit"], cursor=query.get("cursor"), sort=query["sort"])

    @api("POST", "/api/v1/logistics/orders", body=TransportOrderCreateSchema,
         response=TransportOrderSchema, status=201,
         idempotent=True, summary="Транспортная заявка вручную (диспетчер)", tags=TAGS)
    def create_transport_order(self, request, body):
        """Orders from 1C shipments appear by themselves; this is for the rest."""
        return 201, self.logistics_rpc.create_transport_order(to_rpc(body))

    @api("GET", "/api/v1/logistics/orders/<uuid:order_id>", response=TransportOrderSchema,
         summary="Транспортная заявка", tags=TAGS)
    def get_transport_order(self, request, order_id):
        return self.logistics_rpc.get_transport_order(str(order_id))

    @api("PATCH", "/api/v1/logistics/orders/<uuid:order_id>", body=TransportOrderUpdateSchema,
         response=TransportOrderSchema, summary="Изменить заявку (диспетчер)", tags=TAGS)
    def update_transport_order(self, request, order_id, body):
        """Address, region, window, cargo, note, deal; cargo and window only before a trip."""
        return self.logistics_rpc.update_transport_order(str(order_id), to_rpc(body))

    @api("POST", "/api/v1/logistics/orders/<uuid:order_id>/cancel", body=LogisticsCancelSchema,
         response=TransportOrderSchema, summary="Отменить заявку (диспетчер)", tags=TAGS)
    def cancel_transport_order(self, request, order_id, body):
        return self.logistics_rpc.cancel_transport_order(str(order_id), body["reason"])

    # -- planning and trips ---------------------------------------------------------------------
    @api("GET", "/api/v1/logistics/proposal", query=TripProposalQuery, response=TripProposalSchema,
         summary="Предложение планировщика: какие заявки везти вместе", tags=TAGS)
    def propose_trips(self, request, query):
        """Greedy: same region and overlapping windows, within payload and body length. Nothing
        is booked; create the trips you accept."""
        return self.logistics_rpc.propose_trips(query.get("day"), query.get("region"))

    @api("GET", "/api/v1/logistics/trips", query=TripListQuery, response=page_of(TripSchema),
         summary="Рейсы (постранично)", tags=TAGS)
    def list_trips(self, request, query):
        """Newest planned start first unless ``sort``; ``next_cursor`` for the next page."""
        filters = to_rpc({k: v for k, v in query.items() if k not in ("limit", "cursor", "sort")})
        return self.logistics_rpc.page_trips(filters, limit=query["limit"],
                                             cursor=query.get("cursor"), sort=query["sort"])

    @api("POST", "/api/v1/logistics/trips", body=TripCreateSchema, response=TripSchema,
         status=201,
         idempotent=True, summary="Создать рейс (из предложения или вручную; диспетчер)", tags=TAGS)
    def create_trip(self, request, body):
        """The freight cost is computed (own: km and hours; hired: the carrier's rate) and split
        over the orders by weight in kopecks, the remainder to the heaviest."""
        return 201, self.logistics_rpc.create_trip(to_rpc(body))

    @api("GET", "/api/v1/logistics/trips/<uuid:trip_id>", response=TripSchema,
         summary="Рейс", tags=TAGS)
    def get_trip(self, request, trip_id):
        return self.logistics_rpc.get_trip(str(trip_id))

    @api("POST", "/api/v1/logistics/trips/<uuid:trip_id>/status", body=TripStatusSchema,
         response=TripSchema, summary="Статус всего рейса (водитель, диспетчер)", tags=TAGS)
    def set_trip_status(self, request, trip_id, body):
        return self.logistics_rpc.set_trip_status(str(trip_id), body["status"])

    @api("POST", "/api/v1/logistics/trips/<uuid:trip_id>/cancel", body=LogisticsCancelSchema,
         response=TripSchema, summary="Отменить рейс, пока он не выехал (диспетчер)", tags=TAGS)
    def cancel_trip(self, request, trip_id, body):
        return self.logistics_rpc.cancel_trip(str(trip_id), body["reason"])

    @api("POST", "/api/v1/logistics/stops/<uuid:stop_id>/status", body=StopStatusSchema,
         response=TripSchema, summary="Статус остановки (водитель, диспетчер)", tags=TAGS)
    def set_stop_status(self, request, stop_id, body):
        """The next status only (planned → loading → in_transit → delivered); ``cancelled``
        (dispatcher) takes the order off the trip."""
        return self.logistics_rpc.set_stop_status(str(stop_id), body["status"], body["reason"])

    @api("POST", "/api/v1/logistics/stops/<uuid:stop_id>/delivery-note",
         response=DeliveryNoteSchema, status=201, max_body_bytes=MAX_PHOTO_BYTES,
         idempotent=True,
         summary="Фото подписанной накладной: тело — JPEG, PNG или WebP до 8 МБ", tags=TAGS)
    def upload_delivery_note(self, request, stop_id):
        """The image is the raw request body; its type is recognised from its bytes."""
        content = _photo_bytes(request)
        return 201, self.logistics_rpc.attach_delivery_note(
            str(stop_id), base64.b64encode(content).decode())

    @api("GET", "/api/v1/logistics/delivery-notes/<uuid:note_id>",
         summary="Фото накладной (изображение)", tags=TAGS)
    def get_delivery_note(self, request, note_id):
        return self._note_response(note_id)

    def _note_response(self, note_id) -> Response:
        note = self.logistics_rpc.get_delivery_note(str(note_id))
        response = Response(base64.b64decode(note["content_base64"]),
                            mimetype=note["content_type"])
        response.headers["Cache-Control"] = "private, max-age=86400"
        response.headers["ETag"] = note["sha256"]
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @api("GET", "/api/v1/logistics/my-trips", query=LogisticsDayQuery, response=TripSchema,
         many=True, summary="Мои рейсы на день (водитель)", tags=TAGS)
    def my_trips(self, request, query):
        return self.logistics_rpc.my_trips(query.get("day"))

    # -- what sales and reports read ------------------------------------------------------------
    @api("GET", "/api/v1/logistics/report", query=DeliveryReportQuery,
         response=DeliveryReportSchema,
         summary="Доставки: вовремя, стоимость тонны, по регионам", tags=TAGS)
    def delivery_report(self, request, query):
        """Orders delivered in [date_from, date_to): on time (by the window's end), tonnes,
        freight cost and cost per tonne, in total and per region."""
        return self.logistics_rpc.delivery_report(query["date_from"], query["date_to"],
                                                  query.get("region"))

    @api("GET", "/api/v1/clients/<uuid:client_id>/deliveries", response=TransportOrderSchema,
         many=True, summary="Доставки клиента", tags=TAGS)
    def client_deliveries(self, request, client_id):
        return self.logistics_rpc.client_deliveries(str(client_id))

    @api("GET", "/api/v1/deals/<uuid:deal_id>/deliveries", response=DealDeliveriesSchema,
         summary="Доставки по сделке и закрыт ли этап доставки", tags=TAGS)
    def deal_deliveries(self, request, deal_id):
        """From the deal's own timeline (fed by the logistics events)."""
        return self.logistics_deals_rpc.deal_deliveries(str(deal_id))

    # -- pages: the driver ----------------------------------------------------------------------
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(str(self.logistics_config.get("BUSINESS_TIMEZONE") or "Europe/Moscow"))

    def _local(self, value):
        if not value:
            return ""
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.astimezone(self._zone()).strftime("%d.%m %H:%M")

    def _page_context(self) -> dict:
        return {"titles": STATUS_TITLES, "next_action": NEXT_ACTION, "local": self._local}

    @page("GET", "/logistics/driver", roles=("driver",))
    def driver_page(self, request, session):
        """The driver's trips today: a stop's status buttons and the delivery-note photo."""
        day = request.args.get("day") or None
        trips = self.logistics_rpc.my_trips(day)
        return render("logistics/driver.html", session, trips=trips, day=day,
                      notice=request.args.get("ok"), **self._page_context())

    @page("POST", "/logistics/stops/<uuid:stop_id>/status", roles=("driver", *MANAGERS))
    def stop_status_form(self, request, session, stop_id):
        self.logistics_rpc.set_stop_status(str(stop_id), request.form.get("status", ""),
                                           request.form.get("reason", ""))
        return see_other(safe_next(request.form.get("back"), "/logistics/driver"))

    @page("POST", "/logistics/trips/<uuid:trip_id>/status", roles=("driver", *MANAGERS))
    def trip_status_form(self, request, session, trip_id):
        self.logistics_rpc.set_trip_status(str(trip_id), request.form.get("status", ""))
        return see_other(safe_next(request.form.get("back"), "/logistics/driver"))

    @page("POST", "/logistics/stops/<uuid:stop_id>/photo", roles=("driver", *MANAGERS),
          max_body_bytes=PAGE_PHOTO_BYTES)
    def stop_photo_form(self, request, session, stop_id):
        upload = request.files.get("photo")
        if upload is None or not upload.filename:
            raise ValidationFailed("Выберите фотографию накладной")
        content = upload.stream.read(MAX_PHOTO_BYTES + 1)
        if len(content) > MAX_PHOTO_BYTES:
            raise ValidationFailed("Фотография больше 8 МБ")
        self.logistics_rpc.attach_delivery_note(str(stop_id), base64.b64encode(content).decode())
        back = safe_next(request.form.get("back"), "/logistics/driver")
        return see_other(back + ("&" if "?" in back else "?") + "ok=photo")

    @page("GET", "/logistics/notes/<uuid:note_id>")
    def note_image(self, request, session, note_id):
        return self._note_response(note_id)

    # -- pages: the dispatcher ------------------------------------------------------------------
    @page("GET", "/logistics/dispatcher", roles=(*MANAGERS, "director"))
    def dispatcher_page(self, request, session):
        """Orders to plan, the planner's proposal (one click makes a trip), today's trips."""
        day = request.args.get("day") or datetime.now(self._zone()).date().isoformat()
        try:
            datetime.fromisoformat(day)
        except ValueError:
            raise ValidationFailed("Дата не распознана") from None
        waiting = self.logistics_rpc.list_transport_orders({"status": "new"}, 200)
        proposal = self.logistics_rpc.propose_trips(day, None)
        trips = self.logistics_rpc.list_trips({"day": day}, 100)
        live = self.logistics_rpc.list_trips(
            {"status": ["planned", "loading", "in_transit"]}, 100)
        shown = {t["id"] for t in trips}
        trips += [t for t in live if t["id"] not in shown]
        drivers = self.logistics_rpc.list_drivers(False)
        flagged = [o for o in self.logistics_rpc.list_transport_orders(
            {"status": ["planned", "loading", "in_transit", "delivered"]}, 200) if o["flag"]]
        return render("logistics/dispatcher.html", session, day=day, waiting=waiting,
                      proposal=proposal, trips=trips, drivers=drivers, flagged=flagged,
                      error=request.args.get("error"), **self._page_context())

    @page("POST", "/logistics/dispatcher/trips", roles=MANAGERS)
    def create_trip_form(self, request, session):
        form = request.form
        day = form.get("day", "")
        try:
            start = datetime.fromisoformat(f"{day}T{form.get('start_time') or '08:00'}")
        except ValueError:
            raise ValidationFailed("Время выезда не распознано") from None
        try:
            self.logistics_rpc.create_trip({
                "vehicle_id": form.get("vehicle_id"), "driver_id": form.get("driver_id"),
                "planned_start": start.replace(tzinfo=self._zone()).isoformat(),
                "distance_km": form.get("distance_km"), "duration_h": form.get("duration_h"),
                "order_ids": form.getlist("order_id")})
        except DomainError as exc:
            reasons = "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                                for k, v in (exc.fields or {}).items())
            message = (exc.detail or exc.title) + (f" ({reasons})" if reasons else "")
            return see_other(f"/logistics/dispatcher?day={quote(day)}&error={quote(message)}")
        return see_other(f"/logistics/dispatcher?day={quote(day)}")

    @page("POST", "/logistics/dispatcher/trips/<uuid:trip_id>/cancel", roles=MANAGERS)
    def cancel_trip_form(self, request, session, trip_id):
        self.logistics_rpc.cancel_trip(str(trip_id), request.form.get("reason", ""))
        return see_other(safe_next(request.form.get("back"), "/logistics/dispatcher"))
