"""The salary document: computed from plans, facts and the scheme; its workflow and role rules;
frozen once approved (a late ERP change is a correction in the next open month); export; scheme
versions that never alter what was computed with the old one."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

from .conftest import SCHEME

pytestmark = pytest.mark.integration

OCT, NOV = "2026-10-01", "2026-11-01"


def plan(payroll, user, month, sales="1000000.00", **more):
    return payroll.svc.set_plan(payroll.org.id(user), month, {"sales": sales, **more},
                                as_user=f"head.{user.split('.')[1]}")


def document(payroll, user, month):
    docs = payroll.svc.list_documents(month, user_id=payroll.org.id(user), as_user="director")
    return payroll.svc.get_document(docs[0]["id"], as_user="director") if docs else None


def amounts(doc) -> dict:
    return {line["kind"]: Decimal(line["amount"]) for line in doc["lines"]}


def test_workflow_with_its_role_rules_and_export(payroll):
    client = payroll.client("m.ural.1")
    plan(payroll, "m.ural.1", NOV)
    plan(payroll, "m.ural.2", NOV)
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="900000.00", date="2026-11-10T09:00:00")

    with pytest.raises(Forbidden):     # managers do not compute the department's documents
        payroll.svc.compute_documents(NOV, as_user="m.ural.1")
    result = payroll.svc.compute_documents(NOV, as_user="head.ural")
    assert len(result["computed"]) == 2          # the two managers of the department
    doc = document(payroll, "m.ural.1", NOV)
    assert doc["state"] == "draft" and doc["total"] == "49000.00"   # 40 000 + 1 % of 900 000
    bonus = next(line for line in doc["lines"] if line["kind"] == "bonus")
    assert bonus["fulfilment"] == "90.00" and "90.00 % ≥ 80.00 %" in bonus["formula"]
    sales = next(k for k in doc["kpis"] if k["kpi"] == "sales")
    assert (sales["plan"], sales["fact"], sales["fulfilment"]) == ("1000000.00", "900000.00",
                                                                   "90.00")

    # A draft follows new facts by itself.
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="100000.00", date="2026-11-11T09:00:00")
    doc = document(payroll, "m.ural.1", NOV)
    assert doc["total"] == "60000.00"            # 100 %: 2 % of 1 000 000

    with pytest.raises(NotFound):                # another manager does not even see it
        payroll.svc.confirm_document(doc["id"], as_user="m.ural.2")
    with pytest.raises(Forbidden):
        payroll.svc.confirm_document(doc["id"], as_user="head.ural")
    with pytest.raises(Conflict):
        payroll.svc.approve_document(doc["id"], as_user="head.ural")   # not confirmed yet
    assert payroll.svc.confirm_document(doc["id"], as_user="m.ural.1")["state"] == "confirmed"
    with pytest.raises(NotFound):
        payroll.svc.approve_document(doc["id"], as_user="head.volga")
    with pytest.raises(Forbidden):
        payroll.svc.approve_document(doc["id"], as_user="director")
    approved = payroll.svc.approve_document(doc["id"], as_user="head.ural")
    assert approved["state"] == "approved" and approved["total"] == "60000.00"
    with pytest.raises(Conflict) as frozen:
        payroll.svc.recompute_document(doc["id"], as_user="head.ural")
    assert frozen.value.code == "frozen"

    # The returned path: confirmed, returned with a comment, a draft again.
    other = document(payroll, "m.ural.2", NOV)
    payroll.svc.confirm_document(other["id"], as_user="m.ural.2")
    with pytest.raises(ValidationFailed):
        payroll.svc.return_document(other["id"], "", as_user="head.ural")
    returned = payroll.svc.return_document(other["id"], "Проверьте оплаты за ноябрь",
                                           as_user="head.ural")
    assert returned["state"] == "draft"
    assert [(c["kind"], c["text"]) for c in returned["comments"]] == [
        ("returned", "Проверьте оплаты за ноябрь")]
    payroll.svc.comment_document(other["id"], "Исправил", as_user="m.ural.2")

    # Export: approved ones only, marked exported; CSV and XLSX carry the same totals.
    with pytest.raises(Forbidden):
        payroll.svc.export_documents(NOV, "csv", as_user="m.ural.1")
    exported = payroll.svc.export_documents(NOV, "csv", as_user="head.ural")
    assert exported["rows"] == 1 and exported["filename"] == "salary-2026-11.csv"
    text = base64.b64decode(exported["content_base64"]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:4] == ["user_id", "ФИО", "Отдел", "Месяц"]
    assert rows[1][0] == payroll.org.id("m.ural.1") and rows[1][7] == "60000,00"
    assert document(payroll, "m.ural.1", NOV)["state"] == "exported"
    book = load_workbook(io.BytesIO(base64.b64decode(
        payroll.svc.export_documents(NOV, "xlsx", as_user="director")["content_base64"])))
    assert book["Итоги"]["H2"].value == 60000
    assert [r[3] for r in book["Строки"].iter_rows(min_row=2, values_only=True)] == [
        "fixed", "percent", "bonus"]
    actions = [p["action"] for p in payroll.outbox("salary_document_changed")
               if p["document_id"] == doc["id"]]
    assert actions[-3:] == ["confirmed", "approved", "exported"]


def test_a_late_change_after_approval_is_a_correction_in_the_next_open_month(payroll):
    client = payroll.client("m.ural.1")
    plan(payroll, "m.ural.1", OCT)
    plan(payroll, "m.ural.1", NOV)
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="990000.00", date="2026-10-10T09:00:00")
    payroll.svc.compute_documents(OCT, as_user="head.ural")
    october = document(payroll, "m.ural.1", OCT)
    payroll.svc.confirm_document(october["id"], as_user="m.ural.1")
    payroll.svc.approve_document(october["id"], as_user="head.ural")
    assert october["total"] == "49900.00"

    late = str(uuid.uuid4())
    payroll.erp("shipment", "posted", client, guid=late, revision=1, amount="20000.00",
                date="2026-10-28T09:00:00")
    assert document(payroll, "m.ural.1", OCT)["total"] == "49900.00"   # frozen
    november = document(payroll, "m.ural.1", NOV)       # created to carry the correction
    assert november["state"] == "draft" and november["has_corrections"]
    line = next(ln for ln in november["lines"] if ln["kind"] == "correction")
    assert line["source_month"] == OCT and line["amount"] == "10300.00"
    assert line["title"] == "Корректировка за 10.2026"
    assert "990 000 → 1 010 000" in line["formula"]
    assert Decimal(november["total"]) == Decimal("40000.00") + Decimal("10300.00")

    # Approved with its correction, then the late document is un-posted: the next open month
    # takes the correction back, the approved ones stay as they were.
    payroll.svc.confirm_document(november["id"], as_user="m.ural.1")
    payroll.svc.approve_document(november["id"], as_user="head.ural")
    payroll.erp("shipment", "unposted", client, guid=late, revision=2, amount="20000.00",
                date="2026-10-28T09:00:00")
    december = document(payroll, "m.ural.1", "2026-12-01")
    assert amounts(december)["correction"] == Decimal("-10300.00")
    assert document(payroll, "m.ural.1", NOV)["total"] == "50300.00"


def test_facts_changing_under_a_confirmed_document_mark_it_stale(payroll):
    client = payroll.client("m.ural.1")
    plan(payroll, "m.ural.1", NOV)
    payroll.svc.compute_documents(NOV, user_id=payroll.org.id("m.ural.1"), as_user="director")
    doc = document(payroll, "m.ural.1", NOV)
    payroll.svc.confirm_document(doc["id"], as_user="m.ural.1")
    payroll.erp("payment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="50000.00", date="2026-11-10T09:00:00")
    assert document(payroll, "m.ural.1", NOV)["stale"] is True
    with pytest.raises(Conflict) as stale:
        payroll.svc.approve_document(doc["id"], as_user="head.ural")
    assert stale.value.code == "stale_document"
    payroll.svc.return_document(doc["id"], "Пришла оплата, пересчитайте", as_user="head.ural")
    recomputed = payroll.svc.recompute_document(doc["id"], as_user="m.ural.1")
    assert recomputed["stale"] is False and recomputed["total"] == "40500.00"


def test_a_new_scheme_version_never_alters_documents_computed_with_the_old(payroll):
    plan(payroll, "m.ural.1", NOV)
    payroll.svc.compute_documents(NOV, as_user="head.ural")
    doc = document(payroll, "m.ural.1", NOV)
    payroll.svc.confirm_document(doc["id"], as_user="m.ural.1")
    payroll.svc.approve_document(doc["id"], as_user="head.ural")
    with pytest.raises(Forbidden):
        payroll.svc.create_scheme_version({**SCHEME, "valid_from": NOV}, as_user="head.ural")
    with pytest.raises(ValidationFailed) as bad:
        payroll.svc.create_scheme_version({**SCHEME, "fixed": "-1", "valid_from": "2026-11-05"},
                                          as_user="admin")
    assert set(bad.value.fields) == {"fixed", "valid_from"}
    v2 = payroll.svc.create_scheme_version({**SCHEME, "valid_from": NOV, "fixed": "45000.00"},
                                           as_user="director")
    assert v2["version"] == 2
    assert document(payroll, "m.ural.1", NOV)["total"] == "40000.00"    # approved: untouched
    other = document(payroll, "m.ural.2", NOV)
    assert other["total"] == "40000.00"                                 # a draft keeps it ...
    assert payroll.svc.recompute_document(other["id"], as_user="head.ural")["total"] == \
        "45000.00"                                                      # ... until recomputed
    assert [s["version"] for s in payroll.svc.list_schemes("manager", as_user="admin")] == [2, 1]


def test_a_position_is_paid_by_its_own_scheme(payroll):
    payroll.svc.create_scheme_version({**SCHEME, "position": "senior", "fixed": "60000.00"},
                                      as_user="director")
    with pytest.raises(Forbidden):
        payroll.svc.set_position(payroll.org.id("m.ural.1"), "senior", as_user="m.ural.1")
    payroll.svc.set_position(payroll.org.id("m.ural.1"), "senior", as_user="admin")
    assert payroll.widget("m.ural.1", NOV)["projected_pay"] == "60000.00"
    assert payroll.widget("m.ural.2", NOV)["projected_pay"] == "40000.00"
    # Someone with no scheme for their role: no projected pay rather than a made-up one.
    assert payroll.widget("director", NOV)["projected_pay"] is None


def test_a_draft_follows_a_new_plan_an_approved_month_keeps_its_own(payroll):
    client = payroll.client("m.ural.1")
    payroll.erp("shipment", "posted", client, guid=str(uuid.uuid4()), revision=1,
                amount="900000.00", date="2026-11-10T09:00:00")
    plan(payroll, "m.ural.1", NOV, sales="1000000.00")
    payroll.svc.compute_documents(NOV, as_user="head.ural")
    assert document(payroll, "m.ural.1", NOV)["total"] == "49000.00"     # 90 %: 1 %
    plan(payroll, "m.ural.1", NOV, sales="900000.00")
    doc = document(payroll, "m.ural.1", NOV)
    assert doc["total"] == "58000.00"                                   # 100 %: 2 %
    payroll.svc.confirm_document(doc["id"], as_user="m.ural.1")
    payroll.svc.approve_document(doc["id"], as_user="head.ural")
    plan(payroll, "m.ural.1", NOV, sales="2000000.00")
    assert document(payroll, "m.ural.1", NOV)["total"] == "58000.00"
    assert document(payroll, "m.ural.1", "2026-12-01") is None          # no correction either
