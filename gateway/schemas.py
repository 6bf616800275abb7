"""The public API's schemas: request validation, response shaping and the OpenAPI document all come
from these (the gateway keeps its own: it never imports a service's code)."""

from marshmallow import Schema, fields, validate

ROLES = ["manager", "sales_head", "director", "admin", "integration", "dispatcher", "driver"]


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


class UserListQuery(Schema):
    department_id = fields.UUID()
    role = fields.String(validate=validate.OneOf(ROLES))
    include_inactive = fields.Boolean(load_default=False)


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


class RedriveSchema(Schema):
    handler = fields.String(load_default=None, allow_none=True)


class RedriveResultSchema(Schema):
    moved = fields.Integer(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String()
    errors = fields.List(fields.Dict(), metadata={
        "description": "validation errors: [{field, reasons: [...]}]"})
