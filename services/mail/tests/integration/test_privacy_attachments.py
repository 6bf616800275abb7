"""Personal data erasure in the running mail service removes the stored contents of the erased
messages' attachments (content-addressed files in ``MAIL_ATTACHMENTS_DIR``), but only when no
retained message still has an attachment with the same content. Needs no IMAP server: the
messages are written into mail's database as registration leaves them."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import NotFound
from crm_platform.privacy import MARKER
from crm_platform.testing import ReplicatedOrg, ServiceCaller
from services.mail.attachment_store import AttachmentStore
from services.mail.models import attachments, messages
from services.mail.service import MailService

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(service_db, service_config, container_factory, tmp_path):
    mail_db = service_db("mail")
    org = ReplicatedOrg(mail_db)
    folder = tmp_path / "attachments"
    container = container_factory(MailService, service_config(
        db_url=mail_db, MAIL_OWN_DOMAINS="roofcrm.ru", MAIL_SYNC_TICK_SECONDS=0,
        MAIL_ATTACHMENTS_DIR=str(folder)))
    container.start()
    yield ServiceCaller(container, org, default_user="director"), org, AttachmentStore(folder)
    org.engine.dispose()


def add_message(org, store, sender: str, files: list[tuple[str, bytes]]) -> str:
    """A message from ``sender`` with attachments, stored as the registrar stores them."""
    message_id, now = uuid.uuid4(), utcnow()
    with org.engine.begin() as conn:
        conn.execute(sa.insert(messages).values(
            id=message_id, key=f"<{message_id}@example>", subject=f"Письмо от {sender}",
            from_address=sender, to_addresses=["m.ural.1@roofcrm.ru"], direction="inbound",
            sent_at=now, text="Прайс во вложении", attachment_count=len(files),
            client_id=uuid.uuid4(), thread_id=uuid.uuid4(), mailbox_id=uuid.uuid4(),
            origin="imap", created_at=now))
        for position, (name, content) in enumerate(files):
            sha256 = hashlib.sha256(content).hexdigest()
            store.put(sha256, content)
            conn.execute(sa.insert(attachments).values(
                message_pk=message_id, position=position, filename=name,
                content_type="application/pdf", size=len(content), sha256=sha256))
    return str(message_id)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_erasure_removes_attachment_contents_no_retained_message_shares(mail):
    svc, org, store = mail
    passport, price = b"%PDF passport scan of the person", b"%PDF the company's price list"
    own = add_message(org, store, "ivan@buyer.ru", [("паспорт.pdf", passport),
                                                   ("прайс.pdf", price)])
    other = add_message(org, store, "olga@other.ru", [("прайс.pdf", price)])
    [own_passport, own_price] = svc.get_message(own)["attachments"]
    assert svc.get_attachment(own, own_passport["id"])["filename"] == "паспорт.pdf"

    result = svc.personal_data_erase({"emails": ["Ivan@Buyer.ru"]}, "req-1", as_user="admin")
    assert result["erased"]["messages"] == 1
    assert (result["erased"]["attachments"], result["erased"]["attachment_files"]) == (2, 1)
    assert not store.has(sha(passport))                     # only this person's message had it
    assert store.has(sha(price))                            # a retained message still has it
    assert [(a["filename"], a["sha256"]) for a in svc.get_message(own)["attachments"]] == [
        (MARKER, ""), (MARKER, "")]
    for item in (own_passport, own_price):
        with pytest.raises(NotFound):
            svc.get_attachment(own, item["id"])
    [kept] = svc.get_message(other)["attachments"]
    assert svc.get_attachment(other, kept["id"])["size"] == len(price)

    # The other person erased too: now nobody retains the price list.
    again = svc.personal_data_erase({"emails": ["olga@other.ru"]}, "req-2", as_user="admin")
    assert again["erased"]["attachment_files"] == 1
    assert not store.has(sha(price))
    # A repeated request finds nothing more and fails on nothing.
    assert svc.personal_data_erase({"emails": ["ivan@buyer.ru"]}, "req-1",
                                   as_user="admin")["erased"]["attachment_files"] == 0
    assert org.scalar("SELECT count(*) FROM attachments WHERE sha256 <> ''") == 0
