"""Nothing is stored from a rejected input (issue 11, part 3): for a sample of writes refused
with 403, 409, 422, 401 — by role, by scope, by validation, by signature, hostile XML — the row
counts of every table of the service that refused them are unchanged. Only the records of the
refusal itself may grow: ``access_denials`` (excluded from the counts by the fixture), the
clients' append-only access audit, and the 1C bridge's quarantine with its log and
announcement (what the README says a refused 1C message leaves)."""

from __future__ import annotations

import pytest

from crm_platform.testing import wait_for
from services.erp_bridge.tests.ed_samples import counterparty_xml, ed_message

pytestmark = pytest.mark.integration

# Tables that record the refusal itself (by design), per service.
REFUSAL_RECORDS = {
    "clients": {"audit_log"},
    "erp_bridge": {"quarantine", "exchange_log", "outbox"},
}
BILLION_LAUGHS = ("<?xml version=\"1.0\"?><!DOCTYPE Message [<!ENTITY a \"aaaaaaaaaa\">"
                  + "".join(f"<!ENTITY a{n + 1} \"{f'&a{n};' * 10 if n else '&a;' * 10}\">"
                            for n in range(9)) + "]><Message>&a9;</Message>")


def counts(stack, service: str) -> dict[str, int]:
    # processed_events is the inbox of events from other services, consumed in the background.
    skip = REFUSAL_RECORDS.get(service, set()) | {"processed_events"}
    return {t: n for t, n in stack.row_counts(service).items() if t not in skip}


CASES = [
    # (who, method, path, body or callable(stack) -> kwargs, expected status, service)
    ("admin", "POST", "/api/v1/clients",
     {"json": {"short_name": "ООО «Админский»", "inn": "7707083893", "region": "RU-SVE"}},
     403, "clients"),
    ("m.ural.1", "POST", "/api/v1/clients",
     {"json": {"short_name": "ООО «Кривой ИНН»", "inn": "7707083890", "region": "RU-SVE",
               "phones": ["12"], "emails": ["not-an-address"]}}, 422, "clients"),
    ("m.ural.1", "POST", "/api/v1/clients",
     {"json": {"short_name": "Ы" * 5000, "inn": "7707083893", "region": "RU-SVE"}},
     422, "clients"),
    ("m.ural.1", "POST", "/api/v1/departments",
     {"json": {"name": "Самозваный отдел", "regions": ["RU-MOW"]}}, 403, "directory"),
    ("head.ural", "POST", "/api/v1/users",
     {"json": {"username": "intruder", "full_name": "Чужой", "role": "director"}},
     403, "directory"),
    ("m.ural.1", "POST", "/api/v1/deals",
     lambda s: {"json": {"client_id": s.clients["m.volga.1"]["id"], "title": "Чужая сделка"}},
     409, "deals"),      # client_owned: refused naming the owner (README, deals)
    ("m.ural.1", "POST", "/api/v1/deals",
     {"json": {"title": "", "amount": "-1e400"}}, 422, "deals"),
    ("m.ural.1", "POST", "/api/v1/erp/enterprise-data",
     {"data": ed_message(1, []), "headers": {"Content-Type": "application/xml"}},
     403, "erp_bridge"),
    ("erp.1c", "POST", "/api/v1/erp/enterprise-data",
     {"data": BILLION_LAUGHS.encode(), "headers": {"Content-Type": "application/xml"}},
     422, "erp_bridge"),
    ("erp.1c", "POST", "/api/v1/erp/enterprise-data",
     {"data": ed_message(7, [counterparty_xml(
         "3f2a1c9e-5b7d-11ee-8c99-0242ac120002", "Н" * 600, "7701234567", "770101001")]),
      "headers": {"Content-Type": "application/xml"}}, 422, "erp_bridge"),
    (None, "POST", "/api/v1/telephony/mango/events/call",
     {"data": {"vpbx_api_key": "k", "sign": "0" * 64, "json": '{"call_id": "x"}'}},
     401, "telephony"),
    (None, "POST", "/api/v1/telephony/zadarma",
     {"data": {"event": "NOTIFY_START", "pbx_call_id": "in_1", "call_start": "2026-01-01 10:00:00"},
      "headers": {"Signature": "forged"}}, 403, "telephony"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2].rsplit('/', 1)[-1]}-{c[4]}"
                                             for c in CASES])
def test_a_rejected_write_stores_nothing(stack, case):
    who, method, path, body, status, service = case
    kwargs = body(stack) if callable(body) else body
    before = counts(stack, service)
    response = stack.request(who, method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert counts(stack, service) == before
    if status == 403 and who:
        # ... and the refusal is on record in the service that refused.
        wait_for(lambda: stack.scalar(service, "SELECT count(*) FROM access_denials "
                                      "WHERE user_id = :u", u=stack.users[who]["id"]),
                 timeout=3, message=f"the denial of {who} in {service}")
