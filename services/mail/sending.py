"""Sending mail from the CRM over SMTP with the mailbox's credentials (smtplib; its sockets are
cooperative under eventlet).

The message gets our own Message-ID (``make_msgid`` on the mailbox's domain) and is recorded at
once as outbound by the same registration as synced mail, under that key: when the server's copy
later appears in the Sent folder, the sync recognises the key and only adds a locator, so it is
never doubled. A deal's messages carry ``[CRM-xxxxxxxx]`` in the subject, so replies link back.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from .domain.access import holds_mailbox, require_reader, sees_client
from .domain.mailboxes import resolve_secret
from .domain.matching import deal_tag
from .domain.parsing import domain_of, make_address, normalise_address, parse_message
from .models import client_replica, deal_replica, mailboxes, messages
from .reading import as_uuid, visible
from .registration import Locator

MAX_BODY = 1_000_000
MAX_RECIPIENTS = 100


def _addresses(values, name: str, errors: dict) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or len(values) > MAX_RECIPIENTS:
        errors[name] = [f"список адресов, не больше {MAX_RECIPIENTS}"]
        return []
    out = []
    for index, value in enumerate(values):
        address = normalise_address(value if isinstance(value, str) else None)
        if not address:
            errors[f"{name}.{index}"] = ["некорректный адрес электронной почты"]
        elif address not in out:
            out.append(address)
    return out


def smtp_send(mailbox: dict, password: str, message: EmailMessage, timeout: float = 30) -> None:
    host, port, security = mailbox["smtp_host"], mailbox["smtp_port"], mailbox["smtp_security"]
    context = ssl.create_default_context()
    if security == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        server.ehlo()
        if security == "starttls":
            server.starttls(context=context)
            server.ehlo()
        if server.has_extn("auth"):
            server.login(mailbox["login"], password)
        server.send_message(message)


class SendingEntrypoints:
    @rpc
    @idempotent
    def send_message(self, data: dict) -> dict:
        """Send an e-mail from the caller's mailbox (``mailbox_id``, default: their personal
        one): ``to``, ``cc``, ``subject``, ``body``, optional ``client_id``, ``deal_id``,
        ``reply_to`` (a message id in the CRM). Recorded at once as outbound; returns it."""
        identity = require_reader(self.caller.require())
        errors: dict = {}
        to = _addresses(data.get("to"), "to", errors)
        cc = _addresses(data.get("cc"), "cc", errors)
        if not to and "to" not in errors and not any(k.startswith("to.") for k in errors):
            errors["to"] = ["нужен хотя бы один получатель"]
        subject = data.get("subject")
        if not isinstance(subject, str) or len(subject) > 900:
            errors["subject"] = ["строка не длиннее 900 символов"]
        body = data.get("body")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            errors["body"] = [f"текст не длиннее {MAX_BODY} символов"]
        if errors:
            raise ValidationFailed("Письмо не прошло проверку", fields=errors)
        now = utcnow()
        with self.db.session() as session:
            mailbox = self._sending_mailbox(session, identity, data.get("mailbox_id"))
            client_id = as_uuid(data["client_id"], "client_id") if data.get("client_id") \
                else None
            deal = None
            if data.get("deal_id"):
                deal = session.execute(sa.select(deal_replica).where(
                    deal_replica.c.deal_id == as_uuid(data["deal_id"], "deal_id"))) \
                    .mappings().first()
                if deal is None:
                    raise ValidationFailed("Сделка не найдена", fields={
                        "deal_id": ["нет такой сделки"]})
                client_id = client_id or deal["client_id"]
            if client_id is not None:
                client = session.execute(sa.select(client_replica).where(
                    client_replica.c.client_id == client_id)).mappings().first()
                if client is None:
                    raise ValidationFailed("Клиент не найден", fields={
                        "client_id": ["нет такого клиента"]})
                if not sees_client(identity, client["owner_id"], client["department_id"]):
                    raise Forbidden("Нет доступа к клиенту", code="client_forbidden")
            parent = None
            if data.get("reply_to"):
                parent = session.execute(sa.select(messages).where(
                    messages.c.id == as_uuid(data["reply_to"], "reply_to"), visible(identity))
                ).mappings().first()
                if parent is None:
                    raise ValidationFailed("Письмо для ответа не найдено", fields={
                        "reply_to": ["нет такого письма"]})
                client_id = client_id or parent["client_id"]
        if not mailbox["smtp_host"]:
            raise ValidationFailed("У ящика не настроен SMTP", fields={
                "mailbox_id": ["у ящика нет smtp_host"]})
        if deal is not None and deal_tag(deal["deal_id"]).lower() not in subject.lower():
            subject = f"{deal_tag(deal['deal_id'])} {subject}"
        message = EmailMessage()
        message["From"] = make_address(mailbox["display_name"] or identity.full_name,
                                       mailbox["address"])
        message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=domain_of(mailbox["address"]))
        if parent is not None and parent["message_id"]:
            message["In-Reply-To"] = parent["message_id"]
            message["References"] = " ".join(list(parent["refs"]) + [parent["message_id"]])
        message.set_content(body)
        try:
            password = resolve_secret(mailbox["secret_ref"])
        except LookupError as exc:
            raise Conflict(f"Нет пароля ящика: {exc}", code="mailbox_secret_missing") from None
        try:
            smtp_send(mailbox, password, message,
                      timeout=float(self.config.get("MAIL_SMTP_TIMEOUT_SECONDS") or 30))
        except (smtplib.SMTPException, OSError) as exc:
            raise Conflict(f"Сервер SMTP не принял письмо: {type(exc).__name__}: {exc}",
                           code="smtp_failed") from None
        parsed = parse_message(message.as_bytes())
        with self.db.session() as session:
            result = self.registrar().register(
                session, mailbox, [(Locator(None, None, None, now), parsed)], now,
                sent_by=identity.user_id,
                forced={"client_id": client_id, "deal_id": deal["deal_id"] if deal else None})
            pk = result.registered[0] if result.registered else session.execute(
                sa.select(messages.c.id).where(messages.c.key == parsed.key)).scalar()
        return self.get_message(str(pk))

    def _sending_mailbox(self, session, identity, mailbox_id) -> dict:
        query = sa.select(mailboxes).where(mailboxes.c.deleted_at.is_(None))
        if mailbox_id:
            query = query.where(mailboxes.c.id == as_uuid(mailbox_id, "mailbox_id"))
        else:
            query = query.where(mailboxes.c.kind == "personal",
                                mailboxes.c.owner_id == identity.user_id)
        row = session.execute(query.limit(1)).mappings().first()
        if row is None:
            if mailbox_id:
                raise NotFound("Ящик не найден", code="mailbox_not_found")
            raise ValidationFailed("У вас нет почтового ящика в CRM", fields={
                "mailbox_id": ["укажите ящик или попросите администратора подключить ваш"]})
        if not holds_mailbox(identity, row):
            raise Forbidden("Отправлять можно только из своего ящика",
                            code="mailbox_forbidden")
        return dict(row)
