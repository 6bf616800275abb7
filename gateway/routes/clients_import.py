"""Client import routes of the gateway (/api/v1/clients/import): a mixin of ``GatewayService``.

The file travels in the JSON body as base64, so the body may be bigger than the gateway's usual
2 MB: a 10 MB sheet is about 13.4 MB of base64. The endpoint is the ``api`` endpoint with that one
limit raised (``ImportEndpoint``); everything else — token check, identity in the RPC context,
schemas, problem documents, OpenAPI — is the same.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..api import api

# The clients service refuses files over 10 MB; base64 and the JSON around it add a third.
MAX_IMPORT_BODY_BYTES = 15 * 1024 * 1024
IMPORT_FIELDS = ["short_name", "full_name", "inn", "kpp", "ogrn", "region", "phones", "emails",
                 "website", "industry", "segment", "status", "source", "address", "contact_name",
                 "contact_position", "contact_phones", "contact_emails", "owner_id"]
ROW_STATUSES = ["created", "merged", "refused"]




class ClientImportSchema(Schema):
    file_base64 = fields.String(required=True, validate=validate.Length(min=1),
                                metadata={"description": "the .xlsx or .csv file in base64 "
                                                         "(at most 10 MB, 20,000 rows)"})
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255),
                             metadata={"example": "клиенты.xlsx"})
    mapping = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.String(allow_none=True, validate=validate.OneOf(IMPORT_FIELDS)),
        required=True,
        metadata={"description": "column header of the file -> field (null: ignore the column)",
                  "example": {"Название": "short_name", "ИНН": "inn", "Телефоны": "phones",
                              "Контактное лицо": "contact_name"}})
    dry_run = fields.Boolean(load_default=False,
                             metadata={"description": "only report what would happen"})
    owner_id = fields.UUID(allow_none=True, load_default=None,
                           metadata={"description": "sales heads and directors: whose clients "
                                                    "(null: the department pool)"})


class ImportErrorSchema(Schema):
    field = fields.String()
    column = fields.String(allow_none=True, metadata={"description": "header in the file"})
    value = fields.String(allow_none=True)
    reasons = fields.List(fields.String())


class ImportAddedSchema(Schema):
    phones = fields.Integer()
    emails = fields.Integer()
    contacts = fields.Integer()
    fields_ = fields.List(fields.String(), attribute="fields", data_key="fields",
                          metadata={"description": "empty card fields that were filled"})


class ImportRowSchema(Schema):
    row = fields.Integer(metadata={"description": "row number in the file (header: 1)"})
    status = fields.String(validate=validate.OneOf(ROW_STATUSES))
    client_id = fields.String(allow_none=True)
    short_name = fields.String(allow_none=True)
    contacts_added = fields.Integer(metadata={"description": "created rows"})
    into = fields.String(validate=validate.OneOf(["existing", "file"]),
                         metadata={"description": "merged rows: into a client of the base or "
                                                  "of an earlier row"})
    duplicate_of_row = fields.Integer(allow_none=True)
    matched_by = fields.String(allow_none=True, metadata={"example": "inn, phone"})
    added = fields.Nested(ImportAddedSchema)
    warnings = fields.List(fields.String())
    code = fields.String(metadata={"description": "refused rows: validation_failed, "
                                                  "client_owned, client_in_pool, ..."})
    reason = fields.String()
    owner_id = fields.String(allow_none=True)
    owner = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    client_ids = fields.List(fields.String())
    errors = fields.List(fields.Nested(ImportErrorSchema))


class ImportTotalsSchema(Schema):
    rows = fields.Integer()
    created = fields.Integer()
    merged = fields.Integer()
    refused = fields.Integer()
    merged_into_existing = fields.Integer()
    clients_updated = fields.Integer()


class ImportReportSchema(Schema):
    import_id = fields.String()
    dry_run = fields.Boolean()
    filename = fields.String()
    owner_id = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    totals = fields.Nested(ImportTotalsSchema)
    rows = fields.List(fields.Nested(ImportRowSchema))


class ClientImportRoutes:
    @api("POST", "/api/v1/clients/import", body=ClientImportSchema, response=ImportReportSchema,
         max_body_bytes=MAX_IMPORT_BODY_BYTES,
         idempotent=True, summary="Импорт клиентов и контактов из Excel/CSV", tags=["clients"])
    def import_clients(self, request, body):
        """Validate and normalise every row, check it against the client base and the rows above
        it, and create, merge (into one's own client) or refuse it with the reason (another
        manager's client: who and which department). All accepted rows are written in one
        transaction; ``dry_run`` only reports. An unreadable file or a mapping naming columns
        the file lacks: 422, nothing stored."""
        owner_id = body.get("owner_id")
        return self.services("clients").import_clients(
            body["file_base64"], body["filename"], body["mapping"], dry_run=body["dry_run"],
            owner_id=str(owner_id) if owner_id else None)
