"""nameko entrypoints of the clients service: one client base with no two managers on one lead.

Entrypoints check the caller, call the domain, write through ``store``, and emit in the same
transaction. Areas too big for one file live in mixins (``handover``, ``segmentation``, ``exports``,
``importing``) that this class inherits.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.organisation import OrganisationReplica
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from . import store
from .campaigns import CampaignEntrypoints
from .consents import ConsentEntrypoints
from .domain import access
from .domain.card import (
    identifiers_of,
    normalise_client,
    normalise_client_and_contacts,
    normalise_contact,
)
from .domain.matching import rank
from .erp_counterparties import ErpCounterpartyEntrypoints
from .exports import ExportEntrypoints
from .handover import HandoverEntrypoints
from .importing import ImportEntrypoints
from .models import (
    audit_log,
    clients,
    departments,
    ownership_history,
    staff,
    usage_counters,
)
from .models import (
    contacts as contact_table,
)
from .payloads import CARD_FIELDS, snapshot
from .privacy import PrivacyEntrypoints
from .schemas import ClientSchema, ContactSchema
from .segmentation import SegmentationEntrypoints

# Trigram similarity from which a name answers the search box ("кровля альфа" finds "Альфа
# Кровля" but not "Волга Кровля", 0.39).
SEARCH_SIMILARITY = 0.45
# Fields that hold personal data (of contact persons and sole traders): their reads are audited.
PERSONAL_FIELDS = ("phones", "emails", "addresses", "contacts")


class ClientsService(OrganisationReplica, HandoverEntrypoints, SegmentationEntrypoints,
                     ExportEntrypoints, ImportEntrypoints, ErpCounterpartyEntrypoints,
                     ConsentEntrypoints, CampaignEntrypoints, PrivacyEntrypoints,
                     PersistentService):
    name = "clients"
    staff_table = staff
    departments_table = departments

    config = Config()

    # -- the duplicate check ----------------------------------------------------------------------
    @rpc
    def find_duplicates(self, candidate: dict, similar: bool = True) -> list[dict]:
        """Ranked matches for a would-be client or lead (any of short_name, inn, kpp, phones,
        emails, contacts): each with its reasons, whether it blocks creation, and its owner and
        department. Only names and owners of others' clients are shown, no personal data.
        ``similar`` adds names that are alike but not the same (typos, extra words): shown, never
        blocking, and the slow part at a million clients — leave it out for the entry check."""
        self.caller.require()
        card, contacts_in = normalise_client_and_contacts(
            {k: v for k, v in candidate.items() if k != "contacts"}, candidate.get("contacts"),
            partial=True)
        with self.db.session() as session:
            return self._matches(session, card, contacts_in, similar=similar)

    def _matches(self, session, card: dict, contacts_in: list[dict],
                 similar: bool = True) -> list[dict]:
        """What blocks is decided by exact keys: identifiers and the normalised name (btree, a few
        ms at a million clients); ``similar`` adds the trigram search for look-alike names."""
        key = card.get("name_key", "")
        names = store.same_name_hits(session, key)
        if similar:
            seen = {row["id"] for row, _ in names}
            names += [hit for hit in store.fuzzy_hits(session, key) if hit[0]["id"] not in seen]
        ranked = rank(card, store.exact_hits(session, identifiers_of(card, contacts_in)), names)
        rows = [row for _, row in ranked]
        names = store.staff_names(session, [r["owner_id"] for r in rows])
        depts = store.department_names(session, [r["department_id"] for r in rows])
        return [{
            "client_id": match.client_id, "short_name": row["short_name"], "inn": row["inn"],
            "kpp": row["kpp"], "status": row["status"], "score": match.score,
            "blocking": match.blocking, "reasons": match.reasons,
            "owner_id": str(row["owner_id"]) if row["owner_id"] else None,
            "owner_name": names.get(row["owner_id"]),
            "department_id": str(row["department_id"]) if row["department_id"] else None,
            "department_name": depts.get(row["department_id"]),
        } for match, row in ranked]

    # -- creating and reading ---------------------------------------------------------------------
    @rpc
    @idempotent
    def create_client(self, data: dict, contacts: list[dict] | None = None,
                      owner_id: str | None = None, override: bool = False) -> dict:
        """Create a client (with contacts) after the duplicate check. Returns ``{"created": true,
        "client": card}``, or for a match with one's own client ``{"created": false, "client":
        existing}``. A match with another manager's client is refused (409 ``client_owned``, naming
        the owner and department); a sales head or director may pass ``override``. A manager
        creates for themself; heads may give ``owner_id`` (null: the department pool)."""
        identity = self.caller.require("manager", "sales_head", "director", "integration")
        card, contacts_in = normalise_client_and_contacts(data, contacts)
        for contact in contacts_in:
            contact["id"] = uuid.uuid4()
        now = utcnow()
        with self.db.session() as session:
            owner, department_id = self._initial_owner(session, identity, owner_id)
            keys = identifiers_of(card, contacts_in)
            store.lock_keys(session, [f"{k}:{v}" for k, v, _ in keys]
                            + [f"name:{card['name_key']}"])
            blocking = [m for m in self._matches(session, card, contacts_in, similar=False)
                        if m["blocking"]]
            if blocking:
                existing = self._resolve_duplicate(session, identity, blocking[0], override)
                if existing is not None:
                    return {"created": False, "client": existing}
            client = {**{f: card.get(f) for f in CARD_FIELDS}, "id": uuid.uuid4(),
                      "name_key": card["name_key"], "owner_id": owner,
                      "department_id": department_id, "owned_since": now if owner else None,
                      "created_at": now, "created_by": identity.user_id, "updated_at": now,
                      "updated_by": identity.user_id, "version": 1}
            session.execute(sa.insert(clients).values(**client))
            for contact in contacts_in:
                session.execute(sa.insert(contact_table).values(
                    **contact, client_id=client["id"], created_at=now,
                    created_by=identity.user_id, updated_at=now, updated_by=identity.user_id))
            store.replace_identifiers(session, client["id"], keys)
            store.start_ownership(session, client["id"], owner, department_id, "created",
                                  identity.user_id, now)
            store.audit(session, identity, "create", now, client["id"],
                        fields=[f for f in CARD_FIELDS if card.get(f)],
                        details={"override": bool(blocking and override),
                                 "overridden": [m["client_id"] for m in blocking]})
            self.outbox.emit(session, "client_created",
                             {**snapshot(client, identity.user_id), "source": client["source"]})
            return {"created": True, "client": self._card(session, identity, client["id"])}

    def _initial_owner(self, session, identity, owner_id):
        if identity.role == "manager":
            if owner_id not in (None, identity.user_id):
                raise Forbidden("Менеджер заводит клиентов только на себя",
                                code="owner_not_allowed")
            return uuid.UUID(identity.user_id), identity.department_id
        if owner_id:
            return self._assignable_owner(session, identity, owner_id)
        if identity.role == "sales_head":
            return None, identity.department_id  # the department's pool
        return None, None

    @staticmethod
    def _assignable_owner(session, identity, owner_id):
        """(user id, department id) of an active colleague a head may give clients to."""
        member = store.staff_member(session, store.as_uuid(owner_id, "owner_id"))
        if member is None or not member["active"]:
            raise ValidationFailed("Нет такого сотрудника",
                                   fields={"owner_id": ["неизвестный или неактивный"]})
        if identity.role == "sales_head" and \
                str(member["department_id"]) != identity.department_id:
            raise Forbidden("Можно назначать только сотрудников своего отдела",
                            code="owner_not_allowed")
        return member["user_id"], member["department_id"]

    def _resolve_duplicate(self, session, identity, match, override):
        """The existing client for one's own match; raise for someone else's (unless
        overridden by a head, in which case None: create anyway)."""
        row = store.client_row(session, match["client_id"])
        if row["owner_id"] is not None and str(row["owner_id"]) == identity.user_id:
            return self._card(session, identity, row["id"])
        if override and identity.role in ("sales_head", "director"):
            return None
        reasons = ", ".join(r["reason"] for r in match["reasons"])
        if row["owner_id"] is None:
            raise Conflict(
                f"Такой клиент уже есть в общем пуле отдела «{match['department_name'] or '—'}»"
                f" ({match['short_name']}). Возьмите его в работу вместо создания нового.",
                code="client_in_pool",
                extra={"client_id": match["client_id"], "department": match["department_name"],
                       "matched_by": reasons})
        owner = match["owner_name"] or match["owner_id"]
        raise Conflict(
            f"Клиент «{match['short_name']}» уже закреплён за менеджером {owner} "
            f"(отдел «{match['department_name'] or '—'}»)."
            " Чтобы работать с ним, попросите руководителя отдела передать клиента вам.",
            code="client_owned",
            extra={"client_id": match["client_id"], "owner_id": match["owner_id"],
                   "owner": match["owner_name"], "department": match["department_name"],
                   "matched_by": reasons})

    @rpc
    def get_client(self, client_id: str) -> dict:
        """The client card with contacts; every read is audited and counted."""
        identity = self.caller.require()
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id)
            if not access.can_read(identity, row):
                self._audit_denial(identity, "read_denied", now, row["id"])
                access.require_read(identity, row)
            store.audit(session, identity, "read", now, row["id"], fields=PERSONAL_FIELDS)
            self._count_read(session, identity, now)
            return self._card(session, identity, row["id"])

    def _audit_denial(self, identity, action, now, client_id):
        """Refusals are audited in their own transaction: the refused call's rolls back."""
        with self.db.session() as session:
            store.audit(session, identity, action, now, client_id)

    def _count_read(self, session, identity, now):
        """Count the card reads of the day; far above the user's usual rate (``CARD_READ_ALERT_
        FACTOR`` x the mean of the last 14 days, and at least ``CARD_READ_ALERT_FLOOR`` a day) the
        sales head gets a ``card_reading_alert`` (once a day per user)."""
        day = now.date()
        count, alerted = session.execute(
            pg_insert(usage_counters).values(user_id=identity.user_id, day=day,
                                             kind="card_read", count=1)
            .on_conflict_do_update(index_elements=["user_id", "day", "kind"],
                                   set_={"count": usage_counters.c.count + 1})
            .returning(usage_counters.c.count, usage_counters.c.alerted)).one()
        floor = as_int(self.config.get("CARD_READ_ALERT_FLOOR"), 200)
        if alerted or count < floor:
            return
        usual = session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(usage_counters.c.count), 0) / 14.0)
            .where(usage_counters.c.user_id == identity.user_id,
                   usage_counters.c.kind == "card_read",
                   usage_counters.c.day >= day - timedelta(days=14),
                   usage_counters.c.day < day)).scalar()
        factor = as_int(self.config.get("CARD_READ_ALERT_FACTOR"), 5)
        if count < factor * float(usual):
            return
        session.execute(sa.update(usage_counters).where(
            usage_counters.c.user_id == identity.user_id, usage_counters.c.day == day,
            usage_counters.c.kind == "card_read").values(alerted=True))
        dept = store.department(session, identity.department_id)
        self.outbox.emit(session, "card_reading_alert", {
            "user_id": identity.user_id, "department_id": identity.department_id,
            "head_user_id": dept["head_user_id"] if dept else None, "day": day,
            "reads_today": count, "usual_per_day": round(float(usual), 2)})
        store.audit(session, identity, "reading_alert", now,
                    details={"reads_today": count, "usual_per_day": float(usual)})

    def _card(self, session, identity, client_id) -> dict:
        row = store.client_row(session, client_id)
        card = dict(row)
        card["contacts"] = store.contacts_of(session, [row["id"]]).get(row["id"], [])
        card["owner_name"] = store.staff_names(session, [row["owner_id"]]).get(row["owner_id"])
        card["department_name"] = store.department_names(
            session, [row["department_id"]]).get(row["department_id"])
        card["read_only"] = not access.can_edit(identity, row)
        return ClientSchema().dump(card)

    @rpc
    def list_clients(self, filters: dict | None = None, limit: int = 50,
                     offset: int = 0, cursor: str | None = None,
                     sort: str | None = None) -> dict:
        """Clients the caller may see: ``{"items": [...], "total": n, "next_cursor": ...}``,
        newest first unless ``sort`` (``created``, ``updated``, ``name``, ``-`` for descending).
        With ``cursor`` or ``sort`` it pages by keyset (pass ``next_cursor`` back as ``cursor``);
        without either, by ``offset`` as before (``next_cursor`` null). Filters: ``q`` (name,
        INN or phone), ``status``, ``segment``, ``region``, ``owner_id``, ``department_id``,
        ``pool`` (true: unowned only). Items carry no contacts."""
        identity = self.caller.require()
        filters = filters or {}
        limit = max(1, min(int(limit), 500))
        query = sa.select(clients).where(clients.c.merged_into.is_(None))
        visible = access.visibility_filter(identity, clients)
        if visible is not None:
            query = query.where(visible)
        query = self._apply_filters(query, filters)
        next_cursor = None
        with self.db.session() as session:
            if filters.get("q"):
                # `%` compares with the connection's pg_trgm limit: set ours, never inherit one.
                session.execute(sa.select(sa.func.set_limit(SEARCH_SIMILARITY)))
            total = session.execute(
                sa.select(sa.func.count()).select_from(query.subquery())).scalar()
            if cursor is None and sort is None:
                # Callers of the offset pages (the web pages) keep them exactly; the HTTP API
                # always names a sort and pages by cursor.
                rows = session.execute(query.order_by(clients.c.created_at.desc(), clients.c.id)
                                       .limit(limit).offset(max(0, int(offset)))).mappings().all()
            else:
                rows, next_cursor = keyset_page(
                    session, query, sort=sort, default="-created", id_column=clients.c.id,
                    sorts={"created": clients.c.created_at, "updated": clients.c.updated_at,
                           "name": clients.c.name_key},
                    cursor=cursor, limit=limit)
            names = store.staff_names(session, [r["owner_id"] for r in rows])
            depts = store.department_names(session, [r["department_id"] for r in rows])
            items = []
            for row in rows:
                item = dict(row)
                item["owner_name"] = names.get(row["owner_id"])
                item["department_name"] = depts.get(row["department_id"])
                item["read_only"] = not access.can_edit(identity, row)
                item["contacts"] = []
                items.append(ClientSchema(exclude=("contacts",)).dump(item))
            return {"items": items, "total": total, "next_cursor": next_cursor}

    @staticmethod
    def _apply_filters(query, filters: dict):
        c = clients.c
        if filters.get("q"):
            from .domain.normalize import digits, name_key

            text = str(filters["q"]).strip()
            number = digits(text)
            conditions = [c.name_key.op("%")(name_key(text)) if name_key(text) else sa.false(),
                          c.short_name.icontains(text, autoescape=True)]
            if len(number) >= 5:
                conditions += [c.inn.startswith(number),
                               c.phones.any(f"+7{number[-10:]}") if len(number) >= 10
                               else sa.false()]
            query = query.where(sa.or_(*conditions))
        for field in ("status", "segment", "region"):
            if filters.get(field):
                query = query.where(getattr(c, field) == filters[field])
        if filters.get("owner_id"):
            query = query.where(c.owner_id == store.as_uuid(filters["owner_id"], "owner_id"))
        if filters.get("department_id"):
            query = query.where(c.department_id == store.as_uuid(filters["department_id"],
                                                                  "department_id"))
        if filters.get("pool"):
            query = query.where(c.owner_id.is_(None))
        return query

    # -- changing ---------------------------------------------------------------------------------
    @rpc
    def update_client(self, client_id: str, changes: dict,
                      expected_version: int | None = None) -> dict:
        """Change card fields (owner and department change through hand-over, not here). With
        ``expected_version`` a concurrent edit is refused (409 ``stale_version``)."""
        identity = self.caller.require()
        changes = {k: v for k, v in (changes or {}).items() if k in CARD_FIELDS}
        card = normalise_client(changes, partial=True)
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id, lock=True)
            access.require_edit(identity, row)
            if expected_version is not None and int(expected_version) != row["version"]:
                raise Conflict("Карточку уже изменили: обновите её и повторите",
                               code="stale_version", extra={"version": row["version"]})
            updated = {**row, **{k: v for k, v in card.items() if k in CARD_FIELDS}}
            if "short_name" in card:
                updated["name_key"] = card["name_key"]
            changed = [f for f in CARD_FIELDS if f in card and card[f] != row[f]]
            if not changed:
                return self._card(session, identity, row["id"])
            contact_rows = store.contacts_of(session, [row["id"]]).get(row["id"], [])
            keys = identifiers_of(updated, contact_rows)
            store.lock_keys(session, [f"{k}:{v}" for k, v, _ in keys])
            blocking = [m for m in self._matches(session, updated, contact_rows, similar=False)
                        if m["blocking"] and m["client_id"] != str(row["id"])
                        and {r["reason"] for r in m["reasons"]} - {"name"}]
            if blocking:
                self._refuse_collision(blocking[0])
            session.execute(sa.update(clients).where(clients.c.id == row["id"]).values(
                **{f: updated[f] for f in changed}, name_key=updated["name_key"],
                updated_at=now, updated_by=identity.user_id, version=row["version"] + 1))
            store.replace_identifiers(session, row["id"], keys)
            store.audit(session, identity, "update", now, row["id"], fields=changed)
            updated.update(updated_at=now, version=row["version"] + 1)
            self.outbox.emit(session, "client_updated",
                             {**snapshot(updated, identity.user_id), "changed_fields": changed})
            return self._card(session, identity, row["id"])

    @staticmethod
    def _refuse_collision(match):
        raise Conflict(
            f"Эти реквизиты уже у клиента «{match['short_name']}» (менеджер "
            f"{match['owner_name'] or '—'}, отдел «{match['department_name'] or '—'}»)",
            code="duplicate_identifier",
            extra={"client_id": match["client_id"],
                   "matched_by": ", ".join(r["reason"] for r in match["reasons"])})

    @rpc
    @idempotent
    def add_contact(self, client_id: str, data: dict) -> dict:
        """Add a contact person; their phones and e-mails must not belong to another client."""
        identity = self.caller.require()
        contact = normalise_contact(data)
        contact["id"] = uuid.uuid4()
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id, lock=True)
            access.require_edit(identity, row)
            existing = store.contacts_of(session, [row["id"]]).get(row["id"], [])
            self._check_contact_keys(session, row, [contact])
            session.execute(sa.insert(contact_table).values(
                **contact, client_id=row["id"], created_at=now, created_by=identity.user_id,
                updated_at=now, updated_by=identity.user_id))
            store.replace_identifiers(session, row["id"],
                                      identifiers_of(row, existing + [contact]))
            store.audit(session, identity, "add_contact", now, row["id"],
                        fields=["contacts"], details={"contact_id": str(contact["id"])})
            return ContactSchema().dump({**contact, "client_id": row["id"]})

    @rpc
    def update_contact(self, contact_id: str, changes: dict) -> dict:
        """Change a contact person's fields."""
        identity = self.caller.require()
        changes = normalise_contact(changes, partial=True)
        now = utcnow()
        with self.db.session() as session:
            current = session.execute(sa.select(contact_table).where(
                contact_table.c.id == store.as_uuid(contact_id, "contact_id"))).mappings().first()
            if current is None:
                raise NotFound("Контакт не найден", code="contact_not_found")
            row = store.client_row(session, current["client_id"], lock=True)
            access.require_edit(identity, row)
            merged = {**current, **changes}
            self._check_contact_keys(session, row, [merged])
            session.execute(sa.update(contact_table).where(contact_table.c.id == current["id"])
                            .values(**changes, updated_at=now, updated_by=identity.user_id))
            others = [c for c in store.contacts_of(session, [row["id"]]).get(row["id"], [])]
            store.replace_identifiers(session, row["id"], identifiers_of(row, others))
            store.audit(session, identity, "update_contact", now, row["id"],
                        fields=sorted(changes), details={"contact_id": str(current["id"])})
            return ContactSchema().dump(merged)

    def _check_contact_keys(self, session, row, contact_list):
        """A contact's phone or e-mail that belongs to another client is refused."""
        keys = identifiers_of({}, contact_list)
        store.lock_keys(session, [f"{k}:{v}" for k, v, _ in keys])
        for kind, value, hit in store.exact_hits(session, keys):
            if hit["id"] != row["id"]:
                self._refuse_collision({
                    "client_id": str(hit["id"]), "short_name": hit["short_name"],
                    "owner_name": store.staff_names(session, [hit["owner_id"]]).get(
                        hit["owner_id"]),
                    "department_name": store.department_names(
                        session, [hit["department_id"]]).get(hit["department_id"]),
                    "reasons": [{"reason": kind, "value": value}]})

    # -- ownership: claim from the pool, release of forgotten leads, arbitration ----------------
    @rpc
    def claim_client(self, client_id: str) -> dict:
        """Take a pool client of one's department into work. Two managers claiming at once:
        exactly one wins, the other gets 409 ``already_claimed``."""
        identity = self.caller.require("manager", "sales_head")
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id, lock=True)
            if str(row["department_id"]) != str(identity.department_id):
                raise Forbidden("Клиент другого отдела", code="client_access_denied")
            if row["owner_id"] is not None:
                names = store.staff_names(session, [row["owner_id"]])
                raise Conflict(f"Клиента уже взял в работу {names.get(row['owner_id']) or '—'}",
                               code="already_claimed",
                               extra={"owner_id": str(row["owner_id"])})
            access.require_read(identity, row)
            self._change_owner(session, identity, row, uuid.UUID(identity.user_id),
                               identity.department_id, "claim", now)
            return self._card(session, identity, row["id"])

    @rpc
    def reassign_client(self, client_id: str, owner_id: str | None) -> dict:
        """The sales head's arbitration: give a client of the department to a manager (or back to
        the pool with ``owner_id`` null)."""
        identity = self.caller.require("sales_head", "director")
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id, lock=True)
            access.require_edit(identity, row)
            new_owner, department_id = (None, row["department_id"])
            if owner_id:
                new_owner, department_id = self._assignable_owner(session, identity, owner_id)
            self._change_owner(session, identity, row, new_owner, department_id,
                               "arbitration", now)
            return self._card(session, identity, row["id"])

    @rpc
    def assign_pool_client(self, client_id: str, owner_id: str) -> dict:
        """Lead distribution (the deals service, integration identity) gives a pool client to
        a manager of its department: ``{"assigned": true}``; a client no longer in the pool
        (claimed meanwhile) is left alone: ``{"assigned": false, "owner_id": ...}``."""
        identity = self.caller.require("integration")
        now = utcnow()
        with self.db.session() as session:
            row = store.client_row(session, client_id, lock=True)
            if row["owner_id"] is not None:
                return {"assigned": False,
                        "owner_id": str(row["owner_id"]) if row["owner_id"] else None}
            member = store.staff_member(session, store.as_uuid(owner_id, "owner_id"))
            if member is None or not member["active"] or member["role"] != "manager" or \
                    member["department_id"] != row["department_id"]:
                raise ValidationFailed("Нет такого менеджера в отделе клиента", fields={
                    "owner_id": ["активный менеджер отдела, в пуле которого клиент"]})
            self._change_owner(session, identity, row, member["user_id"],
                               row["department_id"], "distribution", now)
            return {"assigned": True, "owner_id": str(member["user_id"])}

    def _change_owner(self, session, identity, row, new_owner, department_id, reason, now,
                      batch_id=None, include_deals=True, include_tasks=True):
        if row["owner_id"] == new_owner and row["department_id"] == department_id:
            return False
        session.execute(sa.update(clients).where(clients.c.id == row["id"]).values(
            owner_id=new_owner, department_id=department_id,
            owned_since=now if new_owner else None,
            last_owner_interaction_at=None if new_owner != row["owner_id"] else
            row["last_owner_interaction_at"],
            updated_at=now, updated_by=identity.user_id if identity else None,
            version=row["version"] + 1))
        store.start_ownership(session, row["id"], new_owner, department_id, reason,
                              identity.user_id if identity else None, now)
        if identity is not None:
            store.audit(session, identity, reason, now, row["id"], fields=["owner_id"],
                        details={"from": str(row["owner_id"]) if row["owner_id"] else None,
                                 "to": str(new_owner) if new_owner else None})
        self.outbox.emit(session, "client_owner_changed", {
            "client_id": row["id"], "previous_owner_id": row["owner_id"],
            "new_owner_id": new_owner, "previous_department_id": row["department_id"],
            "new_department_id": department_id, "reason": reason, "batch_id": batch_id,
            "include_open_deals": include_deals, "include_open_tasks": include_tasks,
            "changed_by": identity.user_id if identity else None})
        return True

    @timer(interval=3600)
    def release_forgotten_clients(self):
        """Hourly: potential clients whose owner has not touched them for the reservation period
        (``CLIENT_RESERVATION_DAYS``, default 30) go back to the department pool. Safe with several
        replicas: rows are taken with SKIP LOCKED."""
        self.release_stale(limit=1000)

    def release_stale(self, limit: int = 1000) -> int:
        days = as_int(self.config.get("CLIENT_RESERVATION_DAYS"), 30)
        now = utcnow()
        cutoff = now - timedelta(days=days)
        touched = sa.func.coalesce(clients.c.last_owner_interaction_at, clients.c.owned_since)
        with self.db.session() as session:
            rows = session.execute(
                sa.select(clients).where(clients.c.owner_id.is_not(None),
                                         clients.c.status == "potential",
                                         clients.c.merged_into.is_(None), touched < cutoff)
                .limit(limit).with_for_update(skip_locked=True)).mappings().all()
            for row in rows:
                self._change_owner(session, None, dict(row), None, row["department_id"],
                                   "release", now)
            return len(rows)

    # -- history and audit ------------------------------------------------------------------------
    @rpc
    def ownership_history(self, client_id: str) -> list[dict]:
        """Who owned the client when, and why it moved."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = store.client_row(session, client_id)
            access.require_read(identity, row)
            rows = session.execute(sa.select(ownership_history).where(
                ownership_history.c.client_id == row["id"]).order_by(
                ownership_history.c.since)).mappings().all()
            names = store.staff_names(session, [r["owner_id"] for r in rows])
            return [{"owner_id": str(r["owner_id"]) if r["owner_id"] else None,
                     "owner_name": names.get(r["owner_id"]),
                     "department_id": str(r["department_id"]) if r["department_id"] else None,
                     "since": r["since"].isoformat(),
                     "until": r["until"].isoformat() if r["until"] else None,
                     "reason": r["reason"]} for r in rows]

    @rpc
    def client_audit(self, client_id: str, limit: int = 200) -> list[dict]:
        """The audit trail of one client (sales heads of its department and directors)."""
        identity = self.caller.require("sales_head", "director")
        with self.db.session() as session:
            row = store.client_row(session, client_id)
            access.require_read(identity, row)
            rows = session.execute(sa.select(audit_log).where(
                audit_log.c.client_id == row["id"]).order_by(audit_log.c.id.desc())
                .limit(max(1, min(int(limit), 1000)))).mappings().all()
            return [{"at": r["at"].isoformat(), "user_id": str(r["user_id"]) if r["user_id"]
                     else None, "role": r["role"], "action": r["action"],
                     "fields": list(r["fields"]), "details": r["details"]} for r in rows]
