"""The public API's schemas: request validation, response shaping and the OpenAPI document all come
from these (the gateway keeps its own: it never imports a service's code)."""

from marshmallow import INCLUDE, Schema, fields, validate

ROLES = ["manager", "sales_head", "director", "admin", "integration", "dispatcher", "driver"]


# -- list conventions: cursor pages and sorting -------------------------------------------------

def limit_field(default: int = 50, maximum: int = 500) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum),
                          metadata={"description": f"размер страницы, 1…{maximum}"})


def cursor_field() -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=500), metadata={
        "description": "next_cursor предыдущей страницы (непрозрачная строка)"})


def sort_field(allowed: list[str], default: str) -> fields.String:
    """``field`` ascending, ``-field`` descending, only the listed fields (422 otherwise)."""
    choices = [*allowed, *(f"-{name}" for name in allowed)]
    return fields.String(load_default=default, validate=validate.OneOf(choices), metadata={
        "description": "сортировка: поле или -поле (по убыванию); поля: " + ", ".join(allowed)})


class PageQuery(Schema):
    """``limit`` and ``cursor`` of every paged list."""

    limit = limit_field()
    cursor = cursor_field()


_PAGES: dict[str, type[Schema]] = {}


def page_of(item: type[Schema], name: str | None = None, **extra) -> type[Schema]:
    """``{"items": [item...], "next_cursor": str | null}`` (plus ``extra`` fields)."""
    name = name or item.__name__.removesuffix("Schema") + "PageSchema"
    if name not in _PAGES:
        attrs = {
            "items": fields.List(fields.Nested(item), required=True),
            "next_cursor": fields.String(required=True, allow_none=True, metadata={
                "description": "курсор следующей страницы; null — страница последняя"}),
            **extra,
        }
        _PAGES[name] = type(name, (Schema,), attrs)
    return _PAGES[name]


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=1, max=200))


class IdentitySchema(Schema):
    user_id = fields.String(required=True)
    username = fields.String()
    full_name = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    department_id = fields.String(allow_none=True)
    regions = fields.List(fields.String())


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    user = fields.Nested(IdentitySchema, required=True)


class RegionSchema(Schema):
    code = fields.String(required=True, metadata={"example": "RU-SVE"})
    name = fields.String(required=True, metadata={"example": "Свердловская область"})


class DepartmentSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    regions = fields.List(fields.String(), required=True)
    head_user_id = fields.UUID(allow_none=True)


class DepartmentUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=2, max=200))
    regions = fields.List(fields.String())
    head_user_id = fields.UUID(allow_none=True)


class UserSchema(Schema):
    id = fields.UUID(dump_only=True)
    username = fields.String(required=True, validate=validate.Length(min=2, max=100))
    full_name = fields.String(required=True, validate=validate.Length(min=2, max=300))
    email = fields.Email(allow_none=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    department_id = fields.UUID(allow_none=True)
    regions = fields.List(fields.String(), dump_only=True)
    extension = fields.String(allow_none=True, metadata={"description": "PBX extension"})
    mailbox = fields.Email(allow_none=True)
    active = fields.Boolean()
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=200))


class UserUpdateSchema(Schema):
    full_name = fields.String(validate=validate.Length(min=2, max=300))
    email = fields.Email(allow_none=True)
    role = fields.String(validate=validate.OneOf(ROLES))
    department_id = fields.UUID(allow_none=True)
    extension = fields.String(allow_none=True)
    mailbox = fields.Email(allow_none=True)
    active = fields.Boolean()


class PasswordSchema(Schema):
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=8, max=200))


class UserListQuery(PageQuery):
    department_id = fields.UUID()
    role = fields.String(validate=validate.OneOf(ROLES))
    include_inactive = fields.Boolean(load_default=False)
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "часть ФИО или логина"})
    sort = sort_field(["name", "username", "created"], "name")


class DeadLetterSchema(Schema):
    handler = fields.String()
    original_queue = fields.String()
    reason = fields.String()
    error_type = fields.String()
    error = fields.String()
    attempts = fields.Integer()
    dead_lettered_at = fields.String()
    event_id = fields.String(allow_none=True)
    event_type = fields.String(allow_none=True)


class AccessDenialSchema(Schema):
    """A caller a service refused (``crm_platform.audit``)."""

    id = fields.Integer()
    at = fields.String(metadata={"description": "ISO 8601"})
    user_id = fields.String(allow_none=True)
    username = fields.String()
    role = fields.String()
    department_id = fields.String(allow_none=True)
    service = fields.String()
    operation = fields.String(metadata={"description": "the RPC refused"})
    resource = fields.String(metadata={"description": "its scalar arguments (ids)"})
    code = fields.String()
    reason = fields.String()


class AccessDenialQuery(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0),
                           metadata={"description": "only records with a larger id"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class RedriveSchema(Schema):
    handler = fields.String(load_default=None, allow_none=True)


class RedriveResultSchema(Schema):
    moved = fields.Integer(required=True)


class DecimalString(fields.Decimal):
    """A decimal (money, tonnes) read from a JSON number or a decimal string and written as a
    string ("150000.00"): the document says ``string`` with ``format: decimal``, which is what
    every response carries (a plain ``fields.Decimal`` is documented as ``number``, and a client
    validating the answer against the document would reject it)."""

    def __init__(self, *args, **kwargs):
        kwargs["as_string"] = True
        kwargs["metadata"] = {"type": "string", "format": "decimal",
                              **(kwargs.get("metadata") or {})}
        super().__init__(*args, **kwargs)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    class Meta:
        # RFC 9457 extension members: a refusal names what it needs (``required_roles``,
        # ``role``), a conflict the owner (``owner``, ``department``), a quarantined 1C message
        # its ``quarantine_id``... The document must not forbid them (additionalProperties).
        unknown = INCLUDE

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String()
    errors = fields.List(fields.Dict(), metadata={
        "description": "validation errors: [{field, reasons: [...]}]"})
