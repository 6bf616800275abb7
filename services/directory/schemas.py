"""Wire schemas of the directory service (shared by its RPCs and the gateway's OpenAPI)."""

from marshmallow import Schema, fields, validate

from crm_platform.identity import ROLES

USERNAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,99}$",
                           error="латиница в нижнем регистре, цифры, точка, дефис; 2–100 символов")


class RegionSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^RU-[A-Z]{2,3}$"))
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))


class DepartmentSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    regions = fields.List(fields.String(), required=True)
    head_user_id = fields.UUID(allow_none=True, load_default=None)


class DepartmentUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=2, max=200))
    regions = fields.List(fields.String())
    head_user_id = fields.UUID(allow_none=True)


class UserSchema(Schema):
    id = fields.UUID(dump_only=True)
    username = fields.String(required=True, validate=USERNAME)
    full_name = fields.String(required=True, validate=validate.Length(min=2, max=300))
    email = fields.Email(allow_none=True, load_default=None)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    department_id = fields.UUID(allow_none=True, load_default=None)
    regions = fields.List(fields.String(), dump_only=True)
    extension = fields.String(allow_none=True, load_default=None,
                              validate=validate.Regexp(r"^\d{2,6}$",
                                                       error="2–6 цифр внутреннего номера"))
    mailbox = fields.Email(allow_none=True, load_default=None)
    active = fields.Boolean(load_default=True)
    password = fields.String(load_only=True, load_default=None,
                             validate=validate.Length(min=8, max=200,
                                                      error="пароль: от 8 до 200 символов"))


class UserUpdateSchema(Schema):
    full_name = fields.String(validate=validate.Length(min=2, max=300))
    email = fields.Email(allow_none=True)
    role = fields.String(validate=validate.OneOf(ROLES))
    department_id = fields.UUID(allow_none=True)
    extension = fields.String(allow_none=True, validate=validate.Regexp(r"^\d{2,6}$"))
    mailbox = fields.Email(allow_none=True)
    active = fields.Boolean()


class IdentitySchema(Schema):
    user_id = fields.String(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    role = fields.String(required=True)
    department_id = fields.String(allow_none=True)
    regions = fields.List(fields.String())
