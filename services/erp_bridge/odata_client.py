"""Reading UT 11 over its standard OData interface, and polling it. I/O, but no nameko and no
database: the service owns the schedule, the registry and the events.

``ODataClient`` speaks HTTP to ``<base_url>/odata/standard.odata``: collections
(``$format=json``, ``$filter=Date ge datetime'…'``, ``$orderby``, ``$top``/``$skip`` paging) and
keyed reads (``Set(guid'…')``; 404 means the object was physically deleted).

``Poller`` reads one round: every entity set over a moving window of dates, plus a keyed re-read
of each document the caller still tracks as open (1C has no change feed, and an old document can
be changed, un-posted or deleted outside the window). It maps what it read with
:func:`services.erp_bridge.domain.odata.to_object` and returns it all with its ``DataVersion``;
deciding what is new is the registry's job, by ``(EntitySet, Ref_Key, DataVersion)``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import requests

from crm_platform.clock import clock as default_clock
from services.erp_bridge.domain import odata
from services.erp_bridge.domain.objects import (
    ContactPerson,
    Counterparty,
    Deletion,
    Document,
    MalformedMessage,
)

ODATA_PATH = "odata/standard.odata"
EXCERPT_CHARS = 300
# Characters left as they are in a query value; the rest (spaces, Cyrillic) is %-encoded.
_QUERY_SAFE = "'(),:-_."


class ODataError(Exception):
    """1C answered with something other than the data (or did not answer): ``status`` is the
    HTTP status (None for a network error), ``excerpt`` the start of the body or 1C's message."""

    def __init__(self, message: str, *, status: int | None = None, excerpt: str = "",
                 url: str = ""):
        status_text = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{message}{status_text}: {excerpt}" if excerpt
                         else f"{message}{status_text}")
        self.status = status
        self.excerpt = excerpt
        self.url = url


def to_1c_datetime(moment: datetime) -> str:
    """A moment as a 1C OData date literal body: Moscow wall time, no zone, whole seconds."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(odata.BUSINESS_TZ)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class ODataClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 15,
                 session: requests.Session | None = None):
        self.root = f"{base_url.rstrip('/')}/{ODATA_PATH}"
        self.timeout = timeout
        self._own_session = session is None
        self.session = session or requests.Session()
        # requests encodes Basic credentials as latin-1; 1C user names are usually Cyrillic and
        # 1C expects UTF-8, so the header is built here.
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> ODataClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------------

    def list(self, entity_set: str, *, date_from: datetime | None = None,
             page_size: int = 500) -> Iterator[dict]:
        """Every entity of a set, page by page (``$top``/``$skip``). Documents come ordered by
        ``Date`` (then ``Ref_Key``, so pages do not shift between equal dates) and, with
        ``date_from``, only those dated at or after it; catalogs come ordered by ``Ref_Key``."""
        if page_size < 1:
            raise ValueError("page_size must be positive")
        document = odata.is_document_set(entity_set)
        if date_from is not None and not document:
            raise ValueError(f"{entity_set} has no Date to filter on")
        params = [("$format", "json")]
        if date_from is not None:
            params.append(("$filter", f"Date ge datetime'{to_1c_datetime(date_from)}'"))
        params.append(("$orderby", "Date,Ref_Key" if document else "Ref_Key"))
        skip = 0
        while True:
            page = self._get_json(self._url(entity_set, params + [("$top", str(page_size)),
                                                                  ("$skip", str(skip))]))
            rows = page.get("value") if isinstance(page, dict) else None
            if not isinstance(rows, list):
                raise ODataError(f"{entity_set}: the answer has no 'value' array",
                                 status=200, excerpt=_excerpt(json.dumps(page, default=str)))
            yield from rows
            if len(rows) < page_size:
                return
            skip += len(rows)

    def get(self, entity_set: str, ref_key: uuid.UUID | str) -> dict | None:
        """One entity by key; None when 1C answers 404 (the object is physically deleted)."""
        key = uuid.UUID(str(ref_key))
        url = self._url(f"{entity_set}(guid'{key}')", [("$format", "json")])
        entity = self._get_json(url, missing_ok=True)
        if entity is not None and not isinstance(entity, dict):
            raise ODataError(f"{entity_set}: the answer is not an object", status=200,
                             excerpt=_excerpt(json.dumps(entity, default=str)), url=url)
        return entity

    # -- HTTP ----------------------------------------------------------------------------------

    def _url(self, resource: str, params: list[tuple[str, str]]) -> str:
        query = "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in params)
        return f"{self.root}/{quote(resource, safe=_QUERY_SAFE)}?{query}"

    def _get_json(self, url: str, *, missing_ok: bool = False):
        try:
            response = self.session.get(url, headers=self._headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ODataError(f"GET {url} failed", excerpt=_excerpt(str(exc)), url=url) from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise ODataError(f"GET {url} failed", status=response.status_code,
                             excerpt=_error_excerpt(response), url=url)
        try:
            # Amounts stay exact: JSON fractions become Decimal, not float. 1C may send a BOM.
            return json.loads(response.content.decode("utf-8-sig"), parse_float=Decimal)
        except (UnicodeDecodeError, ValueError):
            raise ODataError(f"GET {url}: the answer is not JSON", status=response.status_code,
                             excerpt=_excerpt(response.text), url=url) from None


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _error_excerpt(response: requests.Response) -> str:
    """1C's own message (``{"odata.error": {"message": {"value": …}}}``) or the body's start."""
    try:
        body = json.loads(response.content.decode("utf-8-sig"))
        message = body["odata.error"]["message"]
        message = message["value"] if isinstance(message, dict) else message
        if isinstance(message, str) and message:
            return _excerpt(message)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    return _excerpt(response.text)


# -- polling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """An entity the mapping could not read: for the quarantine (``erp_message_rejected``)."""

    entity_set: str
    ref_key: str | None
    data_version: str | None
    reason: str
    field: str | None
    entity: dict


@dataclass
class PollResult:
    objects: list[Counterparty | ContactPerson | Document] = field(default_factory=list)
    deleted: list[Deletion] = field(default_factory=list)
    # Every entity read and mapped (also those the CRM ignores): (EntitySet, Ref_Key) → DataVersion
    seen_versions: dict[tuple[str, uuid.UUID], str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    polled_at: datetime | None = None        # "now" of this round: the next round's ``since``
    window_from: datetime | None = None      # the lower bound of the dates read


class Poller:
    def __init__(self, client: ODataClient, *, window_days: int = 7, clock=None,
                 entity_sets: tuple[str, ...] = odata.ENTITY_SETS, page_size: int = 500):
        unknown = set(entity_sets) - set(odata.ENTITY_SETS)
        if unknown:
            raise ValueError(f"the bridge does not read {sorted(unknown)}")
        self.client = client
        self.window = timedelta(days=window_days)
        self.entity_sets = tuple(entity_sets)
        self.page_size = page_size
        self._now: Callable[[], datetime] = _now_of(clock or default_clock)
        # Catalog_ОбъектыРасчетов key → the order it stands for (None: not an order). A
        # settlement object never changes what it stands for, so hits are kept between rounds.
        self.settlement_cache: dict[str, uuid.UUID | None] = {}

    def poll(self, tracked_open: Mapping[str, set[uuid.UUID]], since: datetime) -> PollResult:
        """One round: documents dated in ``[since - window_days, now]`` (and future-dated ones),
        all catalog entries, and a keyed re-read of every tracked open document not met in the
        window (404 → :class:`Deletion`). An HTTP failure fails the whole round."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        unknown = set(tracked_open) - set(self.entity_sets)
        if unknown:
            # A 404 counts as a deletion only for a set this round has listed successfully.
            raise ValueError(f"tracked documents of sets not polled: {sorted(unknown)}")
        now = self._now()
        result = PollResult(polled_at=now, window_from=since - self.window)

        read: list[tuple[str, dict]] = []
        listed: dict[str, set[uuid.UUID]] = {name: set() for name in self.entity_sets}
        for name in self.entity_sets:
            date_from = result.window_from if odata.is_document_set(name) else None
            for entity in self.client.list(name, date_from=date_from, page_size=self.page_size):
                guid = odata.ref_key_of(entity)
                if guid is not None:
                    if guid in listed[name]:
                        continue                 # met twice while paging: pages shifted
                    listed[name].add(guid)
                read.append((name, entity))

        for name in self.entity_sets:
            for guid in sorted(set(tracked_open.get(name) or ()) - listed[name], key=str):
                entity = self.client.get(name, guid)
                if entity is None:
                    result.deleted.append(Deletion(type_name=odata.type_name(name), guid=guid))
                else:
                    read.append((name, entity))

        settlement = self._settlement_objects(read)
        partners = _partner_counterparties(read)
        for name, entity in read:
            try:
                obj = odata.to_object(name, entity, settlement_objects=settlement,
                                      partner_counterparties=partners)
            except MalformedMessage as exc:
                raw = entity if isinstance(entity, dict) else {"value": entity}
                result.rejected.append(Rejected(
                    entity_set=name, ref_key=_str_or_none(raw.get("Ref_Key")),
                    data_version=_str_or_none(raw.get("DataVersion")), reason=exc.reason,
                    field=exc.field, entity=raw))
                continue
            result.seen_versions[(name, odata.ref_key_of(entity))] = entity["DataVersion"]
            if obj is not None:
                result.objects.append(obj)
        return result

    def _settlement_objects(self, read: list[tuple[str, dict]]) -> dict[str, uuid.UUID | None]:
        """Resolve the payment rows' ``ОбъектРасчетов_Key``: from the orders read this round
        (a UT 11.5 order carries its own ``ОбъектРасчетов_Key``), from the cache, else by a keyed
        read of ``Catalog_ОбъектыРасчетов`` (a 404 stays unresolved and is asked again)."""
        wanted: set[str] = set()
        for name, entity in read:
            if name == odata.ORDERS:
                key = odata.reference_of(entity, "ОбъектРасчетов_Key")
                order = odata.ref_key_of(entity)
                if key is not None and order is not None:
                    self.settlement_cache[str(key)] = order
            elif name == odata.PAYMENTS and isinstance(entity, Mapping):
                operation = entity.get("ХозяйственнаяОперация")
                if isinstance(operation, str) and operation in odata.CUSTOMER_PAYMENT_OPERATIONS:
                    wanted |= odata.settlement_keys(entity)
        for key in sorted(wanted - set(self.settlement_cache)):
            entity = self.client.get(odata.SETTLEMENT_OBJECTS, key)
            if entity is None:
                continue
            try:
                self.settlement_cache[key] = odata.settlement_object_order(entity)
            except MalformedMessage:
                continue
        return {key: self.settlement_cache.get(key) for key in wanted}


def _partner_counterparties(read: list[tuple[str, dict]]) -> dict[uuid.UUID, uuid.UUID]:
    """Partner → its counterparty, for the partners with exactly one (not marked) counterparty
    among those read: a contact person hangs on the partner, the CRM keeps it on the
    counterparty."""
    found: dict[uuid.UUID, set[uuid.UUID]] = {}
    for name, entity in read:
        if name != odata.COUNTERPARTIES or not isinstance(entity, Mapping) \
                or entity.get("DeletionMark") is True:
            continue
        partner = odata.reference_of(entity, "Партнер_Key")
        guid = odata.ref_key_of(entity)
        if partner is not None and guid is not None:
            found.setdefault(partner, set()).add(guid)
    return {partner: guids.pop() for partner, guids in found.items() if len(guids) == 1}


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


def _now_of(clock) -> Callable[[], datetime]:
    now = getattr(clock, "now", None)
    return now if callable(now) else clock
