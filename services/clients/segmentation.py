"""Entrypoints of the clients service: segments, ABC, dormant clients, reactivation campaigns, and
the facts from other services they rest on (ERP invoices and shipments, calls, e-mails, deals).

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).

Facts kept on the client row (maintained here, in the transaction that records the event):
``last_invoice_at`` (latest date of the client's posted invoices), ``last_interaction_at`` (latest
answered call or e-mail by anyone) and ``last_owner_interaction_at`` (the same by the owner).
Config: ``DORMANT_AFTER_MONTHS`` (24), ``BUSINESS_TIMEZONE`` (Europe/Moscow: the days of date
filters and periods), ``CAMPAIGN_MAX_TARGETS`` (5000).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.errors import Conflict, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.inbox import claim_event
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc

from . import store
from .domain import access
from .domain.abc import classify
from .domain.segments import (
    compile_filter,
    derive_status,
    months_before,
    parse_filter,
    period_bounds,
    status_change_candidates,
)
from .models import (
    campaign_targets,
    campaigns,
    clients,
    contacts,
    erp_documents,
    segments,
)
from .payloads import snapshot
from .schemas import ClientSchema

log = logging.getLogger(__name__)

DORMANT_SCAN_INTERVAL = 6 * 3600
STATUS_BATCH = 500
MAX_MERGE_HOPS = 5


# -- shared with the exports --------------------------------------------------------------------


def business_tz(config) -> ZoneInfo:
    try:
        return ZoneInfo(str(config.get("BUSINESS_TIMEZONE") or "Europe/Moscow"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Moscow")


def load_filter(session, identity, filter_, segment_id):
    """``(raw filter, parsed filter)`` from a filter or the caller's saved segment."""
    if segment_id:
        if filter_:
            raise ValidationFailed("Укажите либо фильтр, либо сохранённый сегмент",
                                   fields={"segment_id": ["вместе с filter"]})
        row = session.execute(sa.select(segments).where(
            segments.c.id == store.as_uuid(segment_id, "segment_id"),
            segments.c.owner_user_id == identity.user_id)).mappings().first()
        if row is None:
            raise NotFound("Сегмент не найден", code="segment_not_found")
        filter_ = row["filter"]
    return filter_, parse_filter(filter_)


def visible_clients(identity, node, now, tz):
    """The condition on ``clients``: visible to ``identity``, not merged away, matching ``node``."""
    conditions = [clients.c.merged_into.is_(None),
                  compile_filter(node, clients, erp_documents, now, tz)]
    visible = access.visibility_filter(identity, clients)
    if visible is not None:
        conditions.append(visible)
    return sa.and_(*conditions)


def parse_day(value, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValidationFailed("Неверная дата",
                               fields={field: ["ожидается дата ГГГГ-ММ-ДД"]}) from None


def _str(value):
    return str(value) if value is not None else None


class SegmentationEntrypoints:

    # == facts from other services ================================================================
    @event_handler("erp_bridge", "erp_invoice_posted")
    def handle_erp_invoice_posted(self, event):
        self._erp_document(event, "invoice", active=True)

    @event_handler("erp_bridge", "erp_invoice_changed")
    def handle_erp_invoice_changed(self, event):
        self._erp_document(event, "invoice", active=True)

    @event_handler("erp_bridge", "erp_invoice_unposted")
    def handle_erp_invoice_unposted(self, event):
        self._erp_document(event, "invoice", active=False)

    @event_handler("erp_bridge", "erp_invoice_deleted")
    def handle_erp_invoice_deleted(self, event):
        self._erp_document(event, "invoice", active=False)

    @event_handler("erp_bridge", "erp_shipment_posted")
    def handle_erp_shipment_posted(self, event):
        self._erp_document(event, "shipment", active=True)

    @event_handler("erp_bridge", "erp_shipment_changed")
    def handle_erp_shipment_changed(self, event):
        self._erp_document(event, "shipment", active=True)

    @event_handler("erp_bridge", "erp_shipment_unposted")
    def handle_erp_shipment_unposted(self, event):
        self._erp_document(event, "shipment", active=False)

    @event_handler("erp_bridge", "erp_shipment_deleted")
    def handle_erp_shipment_deleted(self, event):
        self._erp_document(event, "shipment", active=False)

    def _erp_document(self, event, kind: str, active: bool):
        """Record the document's current state (a newer version replaces sum and date; un-posting
        and deletion keep the row, inactive), then recompute the client's last invoice and status.
        The bridge drops stale versions, so the last event handled is the current version."""
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            existing = session.execute(sa.select(erp_documents).where(
                erp_documents.c.guid == p["document_guid"])).mappings().first()
            client = self._find_client(session, p["client_id"], p["counterparty_guid"])
            if client is None and existing is not None:
                client = self._find_client(session, existing["client_id"], None)
            if client is None:
                log.warning("%s %s (%s №%s) of an unknown client (counterparty %s): ignored",
                            event.type, p["document_guid"], kind, p["number"],
                            p["counterparty_guid"])
                return
            if p["currency"] != "RUB":
                log.warning("%s %s in %s: sums are kept as they are, not converted",
                            event.type, p["document_guid"], p["currency"])
            ids = {client["id"]}
            if existing is not None:
                ids.add(existing["client_id"])
            locked = {row["id"]: dict(row) for row in session.execute(
                sa.select(clients).where(clients.c.id.in_(sorted(ids)))
                .order_by(clients.c.id).with_for_update()).mappings()}
            values = {"client_id": client["id"], "kind": kind, "doc_date": p["document_date"],
                      "amount": p["amount"], "active": active}
            session.execute(pg_insert(erp_documents).values(guid=p["document_guid"], **values)
                            .on_conflict_do_update(index_elements=["guid"], set_=values))
            for client_id in sorted(locked):
                if locked[client_id]["merged_into"] is None:
                    self._refresh_client(session, locked[client_id], now, cause=event.type)

    def _find_client(self, session, client_id, counterparty_guid) -> dict | None:
        """The live client by id (following merges to the survivor), else by 1C counterparty."""
        row = None
        if client_id is not None:
            for _ in range(MAX_MERGE_HOPS):
                row = session.execute(sa.select(clients).where(
                    clients.c.id == client_id)).mappings().first()
                if row is None or row["merged_into"] is None:
                    break
                client_id = row["merged_into"]
            if row is not None and row["merged_into"] is not None:
                row = None
        if row is None and counterparty_guid is not None:
            row = session.execute(sa.select(clients).where(
                clients.c.erp_counterparty_guid == counterparty_guid,
                clients.c.merged_into.is_(None)).order_by(clients.c.created_at)
                .limit(1)).mappings().first()
        return dict(row) if row is not None else None

    def _dormant_months(self) -> int:
        return max(1, as_int(self.config.get("DORMANT_AFTER_MONTHS"), 24))

    def _refresh_client(self, session, row: dict, now, cause: str) -> None:
        """Recompute ``last_invoice_at`` from the active invoices and the status it implies
        (``row`` must be locked)."""
        last_invoice = session.execute(
            sa.select(sa.func.max(erp_documents.c.doc_date)).where(
                erp_documents.c.client_id == row["id"], erp_documents.c.kind == "invoice",
                erp_documents.c.active.is_(True))).scalar()
        status = derive_status(row["status"], last_invoice, row["created_at"], now,
                               self._dormant_months())
        if last_invoice != row["last_invoice_at"]:
            session.execute(sa.update(clients).where(clients.c.id == row["id"])
                            .values(last_invoice_at=last_invoice))
            row["last_invoice_at"] = last_invoice
        if status != row["status"]:
            self._set_status(session, row, status, now, cause)

    def _set_status(self, session, row: dict, status: str, now, cause: str,
                    identity=None) -> None:

        previous = row["status"]
        session.execute(sa.update(clients).where(clients.c.id == row["id"]).values(
            status=status, updated_at=now, updated_by=None, version=row["version"] + 1))
        row.update(status=status, updated_at=now, version=row["version"] + 1)
        store.audit(session, identity, "status_auto", now, row["id"], fields=["status"],
                    details={"from": previous, "to": status, "cause": cause})
        self.outbox.emit(session, "client_updated",
                         {**snapshot(row, None), "changed_fields": ["status"]})

    @event_handler("telephony", "call_registered")
    def handle_call_registered(self, event):
        """An answered call is an interaction (a missed one is not: nobody was reached)."""
        p = event.payload
        self._interaction(event, p["client_id"], p["user_id"], p["started_at"],
                          contact_id=p["contact_id"], counts=p["answered"])

    @event_handler("mail", "email_registered")
    def handle_email_registered(self, event):
        p = event.payload
        self._interaction(event, p["client_id"], p["user_id"], p["sent_at"])

    def _interaction(self, event, client_id, user_id, at, contact_id=None, counts=True):
        """Move the client's last interaction (and the owner's, when the owner took part) forward,
        and mark reactivation targets of campaigns started before it as reached."""
        with self.db.session() as session:
            if not claim_event(session, event) or not counts:
                return
            if client_id is None and contact_id is not None:
                client_id = session.execute(sa.select(contacts.c.client_id).where(
                    contacts.c.id == contact_id)).scalar()
            client = self._find_client(session, client_id, None)
            if client is None:
                return
            c = clients.c
            latest = sa.func.greatest(sa.func.coalesce(c.last_interaction_at, at), at)
            values = {"last_interaction_at": latest}
            if user_id is not None:
                by_owner = sa.func.greatest(sa.func.coalesce(c.last_owner_interaction_at, at), at)
                values["last_owner_interaction_at"] = sa.case(
                    (c.owner_id == user_id, by_owner), else_=c.last_owner_interaction_at)
            session.execute(sa.update(clients).where(c.id == client["id"]).values(**values))
            self._mark_targets(session, client["id"], at, "reached_at")

    @event_handler("deals", "deal_created")
    def handle_deal_created(self, event):
        """A new deal for a client in a reactivation campaign counts as its outcome."""
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            client = self._find_client(session, p["client_id"], None)
            if client is not None:
                self._mark_targets(session, client["id"], p["created_at"], "deal_created_at")

    @staticmethod
    def _mark_targets(session, client_id, at, column: str) -> None:
        """Keep the earliest ``at`` after each campaign's start (events may arrive out of
        order); targets of clients since merged into this one count too."""
        t = campaign_targets.c
        merged = sa.select(clients.c.id).where(clients.c.merged_into == client_id)
        session.execute(
            sa.update(campaign_targets)
            .where(t.campaign_id == campaigns.c.id, campaigns.c.created_at <= at,
                   sa.or_(t.client_id == client_id, t.client_id.in_(merged)))
            .values({column: sa.func.least(sa.func.coalesce(t[column], at), at)}))

    # == dormant clients ==========================================================================
    @timer(interval=DORMANT_SCAN_INTERVAL)
    def recompute_statuses_on_schedule(self):
        """Every 6 hours: clients whose last invoice slid out of the period become dormant
        (events only catch the clients that get documents). Safe with several replicas: batches
        are taken with SKIP LOCKED."""
        result = self.recompute_statuses(cause="schedule")
        if result["changed"]:
            log.info("dormant scan: %s", result)

    @rpc
    def recompute_dormant(self) -> dict:
        """Recompute now (sales head: the department; director: everyone) instead of waiting for
        the schedule: ``{"changed", "to_dormant", "to_active"}``."""
        identity = self.caller.require("sales_head", "director")
        result = self.recompute_statuses(identity=identity, cause="manual")
        with self.db.session() as session:
            store.audit(session, identity, "recompute_status", utcnow(), details=result)
        return result

    def recompute_statuses(self, identity=None, cause: str = "schedule",
                           batch_size: int = STATUS_BATCH, max_batches: int = 10_000) -> dict:
        now = utcnow()
        months = self._dormant_months()
        condition = sa.and_(clients.c.merged_into.is_(None),
                            status_change_candidates(clients, months_before(now, months)))
        if identity is not None:
            visible = access.visibility_filter(identity, clients)
            if visible is not None:
                condition = sa.and_(condition, visible)
        moved = Counter()
        for _ in range(max_batches):
            with self.db.session() as session:
                rows = session.execute(
                    sa.select(clients).where(condition).order_by(clients.c.id)
                    .limit(batch_size).with_for_update(skip_locked=True)).mappings().all()
                changed = 0
                for row in rows:
                    row = dict(row)
                    status = derive_status(row["status"], row["last_invoice_at"],
                                           row["created_at"], now, months)
                    if status != row["status"]:
                        self._set_status(session, row, status, now, cause, identity=identity)
                        moved[status] += 1
                        changed += 1
            if len(rows) < batch_size or changed == 0:
                break
        return {"changed": sum(moved.values()), "to_dormant": moved["dormant"],
                "to_active": moved["active"]}

    # == saved filters ============================================================================
    @rpc
    @idempotent
    def save_segment(self, name: str, filter: dict | list | None,
                     segment_id: str | None = None) -> dict:
        """Save a filter under a name (or replace the filter and name of one's segment
        ``segment_id``). The filter is validated first (see ``domain.segments``)."""
        identity = self.caller.require("manager", "sales_head", "director")
        name = (name or "").strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 200:
            raise ValidationFailed("Укажите название сегмента (до 200 символов)",
                                   fields={"name": ["от 1 до 200 символов"]})
        parse_filter(filter)
        filter = filter if filter is not None else {}
        now = utcnow()
        with self.db.session() as session:
            same_name = session.execute(sa.select(segments.c.id).where(
                segments.c.owner_user_id == identity.user_id,
                sa.func.lower(segments.c.name) == name.lower())).scalars().all()
            if segment_id:
                segment_uuid = store.as_uuid(segment_id, "segment_id")
                if any(s != segment_uuid for s in same_name):
                    raise Conflict(f"Сегмент «{name}» уже есть", code="segment_exists")
                result = session.execute(sa.update(segments).where(
                    segments.c.id == segment_uuid,
                    segments.c.owner_user_id == identity.user_id)
                    .values(name=name, filter=filter).returning(segments)).mappings().first()
                if result is None:
                    raise NotFound("Сегмент не найден", code="segment_not_found")
            else:
                if same_name:
                    raise Conflict(f"Сегмент «{name}» уже есть", code="segment_exists")
                result = session.execute(sa.insert(segments).values(
                    id=uuid.uuid4(), name=name, owner_user_id=identity.user_id, filter=filter,
                    created_at=now).returning(segments)).mappings().first()
            return self._segment_out(result)

    @staticmethod
    def _segment_out(row) -> dict:
        return {"id": str(row["id"]), "name": row["name"], "filter": row["filter"],
                "owner_user_id": str(row["owner_user_id"]),
                "created_at": row["created_at"].isoformat()}

    @rpc
    def list_segments(self) -> list[dict]:
        """The caller's saved segments, by name."""
        identity = self.caller.require("manager", "sales_head", "director")
        with self.db.session() as session:
            rows = session.execute(sa.select(segments).where(
                segments.c.owner_user_id == identity.user_id)
                .order_by(segments.c.name, segments.c.id)).mappings().all()
            return [self._segment_out(row) for row in rows]

    @rpc
    def delete_segment(self, segment_id: str) -> dict:
        """Delete one's saved segment (campaigns started from it keep their copy of the
        filter)."""
        identity = self.caller.require("manager", "sales_head", "director")
        with self.db.session() as session:
            deleted = session.execute(sa.delete(segments).where(
                segments.c.id == store.as_uuid(segment_id, "segment_id"),
                segments.c.owner_user_id == identity.user_id).returning(segments.c.id)).first()
            if deleted is None:
                raise NotFound("Сегмент не найден", code="segment_not_found")
            return {"deleted": str(deleted[0])}

    @rpc
    def segment_clients(self, filter: dict | list | None = None, segment_id: str | None = None,
                        limit: int = 50, offset: int = 0) -> dict:
        """The clients of a filter or saved segment that the caller may see, by name:
        ``{"items": [...], "total": n}`` (items as in ``list_clients``)."""
        identity = self.caller.require()
        limit = max(1, min(int(limit), 500))
        now = utcnow()
        with self.db.session() as session:
            raw, node = load_filter(session, identity, filter, segment_id)
            condition = visible_clients(identity, node, now, business_tz(self.config))
            total = session.execute(sa.select(sa.func.count()).select_from(clients)
                                    .where(condition)).scalar()
            rows = session.execute(
                sa.select(clients).where(condition).order_by(clients.c.short_name, clients.c.id)
                .limit(limit).offset(max(0, int(offset)))).mappings().all()
            store.audit(session, identity, "segment_query", now,
                        details={"filter": raw, "segment_id": segment_id, "total": total})
            return {"items": self._client_items(session, identity, rows), "total": total}

    @staticmethod
    def _client_items(session, identity, rows) -> list[dict]:
        names = store.staff_names(session, [r["owner_id"] for r in rows])
        depts = store.department_names(session, [r["department_id"] for r in rows])
        schema = ClientSchema(exclude=("contacts",))
        items = []
        for row in rows:
            item = dict(row)
            item.update(owner_name=names.get(row["owner_id"]),
                        department_name=depts.get(row["department_id"]),
                        read_only=not access.can_edit(identity, row))
            items.append(schema.dump(item))
        return items

    # == ABC ======================================================================================
    @rpc
    def abc_analysis(self, period_from: str, period_to: str, filter: dict | list | None = None,
                     segment_id: str | None = None, basis: str = "shipment", limit: int = 500,
                     offset: int = 0) -> dict:
        """ABC classes of the visible clients (of a filter or segment) by revenue over
        [``period_from``, ``period_to``] (dates, inclusive, business time zone): A the top 80 %,
        B the next 15 %, C the rest including clients with no revenue. Revenue is the sum of
        posted shipments (``basis="invoice"``: of posted invoices). Sums are decimal strings;
        ``items`` (ranked, paged by ``limit``/``offset``) and ``classes`` totals cover them all."""
        identity = self.caller.require("manager", "sales_head", "director")
        if basis not in ("shipment", "invoice"):
            raise ValidationFailed("Неизвестная база расчёта",
                                   fields={"basis": ["shipment или invoice"]})
        start_day = parse_day(period_from, "period_from")
        end_day = parse_day(period_to, "period_to")
        if start_day > end_day:
            raise ValidationFailed("Начало периода позже конца",
                                   fields={"period_from": ["позже period_to"]})
        limit = max(1, min(int(limit), 10_000))
        offset = max(0, int(offset))
        tz = business_tz(self.config)
        start, end = period_bounds(start_day, end_day, tz)
        now = utcnow()
        d = erp_documents.c
        with self.db.session() as session:
            _raw, node = load_filter(session, identity, filter, segment_id)
            revenue = (sa.select(d.client_id, sa.func.sum(d.amount).label("revenue"))
                       .where(d.kind == basis, d.active.is_(True), d.doc_date >= start,
                              d.doc_date < end)
                       .group_by(d.client_id).subquery())
            rows = session.execute(
                sa.select(clients.c.id, clients.c.short_name, clients.c.inn, clients.c.status,
                          clients.c.owner_id, clients.c.department_id,
                          sa.func.coalesce(revenue.c.revenue, 0).label("revenue"))
                .select_from(clients.outerjoin(revenue, revenue.c.client_id == clients.c.id))
                .where(visible_clients(identity, node, now, tz))).mappings().all()
            by_id = {row["id"]: row for row in rows}
            result = classify((row["id"], row["revenue"]) for row in rows)
            page = result.items[offset:offset + limit]
            names = store.staff_names(session, [by_id[i.key]["owner_id"] for i in page])
        items = []
        for item in page:
            row = by_id[item.key]
            items.append({
                "client_id": str(row["id"]), "short_name": row["short_name"], "inn": row["inn"],
                "status": row["status"], "owner_id": _str(row["owner_id"]),
                "owner_name": names.get(row["owner_id"]),
                "department_id": _str(row["department_id"]), "revenue": str(item.revenue),
                "share": str(item.share), "cumulative_share": str(item.cumulative_share),
                "abc_class": item.abc_class})
        return {
            "period_from": start_day.isoformat(), "period_to": end_day.isoformat(),
            "basis": basis, "total_revenue": str(result.total), "clients": len(result.items),
            "classes": {name: {"clients": total.clients, "revenue": str(total.revenue),
                               "share": str(total.share)}
                        for name, total in result.classes.items()},
            "items": items,
        }

    # == reactivation campaigns ===================================================================
    @rpc
    @idempotent
    def start_campaign(self, name: str, filter: dict | list | None = None,
                       segment_id: str | None = None, due_in_days: int = 5) -> dict:
        """Turn the visible clients of a filter or segment into campaign targets and ask each
        owner (by a ``reactivation_call_requested`` event; the deals service makes the task) to
        call the client back within ``due_in_days``. Sales heads and directors."""
        identity = self.caller.require("sales_head", "director")
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 200:
            raise ValidationFailed("Укажите название кампании (до 200 символов)",
                                   fields={"name": ["от 1 до 200 символов"]})
        if isinstance(due_in_days, bool) or not isinstance(due_in_days, int) \
                or not 1 <= due_in_days <= 90:
            raise ValidationFailed("Срок кампании: от 1 до 90 дней",
                                   fields={"due_in_days": ["целое число от 1 до 90"]})
        max_targets = as_int(self.config.get("CAMPAIGN_MAX_TARGETS"), 5000)
        now = utcnow()
        due_at = now + timedelta(days=due_in_days)
        with self.db.session() as session:
            raw, node = load_filter(session, identity, filter, segment_id)
            rows = session.execute(
                sa.select(clients.c.id, clients.c.owner_id, clients.c.department_id)
                .where(visible_clients(identity, node, now, business_tz(self.config)))
                .order_by(clients.c.id).limit(max_targets + 1)).mappings().all()
            if not rows:
                raise ValidationFailed("В сегменте нет клиентов: кампанию не из кого составить",
                                       fields={"filter": ["ни одного клиента"]},
                                       code="empty_campaign")
            if len(rows) > max_targets:
                raise ValidationFailed(
                    f"В кампании больше {max_targets} клиентов: сузьте фильтр",
                    fields={"filter": [f"больше {max_targets} клиентов"]},
                    code="campaign_too_large")
            campaign_id = uuid.uuid4()
            session.execute(sa.insert(campaigns).values(
                id=campaign_id, name=name, filter=raw if raw is not None else {},
                created_by=identity.user_id, created_at=now, due_at=due_at))
            session.execute(sa.insert(campaign_targets), [
                {"campaign_id": campaign_id, "client_id": row["id"], "owner_id": row["owner_id"]}
                for row in rows])
            for row in rows:
                self.outbox.emit(session, "reactivation_call_requested", {
                    "campaign_id": campaign_id, "campaign_name": name, "client_id": row["id"],
                    "owner_id": row["owner_id"], "department_id": row["department_id"],
                    "due_at": due_at, "requested_by": identity.user_id})
            store.audit(session, identity, "campaign_start", now, details={
                "campaign_id": str(campaign_id), "name": name, "filter": raw,
                "segment_id": segment_id, "targets": len(rows)})
        return {"campaign_id": str(campaign_id), "name": name, "targets": len(rows),
                "created_at": now.isoformat(), "due_at": due_at.isoformat()}

    @rpc
    def list_campaigns(self, limit: int = 50) -> list[dict]:
        """Reactivation campaigns, newest first (sales head: own; director: all), with counts."""
        query = self._campaigns_query().order_by(campaigns.c.created_at.desc()) \
            .limit(max(1, min(int(limit), 500)))
        with self.db.session() as session:
            return [self._campaign_item(r) for r in session.execute(query).mappings().all()]

    @rpc
    def page_campaigns(self, limit: int = 50, cursor: str | None = None) -> dict:
        """``list_campaigns`` in cursor pages: ``{"items", "next_cursor"}``, newest first."""
        query = self._campaigns_query()
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, query, sort="-created", default="-created",
                sorts={"created": campaigns.c.created_at}, id_column=campaigns.c.id,
                cursor=cursor, limit=max(1, min(int(limit), 500)))
        return {"items": [self._campaign_item(r) for r in rows], "next_cursor": next_cursor}

    def _campaigns_query(self):
        identity = self.caller.require("sales_head", "director")
        t = campaign_targets.c
        query = (sa.select(campaigns, sa.func.count(t.client_id).label("targets"),
                           sa.func.count(t.reached_at).label("reached"),
                           sa.func.count(t.deal_created_at).label("with_new_deal"))
                 .select_from(campaigns.outerjoin(campaign_targets,
                                                  t.campaign_id == campaigns.c.id))
                 .group_by(campaigns.c.id))
        if identity.role != "director":
            query = query.where(campaigns.c.created_by == identity.user_id)
        return query

    @staticmethod
    def _campaign_item(r) -> dict:
        return {"campaign_id": str(r["id"]), "name": r["name"], "created_by": str(r["created_by"]),
                "created_at": r["created_at"].isoformat(), "due_at": r["due_at"].isoformat(),
                "targets": r["targets"], "reached": r["reached"],
                "with_new_deal": r["with_new_deal"]}

    @rpc
    def campaign_report(self, campaign_id: str) -> dict:
        """How a campaign went: targets, reached (an answered call or an e-mail after its start),
        with a new deal (created after its start), overall and per owner. The creator and
        directors see every target; another sales head the targets of the own department."""
        identity = self.caller.require("sales_head", "director")
        t = campaign_targets.c
        with self.db.session() as session:
            campaign = session.execute(sa.select(campaigns).where(
                campaigns.c.id == store.as_uuid(campaign_id, "campaign_id"))).mappings().first()
            if campaign is None:
                raise NotFound("Кампания не найдена", code="campaign_not_found")
            query = (sa.select(t.owner_id, sa.func.count().label("targets"),
                               sa.func.count(t.reached_at).label("reached"),
                               sa.func.count(t.deal_created_at).label("with_new_deal"))
                     .where(t.campaign_id == campaign["id"]).group_by(t.owner_id))
            mine = identity.role == "director" or str(campaign["created_by"]) == identity.user_id
            if not mine:
                visible = access.visibility_filter(identity, clients)
                query = query.join(clients, clients.c.id == t.client_id).where(
                    visible if visible is not None else sa.true())
            rows = session.execute(query).mappings().all()
            if not mine and not rows:
                raise NotFound("Кампания не найдена", code="campaign_not_found")
            names = store.staff_names(session, [r["owner_id"] for r in rows])
        per_owner = sorted(({
            "owner_id": _str(r["owner_id"]), "owner_name": names.get(r["owner_id"]),
            "targets": r["targets"], "reached": r["reached"],
            "with_new_deal": r["with_new_deal"]} for r in rows),
            key=lambda x: (x["owner_name"] is None, x["owner_name"] or "", x["owner_id"] or ""))
        return {
            "campaign_id": str(campaign["id"]), "name": campaign["name"],
            "filter": campaign["filter"], "created_by": str(campaign["created_by"]),
            "created_at": campaign["created_at"].isoformat(),
            "due_at": campaign["due_at"].isoformat(),
            "targets": sum(r["targets"] for r in per_owner),
            "reached": sum(r["reached"] for r in per_owner),
            "with_new_deal": sum(r["with_new_deal"] for r in per_owner),
            "per_owner": per_owner,
        }
