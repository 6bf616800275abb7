"""Wire schemas of the clients service: shapes only; meaning (checksums, E.164) is in domain."""

from marshmallow import EXCLUDE, Schema, fields, validate

from .models import STATUSES

ADDRESS_KINDS = ("legal", "actual", "delivery", "postal")


class AddressSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(ADDRESS_KINDS))
    text = fields.String(required=True, validate=validate.Length(min=3, max=1000))


class ContactSchema(Schema):
    id = fields.UUID(dump_only=True)
    client_id = fields.UUID(dump_only=True)
    full_name = fields.String(required=True, validate=validate.Length(min=2, max=300))
    position = fields.String(allow_none=True, load_default=None,
                             validate=validate.Length(max=200))
    phones = fields.List(fields.String(), load_default=list)
    emails = fields.List(fields.String(), load_default=list)
    messengers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    notes = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=5000))


class ClientInputSchema(Schema):
    """What a person may type into a card (create; partial for update)."""

    class Meta:
        unknown = EXCLUDE

    short_name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    full_name = fields.String(allow_none=True, load_default=None,
                              validate=validate.Length(max=500))
    legal_form = fields.String(allow_none=True, load_default=None,
                               validate=validate.Length(max=20))
    inn = fields.String(allow_none=True, load_default=None)
    kpp = fields.String(allow_none=True, load_default=None)
    ogrn = fields.String(allow_none=True, load_default=None)
    region = fields.String(allow_none=True, load_default=None,
                           validate=validate.Regexp(r"^RU-[A-Z]{2,3}$",
                                                    error="код региона вида RU-SVE"))
    addresses = fields.List(fields.Nested(AddressSchema), load_default=list)
    phones = fields.List(fields.String(), load_default=list)
    emails = fields.List(fields.String(), load_default=list)
    website = fields.String(allow_none=True, load_default=None)
    industry = fields.String(allow_none=True, load_default=None)
    segment = fields.String(allow_none=True, load_default=None)
    status = fields.String(load_default="potential", validate=validate.OneOf(STATUSES))
    source = fields.String(allow_none=True, load_default=None)
    erp_partner_guid = fields.UUID(allow_none=True, load_default=None)
    erp_counterparty_guid = fields.UUID(allow_none=True, load_default=None)


class ClientSchema(Schema):
    """A client card as it leaves the service."""

    id = fields.UUID()
    short_name = fields.String()
    full_name = fields.String(allow_none=True)
    legal_form = fields.String(allow_none=True)
    inn = fields.String(allow_none=True)
    kpp = fields.String(allow_none=True)
    ogrn = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    addresses = fields.List(fields.Nested(AddressSchema))
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    website = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    segment = fields.String(allow_none=True)
    status = fields.String()
    source = fields.String(allow_none=True)
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True)
    department_id = fields.UUID(allow_none=True)
    department_name = fields.String(allow_none=True)
    owned_since = fields.AwareDateTime(allow_none=True)
    last_interaction_at = fields.AwareDateTime(allow_none=True)
    last_invoice_at = fields.AwareDateTime(allow_none=True)
    erp_partner_guid = fields.UUID(allow_none=True)
    erp_counterparty_guid = fields.UUID(allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.UUID(allow_none=True)
    updated_at = fields.AwareDateTime()
    updated_by = fields.UUID(allow_none=True)
    version = fields.Integer()
    contacts = fields.List(fields.Nested(ContactSchema))
    read_only = fields.Boolean()
