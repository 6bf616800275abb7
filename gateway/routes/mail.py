"""Mail routes of the gateway (/api/v1/mail): a mixin of ``GatewayService``.

Mailboxes (the admin, or a user for their own personal mailbox), their sync status and a sync on
demand; messages with filters and cursor pages, one message with its attachments' metadata, an
attachment's content, a thread, sending, and "create contact" suggestions. The mail service
decides who sees what: a message is visible like its client, an unmatched one to its mailbox's
holders only (404 otherwise); the admin sees no correspondence (403).
"""

from __future__ import annotations

import base64
import uuid
from urllib.parse import quote

from werkzeug.wrappers import Response

from ..api import ApiRpcProxy, api
from ..schemas_mail import (
    DeletedSchema,
    MailboxCreateSchema,
    MailboxSchema,
    MailboxUpdateSchema,
    MessageListQuery,
    MessagePageSchema,
    MessageSchema,
    SendSchema,
    SuggestionQuery,
    SuggestionSchema,
    SyncResultSchema,
    ThreadSchema,
)

TAGS = ["mail"]


def _plain(values: dict) -> dict:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in values.items()}


class MailRoutes:
    mail_rpc = ApiRpcProxy("mail")

    # -- mailboxes --------------------------------------------------------------------------------
    @api("GET", "/api/v1/mail/mailboxes", response=MailboxSchema, many=True,
         summary="Почтовые ящики и состояние их синхронизации", tags=TAGS)
    def list_mailboxes(self, request):
        """All mailboxes for the admin; for others those they hold."""
        return self.mail_rpc.list_mailboxes()

    @api("POST", "/api/v1/mail/mailboxes", body=MailboxCreateSchema, response=MailboxSchema,
         status=201, idempotent=True, summary="Подключить почтовый ящик (IMAP/SMTP)", tags=TAGS)
    def create_mailbox(self, request, body):
        """The admin connects any mailbox; a user their own personal one. The password is not
        sent: ``secret_ref`` names the environment variable that holds it."""
        return 201, self.mail_rpc.create_mailbox(_plain(body))

    @api("GET", "/api/v1/mail/mailboxes/<uuid:mailbox_id>", response=MailboxSchema,
         summary="Ящик: настройки, состояние, ошибка, следующая попытка", tags=TAGS)
    def get_mailbox(self, request, mailbox_id):
        """``status`` pending/ok/syncing/error, ``last_error``, ``failures``,
        ``next_attempt_at`` and each folder's UIDVALIDITY and last UID."""
        return self.mail_rpc.get_mailbox(str(mailbox_id))

    @api("PATCH", "/api/v1/mail/mailboxes/<uuid:mailbox_id>", body=MailboxUpdateSchema,
         response=MailboxSchema, summary="Изменить настройки ящика", tags=TAGS)
    def update_mailbox(self, request, mailbox_id, body):
        return self.mail_rpc.update_mailbox(str(mailbox_id), _plain(body))

    @api("DELETE", "/api/v1/mail/mailboxes/<uuid:mailbox_id>", response=DeletedSchema,
         summary="Отключить ящик (письма остаются у клиентов)", tags=TAGS)
    def delete_mailbox(self, request, mailbox_id):
        return self.mail_rpc.delete_mailbox(str(mailbox_id))

    @api("POST", "/api/v1/mail/mailboxes/<uuid:mailbox_id>/sync", response=SyncResultSchema,
         summary="Синхронизировать ящик сейчас", tags=TAGS)
    def sync_mailbox(self, request, mailbox_id):
        """The counts of this sync, or its error (also kept in the mailbox status); 409 while
        another sync of the mailbox runs."""
        return self.mail_rpc.sync_now(str(mailbox_id))

    # -- messages ---------------------------------------------------------------------------------
    @api("GET", "/api/v1/mail/messages", query=MessageListQuery, response=MessagePageSchema,
         summary="Письма (по клиенту, сделке, переписке, ящику), постранично", tags=TAGS)
    def list_messages(self, request, query):
        """Newest first; pass ``next_cursor`` for the next page."""
        filters = {k: str(v) for k, v in query.items() if k not in ("limit", "cursor")}
        return self.mail_rpc.list_messages(filters, limit=query["limit"],
                                           cursor=query.get("cursor"))

    @api("POST", "/api/v1/mail/messages", body=SendSchema, response=MessageSchema, status=201,
         idempotent=True, summary="Отправить письмо из CRM (SMTP ящика менеджера)", tags=TAGS)
    def send_message(self, request, body):
        """Sent over SMTP with the mailbox's credentials and recorded at once as outbound (not
        doubled when its copy appears in Sent). 409 ``smtp_failed`` when the server refuses."""
        return 201, self.mail_rpc.send_message(_plain(body))

    @api("GET", "/api/v1/mail/messages/<uuid:message_id>", response=MessageSchema,
         summary="Письмо с текстом и списком вложений", tags=TAGS)
    def get_message(self, request, message_id):
        return self.mail_rpc.get_message(str(message_id))

    @api("GET", "/api/v1/mail/messages/<uuid:message_id>/attachments/<int:attachment_id>",
         summary="Скачать вложение", tags=TAGS)
    def get_attachment(self, request, message_id, attachment_id):
        """The file itself, with its name (RFC 6266 ``filename*``) and type."""
        item = self.mail_rpc.get_attachment(str(message_id), attachment_id)
        response = Response(base64.b64decode(item["content_b64"]),
                            mimetype=item["content_type"] or "application/octet-stream")
        ascii_name = item["filename"].encode("ascii", "replace").decode().replace('"', "'")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(item['filename'], safe='')}")
        response.headers["X-Content-SHA256"] = item["sha256"]
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @api("GET", "/api/v1/mail/threads/<uuid:thread_id>", response=ThreadSchema,
         summary="Переписка целиком (старые письма первыми)", tags=TAGS)
    def get_thread(self, request, thread_id):
        return self.mail_rpc.get_thread(str(thread_id))

    @api("GET", "/api/v1/mail/suggestions", query=SuggestionQuery, response=SuggestionSchema,
         many=True, summary="Незнакомые адреса из переписки: предложить создать контакт",
         tags=TAGS)
    def address_suggestions(self, request, query):
        return self.mail_rpc.address_suggestions(limit=query["limit"])
