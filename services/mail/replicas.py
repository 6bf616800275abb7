"""What mail keeps of other services, from their events (each handler idempotent by event id).

* ``client_replica``: owner and department of each client, for access to its messages
  (``client_created``, ``client_updated``, ``client_owner_changed``, ``clients_merged``);
* ``address_book``: the clients' company e-mails (their events carry them); contacts' e-mails are
  learned by the batched duplicate-check lookup (``registration``). A client event drops the
  "nobody has this address" answers, and that client's looked-up addresses, so they are asked
  again; unmatched messages from or to its company addresses join the client;
* ``deal_replica``: deal id, its 8-digit short reference and client, to link a subject's
  ``[CRM-1a2b3c4d]`` (``deal_created``, ``deal_updated``).
A merge re-points the merged client's messages, threads and addresses at the survivor.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.consumer import event_handler
from crm_platform.inbox import claim_event

from .domain.parsing import normalise_address
from .models import address_book, client_replica, deal_replica, messages, threads


class ReplicaEntrypoints:
    def _upsert_client(self, session, p: dict) -> None:
        values = {"short_name": p["short_name"], "owner_id": p["owner_id"],
                  "department_id": p["department_id"], "updated_at": utcnow()}
        session.execute(pg_insert(client_replica).values(client_id=p["client_id"], **values)
                        .on_conflict_do_update(index_elements=["client_id"], set_=values))
        now = utcnow()
        emails = sorted({a for a in (normalise_address(e) for e in p.get("emails") or []) if a})
        # The card's company e-mails are exactly these now.
        session.execute(sa.delete(address_book).where(
            address_book.c.client_id == p["client_id"],
            address_book.c.source.in_(("event", "rpc")),
            address_book.c.address.not_in(emails) if emails else sa.true()))
        session.execute(sa.delete(address_book).where(address_book.c.client_id.is_(None)))
        if emails:
            # Mail that came before the client knew these addresses joins it now (it was
            # announced already: no second email_registered).
            session.execute(sa.update(messages).where(
                messages.c.client_id.is_(None),
                sa.or_(sa.and_(messages.c.direction == "inbound",
                               messages.c.from_address.in_(emails)),
                       sa.and_(messages.c.direction == "outbound",
                               sa.or_(messages.c.to_addresses.overlap(emails),
                                      messages.c.cc_addresses.overlap(emails)))))
                .values(client_id=p["client_id"]))
            stmt = pg_insert(address_book).values([
                {"address": e, "client_id": p["client_id"], "contact_id": None,
                 "source": "event", "checked_at": now} for e in emails])
            session.execute(stmt.on_conflict_do_update(
                index_elements=["address"],
                set_={"client_id": stmt.excluded.client_id, "contact_id": None,
                      "source": "event", "checked_at": now}))

    @event_handler("clients", "client_created")
    def handle_client_created(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_client(session, event.payload)

    @event_handler("clients", "client_updated")
    def handle_client_updated(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_client(session, event.payload)

    @event_handler("clients", "client_owner_changed")
    def handle_client_owner_changed(self, event):
        p = event.payload
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            values = {"owner_id": p["new_owner_id"], "department_id": p["new_department_id"],
                      "updated_at": utcnow()}
            session.execute(pg_insert(client_replica).values(
                client_id=p["client_id"], short_name="", **values).on_conflict_do_update(
                index_elements=["client_id"], set_=values))

    @event_handler("clients", "clients_merged")
    def handle_clients_merged(self, event):
        p = event.payload
        survivor, merged = p["survivor_id"], p["merged_id"]
        with self.db.session() as session:
            if not claim_event(session, event):
                return
            session.execute(pg_insert(client_replica).values(
                client_id=merged, short_name="", merged_into=survivor, updated_at=utcnow())
                .on_conflict_do_update(index_elements=["client_id"],
                                       set_={"merged_into": survivor}))
            session.execute(sa.update(messages).where(messages.c.client_id == merged)
                            .values(client_id=survivor))
            session.execute(sa.update(threads).where(threads.c.client_id == merged)
                            .values(client_id=survivor))
            session.execute(sa.update(address_book).where(address_book.c.client_id == merged)
                            .values(client_id=survivor))

    def _upsert_deal(self, session, p: dict) -> None:
        values = {"client_id": p.get("client_id"), "owner_id": p.get("owner_id"),
                  "short_ref": str(p["deal_id"])[:8]}
        session.execute(pg_insert(deal_replica).values(deal_id=p["deal_id"], **values)
                        .on_conflict_do_update(index_elements=["deal_id"], set_=values))

    @event_handler("deals", "deal_created")
    def handle_deal_created(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_deal(session, event.payload)

    @event_handler("deals", "deal_updated")
    def handle_deal_updated(self, event):
        with self.db.session() as session:
            if claim_event(session, event):
                self._upsert_deal(session, event.payload)
