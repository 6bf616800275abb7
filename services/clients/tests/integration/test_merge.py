"""Merge of duplicate clients (``merge_clients``) against the real broker and database: nothing is
lost, the duplicate reads as merged, the other services are told, and the refusals."""

import uuid
from datetime import UTC, datetime

import pytest

from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

pytestmark = pytest.mark.integration

INN = "7707083893"
OGRN = "1027700132195"
LEGAL = {"kind": "legal", "text": "Москва, ул. Вавилова, 19"}
DELIVERY = {"kind": "delivery", "text": "Екатеринбург, ул. Фронтовых бригад, 18"}


def inn10(seed: int) -> str:
    """A valid 10-digit INN (organisation) made from ``seed``."""
    body = f"66{seed:07d}"
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return body + str(sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11 % 10)


def create(svc, data, contacts=None, as_user="m.ural.1", **kwargs):
    result = svc.call("create_client", data, contacts=contacts, as_user=as_user, **kwargs)
    assert result["created"], result
    return result["client"]


@pytest.fixture
def pair(svc, org):
    """A survivor of m.ural.1 and a duplicate of m.ural.2 that got in (the head overrode)."""
    survivor = create(svc, {"short_name": "ООО «Стройметалл»", "inn": INN, "kpp": "770701001",
                            "phones": ["8 (343) 123-45-67"], "emails": ["sales@stroymetall.ru"],
                            "addresses": [LEGAL], "industry": "Кровля", "status": "potential"},
                      contacts=[{"full_name": "Петров Пётр", "phones": ["+7 916 123 45 67"]}])
    duplicate = create(svc, {"short_name": "Стройметалл-Урал", "ogrn": OGRN,
                             "phones": ["+7 343 765-43-21", "8 343 123 45 67"],
                             "emails": ["Ural@StroyMetall.ru"], "addresses": [LEGAL, DELIVERY],
                             "website": "https://stroymetall.ru/", "industry": "Металл",
                             "segment": "дилер", "status": "active"},
                       contacts=[{"full_name": "Сидорова Анна", "emails": ["anna@stroymetall.ru"],
                                  "position": "Снабжение"}],
                       as_user="head.ural", owner_id=org.id("m.ural.2"), override=True)
    return survivor, duplicate


def test_merge_keeps_every_contact_phone_email_and_address(svc, org, pair):
    survivor, duplicate = pair
    card = svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.ural")

    assert card["id"] == survivor["id"]
    assert card["short_name"] == "ООО «Стройметалл»"
    assert card["owner_id"] == org.id("m.ural.1")          # the survivor's owner stays
    assert sorted(c["full_name"] for c in card["contacts"]) == ["Петров Пётр", "Сидорова Анна"]
    assert card["phones"] == ["+73431234567", "+73437654321"]
    assert card["emails"] == ["sales@stroymetall.ru", "ural@stroymetall.ru"]
    assert card["addresses"] == [LEGAL, DELIVERY]
    # Empty fields filled, filled ones kept.
    assert card["ogrn"] == OGRN and card["website"] == "stroymetall.ru"
    assert card["segment"] == "дилер" and card["industry"] == "Кровля"
    assert card["inn"] == INN and card["kpp"] == "770701001"
    assert card["status"] == "active"
    assert card["version"] == survivor["version"] + 1

    # The duplicate stays in the database, marked, and reads as merged.
    with pytest.raises(NotFound) as caught:
        svc.call("get_client", duplicate["id"], as_user="head.ural")
    assert caught.value.code == "client_merged"
    assert caught.value.extra["merged_into"] == survivor["id"]
    assert org.scalar("SELECT merged_into FROM clients WHERE id = :id",
                      id=duplicate["id"]) == uuid.UUID(survivor["id"])
    listed = svc.call("list_clients", as_user="head.ural")
    assert [c["id"] for c in listed["items"]] == [survivor["id"]]


def test_duplicate_check_now_finds_the_survivor(svc, org, pair):
    survivor, duplicate = pair
    svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.ural")

    assert org.scalar("SELECT count(*) FROM identifiers WHERE client_id = :id",
                      id=duplicate["id"]) == 0
    keys = {(r["kind"], r["value"]) for r in org.rows(
        "SELECT kind, value FROM identifiers WHERE client_id = :id", id=survivor["id"])}
    assert {("inn", INN), ("inn_kpp", f"{INN}/770701001"), ("phone", "+73431234567"),
            ("phone", "+73437654321"), ("phone", "+79161234567"),
            ("email", "ural@stroymetall.ru"), ("email", "anna@stroymetall.ru")} <= keys
    for probe in ({"emails": ["anna@stroymetall.ru"]}, {"phones": ["+7 343 765 43 21"]}):
        matches = svc.call("find_duplicates", {"short_name": "x", **probe}, as_user="m.volga.1")
        assert [m["client_id"] for m in matches if m["blocking"]] == [survivor["id"]]


def test_erp_documents_and_campaign_targets_follow(svc, org, pair):
    survivor, duplicate = pair
    doc = uuid.uuid4()
    both, only_dup = uuid.uuid4(), uuid.uuid4()
    early, late = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    with org.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO erp_documents (guid, client_id, kind, doc_date, amount, active) "
            "VALUES (%(g)s, %(c)s, 'invoice', %(d)s, 125000.50, true)",
            {"g": str(doc), "c": duplicate["id"], "d": early})
        for campaign in (both, only_dup):
            conn.exec_driver_sql(
                "INSERT INTO campaigns (id, name, filter, created_by, created_at, due_at) "
                "VALUES (%(id)s, 'Реактивация', '{}', %(by)s, %(at)s, %(at)s)",
                {"id": str(campaign), "by": org.id("head.ural"), "at": early})
        conn.exec_driver_sql(
            "INSERT INTO campaign_targets (campaign_id, client_id, owner_id, reached_at) VALUES "
            "(%(both)s, %(s)s, %(o1)s, %(late)s), (%(both)s, %(d)s, %(o2)s, %(early)s), "
            "(%(only)s, %(d)s, %(o2)s, NULL)",
            {"both": str(both), "only": str(only_dup), "s": survivor["id"], "d": duplicate["id"],
             "o1": org.id("m.ural.1"), "o2": org.id("m.ural.2"), "late": late, "early": early})

    svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.ural")

    assert str(org.scalar("SELECT client_id FROM erp_documents WHERE guid = :g",
                          g=str(doc))) == survivor["id"]
    targets = org.rows("SELECT campaign_id, client_id, reached_at FROM campaign_targets")
    assert {(r["campaign_id"], str(r["client_id"])) for r in targets} == {
        (both, survivor["id"]), (only_dup, survivor["id"])}
    reached = {r["campaign_id"]: r["reached_at"] for r in targets}
    assert reached[both] == early  # the earliest outcome of the two is kept
    details = org.rows("SELECT details FROM audit_log WHERE action = 'merge'")[0]["details"]
    assert details["erp_documents_moved"] == 1 and details["campaign_targets_moved"] == 1


def test_other_services_are_told_and_everything_audited(svc, org, pair):
    survivor, duplicate = pair
    svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.ural")

    merged = [r["envelope"]["payload"] for r in org.rows(
        "SELECT envelope FROM outbox WHERE type = 'clients_merged'")]
    assert merged == [{"survivor_id": survivor["id"], "merged_id": duplicate["id"],
                       "changed_by": org.id("head.ural")}]
    updated = [r["envelope"]["payload"] for r in org.rows(
        "SELECT envelope FROM outbox WHERE type = 'client_updated'")]
    assert len(updated) == 1 and updated[0]["client_id"] == survivor["id"]
    assert {"phones", "emails", "addresses", "ogrn", "website", "segment", "status",
            "contacts"} <= set(updated[0]["changed_fields"])
    assert updated[0]["phones"] == ["+73431234567", "+73437654321"]

    audit = {r["action"]: r for r in org.rows(
        "SELECT action, client_id, user_id, fields, details FROM audit_log "
        "WHERE action IN ('merge', 'merged_into')")}
    assert str(audit["merge"]["client_id"]) == survivor["id"]
    assert str(audit["merged_into"]["client_id"]) == duplicate["id"]
    assert str(audit["merge"]["user_id"]) == org.id("head.ural")
    details = audit["merge"]["details"]
    assert details["merged_id"] == duplicate["id"]
    assert details["filled"]["ogrn"] == OGRN
    assert details["not_taken"] == {"industry": "Металл"}   # named, not silently dropped
    assert len(details["contacts_moved"]) == 1
    assert "contacts" in audit["merge"]["fields"]

    # The duplicate's ownership is closed; the survivor's runs on.
    open_spans = org.rows("SELECT client_id FROM ownership_history WHERE until IS NULL")
    assert [str(r["client_id"]) for r in open_spans] == [survivor["id"]]
    history = svc.call("client_audit", survivor["id"], as_user="head.ural")
    assert history[0]["action"] == "merge"


def test_same_inn_duplicate_merges(svc, org):
    first = create(svc, {"short_name": "Кровельный двор", "inn": INN})
    second = create(svc, {"short_name": "Двор кровли", "inn": INN, "kpp": "770701001",
                          "phones": ["+7 343 111-22-33"]},
                    as_user="head.ural", owner_id=org.id("m.ural.2"), override=True)
    card = svc.call("merge_clients", first["id"], second["id"], as_user="director")
    assert card["kpp"] == "770701001" and card["phones"] == ["+73431112233"]


# --- refusals -----------------------------------------------------------------------------------

def unchanged(org, *clients):
    for client in clients:
        assert org.scalar("SELECT merged_into FROM clients WHERE id = :id",
                          id=client["id"]) is None
    assert org.scalar("SELECT count(*) FROM outbox WHERE type = 'clients_merged'") == 0
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'merge'") == 0


def test_a_client_is_not_merged_into_itself(svc, org, pair):
    survivor, _ = pair
    with pytest.raises(Conflict) as caught:
        svc.call("merge_clients", survivor["id"], survivor["id"], as_user="head.ural")
    assert caught.value.code == "same_client"
    unchanged(org, survivor)


def test_an_already_merged_client_is_refused(svc, org, pair):
    survivor, duplicate = pair
    third = create(svc, {"short_name": "Совсем другое"})
    svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.ural")
    for args in ((survivor["id"], duplicate["id"]), (duplicate["id"], third["id"]),
                 (third["id"], duplicate["id"])):
        with pytest.raises(Conflict) as caught:
            svc.call("merge_clients", *args, as_user="head.ural")
        assert caught.value.code == "already_merged"


def test_different_inns_are_refused(svc, org):
    one = create(svc, {"short_name": "Профнастил", "inn": inn10(1),
                       "phones": ["+7 343 200-00-01"]})
    two = create(svc, {"short_name": "Профнастил Плюс", "inn": inn10(2)}, as_user="m.ural.2")
    with pytest.raises(Conflict) as caught:
        svc.call("merge_clients", one["id"], two["id"], as_user="head.ural")
    assert caught.value.code == "different_inn"
    assert inn10(1) in caught.value.detail and inn10(2) in caught.value.detail
    unchanged(org, one, two)
    assert svc.call("get_client", one["id"], as_user="m.ural.1")["phones"] == ["+73432000001"]


def test_branches_of_one_company_are_refused(svc, org):
    head_office = create(svc, {"short_name": "Вектор", "inn": INN, "kpp": "770701001"})
    branch = create(svc, {"short_name": "Вектор Екатеринбург", "inn": INN, "kpp": "667101001"})
    with pytest.raises(Conflict) as caught:
        svc.call("merge_clients", head_office["id"], branch["id"], as_user="head.ural")
    assert caught.value.code == "different_kpp"
    unchanged(org, head_office, branch)


def test_unknown_and_malformed_ids(svc, org, pair):
    survivor, _ = pair
    with pytest.raises(NotFound) as caught:
        svc.call("merge_clients", survivor["id"], str(uuid.uuid4()), as_user="director")
    assert caught.value.code == "client_not_found"
    with pytest.raises(ValidationFailed) as caught:
        svc.call("merge_clients", "nope", survivor["id"], as_user="director")
    assert "survivor_id" in caught.value.fields


# --- access -------------------------------------------------------------------------------------

@pytest.mark.parametrize("caller", ["m.ural.1", "admin"])
def test_managers_and_admins_cannot_merge(svc, org, pair, caller):
    survivor, duplicate = pair
    with pytest.raises(Forbidden) as caught:
        svc.call("merge_clients", survivor["id"], duplicate["id"], as_user=caller)
    assert caught.value.code == "role_required"
    unchanged(org, survivor, duplicate)


def test_head_of_another_department_cannot_merge(svc, org, pair):
    survivor, duplicate = pair
    with pytest.raises(Forbidden) as caught:
        svc.call("merge_clients", survivor["id"], duplicate["id"], as_user="head.volga")
    assert caught.value.code == "client_access_denied"
    unchanged(org, survivor, duplicate)


def test_across_departments_only_the_director_merges(svc, org):
    ural = create(svc, {"short_name": "Гранит", "phones": ["+7 343 300-00-01"]})
    volga = create(svc, {"short_name": "Гранит Казань", "phones": ["+7 843 300-00-02"]},
                   as_user="m.volga.1")
    for head in ("head.ural", "head.volga"):
        with pytest.raises(Forbidden):
            svc.call("merge_clients", ural["id"], volga["id"], as_user=head)
    unchanged(org, ural, volga)
    card = svc.call("merge_clients", ural["id"], volga["id"], as_user="director")
    assert card["phones"] == ["+73433000001", "+78433000002"]
    assert card["department_id"] == str(org.departments["ural"])
