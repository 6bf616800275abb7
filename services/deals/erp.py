"""The funnel driven by 1C: ERP document events in batches, the deals they move.

One batch of events is one transaction: the newest state of each document goes into the registry
(``erp_documents``; stale and repeated states are dropped by revision), the documents are tied to
deals through their customer orders (``deal_orders``), and every deal they touch is recomputed from
the current states of all its documents — never accumulated — so any order or repetition of events
ends in the same deal. A stage that changes is moved with cause ``erp``, naming the document.

An order is tied to a deal the first time any document of it arrives: to the deal named in 1C
(``deal_id``, the format extension's ``crm:Сделка``), else to the client's open deal that is still
before the order (the most advanced, then the latest), else to a new deal of the client's owner
(source ``erp``). Documents of a counterparty not yet matched to a client wait in the registry and
are tied when the client appears (``link_waiting_documents``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.batching import batch_event_handler
from crm_platform.clock import utcnow
from crm_platform.inbox import claim_events
from crm_platform.rpc import rpc

from . import client_timeline, moves, store
from .domain.deal_input import parse_uuid
from .domain.erp import Document, document_from_event, facts_of, fold
from .domain.funnel import current_stage, payment_status
from .models import client_replica, deal_orders, deals, erp_documents
from .models import client_timeline as client_timeline_table

ERP_EVENT_TYPES = [f"erp_{kind}_{action}" for kind in ("order", "invoice", "shipment", "payment")
                   for action in ("posted", "changed", "unposted", "deleted")]
KIND_TITLES = {"order": "Заказ клиента", "invoice": "Счёт на оплату",
               "shipment": "Реализация (отгрузка)", "payment": "Оплата"}


def _document_row(doc: Document, now) -> dict:
    return {"guid": doc.guid, "kind": doc.kind, "revision": doc.revision, "state": doc.state,
            "amount": doc.amount, "order_guid": doc.order_guid,
            "allocations": [{"order_guid": str(o) if o else None, "amount": str(a)}
                            for o, a in doc.allocations],
            "anchors": list(doc.anchors()), "client_id": doc.client_id,
            "counterparty_guid": doc.counterparty_guid, "number": doc.number,
            "document_date": doc.document_date, "deal_id": doc.deal_id, "updated_at": now}


def _document_of(row) -> Document:
    return Document(
        guid=row["guid"], kind=row["kind"], revision=row["revision"], state=row["state"],
        amount=row["amount"], order_guid=row["order_guid"],
        allocations=tuple((uuid.UUID(a["order_guid"]) if a["order_guid"] else None,
                           Decimal(a["amount"])) for a in row["allocations"]),
        client_id=row["client_id"], counterparty_guid=row["counterparty_guid"],
        number=row["number"], document_date=row["document_date"], deal_id=row["deal_id"])


class ErpEntrypoints:
    @batch_event_handler("erp_bridge", ERP_EVENT_TYPES)
    def handle_erp_documents(self, events):
        now = utcnow()
        with self.db.session() as session:
            fresh = claim_events(session, events)
            if fresh:
                self.apply_documents(session, [document_from_event(e.type, e.payload)
                                               for e in fresh], now)

    # -- applying ----------------------------------------------------------------------------------
    def apply_documents(self, session, incoming: list[Document], now) -> set:
        """Keep the newest state of each document, tie new orders to deals, recompute the deals
        touched. Returns the ids of the deals recomputed."""
        newest: dict[uuid.UUID, Document] = {}
        for doc in incoming:
            fold(newest, doc)
        guids = sorted(newest)
        kept = {row["guid"]: row for row in session.execute(
            sa.select(erp_documents).where(erp_documents.c.guid.in_(guids))
            .order_by(erp_documents.c.guid).with_for_update()).mappings()}
        changed: list[Document] = []
        touched_anchors: set[uuid.UUID] = set()
        rows = []
        moved_away: list[tuple] = []        # (client, guid): a document given to another client
        for guid in guids:
            doc = newest[guid]
            old = kept.get(guid)
            if old is not None and old["revision"] >= doc.revision:
                continue
            doc = self._with_client(session, doc, old)
            if old is not None and old["client_id"] is not None and \
                    old["client_id"] != doc.client_id:
                moved_away.append((old["client_id"], str(guid)))
            changed.append(doc)
            rows.append(_document_row(doc, now))
            touched_anchors.update(doc.anchors())
            if old is not None:
                touched_anchors.update(old["anchors"])
        if not rows:
            return set()
        store.bulk_upsert(session, erp_documents, rows, ("guid",),
                          tuple(c for c in rows[0] if c != "guid"))
        anchor_deals = self._anchor_deals(session, changed, touched_anchors, now)
        deal_ids = {deal_id for anchor, deal_id in anchor_deals.items()
                    if anchor in touched_anchors}
        cause = {}
        for doc in changed:
            for anchor in doc.anchors():
                if anchor in anchor_deals:
                    cause[anchor_deals[anchor]] = doc
        self._recompute(session, sorted(deal_ids), cause, now, changed)
        for client_id, guid in moved_away:
            session.execute(sa.delete(client_timeline_table).where(
                client_timeline_table.c.client_id == client_id,
                client_timeline_table.c.kind == "erp", client_timeline_table.c.ref == guid))
        self._record_client_documents(session, changed, anchor_deals, now)
        return deal_ids

    @staticmethod
    def _record_client_documents(session, documents: list[Document], anchor_deals: dict,
                                 now) -> None:
        """The client's feed shows each of its documents in the newest revision (un-posted and
        deleted ones as such), with the deal it belongs to when it is tied to one."""
        client_timeline.record(session, [client_timeline.document_entry(
            doc, next((anchor_deals[a] for a in doc.anchors() if a in anchor_deals), None),
            KIND_TITLES.get(doc.kind, doc.kind), now) for doc in documents],
            newer_by="revision")

    def _with_client(self, session, doc: Document, old) -> Document:
        """The client of the document: as the bridge resolved it, else by the 1C counterparty
        from the client replica, else what an earlier version knew."""
        if doc.client_id is not None:
            return doc
        client_id = None
        if doc.counterparty_guid is not None:
            client_id = session.execute(sa.select(client_replica.c.client_id).where(
                client_replica.c.erp_counterparty_guid == doc.counterparty_guid,
                client_replica.c.merged_into.is_(None)).limit(1)).scalar()
        if client_id is None and old is not None:
            client_id = old["client_id"]
        if client_id is None:
            return doc
        return Document(**{**doc.__dict__, "client_id": client_id})

    def _anchor_deals(self, session, changed: list[Document], anchors: set, now) -> dict:
        """anchor -> deal for every anchor touched, tying new ones (posted documents only: an
        un-posted document of an unknown order changes no deal)."""
        known = dict(session.execute(sa.select(deal_orders.c.order_guid, deal_orders.c.deal_id)
                                     .where(deal_orders.c.order_guid.in_(anchors))).all())
        new = [(doc, anchor) for doc in changed if doc.posted and doc.client_id is not None
               for anchor in doc.anchors() if anchor not in known]
        if not new:
            return known
        links: dict = {}
        named = {doc.deal_id for doc, anchor in new if doc.guid == anchor and doc.deal_id}
        existing = set(session.execute(sa.select(deals.c.id).where(
            deals.c.id.in_(named))).scalars()) if named else set()
        for doc, anchor in new:
            if anchor in links:
                continue
            if doc.guid == anchor and doc.deal_id in existing:
                links[anchor] = doc.deal_id
                continue
            deal_id = self._deal_for_anchor(session, doc, anchor, now,
                                            taken=set(links.values()))
            if deal_id is not None:
                links[anchor] = deal_id
        if links:
            inserted = session.execute(pg_insert(deal_orders).values(
                [{"order_guid": a, "deal_id": d, "linked_at": now} for a, d in links.items()])
                .on_conflict_do_nothing().returning(deal_orders.c.order_guid)).scalars().all()
            known.update({a: links[a] for a in inserted})
            raced = set(links) - set(inserted)          # tied by another replica meanwhile
            if raced:
                known.update(session.execute(sa.select(
                    deal_orders.c.order_guid, deal_orders.c.deal_id).where(
                    deal_orders.c.order_guid.in_(raced))).all())
        return known

    def _deal_for_anchor(self, session, doc: Document, anchor, now, taken: set):
        # The order itself may name its deal; a document of the order can only point at the order.
        order = doc if doc.guid == anchor else None
        if order is None:
            named = session.execute(sa.select(erp_documents.c.deal_id).where(
                erp_documents.c.guid == anchor)).scalar()
        else:
            named = order.deal_id
        if named is not None:
            exists = session.execute(sa.select(deals.c.id).where(deals.c.id == named)).scalar()
            if exists is not None:
                return exists
        funnel_row = store.default_funnel_row(session)
        manual = store.funnel_of(funnel_row).manual_codes
        candidates = session.execute(sa.select(deals.c.id, deals.c.stage, deals.c.updated_at)
                                     .where(deals.c.client_id == doc.client_id,
                                            deals.c.closed_at.is_(None),
                                            deals.c.has_orders.is_(False),
                                            deals.c.stage.in_(manual))).all()
        candidates = [c for c in candidates if c.id not in taken]
        if candidates:
            order_of = {code: i for i, code in enumerate(manual)}
            best = max(candidates, key=lambda r: (order_of.get(r.stage, -1), r.updated_at))
            return best.id
        return self._new_erp_deal(session, doc, funnel_row, now)

    def _new_erp_deal(self, session, doc: Document, funnel_row, now):
        client = session.execute(sa.select(client_replica).where(
            client_replica.c.client_id == doc.client_id)).mappings().first()
        if client is None:
            return None
        owner = client["owner_id"] or store.head_of(session, client["department_id"])
        if owner is None:
            return None
        title = f"{KIND_TITLES.get(doc.kind, 'Документ')} {doc.number}".strip()
        row = self._insert_deal(session, funnel_row, {"title": f"{client['short_name']}: {title}"},
                                client, owner, "erp", None, now)
        return row["id"]

    def _recompute(self, session, deal_ids: list, cause: dict, now,
                   changed: list[Document]) -> None:
        if not deal_ids:
            return
        rows = session.execute(sa.select(deals).where(deals.c.id.in_(deal_ids))
                               .order_by(deals.c.id).with_for_update()).mappings().all()
        anchors_of: dict = defaultdict(set)
        for anchor, deal_id in session.execute(sa.select(
                deal_orders.c.order_guid, deal_orders.c.deal_id).where(
                deal_orders.c.deal_id.in_(deal_ids))).all():
            anchors_of[deal_id].add(anchor)
        all_anchors = set().union(*anchors_of.values()) if anchors_of else set()
        documents = [_document_of(r) for r in session.execute(sa.select(erp_documents).where(
            erp_documents.c.anchors.overlap(
                sa.cast(list(all_anchors), erp_documents.c.anchors.type)))).mappings()
        ] if all_anchors else []
        by_anchor: dict = defaultdict(list)
        for doc in documents:
            for anchor in doc.anchors():
                by_anchor[anchor].append(doc)
        changed_by_anchor: dict = defaultdict(list)
        for doc in changed:
            for anchor in doc.anchors():
                changed_by_anchor[anchor].append(doc)
        funnels_ = store.funnels_by_id(session)
        to_move: list[moves.Move] = []
        updates, entries = [], []
        for row in rows:
            anchors = anchors_of.get(row["id"], set())
            docs = {d.guid: d for a in anchors for d in by_anchor.get(a, ())}.values()
            facts = facts_of(docs, anchors)
            values = {"ordered_amount": facts.ordered, "invoiced_amount": facts.invoiced,
                      "paid_amount": facts.paid, "shipped_amount": facts.shipped,
                      "has_orders": facts.has_orders, "payment_status": payment_status(facts)}
            entries += [self._document_entry(row["id"], doc) for doc in {
                d.guid: d for a in anchors for d in changed_by_anchor.get(a, ())}.values()]
            target = current_stage(row["manual_stage"], facts, row["stage"] == "lost")
            if target != row["stage"]:
                doc = cause.get(row["id"])
                to_move.append(moves.Move({**row, **values}, funnels_[row["funnel_id"]], target,
                                          document_guid=doc.guid if doc else None))
            elif any(row[k] != v for k, v in values.items()):
                updates.append({"id": row["id"], **values, "updated_at": now,
                                "version": row["version"] + 1})
        moves.enter_stages(session, self.outbox, to_move, cause="erp", at=now,
                           calendar=store.work_calendar(session))
        store.bulk_update(session, deals, updates, [k for k in updates[0] if k != "id"]
                          if updates else ())
        store.upsert_timeline(session, entries)

    @staticmethod
    def _document_entry(deal_id, doc: Document) -> dict:
        return store.timeline_row(deal_id, doc.document_date or utcnow(), "erp", str(doc.guid), {
            "document_guid": doc.guid, "kind": doc.kind,
            "title": KIND_TITLES.get(doc.kind, doc.kind), "number": doc.number,
            "amount": f"{doc.amount:.2f}", "state": doc.state, "revision": doc.revision})

    # -- documents waiting for their client --------------------------------------------------------
    def link_waiting_documents(self, session, client: dict) -> None:
        counterparty = client.get("erp_counterparty_guid")
        if not counterparty:
            return
        waiting = session.execute(sa.select(erp_documents).where(
            erp_documents.c.client_id.is_(None),
            erp_documents.c.counterparty_guid == counterparty)).mappings().all()
        if not waiting:
            return
        client_id = client.get("client_id") or client.get("id")
        session.execute(sa.update(erp_documents).where(
            erp_documents.c.guid.in_([r["guid"] for r in waiting])).values(client_id=client_id))
        documents = [Document(**{**_document_of(r).__dict__, "client_id": client_id})
                     for r in waiting]
        now = utcnow()
        anchors = {a for d in documents for a in d.anchors()}
        anchor_deals = self._anchor_deals(session, documents, anchors, now)
        self._recompute(session, sorted({anchor_deals[a] for a in anchors if a in anchor_deals}),
                        {}, now, documents)
        self._record_client_documents(session, documents, anchor_deals, now)

    # -- reading ----------------------------------------------------------------------------------
    @rpc
    def deal_documents(self, deal_id: str) -> list[dict]:
        """The ERP documents of a deal in their current state."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._visible_deal(session, identity, parse_uuid(deal_id, "deal_id"))
            anchors = [a for (a,) in session.execute(sa.select(deal_orders.c.order_guid).where(
                deal_orders.c.deal_id == row["id"]))]
            if not anchors:
                return []
            docs = session.execute(sa.select(erp_documents).where(
                erp_documents.c.anchors.overlap(sa.cast(anchors, erp_documents.c.anchors.type)))
                .order_by(erp_documents.c.document_date)).mappings().all()
            anchor_set = set(anchors)
            return [{"document_guid": str(d["guid"]), "kind": d["kind"], "number": d["number"],
                     "document_date": d["document_date"].isoformat() if d["document_date"]
                     else None, "state": d["state"], "revision": d["revision"],
                     "amount": f"{d['amount']:.2f}",
                     "amount_for_deal": f"{_document_of(d).paid_to(anchor_set):.2f}"
                     if d["kind"] == "payment" else f"{d['amount']:.2f}",
                     "order_guid": str(d["order_guid"]) if d["order_guid"] else None}
                    for d in docs]
