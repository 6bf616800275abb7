"""Import of clients from Excel/CSV through the running clients service: created, merged into an
existing client or an earlier row, refused with the owner named; one transaction; dry run; who may
import for whom; events and audit."""

from __future__ import annotations

import base64
import io

import openpyxl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from crm_platform import outbox as outbox_module
from crm_platform.errors import Conflict, Forbidden, ValidationFailed
from services.clients import importing as importing_entrypoints
from services.clients.domain import importing
from services.clients.domain.card import normalise_client, normalise_contact
from services.clients.importing import IDENTIFIER_REASONS, batch_matches
from services.clients.service import ClientsService

pytestmark = pytest.mark.integration

INN_A, INN_B, INN_C = "7707083893", "6600000010", "6600000028"
MAPPING = {"Клиент": "short_name", "ИНН": "inn", "Телефоны": "phones", "Почта": "emails",
           "Регион": "region", "Контакт": "contact_name", "Тел. контакта": "contact_phones"}
HEADERS = list(MAPPING)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csv_file(rows, headers=HEADERS) -> str:
    lines = [";".join(headers)] + [";".join(cell or "" for cell in row) for row in rows]
    return b64("\r\n".join(lines).encode("cp1251"))


def xlsx_file(rows, headers=HEADERS) -> str:
    book = openpyxl.Workbook()
    book.active.append(headers)
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return b64(buffer.getvalue())


def rows_by_line(report):
    return {entry["row"]: entry for entry in report["rows"]}


def counts(org) -> dict:
    return {table: org.scalar(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            for table in ("clients", "contacts", "identifiers", "audit_log", "outbox",
                          "ownership_history")}


def empty(org) -> bool:
    return not any(counts(org).values())


FILE = [
    # row 2: a new client with a contact
    ["ООО «Стройметалл»", INN_A, "8 (343) 123-45-67", "Sales@StroyMetall.RU", "RU-SVE",
     "Петров Пётр", "+7 916 123 45 67"],
    # row 3: the same client written differently: its phone and contact are added to row 2's
    ["Стройметалл, ООО", "", "8 343 765-43-21", "", "", "Сидорова Анна", "8 916 765 43 21"],
    # row 4: another new client without a contact
    ["ИП Ромашкин", "", "+7 343 111 22 33", "", "", "", ""],
    # row 5: a bad INN and a PBX extension as a phone: refused, the rest goes on
    ["АО Кривой ИНН", "7707083894", "101", "", "", "", ""],
]


def test_a_manager_imports_clients_and_contacts(svc, org):
    report = svc.import_clients(csv_file(FILE), "база.csv", MAPPING)

    assert report["dry_run"] is False and report["filename"] == "база.csv"
    assert report["owner_id"] == org.id("m.ural.1")
    assert report["totals"] == {"rows": 4, "created": 2, "merged": 1, "refused": 1,
                                "merged_into_existing": 0, "clients_updated": 0}
    rows = rows_by_line(report)
    assert rows[2]["status"] == "created" and rows[2]["contacts_added"] == 1
    assert rows[3] == {"row": 3, "status": "merged", "client_id": rows[2]["client_id"],
                       "short_name": "ООО «Стройметалл»", "into": "file", "matched_by": "name",
                       "duplicate_of_row": 2, "warnings": [],
                       "added": {"phones": 2, "emails": 0, "contacts": 1, "fields": []}}
    assert rows[4]["status"] == "created"
    refused = rows[5]
    assert refused["status"] == "refused" and refused["code"] == "validation_failed"
    assert {e["field"]: e["column"] for e in refused["errors"]} == {"inn": "ИНН",
                                                                    "phones": "Телефоны"}
    assert "ИНН" in refused["reason"]

    card = svc.get_client(rows[2]["client_id"])
    assert card["owner_id"] == org.id("m.ural.1") and card["department_name"] == "Уральский отдел"
    assert card["phones"] == ["+73431234567", "+73437654321"]
    assert card["emails"] == ["sales@stroymetall.ru"] and card["region"] == "RU-SVE"
    assert sorted(c["full_name"] for c in card["contacts"]) == ["Петров Пётр", "Сидорова Анна"]
    # The imported client is found by the duplicate check like any other.
    matches = svc.find_duplicates({"short_name": "x", "phones": ["+7 916 765-43-21"]})
    assert matches[0]["client_id"] == rows[2]["client_id"]

    # One event per created client, with its final state; audit per client and a summary.
    events = org.rows("SELECT envelope FROM outbox WHERE type = 'client_created' ORDER BY id")
    payloads = {e["envelope"]["payload"]["client_id"]: e["envelope"]["payload"] for e in events}
    assert set(payloads) == {rows[2]["client_id"], rows[4]["client_id"]}
    assert payloads[rows[2]["client_id"]]["phones"] == ["+73431234567", "+73437654321"]
    audit = org.rows("SELECT client_id, fields, details FROM audit_log "
                     "WHERE action = 'import' ORDER BY id")
    per_client = {str(a["client_id"]): a for a in audit if a["client_id"]}
    assert set(per_client) == set(payloads)
    assert per_client[rows[2]["client_id"]]["details"]["rows"] == [2, 3]
    assert "inn" in per_client[rows[2]["client_id"]]["fields"]
    (summary,) = [a for a in audit if a["client_id"] is None]
    assert summary["details"]["totals"] == report["totals"]
    assert summary["details"]["import_id"] == report["import_id"]
    assert org.scalar("SELECT count(*) FROM ownership_history WHERE reason = 'import'") == 2


def test_a_dry_run_reports_what_the_import_would_do_and_stores_nothing(svc, org):
    existing = svc.create_client({"short_name": "ООО Старый клиент", "inn": INN_B})["client"]
    before = counts(org)
    file = csv_file(FILE + [["Старый клиент", INN_B, "8 343 222 33 44", "", "", "", ""]])

    dry = svc.import_clients(file, "база.csv", MAPPING, dry_run=True)

    assert counts(org) == before
    assert dry["dry_run"] is True
    real = svc.import_clients(file, "база.csv", MAPPING)

    def comparable(report):
        ids = {e["client_id"] for e in report["rows"] if e["status"] == "created"}
        return {"totals": report["totals"], "rows": [
            {k: ("<new>" if k == "client_id" and v in ids else v) for k, v in e.items()}
            for e in report["rows"]]}

    assert comparable(dry) == comparable(real)
    assert rows_by_line(real)[6]["client_id"] == existing["id"]
    assert real["totals"]["merged_into_existing"] == 1


def test_rows_of_clients_in_the_base(svc, org):
    mine = svc.create_client({"short_name": "ООО Моя Кровля", "inn": INN_A},
                             contacts=[{"full_name": "Петров Пётр",
                                        "phones": ["+7 916 000 00 01"]}])["client"]
    theirs = svc.call("create_client", {"short_name": "ООО Чужой Профиль",
                                        "phones": ["8 343 500 00 00", "8 343 500 00 09"]},
                      as_user="m.volga.1")["client"]
    pool = svc.call("create_client", {"short_name": "ЗАО Пул Отдела", "inn": INN_B},
                    as_user="head.ural")["client"]
    assert pool["owner_id"] is None

    report = svc.import_clients(csv_file([
        ["Моя кровля", INN_A, "8 343 400 00 01", "info@krovlya.ru", "RU-SVE", "петров пётр",
         "8 916 000 00 02"],
        ["Профиль", "", "+7 343 500-00-00", "", "", "", ""],
        ["Пул отдела", INN_B, "", "", "", "", ""],
        ["Странная строка", "", "8 343 500 00 09, +7 916 000 00 01", "", "", "", ""],
    ]), "x.csv", MAPPING)

    rows = rows_by_line(report)
    assert rows[2]["status"] == "merged" and rows[2]["into"] == "existing"
    assert rows[2]["client_id"] == mine["id"] and rows[2]["matched_by"] == "inn"
    assert rows[2]["added"] == {"phones": 2, "emails": 1, "contacts": 0, "fields": ["region"]}
    card = svc.get_client(mine["id"])
    assert card["phones"] == ["+73434000001"] and card["emails"] == ["info@krovlya.ru"]
    assert card["region"] == "RU-SVE" and card["version"] == mine["version"] + 1
    (contact,) = card["contacts"]
    assert contact["phones"] == ["+79160000001", "+79160000002"]

    owned = rows[3]
    assert owned["status"] == "refused" and owned["code"] == "client_owned"
    assert owned["client_id"] == theirs["id"] and owned["owner"] == "Менеджер volga 1"
    assert owned["department"] == "Приволжский отдел" and owned["matched_by"] == "phone"
    assert "Менеджер volga 1" in owned["reason"] and "Приволжский отдел" in owned["reason"]
    assert rows[4]["status"] == "refused" and rows[4]["code"] == "client_in_pool"
    assert rows[4]["client_id"] == pool["id"]
    # One phone of my client and one of another manager's: not guessed, refused.
    assert rows[5]["code"] == "ambiguous_match"
    assert set(rows[5]["client_ids"]) == {mine["id"], theirs["id"]}

    assert svc.call("get_client", theirs["id"], as_user="m.volga.1")["phones"] == [
        "+73435000000", "+73435000009"]
    updated = org.rows("SELECT envelope FROM outbox WHERE type = 'client_updated'")
    assert [u["envelope"]["payload"]["client_id"] for u in updated] == [mine["id"]]
    assert set(updated[0]["envelope"]["payload"]["changed_fields"]) == {
        "phones", "emails", "region", "contacts"}
    assert org.scalar("SELECT count(*) FROM clients") == 3


def test_a_repeat_of_a_refused_row_is_refused_too(svc, org):
    svc.call("create_client", {"short_name": "ООО Чужой", "inn": INN_C}, as_user="m.volga.1")
    report = svc.import_clients(csv_file([
        ["Чужой", INN_C, "", "", "", "", ""],
        ["ООО «ЧУЖОЙ»", "", "8 343 500 00 01", "", "", "", ""],
    ]), "x.csv", MAPPING)
    rows = rows_by_line(report)
    assert rows[2]["code"] == "client_owned"
    assert rows[3]["code"] == "duplicate_of_refused" and rows[3]["duplicate_of_row"] == 2
    assert rows[3]["owner"] == "Менеджер volga 1"
    assert org.scalar("SELECT count(*) FROM clients") == 1


def test_an_xlsx_file_is_imported(svc, org):
    report = svc.import_clients(xlsx_file([
        ["Кровельный Двор", 7707083893, 83431234567, None, "sve", None, None]]),
        "клиенты.xlsx", MAPPING)
    (row,) = report["rows"]
    assert row["status"] == "created"
    card = svc.get_client(row["client_id"])
    assert card["inn"] == INN_A and card["phones"] == ["+73431234567"]


# -- nothing half-imported ----------------------------------------------------------------------

@pytest.mark.parametrize("file, filename, mapping, field", [
    (b64(b"PK\x03\x04broken"), "x.xlsx", MAPPING, "file"),
    (csv_file(FILE), "x.csv", {**MAPPING, "Нет такого": "inn"}, "mapping.Нет такого"),
    (csv_file(FILE), "x.csv", {"Клиент": "short_name", "ИНН": "passport"}, "mapping.ИНН"),
    (csv_file([]), "x.csv", MAPPING, "file"),
    ("@@@", "x.csv", MAPPING, "file_base64"),
])
def test_a_file_that_cannot_be_read_stores_nothing(svc, org, file, filename, mapping, field):
    with pytest.raises(ValidationFailed) as caught:
        svc.import_clients(file, filename, mapping)
    assert field in caught.value.fields
    assert empty(org)


def test_a_file_over_the_row_limit_stores_nothing(svc, org, monkeypatch):
    monkeypatch.setattr(importing, "MAX_ROWS", 3)
    with pytest.raises(ValidationFailed) as caught:
        svc.import_clients(csv_file(FILE), "x.csv", MAPPING)
    assert "больше 3 строк" in caught.value.detail
    assert empty(org)


def test_a_failure_half_way_leaves_nothing(svc, org, monkeypatch):
    calls = []
    original = outbox_module.make_envelope

    def failing(source, event_type, payload, **kwargs):
        calls.append(event_type)
        if len(calls) == 2:  # clients, contacts, identifiers and audit are written by now
            raise RuntimeError("the database went away")
        return original(source, event_type, payload, **kwargs)

    monkeypatch.setattr(outbox_module, "make_envelope", failing)
    with pytest.raises(RuntimeError):
        svc.import_clients(csv_file(FILE), "x.csv", MAPPING)
    assert calls == ["client_created", "client_created"]
    assert empty(org)


def test_an_import_waits_for_the_duplicate_index_and_gives_up_politely(svc, org, monkeypatch):
    monkeypatch.setattr(importing_entrypoints, "LOCK_WAIT", "300ms")
    with org.engine.connect() as other:
        other.execute(sa.text("LOCK TABLE identifiers IN ROW EXCLUSIVE MODE"))
        with pytest.raises(Conflict) as caught:
            svc.import_clients(csv_file(FILE), "x.csv", MAPPING)
        assert caught.value.code == "import_busy"
        # A dry run does not lock: it writes nothing that could collide.
        assert svc.import_clients(csv_file(FILE), "x.csv", MAPPING, dry_run=True)["totals"][
            "created"] == 2
        other.rollback()
    assert empty(org)


# -- who imports for whom -----------------------------------------------------------------------

OWNER_MAPPING = {"Клиент": "short_name", "Менеджер": "owner_id"}


def owner_file(org, *rows):
    return csv_file([[name, org.id(user) if user else ""] for name, user in rows],
                    headers=["Клиент", "Менеджер"])


def test_a_sales_head_imports_into_the_pool_or_for_a_manager(svc, org):
    pool = svc.call("import_clients", owner_file(org, ("Пул Один", None)), "x.csv",
                    OWNER_MAPPING, as_user="head.ural")
    assert pool["owner_id"] is None and pool["department_id"] == str(org.departments["ural"])
    card = svc.call("get_client", pool["rows"][0]["client_id"], as_user="head.ural")
    assert card["owner_id"] is None and card["department_name"] == "Уральский отдел"

    report = svc.call("import_clients",
                      owner_file(org, ("Для Второго", None), ("Для Первого", "m.ural.1"),
                                 ("Чужому Отделу", "m.volga.1")),
                      "x.csv", OWNER_MAPPING, owner_id=org.id("m.ural.2"), as_user="head.ural")
    rows = rows_by_line(report)
    assert svc.call("get_client", rows[2]["client_id"], as_user="m.ural.2")["owner_name"] == \
        "Менеджер ural 2"
    assert svc.call("get_client", rows[3]["client_id"], as_user="m.ural.1")["owner_name"] == \
        "Менеджер ural 1"
    assert rows[4]["status"] == "refused" and rows[4]["code"] == "owner_not_allowed"
    assert rows[4]["errors"][0]["field"] == "owner_id"

    with pytest.raises(Forbidden):
        svc.call("import_clients", owner_file(org, ("Икс", None)), "x.csv", OWNER_MAPPING,
                 owner_id=org.id("m.volga.1"), as_user="head.ural")


def test_a_director_imports_for_any_manager(svc, org):
    report = svc.call("import_clients", owner_file(org, ("Директорский", None)), "x.csv",
                      OWNER_MAPPING, owner_id=org.id("m.volga.2"), as_user="director")
    card = svc.call("get_client", report["rows"][0]["client_id"], as_user="m.volga.2")
    assert card["department_name"] == "Приволжский отдел"


def test_a_manager_imports_only_for_themself(svc, org):
    with pytest.raises(Forbidden) as caught:
        svc.import_clients(owner_file(org, ("Икс", None)), "x.csv", OWNER_MAPPING,
                           owner_id=org.id("m.ural.2"))
    assert caught.value.code == "owner_not_allowed"
    report = svc.import_clients(owner_file(org, ("Мой", "m.ural.1"), ("Не мой", "m.ural.2")),
                                "x.csv", OWNER_MAPPING)
    rows = rows_by_line(report)
    assert rows[2]["status"] == "created" and rows[3]["code"] == "owner_not_allowed"


@pytest.mark.parametrize("user", ["admin", None])
def test_others_may_not_import(svc, org, user):
    with pytest.raises(Exception) as caught:
        svc.call("import_clients", csv_file(FILE), "x.csv", MAPPING, as_user=user)
    assert type(caught.value).__name__ in ("Forbidden", "Unauthenticated")
    assert empty(org)


# -- the batch duplicate check ------------------------------------------------------------------

def identifier_blocking(matches):
    return [(m["client_id"], sorted(r["reason"] for r in m["reasons"]
                                    if r["reason"] in IDENTIFIER_REASONS))
            for m in matches if m["blocking"]
            and {r["reason"] for r in m["reasons"]} & IDENTIFIER_REASONS]


def test_the_batch_check_agrees_with_the_services_own(svc, org):
    svc.create_client({"short_name": "ООО «Стройметалл»", "inn": INN_A, "kpp": "770701001",
                       "phones": ["8 343 100 00 01"], "emails": ["info@stroymetall.ru"]},
                      contacts=[{"full_name": "Петров", "phones": ["8 916 100 00 01"]}])
    svc.call("create_client", {"short_name": "Стройметалл Урал", "phones": ["8 343 100 00 02"]},
             as_user="m.volga.1")
    svc.call("create_client", {"short_name": "АО Кровля", "inn": INN_B}, as_user="head.ural")
    svc.call("create_client", {"short_name": "ИП Кровельщиков", "inn": "500100732259"},
             contacts=[{"full_name": "Кровельщиков", "emails": ["k@krov.ru"]}],
             as_user="m.ural.2")
    inputs = [
        ({"short_name": "Стройметалл"}, []),
        ({"short_name": "СТРОЙМЕТАЛЛ", "inn": INN_A, "kpp": "770702001"}, []),
        ({"short_name": "Другое", "phones": ["+7 343 100-00-01"]}, []),
        ({"short_name": "Кровля"}, []),
        ({"short_name": "Кровля", "inn": INN_C}, []),
        ({"short_name": "Совсем новый клиент"}, []),
        ({"short_name": "Стройметалл-Урал"}, [{"full_name": "Некто",
                                               "phones": ["8 916 100 00 01"]}]),
        ({"short_name": "Кто-то", "inn": INN_B}, [{"full_name": "Некто",
                                                   "emails": ["K@krov.ru"]}]),
    ]
    candidates = [(normalise_client(card), [normalise_contact(c) for c in contacts])
                  for card, contacts in inputs]
    with Session(org.engine) as session:
        own = [ClientsService._matches(None, session, card, contacts)
               for card, contacts in candidates]
        batch = batch_matches(session, [(card, contacts, True) for card, contacts in candidates])

    assert any(len(matches) > 1 for matches in own)
    for own_matches, batch_matches_ in zip(own, batch, strict=True):
        if identifier_blocking(own_matches):
            # The decision rests on identifiers: the same clients, the same identifier reasons.
            assert identifier_blocking(batch_matches_) == identifier_blocking(own_matches)
            assert batch_matches_[0]["client_id"] == own_matches[0]["client_id"]
        else:
            def key(m):
                return m["client_id"]

            assert sorted(batch_matches_, key=key) == sorted(own_matches, key=key)


def test_a_big_import_leaves_fresh_planner_statistics(svc, org, monkeypatch):
    monkeypatch.setattr(importing_entrypoints, "ANALYZE_AFTER", 2)
    svc.import_clients(csv_file(FILE), "x.csv", MAPPING)
    assert org.scalar("SELECT reltuples FROM pg_class WHERE relname = 'clients'") == 2
    assert org.scalar("SELECT reltuples FROM pg_class WHERE relname = 'identifiers'") == 7
