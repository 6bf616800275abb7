"""Entrypoints of the clients service: hand-over between managers and the merge of duplicates.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).

Hand-over (``transfer_clients``) moves all or a filtered part of one manager's clients to one
manager or spreads them evenly over several, in one transaction with the rows locked: all of them
move or none. Every moved client gets its ownership history, an audit entry and a
``client_owner_changed`` event (reason ``transfer``, one ``batch_id`` for the whole hand-over), from
which deals and tasks follow the new owner and the people concerned are notified.

Merge (``merge_clients``) folds a duplicate into the survivor: contacts, phones, e-mails,
addresses, ERP documents and campaign targets move over, empty fields of the survivor are filled,
the duplicate is marked ``merged_into`` (it then reads as 404 ``client_merged``) and
``clients_merged`` tells the other services to re-point their references.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.rpc import rpc

from . import store
from .domain.card import identifiers_of
from .domain.handover import (
    counts_per_receiver,
    merge_cards,
    merge_refusal,
    receiver_ids,
    spread,
    transfer_filters,
)
from .models import (
    campaign_targets,
    clients,
    contacts,
    erp_documents,
    identifiers,
    ownership_history,
    staff,
)
from .payloads import snapshot

# Who may own clients (and so receive them in a hand-over).
OWNER_ROLES = ("manager", "sales_head")


def _str(value) -> str | None:
    return str(value) if value is not None else None


class HandoverEntrypoints:
    # -- hand-over ------------------------------------------------------------------------------
    @rpc
    def transfer_clients(self, from_user_id: str, to_user_ids, filters: dict | None = None,
                         include_open_deals: bool = True,
                         include_open_tasks: bool = True) -> dict:
        """Hand the clients of ``from_user_id`` (all, or those matching ``filters``: ``status``,
        ``segment``, ``region``, each one value or a list) over to ``to_user_ids`` (one id or a
        list: several receivers get the clients round-robin, oldest client first, so their counts
        differ by at most one). Open deals and tasks follow unless ``include_open_deals`` /
        ``include_open_tasks`` are false.

        A sales head hands over between people of the own department; a director between anyone
        (a client moved to another department's manager moves to that department). Receivers must
        be active managers or sales heads (else 422 naming ``to_user_ids``). Atomic: all clients
        move or none. Returns ``{"batch_id", "moved", "per_receiver": {user_id: n}}``."""
        identity = self.caller.require("sales_head", "director")
        giver_id = store.as_uuid(from_user_id, "from_user_id")
        receivers = receiver_ids(to_user_ids, giver_id)
        wanted = transfer_filters(filters)
        include_deals, include_tasks = bool(include_open_deals), bool(include_open_tasks)
        now = utcnow()
        batch_id = uuid.uuid4()
        with self.db.session() as session:
            people = self._staff_rows(session, [giver_id, *receivers])
            self._check_giver(identity, giver_id, people.get(giver_id))
            self._check_receivers(identity, receivers, people)

            query = (sa.select(clients)
                     .where(clients.c.owner_id == giver_id, clients.c.merged_into.is_(None)))
            if identity.role == "sales_head":
                query = query.where(clients.c.department_id == uuid.UUID(identity.department_id))
            for name, values in wanted.items():
                query = query.where(getattr(clients.c, name).in_(values))
            rows = session.execute(
                query.order_by(clients.c.created_at, clients.c.id).with_for_update()
            ).mappings().all()

            assignment = spread([dict(row) for row in rows], receivers)
            for row, receiver in assignment:
                self._change_owner(session, identity, row, receiver,
                                   people[receiver]["department_id"], "transfer", now,
                                   batch_id=batch_id, include_deals=include_deals,
                                   include_tasks=include_tasks)
            per_receiver = {str(r): n
                            for r, n in counts_per_receiver(assignment, receivers).items()}
            store.audit(session, identity, "handover", now, None, fields=["owner_id"], details={
                "batch_id": str(batch_id), "from_user_id": str(giver_id),
                "to_user_ids": [str(r) for r in receivers], "filters": wanted,
                "include_open_deals": include_deals, "include_open_tasks": include_tasks,
                "moved": len(assignment), "per_receiver": per_receiver,
                "client_ids": [str(row["id"]) for row, _ in assignment]})
            return {"batch_id": str(batch_id), "moved": len(assignment),
                    "per_receiver": per_receiver}

    @staticmethod
    def _staff_rows(session, user_ids) -> dict:
        rows = session.execute(sa.select(staff).where(staff.c.user_id.in_(list(set(user_ids)))))
        return {row["user_id"]: dict(row) for row in rows.mappings()}

    @staticmethod
    def _check_giver(identity, giver_id, giver) -> None:
        if identity.role != "sales_head":
            return  # a director hands over anyone's clients, even of someone the replica lacks
        if identity.department_id is None or giver is None \
                or _str(giver["department_id"]) != identity.department_id:
            raise Forbidden("Передавать можно только клиентов менеджеров своего отдела",
                            code="handover_not_allowed",
                            extra={"from_user_id": str(giver_id)})

    @staticmethod
    def _check_receivers(identity, receivers, people) -> None:
        bad = {}
        for receiver in receivers:
            member = people.get(receiver)
            if member is None:
                bad[str(receiver)] = "нет такого сотрудника"
            elif not member["active"]:
                bad[str(receiver)] = f"{member['full_name']} — неактивный сотрудник"
            elif member["role"] not in OWNER_ROLES:
                bad[str(receiver)] = f"{member['full_name']} не ведёт клиентов"
        if bad:
            raise ValidationFailed(
                "Не всем получателям можно передать клиентов: передача не выполнена",
                fields={"to_user_ids": [f"{k}: {v}" for k, v in bad.items()]},
                extra={"receivers": bad})
        if identity.role == "sales_head":
            others = [str(r) for r in receivers
                      if _str(people[r]["department_id"]) != identity.department_id]
            if others:
                raise Forbidden("Можно передавать клиентов только сотрудникам своего отдела",
                                code="owner_not_allowed", extra={"to_user_ids": others})

    # -- merge ----------------------------------------------------------------------------------
    @rpc
    def merge_clients(self, survivor_id: str, merged_id: str) -> dict:
        """Merge the duplicate ``merged_id`` into ``survivor_id`` and return the survivor's card.

        Nothing is lost: contacts, ERP documents and campaign targets move to the survivor, phones,
        e-mails and addresses are united, empty survivor fields are filled from the duplicate
        (values the survivor already has are kept and the others named in the audit). The
        duplicate stays in the database marked ``merged_into`` and reads as 404 ``client_merged``.
        A sales head merges clients of the own department, a director any. Refused (409): a client
        with itself (``same_client``), an already merged one (``already_merged``), different INNs
        (``different_inn``: other legal entities), KPPs (``different_kpp``: other branches) or
        OGRNs (``different_ogrn``)."""

        identity = self.caller.require("sales_head", "director")
        survivor_uuid = store.as_uuid(survivor_id, "survivor_id")
        merged_uuid = store.as_uuid(merged_id, "merged_id")
        now = utcnow()
        with self.db.session() as session:
            # Both rows locked, in id order: two merges of the same pair cannot deadlock.
            found = {row["id"]: dict(row) for row in session.execute(
                sa.select(clients).where(clients.c.id.in_({survivor_uuid, merged_uuid}))
                .order_by(clients.c.id).with_for_update()).mappings()}
            for key, client_id in (("survivor_id", survivor_uuid), ("merged_id", merged_uuid)):
                if client_id not in found:
                    raise NotFound("Клиент не найден", code="client_not_found",
                                   extra={key: str(client_id)})
            survivor, merged = found[survivor_uuid], found[merged_uuid]
            merge_refusal(survivor, merged)
            self._check_merge_access(identity, survivor, merged)

            plan = merge_cards(survivor, merged)
            moved_contacts = session.execute(
                sa.update(contacts).where(contacts.c.client_id == merged_uuid)
                .values(client_id=survivor_uuid, updated_at=now, updated_by=identity.user_id)
                .returning(contacts.c.id)).scalars().all()
            version = survivor["version"] + 1
            session.execute(sa.update(clients).where(clients.c.id == survivor_uuid).values(
                **plan.changes, updated_at=now, updated_by=identity.user_id, version=version))
            session.execute(sa.update(clients).where(clients.c.id == merged_uuid).values(
                merged_into=survivor_uuid, updated_at=now, updated_by=identity.user_id,
                version=merged["version"] + 1))
            updated = {**survivor, **plan.changes, "updated_at": now, "version": version}

            session.execute(sa.delete(identifiers).where(identifiers.c.client_id == merged_uuid))
            all_contacts = store.contacts_of(session, [survivor_uuid]).get(survivor_uuid, [])
            store.replace_identifiers(session, survivor_uuid,
                                      identifiers_of(updated, all_contacts))
            documents = session.execute(
                sa.update(erp_documents).where(erp_documents.c.client_id == merged_uuid)
                .values(client_id=survivor_uuid)).rowcount or 0
            targets = self._move_campaign_targets(session, survivor_uuid, merged_uuid)
            session.execute(sa.update(ownership_history)
                            .where(ownership_history.c.client_id == merged_uuid,
                                   ownership_history.c.until.is_(None))
                            .values(until=now))

            changed = [*plan.changed_fields, *(["contacts"] if moved_contacts else [])]
            details = {
                "survivor_id": str(survivor_uuid), "merged_id": str(merged_uuid),
                "merged_name": merged["short_name"], "merged_inn": merged["inn"],
                "merged_owner_id": _str(merged["owner_id"]),
                "filled": {k: _str(v) for k, v in plan.filled.items()},
                "not_taken": {k: _str(v) for k, v in plan.not_taken.items()},
                "contacts_moved": [str(c) for c in moved_contacts],
                "erp_documents_moved": documents, "campaign_targets_moved": targets,
            }
            store.audit(session, identity, "merge", now, survivor_uuid, fields=changed,
                        details=details)
            store.audit(session, identity, "merged_into", now, merged_uuid,
                        fields=["merged_into"], details=details)
            self.outbox.emit(session, "clients_merged", {
                "survivor_id": survivor_uuid, "merged_id": merged_uuid,
                "changed_by": identity.user_id})
            self.outbox.emit(session, "client_updated",
                             {**snapshot(updated, identity.user_id), "changed_fields": changed})
            return self._card(session, identity, survivor_uuid)

    @staticmethod
    def _check_merge_access(identity, survivor, merged) -> None:
        if identity.role == "director":
            return
        outside = [str(row["id"]) for row in (survivor, merged)
                   if _str(row["department_id"]) != identity.department_id
                   or identity.department_id is None]
        if outside:
            raise Forbidden("Объединять можно только клиентов своего отдела",
                            code="client_access_denied", extra={"client_ids": outside})

    @staticmethod
    def _move_campaign_targets(session, survivor_id, merged_id) -> int:
        """Targets of the duplicate become the survivor's; where both were targets of one
        campaign, the survivor's row keeps the earliest outcome of the two and the other goes."""
        mine, theirs = campaign_targets.alias("mine"), campaign_targets.alias("theirs")
        session.execute(
            sa.update(mine)
            .where(mine.c.client_id == survivor_id, theirs.c.client_id == merged_id,
                   theirs.c.campaign_id == mine.c.campaign_id)
            .values(reached_at=sa.func.least(mine.c.reached_at, theirs.c.reached_at),
                    deal_created_at=sa.func.least(mine.c.deal_created_at,
                                                  theirs.c.deal_created_at)))
        both = sa.select(campaign_targets.c.campaign_id).where(
            campaign_targets.c.client_id == survivor_id).scalar_subquery()
        session.execute(sa.delete(campaign_targets).where(
            campaign_targets.c.client_id == merged_id, campaign_targets.c.campaign_id.in_(both)))
        return session.execute(
            sa.update(campaign_targets).where(campaign_targets.c.client_id == merged_id)
            .values(client_id=survivor_id)).rowcount or 0
