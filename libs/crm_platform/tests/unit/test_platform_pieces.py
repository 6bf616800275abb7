from datetime import UTC, datetime, timedelta

import pytest
from nameko.exceptions import RemoteError, deserialize, registry, serialize

from crm_platform.clock import Clock
from crm_platform.config import service_db_url
from crm_platform.consumer import parse_delays, retry_queue
from crm_platform.errors import Conflict, Forbidden, ValidationFailed, register_remote_errors
from crm_platform.identity import Identity, require_role
from crm_platform.outbox import ConfirmingPublisher


def test_the_clock_is_aware_utc_and_moves_only_when_told():
    clock = Clock()
    assert clock.now().tzinfo is not None
    moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    clock.travel_to(moment)
    assert clock.now() == moment
    clock.advance(timedelta(days=31))
    assert clock.now() == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_clock_refuses_naive_times():
    with pytest.raises(ValueError):
        Clock().travel_to(datetime(2026, 1, 1))


def test_the_clock_can_run_shifted():
    clock = Clock()
    clock.travel_to(datetime.now(UTC) + timedelta(days=10), freeze=False)
    assert timedelta(days=9) < clock.now() - datetime.now(UTC) < timedelta(days=11)


def test_identity_travels_through_the_rpc_context():
    identity = Identity(user_id="u1", role="sales_head", username="head.ural",
                        department_id="d1", regions=("RU-SVE", "RU-CHE"))
    context = identity.to_context()
    assert context["regions"] == ["RU-SVE", "RU-CHE"]
    assert Identity.from_context(context) == identity
    assert "department_id" not in Identity(user_id="u2", role="director").to_context()


def test_an_unknown_role_is_not_an_identity():
    from crm_platform.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        Identity(user_id="u1", role="boss")


def test_require_role_names_the_roles_needed():
    manager = Identity(user_id="u1", role="manager")
    assert require_role(manager, "manager", "sales_head") is manager
    with pytest.raises(Forbidden) as caught:
        require_role(manager, "admin")
    assert caught.value.extra == {"required_roles": ["admin"], "role": "manager"}


def test_domain_errors_cross_the_wire_with_their_fields():
    register_remote_errors()
    try:
        error = ValidationFailed("bad", fields={"inn": ["контрольная сумма"]})
        rebuilt = deserialize(serialize(error))
        assert isinstance(rebuilt, ValidationFailed)
        assert (rebuilt.detail, rebuilt.fields, rebuilt.status) == (
            "bad", {"inn": ["контрольная сумма"]}, 422)
        rebuilt = deserialize(serialize(Conflict("taken", code="client_owned",
                                                 extra={"owner": "Петров"})))
        assert (rebuilt.code, rebuilt.extra, rebuilt.status) == (
            "client_owned", {"owner": "Петров"}, 409)
    finally:
        for key in [k for k in registry if k.startswith("crm_platform.errors.")]:
            del registry[key]
    assert isinstance(deserialize(serialize(Conflict("x"))), RemoteError)


def test_retry_delays_come_from_config():
    assert parse_delays(None) == (1_000, 5_000, 30_000, 120_000, 600_000)
    assert parse_delays("100, 200") == (100, 200)
    assert parse_delays([5]) == (5,)


def test_a_retry_queue_returns_messages_to_their_queue_after_its_delay():
    queue = retry_queue(5000)
    assert queue.name == "crm.retry.5000"
    assert queue.exchange.type == "fanout"
    assert queue.queue_arguments == {"x-message-ttl": 5000, "x-dead-letter-exchange": ""}


def test_publisher_confirms_are_settled_singly_and_in_bulk():
    publisher = ConfirmingPublisher("amqp://unused", "test")
    publisher._unconfirmed = {1, 2, 3, 4, 5}
    publisher._on_ack(2, multiple=True)
    assert publisher._unconfirmed == {3, 4, 5}
    publisher._on_ack(4, multiple=False)
    assert publisher._unconfirmed == {3, 5}
    publisher._on_nack(5, multiple=True)
    assert publisher._unconfirmed == set() and publisher._nacked == {3, 5}


def test_each_service_has_its_own_database_by_default(monkeypatch):
    monkeypatch.delenv("CRM_DB_URL", raising=False)
    monkeypatch.delenv("CRM_CLIENTS_DB_URL", raising=False)
    assert service_db_url("clients").endswith("@127.0.0.1:5432/crm_clients")
    assert service_db_url("clients").startswith("postgresql+psycopg2://crm_clients:")
    monkeypatch.setenv("CRM_CLIENTS_DB_URL", "postgresql+psycopg2://x@db/clients")
    assert service_db_url("clients") == "postgresql+psycopg2://x@db/clients"
