"""The access matrix (issue 11, part 3): every read endpoint × every role, and every endpoint on
one client or deal × every role × a resource of one's own / of one's department / of another
department in another region. The tables below ARE the specification; each cell is checked over
HTTP against the running system, and every refusal must be audited (a row in the refusing
service's ``access_denials`` naming the caller).

Outcomes: ``A`` allowed (2xx; a list shows only what the caller may see), ``D`` denied (403),
``H`` hidden (404: the service does not even admit the thing exists — another manager's deal).

Where the rules come from: DESIGN.md §1 (roles) and §2.12 (a manager sees own clients, a sales
head the department, the director everything; enforced in the services), the README's service
sections, and the services' access code (clients/access, deals/store.can_see, logistics roles,
payroll, reports, mail/domain/access, erp_bridge, directory).
"""

from __future__ import annotations

import itertools
import uuid

import pytest
import sqlalchemy as sa

from crm_platform.audit import DENIALS
from crm_platform.testing import wait_for
from tests.hostile.conftest import ROLE_USERS, SERVICES, inn

pytestmark = pytest.mark.integration

A, D, H = "allowed", "denied", "hidden"
ROLES = ("admin", "director", "sales_head", "manager", "dispatcher", "driver", "integration")


def only(*roles: str) -> dict:
    return {role: A if role in roles else D for role in ROLES}


EVERYONE = only(*ROLES)
SALES = ("director", "sales_head", "manager")
FLEET = ("admin", "director", "dispatcher", "integration")     # logistics.FLEET_READ roles

# -- role level: the read endpoints without a resource in the path ------------------------------
# (GET path with the query the endpoint requires) -> outcome per role
LISTS = {
    "/api/v1/me": EVERYONE,
    "/api/v1/regions": EVERYONE,
    "/api/v1/departments": EVERYONE,
    "/api/v1/users": EVERYONE,
    "/api/v1/absences": only("admin", "director", "sales_head"),
    "/api/v1/settings/work-calendar": EVERYONE,
    # Lists filtered to the caller's scope (each service applies it):
    "/api/v1/clients": EVERYONE,
    "/api/v1/deals": EVERYONE,
    "/api/v1/tasks": EVERYONE,
    "/api/v1/calendar": EVERYONE,
    "/api/v1/notifications": EVERYONE,
    "/api/v1/funnels": EVERYONE,
    "/api/v1/kpi": EVERYONE,
    "/api/v1/consent-texts": EVERYONE,
    "/api/v1/consents?email=buyer1@roof1.example.ru": only(
        "admin", "director", "sales_head", "manager", "integration"),
    "/api/v1/forecast?month_from=2026-01": only(*SALES, "admin"),
    "/api/v1/forecast/deals?month=2026-01&figure=pipeline": only(*SALES, "admin"),
    # Sales heads and directors steer; managers only see their own figures.
    "/api/v1/campaigns": only("director", "sales_head"),
    "/api/v1/segments": only(*SALES),
    "/api/v1/reports": only(*SALES),
    "/api/v1/lead-forms": only("admin", "director", "sales_head"),
    "/api/v1/payroll/schemes": only("admin", "director", "sales_head"),
    "/api/v1/payroll/plans?month=2026-01": only(*SALES, "admin"),
    "/api/v1/payroll/documents?month=2026-01": only(*SALES, "admin"),
    # Mail: the admin manages mailboxes but reads no mail (README, mail).
    "/api/v1/mail/mailboxes": EVERYONE,
    "/api/v1/mail/messages": only(*SALES, "integration"),
    "/api/v1/mail/suggestions": only(*SALES, "integration"),
    # The 1C bridge: its quarantine is the admin's; its status is for the admin, the director
    # and the integration account that feeds it.
    "/api/v1/erp/quarantine": only("admin"),
    "/api/v1/erp/status": only("admin", "director", "integration"),
    "/api/v1/erp/reconciliation?date_from=2026-01-01&date_to=2026-02-01": only(
        "admin", "director", "integration"),
    # Personal data requests: admin and director (README, privacy).
    "/api/v1/privacy/requests": only("admin", "director"),
    # Logistics: the fleet is the dispatcher's (admins may, directors read).
    "/api/v1/logistics/carriers": only(*FLEET),
    "/api/v1/logistics/vehicles": only(*FLEET),
    "/api/v1/logistics/drivers": only(*FLEET),
    "/api/v1/logistics/products": only(*FLEET),
    "/api/v1/logistics/trips": only(*FLEET),
    "/api/v1/logistics/proposal": only("admin", "director", "dispatcher"),
    "/api/v1/logistics/orders": EVERYONE,
    # (integration: the machine account a reports read model would read it with)
    "/api/v1/logistics/report?date_from=2026-01-01&date_to=2026-02-01": only(
        "admin", "director", "sales_head", "dispatcher", "integration"),
    # A driver's trips: only a driver known to logistics (this login has no driver card yet).
    "/api/v1/logistics/my-trips": only(),
}

# -- scope level: one client's or one deal's endpoints --------------------------------------------
# Resources: "own" belongs to the acting manager m.ural.1; "department" to m.ural.2 (same
# department, Ural, RU-SVE); "other" to m.volga.1 (the Volga department, region RU-TA).
# The acting users: manager m.ural.1, sales head head.ural, and one user of each other role.
SCOPES = ("own", "department", "other")
OWNERS = {"own": "m.ural.1", "department": "m.ural.2", "other": "m.volga.1"}


def scoped(manager, sales_head, director, admin, integration, dispatcher=(D, D, D),
           driver=(D, D, D)) -> dict:
    """Outcomes per role, each a triple for the own / department / other resource."""
    return {"manager": manager, "sales_head": sales_head, "director": director, "admin": admin,
            "integration": integration, "dispatcher": dispatcher, "driver": driver}


CLIENT_CARD = scoped(manager=(A, D, D), sales_head=(A, A, D), director=(A, A, A),
                     admin=(D, D, D),             # the admin reads no personal data
                     integration=(A, A, A))       # the PBX, mail and 1C accounts match numbers
# The deals service's rule (store.can_see): owner, the department's head, the director and —
# unlike the clients service — the admin; another's deal is hidden (404), not refused.
DEAL = scoped(manager=(A, H, H), sales_head=(A, A, H), director=(A, A, A), admin=(A, A, A),
              integration=(A, A, A), dispatcher=(H, H, H), driver=(H, H, H))
CLIENTS = {
    "/api/v1/clients/{id}": CLIENT_CARD,
    "/api/v1/clients/{id}/ownership": CLIENT_CARD,
    # The client's audit log: sales heads and the director, not the managers themselves.
    "/api/v1/clients/{id}/audit": scoped(manager=(D, D, D), sales_head=(A, A, D),
                                         director=(A, A, A), admin=(D, D, D),
                                         integration=(D, D, D)),
    # The card's feed lives in deals (client_timeline.may_read = store.can_see + own pool).
    "/api/v1/clients/{id}/timeline": scoped(manager=(A, D, D), sales_head=(A, A, D),
                                            director=(A, A, A), admin=(A, A, A),
                                            integration=(A, A, A)),
    # Deliveries are a filtered list (logistics.list_transport_orders): never refused.
    "/api/v1/clients/{id}/deliveries": scoped(
        manager=(A, A, A), sales_head=(A, A, A), director=(A, A, A), admin=(A, A, A),
        integration=(A, A, A), dispatcher=(A, A, A), driver=(A, A, A)),
}
DEALS = {
    "/api/v1/deals/{id}": DEAL,
    "/api/v1/deals/{id}/timeline": DEAL,
    "/api/v1/deals/{id}/history": DEAL,
    "/api/v1/deals/{id}/documents": DEAL,
    "/api/v1/deals/{id}/deliveries": DEAL,
}

DATABASES = tuple(SERVICES)


# Answers that come after the access check passed but say the stack lacks a part (this test
# system has no 1C OData interface): they count as allowed.
NOT_CONFIGURED = {"odata_not_configured"}


def outcome(response) -> str:
    if 200 <= response.status_code < 300:
        return A
    if response.status_code == 422 and response.json().get("code") in NOT_CONFIGURED:
        return A
    if response.status_code == 403:
        return D
    if response.status_code == 404:
        return H
    raise AssertionError(f"{response.request.method} {response.request.url}: "
                         f"{response.status_code} {response.text[:300]}")


class DenialLog:
    """The ``access_denials`` rows of every service database, read after a marker."""

    def __init__(self, stack):
        self.stack = stack

    def mark(self) -> dict[str, int]:
        return {s: self.stack.scalar(s, "SELECT coalesce(max(id), 0) FROM access_denials")
                for s in DATABASES}

    def since(self, mark: dict[str, int]) -> list[dict]:
        rows = []
        for service, last in mark.items():
            with self.stack.engine(service).connect() as conn:
                rows += [dict(r) for r in conn.execute(sa.text(
                    "SELECT * FROM access_denials WHERE id > :last"), {"last": last}).mappings()]
        return rows


def check(stack, log: DenialLog, user: str, path: str, expected: str) -> str | None:
    """None when the cell holds, else a line saying how it does not."""
    mark = log.mark() if expected != A else None
    got = outcome(stack.request(user, "GET", path))
    if got != expected:
        return f"{user:>11} GET {path}: expected {expected}, got {got}"
    if mark is not None:
        # The service writes the row after its reply has gone (nameko's worker_result):
        # give it a moment.
        def recorded():
            return [r for r in log.since(mark) if r["user_id"] == stack.users[user]["id"]]

        try:
            mine = wait_for(recorded, timeout=3, interval=0.02)
        except AssertionError:
            return f"{user:>11} GET {path}: {got} but no access_denials row"
        if not all(r["role"] and r["operation"] and r["code"] for r in mine):
            return f"{user:>11} GET {path}: incomplete denial record {mine}"
    return None


def test_every_read_endpoint_by_every_role(stack):
    log = DenialLog(stack)
    spec = stack.request(None, "GET", "/openapi.json").json()
    covered = {path.split("?")[0] for path in LISTS}
    unlisted = [p for p, item in spec["paths"].items() if "get" in item and "{" not in p
                and p.startswith("/api/v1/") and p not in covered
                and not p.endswith(("/stream", "/screen-pop", "/zadarma"))]
    assert not unlisted, f"read endpoints missing from the matrix: {unlisted}"
    failures = [f for path, rules in LISTS.items() for role, expected in rules.items()
                if (f := check(stack, log, ROLE_USERS[role], path, expected))]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind", ["clients", "deals"])
def test_every_resource_endpoint_by_every_role_and_scope(stack, kind):
    log = DenialLog(stack)
    table, resources = (CLIENTS, stack.clients) if kind == "clients" else (DEALS, stack.deals)
    failures = []
    for template, rules in table.items():
        for role, outcomes in rules.items():
            for scope, expected in zip(SCOPES, outcomes, strict=True):
                path = template.format(id=resources[OWNERS[scope]]["id"])
                failure = check(stack, log, ROLE_USERS[role], path, expected)
                if failure:
                    failures.append(f"[{scope}] {failure}")
    assert not failures, "\n".join(failures)


def test_the_gateways_own_refusal_is_audited_too(stack):
    """The dead-letter console is checked by the gateway itself (it has no database): its
    refusal is a log line and a ``crm_access_denials_total`` sample with service="gateway"."""
    sample = DENIALS.labels("gateway", "dead_letters", "role_required")
    before = sample._value.get()
    for role in ("director", "sales_head", "manager", "dispatcher", "driver", "integration"):
        response = stack.request(ROLE_USERS[role], "GET", "/api/v1/admin/dead-letters/deals")
        assert response.status_code == 403, (role, response.text)
    assert sample._value.get() == before + 6
    assert stack.request("admin", "GET", "/api/v1/admin/dead-letters/deals").status_code == 200


def test_a_denial_record_names_who_what_which_and_why(stack):
    """The row a refused card read leaves in the clients service."""
    stack.request("m.ural.1", "GET", f"/api/v1/clients/{stack.clients['m.volga.1']['id']}")
    wait_for(lambda: stack.scalar(
        "clients", "SELECT count(*) FROM access_denials WHERE user_id = :u "
        "AND operation = 'get_client'", u=stack.users["m.ural.1"]["id"]), timeout=3)
    with stack.engine("clients").connect() as conn:
        row = conn.execute(sa.text(
            "SELECT * FROM access_denials WHERE user_id = :u AND operation = 'get_client' "
            "ORDER BY id DESC LIMIT 1"), {"u": stack.users["m.ural.1"]["id"]}).mappings().one()
    assert row["role"] == "manager" and row["service"] == "clients"
    assert row["resource"] == stack.clients["m.volga.1"]["id"]
    assert row["department_id"] == stack.departments["ural"]["id"]
    assert row["reason"] and row["at"] is not None

    # Admins read them over HTTP; nobody else may.
    response = stack.request("admin", "GET", "/api/v1/admin/access-denials/clients",
                             params={"after": row["id"] - 1, "limit": 1})
    assert response.status_code == 200, response.text
    assert [(d["id"], d["operation"], d["user_id"], d["code"]) for d in response.json()] == [
        (row["id"], "get_client", stack.users["m.ural.1"]["id"], row["code"])]
    for role in ("director", "sales_head", "manager", "integration"):
        response = stack.request(ROLE_USERS[role], "GET", "/api/v1/admin/access-denials/clients")
        assert response.status_code == 403, (role, response.text)


# -- role level: creating writes ------------------------------------------------------------------
# Each with a body valid for the roles allowed (so "allowed" means created, 2xx); a refused write
# must be audited and store nothing in the service that refused it.
def _unique() -> str:
    return uuid.uuid4().hex[:8]


_inn_seq = itertools.count(1000)

WRITES = {
    # (method, path, body maker(stack), service) -> outcome per role
    ("POST", "/api/v1/departments",
     lambda s: {"name": f"Отдел {_unique()}", "regions": ["RU-MOW"]}, "directory"):
        only("admin"),
    ("POST", "/api/v1/users",
     lambda s: {"username": f"u.{_unique()}", "full_name": "Новый Сотрудник", "role": "manager",
                "department_id": s.departments["ural"]["id"]}, "directory"):
        only("admin"),
    # A client is entered by the people who sell and by the integration accounts (web forms,
    # imports); not by the admin, who reads no personal data (clients.create_client).
    ("POST", "/api/v1/clients",
     lambda s: {"short_name": f"ООО «Новый {_unique()}»", "inn": inn(next(_inn_seq)),
                "region": "RU-SVE"}, "clients"):
        only(*SALES, "integration"),
    # Tasks are set by managers and sales heads (and machine accounts); the director, who is
    # "read-mostly", sets none (deals.create_task).
    ("POST", "/api/v1/tasks",
     lambda s: {"title": "Позвонить по счёту", "kind": "task",
                "due_at": "2027-01-15T10:00:00+03:00",
                "department_id": s.departments["ural"]["id"]}, "deals"):
        only("sales_head", "manager", "integration"),
    ("POST", "/api/v1/logistics/carriers",
     lambda s: {"name": f"Перевозчик {_unique()}", "rate_kind": "per_trip", "rate": "15000.00"},
     "logistics"):
        only("admin", "dispatcher"),
    ("POST", "/api/v1/payroll/schemes",
     lambda s: {"position": "manager", "valid_from": "2027-01-01", "fixed": "40000.00"},
     "payroll"):
        only("admin", "director"),
    # The deals scans (stalls, overdue tasks, ...): the admin, or a scheduler's machine account.
    ("POST", "/api/v1/admin/deals/scans", lambda s: None, "deals"):
        only("admin", "integration"),
}


def _row_counts(stack, service: str) -> dict[str, int]:
    return {t: n for t, n in stack.row_counts(service).items()
            if t not in ("processed_events", "audit_log")}


def test_creating_writes_by_every_role(stack):
    log = DenialLog(stack)
    failures = []
    for (method, path, body, service), rules in WRITES.items():
        for role, expected in rules.items():
            user = ROLE_USERS[role]
            mark = log.mark()
            before = _row_counts(stack, service) if expected == D else None
            payload = body(stack)
            response = stack.request(user, method, path,
                                     **({"json": payload} if payload is not None else {}))
            if response.status_code not in (200, 201, 202, 204, 403, 404):
                failures.append(f"{user:>11} {method} {path}: {response.status_code} "
                                f"{response.text[:200]}")
                continue
            got = outcome(response)
            if got != expected:
                failures.append(f"{user:>11} {method} {path}: expected {expected}, got {got}")
                continue
            if expected == D:
                if _row_counts(stack, service) != before:
                    failures.append(f"{user:>11} {method} {path}: refused but stored something")
                try:
                    wait_for(lambda mark=mark, user=user: [
                        r for r in log.since(mark) if r["user_id"] == stack.users[user]["id"]],
                        timeout=3, interval=0.02)
                except AssertionError:
                    failures.append(f"{user:>11} {method} {path}: no access_denials row")
    assert not failures, "\n".join(failures)
