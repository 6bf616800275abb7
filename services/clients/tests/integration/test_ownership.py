"""Ownership as a reservation: release of forgotten leads to the pool, the atomic claim, and the
sales head's arbitration, against the real database and broker."""

from datetime import timedelta

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from crm_platform.clock import clock, utcnow
from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from crm_platform.identity import IDENTITY_CONTEXT_KEY

pytestmark = pytest.mark.integration


def lead(svc, name, as_user="m.ural.1", **fields):
    return svc.call("create_client", {"short_name": name, **fields}, as_user=as_user)["client"]


def test_a_lead_nobody_works_is_released_to_the_pool(svc, org):
    forgotten = lead(svc, "Кровля-Сервис")
    active = lead(svc, "Металл-Инвест", status="active")
    clock.travel_to(utcnow() + timedelta(days=31))

    svc.call("release_forgotten_clients", as_user=None)  # the hourly timer

    card = svc.call("get_client", forgotten["id"], as_user="head.ural")
    assert card["owner_id"] is None and card["department_name"] == "Уральский отдел"
    assert svc.call("get_client", active["id"], as_user="head.ural")["owner_id"] == \
        org.id("m.ural.1")  # active clients are not reservations
    events = org.rows("SELECT envelope FROM outbox WHERE type = 'client_owner_changed'")
    [released] = [e["envelope"]["payload"] for e in events]
    assert released["reason"] == "release"
    assert released["previous_owner_id"] == org.id("m.ural.1")
    assert released["new_owner_id"] is None
    history = svc.call("ownership_history", forgotten["id"], as_user="head.ural")
    assert [h["reason"] for h in history] == ["created", "release"]
    assert history[0]["until"] == history[1]["since"]


def test_a_touched_lead_stays(svc, org):
    kept = lead(svc, "Профнастил Урал")
    clock.travel_to(utcnow() + timedelta(days=29))
    svc.call("release_forgotten_clients", as_user=None)
    assert svc.call("get_client", kept["id"])["owner_id"] == org.id("m.ural.1")


def test_the_pool_client_is_read_only_then_claimed(svc, org):
    client = lead(svc, "Сайдинг-Центр", as_user="head.ural")  # a head's lead goes to the pool
    assert client["owner_id"] is None

    seen = svc.call("get_client", client["id"], as_user="m.ural.2")
    assert seen["read_only"] is True
    with pytest.raises(Forbidden) as caught:
        svc.call("update_client", client["id"], {"segment": "дилер"}, as_user="m.ural.2")
    assert caught.value.code == "client_read_only"
    with pytest.raises(Forbidden):
        svc.call("get_client", client["id"], as_user="m.volga.1")  # another department's pool

    claimed = svc.call("claim_client", client["id"], as_user="m.ural.2")
    assert claimed["owner_id"] == org.id("m.ural.2") and claimed["read_only"] is False


def test_two_managers_claiming_at_once_exactly_one_wins(svc, org, clients_config):
    # Real RPC calls from two callers at once (nameko's entrypoint_hook cannot be used here: two
    # concurrent hooks of one method both receive the first worker's result).
    client = lead(svc, "Металлочерепица Плюс", as_user="head.ural")
    results = {}

    def claim(user):
        context = {IDENTITY_CONTEXT_KEY: org.people[user]}
        with ClusterRpcProxy(clients_config, context_data=context) as rpc:
            try:
                results[user] = rpc.clients.claim_client(client["id"])["owner_id"]
            except RemoteError as exc:
                results[user] = exc.exc_type
            except Conflict as exc:  # when a gateway import registered the error classes
                results[user] = type(exc).__name__

    pool = eventlet.GreenPool()
    for user in ("m.ural.1", "m.ural.2"):
        pool.spawn(claim, user)
    pool.waitall()

    winners = [u for u, r in results.items() if r == org.id(u)]
    assert len(winners) == 1, results
    loser = ({"m.ural.1", "m.ural.2"} - set(winners)).pop()
    assert results[loser] == "Conflict"
    assert org.scalar("SELECT count(*) FROM ownership_history WHERE reason = 'claim'") == 1
    assert svc.call("get_client", client["id"], as_user="head.ural")["owner_id"] == \
        org.id(winners[0])


def test_the_sales_head_arbitrates(svc, org):
    client = lead(svc, "Фасадные системы")
    moved = svc.call("reassign_client", client["id"], org.id("m.ural.2"), as_user="head.ural")
    assert moved["owner_id"] == org.id("m.ural.2")
    with pytest.raises(Forbidden):
        svc.call("reassign_client", client["id"], org.id("m.volga.1"), as_user="head.ural")
    with pytest.raises(Forbidden):
        svc.call("reassign_client", client["id"], org.id("m.ural.1"), as_user="m.ural.2")
    with pytest.raises(Forbidden):  # the head of another department
        svc.call("reassign_client", client["id"], None, as_user="head.volga")


def test_lead_distribution_gives_a_pool_client_to_a_manager_of_its_department(svc, org):
    with org.engine.begin() as conn:
        org._person(conn, "deals", "Распределение", "integration", None)
    client = lead(svc, "Кровля-Дом", as_user="head.ural")          # a head's lead: the pool
    with pytest.raises(Forbidden):
        svc.call("assign_pool_client", client["id"], org.id("m.ural.1"), as_user="head.ural")
    for wrong in ("m.volga.1", "head.ural"):                   # another department; not a manager
        with pytest.raises(ValidationFailed) as caught:
            svc.call("assign_pool_client", client["id"], org.id(wrong), as_user="deals")
        assert set(caught.value.fields) == {"owner_id"}
    assert svc.call("assign_pool_client", client["id"], org.id("m.ural.2"),
                    as_user="deals") == {"assigned": True, "owner_id": org.id("m.ural.2")}
    # Taken meanwhile: left alone.
    assert svc.call("assign_pool_client", client["id"], org.id("m.ural.1"),
                    as_user="deals") == {"assigned": False, "owner_id": org.id("m.ural.2")}
    history = svc.call("ownership_history", client["id"], as_user="head.ural")
    assert [(h["reason"], h["owner_id"]) for h in history][-1] == (
        "distribution", org.id("m.ural.2"))
    [event] = [e["envelope"]["payload"] for e in org.rows(
        "SELECT envelope FROM outbox WHERE type = 'client_owner_changed'")]
    assert (event["reason"], event["new_owner_id"]) == ("distribution", org.id("m.ural.2"))
