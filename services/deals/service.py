"""nameko entrypoints of the deals service: the funnel, its stage machine, tasks and reminders.

Entrypoints check the caller, call the domain (``domain/``), write through ``store`` and ``moves``,
and emit in the same transaction. Areas too big for one file are mixins: ``erp`` (the funnel driven
by 1C documents), ``tasks`` (tasks, meetings, the calendar, notifications), ``reactions`` (the
periodic scans and the reactions to calls and e-mails), ``forecast``, ``deliveries`` (the
logistics service's delivery statuses on the deal's timeline, late deliveries as tasks).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.consumer import event_handler
from crm_platform.errors import (
    Conflict,
    Forbidden,
    Hidden,
    NotFound,
    ValidationFailed,
    register_remote_errors,
)
from crm_platform.idempotency import idempotent
from crm_platform.inbox import claim_event
from crm_platform.organisation import OrganisationReplica
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from . import client_timeline, moves, store
from .board import BoardEntrypoints
from .client_timeline import ClientTimelineEntrypoints
from .deliveries import DeliveryEntrypoints
from .distribution import DistributionEntrypoints
from .domain.deal_input import (
    SOURCES,
    default_title,
    duplicate_candidate,
    normalise_deal,
    parse_uuid,
)
from .domain.distribution import DEAL_SOURCE_KIND, clean_source_detail
from .domain.funnel import check_manual_move, check_reopen, erp_stage, validate_stages
from .domain.workcalendar import calendar_from_settings
from .erp import ErpEntrypoints
from .forecast import ForecastEntrypoints
from .lead_forms import LeadFormEntrypoints
from .models import (
    client_replica,
    deals,
    departments,
    funnels,
    sales_plans,
    settings,
    staff,
    stage_history,
    tasks,
    timeline,
)
from .privacy import PrivacyEntrypoints
from .reactions import ReactionEntrypoints
from .tasks import TaskEntrypoints

# The clients service's errors (409 client_owned, ...) come back as the same classes, so a lead
# refused there is refused here with the same answer.
register_remote_errors()

AUTOMATIC_SOURCES = ("call", "email", "web", "campaign", "erp", "import")
# List orders: a typed key (nulls as the lowest value) and how a cursor's text becomes it again.
SORTS = {
    "created": (deals.c.created_at, datetime.fromisoformat),
    "updated": (deals.c.updated_at, datetime.fromisoformat),
    "expected_close": (sa.func.coalesce(deals.c.expected_close_date, date(1, 1, 1)),
                       date.fromisoformat),
    "amount": (sa.func.coalesce(deals.c.amount, Decimal("-1")), Decimal),
}


class DealsService(OrganisationReplica, ErpEntrypoints, TaskEntrypoints, ReactionEntrypoints,
                   ForecastEntrypoints, DeliveryEntrypoints, DistributionEntrypoints,
                   LeadFormEntrypoints, PrivacyEntrypoints, ClientTimelineEntrypoints,
                   BoardEntrypoints, PersistentService):
    name = "deals"
    staff_table = staff
    departments_table = departments

    config = Config()
    clients_rpc = RpcProxy("clients")

    # -- registering a deal -----------------------------------------------------------------------
    @rpc
    @idempotent
    def create_deal(self, data: dict, owner_id: str | None = None,
                    department_id: str | None = None) -> dict:
        """Register a deal (a lead, an interest) at first contact. With ``client_id`` it is the
        client's; without, ``lead`` (name, company, INN, phone, e-mail) is checked against the
        client base first: a match with someone else's client is refused to a manager typing it
        in (409 ``client_owned``) and routed to that client's owner when it came by itself (call,
        e-mail, web form: ``source``). Returns ``{"created", "deal", "routed_to"}``; a repeated
        contact about an open deal returns that deal with ``created: false``."""
        identity = self.caller.require("manager", "sales_head", "integration")
        source = data.get("source") or ("manual" if identity.role != "integration" else "web")
        if source not in SOURCES:
            raise ValidationFailed("Неизвестный источник", fields={
                "source": [f"одно из: {', '.join(SOURCES)}"]})
        fields = normalise_deal({k: v for k, v in data.items() if k in (
            "title", "amount", "volume", "product_groups", "expected_close_date", "probability",
            "notes", "region", "lead")})
        fields.setdefault("lead", {})
        client_id = parse_uuid(data.get("client_id"), "client_id")
        automatic = source in AUTOMATIC_SOURCES
        try:
            source_detail = clean_source_detail(data.get("source_detail"), source)
        except ValueError as exc:
            raise ValidationFailed("Неверный источник", fields={
                "source_detail": [str(exc)]}) from None
        now = utcnow()
        with self.db.session() as session:
            funnel_row = store.funnel_row(session, parse_uuid(data.get("funnel_id"), "funnel_id"))
            owner, routed = self._owner_for_new_deal(session, identity, owner_id, department_id)
            client = None
            if client_id is not None:
                client = self._client(session, client_id)
            elif fields.get("lead"):
                client = self._client_of_lead(fields["lead"], automatic)
                if client is None:
                    existing = self._open_lead(session, fields)
                    if existing is not None:
                        return self._repeated_contact(session, identity, existing, source,
                                                      automatic, now)
            else:
                raise ValidationFailed("Укажите клиента или контакты интереса", fields={
                    "client_id": ["клиент или lead.phone / lead.email / lead.company"]})
            if client is not None:
                owner, routed = self._route_to_client_owner(
                    session, identity, client, owner, routed, automatic)
                if automatic:
                    existing = session.execute(sa.select(deals).where(
                        deals.c.client_id == client["client_id"],
                        deals.c.closed_at.is_(None)).order_by(deals.c.updated_at.desc())
                        .limit(1)).mappings().first()
                    if existing is not None:
                        return self._repeated_contact(session, identity, existing, source,
                                                      automatic, now)
            assigned_at = queued = None
            if client is None and identity.role == "integration" and not owner_id \
                    and department_id:
                # An ownerless lead for a department's queue: its distribution rules decide.
                chosen, queued = self._distribute(
                    session, parse_uuid(department_id, "department_id"), now)
                if chosen is not None:
                    owner, routed, assigned_at = chosen, chosen, now
            if owner is None:
                raise ValidationFailed("Кому отдать интерес?", fields={
                    "owner_id": ["укажите ответственного или отдел с руководителем"]})
            deal = self._insert_deal(session, funnel_row, fields, client, owner, source,
                                     identity.user_id, now, source_detail=source_detail,
                                     assigned_at=assigned_at, queued_at=now if queued else None)
            if routed is not None:
                store.notify(session, owner, "deal_routed",
                             f"Новый интерес «{deal['title']}» (источник: {source})", now,
                             deal_id=deal["id"], client_id=deal["client_id"])
            return {"created": True, "deal": self._view(session, deal),
                    "routed_to": {"owner_id": str(owner),
                                  "owner_name": store.names_of(session, [owner]).get(owner)}
                    if routed is not None else None}

    def _owner_for_new_deal(self, session, identity, owner_id, department_id):
        """(owner, routed): whom the deal goes to; ``routed`` is set when it is not the caller."""
        if identity.role == "integration":
            if owner_id:
                target = store.person(session, parse_uuid(owner_id, "owner_id"))
                if target is None or not target["active"]:
                    raise ValidationFailed("Ответственный не найден", fields={
                        "owner_id": ["нет такого активного сотрудника"]})
                return target["user_id"], target["user_id"]
            head = store.head_of(session, parse_uuid(department_id, "department_id"))
            return head, head          # None: the client's owner, once the client is known
        owner = store.assignable_owner(session, identity, parse_uuid(owner_id, "owner_id"))
        return owner, (owner if str(owner) != identity.user_id else None)

    def _client(self, session, client_id):
        row = session.execute(sa.select(client_replica).where(
            client_replica.c.client_id == client_id)).mappings().first()
        if row is None or row["merged_into"] is not None:
            if row is not None:
                return self._client(session, row["merged_into"])
            # The client may be seconds old (its event not here yet): ask its service.
            try:
                card = self.clients_rpc.get_client(str(client_id))
            except NotFound:
                raise ValidationFailed("Клиент не найден", fields={
                    "client_id": ["нет такого клиента"]}) from None
            row = self._upsert_client(session, card, now=utcnow())
        return row

    def _client_of_lead(self, lead: dict, automatic: bool):
        """The client the lead's contacts belong to, by the clients' duplicate check (exact keys
        only: the entry check), or None."""
        candidate = duplicate_candidate(lead)
        if not candidate:
            return None
        matches = [m for m in self.clients_rpc.find_duplicates(candidate, similar=False)
                   if m["blocking"]]
        if not matches:
            return None
        best = matches[0]
        return {"client_id": uuid.UUID(best["client_id"]), "short_name": best["short_name"],
                "owner_id": uuid.UUID(best["owner_id"]) if best["owner_id"] else None,
                "department_id": uuid.UUID(best["department_id"]) if best["department_id"]
                else None, "owner_name": best.get("owner_name"),
                "department_name": best.get("department_name"), "region": None}

    def _route_to_client_owner(self, session, identity, client, owner, routed, automatic):
        """A deal of a client belongs to the client's owner. A manager typing in a deal for
        someone else's client is refused; a lead that came by itself goes to the owner."""
        client_owner = client["owner_id"]
        if client_owner is None:
            if automatic:
                head = store.head_of(session, client["department_id"])
                return (head, head) if head else (owner, routed)
            if identity.role == "manager":
                raise Conflict(
                    f"Клиент «{client['short_name']}» в общем пуле отдела: возьмите его в работу",
                    code="client_in_pool", extra={"client_id": str(client["client_id"])})
            return owner, routed
        if owner is not None and str(client_owner) == str(owner):
            return owner, routed
        if automatic or identity.role in ("sales_head", "integration"):
            if identity.role == "sales_head" and not automatic and \
                    str(client["department_id"]) != identity.department_id:
                raise Forbidden("Клиент другого отдела")
            return client_owner, client_owner
        names = store.names_of(session, [client_owner])
        dept = session.execute(sa.select(departments.c.name).where(
            departments.c.department_id == client["department_id"])).scalar()
        raise Conflict(
            f"Клиент «{client['short_name']}» уже в работе у "
            f"{names.get(client_owner) or client.get('owner_name') or 'другого менеджера'}"
            f"{f' ({dept})' if dept else ''}",
            code="client_owned", extra={
                "client_id": str(client["client_id"]), "owner_id": str(client_owner),
                "owner": names.get(client_owner) or client.get("owner_name"),
                "department": dept or client.get("department_name")})

    def _open_lead(self, session, fields):
        conditions = []
        if fields.get("lead_phone"):
            conditions.append(deals.c.lead_phone == fields["lead_phone"])
        if fields.get("lead_email"):
            conditions.append(deals.c.lead_email == fields["lead_email"])
        if not conditions:
            return None
        return session.execute(sa.select(deals).where(
            sa.or_(*conditions), deals.c.client_id.is_(None), deals.c.closed_at.is_(None))
            .order_by(deals.c.created_at.desc()).limit(1)).mappings().first()

    def _repeated_contact(self, session, identity, existing, source, automatic, now):
        if not automatic and str(existing["owner_id"]) != identity.user_id and \
                identity.role == "manager":
            names = store.names_of(session, [existing["owner_id"]])
            raise Conflict(f"Этот интерес уже ведёт {names.get(existing['owner_id'], 'коллега')}",
                           code="lead_owned", extra={
                               "deal_id": str(existing["id"]),
                               "owner_id": str(existing["owner_id"]),
                               "owner": names.get(existing["owner_id"])})
        note = store.timeline_row(existing["id"], now, "note", f"repeat:{now.isoformat()}",
                                  {"text": f"Повторное обращение (источник: {source})",
                                   "by": identity.user_id})
        store.upsert_timeline(session, [note])
        client_timeline.record(session, [client_timeline.deal_entry(existing["client_id"],
                                                                    note)])
        if str(existing["owner_id"]) != identity.user_id:
            store.notify(session, existing["owner_id"], "repeat_contact",
                         f"Повторное обращение по сделке «{existing['title']}»", now,
                         deal_id=existing["id"], client_id=existing["client_id"])
        return {"created": False, "deal": self._view(session, existing), "routed_to": None}

    def _insert_deal(self, session, funnel_row, fields, client, owner, source, created_by, now,
                     *, source_detail=None, assigned_at=None, queued_at=None):
        """Insert a deal at the funnel's first stage (history, tasks, events); returns the row."""
        owner_row = store.person(session, owner)
        client_name = client["short_name"] if client else None
        row = {
            "id": uuid.uuid4(), "funnel_id": funnel_row["id"],
            "title": fields.get("title") or default_title(client_name, fields.get("lead") or {}),
            "client_id": client["client_id"] if client else None,
            "lead": fields.get("lead") or {}, "lead_phone": fields.get("lead_phone"),
            "lead_email": fields.get("lead_email"), "owner_id": owner,
            "department_id": owner_row["department_id"] if owner_row else None,
            "region": fields.get("region") or (client.get("region") if client else None),
            "source": source, "amount": fields.get("amount"),
            "volume_m2": fields.get("volume_m2"), "volume_tonnes": fields.get("volume_tonnes"),
            "volume_pieces": fields.get("volume_pieces"),
            "product_groups": fields.get("product_groups") or [],
            "expected_close_date": fields.get("expected_close_date"),
            "probability": fields.get("probability"), "notes": fields.get("notes") or "",
            "manual_stage": store.funnel_of(funnel_row).first_stage(), "stage": "",
            "stage_entered_at": now, "payment_status": "unpaid", "created_at": now,
            "created_by": created_by, "updated_at": now, "version": 0,
            "ordered_amount": 0, "invoiced_amount": 0, "paid_amount": 0, "shipped_amount": 0,
            "has_orders": False, "lost_reason": None, "stage_deadline_at": None,
            "stalled_at": None, "closed_at": None,
            "source_detail": source_detail or {"kind": DEAL_SOURCE_KIND.get(source, "other")},
            "assigned_at": assigned_at, "escalated_at": None, "queued_at": queued_at,
        }
        session.execute(sa.insert(deals).values(**row))
        self.outbox.emit(session, "deal_created", {
            "deal_id": row["id"], "client_id": row["client_id"], "owner_id": owner,
            "created_at": now, "source": source, "department_id": row["department_id"],
            "region": row["region"], "funnel_id": row["funnel_id"], "stage": row["manual_stage"],
            "amount": row["amount"], "title": row["title"],
            "source_detail": row["source_detail"], "distributed": assigned_at is not None})
        store.add_to_timeline(session, row["id"], now, "created", str(row["id"]), {
            "source": source, "by": created_by, "title": row["title"]})
        return moves.enter_stage(session, self.outbox, {**row, "stage": None}, funnel_row,
                                 row["manual_stage"], cause="erp" if source == "erp" else "user",
                                 at=now, by=created_by,
                                 calendar=store.work_calendar(session))

    def _view(self, session, row) -> dict:
        funnel = store.funnel_of(store.funnel_row(session, row["funnel_id"]))
        return store.deal_dict(row, funnel, store.names_of(session, [row["owner_id"]]),
                               store.client_names(session, [row["client_id"]]))

    # -- reading -----------------------------------------------------------------------------------
    @rpc
    def get_deal(self, deal_id: str) -> dict:
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_deal(session, identity, deal_id)
            view = self._view(session, row)
            view["open_tasks"] = session.execute(sa.select(sa.func.count()).where(
                tasks.c.deal_id == row["id"], tasks.c.status == "open")).scalar()
            return view

    def _visible_deal(self, session, identity, deal_id, *, for_update=False):
        query = sa.select(deals).where(deals.c.id == parse_uuid(deal_id, "deal_id"))
        if for_update:
            query = query.with_for_update()
        row = session.execute(query).mappings().first()
        if row is None:
            raise NotFound("Сделка не найдена", fields={"deal_id": ["нет такой сделки"]})
        if not store.can_see(identity, row):     # the same answer, but audited as a denial
            raise Hidden("Сделка не найдена", fields={"deal_id": ["нет такой сделки"]})
        return row

    def _changeable_deal(self, session, identity, deal_id):
        row = self._visible_deal(session, identity, deal_id, for_update=True)
        if not store.can_change(identity, row):
            raise Forbidden("Изменять сделку может её ответственный или руководитель отдела")
        return row

    @rpc
    def list_deals(self, filters: dict | None = None, limit: int = 50,
                   cursor: str | None = None) -> dict:
        """Deals the caller may see, newest first, with cursor pagination. Filters: owner_id,
        department_id, client_id, stage, open, stalled, source, q (title, lead), expected_from,
        expected_to, sort (created | updated | expected_close | amount; ``-created`` or
        ``descending: false`` for the direction — descending unless told)."""
        identity = self.caller.require()
        filters = filters or {}
        limit = max(1, min(int(limit), 500))
        sort = filters.get("sort") or "created"
        descending = filters.get("descending", True) is not False
        if sort.startswith("-"):
            sort, descending = sort[1:], True
        if sort not in SORTS:
            raise ValidationFailed("Неизвестная сортировка", fields={"sort": [", ".join(SORTS)]})
        key, parse = SORTS[sort]
        # The direction is part of the cursor's meaning: a cursor of one direction is refused
        # in the other (it would page from the wrong end).
        direction = "desc" if descending else "asc"
        with self.db.session() as session:
            query = self._filter_deals(store.visible(sa.select(deals), deals, identity), filters)
            after = store.decode_cursor(cursor, 2)
            if after is not None:
                value, _, marker = after[0].rpartition("|") if not descending \
                    else (after[0], "", "")
                try:
                    if not descending and marker != "asc":
                        raise ValueError
                    position = (parse(value), uuid.UUID(after[1]))
                except (ValueError, ArithmeticError):
                    raise ValidationFailed("Курсор не распознан", fields={
                        "cursor": ["передайте next_cursor из предыдущей страницы"]}) from None
                row_key = sa.tuple_(key, deals.c.id)
                bound = sa.tuple_(sa.literal(position[0], key.type),
                                  sa.literal(position[1], deals.c.id.type))
                query = query.where(row_key < bound if descending else row_key > bound)
            order = (key.desc(), deals.c.id.desc()) if descending else (key.asc(), deals.c.id)
            rows = session.execute(query.add_columns(key.label("sort_key")).order_by(
                *order).limit(limit + 1)).mappings().all()
            page = rows[:limit]
            funnels_ = {fid: store.funnel_of(r) for fid, r in store.funnels_by_id(session).items()}
            names = store.names_of(session, [r["owner_id"] for r in page])
            clients = store.client_names(session, [r["client_id"] for r in page])
            items = [store.deal_dict(r, funnels_[r["funnel_id"]], names, clients) for r in page]
            next_cursor = None
            if len(rows) > limit:
                last = page[-1]["sort_key"]
                last = last.isoformat() if hasattr(last, "isoformat") else str(last)
                next_cursor = store.encode_cursor(
                    last if direction == "desc" else f"{last}|asc", page[-1]["id"])
            return {"items": items, "next_cursor": next_cursor}

    @staticmethod
    def _filter_deals(query, filters):
        for key in ("owner_id", "department_id", "client_id"):
            if filters.get(key):
                query = query.where(getattr(deals.c, key) == parse_uuid(filters[key], key))
        if filters.get("stage"):
            stages = filters["stage"] if isinstance(filters["stage"], list) else [filters["stage"]]
            query = query.where(deals.c.stage.in_(stages))
        if filters.get("open") is not None:
            query = query.where(deals.c.closed_at.is_(None) if filters["open"]
                                else deals.c.closed_at.isnot(None))
        if filters.get("stalled") is not None:
            query = query.where(deals.c.stalled_at.isnot(None) if filters["stalled"]
                                else deals.c.stalled_at.is_(None))
        if filters.get("source"):
            query = query.where(deals.c.source == filters["source"])
        if filters.get("expected_from"):
            query = query.where(deals.c.expected_close_date >= filters["expected_from"])
        if filters.get("expected_to"):
            query = query.where(deals.c.expected_close_date <= filters["expected_to"])
        if filters.get("q"):
            like = "%" + str(filters["q"]).replace("%", r"\%").replace("_", r"\_") + "%"
            query = query.where(sa.or_(deals.c.title.ilike(like),
                                       sa.cast(deals.c.lead, sa.Text).ilike(like)))
        return query

    # -- changing ----------------------------------------------------------------------------------
    @rpc
    def update_deal(self, deal_id: str, changes: dict,
                    expected_version: int | None = None) -> dict:
        """Change the deal's own fields (title, potential, volume, product groups, expected close,
        probability, notes, region, lead). ``expected_version`` refuses an edit of a deal changed
        meanwhile (409 ``stale_version``)."""
        identity = self.caller.require("manager", "sales_head", "integration")
        fields = normalise_deal(changes, partial=True)
        now = utcnow()
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            self._check_version(row, expected_version)
            changed = [k for k, v in fields.items() if row[k] != v]
            if not changed:
                return self._view(session, row)
            values = {**fields, "updated_at": now, "version": row["version"] + 1}
            session.execute(sa.update(deals).where(deals.c.id == row["id"]).values(**values))
            row = {**row, **values}
            self._emit_updated(session, row, changed, identity.user_id)
            return self._view(session, row)

    @staticmethod
    def _check_version(row, expected_version):
        if expected_version is not None and int(expected_version) != row["version"]:
            raise Conflict("Сделку изменили, пока вы её редактировали: обновите карточку",
                           code="stale_version", extra={"current_version": row["version"]})

    def _emit_updated(self, session, row, changed, by):
        self.outbox.emit(session, "deal_updated", {
            "deal_id": row["id"], "client_id": row["client_id"], "owner_id": row["owner_id"],
            "department_id": row["department_id"], "region": row["region"],
            "amount": row["amount"], "expected_close_date": row["expected_close_date"],
            "probability": row["probability"], "changed_fields": sorted(changed),
            "changed_by": by})

    @rpc
    def move_stage(self, deal_id: str, stage: str, lost_reason: str | None = None,
                   expected_version: int | None = None) -> dict:
        """Move a deal by hand between the funnel's manual stages, or close it as ``lost`` with a
        reason from any open stage. Stages from the customer order on follow the 1C documents
        and cannot be chosen (422)."""
        identity = self.caller.require("manager", "sales_head")
        now = utcnow()
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            self._check_version(row, expected_version)
            funnel_row = store.funnel_row(session, row["funnel_id"])
            check_manual_move(store.funnel_of(funnel_row), current=row["stage"], target=stage,
                              facts=store.facts_of_row(row), role=identity.role,
                              reason=lost_reason)
            row = moves.enter_stage(session, self.outbox, row, funnel_row, stage, cause="user",
                                    at=now, by=identity.user_id, calendar=store.work_calendar(
                                        session), lost_reason=(lost_reason or "").strip() or None)
            return self._view(session, row)

    @rpc
    def reopen_deal(self, deal_id: str) -> dict:
        """A sales head reopens a lost deal: it returns to the stage its documents imply, or to
        its last manual stage."""
        identity = self.caller.require("sales_head", "director")
        now = utcnow()
        with self.db.session() as session:
            row = self._visible_deal(session, identity, deal_id, for_update=True)
            check_reopen(row["stage"], identity.role)
            funnel_row = store.funnel_row(session, row["funnel_id"])
            target = erp_stage(store.facts_of_row(row)) or row["manual_stage"]
            row = moves.enter_stage(session, self.outbox, row, funnel_row, target, cause="user",
                                    at=now, by=identity.user_id,
                                    calendar=store.work_calendar(session))
            return self._view(session, row)

    @rpc
    def reassign_deal(self, deal_id: str, owner_id: str) -> dict:
        """The sales head gives a deal (with its open tasks) to another manager."""
        identity = self.caller.require("sales_head")
        now = utcnow()
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            owner = store.assignable_owner(session, identity, parse_uuid(owner_id, "owner_id"))
            if owner == row["owner_id"]:
                return self._view(session, row)
            row = self._set_owner(session, row, owner, now, identity.user_id,
                                  include_tasks=True)
            row = self._restart_escalation(session, row, now)
            return self._view(session, row)

    def _set_owner(self, session, row, owner, now, by, *, include_tasks: bool):
        owner_row = store.person(session, owner)
        values = {"owner_id": owner, "department_id": owner_row["department_id"]
                  if owner_row else row["department_id"], "updated_at": now,
                  "version": row["version"] + 1}
        session.execute(sa.update(deals).where(deals.c.id == row["id"]).values(**values))
        if include_tasks:
            session.execute(sa.update(tasks).where(
                tasks.c.deal_id == row["id"], tasks.c.status == "open",
                tasks.c.assignee_id == row["owner_id"]).values(
                assignee_id=owner, department_id=values["department_id"]))
        new_row = {**row, **values}
        self._emit_updated(session, new_row, ["owner_id"], by)
        store.add_to_timeline(session, row["id"], now, "owner", f"{now.isoformat()}:{owner}", {
            "previous_owner_id": row["owner_id"], "new_owner_id": owner, "by": by})
        store.notify(session, owner, "deal_assigned", f"Вам передана сделка «{row['title']}»",
                     now, deal_id=row["id"], client_id=row["client_id"])
        return new_row

    @rpc
    def attach_client(self, deal_id: str, client_id: str) -> dict:
        """Qualify a lead: tie the deal to a client of the base (one the caller may work with)."""
        identity = self.caller.require("manager", "sales_head", "integration")
        now = utcnow()
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            client = self._client(session, parse_uuid(client_id, "client_id"))
            if client["owner_id"] is not None and client["owner_id"] != row["owner_id"] and \
                    identity.role == "manager":
                raise Conflict("Клиент ведёт другой менеджер", code="client_owned", extra={
                    "client_id": str(client["client_id"]), "owner_id": str(client["owner_id"])})
            values = {"client_id": client["client_id"], "updated_at": now,
                      "region": row["region"] or client["region"], "version": row["version"] + 1}
            session.execute(sa.update(deals).where(deals.c.id == row["id"]).values(**values))
            session.execute(sa.update(tasks).where(tasks.c.deal_id == row["id"]).values(
                client_id=client["client_id"]))
            client_timeline.copy_deal(session, row["id"], client["client_id"],
                                      previous_client_id=row["client_id"])
            row = {**row, **values}
            self._emit_updated(session, row, ["client_id"], identity.user_id)
            return self._view(session, row)

    @rpc
    def qualify_lead(self, deal_id: str, client: dict, contacts: list[dict] | None = None) -> dict:
        """Turn a lead into a client of the base (through the clients service and its duplicate
        check) and tie the deal to it."""
        identity = self.caller.require("manager", "sales_head")
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            if row["client_id"] is not None:
                raise Conflict("Сделка уже привязана к клиенту", code="already_qualified")
            lead = row["lead"] or {}
        data = {"short_name": lead.get("company") or lead.get("name"),
                **({"inn": lead["inn"]} if lead.get("inn") else {}),
                **({"phones": [lead["phone"]]} if lead.get("phone") else {}),
                **({"emails": [lead["email"]]} if lead.get("email") else {}), **client}
        created = self.clients_rpc.create_client(data, contacts=contacts or [],
                                                 owner_id=str(row["owner_id"])
                                                 if identity.role == "sales_head" else None)
        card = created["client"]
        with self.db.session() as session:
            self._upsert_client(session, card, now=utcnow())
        return self.attach_client(deal_id, card["id"])

    # -- the deal's story --------------------------------------------------------------------------
    @rpc
    def stage_history(self, deal_id: str) -> list[dict]:
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_deal(session, identity, deal_id)
            rows = session.execute(sa.select(stage_history).where(
                stage_history.c.deal_id == row["id"]).order_by(stage_history.c.id)).mappings()
            return [{"from_stage": r["from_stage"], "to_stage": r["to_stage"],
                     "at": r["at"].isoformat(), "left_at": r["left_at"].isoformat()
                     if r["left_at"] else None, "cause": r["cause"],
                     "changed_by": str(r["changed_by"]) if r["changed_by"] else None,
                     "document_guid": str(r["document_guid"]) if r["document_guid"] else None,
                     "lost_reason": r["lost_reason"]} for r in rows]

    @rpc
    def deal_timeline(self, deal_id: str, limit: int = 50, cursor: str | None = None) -> dict:
        """Everything that happened to the deal, newest first: stage moves, tasks, calls,
        e-mails, ERP documents, notes. Cursor-paginated."""
        identity = self.caller.require()
        limit = max(1, min(int(limit), 200))
        with self.db.session() as session:
            row = self._visible_deal(session, identity, deal_id)
            query = sa.select(timeline).where(timeline.c.deal_id == row["id"])
            after = store.decode_cursor(cursor, 2)
            if after is not None:
                query = query.where(sa.tuple_(timeline.c.at, timeline.c.id)
                                    < sa.tuple_(sa.cast(after[0], sa.DateTime(timezone=True)),
                                                int(after[1])))
            rows = session.execute(query.order_by(timeline.c.at.desc(), timeline.c.id.desc())
                                   .limit(limit + 1)).mappings().all()
            page = rows[:limit]
            return {"items": [{"id": r["id"], "at": r["at"].isoformat(), "kind": r["kind"],
                               "data": r["data"]} for r in page],
                    "next_cursor": store.encode_cursor(page[-1]["at"], page[-1]["id"])
                    if len(rows) > limit else None}

    @rpc
    @idempotent
    def add_note(self, deal_id: str, text: str) -> dict:
        identity = self.caller.require("manager", "sales_head")
        text = str(text or "").strip()
        if not text or len(text) > 20000:
            raise ValidationFailed("Пустая заметка", fields={"text": ["от 1 до 20000 символов"]})
        now = utcnow()
        with self.db.session() as session:
            row = self._changeable_deal(session, identity, deal_id)
            ref = str(uuid.uuid4())
            note = store.timeline_row(row["id"], now, "note", ref,
                                      {"text": text, "by": identity.user_id})
            store.upsert_timeline(session, [note])
            client_timeline.record(session, [client_timeline.deal_entry(row["client_id"], note)])
            self._touch_client(session, row["client_id"], now)
            item_id = session.execute(sa.select(timeline.c.id).where(   # as the timeline lists it
                timeline.c.deal_id == row["id"], timeline.c.kind == "note",
                timeline.c.ref == ref)).scalar()
            return {"id": item_id, "at": now.isoformat(), "kind": "note",
                    "data": {"text": text, "by": identity.user_id}}

    def _touch_client(self, session, client_id, at):
        if client_id is None:
            return
        session.execute(sa.update(client_replica).where(
            client_replica.c.client_id == client_id,
            sa.or_(client_replica.c.last_interaction_at.is_(None),
                   client_replica.c.last_interaction_at < at)).values(
            last_interaction_at=at, reminded_at=None))

    # -- funnel settings ---------------------------------------------------------------------------
    @rpc
    def list_funnels(self) -> list[dict]:
        self.caller.require()
        with self.db.session() as session:
            store.default_funnel_row(session)
            rows = session.execute(sa.select(funnels).order_by(
                funnels.c.is_default.desc(), funnels.c.name)).mappings().all()
            return [self._funnel_view(r) for r in rows]

    @rpc
    def get_funnel(self, funnel_id: str | None = None) -> dict:
        self.caller.require()
        with self.db.session() as session:
            return self._funnel_view(store.funnel_row(session, parse_uuid(funnel_id,
                                                                           "funnel_id")))

    @staticmethod
    def _funnel_view(row) -> dict:
        learned = row["learned"] or {}
        stages = []
        funnel = store.funnel_of(row)
        for stage in row["stages"]:
            hours, origin = moves.stage_limit_hours(funnel, learned, stage["code"])
            stages.append({**stage, "learned": learned.get(stage["code"]),
                           "limit_in_use": origin})
        return {"id": str(row["id"]), "name": row["name"], "is_default": row["is_default"],
                "stages": stages, "learned_at": row["learned_at"].isoformat()
                if row["learned_at"] else None, "version": row["version"]}

    @rpc
    @idempotent
    def save_funnel(self, funnel_id: str | None, name: str, stages: list[dict],
                    expected_version: int | None = None) -> dict:
        """Create (``funnel_id`` null) or change a funnel: manual stages, probabilities, limits
        (fixed or learned), task templates. Open deals keep their stage; deadlines of deals in a
        stage whose limit changed are recomputed."""
        identity = self.caller.require("admin", "director")
        name = str(name or "").strip()
        if not name or len(name) > 200:
            raise ValidationFailed("Название воронки", fields={"name": ["от 1 до 200 символов"]})
        canonical = validate_stages(stages)
        now = utcnow()
        with self.db.session() as session:
            if funnel_id is None:
                row = {"id": uuid.uuid4(), "name": name, "is_default": False,
                       "stages": canonical, "learned": {}, "learned_at": None, "version": 1,
                       "updated_at": now, "updated_by": identity.user_id}
                session.execute(sa.insert(funnels).values(**row))
                return self._funnel_view(row)
            row = session.execute(sa.select(funnels).where(
                funnels.c.id == parse_uuid(funnel_id, "funnel_id")).with_for_update()
            ).mappings().first()
            if row is None:
                raise NotFound("Воронка не найдена")
            if expected_version is not None and int(expected_version) != row["version"]:
                raise Conflict("Настройки воронки изменили: обновите страницу",
                               code="stale_version", extra={"current_version": row["version"]})
            in_use = {r for (r,) in session.execute(sa.select(deals.c.manual_stage).where(
                deals.c.funnel_id == row["id"], deals.c.closed_at.is_(None)).distinct())}
            missing = in_use - {s["code"] for s in canonical if s["manual"]}
            if missing:
                raise Conflict("На удаляемых этапах есть открытые сделки",
                               code="stage_in_use", extra={"stages": sorted(missing)})
            values = {"name": name, "stages": canonical, "version": row["version"] + 1,
                      "updated_at": now, "updated_by": identity.user_id}
            session.execute(sa.update(funnels).where(funnels.c.id == row["id"]).values(**values))
            row = {**row, **values}
            self._recompute_deadlines(session, row)
            return self._funnel_view(row)

    def _recompute_deadlines(self, session, funnel_row):
        """Deals open in a stage keep when they entered it; their deadline follows the new limit."""
        funnel = store.funnel_of(funnel_row)
        calendar = store.work_calendar(session)
        open_deals = session.execute(sa.select(
            deals.c.id, deals.c.stage, deals.c.stage_entered_at).where(
            deals.c.funnel_id == funnel_row["id"], deals.c.closed_at.is_(None))).all()
        for deal_id, stage, entered in open_deals:
            deadline = moves.stage_deadline(funnel, funnel_row["learned"], stage, entered,
                                            calendar)
            session.execute(sa.update(deals).where(deals.c.id == deal_id).values(
                stage_deadline_at=deadline))

    @rpc
    def get_work_calendar(self) -> dict:
        self.caller.require()
        with self.db.session() as session:
            value = session.execute(sa.select(settings.c.value).where(
                settings.c.key == store.CALENDAR_KEY)).scalar()
            calendar = calendar_from_settings(value)
            return {"settings": value or {}, "timezone": str(calendar.tz),
                    "day_start": calendar.day_start.strftime("%H:%M"),
                    "day_end": calendar.day_end.strftime("%H:%M")}

    @rpc
    def set_work_calendar(self, value: dict) -> dict:
        """Working hours, time zone and corrections of the production calendar (holidays,
        transferred working days, short days) — for years the built-in data does not cover."""
        identity = self.caller.require("admin")
        try:
            calendar_from_settings(value)
        except ValueError as exc:
            raise ValidationFailed("Календарь не принят", fields={"calendar": [str(exc)]}) \
                from None
        with self.db.session() as session:
            session.execute(pg_insert(settings).values(
                key=store.CALENDAR_KEY, value=value, updated_at=utcnow(),
                updated_by=identity.user_id).on_conflict_do_update(
                index_elements=["key"], set_={"value": value, "updated_at": utcnow(),
                                              "updated_by": identity.user_id}))
        store.forget_calendar()
        return self.get_work_calendar()

    # -- replicas of the organisation, the clients and the plans -----------------------------------
    def _upsert_client(self, session, card: dict, *, now):
        """Keep the replica of a client (from its event or its card)."""
        client_id = card.get("client_id") or card.get("id")
        values = {"short_name": card["short_name"], "owner_id": card.get("owner_id"),
                  "department_id": card.get("department_id"), "region": card.get("region"),
                  "status": card.get("status"),
                  "erp_counterparty_guid": card.get("erp_counterparty_guid")}
        session.execute(pg_insert(client_replica).values(
            client_id=client_id, created_at=now, last_interaction_at=now, **values)
            .on_conflict_do_update(index_elements=["client_id"], set_=values))
        return session.execute(sa.select(client_replica).where(
            client_replica.c.client_id == client_id)).mappings().one()

    @event_handler("clients", "client_created")
    def handle_client_created(self, event):
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            self._upsert_client(session, event.payload, now=event.occurred_at)
            self.link_waiting_documents(session, event.payload)

    @event_handler("clients", "client_updated")
    def handle_client_updated(self, event):
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            self._upsert_client(session, event.payload, now=event.occurred_at)
            self.link_waiting_documents(session, event.payload)

    @event_handler("clients", "client_owner_changed")
    def handle_client_owner_changed(self, event):
        """Open deals and tasks of the client follow its new owner (hand-over, claim,
        arbitration); released to the pool, they go to the department's sales head."""
        p = event.payload
        now = utcnow()
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(sa.update(client_replica).where(
                client_replica.c.client_id == p["client_id"]).values(
                owner_id=p["new_owner_id"], department_id=p["new_department_id"]))
            new_owner = p["new_owner_id"] or store.head_of(session, p["new_department_id"])
            if new_owner is None:
                return
            if p["include_open_deals"]:
                open_deals = session.execute(sa.select(deals).where(
                    deals.c.client_id == p["client_id"], deals.c.closed_at.is_(None),
                    deals.c.owner_id != new_owner).with_for_update()).mappings().all()
                for row in open_deals:
                    self._set_owner(session, row, new_owner, now, p["changed_by"],
                                    include_tasks=False)
            if p["include_open_tasks"]:
                dept = (store.person(session, new_owner) or {}).get("department_id")
                session.execute(sa.update(tasks).where(
                    tasks.c.client_id == p["client_id"], tasks.c.status == "open").values(
                    assignee_id=new_owner, department_id=dept))

    @event_handler("clients", "clients_merged")
    def handle_clients_merged(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            survivor, merged = p["survivor_id"], p["merged_id"]
            session.execute(sa.update(deals).where(deals.c.client_id == merged).values(
                client_id=survivor))
            session.execute(sa.update(tasks).where(tasks.c.client_id == merged).values(
                client_id=survivor))
            session.execute(sa.update(client_replica).where(
                client_replica.c.client_id == merged).values(merged_into=survivor))
            client_timeline.merge_clients(session, merged, survivor)

    @event_handler("payroll", "sales_plan_changed")
    def handle_sales_plan_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            month = p["month"].replace(day=1)
            values = {"department_id": p["department_id"], "sales_amount": p["sales_amount"]}
            session.execute(pg_insert(sales_plans).values(
                user_id=p["user_id"], month=month, **values).on_conflict_do_update(
                index_elements=["user_id", "month"], set_=values))

