"""Schemas of the client card's timeline (/api/v1/clients/<id>/timeline, /notes): the gateway's
own, never the deals service's. The kinds are a copy of the service's vocabulary (the gateway
never imports a service's code)."""

from marshmallow import Schema, ValidationError, fields, validate, validates

KINDS = ["call", "email", "erp", "stage", "task", "note", "delivery"]
NOTE_MAX = 5000


class ClientTimelineQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(min=1, max=1000), metadata={
        "description": "next_cursor предыдущей страницы"})
    kinds = fields.String(metadata={
        "description": f"только эти виды записей, через запятую: {', '.join(KINDS)}",
        "example": "call,email"})

    @validates("kinds")
    def _known_kinds(self, value, **_):
        chosen = [k.strip() for k in value.split(",") if k.strip()]
        bad = [k for k in chosen if k not in KINDS]
        if bad or not chosen:
            raise ValidationError(f"виды записей через запятую из: {', '.join(KINDS)}")


class ClientNoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=NOTE_MAX), metadata={
        "description": f"текст заметки, от 1 до {NOTE_MAX} символов"})


class ClientTimelineItemSchema(Schema):
    id = fields.Integer()
    at = fields.String(metadata={"format": "date-time"})
    kind = fields.String(validate=validate.OneOf(KINDS), metadata={
        "description": "call — звонок (data.recording — путь к записи), email — письмо, erp — "
                       "документ 1С в последней версии, stage — смена этапа сделки, task — "
                       "задача, note — заметка, delivery — доставка"})
    ref = fields.String(metadata={"description": "о чём запись: звонок, письмо, документ, …"})
    deal_id = fields.UUID(allow_none=True, metadata={"description": "сделка записи, если есть"})
    deal_title = fields.String(allow_none=True)
    data = fields.Dict(metadata={"description": "подробности записи (зависят от kind); имена "
                                                "людей — в полях *_name"})


class ClientTimelinePageSchema(Schema):
    items = fields.List(fields.Nested(ClientTimelineItemSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null — последняя"})
