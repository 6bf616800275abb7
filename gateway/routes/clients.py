"""Client base routes of the gateway (/api/v1/clients...): a mixin of ``GatewayService``.

The gateway only maps HTTP to the clients service's RPCs: the caller's identity travels in the RPC
context and the service decides who may see and change what (403), refuses duplicates (409) and
checks INN, KPP, phones and e-mails (422 naming the fields).
"""

from __future__ import annotations

import json
import uuid

from werkzeug.wrappers import Response

from crm_platform.errors import ValidationFailed

from ..api import ApiRpcProxy, api, parse_if_match
from ..schemas_clients import (
    ClientAuditEntrySchema,
    ClientAuditQuery,
    ClientCardSchema,
    ClientContactCreateSchema,
    ClientContactSchema,
    ClientContactUpdateSchema,
    ClientCreatedSchema,
    ClientCreateSchema,
    ClientListQuery,
    ClientOwnerSchema,
    ClientPageSchema,
    ClientUpdateSchema,
    DuplicateCandidateSchema,
    DuplicateMatchSchema,
    OwnershipPeriodSchema,
)

TAGS = ["clients"]


def _plain(value):
    """UUIDs as strings: RPC payloads are JSON."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def card_response(card: dict, status: int = 200) -> Response:
    """A card with its version as the ETag, for a later ``If-Match``."""
    body = ClientCardSchema().dump(card)
    response = Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")
    if card.get("version") is not None:
        response.headers["ETag"] = f'"{card["version"]}"'
    return response


def expected_version(request, body: dict) -> int | None:
    """An optional version (``If-Match`` or ``expected_version``) for actions that are not
    updates (a stage move); updates declare ``@api(..., versioned=True)`` and must send one."""
    header = parse_if_match(request.headers.get("If-Match"))
    given = body.get("expected_version")
    if header is not None and given is not None and header != given:
        raise ValidationFailed("Версия в If-Match и в теле запроса различаются", fields={
            "If-Match": [f"{header} ≠ expected_version {given}"]})
    return header if header is not None else given


class ClientRoutes:
    clients_rpc = ApiRpcProxy("clients")

    @api("POST", "/api/v1/clients/duplicates", body=DuplicateCandidateSchema,
         response=DuplicateMatchSchema, many=True,
         summary="Поиск дублей: похожие клиенты с причиной и ответственным", tags=TAGS)
    def find_client_duplicates(self, request, body):
        """Ranked matches for a would-be client (any of name, INN, KPP, phones, e-mails, contacts):
        each with its reasons, whether it blocks creation, and its owner and department."""
        return self.clients_rpc.find_duplicates(_plain(body))

    @api("POST", "/api/v1/clients", body=ClientCreateSchema, response=ClientCreatedSchema,
         status=201, other_statuses=(200,), idempotent=True,
         summary="Завести клиента (с проверкой дублей)", tags=TAGS)
    def create_client(self, request, body):
        """201 with ``created: true`` for a new client. A duplicate of one's own client is not
        created again: 200 with ``created: false`` and the existing card. A duplicate of another
        manager's client is refused: 409 ``client_owned`` naming the owner and the department
        (``client_in_pool`` when it waits in a pool); a sales head may pass ``override``."""
        data = _plain(body)
        contacts = data.pop("contacts", None) or []
        owner_id = data.pop("owner_id", None)
        override = bool(data.pop("override", False))
        result = self.clients_rpc.create_client(data, contacts=contacts, owner_id=owner_id,
                                                override=override)
        return (201 if result["created"] else 200), result

    @api("GET", "/api/v1/clients", query=ClientListQuery, response=ClientPageSchema,
         summary="Клиенты (свои, пул отдела, отдел или все — по роли)", tags=TAGS)
    def list_clients(self, request, query):
        """Clients the caller may see, without contacts, newest first unless ``sort``; pass
        ``next_cursor`` as ``cursor`` for the next page (null: the last one)."""
        filters = _plain({k: v for k, v in query.items()
                          if k not in ("limit", "cursor", "sort")})
        return self.clients_rpc.list_clients(filters, limit=query["limit"],
                                             cursor=query.get("cursor"), sort=query["sort"])

    @api("GET", "/api/v1/clients/<uuid:client_id>", response=ClientCardSchema,
         etag=True, summary="Карточка клиента с контактами", tags=TAGS)
    def get_client(self, request, client_id):
        """The card with contacts; the read is written to the audit log. ``ETag`` is the card's
        version."""
        return card_response(self.clients_rpc.get_client(str(client_id)))

    @api("PATCH", "/api/v1/clients/<uuid:client_id>", body=ClientUpdateSchema,
         response=ClientCardSchema, versioned=True, summary="Изменить карточку клиента",
         tags=TAGS)
    def update_client(self, request, client_id, body, version):
        """Only the given fields change. ``If-Match`` (the card's ``ETag``) or
        ``expected_version`` is required (428 without); an edit of a card someone changed
        meanwhile is refused: 412 ``precondition_failed``."""
        changes = _plain({k: v for k, v in body.items() if k != "expected_version"})
        return card_response(self.clients_rpc.update_client(
            str(client_id), changes, expected_version=version))

    @api("POST", "/api/v1/clients/<uuid:client_id>/contacts", body=ClientContactCreateSchema,
         response=ClientContactSchema, status=201, idempotent=True,
         summary="Добавить контактное лицо",
         tags=TAGS)
    def add_client_contact(self, request, client_id, body):
        """A contact's phones and e-mails must not belong to another client (409)."""
        return 201, self.clients_rpc.add_contact(str(client_id), _plain(body))

    @api("PATCH", "/api/v1/contacts/<uuid:contact_id>", body=ClientContactUpdateSchema,
         response=ClientContactSchema, summary="Изменить контактное лицо", tags=TAGS)
    def update_client_contact(self, request, contact_id, body):
        return self.clients_rpc.update_contact(str(contact_id), _plain(body))

    @api("POST", "/api/v1/clients/<uuid:client_id>/claim", response=ClientCardSchema,
         summary="Взять клиента из общего пула в работу", tags=TAGS)
    def claim_client(self, request, client_id):
        """Two managers claiming at once: exactly one gets the client, the other 409
        ``already_claimed``."""
        return card_response(self.clients_rpc.claim_client(str(client_id)))

    @api("PUT", "/api/v1/clients/<uuid:client_id>/owner", body=ClientOwnerSchema,
         response=ClientCardSchema,
         summary="Назначить ответственного или вернуть в пул (руководитель отдела)", tags=TAGS)
    def reassign_client(self, request, client_id, body):
        """The sales head's arbitration: give the client to a manager of the department, or back
        to the pool with ``owner_id: null``."""
        owner_id = body["owner_id"]
        return card_response(self.clients_rpc.reassign_client(
            str(client_id), str(owner_id) if owner_id else None))

    @api("GET", "/api/v1/clients/<uuid:client_id>/ownership", response=OwnershipPeriodSchema,
         many=True, summary="История ответственных за клиента", tags=TAGS)
    def client_ownership(self, request, client_id):
        """Who owned the client when, and why it moved, oldest first."""
        return self.clients_rpc.ownership_history(str(client_id))

    @api("GET", "/api/v1/clients/<uuid:client_id>/audit", query=ClientAuditQuery,
         response=ClientAuditEntrySchema, many=True,
         summary="Журнал доступа и изменений клиента (руководитель отдела, директор)",
         tags=TAGS)
    def client_audit(self, request, client_id, query):
        """Every read, change and transfer of the client, newest first."""
        return self.clients_rpc.client_audit(str(client_id), limit=query["limit"])
