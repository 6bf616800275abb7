"""Schemas of the mail API (/api/v1/mail): the gateway's own, never the service's.

Requests are strict on shape (unknown fields refused with 422 naming them); the mail service
decides the meaning (a mailbox setting it refuses, an address it cannot send to: its 422 names
the field). Mailboxes carry a *reference* to their password (``secret_ref``: ``env:NAME``), never
the password.
"""

from marshmallow import Schema, fields, validate

KINDS = ["personal", "shared"]
SMTP_SECURITY = ["none", "starttls", "ssl"]
DIRECTIONS = ["inbound", "outbound"]
MAILBOX_STATUSES = ["pending", "ok", "syncing", "error"]
SECRET_REF = validate.Regexp(r"^env:[A-Z_][A-Z0-9_]{0,127}$",
                             error="ссылка на секрет вида env:ИМЯ_ПЕРЕМЕННОЙ")


def _ts(description: str = "") -> fields.String:
    return fields.String(allow_none=True, metadata={"format": "date-time",
                                                    **({"description": description}
                                                       if description else {})})


class MailboxFieldsSchema(Schema):
    address = fields.Email(metadata={"description": "адрес ящика"})
    display_name = fields.String(validate=validate.Length(max=200))
    kind = fields.String(validate=validate.OneOf(KINDS), metadata={
        "description": "personal — ящик менеджера, shared — общий ящик отдела"})
    owner_id = fields.UUID(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    imap_host = fields.String(validate=validate.Length(min=1, max=253))
    imap_port = fields.Integer(validate=validate.Range(min=1, max=65535))
    imap_tls = fields.Boolean()
    login = fields.String(validate=validate.Length(min=1, max=320))
    secret_ref = fields.String(validate=SECRET_REF, metadata={
        "description": "где лежит пароль (env:MAIL_SECRET_...); в базе пароль не хранится",
        "example": "env:MAIL_SECRET_IVANOV"})
    sent_folder = fields.String(validate=validate.Length(min=1, max=200))
    smtp_host = fields.String(allow_none=True, validate=validate.Length(max=253))
    smtp_port = fields.Integer(validate=validate.Range(min=1, max=65535))
    smtp_security = fields.String(validate=validate.OneOf(SMTP_SECURITY))
    enabled = fields.Boolean()
    sync_interval_seconds = fields.Integer(validate=validate.Range(min=10, max=86400))


class MailboxCreateSchema(MailboxFieldsSchema):
    address = fields.Email(required=True)
    imap_host = fields.String(required=True, validate=validate.Length(min=1, max=253))
    login = fields.String(required=True, validate=validate.Length(min=1, max=320))
    secret_ref = fields.String(required=True, validate=SECRET_REF)


class MailboxUpdateSchema(MailboxFieldsSchema):
    pass


class MailboxFolderSchema(Schema):
    folder = fields.String()
    uidvalidity = fields.Integer(allow_none=True)
    last_uid = fields.Integer()
    resyncs = fields.Integer()
    synced_at = _ts()


class MailboxSchema(MailboxFieldsSchema):
    id = fields.String(metadata={"format": "uuid"})
    owner_id = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    address = fields.String()
    status = fields.String(metadata={"enum": MAILBOX_STATUSES})
    failures = fields.Integer()
    last_error = fields.String(allow_none=True)
    last_error_at = _ts()
    last_synced_at = _ts()
    next_attempt_at = _ts("следующая синхронизация (после ошибки — с нарастающей паузой)")
    last_sync = fields.Dict()
    folders = fields.List(fields.Nested(MailboxFolderSchema))
    created_at = _ts()
    updated_at = _ts()


class SyncResultSchema(Schema):
    status = fields.String(metadata={"enum": ["ok", "error"]})
    registered = fields.Integer()
    duplicates = fields.Integer()
    fetched = fields.Integer()
    lookups = fields.Integer()
    resynced = fields.List(fields.String())
    seconds = fields.Float()
    error = fields.String()
    failures = fields.Integer()
    next_attempt_at = _ts()


class DeletedSchema(Schema):
    deleted = fields.Boolean()
    id = fields.String()


class MessageListQuery(Schema):
    client_id = fields.UUID()
    deal_id = fields.UUID()
    thread_id = fields.UUID()
    mailbox_id = fields.UUID()
    contact_id = fields.UUID()
    direction = fields.String(validate=validate.OneOf(DIRECTIONS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200), metadata={
        "description": "next_cursor из предыдущей страницы"})


class MessageSummarySchema(Schema):
    id = fields.String(metadata={"format": "uuid"})
    message_id = fields.String(allow_none=True, metadata={"description": "Message-ID с <>"})
    subject = fields.String()
    from_address = fields.String(allow_none=True)
    from_name = fields.String()
    to_addresses = fields.List(fields.String())
    cc_addresses = fields.List(fields.String())
    direction = fields.String(metadata={"enum": DIRECTIONS})
    sent_at = _ts()
    snippet = fields.String()
    attachment_count = fields.Integer()
    client_id = fields.String(allow_none=True)
    contact_id = fields.String(allow_none=True)
    deal_id = fields.String(allow_none=True)
    thread_id = fields.String()
    mailbox_id = fields.String()
    user_id = fields.String(allow_none=True)
    origin = fields.String(metadata={"enum": ["imap", "crm"]})


class MessagePageSchema(Schema):
    items = fields.List(fields.Nested(MessageSummarySchema))
    next_cursor = fields.String(allow_none=True)


class AttachmentMetaSchema(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()


class MessageSchema(MessageSummarySchema):
    text = fields.String(metadata={"description": "текст письма (HTML переведён в текст)"})
    size = fields.Integer()
    matched_address = fields.String(allow_none=True)
    parent_ref = fields.String(allow_none=True)
    root_ref = fields.String(allow_none=True)
    references = fields.List(fields.String())
    sent_by = fields.String(allow_none=True)
    created_at = _ts()
    attachments = fields.List(fields.Nested(AttachmentMetaSchema))


class ThreadMessageSchema(MessageSummarySchema):
    parent_ref = fields.String(allow_none=True)


class ThreadSchema(Schema):
    thread_id = fields.String()
    subject = fields.String()
    messages = fields.List(fields.Nested(ThreadMessageSchema))


class SendSchema(Schema):
    to = fields.List(fields.String(validate=validate.Length(min=3, max=320)), required=True,
                     validate=validate.Length(min=1, max=100))
    cc = fields.List(fields.String(validate=validate.Length(min=3, max=320)),
                     load_default=list, validate=validate.Length(max=100))
    subject = fields.String(required=True, validate=validate.Length(max=900))
    body = fields.String(required=True, validate=validate.Length(max=1_000_000))
    mailbox_id = fields.UUID(metadata={"description": "по умолчанию — свой личный ящик"})
    client_id = fields.UUID()
    deal_id = fields.UUID(metadata={"description": "в тему добавится [CRM-xxxxxxxx]"})
    reply_to = fields.UUID(metadata={"description": "id письма в CRM, на которое это ответ"})


class SuggestionSchema(Schema):
    address = fields.String()
    name = fields.String()
    mailbox_id = fields.String()
    message_count = fields.Integer()
    first_seen_at = _ts()
    last_seen_at = _ts()
    last_subject = fields.String()


class SuggestionQuery(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
