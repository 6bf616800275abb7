"""Sending through a real SMTP server (aiosmtpd, with AUTH) — recorded at once, never doubled
when the Sent copy is synced — and who may read which message."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.utils import format_datetime

import pytest

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.testing import publish_events, wait_for
from services.mail.domain.parsing import parse_message

from .conftest import eml

pytestmark = pytest.mark.integration


def test_send_records_once_and_the_sent_copy_is_not_doubled(start_crm, smtp_sink, monkeypatch):
    crm = start_crm()
    monkeypatch.setenv("MAIL_SECRET_SMTP", smtp_sink.password)
    crm.mail.update_mailbox(crm.mailbox["id"], {
        "smtp_port": smtp_sink.port, "secret_ref": "env:MAIL_SECRET_SMTP",
        "login": smtp_sink.login}, as_user="admin")
    # the IMAP login changed with it: give the IMAP user the same credentials
    crm.dovecot.add_user(smtp_sink.login, smtp_sink.password)
    deal_id = uuid.uuid4()
    publish_events(crm.container.config["AMQP_URI"], [("deals", "deal_created", {
        "deal_id": deal_id, "client_id": crm.client["id"], "owner_id": crm.org.id("m.ural.1"),
        "created_at": utcnow(), "title": "Кровля склада"})])
    wait_for(lambda: crm.sql.count("deal_replica"), message="the deal in mail's replica")

    sent = crm.mail.send_message({
        "to": ["Ivanov@StroyMetall.ru"], "cc": ["info@stroymetall.ru"],
        "subject": "Коммерческое предложение", "body": "Иван, добрый день!\nКП во вложении.",
        "deal_id": str(deal_id)})
    assert sent["direction"] == "outbound" and sent["origin"] == "crm"
    assert sent["client_id"] == crm.client["id"] and sent["deal_id"] == str(deal_id)
    assert sent["subject"] == f"[CRM-{str(deal_id)[:8]}] Коммерческое предложение"
    assert sent["message_id"].endswith("@roofcrm.ru>")

    (envelope, raw), = smtp_sink.received()
    assert envelope["login"] == smtp_sink.login           # the mailbox's credentials
    assert sorted(envelope["rcpt_tos"]) == ["info@stroymetall.ru", "ivanov@stroymetall.ru"]
    assert envelope["mail_from"] == "m.ural.1@roofcrm.ru"
    on_wire = parse_message(raw)
    assert on_wire.message_id == sent["message_id"] and "КП во вложении" in on_wire.text
    events = crm.registered_events()
    assert len(events) == 1 and events[0]["deal_id"] == str(deal_id)
    assert events[0]["direction"] == "outbound"

    # the server keeps a copy in Sent; the sync recognises it
    crm.dovecot.append(smtp_sink.login, "Sent", raw)
    crm.mailbox["login"] = smtp_sink.login
    result = crm.sync()
    assert result["status"] == "ok", result
    assert (result["registered"], result["duplicates"]) == (0, 1)
    assert crm.sql.count("messages") == 1 and len(crm.registered_events()) == 1
    assert crm.sql.scalar("SELECT count(*) FROM message_locations") == 1

    # a reply to a message threads with it
    reply = crm.mail.send_message({"to": ["ivanov@stroymetall.ru"], "subject": "Re: КП",
                                   "body": "Дополнение", "reply_to": sent["id"]})
    assert reply["thread_id"] == sent["thread_id"]
    assert reply["parent_ref"] == sent["message_id"]

    # the client answers from another mail program, without References: the deal tag links it
    answer = (f"From: ivanov@stroymetall.ru\r\nTo: m.ural.1@roofcrm.ru\r\n"
              f"Subject: Re: {sent['subject']}\r\nMessage-ID: <answer@stroymetall.ru>\r\n"
              f"Date: {format_datetime(utcnow() + timedelta(minutes=5))}\r\n\r\n"
              f"Согласны\r\n").encode()               # the newest message of the deal
    crm.dovecot.append(smtp_sink.login, "INBOX", answer)
    assert crm.sync()["registered"] == 1
    linked = crm.mail.list_messages({"deal_id": str(deal_id)})["items"]
    assert [m["message_id"] for m in linked][0] == "<answer@stroymetall.ru>"
    assert linked[0]["thread_id"] == sent["thread_id"]      # same client, same subject


def test_sending_refuses_bad_input_and_foreign_mailboxes(start_crm, smtp_sink):
    crm = start_crm()
    with pytest.raises(ValidationFailed) as err:
        crm.mail.send_message({"to": ["not-an-address"], "subject": "x", "body": "y"})
    assert "to.0" in err.value.fields
    with pytest.raises(ValidationFailed) as err:
        crm.mail.send_message({"to": [], "subject": None, "body": "y"})
    assert {"to", "subject"} <= set(err.value.fields)
    with pytest.raises(Forbidden):
        crm.mail.send_message({"mailbox_id": crm.mailbox["id"], "to": ["a@b.ru"],
                               "subject": "x", "body": "y"}, as_user="m.ural.2")
    assert smtp_sink.received() == [] and crm.sql.count("messages") == 0


def test_messages_are_visible_like_their_client_unmatched_ones_to_the_owner_only(start_crm):
    crm = start_crm()
    crm.append("INBOX", eml("01_inbound_utf8_qp.eml"), eml("06_unknown_rfc2047_name.eml"))
    assert crm.sync()["registered"] == 2
    ids = {m["message_id"]: m["id"] for m in crm.mail.list_messages({})["items"]}
    client_msg, unmatched = ids["<t1.root@stroymetall.ru>"], ids["<n1@newbuild.ru>"]

    def visible(user):
        return {m["id"] for m in crm.mail.list_messages({}, as_user=user)["items"]}

    assert visible("m.ural.1") == {client_msg, unmatched}      # owner of client and mailbox
    assert visible("m.ural.2") == set()                         # another manager
    assert visible("head.ural") == {client_msg}                 # the client's department
    assert visible("head.volga") == set()
    assert visible("director") == {client_msg}
    with pytest.raises(Forbidden):
        crm.mail.list_messages({}, as_user="admin")             # no personal data
    with pytest.raises(NotFound):
        crm.mail.get_message(unmatched, as_user="head.ural")
    with pytest.raises(NotFound):
        crm.mail.get_message(client_msg, as_user="m.ural.2")

    # the client changes hands: its mail follows
    crm.clients.reassign_client(crm.client["id"], crm.org.id("m.ural.2"), as_user="head.ural")
    wait_for(lambda: client_msg in visible("m.ural.2"), message="the new owner sees the mail")
    assert unmatched not in visible("m.ural.2")

    # the unknown sender becomes a client of m.ural.2: the earlier mail joins that client
    assert [x["address"] for x in crm.mail.address_suggestions()] == ["petr@newbuild.ru"]
    newbuild = crm.clients.create_client({"short_name": "ООО «НьюБилд»",
                                          "emails": ["petr@newbuild.ru"]},
                                         as_user="m.ural.2")["client"]
    wait_for(lambda: unmatched in visible("m.ural.2"), message="the late match")
    assert crm.mail.get_message(unmatched)["client_id"] == newbuild["id"]
    assert crm.mail.address_suggestions() == []
    assert visible("m.ural.1") == {client_msg, unmatched}      # still the mailbox's owner

    # filters and cursor pagination
    page1 = crm.mail.list_messages({}, limit=1)
    page2 = crm.mail.list_messages({}, limit=1, cursor=page1["next_cursor"])
    assert page1["items"][0]["id"] != page2["items"][0]["id"] and page2["next_cursor"] is None
    by_client = crm.mail.list_messages({"client_id": crm.client["id"]})["items"]
    assert [m["id"] for m in by_client] == [client_msg]
    with pytest.raises(ValidationFailed):
        crm.mail.list_messages({"colour": "red"})


def test_mailbox_management_rights(start_crm):
    crm = start_crm()
    with pytest.raises(Forbidden):       # a manager cannot connect a colleague's mailbox
        crm.mail.create_mailbox({
            "address": "m.ural.2@roofcrm.ru", "owner_id": crm.org.id("m.ural.2"),
            "imap_host": "127.0.0.1", "login": "x", "secret_ref": "env:X"})
    own = crm.mail.create_mailbox({
        "address": "m.ural.2@roofcrm.ru", "owner_id": crm.org.id("m.ural.2"),
        "imap_host": "127.0.0.1", "login": "x", "secret_ref": "env:X"}, as_user="m.ural.2")
    assert own["department_id"] == crm.org.people["m.ural.2"]["department_id"]
    assert own["status"] == "pending" and "password" not in own
    with pytest.raises(ValidationFailed) as err:
        crm.mail.create_mailbox({"address": "x@roofcrm.ru", "owner_id": str(uuid.uuid4()),
                                 "imap_host": "h", "login": "x", "secret_ref": "env:X"},
                                as_user="admin")
    assert "owner_id" in err.value.fields
    assert [m["address"] for m in crm.mail.list_mailboxes(as_user="m.ural.2")] == [
        "m.ural.2@roofcrm.ru"]
    assert len(crm.mail.list_mailboxes(as_user="admin")) == 2
    with pytest.raises(ValidationFailed) as err:      # one address, one mailbox
        crm.mail.update_mailbox(own["id"], {"address": "M.Ural.1@roofcrm.ru"},
                                as_user="m.ural.2")
    assert set(err.value.fields) == {"address"}
    crm.mail.delete_mailbox(own["id"], as_user="m.ural.2")
    with pytest.raises(NotFound):
        crm.mail.get_mailbox(own["id"], as_user="m.ural.2")
