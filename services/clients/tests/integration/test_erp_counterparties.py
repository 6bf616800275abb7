"""Counterparties from 1C (``erp_bridge.erp_counterparty_upserted``, delivered for real through
RabbitMQ) link or create clients by the duplicate rules, with the 1C manager as the owner."""

from __future__ import annotations

import uuid

import pytest

from crm_platform.contracts import make_envelope
from crm_platform.deadletters import list_dead_letters
from crm_platform.errors import Conflict, Forbidden
from crm_platform.observability import EVENTS_CONSUMED
from crm_platform.testing import wait_for
from services.clients.service import ClientsService

from .conftest import Clients
from .test_facts import add_client, deliver, handled, outbox_events, publish
from .test_merge import inn10

pytestmark = pytest.mark.integration

INN = "7707083893"
KPP = "770701001"
HANDLER = "clients.handle_erp_counterparty_upserted"
EVENT = "erp_counterparty_upserted"


def counterparty(guid=None, **overrides) -> dict:
    return {"counterparty_guid": guid or uuid.uuid4(), "client_id": None,
            "name": "ООО «Стройметалл»",
            "full_name": "Общество с ограниченной ответственностью «Стройметалл»",
            "inn": INN, "kpp": KPP, "legal_kind": "ЮридическоеЛицо", "phones": [], "emails": [],
            "addresses": [], "contacts": [], "deletion_mark": False, "manager_name": None,
            **overrides}


def person(full_name, position="", phones=(), emails=()) -> dict:
    return {"guid": uuid.uuid4(), "full_name": full_name, "position": position,
            "phones": list(phones), "emails": list(emails)}


def upsert(rabbit_config, org, payload) -> dict:
    return deliver(rabbit_config, org, "erp_bridge", EVENT, payload)


def create(svc, data, contacts=None, as_user="m.ural.1") -> dict:
    result = svc.call("create_client", data, contacts=contacts, as_user=as_user)
    assert result["created"], result
    return result["client"]


def audits(org, action):
    return org.rows("SELECT * FROM audit_log WHERE action = :a ORDER BY id", a=action)


def clients_of(org, guid):
    return org.rows("SELECT * FROM clients WHERE erp_counterparty_guid = :g", g=guid)


def card(svc, client_id):
    return svc.call("get_client", client_id, as_user="director")


# -- a client found --------------------------------------------------------------------------------


def test_an_existing_client_is_linked_by_inn_and_kpp_and_gets_what_it_lacks(svc, org,
                                                                           rabbit_config):
    mine = create(svc, {"short_name": "Стройметалл", "inn": INN, "kpp": KPP,
                        "phones": ["+7 343 123-45-67"]},
                  contacts=[{"full_name": "Петров Пётр", "phones": ["+7 916 123 45 67"]}])
    guid = uuid.uuid4()

    upsert(rabbit_config, org, counterparty(
        guid, phones=["8 343 123-45-67", "+7 343 765-43-21"], emails=["Sales@StroyMetall.ru"],
        addresses=["620000, Екатеринбург, ул. Ленина, 1"], manager_name="Менеджер volga 1",
        contacts=[person("ПЕТРОВ ПЕТР", "Снабжение", emails=["petrov@stroymetall.ru"]),
                  person("Сидорова Анна", "Бухгалтер", phones=["+7 912 000-00-01"])]))

    after = card(svc, mine["id"])
    assert after["erp_counterparty_guid"] == str(guid)
    assert after["full_name"] == "Общество с ограниченной ответственностью «Стройметалл»"
    assert after["legal_form"] == "ООО" and after["kpp"] == KPP
    assert after["short_name"] == "Стройметалл"                         # filled stays
    assert after["addresses"] == [{"kind": "legal",
                                   "text": "620000, Екатеринбург, ул. Ленина, 1"}]
    assert after["phones"] == ["+73431234567", "+73437654321"]
    assert after["emails"] == ["sales@stroymetall.ru"]
    assert after["owner_id"] == org.id("m.ural.1")                      # 1C's manager: no
    people = {c["full_name"]: c for c in after["contacts"]}
    assert set(people) == {"Петров Пётр", "Сидорова Анна"}
    assert people["Петров Пётр"]["emails"] == ["petrov@stroymetall.ru"]
    assert people["Петров Пётр"]["position"] == "Снабжение"
    assert people["Петров Пётр"]["phones"] == ["+79161234567"]
    assert people["Сидорова Анна"]["phones"] == ["+79120000001"]
    assert after["version"] == mine["version"] + 1 and after["updated_by"] is None

    [event] = outbox_events(org, "client_updated", mine["id"])
    assert event["erp_counterparty_guid"] == str(guid) and event["changed_by"] is None
    assert event["changed_fields"] == ["addresses", "emails", "erp_counterparty_guid",
                                       "full_name", "legal_form", "phones", "contacts"]
    [entry] = audits(org, "erp_update")
    assert entry["user_id"] is None and str(entry["client_id"]) == mine["id"]
    assert entry["details"]["found_by"] == "inn_kpp"
    assert entry["details"]["added"]["phones"] == ["+73437654321"]
    assert entry["details"]["added"]["contacts"] == ["Сидорова Анна"]
    # the new numbers are the client's for the duplicate check now
    [match] = svc.call("find_duplicates", {"phones": ["+7 912 000 00 01"]}, as_user="m.ural.2")
    assert match["client_id"] == mine["id"]


def test_a_phone_or_email_of_another_client_is_not_taken(svc, org, rabbit_config):
    other = create(svc, {"short_name": "Кровля-Сервис", "phones": ["+7 343 765-43-21"],
                         "emails": ["info@krovlya.ru"]}, as_user="m.ural.2")
    mine = create(svc, {"short_name": "Стройметалл", "inn": INN, "kpp": KPP})

    upsert(rabbit_config, org, counterparty(
        phones=["+7 343 765-43-21", "+7 343 555-55-55"], emails=["info@krovlya.ru"],
        contacts=[person("Кузнецов Олег", phones=["+7 343 765-43-21"])]))

    after = card(svc, mine["id"])
    assert after["phones"] == ["+73435555555"] and after["emails"] == []
    assert [(c["full_name"], c["phones"]) for c in after["contacts"]] == [("Кузнецов Олег", [])]
    assert card(svc, other["id"])["phones"] == ["+73437654321"]
    skipped = audits(org, "erp_update")[0]["details"]["skipped"]
    assert sorted((s["kind"], s["value"], s["client_id"]) for s in skipped) == [
        ("email", "info@krovlya.ru", other["id"]), ("phone", "+73437654321", other["id"])]
    assert svc.call("find_duplicates", {"phones": ["+73437654321"]},
                    as_user="director")[0]["client_id"] == other["id"]


def test_the_client_named_by_the_bridge_is_followed_to_the_survivor_of_a_merge(svc, org,
                                                                             rabbit_config):
    survivor = add_client(org, "Выживший", inn=INN, kpp=KPP)
    merged = add_client(org, "Дубль", merged_into=uuid.UUID(survivor))
    guid = uuid.uuid4()

    upsert(rabbit_config, org, counterparty(guid, client_id=merged, inn=None, kpp=None,
                                            phones=["+7 343 123-45-67"]))

    assert [str(r["id"]) for r in clients_of(org, guid)] == [survivor]
    assert card(svc, survivor)["phones"] == ["+73431234567"]
    assert audits(org, "erp_update")[0]["details"]["found_by"] == "merged_into"
    assert org.scalar("SELECT erp_counterparty_guid FROM clients WHERE id = :c",
                      c=merged) is None


def test_a_repeated_event_changes_nothing(svc, org, rabbit_config):
    mine = create(svc, {"short_name": "Стройметалл", "inn": INN, "kpp": KPP})
    guid = uuid.uuid4()
    payload = counterparty(guid, phones=["+7 343 123-45-67"],
                           contacts=[person("Петров Пётр", phones=["+7 916 123 45 67"])])
    envelope = upsert(rabbit_config, org, payload)
    before = card(svc, mine["id"])
    duplicates = EVENTS_CONSUMED.labels("clients", HANDLER, "duplicate")._value.get()

    publish(rabbit_config, "erp_bridge", EVENT, None, envelope=envelope)   # redelivery
    wait_for(lambda: EVENTS_CONSUMED.labels("clients", HANDLER, "duplicate")._value.get()
             > duplicates, message="the duplicate to be recognised")
    upsert(rabbit_config, org, payload)                         # the same state sent again

    assert card(svc, mine["id"]) == before
    assert len(outbox_events(org, "client_updated", mine["id"])) == 1
    assert len(audits(org, "erp_update")) == 1
    assert org.count("contacts") == 1


def test_a_counterparty_marked_for_deletion_changes_nothing(svc, org, rabbit_config):
    mine = create(svc, {"short_name": "Стройметалл", "inn": INN, "kpp": KPP})
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid))
    before = card(svc, mine["id"])
    marked = counterparty(guid, deletion_mark=True, phones=["+7 343 123-45-67"],
                          contacts=[person("Петров Пётр")])

    upsert(rabbit_config, org, marked)
    upsert(rabbit_config, org, marked)

    assert card(svc, mine["id"]) == before
    assert len(outbox_events(org, "client_updated", mine["id"])) == 1   # the linking only
    [entry] = audits(org, "erp_deletion_mark")
    assert str(entry["client_id"]) == mine["id"] and entry["user_id"] is None
    assert entry["details"]["counterparty_guid"] == str(guid)

    upsert(rabbit_config, org, counterparty(uuid.uuid4(), inn=inn10(7), kpp=None,
                                            deletion_mark=True))          # new and deleted
    assert org.count("clients") == 1
    assert [e["client_id"] for e in outbox_events(org, "client_created")] == [mine["id"]]

    upsert(rabbit_config, org, counterparty(guid))                      # the mark taken back
    assert len(audits(org, "erp_deletion_unmark")) == 1
    assert card(svc, mine["id"]) == before


# -- no client yet ---------------------------------------------------------------------------------


def test_a_new_counterparty_becomes_a_client_of_the_mapped_manager(svc, org, rabbit_config):
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(
        guid, inn=inn10(1), kpp="667101001", manager_name="  менеджер   VOLGA 2 ",
        phones=["+7 343 123-45-67"], addresses=["Екатеринбург, ул. Ленина, 1"],
        contacts=[person("Петров Пётр", "Директор", phones=["+7 916 123 45 67"])]))

    [row] = clients_of(org, guid)
    client_id = str(row["id"])
    assert str(row["owner_id"]) == org.id("m.volga.2")
    assert row["department_id"] == org.departments["volga"]         # the owner's department
    assert row["source"] == "erp" and row["status"] == "potential"
    assert row["inn"] == inn10(1) and row["kpp"] == "667101001" and row["region"] == "RU-SVE"
    assert row["legal_form"] == "ООО" and row["created_by"] is None
    after = card(svc, client_id)
    assert [c["full_name"] for c in after["contacts"]] == ["Петров Пётр"]
    [event] = outbox_events(org, "client_created")
    assert event["client_id"] == client_id and event["erp_counterparty_guid"] == str(guid)
    assert event["source"] == "erp" and event["owner_id"] == org.id("m.volga.2")
    [entry] = audits(org, "erp_create")
    assert entry["details"]["owner_match"] == "matched" and entry["user_id"] is None
    assert org.scalar("SELECT reason FROM ownership_history WHERE client_id = :c",
                      c=client_id) == "erp"
    # the manager sees it as theirs
    assert svc.call("get_client", client_id, as_user="m.volga.2")["read_only"] is False
    # and the requisites now block a manager's duplicate
    with pytest.raises(Conflict) as refused:
        svc.call("create_client", {"short_name": "Стройметалл", "inn": inn10(1),
                                   "kpp": "667101001"}, as_user="m.volga.1")
    assert refused.value.code == "client_owned"
    assert refused.value.extra["client_id"] == client_id


def test_without_a_known_manager_it_goes_to_the_pool_of_its_region(svc, org, rabbit_config):
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid, inn=inn10(2), kpp="667101001",
                                            manager_name="Неизвестный Человек"))

    [row] = clients_of(org, guid)
    assert row["owner_id"] is None and row["department_id"] == org.departments["ural"]
    details = audits(org, "erp_create")[0]["details"]
    assert details["owner_match"] == "not_found" and details["department_by"] == "region"
    pool = svc.call("list_clients", {"pool": True}, as_user="m.ural.1")
    assert [item["id"] for item in pool["items"]] == [str(row["id"])]
    svc.call("claim_client", str(row["id"]), as_user="m.ural.1")


@pytest.fixture
def volga_pool_svc(container_factory, service_config, clients_db, org):
    """The service with ERP_CLIENTS_DEPARTMENT_ID: clients from 1C without an owner go there."""
    container = container_factory(ClientsService, service_config(
        db_url=clients_db, ERP_CLIENTS_DEPARTMENT_ID=str(org.departments["volga"])))
    container.start()
    return Clients(container, org)


def test_the_configured_department_takes_clients_without_an_owner(volga_pool_svc, org,
                                                                   rabbit_config):
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid, inn=inn10(3), kpp="667101001"))
    [row] = clients_of(org, guid)
    assert row["owner_id"] is None and row["department_id"] == org.departments["volga"]
    assert audits(org, "erp_create")[0]["details"]["department_by"] == "configured"


def test_with_no_department_known_a_director_sees_it_and_hands_it_out(svc, org, rabbit_config):
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid, name="Smith Trading Ltd", full_name="",
                                            inn=None, kpp=None, legal_kind=None))

    [row] = clients_of(org, guid)
    client_id = str(row["id"])
    assert row["owner_id"] is None and row["department_id"] is None and row["region"] is None
    listed = svc.call("list_clients", {"pool": True}, as_user="director")
    assert [item["id"] for item in listed["items"]] == [client_id]
    assert svc.call("list_clients", as_user="head.ural")["total"] == 0
    with pytest.raises(Forbidden):
        svc.call("get_client", client_id, as_user="m.ural.1")
    given = svc.call("reassign_client", client_id, org.id("m.ural.1"), as_user="director")
    assert given["owner_id"] == org.id("m.ural.1")
    assert given["department_id"] == str(org.departments["ural"])


def test_an_invalid_inn_creates_the_client_without_it(svc, org, rabbit_config):
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid, inn="7707083894", phones=["101", "nope"],
                                            emails=["sales@stroymetall.ru"]))

    [row] = clients_of(org, guid)
    assert row["inn"] is None and row["kpp"] is None and row["phones"] == []
    assert row["emails"] == ["sales@stroymetall.ru"]
    problems = audits(org, "erp_create")[0]["details"]["problems"]
    assert [(p["field"], p["value"]) for p in problems] == [
        ("inn", "7707083894"), ("kpp", KPP), ("phones", "101"), ("phones", "nope")]
    assert "контрольная сумма" in problems[0]["reason"]
    assert list_dead_letters(rabbit_config["AMQP_URI"], "clients") == []


def test_branches_of_one_inn_without_a_kpp_from_1c_are_not_guessed(svc, org, rabbit_config):
    create(svc, {"short_name": "Стройметалл Москва", "inn": INN, "kpp": KPP})
    create(svc, {"short_name": "Стройметалл Урал", "inn": INN, "kpp": "667101001"})
    guid = uuid.uuid4()
    upsert(rabbit_config, org, counterparty(guid, kpp=None))

    assert org.count("clients") == 2 and clients_of(org, guid) == []
    [entry] = audits(org, "erp_unmatched")
    assert entry["client_id"] is None and len(entry["details"]["candidates"]) == 2
    # with its KPP it is the Ural branch
    upsert(rabbit_config, org, counterparty(guid, kpp="667101001"))
    assert [r["short_name"] for r in clients_of(org, guid)] == ["Стройметалл Урал"]


# -- races -----------------------------------------------------------------------------------------


def test_concurrent_events_of_one_new_counterparty_create_one_client(svc, org, rabbit_config):
    guid = uuid.uuid4()
    payload = counterparty(guid, inn=inn10(4), kpp="667101001", phones=["+7 343 123-45-67"],
                           contacts=[person("Петров Пётр", phones=["+7 916 123 45 67"])])
    envelopes = [make_envelope("erp_bridge", EVENT, payload) for _ in range(5)]
    # 1C keeps two cards of one company (two GUIDs, one INN+KPP): still one client
    twin = make_envelope("erp_bridge", EVENT, {**payload, "counterparty_guid": uuid.uuid4()})
    for envelope in [*envelopes, twin]:
        publish(rabbit_config, "erp_bridge", EVENT, None, envelope=envelope)
    wait_for(lambda: all(handled(org, e) for e in [*envelopes, twin]),
             message="every upsert to be handled")

    [row] = org.rows("SELECT * FROM clients")
    assert row["erp_counterparty_guid"] in (guid, uuid.UUID(str(twin["payload"]
                                                                ["counterparty_guid"])))
    assert len(outbox_events(org, "client_created")) == 1
    assert org.count("contacts") == 1
    assert row["phones"] == ["+73431234567"]
    assert list_dead_letters(rabbit_config["AMQP_URI"], "clients") == []
