"""Personal data requests (152-FZ, ``crm_platform.privacy``) for mail: the messages from or to the
person's addresses, their address-book entries and "create contact" suggestions, and campaign
mail to them. Erasure replaces the person's address in the messages with the marker, the
subject, text and snippet of those messages and the sender's name with the marker, drops the
address-book entry and suggestions, and anonymises campaign sends (address, subject, body). The
message rows (time, direction, mailbox, thread) stay so that threads and counts hold together.
Attachments of those messages keep their row (position, type, size) with the marker as name and
no hash, and their contents go from ``MAIL_ATTACHMENTS_DIR``: contents are stored once per hash,
so a file is deleted only when no retained message's attachment still names that hash (the same
price list sent to someone else stays). Files are deleted after the erasure commits, each after a
fresh check, so a rolled-back erasure never loses a file; a message registered with the same
content in that instant would find its file gone (its download answers 404), the price of not
locking registration for an erasure."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from crm_platform.privacy import MARKER, ROLES, normalise_person
from crm_platform.rpc import rpc

from .models import (
    address_book,
    attachments,
    campaign_sends,
    messages,
    unknown_addresses,
)

log = logging.getLogger(__name__)


def _iso(value):
    return value.isoformat() if value is not None else None


def _touching(emails: list[str]):
    m = messages.c
    return sa.or_(m.from_address.in_(emails), m.to_addresses.overlap(emails),
                  m.cc_addresses.overlap(emails))


class PrivacyEntrypoints:
    def _remove_unreferenced(self, hashes: list[str]) -> int:
        """Delete the stored contents no retained attachment names any more (after commit)."""
        if not hashes:
            return 0
        with self.db.session() as session:
            kept = set(session.execute(sa.select(attachments.c.sha256).where(
                attachments.c.sha256.in_(hashes)).distinct()).scalars())
        store, removed = self.attachment_store(), 0
        for sha256 in hashes:
            if sha256 in kept:
                continue
            try:
                removed += store.remove(sha256)
            except ValueError:
                log.warning("attachment hash %r is not a sha256: nothing removed", sha256)
        return removed

    @rpc
    def personal_data_export(self, person: dict) -> dict:
        """Messages from/to the person's addresses and campaign mail sent to them."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        emails = keys["emails"]
        if not emails:
            return {"service": "mail", "sections": {"messages": [], "campaign_mail": []}}
        with self.db.session() as session:
            found = session.execute(sa.select(messages).where(_touching(emails))
                                    .order_by(messages.c.sent_at)).mappings().all()
            sends = session.execute(sa.select(campaign_sends).where(
                campaign_sends.c.email.in_(emails))).mappings().all()
        return {"service": "mail", "sections": {
            "messages": [{"id": str(r["id"]), "direction": r["direction"],
                          "sent_at": _iso(r["sent_at"]), "from": r["from_address"],
                          "from_name": r["from_name"], "to": list(r["to_addresses"]),
                          "cc": list(r["cc_addresses"]), "subject": r["subject"],
                          "text": r["text"]} for r in found],
            "campaign_mail": [{"campaign_id": str(r["campaign_id"]), "email": r["email"],
                               "subject": r["subject"], "status": r["status"],
                               "sent_at": _iso(r["sent_at"])} for r in sends]}}

    @rpc
    def personal_data_erase(self, person: dict, request_id: str) -> dict:
        """Anonymise what mail holds about the person (see the module doc)."""
        self.caller.require(*ROLES)
        keys = normalise_person(person)
        emails = keys["emails"]
        counts = {"messages": 0, "attachments": 0, "attachment_files": 0, "address_book": 0,
                  "suggestions": 0, "campaign_mail": 0}
        hashes: set[str] = set()
        if emails:
            m = messages.c
            with self.db.session() as session:
                ids = session.execute(sa.select(m.id).where(_touching(emails))).scalars().all()
                for email in emails:
                    session.execute(sa.update(messages).where(m.id.in_(ids)).values(
                        to_addresses=sa.func.array_replace(m.to_addresses, email, MARKER),
                        cc_addresses=sa.func.array_replace(m.cc_addresses, email, MARKER)))
                if ids:
                    session.execute(sa.update(messages).where(m.id.in_(ids)).values(
                        subject=MARKER, text=MARKER, snippet=MARKER,
                        from_address=sa.case((m.from_address.in_(emails), MARKER),
                                             else_=m.from_address),
                        from_name=sa.case((m.from_address.in_(emails), MARKER),
                                          else_=m.from_name),
                        matched_address=sa.case((m.matched_address.in_(emails), MARKER),
                                                else_=m.matched_address)))
                    hashes = set(session.execute(sa.select(attachments.c.sha256).where(
                        attachments.c.message_pk.in_(ids), attachments.c.sha256 != ""))
                        .scalars())
                    counts["attachments"] = session.execute(sa.update(attachments).where(
                        attachments.c.message_pk.in_(ids)).values(filename=MARKER, sha256="")
                    ).rowcount
                counts["messages"] = len(ids)
                counts["address_book"] = session.execute(sa.delete(address_book).where(
                    address_book.c.address.in_(emails))).rowcount
                counts["suggestions"] = session.execute(sa.delete(unknown_addresses).where(
                    unknown_addresses.c.address.in_(emails))).rowcount
                counts["campaign_mail"] = session.execute(
                    sa.update(campaign_sends).where(campaign_sends.c.email.in_(emails))
                    .values(email=MARKER, subject=MARKER, body=MARKER,
                            unsubscribe_url=MARKER)).rowcount
            counts["attachment_files"] = self._remove_unreferenced(sorted(hashes))
        return {"service": "mail", "request_id": request_id, "erased": counts,
                "kept": {"messages": "время, направление, ящик и цепочка писем (без адреса и "
                                     "текста)"}}
