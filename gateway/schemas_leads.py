"""Schemas of the lead-intake API (issue 13 A): web forms, lead distribution, absences, consents.
The gateway's own, never the services': requests are strict on shape (unknown fields: 422), the
services decide the meaning."""

from marshmallow import Schema, fields, validate

PURPOSES = ["processing", "marketing_email", "marketing_calls"]
CONSENT_SOURCES = ["web_form", "manual", "import", "email", "call", "campaign", "unsubscribe",
                   "api"]
MODES = ["round_robin", "least_loaded"]
ABSENCE_KINDS = ["vacation", "sick_leave", "business_trip", "day_off", "other"]
ORIGIN = validate.Regexp(r"^https?://[^/\s]+$", error="адрес сайта вида https://example.ru")


class LeadFormFieldsSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    department_id = fields.UUID(allow_none=True)
    region = fields.String(allow_none=True, validate=validate.Length(max=16))
    allowed_origins = fields.List(fields.String(validate=ORIGIN), metadata={
        "description": "сайты, с которых форма принимает заявки (пусто: любые)"})
    consent_text_version_id = fields.UUID(allow_none=True, metadata={
        "description": "версия текста согласия на обработку ПДн (пусто: без галочки)"})
    confirmation_email = fields.Boolean()
    mailbox_id = fields.UUID(allow_none=True, metadata={
        "description": "ящик, из которого уходит подтверждение заявки"})


class LeadFormCreateSchema(LeadFormFieldsSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class LeadFormUpdateSchema(LeadFormFieldsSchema):
    active = fields.Boolean()


class LeadFormCountsSchema(Schema):
    lead = fields.Integer()
    spam = fields.Integer()


class LeadFormSchema(LeadFormUpdateSchema):
    id = fields.UUID()
    key = fields.String(metadata={"description": "публичный ключ формы (в адресе страницы)"})
    last_24h = fields.Nested(LeadFormCountsSchema)


class SubmissionAcceptedSchema(Schema):
    status = fields.String(metadata={"example": "accepted"})
    submission_id = fields.UUID()


class DistributionSchema(Schema):
    department_id = fields.UUID(dump_only=True)
    enabled = fields.Boolean(required=True)
    mode = fields.String(load_default="round_robin", validate=validate.OneOf(MODES))
    daily_cap = fields.Integer(allow_none=True, load_default=None,
                               validate=validate.Range(min=1, max=1000), metadata={
                                   "description": "интересов менеджеру в день, не больше"})
    off_duty = fields.List(fields.UUID(), load_default=list,
                           validate=validate.Length(max=500), metadata={
                               "description": "менеджеры отдела, снятые с распределения "
                                              "(не в отпуске, просто не получают интересы)"})


class AbsenceFieldsSchema(Schema):
    kind = fields.String(validate=validate.OneOf(ABSENCE_KINDS))
    starts_on = fields.Date()
    ends_on = fields.Date()
    note = fields.String(allow_none=True, validate=validate.Length(max=500))


class AbsenceCreateSchema(AbsenceFieldsSchema):
    kind = fields.String(required=True, validate=validate.OneOf(ABSENCE_KINDS))
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)


class AbsenceUpdateSchema(AbsenceFieldsSchema):
    cancelled = fields.Boolean()


class AbsenceSchema(AbsenceUpdateSchema):
    id = fields.UUID()
    user_id = fields.UUID()
    starts_on = fields.String(metadata={"format": "date"})
    ends_on = fields.String(metadata={"format": "date"})


class AbsenceQuery(Schema):
    user_id = fields.UUID()
    department_id = fields.UUID()
    since = fields.Date()


class ConsentRecordSchema(Schema):
    email = fields.String(validate=validate.Length(max=320))
    phone = fields.String(validate=validate.Length(max=40))
    client_id = fields.UUID(allow_none=True)
    contact_id = fields.UUID(allow_none=True)
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    text_version_id = fields.UUID()
    version = fields.String(validate=validate.Length(max=30))
    source = fields.String(required=True, validate=validate.OneOf(CONSENT_SOURCES))
    ip = fields.String(allow_none=True, validate=validate.Length(max=45))
    user_agent = fields.String(allow_none=True, validate=validate.Length(max=500))
    given_at = fields.AwareDateTime(allow_none=True)


class ConsentWithdrawSchema(Schema):
    email = fields.String(validate=validate.Length(max=320))
    phone = fields.String(validate=validate.Length(max=40))
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    source = fields.String(required=True, validate=validate.OneOf(CONSENT_SOURCES))
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


class ConsentWithdrawnSchema(Schema):
    withdrawn = fields.Integer()
    granted = fields.Boolean()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    purpose = fields.String()
    at = fields.String(metadata={"format": "date-time"})


class ConsentSchema(Schema):
    id = fields.Integer()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    contact_id = fields.UUID(allow_none=True)
    purpose = fields.String()
    text_version_id = fields.UUID(allow_none=True)
    text_version = fields.String(allow_none=True)
    given_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    source = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    withdrawn_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    withdrawal_source = fields.String(allow_none=True)
    withdrawal_reason = fields.String(allow_none=True)
    granted = fields.Boolean()


class ConsentQuery(Schema):
    email = fields.String(validate=validate.Length(max=320))
    phone = fields.String(validate=validate.Length(max=40))


class ConsentTextQuery(Schema):
    purpose = fields.String(validate=validate.OneOf(PURPOSES))


class ConsentTextCreateSchema(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    version = fields.String(required=True, validate=validate.Length(min=1, max=30))
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    valid_from = fields.AwareDateTime(allow_none=True)


class ConsentTextSchema(Schema):
    id = fields.UUID()
    purpose = fields.String()
    version = fields.String()
    text = fields.String()
    valid_from = fields.String(metadata={"format": "date-time"})
