"""The event envelope and every event contract, in one place.

Every event on the wire is a JSON envelope::

    {"event_id": "<uuid>", "type": "client_created", "version": 1, "source": "clients",
     "occurred_at": "2026-11-27T10:00:00+00:00", "payload": {...}}

published to the topic exchange ``<source>.events`` with the routing key ``<type>`` (nameko's own
event exchange, so nameko's ``event_handler`` binds to it). Producers dump the payload through the
contract schema before it enters the outbox; consumers load it through the same schema before the
handler sees it. A new field is a compatible change; removing or retyping one needs a new version.

Services add their contracts to this module (``@contract``) as they grow; tests of both sides
import the same schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, validate

from .clock import utcnow

_CONTRACTS: dict[tuple[str, str], type[Schema]] = {}
_VERSIONS: dict[tuple[str, str], int] = {}


class ContractError(ValueError):
    """An event that breaks its contract (unknown type, bad envelope, bad payload)."""

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.errors = errors or {}


def contract(source: str, event_type: str, version: int = 1):
    """Register the payload schema of ``source``.``event_type``."""

    def register(schema_cls: type[Schema]) -> type[Schema]:
        key = (source, event_type)
        if key in _CONTRACTS and _CONTRACTS[key] is not schema_cls:
            raise ValueError(f"contract {source}.{event_type} registered twice")
        _CONTRACTS[key] = schema_cls
        _VERSIONS[key] = version
        return schema_cls

    return register


# One schema instance per contract, for dumping and loading (marshmallow schemas keep no state
# between calls; building one deep-copies its fields, which cost more than the dump itself).
_DUMPERS: dict[type[Schema], Schema] = {}
_LOADERS: dict[type[Schema], Schema] = {}


def _dumper(schema_cls: type[Schema]) -> Schema:
    schema = _DUMPERS.get(schema_cls)
    if schema is None:
        schema = _DUMPERS[schema_cls] = schema_cls()
    return schema


def _loader(schema_cls: type[Schema]) -> Schema:
    schema = _LOADERS.get(schema_cls)
    if schema is None:
        schema = _LOADERS[schema_cls] = schema_cls(unknown=EXCLUDE)
    return schema


def contract_for(source: str, event_type: str) -> tuple[type[Schema], int]:
    try:
        return _CONTRACTS[(source, event_type)], _VERSIONS[(source, event_type)]
    except KeyError:
        raise ContractError(f"no contract for event {source}.{event_type}") from None


def all_contracts() -> dict[tuple[str, str], tuple[type[Schema], int]]:
    return {key: (schema, _VERSIONS[key]) for key, schema in _CONTRACTS.items()}


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Length(min=1, max=100))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    source = fields.String(required=True, validate=validate.Length(min=1, max=100))
    occurred_at = fields.AwareDateTime(required=True)
    payload = fields.Dict(required=True)


_envelope_schema = EnvelopeSchema()


@dataclass(frozen=True)
class Event:
    """One event as a consumer sees it: the envelope with its payload loaded by the contract."""

    event_id: uuid.UUID
    type: str
    version: int
    source: str
    occurred_at: datetime
    payload: dict
    handler: str = ""  # "<service>.<method>" of the consumer handling it
    raw_payload: dict = field(default_factory=dict, repr=False)


def make_envelope(source: str, event_type: str, payload: dict, *, event_id=None,
                  occurred_at: datetime | None = None) -> dict:
    """Validate ``payload`` against the contract and build the wire envelope (plain JSON)."""
    schema_cls, version = contract_for(source, event_type)
    schema = _dumper(schema_cls)
    errors: dict = {}
    dumped = _dump_checked(schema, payload, errors)
    if errors:
        raise ContractError(f"payload of {source}.{event_type} breaks its contract", errors)
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "type": event_type,
        "version": version,
        "source": source,
        "occurred_at": (occurred_at or utcnow()).isoformat(),
        "payload": dumped,
    }


def _dump_checked(schema: Schema, payload, errors: dict) -> dict:
    """Dump ``payload`` through ``schema`` field by field, checking what the producer hands over:
    required fields present, no null where the contract has none, every field's validators
    (choices, ranges, lengths), and the value's type (a UUID, decimal, date or number field
    refuses what it cannot write); nested schemas likewise. Errors are collected per field.
    (Loading the dumped payload back would check the same at about twice the cost of the dump,
    on every event a service emits; consumers still load every payload they receive.)"""
    if not isinstance(payload, Mapping):
        errors["_schema"] = ["payload is not a mapping"]
        return {}
    out = {}
    for name, spec in schema.fields.items():
        attribute = spec.attribute or name
        value = payload.get(attribute, _MISSING)
        if value is _MISSING:
            if spec.required:
                errors[name] = ["Missing data for required field."]
                continue
        elif value is None:
            if not spec.allow_none:
                errors[name] = ["Field may not be null."]
                continue
        else:
            try:
                if isinstance(spec, fields.Number | fields.Boolean):
                    spec.deserialize(value)      # no NaN, no "perhaps": writing would not say
                for validator in spec.validators:
                    validator(value)
            except ValidationError as exc:
                errors[name] = exc.messages
                continue
            nested_errors = _nested_errors(spec, value)
            if nested_errors:
                errors[name] = nested_errors
                continue
        try:
            dumped = spec.serialize(attribute, payload)
        except (ValidationError, TypeError, ValueError, AttributeError) as exc:
            errors[name] = getattr(exc, "messages", None) or [f"{type(exc).__name__}: {exc}"]
            continue
        if dumped is not missing:
            out[spec.data_key or name] = dumped
    return out


def _nested_errors(spec, value) -> dict:
    errors: dict = {}
    if isinstance(spec, fields.Nested):
        _dump_checked(spec.schema, value, errors)
    elif isinstance(spec, fields.List) and isinstance(spec.inner, fields.Nested):
        for index, item in enumerate(value or ()):
            item_errors: dict = {}
            _dump_checked(spec.inner.schema, item, item_errors)
            if item_errors:
                errors[index] = item_errors
    return errors


_MISSING = object()


def parse_envelope(body, *, handler: str = "") -> Event:
    """Check an incoming message against the envelope and its contract."""
    if not isinstance(body, dict):
        raise ContractError("event body is not a JSON object")
    try:
        env = _envelope_schema.load(body)
    except ValidationError as exc:
        raise ContractError("malformed event envelope", exc.messages) from None
    schema_cls, _version = contract_for(env["source"], env["type"])
    try:
        payload = _loader(schema_cls).load(env["payload"])
    except ValidationError as exc:
        raise ContractError(
            f"payload of {env['source']}.{env['type']} breaks its contract", exc.messages
        ) from None
    return Event(
        event_id=env["event_id"], type=env["type"], version=env["version"],
        source=env["source"], occurred_at=env["occurred_at"], payload=payload,
        handler=handler, raw_payload=env["payload"],
    )


# --- contracts ---------------------------------------------------------------------------------
# directory: the organisation (departments, users); other services keep replicas from these.


class DepartmentSnapshot(Schema):
    department_id = fields.UUID(required=True)
    name = fields.String(required=True)
    regions = fields.List(fields.String(), required=True)
    head_user_id = fields.UUID(allow_none=True, load_default=None)


@contract("directory", "department_changed")
class DepartmentChanged(DepartmentSnapshot):
    """A department was created or changed; the payload is its whole current state."""


@contract("directory", "user_changed")
class UserChanged(Schema):
    """A user was created or changed (role, department, extension, mailbox, active); the payload is
    the whole current state, so a consumer can upsert it without reading anything else."""

    user_id = fields.UUID(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    email = fields.String(allow_none=True, load_default=None)
    role = fields.String(required=True, validate=validate.OneOf(
        ["manager", "sales_head", "director", "admin", "integration", "dispatcher", "driver"]))
    department_id = fields.UUID(allow_none=True, load_default=None)
    regions = fields.List(fields.String(), load_default=list)
    extension = fields.String(allow_none=True, load_default=None)
    mailbox = fields.String(allow_none=True, load_default=None)
    active = fields.Boolean(required=True)


@contract("directory", "absence_changed")
class AbsenceChanged(Schema):
    """An absence of a user (vacation, sick leave, ...) was recorded, changed or cancelled; the
    payload is its whole current state. Lead distribution skips people absent on a day."""

    absence_id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ["vacation", "sick_leave", "business_trip", "day_off", "other"]))
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    cancelled = fields.Boolean(load_default=False)


# clients: the client base. Payloads carry ids and the few fields consumers key on; a consumer
# that needs the card asks clients.get_client.


class ClientSnapshot(Schema):
    client_id = fields.UUID(required=True)
    short_name = fields.String(required=True)
    inn = fields.String(allow_none=True, load_default=None)
    kpp = fields.String(allow_none=True, load_default=None)
    region = fields.String(allow_none=True, load_default=None)
    status = fields.String(required=True)
    segment = fields.String(allow_none=True, load_default=None)
    owner_id = fields.UUID(allow_none=True, load_default=None)
    department_id = fields.UUID(allow_none=True, load_default=None)
    phones = fields.List(fields.String(), load_default=list)
    emails = fields.List(fields.String(), load_default=list)
    erp_counterparty_guid = fields.UUID(allow_none=True, load_default=None)
    erp_partner_guid = fields.UUID(allow_none=True, load_default=None)
    changed_by = fields.UUID(allow_none=True, load_default=None)


@contract("clients", "client_created")
class ClientCreated(ClientSnapshot):
    """A client entered the base (by hand, from a lead, an import or the ERP)."""

    source = fields.String(allow_none=True, load_default=None)


@contract("clients", "client_updated")
class ClientUpdated(ClientSnapshot):
    """A client's card changed; ``changed_fields`` names what."""

    changed_fields = fields.List(fields.String(), required=True)


@contract("clients", "client_owner_changed")
class ClientOwnerChanged(Schema):
    """Ownership moved: hand-over, claim from the pool, release to the pool (new owner null),
    arbitration by the sales head, merge, lead distribution giving a released pool client to a
    manager. Deals and tasks of the client follow the new owner."""

    client_id = fields.UUID(required=True)
    previous_owner_id = fields.UUID(allow_none=True, load_default=None)
    new_owner_id = fields.UUID(allow_none=True, load_default=None)
    previous_department_id = fields.UUID(allow_none=True, load_default=None)
    new_department_id = fields.UUID(allow_none=True, load_default=None)
    reason = fields.String(required=True, validate=validate.OneOf(
        ["transfer", "claim", "release", "arbitration", "merge", "import", "distribution"]))
    batch_id = fields.UUID(allow_none=True, load_default=None)
    include_open_deals = fields.Boolean(load_default=True)
    include_open_tasks = fields.Boolean(load_default=True)
    changed_by = fields.UUID(allow_none=True, load_default=None)


@contract("clients", "clients_merged")
class ClientsMerged(Schema):
    """``merged_id`` was a duplicate of ``survivor_id`` and is gone: every reference to it (deals,
    calls, e-mails, ERP links, read models) must now point at the survivor."""

    survivor_id = fields.UUID(required=True)
    merged_id = fields.UUID(required=True)
    changed_by = fields.UUID(allow_none=True, load_default=None)


@contract("clients", "card_reading_alert")
class CardReadingAlert(Schema):
    """A user read far more client cards today than usual: for the sales head's attention."""

    user_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    head_user_id = fields.UUID(allow_none=True, load_default=None)
    day = fields.Date(required=True)
    reads_today = fields.Integer(required=True)
    usual_per_day = fields.Float(required=True)


@contract("clients", "consent_changed")
class ConsentChanged(Schema):
    """A person gave or withdrew a consent (``purpose``: ``processing`` — 152-FZ personal-data
    processing, ``marketing_email``, ``marketing_calls``); the person is keyed by the normalised
    e-mail and/or E.164 phone, ``granted`` is the state from ``at`` on (issue 13, part A)."""

    email = fields.String(allow_none=True, load_default=None)
    phone = fields.String(allow_none=True, load_default=None)
    client_id = fields.UUID(allow_none=True, load_default=None)
    contact_id = fields.UUID(allow_none=True, load_default=None)
    purpose = fields.String(required=True, validate=validate.OneOf(
        ["processing", "marketing_email", "marketing_calls"]))
    granted = fields.Boolean(required=True)
    at = fields.AwareDateTime(required=True)
    source = fields.String(allow_none=True, load_default=None)
    text_version_id = fields.UUID(allow_none=True, load_default=None)


# erp_bridge: posted ERP documents that bear on a client. The bridge resolves the counterparty to a
# CRM client when it can (``client_id``), else passes the 1C counterparty GUID; it emits a newer
# version only (stale versions are dropped at the bridge), and ``*_unposted`` / ``*_deleted`` carry
# the last known header so a consumer can reverse the document's effect without reading anything.


class ErpDocumentLine(Schema):
    """One goods row of an ERP document (Товары/Строка)."""

    product_guid = fields.UUID(allow_none=True, load_default=None)
    product_name = fields.String(load_default="", validate=validate.Length(max=500))
    unit_code = fields.String(allow_none=True, load_default=None)   # OKEI: 055 m², 796 pcs, 168 t
    quantity = fields.Decimal(required=True, places=3, as_string=True, allow_nan=False)
    amount = fields.Decimal(required=True, places=2, as_string=True, allow_nan=False)
    weight_kg = fields.Decimal(allow_none=True, load_default=None, places=3, as_string=True,
                               allow_nan=False)


class ErpDocumentFact(Schema):
    """The header of one ERP document (invoice or shipment) in its current version."""

    document_guid = fields.UUID(required=True)          # 1C Ссылка (Ref_Key)
    document_version = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_id = fields.UUID(allow_none=True, load_default=None)          # null: not matched yet
    counterparty_guid = fields.UUID(allow_none=True, load_default=None)  # 1C Контрагент
    number = fields.String(required=True, validate=validate.Length(max=100))
    document_date = fields.AwareDateTime(required=True)
    amount = fields.Decimal(required=True, places=2, as_string=True, allow_nan=False)
    currency = fields.String(load_default="RUB", dump_default="RUB",
                             validate=validate.Length(equal=3))
    order_guid = fields.UUID(allow_none=True, load_default=None)  # the customer order, if known
    # The bridge's change counter of this document: every new state it emits (a newer version,
    # un-posting, deletion) gets a higher one. Consumers keep the highest they saw, so events
    # that arrive late or twice change nothing.
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    lines = fields.List(fields.Nested(ErpDocumentLine), load_default=list)


@contract("erp_bridge", "erp_invoice_posted")
class ErpInvoicePosted(ErpDocumentFact):
    """An invoice for payment (СчетНаОплатуКлиенту) was posted for the first time."""


@contract("erp_bridge", "erp_invoice_changed")
class ErpInvoiceChanged(ErpDocumentFact):
    """A newer version of a posted invoice: its sum, date or counterparty replace the old ones."""


@contract("erp_bridge", "erp_invoice_unposted")
class ErpInvoiceUnposted(ErpDocumentFact):
    """An invoice was un-posted: its effect is reversed until it is posted again."""


@contract("erp_bridge", "erp_invoice_deleted")
class ErpInvoiceDeleted(ErpDocumentFact):
    """An invoice got a deletion mark or was deleted in 1C: its effect is reversed."""


@contract("erp_bridge", "erp_shipment_posted")
class ErpShipmentPosted(ErpDocumentFact):
    """A shipment (РеализацияТоваровУслуг, the realisation: revenue) was posted for the first
    time."""


@contract("erp_bridge", "erp_shipment_changed")
class ErpShipmentChanged(ErpDocumentFact):
    """A newer version of a posted shipment replaces the old one."""


@contract("erp_bridge", "erp_shipment_unposted")
class ErpShipmentUnposted(ErpDocumentFact):
    """A shipment was un-posted: its effect is reversed until it is posted again."""


@contract("erp_bridge", "erp_shipment_deleted")
class ErpShipmentDeleted(ErpDocumentFact):
    """A shipment got a deletion mark or was deleted in 1C: its effect is reversed."""


@contract("erp_bridge", "erp_order_posted")
class ErpOrderPosted(ErpDocumentFact):
    """A customer order (ЗаказКлиента) was posted for the first time. ``deal_id`` is the CRM deal
    the order was made for when 1C knows it (the CRM format extension's ``crm:Сделка``)."""

    deal_id = fields.UUID(allow_none=True, load_default=None)


@contract("erp_bridge", "erp_order_changed")
class ErpOrderChanged(ErpOrderPosted):
    """A newer version of a posted customer order replaces the old one."""


@contract("erp_bridge", "erp_order_unposted")
class ErpOrderUnposted(ErpOrderPosted):
    """A customer order was un-posted: its effect is reversed until it is posted again."""


@contract("erp_bridge", "erp_order_deleted")
class ErpOrderDeleted(ErpOrderPosted):
    """A customer order got a deletion mark or was deleted in 1C: its effect is reversed."""


class PaymentAllocation(Schema):
    """One row of the payment's breakdown (РасшифровкаПлатежа): how much went to which order."""

    order_guid = fields.UUID(allow_none=True, load_default=None)
    amount = fields.Decimal(required=True, places=2, as_string=True, allow_nan=False)


@contract("erp_bridge", "erp_payment_posted")
class ErpPaymentPosted(ErpDocumentFact):
    """An incoming payment from a client (ПоступлениеБезналичныхДенежныхСредств) was posted.
    ``allocations`` splits ``amount`` over customer orders; a payment without a breakdown but
    with a header ``order_guid`` pays that order with its whole amount."""

    allocations = fields.List(fields.Nested(PaymentAllocation), load_default=list)


@contract("erp_bridge", "erp_payment_changed")
class ErpPaymentChanged(ErpPaymentPosted):
    """A newer version of a posted payment replaces the old one (its breakdown too)."""


@contract("erp_bridge", "erp_payment_unposted")
class ErpPaymentUnposted(ErpPaymentPosted):
    """A payment was un-posted: its effect is reversed until it is posted again."""


@contract("erp_bridge", "erp_payment_deleted")
class ErpPaymentDeleted(ErpPaymentPosted):
    """A payment got a deletion mark or was deleted in 1C: its effect is reversed."""


class ErpContact(Schema):
    """A contact person of a 1C counterparty."""

    guid = fields.UUID(required=True)
    full_name = fields.String(required=True)
    position = fields.String(load_default="")
    phones = fields.List(fields.String(), load_default=list)
    emails = fields.List(fields.String(), load_default=list)


@contract("erp_bridge", "erp_counterparty_upserted")
class ErpCounterpartyUpserted(Schema):
    """A counterparty (with its contact persons) arrived from 1C new or changed. ``client_id`` is
    the CRM client it is linked to (by its 1C GUID, else by INN+KPP), null when none matched yet:
    the clients service then links or creates one by its duplicate rules."""

    counterparty_guid = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    name = fields.String(required=True)
    full_name = fields.String(load_default="")
    inn = fields.String(allow_none=True, load_default=None)
    kpp = fields.String(allow_none=True, load_default=None)
    legal_kind = fields.String(allow_none=True, load_default=None)
    phones = fields.List(fields.String(), load_default=list)
    emails = fields.List(fields.String(), load_default=list)
    addresses = fields.List(fields.String(), load_default=list)
    contacts = fields.List(fields.Nested(ErpContact), load_default=list)
    deletion_mark = fields.Boolean(load_default=False)
    # The counterparty's responsible manager as 1C shows the name ("Иванов Иван Иванович"): the
    # clients service gives a client it creates to the CRM manager of that name.
    manager_name = fields.String(allow_none=True, load_default=None)


@contract("erp_bridge", "erp_message_rejected")
class ErpMessageRejected(Schema):
    """A message from 1C was refused whole and put in quarantine (for the admin's attention)."""

    quarantine_id = fields.Integer(required=True)
    transport = fields.String(required=True)
    sender = fields.String(allow_none=True, load_default=None)
    message_no = fields.Integer(allow_none=True, load_default=None)
    reason = fields.String(required=True)
    field = fields.String(allow_none=True, load_default=None)


# telephony, mail, deals: the facts other services need of calls, e-mails and deals.


@contract("telephony", "call_registered")
class CallRegistered(Schema):
    """A finished call (inbound or outbound, answered or missed), matched to a client and contact
    by number when possible; ``user_id`` is the manager on the extension, null for a queue."""

    call_id = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    contact_id = fields.UUID(allow_none=True, load_default=None)
    user_id = fields.UUID(allow_none=True, load_default=None)
    direction = fields.String(required=True, validate=validate.OneOf(["inbound", "outbound"]))
    answered = fields.Boolean(required=True)
    started_at = fields.AwareDateTime(required=True)
    duration_seconds = fields.Integer(required=True, validate=validate.Range(min=0))
    talk_seconds = fields.Integer(load_default=0, validate=validate.Range(min=0))
    external_number = fields.String(allow_none=True, load_default=None)  # E.164 where known
    department_id = fields.UUID(allow_none=True, load_default=None)   # the queue's department
    deal_id = fields.UUID(allow_none=True, load_default=None)   # when the call was made from one
    recording_url = fields.String(allow_none=True, load_default=None)
    # Optional (issue 13 A): our line (DID) the call came in on or went out from, E.164 where known.
    our_number = fields.String(allow_none=True, load_default=None)


@contract("telephony", "call_ringing")
class CallRinging(Schema):
    """A call rings at one of our extensions now (the screen pop): ``call_key`` is the call's key
    at its PBX (the ``FinishedCall`` key registered later), ``user_id`` the manager on the
    extension, ``client_id`` the client the number was last matched to (null: unknown)."""

    call_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    pbx = fields.String(required=True, validate=validate.OneOf(["asterisk", "mango", "zadarma"]))
    extension = fields.String(required=True)
    user_id = fields.UUID(allow_none=True, load_default=None)
    external_number = fields.String(allow_none=True, load_default=None)  # E.164 where known
    client_id = fields.UUID(allow_none=True, load_default=None)
    direction = fields.String(required=True, validate=validate.OneOf(
        ["inbound", "outbound", "internal"]))
    at = fields.AwareDateTime(required=True)


@contract("mail", "email_registered")
class EmailRegistered(Schema):
    """An e-mail received from or sent to a client (synced from a mailbox or sent from the CRM);
    ``message_id`` is the RFC 5322 Message-ID, ``user_id`` the mailbox's manager."""

    message_id = fields.String(required=True, validate=validate.Length(min=1, max=998))
    client_id = fields.UUID(allow_none=True, load_default=None)
    user_id = fields.UUID(allow_none=True, load_default=None)
    direction = fields.String(required=True, validate=validate.OneOf(["inbound", "outbound"]))
    sent_at = fields.AwareDateTime(required=True)
    subject = fields.String(allow_none=True, load_default=None)
    deal_id = fields.UUID(allow_none=True, load_default=None)   # when sent from a deal
    # Optional, added with the mail service (consumers of version 1 ignore them): the contact
    # person matched by address, the thread (threads merge when a late parent arrives), the
    # mailbox, and the addresses as lower-cased.
    contact_id = fields.UUID(allow_none=True, load_default=None)
    thread_id = fields.UUID(allow_none=True, load_default=None)
    mailbox_id = fields.UUID(allow_none=True, load_default=None)
    from_address = fields.String(allow_none=True, load_default=None)
    to_addresses = fields.List(fields.String(), load_default=list)


@contract("deals", "deal_created")
class DealCreated(Schema):
    """A deal (lead, interest) entered the funnel; ``source`` is how it came (call, email, web,
    manual, campaign, ...)."""

    deal_id = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    owner_id = fields.UUID(required=True)
    created_at = fields.AwareDateTime(required=True)
    source = fields.String(allow_none=True, load_default=None)
    department_id = fields.UUID(allow_none=True, load_default=None)
    region = fields.String(allow_none=True, load_default=None)
    funnel_id = fields.UUID(allow_none=True, load_default=None)
    stage = fields.String(load_default="new")
    amount = fields.Decimal(allow_none=True, load_default=None, places=2, as_string=True,
                            allow_nan=False)
    title = fields.String(load_default="")
    # Optional (issue 13 A): where the lead came from — ``kind`` (web_form, call, email, manual,
    # campaign, import), ``form_key``, ``utm_source`` … ``utm_term``, ``our_number`` (the line
    # called), ``campaign_id``, ``page_url``, ``referrer``; and whether distribution assigned it.
    source_detail = fields.Dict(keys=fields.String(), load_default=dict)
    distributed = fields.Boolean(load_default=False)


_money = {"places": 2, "as_string": True, "allow_nan": False}


@contract("deals", "deal_updated")
class DealUpdated(Schema):
    """A deal's own fields changed (owner, potential, expected close, probability, client);
    ``changed_fields`` names what, the rest is the current state."""

    deal_id = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    owner_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    region = fields.String(allow_none=True, load_default=None)
    amount = fields.Decimal(allow_none=True, load_default=None, **_money)
    expected_close_date = fields.Date(allow_none=True, load_default=None)
    probability = fields.Integer(allow_none=True, load_default=None)
    changed_fields = fields.List(fields.String(), required=True)
    changed_by = fields.UUID(allow_none=True, load_default=None)


@contract("deals", "deal_stage_changed")
class DealStageChanged(Schema):
    """A deal moved from one funnel stage to another: by a person (``user``), by the state of its
    ERP documents (``erp``, naming the document) or by a timer. The ERP sums and the payment
    status are the deal's after the move."""

    deal_id = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    owner_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    region = fields.String(allow_none=True, load_default=None)
    funnel_id = fields.UUID(allow_none=True, load_default=None)
    from_stage = fields.String(allow_none=True, load_default=None)
    to_stage = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    cause = fields.String(required=True, validate=validate.OneOf(["user", "erp", "timer"]))
    changed_by = fields.UUID(allow_none=True, load_default=None)
    document_guid = fields.UUID(allow_none=True, load_default=None)
    lost_reason = fields.String(allow_none=True, load_default=None)
    payment_status = fields.String(load_default="unpaid", validate=validate.OneOf(
        ["unpaid", "partially_paid", "paid"]))
    amount = fields.Decimal(allow_none=True, load_default=None, **_money)
    ordered_amount = fields.Decimal(load_default=0, **_money)
    invoiced_amount = fields.Decimal(load_default=0, **_money)
    paid_amount = fields.Decimal(load_default=0, **_money)
    shipped_amount = fields.Decimal(load_default=0, **_money)


@contract("deals", "deal_stalled")
class DealStalled(Schema):
    """A deal stayed in its stage longer than the stage's limit: the owner got a task, the sales
    head (``head_user_id``) a notification."""

    deal_id = fields.UUID(required=True)
    client_id = fields.UUID(allow_none=True, load_default=None)
    owner_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    head_user_id = fields.UUID(allow_none=True, load_default=None)
    stage = fields.String(required=True)
    stage_entered_at = fields.AwareDateTime(required=True)
    limit_hours = fields.Float(required=True)
    task_id = fields.UUID(allow_none=True, load_default=None)


class TaskSnapshot(Schema):
    task_id = fields.UUID(required=True)
    deal_id = fields.UUID(allow_none=True, load_default=None)
    client_id = fields.UUID(allow_none=True, load_default=None)
    assignee_id = fields.UUID(allow_none=True, load_default=None)   # null: the department queue
    department_id = fields.UUID(allow_none=True, load_default=None)
    kind = fields.String(required=True)       # task, call, meeting, callback
    title = fields.String(required=True)
    due_at = fields.AwareDateTime(allow_none=True, load_default=None)
    source = fields.String(required=True)     # manual, stage, stalled, no_interaction, ...


@contract("deals", "task_created")
class TaskCreated(TaskSnapshot):
    """A task or meeting was created (by hand, from a stage template, or by an auto-reaction)."""


@contract("deals", "task_completed")
class TaskCompleted(TaskSnapshot):
    """A task was done or cancelled (``status``)."""

    status = fields.String(required=True, validate=validate.OneOf(["done", "cancelled"]))
    completed_at = fields.AwareDateTime(required=True)
    completed_by = fields.UUID(allow_none=True, load_default=None)


@contract("deals", "task_overdue")
class TaskOverdue(TaskSnapshot):
    """An open task passed its due time: for the assignee and the sales head
    (``head_user_id``)."""

    head_user_id = fields.UUID(allow_none=True, load_default=None)


# payroll: the sales plans (the deals forecast compares its pipeline with them).


@contract("payroll", "sales_plan_changed")
class SalesPlanChanged(Schema):
    """A manager's plan for a month was set or changed; the payload is the whole plan."""

    user_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    month = fields.Date(required=True)          # the first day of the month
    sales_amount = fields.Decimal(required=True, **_money)
    # Shipments are planned and measured in tonnes (the realisations' weight), not roubles.
    shipments_amount = fields.Decimal(allow_none=True, load_default=None, **_money)
    payments_amount = fields.Decimal(allow_none=True, load_default=None, **_money)
    new_clients = fields.Integer(allow_none=True, load_default=None)
    calls = fields.Integer(allow_none=True, load_default=None)
    meetings = fields.Integer(allow_none=True, load_default=None)


@contract("payroll", "salary_document_changed")
class SalaryDocumentChanged(Schema):
    """A manager's monthly salary document was computed, recomputed, marked stale (its facts
    changed after confirmation), confirmed, approved, returned for correction or exported
    (``action``); ``state`` and ``total`` are the document's after the change."""

    document_id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    month = fields.Date(required=True)          # the first day of the month
    state = fields.String(required=True, validate=validate.OneOf(
        ["draft", "confirmed", "approved", "exported"]))
    action = fields.String(required=True, validate=validate.OneOf(
        ["computed", "stale", "confirmed", "approved", "returned", "exported"]))
    stale = fields.Boolean(load_default=False)
    total = fields.Decimal(required=True, **_money)
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    changed_by = fields.UUID(allow_none=True, load_default=None)


class KpiFigure(Schema):
    """One KPI of a manager's month: plan (null: none set), fact, fulfilment in % (null: no
    plan). Money KPIs (sales, payments) in roubles, shipments in tonnes, the rest counts."""

    kpi = fields.String(required=True, validate=validate.OneOf(
        ["sales", "shipments", "payments", "new_clients", "calls", "meetings"]))
    title = fields.String(load_default="")
    plan = fields.Decimal(allow_none=True, load_default=None, as_string=True, allow_nan=False)
    fact = fields.Decimal(required=True, as_string=True, allow_nan=False)
    fulfilment = fields.Decimal(allow_none=True, load_default=None, **_money)


class KpiNextTier(Schema):
    """What if: how much more of ``kpi`` lifts the weighted fulfilment to the next bonus tier
    (``from_pct``, ``rate`` %), and the month's pay then."""

    kpi = fields.String(required=True)
    title = fields.String(load_default="")
    from_pct = fields.Decimal(required=True, as_string=True, allow_nan=False)
    rate = fields.Decimal(required=True, as_string=True, allow_nan=False)
    more_needed = fields.Decimal(required=True, **_money)
    pay_then = fields.Decimal(required=True, **_money)


@contract("payroll", "kpi_changed")
class KpiChanged(Schema):
    """A manager's KPI figures for a month changed (facts applied from the ERP, calls, meetings,
    new clients, or a new plan): the whole desk widget, pushed live to the manager's browser.
    ``projected_pay`` is the month's pay so far (null: no pay scheme for the position)."""

    user_id = fields.UUID(required=True)
    department_id = fields.UUID(allow_none=True, load_default=None)
    month = fields.Date(required=True)          # the first day of the month (Moscow)
    kpis = fields.List(fields.Nested(KpiFigure), required=True)
    weighted_fulfilment = fields.Decimal(allow_none=True, load_default=None, **_money)
    projected_pay = fields.Decimal(allow_none=True, load_default=None, **_money)
    next_tier = fields.Nested(KpiNextTier, allow_none=True, load_default=None)
    cause = fields.String(load_default="", validate=validate.Length(max=100))


# clients: reactivation campaigns.


@contract("clients", "reactivation_call_requested")
class ReactivationCallRequested(Schema):
    """A reactivation campaign asks the client's owner to call the client back by ``due_at`` (one
    event per target; the deals service turns it into a call-back task). ``owner_id`` null: the
    client is in the pool of ``department_id``, the task goes to that department's queue."""

    campaign_id = fields.UUID(required=True)
    campaign_name = fields.String(required=True)
    client_id = fields.UUID(required=True)
    owner_id = fields.UUID(allow_none=True, load_default=None)
    department_id = fields.UUID(allow_none=True, load_default=None)
    due_at = fields.AwareDateTime(required=True)
    requested_by = fields.UUID(allow_none=True, load_default=None)


# clients + mail: campaigns (issue 13 B). E-mail goes out through the mail service at a set rate;
# what happened to each recipient comes back as mail events.

CAMPAIGN_GOALS = ["reactivation", "new_product", "event"]
CAMPAIGN_STATES = ["draft", "scheduled", "running", "finished", "cancelled"]


@contract("clients", "campaign_changed")
class CampaignChanged(Schema):
    """A campaign was created or changed (state, budget, dates): the reports service keeps its
    budget as the cost of the leads and deals that name it (``utm_campaign`` is the UTM value web
    forms carry for it, if any)."""

    campaign_id = fields.UUID(required=True)
    name = fields.String(required=True)
    goal = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_GOALS))
    state = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_STATES))
    budget = fields.Decimal(allow_none=True, load_default=None, places=2, as_string=True,
                            allow_nan=False)
    starts_at = fields.AwareDateTime(allow_none=True, load_default=None)
    ends_at = fields.AwareDateTime(allow_none=True, load_default=None)
    utm_campaign = fields.String(allow_none=True, load_default=None)
    changed_at = fields.AwareDateTime(required=True)


@contract("clients", "campaign_email_requested")
class CampaignEmailRequested(Schema):
    """Send one campaign e-mail (already rendered) from ``mailbox_id`` to ``email``; the mail
    service queues it and sends at ``CAMPAIGN_SEND_RATE_PER_MINUTE``. ``unsubscribe_url`` goes into
    ``List-Unsubscribe`` (with ``List-Unsubscribe-Post``, RFC 8058) and the body."""

    campaign_id = fields.UUID(required=True)
    recipient_id = fields.UUID(required=True)
    mailbox_id = fields.UUID(required=True)
    email = fields.String(required=True, validate=validate.Length(min=3, max=320))
    subject = fields.String(required=True, validate=validate.Length(max=900))
    body = fields.String(required=True)
    unsubscribe_url = fields.String(required=True)


@contract("mail", "campaign_email_sent")
class CampaignEmailSent(Schema):
    """A campaign e-mail was accepted by the mailbox's SMTP server."""

    campaign_id = fields.UUID(required=True)
    recipient_id = fields.UUID(required=True)
    email = fields.String(required=True)
    message_id = fields.String(required=True)
    sent_at = fields.AwareDateTime(required=True)


@contract("mail", "campaign_email_bounced")
class CampaignEmailBounced(Schema):
    """A campaign e-mail bounced: a delivery status notification with a permanent failure
    (``Action: failed``, status 5.x.x) came back to the campaign mailbox, or SMTP refused the
    recipient outright. ``status`` is the DSN status code when there was one."""

    campaign_id = fields.UUID(required=True)
    recipient_id = fields.UUID(required=True)
    email = fields.String(required=True)
    status = fields.String(allow_none=True, load_default=None)
    reason = fields.String(load_default="")
    bounced_at = fields.AwareDateTime(required=True)


# logistics: delivery of shipments (transport orders carried by trips). One transport order is one
# stop of a trip; ``sequence`` grows with every change of the order, so a consumer keeps the
# highest it saw and late or repeated events change nothing.

DELIVERY_STATUSES = ["new", "planned", "loading", "in_transit", "delivered", "cancelled"]


class DeliverySnapshot(Schema):
    transport_order_id = fields.UUID(required=True)
    number = fields.String(required=True)
    sequence = fields.Integer(required=True, validate=validate.Range(min=1))
    trip_id = fields.UUID(allow_none=True, load_default=None)
    trip_number = fields.String(allow_none=True, load_default=None)
    deal_id = fields.UUID(allow_none=True, load_default=None)    # null: deals finds it (below)
    client_id = fields.UUID(allow_none=True, load_default=None)
    shipment_guid = fields.UUID(allow_none=True, load_default=None)  # the ERP shipment
    order_guid = fields.UUID(allow_none=True, load_default=None)     # its customer order
    region = fields.String(allow_none=True, load_default=None)
    window_start = fields.AwareDateTime(allow_none=True, load_default=None)
    window_end = fields.AwareDateTime(allow_none=True, load_default=None)
    planned_at = fields.AwareDateTime(allow_none=True, load_default=None)
    weight_kg = fields.Decimal(allow_none=True, load_default=None, places=3, as_string=True,
                               allow_nan=False)
    freight_cost = fields.Decimal(allow_none=True, load_default=None, **_money)
    vehicle_plate = fields.String(allow_none=True, load_default=None)
    driver_name = fields.String(allow_none=True, load_default=None)


@contract("logistics", "delivery_status_changed")
class DeliveryStatusChanged(DeliverySnapshot):
    """A transport order (one stop of a trip) changed status: ``new`` (to plan), ``planned``
    (on a trip), ``loading``, ``in_transit``, ``delivered``, ``cancelled`` (by the dispatcher,
    with its trip, or because its ERP shipment was un-posted or deleted). ``at`` is when it
    happened; ``loaded_at``/``departed_at``/``delivered_at`` the actual times so far;
    ``freight_cost`` the order's share of its trip's cost (by weight). ``deal_id`` is set when
    logistics knows the deal (a hand-made order naming it, or learned from ``deal_stage_changed``
    naming the shipment); otherwise the deals service finds the deal by ``shipment_guid`` /
    ``order_guid`` among its own ERP documents."""

    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    previous_status = fields.String(allow_none=True, load_default=None)
    at = fields.AwareDateTime(required=True)
    loaded_at = fields.AwareDateTime(allow_none=True, load_default=None)
    departed_at = fields.AwareDateTime(allow_none=True, load_default=None)
    delivered_at = fields.AwareDateTime(allow_none=True, load_default=None)
    on_time = fields.Boolean(allow_none=True, load_default=None)     # delivered: by window_end
    reason = fields.String(allow_none=True, load_default=None)
    changed_by = fields.UUID(allow_none=True, load_default=None)


@contract("logistics", "delivery_late")
class DeliveryLate(DeliverySnapshot):
    """A transport order's delivery window ended without delivery (raised once per order by the
    lateness scan): the deal's owner gets a task."""

    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    detected_at = fields.AwareDateTime(required=True)
