"""nameko entrypoints of the logistics service (TMS): delivery of 1C shipments.

* fleet and people: carriers and their rates, vehicles, drivers, product reference data
  (``fleet``);
* transport orders from posted 1C shipments (``erp_shipment_*``) or by hand; the clients' names
  and regions and the deals learned from events (``orders``);
* the greedy planner, trips, status per stop, freight cost split by weight, the driver's trips,
  delivery-note photos, the lateness scan (``trips``);
* deliveries of a client or deal and the delivery report (``deliveries``).

Emits ``delivery_status_changed`` (every status change of a transport order) and
``delivery_late`` (once per order whose window ended undelivered).

Who: ``dispatcher`` and ``admin`` manage everything; ``director`` and ``integration`` read;
``driver`` (a login linked to a driver) sees and moves the stops of their own trips and uploads
photos; ``sales_head`` reads the deliveries of the department's regions, ``manager`` those of own
clients.

Config: ``DELIVERY_WINDOW_HOURS`` (48: the default window of an order from a 1C shipment, from the
shipment's date), ``LATENESS_SCAN_SECONDS`` (60; 0: off), ``LOGISTICS_FILES_DIR`` (where photos
go), ``LOGISTICS_MAX_PHOTO_BYTES`` (8 MB), ``BUSINESS_TIMEZONE`` (Europe/Moscow: what "a day"
is).
"""

from nameko.dependency_providers import Config

from crm_platform.service import PersistentService

from .deliveries import DeliveryRpc
from .fleet import FleetRpc
from .orders import OrderRpc
from .trips import TripRpc


class LogisticsService(FleetRpc, OrderRpc, TripRpc, DeliveryRpc, PersistentService):
    name = "logistics"

    config = Config()
