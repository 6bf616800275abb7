"""Facts from other services reach the client: ERP invoices and shipments (last invoice, dormant ->
active and back), calls and e-mails (last interaction), delivered for real through RabbitMQ."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange

from crm_platform.clock import utcnow
from crm_platform.contracts import make_envelope
from crm_platform.deadletters import list_dead_letters
from crm_platform.observability import EVENTS_CONSUMED
from crm_platform.testing import wait_for
from services.clients.domain.normalize import name_key
from services.clients.models import clients, erp_documents

pytestmark = pytest.mark.integration


# -- helpers (also used by test_segments and test_exports) -----------------------------------------


def add_client(org, short_name, owner="m.ural.1", *, pool_of=None, status="active",
               created_days_ago=10, **fields) -> str:
    """A client row as the service would have it, written directly (any age, any status).
    ``owner=None`` with ``pool_of="ural"``: in that department's pool."""
    now = utcnow()
    created = now - timedelta(days=created_days_ago)
    if owner is not None:
        person = org.people[owner]
        owner_id, department_id = person["user_id"], person.get("department_id")
    else:
        owner_id, department_id = None, org.departments[pool_of] if pool_of else None
    client_id = uuid.uuid4()
    with org.engine.begin() as conn:
        conn.execute(sa.insert(clients).values(
            id=client_id, short_name=short_name, name_key=name_key(short_name), status=status,
            owner_id=owner_id, department_id=department_id,
            owned_since=created if owner_id else None, created_at=created, updated_at=created,
            **fields))
    return str(client_id)


def add_document(org, client_id, kind, amount, days_ago, active=True) -> str:
    guid = uuid.uuid4()
    with org.engine.begin() as conn:
        conn.execute(sa.insert(erp_documents).values(
            guid=guid, client_id=client_id, kind=kind, amount=Decimal(str(amount)),
            doc_date=utcnow() - timedelta(days=days_ago), active=active))
    return str(guid)


def publish(rabbit_config, source, event_type, payload, envelope=None) -> dict:
    """Publish an event to ``<source>.events`` as the producing service's relay would."""
    envelope = envelope or make_envelope(source, event_type, payload)
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        conn.Producer().publish(
            json.dumps(envelope), exchange=Exchange(f"{source}.events", "topic", durable=True),
            routing_key=event_type, content_type="application/json", declare=[],
            delivery_mode=2)
    return envelope


def handled(org, envelope) -> bool:
    return bool(org.scalar("SELECT count(*) FROM processed_events WHERE event_id = :e",
                           e=envelope["event_id"]))


def deliver(rabbit_config, org, source, event_type, payload) -> dict:
    """Publish and wait until the service has handled it."""
    envelope = publish(rabbit_config, source, event_type, payload)
    wait_for(lambda: handled(org, envelope), message=f"{event_type} to be handled")
    return envelope


def document(client_id=None, *, guid=None, version="1", days_ago=1, amount="1000.00", **extra):
    return {"document_guid": guid or uuid.uuid4(), "document_version": version, "revision": 1,
            "client_id": client_id, "counterparty_guid": None, "number": "УТ-000123",
            "document_date": utcnow() - timedelta(days=days_ago), "amount": Decimal(amount),
            **extra}


def outbox_events(org, event_type, client_id=None):
    rows = org.rows("SELECT envelope FROM outbox WHERE type = :t ORDER BY id", t=event_type)
    payloads = [r["envelope"]["payload"] for r in rows]
    return [p for p in payloads if client_id is None or p.get("client_id") == client_id]


def client(org, client_id):
    return org.rows("SELECT * FROM clients WHERE id = :c", c=client_id)[0]


# -- invoices and the dormant rule -----------------------------------------------------------------


def test_a_new_invoice_wakes_a_dormant_client_and_unposting_puts_it_back(svc, org,
                                                                         rabbit_config):
    client_id = add_client(org, "Кровля-Урал", status="dormant", created_days_ago=2000)
    add_document(org, client_id, "invoice", "500.00", days_ago=900)
    guid = uuid.uuid4()

    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
            document(client_id, guid=guid, days_ago=3, amount="125000.50"))

    row = client(org, client_id)
    assert row["status"] == "active"
    assert abs((utcnow() - timedelta(days=3)) - row["last_invoice_at"]) < timedelta(seconds=5)
    doc = org.rows("SELECT * FROM erp_documents WHERE guid = :g", g=guid)[0]
    assert doc["kind"] == "invoice" and doc["active"] and doc["amount"] == Decimal("125000.50")
    [event] = outbox_events(org, "client_updated", client_id)
    assert event["status"] == "active" and event["changed_fields"] == ["status"]
    assert org.scalar("SELECT details->>'to' FROM audit_log WHERE action = 'status_auto' "
                      "AND client_id = :c", c=client_id) == "active"

    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_unposted",
            document(client_id, guid=guid, version="2", days_ago=3, amount="125000.50"))

    row = client(org, client_id)
    assert row["status"] == "dormant"
    assert row["last_invoice_at"] < utcnow() - timedelta(days=800)
    assert org.scalar("SELECT active FROM erp_documents WHERE guid = :g", g=guid) is False
    assert [e["status"] for e in outbox_events(org, "client_updated", client_id)] == \
        ["active", "dormant"]


def test_a_changed_version_replaces_sum_and_date(svc, org, rabbit_config):
    client_id = add_client(org, "Профлист-Сервис")
    guid = uuid.uuid4()
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
            document(client_id, guid=guid, days_ago=10, amount="100.00"))
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_changed",
            document(client_id, guid=guid, version="2", days_ago=2, amount="250.00"))

    [doc] = org.rows("SELECT * FROM erp_documents")
    assert doc["amount"] == Decimal("250.00") and doc["active"]
    assert abs(doc["doc_date"] - (utcnow() - timedelta(days=2))) < timedelta(seconds=5)
    assert client(org, client_id)["last_invoice_at"] == doc["doc_date"]
    assert outbox_events(org, "client_updated") == []  # active stayed active: no event


def test_a_deleted_invoice_no_longer_counts(svc, org, rabbit_config):
    client_id = add_client(org, "Металлосклад")
    guid = uuid.uuid4()
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
            document(client_id, guid=guid, days_ago=5))
    assert client(org, client_id)["last_invoice_at"] is not None

    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_deleted",
            document(client_id, guid=guid, version="2", days_ago=5))
    assert client(org, client_id)["last_invoice_at"] is None
    assert org.scalar("SELECT active FROM erp_documents WHERE guid = :g", g=guid) is False
    # created 10 days ago: too young to be dormant without invoices
    assert client(org, client_id)["status"] == "active"


def test_the_same_event_twice_changes_nothing(svc, org, rabbit_config):
    client_id = add_client(org, "Стальной двор")
    guid = uuid.uuid4()
    posted = deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
                     document(client_id, guid=guid, days_ago=1))
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_unposted",
            document(client_id, guid=guid, version="2", days_ago=1))
    handler = "clients.handle_erp_invoice_posted"
    duplicates = EVENTS_CONSUMED.labels("clients", handler, "duplicate")._value.get()

    publish(rabbit_config, "erp_bridge", "erp_invoice_posted", None, envelope=posted)  # redelivery

    wait_for(lambda: EVENTS_CONSUMED.labels("clients", handler, "duplicate")._value.get()
             > duplicates, message="the duplicate to be recognised")
    assert org.scalar("SELECT active FROM erp_documents WHERE guid = :g", g=guid) is False
    assert client(org, client_id)["last_invoice_at"] is None
    assert org.scalar("SELECT count(*) FROM processed_events WHERE event_id = :e",
                      e=posted["event_id"]) == 1


def test_a_potential_client_stays_potential_on_a_shipment_and_turns_active_on_an_invoice(
        svc, org, rabbit_config):
    client_id = add_client(org, "Новый Кровельщик", status="potential", created_days_ago=1000)
    deliver(rabbit_config, org, "erp_bridge", "erp_shipment_posted",
            document(client_id, days_ago=1, amount="77.70"))
    row = client(org, client_id)
    assert row["status"] == "potential" and row["last_invoice_at"] is None
    assert org.scalar("SELECT kind FROM erp_documents") == "shipment"

    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted", document(client_id))
    assert client(org, client_id)["status"] == "active"


def test_a_lost_client_is_left_to_people(svc, org, rabbit_config):
    client_id = add_client(org, "Бывший партнёр", status="lost", created_days_ago=1000)
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted", document(client_id))
    row = client(org, client_id)
    assert row["status"] == "lost" and row["last_invoice_at"] is not None


def test_a_document_without_client_id_is_matched_by_counterparty(svc, org, rabbit_config):
    counterparty = uuid.uuid4()
    client_id = add_client(org, "Контрагент из 1С", erp_counterparty_guid=counterparty)
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
            document(None, counterparty_guid=counterparty))
    assert str(org.scalar("SELECT client_id FROM erp_documents")) == client_id


def test_a_document_of_an_unknown_client_is_acknowledged_and_ignored(svc, org, rabbit_config):
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted",
            document(uuid.uuid4(), counterparty_guid=uuid.uuid4()))
    assert org.scalar("SELECT count(*) FROM erp_documents") == 0
    assert list_dead_letters(rabbit_config["AMQP_URI"], "clients") == []


def test_a_document_of_a_merged_client_goes_to_the_survivor(svc, org, rabbit_config):
    survivor = add_client(org, "Выживший")
    merged = add_client(org, "Дубль выжившего", merged_into=uuid.UUID(survivor))
    deliver(rabbit_config, org, "erp_bridge", "erp_invoice_posted", document(merged))
    assert str(org.scalar("SELECT client_id FROM erp_documents")) == survivor
    assert client(org, survivor)["last_invoice_at"] is not None


# -- calls and e-mails ---------------------------------------------------------------------------


def call(client_id, user_id, *, minutes_ago=5, answered=True, **extra):
    return {"call_id": uuid.uuid4(), "client_id": client_id, "contact_id": None,
            "user_id": user_id, "direction": "outbound", "answered": answered,
            "started_at": utcnow() - timedelta(minutes=minutes_ago), "duration_seconds": 60,
            **extra}


def test_calls_move_the_last_interaction_and_the_owners_own(svc, org, rabbit_config):
    client_id = add_client(org, "Звонкий клиент")
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(client_id, org.id("m.ural.2"), minutes_ago=60))
    row = client(org, client_id)
    assert row["last_interaction_at"] is not None and row["last_owner_interaction_at"] is None

    deliver(rabbit_config, org, "telephony", "call_registered",
            call(client_id, org.id("m.ural.1"), minutes_ago=30))
    row = client(org, client_id)
    assert abs(row["last_owner_interaction_at"] - (utcnow() - timedelta(minutes=30))) \
        < timedelta(seconds=5)
    assert row["last_interaction_at"] == row["last_owner_interaction_at"]

    # an older call arriving late moves nothing back; a missed call is no interaction
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(client_id, org.id("m.ural.1"), minutes_ago=600))
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(client_id, org.id("m.ural.1"), minutes_ago=1, answered=False))
    assert client(org, client_id)["last_owner_interaction_at"] == row["last_owner_interaction_at"]


def test_a_call_matched_only_to_a_contact_finds_its_client(svc, org, rabbit_config):
    created = svc.create_client({"short_name": "ООО «Контактный»"},
                                contacts=[{"full_name": "Сидоров Сидор"}])["client"]
    contact_id = created["contacts"][0]["id"]
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(None, None, contact_id=uuid.UUID(contact_id), direction="inbound"))
    assert client(org, created["id"])["last_interaction_at"] is not None


def test_emails_count_as_interactions(svc, org, rabbit_config):
    client_id = add_client(org, "Почтовый клиент")
    deliver(rabbit_config, org, "mail", "email_registered", {
        "message_id": "<a1@mail.example>", "client_id": client_id,
        "user_id": org.id("m.ural.1"), "direction": "inbound",
        "sent_at": utcnow() - timedelta(hours=1)})
    row = client(org, client_id)
    assert row["last_interaction_at"] is not None
    assert row["last_owner_interaction_at"] == row["last_interaction_at"]

    deliver(rabbit_config, org, "mail", "email_registered", {
        "message_id": "<a2@mail.example>", "client_id": None, "user_id": None,
        "direction": "outbound", "sent_at": utcnow()})  # unmatched: nothing to do
    assert client(org, client_id)["last_interaction_at"] == row["last_interaction_at"]


def test_an_owners_call_keeps_a_reserved_lead_from_release(svc, org, rabbit_config):
    client_id = add_client(org, "Забытый лид", status="potential", created_days_ago=40)
    deliver(rabbit_config, org, "telephony", "call_registered",
            call(client_id, org.id("m.ural.1")))
    svc.call("release_forgotten_clients", as_user=None)
    assert client(org, client_id)["owner_id"] is not None
