"""Schemas of the campaign, unsubscribe and personal-data routes (issue 13 B)."""

from marshmallow import Schema, fields, validate

from .schemas import DecimalString, cursor_field, limit_field

GOALS = ["reactivation", "new_product", "event"]
CHANNELS = ["email", "calls"]
STATES = ["draft", "scheduled", "running", "finished", "cancelled"]
RECIPIENT_STATUSES = ["queued", "sent", "bounced", "unsubscribed", "skipped_no_consent"]
_money = {"places": 2, "as_string": True, "allow_nan": False}


class CampaignWriteSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    goal = fields.String(validate=validate.OneOf(GOALS))
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)),
                           validate=validate.Length(min=1, max=2))
    segment_id = fields.UUID(allow_none=True)
    filter = fields.Raw(allow_none=True, metadata={"description": "фильтр сегмента (JSON)"})
    budget = DecimalString(allow_none=True, metadata={"description": "не меньше 0"}, **_money)
    starts_at = fields.AwareDateTime(allow_none=True)
    ends_at = fields.AwareDateTime(allow_none=True)
    mailbox_id = fields.UUID(allow_none=True)
    email_subject = fields.String(allow_none=True, validate=validate.Length(max=300),
                                  metadata={"example": "Новинка для {{ client_name }}"})
    email_body = fields.String(allow_none=True, validate=validate.Length(max=100_000),
                               metadata={"description": "Jinja2: client_name, contact_name, "
                                                        "email, campaign"})
    utm_campaign = fields.String(allow_none=True, validate=validate.Length(max=200))


class CampaignCreateSchema(CampaignWriteSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    goal = fields.String(required=True, validate=validate.OneOf(GOALS))


class CampaignStateSchema(Schema):
    state = fields.String(required=True, validate=validate.OneOf(STATES))


class CampaignSchema(Schema):
    campaign_id = fields.UUID()
    name = fields.String()
    goal = fields.String()
    state = fields.String()
    channels = fields.List(fields.String())
    budget = DecimalString(allow_none=True, **_money)
    starts_at = fields.String(allow_none=True)
    ends_at = fields.String(allow_none=True)
    segment_id = fields.UUID(allow_none=True)
    filter = fields.Raw(allow_none=True)
    mailbox_id = fields.UUID(allow_none=True)
    email_subject = fields.String(allow_none=True)
    email_body = fields.String(allow_none=True)
    utm_campaign = fields.String(allow_none=True)
    created_by = fields.UUID()
    created_at = fields.String()
    updated_at = fields.String(allow_none=True)
    recipients = fields.Dict(keys=fields.String(), values=fields.Integer(),
                             metadata={"description": "получатели по статусам"})


class RecipientQuery(Schema):
    status = fields.String(validate=validate.OneOf(RECIPIENT_STATUSES))
    limit = limit_field(100, 1000)
    cursor = cursor_field()


class RecipientSchema(Schema):
    recipient_id = fields.UUID()
    email = fields.String()
    client_id = fields.UUID(allow_none=True)
    contact_id = fields.UUID(allow_none=True)
    status = fields.String()
    reason = fields.String(allow_none=True)
    message_id = fields.String(allow_none=True)
    updated_at = fields.String()


class RecipientListSchema(Schema):
    items = fields.List(fields.Nested(RecipientSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "курсор следующей страницы; null — страница последняя"})


# -- personal data requests (152-FZ) ------------------------------------------------------------


class PrivacyRequestSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["export", "erase"]))
    email = fields.String(validate=validate.Length(max=320))
    phone = fields.String(validate=validate.Length(max=40))
    contact_id = fields.UUID()
    reason = fields.String(validate=validate.Length(max=1000))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "xlsx"]))


class PrivacyRequestSummarySchema(Schema):
    request_id = fields.UUID()
    kind = fields.String()
    person = fields.String(metadata={"description": "маска e-mail/телефона"})
    requested_by = fields.UUID()
    requested_at = fields.String()
    finished_at = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "running, done, partial"})
    services = fields.Dict(keys=fields.String(), values=fields.Raw())
    reason = fields.String(allow_none=True)


class PrivacyListQuery(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
