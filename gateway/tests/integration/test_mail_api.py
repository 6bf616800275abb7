"""/api/v1/mail through the gateway with the real directory and mail services and a private
Dovecot: a manager connects their own mailbox, syncs it, reads the message, downloads its
attachment, sees the "create contact" suggestion; bad input is a 4xx problem naming the field,
the admin reads no mail."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest

from crm_platform.testing import wait_for
from services.mail.service import MailService
from tools.dovecot import Dovecot

from .test_api import error_fields, problem

pytestmark = pytest.mark.integration

EML = Path(__file__).resolve().parents[3] / "services" / "mail" / "tests" / "fixtures" / \
    "06_unknown_rfc2047_name.eml"


@pytest.fixture
def imap(monkeypatch):
    server = Dovecot.start(users={"ivanov": "imap-password"})
    monkeypatch.setenv("MAIL_SECRET_IVANOV", "imap-password")
    yield server
    server.stop()


@pytest.fixture
def mail(container_factory, service_config, service_db, tmp_path):
    config = service_config(db_url=service_db("mail"), MAIL_CLIENT_LOOKUP="replica",
                            MAIL_SYNC_TICK_SECONDS=0, MAIL_OWN_DOMAINS="roofcrm.ru",
                            MAIL_ATTACHMENTS_DIR=str(tmp_path))
    container = container_factory(MailService, config)
    container.start()
    return container


def test_mailbox_sync_read_download_and_refusals(api, mail, imap, manager, manager_token,
                                                 admin_token):
    body = {"address": "ivanov@roofcrm.ru", "owner_id": manager["id"],
            "imap_host": "127.0.0.1", "imap_port": imap.port, "imap_tls": False,
            "login": "ivanov", "secret_ref": "env:MAIL_SECRET_IVANOV"}
    bad = problem(api.post("/api/v1/mail/mailboxes", manager_token,
                           json={**body, "secret_ref": "hunter2", "password": "x"}), 422)
    assert {"secret_ref", "password"} <= error_fields(bad)

    # the directory's user_changed reaches mail's replica of the organisation
    def create():
        response = api.post("/api/v1/mail/mailboxes", manager_token, json=body)
        return response if response.status_code == 201 else None
    mailbox = wait_for(create, message="the manager in mail's replica").json()
    assert mailbox["status"] == "pending" and "password" not in mailbox

    imap.append("ivanov", "INBOX", EML.read_bytes())
    synced = api.post(f"/api/v1/mail/mailboxes/{mailbox['id']}/sync", manager_token)
    assert synced.status_code == 200, synced.text
    assert synced.json()["registered"] == 1
    status = api.get(f"/api/v1/mail/mailboxes/{mailbox['id']}", manager_token).json()
    assert status["status"] == "ok" and status["folders"][0]["last_uid"] == 1

    page = api.get("/api/v1/mail/messages?limit=10", manager_token).json()
    (item,) = page["items"]
    assert item["subject"] == "Новый объект: ангар 2000 м²" and page["next_cursor"] is None
    detail = api.get(f"/api/v1/mail/messages/{item['id']}", manager_token).json()
    (attachment,) = detail["attachments"]
    download = api.get(f"/api/v1/mail/messages/{item['id']}/attachments/{attachment['id']}",
                       manager_token)
    assert download.status_code == 200 and len(download.content) == attachment["size"]
    disposition = download.headers["Content-Disposition"]
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Смета ангар.xlsx"
    thread = api.get(f"/api/v1/mail/threads/{item['thread_id']}", manager_token).json()
    assert [m["id"] for m in thread["messages"]] == [item["id"]]
    suggestions = api.get("/api/v1/mail/suggestions", manager_token).json()
    assert [s["address"] for s in suggestions] == ["petr@newbuild.ru"]

    problem(api.get("/api/v1/mail/messages", admin_token), 403)
    problem(api.get(f"/api/v1/mail/messages/{uuid.uuid4()}", manager_token), 404,
            "message_not_found")
    problem(api.get("/api/v1/mail/messages?cursor=%%%", manager_token), 422)
    problem(api.get("/api/v1/mail/messages?direction=sideways", manager_token), 422)
    sent = problem(api.post("/api/v1/mail/messages", manager_token,
                            json={"to": ["not-an-address"], "subject": "x", "body": "y"}), 422)
    assert "to.0" in error_fields(sent)
    # no SMTP server configured for this mailbox: refused before anything is sent or stored
    no_smtp = problem(api.post("/api/v1/mail/messages", manager_token, json={
        "to": ["petr@newbuild.ru"], "subject": "Смета", "body": "Получили"}), 422)
    assert "mailbox_id" in error_fields(no_smtp)
