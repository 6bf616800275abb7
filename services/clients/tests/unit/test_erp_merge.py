"""The pure rules of clients from 1C: reading a counterparty, the requisites rule, what 1C adds to a
client, the manager's name, the pool."""

import uuid
from datetime import UTC, datetime

from services.clients.domain.erp_merge import (
    choose_department,
    match_manager,
    pick_by_inn,
    plan_update,
    read_counterparty,
    region_of,
    same_person,
    without_foreign,
)

INN = "7707083893"
KPP = "770701001"
GUID = uuid.UUID("6f1c0d5e-0000-4000-8000-000000000001")


def payload(**overrides):
    return {"counterparty_guid": GUID, "client_id": None, "name": "ООО «Стройметалл»",
            "full_name": "Общество с ограниченной ответственностью «Стройметалл»",
            "inn": INN, "kpp": KPP, "legal_kind": "ЮридическоеЛицо",
            "phones": ["+7 (343) 123-45-67"], "emails": ["Sales@StroyMetall.ru"],
            "addresses": ["620000, Екатеринбург, ул. Ленина, 1"], "contacts": [],
            "deletion_mark": False, "manager_name": None, **overrides}


def client(**fields):
    return {"id": uuid.uuid4(), "short_name": "Стройметалл", "full_name": None,
            "legal_form": None, "inn": None, "kpp": None, "addresses": [], "phones": [],
            "emails": [], "erp_counterparty_guid": None,
            "created_at": datetime(2025, 1, 1, tzinfo=UTC), **fields}


# -- reading ---------------------------------------------------------------------------------------

def test_a_counterparty_becomes_a_normalised_card():
    cp = read_counterparty(payload(phones=["8 343 123-45-67, доб. 101", "+7 916 123-45-67"],
                                   contacts=[{"guid": uuid.uuid4(), "full_name": " Петров  Пётр ",
                                              "position": "Снабжение",
                                              "phones": ["8 916 765 43 21"], "emails": []}]))
    card = cp.card
    assert card["short_name"] == "ООО «Стройметалл»" and card["legal_form"] == "ООО"
    assert card["inn"] == INN and card["kpp"] == KPP and card["region"] == "RU-MOW"
    assert card["phones"] == ["+73431234567", "+79161234567"]
    assert card["emails"] == ["sales@stroymetall.ru"]
    assert card["addresses"] == [{"kind": "legal", "text": "620000, Екатеринбург, ул. Ленина, 1"}]
    assert card["source"] == "erp" and card["erp_counterparty_guid"] == GUID
    assert card["status"] == "potential"
    assert cp.contacts[0]["full_name"] == "Петров Пётр"
    assert cp.contacts[0]["phones"] == ["+79167654321"]
    assert cp.problems == []


def test_bad_values_are_left_out_and_named_never_raised():
    cp = read_counterparty(payload(inn="7707083894", phones=["101", "+7 343 123-45-67"],
                                   emails=["nope"], addresses=["x"],
                                   contacts=[{"guid": uuid.uuid4(), "full_name": "Я",
                                              "position": "", "phones": [], "emails": []}]))
    assert cp.card["inn"] is None and cp.card["kpp"] is None   # a KPP without its INN goes too
    assert cp.card["phones"] == ["+73431234567"] and cp.card["emails"] == []
    assert cp.card["addresses"] == [] and cp.contacts == []
    fields = [p["field"] for p in cp.problems]
    assert fields == ["inn", "kpp", "phones", "emails", "addresses", "contacts.0.full_name"]
    assert "контрольная сумма" in cp.problems[0]["reason"]


def test_a_sole_trader_keeps_no_kpp_and_gets_its_form_from_the_legal_kind():
    cp = read_counterparty(payload(name="Иванов Иван Иванович", full_name="",
                                   inn="500100732259", kpp="500101001",
                                   legal_kind="ИндивидуальныйПредприниматель"))
    assert cp.card["inn"] == "500100732259" and cp.card["kpp"] is None
    assert cp.card["legal_form"] == "ИП" and cp.card["region"] == "RU-MOS"
    assert [p["field"] for p in cp.problems] == ["kpp"]


def test_a_name_that_is_only_a_legal_form_falls_back_to_the_full_name():
    cp = read_counterparty(payload(name="ООО"))
    assert cp.card["short_name"] == "Общество с ограниченной ответственностью «Стройметалл»"
    assert cp.card["legal_form"] == "ООО" and cp.card["name_key"] == "стройметалл"
    cp = read_counterparty(payload(name="ООО", full_name=""))
    assert cp.card["short_name"].startswith("ООО (1С ")


def test_one_person_twice_in_1c_is_one_contact():
    person = {"guid": uuid.uuid4(), "full_name": "Петров Пётр", "position": "",
              "phones": ["+79161234567"], "emails": []}
    cp = read_counterparty(payload(contacts=[
        person, {**person, "guid": uuid.uuid4(), "full_name": "ПЕТРОВ ПЕТР",
                 "phones": [], "emails": ["p@x.ru"], "position": "Снабжение"}]))
    assert len(cp.contacts) == 1
    assert cp.contacts[0]["phones"] == ["+79161234567"] and cp.contacts[0]["emails"] == ["p@x.ru"]
    assert cp.contacts[0]["position"] == "Снабжение"


def test_the_region_comes_from_the_kpp_else_the_inn():
    assert region_of("7707083893", "667101001") == "RU-SVE"       # registered in Ekaterinburg
    assert region_of("7707083893", "997750001") == "RU-MOW"       # largest taxpayer: the INN
    assert region_of("1655000000", None) == "RU-TA"
    assert region_of("9909000000", None) is None and region_of(None, None) is None


# -- the requisites rule ---------------------------------------------------------------------------

def test_inn_and_kpp_match_exactly_and_other_branches_are_other_clients():
    head = client(inn=INN, kpp=KPP)
    branch = client(inn=INN, kpp="667101001")
    assert pick_by_inn(INN, KPP, [branch, head]).client is head
    assert pick_by_inn(INN, KPP, [head]).by == "inn_kpp"
    assert pick_by_inn(INN, "165501001", [head, branch]).client is None
    assert pick_by_inn(INN, "165501001", [head, branch]).ambiguous == []


def test_the_inn_alone_when_it_designates_one_client():
    without_kpp = client(inn=INN)
    branch = client(inn=INN, kpp="667101001")
    assert pick_by_inn(INN, KPP, [without_kpp, branch]).client is without_kpp  # KPP to fill
    assert pick_by_inn(INN, None, [branch]).client is branch
    assert pick_by_inn(INN, None, [branch]).by == "inn"
    both = pick_by_inn(INN, None, [client(inn=INN, kpp=KPP), branch])
    assert both.client is None and len(both.ambiguous) == 2
    assert pick_by_inn(INN, None, [client(inn=INN, kpp=KPP), without_kpp]).client is without_kpp
    assert pick_by_inn(None, None, [branch]).client is None


# -- what 1C adds ----------------------------------------------------------------------------------

def test_a_found_client_is_linked_and_gets_only_what_it_lacks():
    cp = read_counterparty(payload(phones=["+7 343 123-45-67", "+7 343 765-43-21"],
                                   contacts=[{"guid": uuid.uuid4(), "full_name": "Петров Пётр",
                                              "position": "Директор", "phones": [],
                                              "emails": ["p@x.ru"]}]))
    mine = client(inn=INN, legal_form="АО", phones=["+73431234567"],
                  addresses=[{"kind": "delivery", "text": "склад"}])
    contacts = [{"id": uuid.uuid4(), "full_name": "петров петр", "position": None,
                 "phones": [], "emails": []}]
    plan = plan_update(mine, contacts, cp, foreign={("email", "sales@stroymetall.ru"): "other"})
    assert plan.changes == {
        "erp_counterparty_guid": GUID, "kpp": KPP, "phones": ["+73431234567", "+73437654321"],
        "full_name": "Общество с ограниченной ответственностью «Стройметалл»"}
    assert plan.skipped == [{"kind": "email", "value": "sales@stroymetall.ru",
                             "client_id": "other"}]
    assert plan.new_contacts == []
    [(contact, changes)] = plan.contact_changes
    assert contact is contacts[0]
    assert changes == {"emails": ["p@x.ru"], "position": "Директор"}
    assert plan.changed_fields == ["erp_counterparty_guid", "full_name", "kpp", "phones",
                                   "contacts"]


def test_nothing_new_is_an_empty_plan():
    cp = read_counterparty(payload())
    linked = client(**{k: cp.card[k] for k in ("full_name", "legal_form", "inn", "kpp",
                                               "addresses", "phones", "emails")},
                    erp_counterparty_guid=GUID)
    assert plan_update(linked, [], cp, {}).empty


def test_another_legal_entity_gives_no_requisites_and_another_link_is_kept():
    cp = read_counterparty(payload())
    other_inn = client(inn="500100732259", erp_counterparty_guid=uuid.uuid4())
    plan = plan_update(other_inn, [], cp, {})
    assert plan.not_taken == {"erp_counterparty_guid": str(GUID), "inn": INN, "kpp": KPP}
    assert "full_name" not in plan.changes and "legal_form" not in plan.changes


def test_requisites_of_another_client_are_not_copied():
    cp = read_counterparty(payload())
    holder = client(inn=INN, kpp=KPP)
    plan = plan_update(client(), [], cp, {}, requisites_owner=holder)
    assert "inn" not in plan.changes and "kpp" not in plan.changes
    assert plan.skipped == [{"kind": "inn", "value": INN, "client_id": str(holder["id"])}]
    plan = plan_update(client(inn=INN), [], cp, {}, requisites_owner=holder)
    assert plan.skipped[0]["kind"] == "inn_kpp" and "kpp" not in plan.changes


def test_a_creation_leaves_out_numbers_of_other_clients():
    cp = read_counterparty(payload(contacts=[{"guid": uuid.uuid4(), "full_name": "Петров Пётр",
                                              "position": "", "phones": ["+79161234567"],
                                              "emails": []}]))
    card, contacts, skipped = without_foreign(cp, {("phone", "+79161234567"): "x",
                                                   ("phone", "+73431234567"): "y"})
    assert card["phones"] == [] and contacts[0]["phones"] == []
    assert [s["client_id"] for s in skipped] == ["y", "x"]
    assert cp.card["phones"] == ["+73431234567"]     # the read card is not changed


# -- the owner and the pool ------------------------------------------------------------------------

def test_names_match_in_case_yo_spaces_and_shorter_forms():
    assert same_person("  ФЁДОРОВ   Пётр ", "Федоров Петр") == "exact"
    assert same_person("Федоров Петр", "Фёдоров Пётр Ильич") == "partial"
    assert same_person("Федоров П. И.", "Фёдоров Пётр Ильич") == "partial"
    assert same_person("Федоров", "Федоров Петр") is None          # the surname alone: no
    assert same_person("Федоров Павел", "Федоров Петр Ильич") is None
    assert same_person("Ф. Петр", "Федоров Петр") is None


def test_the_manager_is_an_active_owner_of_that_name_and_namesakes_are_nobody():
    def member(name, role="manager", active=True):
        return {"user_id": uuid.uuid4(), "full_name": name, "role": role, "active": active,
                "department_id": uuid.uuid4()}

    ivanov = member("Иванов Иван Иванович")
    head = member("Петрова Анна Сергеевна", role="sales_head")
    staff = [ivanov, head, member("Сидоров Олег", active=False), member("Козлов Ян", "director")]
    assert match_manager("иванов иван", staff).member is ivanov
    assert match_manager("Петрова Анна Сергеевна", staff).member is head
    assert match_manager("Сидоров Олег", staff).reason == "not_found"     # inactive
    assert match_manager("Козлов Ян", staff).reason == "not_found"        # not an owner role
    assert match_manager(None, staff).reason == "no_manager"
    namesake = member("Иванов Иван Петрович")
    assert match_manager("Иванов Иван", [ivanov, namesake]).reason == "ambiguous"
    assert match_manager("Иванов Иван Иванович", [ivanov, namesake]).member is ivanov


def test_the_pool_is_the_configured_department_else_the_region_s():
    ural, volga = uuid.uuid4(), uuid.uuid4()
    depts = [{"department_id": ural, "regions": ["RU-SVE", "RU-CHE"]},
             {"department_id": volga, "regions": ["RU-TA"]}]
    assert choose_department(volga, "RU-SVE", depts) == (volga, "configured")
    assert choose_department(None, "RU-SVE", depts) == (ural, "region")
    assert choose_department(None, "RU-MOW", depts) == (None, "none")
    assert choose_department(None, None, depts) == (None, "none")
    twice = depts + [{"department_id": uuid.uuid4(), "regions": ["RU-TA"]}]
    assert choose_department(None, "RU-TA", twice) == (None, "region_ambiguous")
