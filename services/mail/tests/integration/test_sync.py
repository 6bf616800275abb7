"""IMAP sync against a private Dovecot: registered once, threaded across encodings with a child
arriving before its parent, matched to the client and contact, announced on the broker; a second
sync adds nothing; a UIDVALIDITY change resyncs without duplicates."""

from __future__ import annotations

import base64
import hashlib

import pytest

from crm_platform.testing import wait_for

from .conftest import eml

pytestmark = pytest.mark.integration

# The child (03, 04) before its parent (01) in INBOX; the manager's reply (02) in Sent.
INBOX = ("04_inbound_rfc6532_html.eml", "03_inbound_koi8r_attachment.eml",
         "01_inbound_utf8_qp.eml", "05_no_message_id.eml", "06_unknown_rfc2047_name.eml")
THREAD_IDS = {"<t1.root@stroymetall.ru>", "<t2@roofcrm.ru>", "<t3@stroymetall.ru>",
              "<t4@stroymetall.ru>"}


def load_mailbox(crm):
    crm.append("INBOX", *(eml(name) for name in INBOX))
    crm.append("Sent", eml("02_outbound_cp1251_base64.eml"))


def test_sync_registers_once_in_one_thread_on_the_client_and_contact(start_crm, event_tap):
    crm = start_crm()
    load_mailbox(crm)

    first = crm.sync()
    assert first["status"] == "ok", first
    assert (first["registered"], first["duplicates"], first["fetched"]) == (6, 0, 6)
    assert first["lookups"] == 1          # one batched lookup for every unknown address

    items = crm.mail.list_messages({}, limit=50)["items"]
    assert len(items) == 6
    by_id = {m["message_id"]: m for m in items}
    thread = [m for m in items if m["message_id"] in THREAD_IDS or m["message_id"] is None]
    assert len(thread) == 5
    assert len({m["thread_id"] for m in thread}) == 1, "a late parent must not split a thread"
    assert {m["client_id"] for m in thread} == {crm.client["id"]}
    # Иванов's messages carry the contact, the company address the client only
    for mid in ("<t1.root@stroymetall.ru>", "<t3@stroymetall.ru>"):
        assert by_id[mid]["contact_id"] == crm.contact_id
    assert by_id["<t4@stroymetall.ru>"]["contact_id"] is None
    assert by_id["<t2@roofcrm.ru>"]["direction"] == "outbound"
    assert by_id["<t2@roofcrm.ru>"]["contact_id"] == crm.contact_id
    assert by_id["<t1.root@stroymetall.ru>"]["direction"] == "inbound"
    assert by_id["<n1@newbuild.ru>"]["client_id"] is None

    # the thread view, oldest first, parents by Message-ID
    view = crm.mail.get_thread(thread[0]["thread_id"])
    assert [m["message_id"] for m in view["messages"]][:4] == [
        "<t1.root@stroymetall.ru>", "<t2@roofcrm.ru>", "<t3@stroymetall.ru>",
        "<t4@stroymetall.ru>"]
    assert view["messages"][2]["parent_ref"] == "<t2@roofcrm.ru>"

    # decoded text and the attachment (RFC 2231 name), content from the store
    detail = crm.mail.get_message(by_id["<t3@stroymetall.ru>"]["id"])
    assert detail["subject"].startswith("RE: Отв: Запрос цены")
    assert "ждём счёт" in detail["text"]
    (pdf,) = detail["attachments"]
    assert pdf["filename"] == "Реквизиты ООО Стройметалл.pdf"
    assert pdf["content_type"] == "application/pdf"
    content = crm.mail.get_attachment(detail["id"], pdf["id"])
    raw = base64.b64decode(content["content_b64"])
    assert hashlib.sha256(raw).hexdigest() == pdf["sha256"] and len(raw) == pdf["size"]
    html = crm.mail.get_message(by_id["<t4@stroymetall.ru>"]["id"])
    assert "Подтверждаем заказ «С21»" in html["text"] and "<p>" not in html["text"]

    # unknown sender: a "create contact" suggestion, nothing created
    suggestions = crm.mail.address_suggestions()
    assert [s["address"] for s in suggestions] == ["petr@newbuild.ru"]
    assert suggestions[0]["name"] == "Петр Сидоров"

    # every registered message reached the broker once
    wait_for(lambda: len(event_tap.drain()) >= 6, message="email_registered on the broker")
    payloads = [e["payload"] for e in event_tap.seen]
    assert len(payloads) == 6
    assert {p["message_id"] for p in payloads} >= THREAD_IDS | {"<n1@newbuild.ru>"}
    assert all(p["user_id"] == crm.org.id("m.ural.1") for p in payloads)

    second = crm.sync()
    assert (second["registered"], second["fetched"]) == (0, 0)
    assert crm.sql.count("messages") == 6 and len(crm.registered_events()) == 6
    status = crm.mail.get_mailbox(crm.mailbox["id"])
    assert status["status"] == "ok" and status["failures"] == 0
    assert {f["folder"]: f["last_uid"] for f in status["folders"]} == {"INBOX": 5, "Sent": 1}


def test_uidvalidity_change_resyncs_without_duplicates(start_crm):
    crm = start_crm()
    load_mailbox(crm)
    assert crm.sync()["registered"] == 6
    old = crm.mail.get_mailbox(crm.mailbox["id"])
    old_validity = {f["folder"]: f["uidvalidity"] for f in old["folders"]}["INBOX"]

    new_validity = crm.dovecot.new_uidvalidity(crm.imap_login, "INBOX")
    assert new_validity != old_validity
    late = (b"From: ivanov@stroymetall.ru\r\nTo: m.ural.1@roofcrm.ru\r\n"
            b"Subject: =?utf-8?B?0KHRh9GR0YI=?=\r\nMessage-ID: <late@stroymetall.ru>\r\n"
            b"Date: Thu, 26 Nov 2026 10:00:00 +0300\r\n\r\nnew one\r\n")
    crm.append("INBOX", late)

    result = crm.sync()
    assert result["resynced"] == ["INBOX"]
    assert (result["registered"], result["duplicates"]) == (1, 5)
    assert crm.sql.count("messages") == 7 and len(crm.registered_events()) == 7
    status = crm.mail.get_mailbox(crm.mailbox["id"])
    inbox = {f["folder"]: f for f in status["folders"]}["INBOX"]
    assert inbox["uidvalidity"] == new_validity and inbox["resyncs"] == 1
    # the known messages now have locators under both UIDVALIDITY values
    assert crm.sql.scalar("SELECT count(DISTINCT uidvalidity) FROM message_locations "
                          "WHERE folder = 'INBOX'") == 2


def test_failures_back_off_and_show_in_status_and_metrics(start_crm, monkeypatch):
    crm = start_crm(MAIL_RETRY_BASE_SECONDS=30)
    from crm_platform.testing import free_port
    crm.mail.update_mailbox(crm.mailbox["id"], {"imap_port": free_port()}, as_user="admin")

    first = crm.sync()
    assert first["status"] == "error" and "IMAP" in first["error"]
    status = crm.mail.get_mailbox(crm.mailbox["id"])
    assert status["status"] == "error" and status["failures"] == 1
    assert status["last_error"].startswith("Сервер IMAP недоступен")
    second = crm.sync()
    assert second["failures"] == 2
    status = crm.mail.get_mailbox(crm.mailbox["id"])
    from datetime import datetime
    delay = datetime.fromisoformat(status["next_attempt_at"]) - \
        datetime.fromisoformat(status["last_error_at"])
    assert 59 <= delay.total_seconds() <= 61          # 30 s, then doubled

    monkeypatch.delenv(crm.mailbox["secret_ref"].split(":", 1)[1])
    crm.mail.update_mailbox(crm.mailbox["id"], {"imap_port": crm.dovecot.port},
                            as_user="admin")
    third = crm.sync()
    assert third["status"] == "error" and third["error"].startswith("Нет пароля ящика")
    monkeypatch.setenv(crm.mailbox["secret_ref"].split(":", 1)[1], "wrong-password")
    fourth = crm.sync()
    assert fourth["error"].startswith("Сервер IMAP не принял логин или пароль")
    assert fourth["failures"] == 4

    import requests
    address = crm.container.config["WEB_SERVER_ADDRESS"]
    metrics = requests.get(f"http://{address}/metrics", timeout=5).text
    assert 'mail_sync_failures_total{error="ConnectionRefusedError"}' in metrics
    assert 'mail_sync_runs_total{result="error"}' in metrics


def test_a_leased_mailbox_is_not_synced_twice_and_the_timer_syncs_due_ones(start_crm):
    crm = start_crm()
    crm.append("INBOX", eml("01_inbound_utf8_qp.eml"))
    crm.sql.execute("UPDATE mailboxes SET leased_until = now() + interval '5 minutes', "
                    "lease_owner = 'another-replica'")
    from crm_platform.errors import Conflict
    with pytest.raises(Conflict):
        crm.sync()
    assert crm.sql.count("messages") == 0
    # the other replica died: its lease runs out, the timer of this one takes the mailbox
    crm.sql.execute("UPDATE mailboxes SET leased_until = now() - interval '1 second'")
    crm.container.config["MAIL_SYNC_TICK_SECONDS"] = 1
    wait_for(lambda: crm.sql.scalar("SELECT last_synced_at FROM mailboxes"),
             message="the timer's sync")
    row = crm.sql.rows("SELECT * FROM mailboxes")[0]
    assert row["leased_until"] is None and row["last_sync"]["registered"] == 1
    assert crm.sql.count("messages") == 1
