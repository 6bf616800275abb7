"""Schemas of the client base API (/api/v1/clients...): the gateway's own, never the service's.

Requests are strict on shape (types, nesting, unknown fields are refused) and loose on formats:
INN, KPP, OGRN, phones and e-mails pass through as strings, and the clients service checks and
normalises them (its 422 names the field and the reason). Responses are what the service returns,
dumped through these schemas so the API shows exactly the documented fields.
"""

from marshmallow import Schema, fields, validate

from .schemas import cursor_field, limit_field, sort_field

CLIENT_STATUSES = ["potential", "active", "dormant", "lost"]
ADDRESS_KINDS = ["legal", "actual", "delivery", "postal"]


def _text(description: str = "", **kwargs) -> fields.String:
    return fields.String(allow_none=True, metadata={"description": description} if description
                         else {}, **kwargs)


def _timestamp(description: str = "") -> fields.String:
    metadata = {"format": "date-time"}
    if description:
        metadata["description"] = description
    return fields.String(allow_none=True, metadata=metadata)


# -- requests ---------------------------------------------------------------------------------

class ClientAddressSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(ADDRESS_KINDS))
    text = fields.String(required=True, metadata={"example": "г. Екатеринбург, ул. Ленина, 1"})


class ClientFieldsSchema(Schema):
    """The card fields a person may type (all optional here; creation requires ``short_name``)."""

    short_name = fields.String(metadata={"example": "ООО «Стройметалл»"})
    full_name = _text("полное наименование")
    legal_form = _text("ООО, АО, ИП...; по умолчанию из названия")
    inn = _text("ИНН, 10 или 12 цифр (проверяется контрольная сумма)")
    kpp = _text("КПП, 9 знаков")
    ogrn = _text("ОГРН (13) или ОГРНИП (15 цифр)")
    region = _text("код региона ISO 3166-2, например RU-SVE")
    addresses = fields.List(fields.Nested(ClientAddressSchema))
    phones = fields.List(fields.String(), metadata={
        "description": "в любом привычном виде; сохраняются в E.164; короткий номер — "
                       "внутренний номер АТС и не принимается",
        "example": ["8 (343) 123-45-67"]})
    emails = fields.List(fields.String(), metadata={"example": ["sales@example.ru"]})
    website = _text()
    industry = _text()
    segment = _text()
    status = fields.String(validate=validate.OneOf(CLIENT_STATUSES))
    source = _text("откуда пришёл клиент")
    erp_partner_guid = _text("GUID партнёра в 1С")
    erp_counterparty_guid = _text("GUID контрагента в 1С")


class ClientContactCreateSchema(Schema):
    full_name = fields.String(required=True, metadata={"example": "Петров Пётр Петрович"})
    position = _text()
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    messengers = fields.Dict(keys=fields.String(), values=fields.String(),
                             metadata={"example": {"telegram": "@petrov"}})
    notes = _text()


class ClientContactUpdateSchema(ClientContactCreateSchema):
    full_name = fields.String()


class ClientContactCandidateSchema(Schema):
    full_name = fields.String()
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())


class ClientCreateSchema(ClientFieldsSchema):
    short_name = fields.String(required=True, metadata={"example": "ООО «Стройметалл»"})
    contacts = fields.List(fields.Nested(ClientContactCreateSchema))
    owner_id = fields.UUID(allow_none=True, metadata={
        "description": "ответственный (руководитель отдела, директор); null — общий пул отдела; "
                       "менеджер заводит клиентов только на себя"})
    override = fields.Boolean(metadata={
        "description": "создать несмотря на дубль (руководитель отдела, директор)"})


class ClientUpdateSchema(ClientFieldsSchema):
    expected_version = fields.Integer(strict=True, allow_none=True,
                                      validate=validate.Range(min=1), metadata={
                                          "description": "версия карточки, которую правили; "
                                                         "или заголовок If-Match"})


class DuplicateCandidateSchema(ClientFieldsSchema):
    contacts = fields.List(fields.Nested(ClientContactCandidateSchema))


class ClientOwnerSchema(Schema):
    owner_id = fields.UUID(required=True, allow_none=True,
                           metadata={"description": "новый ответственный; null — в пул отдела"})


class ClientListQuery(Schema):
    q = fields.String(metadata={"description": "название, ИНН или телефон"})
    status = fields.String(validate=validate.OneOf(CLIENT_STATUSES))
    segment = fields.String()
    region = fields.String()
    owner_id = fields.UUID()
    department_id = fields.UUID()
    pool = fields.Boolean(metadata={"description": "true — только клиенты общего пула"})
    sort = sort_field(["created", "updated", "name"], "-created")
    limit = limit_field(50, 500)
    cursor = cursor_field()


class ClientAuditQuery(Schema):
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


# -- responses --------------------------------------------------------------------------------

class ClientContactSchema(Schema):
    id = fields.UUID()
    client_id = fields.UUID()
    full_name = fields.String()
    position = fields.String(allow_none=True)
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    messengers = fields.Dict(keys=fields.String(), values=fields.String())
    notes = fields.String(allow_none=True)


class ClientSummarySchema(Schema):
    """A client as lists show it (the card without contacts)."""

    id = fields.UUID()
    short_name = fields.String()
    full_name = fields.String(allow_none=True)
    legal_form = fields.String(allow_none=True)
    inn = fields.String(allow_none=True)
    kpp = fields.String(allow_none=True)
    ogrn = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    addresses = fields.List(fields.Nested(ClientAddressSchema))
    phones = fields.List(fields.String(), metadata={"example": ["+73431234567"]})
    emails = fields.List(fields.String())
    website = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    segment = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(CLIENT_STATUSES))
    source = fields.String(allow_none=True)
    owner_id = fields.UUID(allow_none=True, metadata={"description": "null — в общем пуле"})
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    department_name = fields.String(allow_none=True)
    owned_since = _timestamp()
    last_interaction_at = _timestamp()
    last_invoice_at = _timestamp()
    erp_partner_guid = fields.UUID(allow_none=True)
    erp_counterparty_guid = fields.UUID(allow_none=True)
    created_at = _timestamp()
    created_by = fields.UUID(allow_none=True)
    updated_at = _timestamp()
    updated_by = fields.UUID(allow_none=True)
    version = fields.Integer(metadata={"description": "для expected_version / If-Match"})
    read_only = fields.Boolean(metadata={
        "description": "true — можно смотреть, но не менять (например, клиент общего пула)"})


class ClientCardSchema(ClientSummarySchema):
    """A client card as the API shows it, with its contact persons."""

    contacts = fields.List(fields.Nested(ClientContactSchema))


class ClientCreatedSchema(Schema):
    created = fields.Boolean(required=True, metadata={
        "description": "false — такой клиент уже ваш: возвращён он, нового не создано"})
    client = fields.Nested(ClientCardSchema, required=True)


class ClientPageSchema(Schema):
    items = fields.List(fields.Nested(ClientSummarySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "курсор следующей страницы; null — страница последняя"})
    total = fields.Integer(required=True, metadata={"description": "всего по фильтру"})


class DuplicateReasonSchema(Schema):
    reason = fields.String(metadata={
        "description": "inn, inn_kpp, phone, email, name, similar_name, similar_name_other_inn, "
                       "inn_other_branch"})
    value = fields.String()
    contact_id = fields.UUID(metadata={
        "description": "the contact person whose phone or e-mail matched (absent: the client's "
                       "own)"})


class DuplicateMatchSchema(Schema):
    client_id = fields.UUID()
    short_name = fields.String()
    inn = fields.String(allow_none=True)
    kpp = fields.String(allow_none=True)
    status = fields.String()
    score = fields.Float()
    blocking = fields.Boolean(metadata={"description": "true — это тот же клиент"})
    reasons = fields.List(fields.Nested(DuplicateReasonSchema))
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    department_name = fields.String(allow_none=True)


class OwnershipPeriodSchema(Schema):
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    since = _timestamp()
    until = _timestamp("null — по сей день")
    reason = fields.String(metadata={"description": "created, claim, arbitration, release, ..."})


class ClientAuditEntrySchema(Schema):
    at = _timestamp()
    user_id = fields.UUID(allow_none=True)
    role = fields.String(allow_none=True)
    action = fields.String(metadata={"description": "read, create, update, claim, ..."})
    fields_ = fields.List(fields.String(), attribute="fields", data_key="fields")
    details = fields.Dict()
