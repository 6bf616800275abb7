"""Hand-over of clients between managers (``transfer_clients``) against the real broker and
database: all, filtered, spread evenly, atomic, by role, with history, events and audit."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from crm_platform.clock import clock
from crm_platform.errors import Forbidden, ValidationFailed
from crm_platform.identity import IDENTITY_CONTEXT_KEY
from services.clients.service import ClientsService

pytestmark = pytest.mark.integration

NAMES = ["Стройметалл", "Кровельный двор", "Профнастил", "Техноткань", "Вектор Плюс",
         "Гранитные мастерские", "Светлый дом", "Ангарский лес", "Балтийские фасады",
         "Северный ветер", "Речной порт", "Зелёная долина", "Орион", "Меридиан", "Сапфир"]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_clients(svc, owner: str, specs: list[dict], start: int = 0) -> list[dict]:
    """Clients of ``owner`` (a manager creates for themself), one minute apart, in this order."""
    made = []
    for i, spec in enumerate(specs):
        clock.travel_to(T0 + timedelta(minutes=start + i))
        result = svc.call("create_client", {"short_name": NAMES[start + i], **spec},
                          as_user=owner)
        assert result["created"], result
        made.append(result["client"])
    clock.travel_to(T0 + timedelta(hours=1))
    return made


def owners(org, clients) -> dict:
    return {c["id"]: str(org.scalar("SELECT owner_id FROM clients WHERE id = :id", id=c["id"]))
            for c in clients}


def owner_events(org) -> list[dict]:
    return [r["envelope"]["payload"] for r in org.rows(
        "SELECT envelope FROM outbox WHERE type = 'client_owner_changed' ORDER BY id")]


def test_transfer_all_clients_to_one_manager(svc, org):
    mine = make_clients(svc, "m.ural.1", [{"status": "active"}, {}, {"status": "lost"}])
    other = make_clients(svc, "m.ural.2", [{}], start=3)[0]

    result = svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"),
                      as_user="head.ural")

    assert result["moved"] == 3 and result["per_receiver"] == {org.id("m.ural.2"): 3}
    assert set(owners(org, mine).values()) == {org.id("m.ural.2")}
    card = svc.call("get_client", mine[0]["id"], as_user="m.ural.2")
    assert card["owner_name"] == "Менеджер ural 2" and card["read_only"] is False
    with pytest.raises(Forbidden):
        svc.call("get_client", mine[0]["id"], as_user="m.ural.1")  # no longer theirs
    assert owners(org, [other])[other["id"]] == org.id("m.ural.2")  # untouched

    events = owner_events(org)
    assert len(events) == 3 and {e["client_id"] for e in events} == {c["id"] for c in mine}
    assert {e["batch_id"] for e in events} == {result["batch_id"]}
    assert all(e["reason"] == "transfer" and e["previous_owner_id"] == org.id("m.ural.1")
               and e["new_owner_id"] == org.id("m.ural.2")
               and e["changed_by"] == org.id("head.ural")
               and e["include_open_deals"] and e["include_open_tasks"] for e in events)

    per_client = org.rows("SELECT client_id, user_id, details FROM audit_log "
                          "WHERE action = 'transfer'")
    assert {str(r["client_id"]) for r in per_client} == {c["id"] for c in mine}
    assert all(str(r["user_id"]) == org.id("head.ural")
               and r["details"] == {"from": org.id("m.ural.1"), "to": org.id("m.ural.2")}
               for r in per_client)
    summary = org.rows("SELECT * FROM audit_log WHERE action = 'handover'")
    assert len(summary) == 1 and summary[0]["client_id"] is None
    details = summary[0]["details"]
    assert details["batch_id"] == result["batch_id"] and details["moved"] == 3
    assert details["from_user_id"] == org.id("m.ural.1")
    assert set(details["client_ids"]) == {c["id"] for c in mine}


def test_transfer_a_filtered_part(svc, org):
    mine = make_clients(svc, "m.ural.1", [
        {"status": "active", "segment": "дилер", "region": "RU-SVE"},     # 0: moves
        {"status": "active", "segment": "дилер", "region": "RU-CHE"},     # 1: other region
        {"status": "dormant", "segment": "дилер", "region": "RU-SVE"},    # 2: moves
        {"status": "active", "segment": "стройка", "region": "RU-SVE"},   # 3: other segment
        {"status": "lost", "segment": "дилер", "region": "RU-SVE"},       # 4: other status
    ])
    result = svc.call("transfer_clients", org.id("m.ural.1"), [org.id("m.ural.2")],
                      filters={"status": ["active", "dormant"], "segment": "дилер",
                               "region": ["RU-SVE"]}, as_user="head.ural")
    assert result["moved"] == 2
    now_owned = owners(org, mine)
    assert [now_owned[c["id"]] == org.id("m.ural.2") for c in mine] == [
        True, False, True, False, False]
    assert {e["client_id"] for e in owner_events(org)} == {mine[0]["id"], mine[2]["id"]}

    with pytest.raises(ValidationFailed) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"),
                 filters={"owner": "x"}, as_user="head.ural")
    assert "filters.owner" in caught.value.fields


def test_spread_evenly_over_several_managers(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}] * 7)
    receivers = [org.id("m.ural.2"), org.id("head.ural")]
    result = svc.call("transfer_clients", org.id("m.ural.1"), receivers, as_user="head.ural")
    assert result["moved"] == 7
    assert result["per_receiver"] == {receivers[0]: 4, receivers[1]: 3}
    # Round-robin, oldest first: 1st, 3rd, 5th, 7th to the first receiver.
    now_owned = owners(org, mine)
    assert [now_owned[c["id"]] for c in mine] == [receivers[i % 2] for i in range(7)]
    assert Counter(e["new_owner_id"] for e in owner_events(org)) == Counter(
        result["per_receiver"])


def test_director_spreads_across_departments(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}] * 8)
    receivers = [org.id("m.volga.1"), org.id("m.volga.2"), org.id("m.ural.2")]
    result = svc.call("transfer_clients", org.id("m.ural.1"), receivers, as_user="director")
    counts = result["per_receiver"]
    assert result["moved"] == 8 and sum(counts.values()) == 8
    assert max(counts.values()) - min(counts.values()) <= 1
    assert counts == {receivers[0]: 3, receivers[1]: 3, receivers[2]: 2}

    volga, ural = org.departments["volga"], org.departments["ural"]
    rows = org.rows("SELECT owner_id, department_id FROM clients")
    for row in rows:  # the client's department is its new owner's
        expected = ural if str(row["owner_id"]) == org.id("m.ural.2") else volga
        assert row["department_id"] == expected
    moved_to_volga = [c for c in mine if owners(org, [c])[c["id"]] == org.id("m.volga.1")]
    card = svc.call("get_client", moved_to_volga[0]["id"], as_user="head.volga")
    assert card["department_name"] == "Приволжский отдел"
    with pytest.raises(Forbidden):
        svc.call("get_client", moved_to_volga[0]["id"], as_user="head.ural")
    events = owner_events(org)
    assert {e["previous_department_id"] for e in events} == {str(ural)}
    assert Counter(e["new_department_id"] for e in events) == {str(volga): 6, str(ural): 2}


def test_open_deals_and_tasks_may_stay(svc, org):
    make_clients(svc, "m.ural.1", [{}, {}])
    svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"),
             include_open_deals=False, include_open_tasks=True, as_user="head.ural")
    events = owner_events(org)
    assert len(events) == 2
    assert all(e["include_open_deals"] is False and e["include_open_tasks"] is True
               for e in events)
    details = org.rows("SELECT details FROM audit_log WHERE action = 'handover'")[0]["details"]
    assert details["include_open_deals"] is False


def test_history_keeps_who_owned_what_when(svc, org):
    client = make_clients(svc, "m.ural.1", [{}])[0]
    created_at = T0
    first = T0 + timedelta(hours=1)
    clock.travel_to(first)
    svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"), as_user="head.ural")
    second = T0 + timedelta(days=3)
    clock.travel_to(second)
    svc.call("transfer_clients", org.id("m.ural.2"), org.id("m.volga.1"), as_user="director")

    history = svc.call("ownership_history", client["id"], as_user="director")
    assert [(h["owner_id"], h["reason"]) for h in history] == [
        (org.id("m.ural.1"), "created"), (org.id("m.ural.2"), "transfer"),
        (org.id("m.volga.1"), "transfer")]
    spans = [(datetime.fromisoformat(h["since"]),
              datetime.fromisoformat(h["until"]) if h["until"] else None) for h in history]
    assert spans == [(created_at, first), (first, second), (second, None)]
    assert [h["department_id"] for h in history] == [
        str(org.departments["ural"]), str(org.departments["ural"]),
        str(org.departments["volga"])]
    card = svc.call("get_client", client["id"], as_user="m.volga.1")
    assert datetime.fromisoformat(card["owned_since"]) == second


def test_nothing_to_move_is_not_an_error(svc, org):
    result = svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"),
                      as_user="head.ural")
    assert result["moved"] == 0 and result["per_receiver"] == {org.id("m.ural.2"): 0}
    assert owner_events(org) == []
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'handover'") == 1


# --- atomicity ----------------------------------------------------------------------------------

def assert_nothing_moved(org, clients, owner):
    assert set(owners(org, clients).values()) == {org.id(owner)}
    assert owner_events(org) == []
    assert org.scalar("SELECT count(*) FROM ownership_history WHERE reason = 'transfer'") == 0
    assert org.scalar("SELECT count(*) FROM audit_log "
                      "WHERE action IN ('transfer', 'handover')") == 0


def test_an_unknown_receiver_among_several_moves_nothing(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}] * 4)
    stranger = "00000000-0000-4000-8000-000000000001"
    with pytest.raises(ValidationFailed) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), [org.id("m.ural.2"), stranger],
                 as_user="head.ural")
    assert "to_user_ids" in caught.value.fields
    assert stranger in caught.value.fields["to_user_ids"][0]
    assert_nothing_moved(org, mine, "m.ural.1")


def test_an_inactive_receiver_moves_nothing(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}] * 3)
    with org.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE staff SET active = false WHERE user_id = %(id)s",
                             {"id": org.id("head.ural")})
    with pytest.raises(ValidationFailed) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), [org.id("m.ural.2"),
                                                         org.id("head.ural")],
                 as_user="director")
    assert "неактивный" in caught.value.fields["to_user_ids"][0]
    assert_nothing_moved(org, mine, "m.ural.1")


@pytest.mark.parametrize("receiver,reason", [("director", "не ведёт клиентов"),
                                             ("m.ural.1", "совпадает с from_user_id"),
                                             ("not-a-uuid", "не UUID")])
def test_receivers_who_cannot_own_are_refused(svc, org, receiver, reason):
    mine = make_clients(svc, "m.ural.1", [{}])
    to = org.people[receiver]["user_id"] if receiver in org.people else receiver
    with pytest.raises(ValidationFailed) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), [to], as_user="director")
    assert reason in caught.value.fields["to_user_ids"][0]
    assert_nothing_moved(org, mine, "m.ural.1")


def test_a_failure_half_way_rolls_everything_back(svc, org, monkeypatch):
    mine = make_clients(svc, "m.ural.1", [{}] * 5)
    original = ClientsService._change_owner
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClientsService, "_change_owner", failing)
    with pytest.raises(RuntimeError):
        svc.call("transfer_clients", org.id("m.ural.1"), [org.id("m.ural.2"),
                                                         org.id("head.ural")],
                 as_user="head.ural")
    assert len(calls) == 3  # two clients had moved inside the transaction...
    assert_nothing_moved(org, mine, "m.ural.1")  # ...and were rolled back with it


# --- access -------------------------------------------------------------------------------------

@pytest.mark.parametrize("caller", ["m.ural.1", "m.ural.2", "admin"])
def test_managers_and_admins_cannot_transfer(svc, org, caller):
    mine = make_clients(svc, "m.ural.1", [{}])
    with pytest.raises(Forbidden) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"), as_user=caller)
    assert caught.value.code == "role_required"
    assert_nothing_moved(org, mine, "m.ural.1")


def test_a_call_without_identity_is_refused(svc, org):
    from crm_platform.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"), as_user=None)


def test_head_of_another_department_is_refused(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}, {}])
    with pytest.raises(Forbidden) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.volga.1"),
                 as_user="head.volga")
    assert caught.value.code == "handover_not_allowed"
    assert_nothing_moved(org, mine, "m.ural.1")


def test_head_cannot_give_to_another_department(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}, {}])
    with pytest.raises(Forbidden) as caught:
        svc.call("transfer_clients", org.id("m.ural.1"), [org.id("m.ural.2"),
                                                         org.id("m.volga.1")],
                 as_user="head.ural")
    assert caught.value.code == "owner_not_allowed"
    assert caught.value.extra["to_user_ids"] == [org.id("m.volga.1")]
    assert_nothing_moved(org, mine, "m.ural.1")


def test_head_moves_only_the_clients_of_the_own_department(svc, org):
    mine = make_clients(svc, "m.ural.1", [{}, {}])
    with org.engine.begin() as conn:  # a client left behind in another department
        conn.exec_driver_sql("UPDATE clients SET department_id = %(d)s WHERE id = %(id)s",
                             {"d": str(org.departments["volga"]), "id": mine[1]["id"]})
    result = svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.ural.2"),
                      as_user="head.ural")
    assert result["moved"] == 1
    assert owners(org, mine) == {mine[0]["id"]: org.id("m.ural.2"),
                                 mine[1]["id"]: org.id("m.ural.1")}
    result = svc.call("transfer_clients", org.id("m.ural.1"), org.id("m.volga.2"),
                      as_user="director")
    assert result["moved"] == 1


def test_two_hand_overs_at_once_move_each_client_once(svc, org, clients_config):
    mine = make_clients(svc, "m.ural.1", [{}] * 6)
    results = {}

    def transfer(caller, receiver):
        context = {IDENTITY_CONTEXT_KEY: org.people[caller]}
        with ClusterRpcProxy(clients_config, context_data=context) as rpc:
            try:
                results[caller] = rpc.clients.transfer_clients(org.id("m.ural.1"),
                                                               org.id(receiver))
            except RemoteError as exc:
                results[caller] = exc.exc_type

    pool = eventlet.GreenPool()
    pool.spawn(transfer, "head.ural", "m.ural.2")
    pool.spawn(transfer, "director", "m.volga.1")
    pool.waitall()

    assert sorted(r["moved"] for r in results.values()) == [0, 6], results
    assert len(set(owners(org, mine).values())) == 1
    assert len(owner_events(org)) == 6
    assert org.scalar("SELECT count(*) FROM ownership_history WHERE reason = 'transfer'") == 6
