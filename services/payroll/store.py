"""Database work of the payroll service: facts, ownership history, plans, schemes, documents.

Plain functions over a SQLAlchemy session (the caller's transaction); the rules they apply live in
``domain``. Concurrency: one ERP document is changed under an advisory lock on its GUID, and a
person's salary documents under an advisory lock on the person, so parallel handlers (several
replicas, several queues) serialise where they meet and never deadlock (locks taken in order).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict

from .domain.facts import DocumentState, OwnerPeriod, apply_revision, erp_facts, owner_at
from .domain.months import month_of, next_month
from .domain.pay import KPIS, FrozenMonth, Pay, compute_pay, correction, money, next_tier
from .domain.workflow import FROZEN
from .models import (
    client_aliases,
    client_owners,
    erp_documents,
    kpi_facts,
    pay_schemes,
    positions,
    salary_documents,
    sales_plans,
    staff,
)
from .schemes import scheme_from_definition

PLAN_COLUMNS = {"sales": "sales", "shipments": "shipments", "payments": "payments",
                "new_clients": "new_clients", "calls": "calls", "meetings": "meetings"}

Touched = set[tuple[uuid.UUID, date]]


def lock(session, key: str) -> None:
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))


def as_uuid(value) -> uuid.UUID | None:
    if value is None:
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# -- ownership ---------------------------------------------------------------------------------

def resolve_client(session, client_id) -> uuid.UUID | None:
    client_id = as_uuid(client_id)
    if client_id is None:
        return None
    seen = set()
    while client_id not in seen:
        seen.add(client_id)
        survivor = session.execute(sa.select(client_aliases.c.survivor_id).where(
            client_aliases.c.merged_id == client_id)).scalar()
        if survivor is None:
            return client_id
        client_id = survivor
    return client_id


def owner_periods(session, client_id) -> list[OwnerPeriod]:
    rows = session.execute(sa.select(client_owners).where(
        client_owners.c.client_id == client_id)).mappings()
    return [OwnerPeriod(r["valid_from"], r["owner_id"], r["department_id"]) for r in rows]


def add_owner_period(session, client_id, valid_from: datetime, owner_id, department_id) -> None:
    session.execute(pg_insert(client_owners).values(
        client_id=as_uuid(client_id), valid_from=valid_from, owner_id=as_uuid(owner_id),
        department_id=as_uuid(department_id)).on_conflict_do_nothing())


def add_alias(session, merged_id, survivor_id) -> None:
    session.execute(pg_insert(client_aliases).values(
        merged_id=as_uuid(merged_id), survivor_id=as_uuid(survivor_id)).on_conflict_do_update(
        index_elements=["merged_id"], set_={"survivor_id": as_uuid(survivor_id)}))


def department_of(session, user_id) -> uuid.UUID | None:
    if user_id is None:
        return None
    return session.execute(sa.select(staff.c.department_id).where(
        staff.c.user_id == as_uuid(user_id))).scalar()


def reattribute_client(session, client_id) -> Touched:
    """Give every fact of the client to its owner at the fact's date (after the ownership history
    of the client changed). Facts dated before a hand-over stay where they were."""
    client_id = as_uuid(client_id)
    periods = owner_periods(session, client_id)
    touched: Touched = set()
    if not periods:
        return touched
    rows = session.execute(sa.select(kpi_facts).where(
        kpi_facts.c.client_id == client_id, kpi_facts.c.kpi.in_(("sales", "shipments",
                                                                   "payments")))).mappings()
    for row in list(rows):
        period = owner_at(periods, row["at"])
        owner = as_uuid(period.owner_id) if period else None
        if owner == row["user_id"]:
            continue
        session.execute(sa.update(kpi_facts).where(
            kpi_facts.c.kpi == row["kpi"], kpi_facts.c.source_key == row["source_key"]).values(
            user_id=owner, department_id=as_uuid(period.department_id) if period else None,
            updated_at=utcnow()))
        if row["user_id"] is not None:
            touched.add((row["user_id"], row["month"]))
        if owner is not None:
            touched.add((owner, row["month"]))
    return touched


# -- facts -------------------------------------------------------------------------------------

def upsert_fact(session, *, kpi: str, source_key: str, user_id, department_id, client_id,
                at: datetime, value: Decimal, counts: bool) -> Touched:
    """Set one fact; returns the (user, month) pairs whose figures may have changed."""
    old = session.execute(sa.select(kpi_facts).where(
        kpi_facts.c.kpi == kpi, kpi_facts.c.source_key == source_key)).mappings().first()
    month = month_of(at)
    values = {"user_id": as_uuid(user_id), "department_id": as_uuid(department_id),
              "client_id": as_uuid(client_id), "month": month, "at": at, "value": value,
              "counts": counts, "updated_at": utcnow()}
    session.execute(pg_insert(kpi_facts).values(kpi=kpi, source_key=source_key, **values)
                    .on_conflict_do_update(index_elements=["kpi", "source_key"], set_=values))
    touched: Touched = set()
    if old is not None and old["user_id"] is not None:
        if (old["user_id"], old["month"], old["value"], old["counts"]) != (
                values["user_id"], month, value, counts):
            touched.add((old["user_id"], old["month"]))
    if values["user_id"] is not None and (old is None or old["value"] != value
                                          or old["counts"] != counts or old["month"] != month
                                          or old["user_id"] != values["user_id"]):
        touched.add((values["user_id"], month))
    return touched


def apply_erp_documents(session, items: list[tuple[str, str, dict]]
                        ) -> tuple[Touched, dict]:
    """ERP events (kind, action, payload) applied together, in a few statements whatever their
    number: every document keeps its newest revision (so their order does not matter), its facts
    follow it. Returns the touched (manager, month) pairs and, for each, the event type that
    touched it last."""
    by_guid: dict[uuid.UUID, list[tuple[str, str, dict]]] = {}
    for kind, action, payload in items:
        by_guid.setdefault(as_uuid(payload["document_guid"]), []).append((kind, action, payload))
    if not by_guid:
        return set(), {}
    guids = sorted(by_guid, key=str)
    # One lock per document, all in one round trip and in one order (replicas cannot deadlock).
    session.execute(sa.text(
        "SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(CAST(:keys AS text[])) AS k "
        "ORDER BY k"), {"keys": [f"payroll-doc:{g}" for g in guids]})
    current = {r.document_guid: DocumentState(r.revision, r.counts) for r in session.execute(
        sa.select(erp_documents.c.document_guid, erp_documents.c.revision, erp_documents.c.counts)
        .where(erp_documents.c.document_guid.in_(guids)))}
    final: dict[uuid.UUID, tuple[DocumentState, str, str, dict]] = {}
    for guid in guids:
        state = current.get(guid)
        for kind, action, payload in sorted(by_guid[guid], key=lambda i: i[2]["revision"]):
            applied = apply_revision(state, action, payload["revision"])
            if applied is not None:
                state = applied
                final[guid] = (applied, kind, action, payload)
    if not final:
        return set(), {}
    clients = resolve_clients(session, {p.get("client_id") for _, _, _, p in final.values()})
    periods = owner_periods_of(session, set(clients.values()) - {None})
    now = utcnow()
    documents, facts, causes = [], [], {}
    for guid, (state, kind, action, payload) in final.items():
        client_id = clients.get(as_uuid(payload.get("client_id")))
        documents.append({"document_guid": guid, "kind": kind, "revision": state.revision,
                          "counts": state.counts, "number": payload["number"],
                          "client_id": client_id, "document_date": payload["document_date"],
                          "amount": payload["amount"], "updated_at": now})
        period = owner_at(periods.get(client_id, []), payload["document_date"]) \
            if client_id else None
        for kpi, value in erp_facts(kind, payload).items():
            facts.append({"kpi": kpi, "source_key": str(guid),
                          "user_id": as_uuid(period.owner_id) if period else None,
                          "department_id": as_uuid(period.department_id) if period else None,
                          "client_id": client_id, "month": month_of(payload["document_date"]),
                          "at": payload["document_date"], "value": value,
                          "counts": state.counts, "updated_at": now,
                          "_cause": f"erp_{kind}_{action}"})
    insert = pg_insert(erp_documents)
    session.execute(insert.on_conflict_do_update(
        index_elements=["document_guid"],
        set_={c: insert.excluded[c] for c in documents[0] if c != "document_guid"}), documents)
    touched = upsert_facts(session, facts, causes)
    return touched, causes


def resolve_clients(session, client_ids) -> dict:
    """client id -> the client it is now (a merged duplicate -> its survivor)."""
    resolved = {as_uuid(c): as_uuid(c) for c in client_ids if c is not None}
    for _ in range(5):                 # merges of merges: a short chain at most
        aliases = dict(session.execute(sa.select(
            client_aliases.c.merged_id, client_aliases.c.survivor_id).where(
            client_aliases.c.merged_id.in_(set(resolved.values())))).all()) if resolved else {}
        if not aliases:
            break
        resolved = {k: aliases.get(v, v) for k, v in resolved.items()}
    return resolved


def owner_periods_of(session, client_ids) -> dict:
    periods: dict = {}
    if not client_ids:
        return periods
    for r in session.execute(sa.select(client_owners).where(
            client_owners.c.client_id.in_(client_ids))).mappings():
        periods.setdefault(r["client_id"], []).append(
            OwnerPeriod(r["valid_from"], r["owner_id"], r["department_id"]))
    return periods


def upsert_facts(session, facts: list[dict], causes: dict) -> Touched:
    """Set many facts in one statement; returns the (user, month) pairs whose figures may have
    changed and notes in ``causes`` which fact's ``_cause`` touched each."""
    if not facts:
        return set()
    keys = {(f["kpi"], f["source_key"]) for f in facts}
    old = {(r["kpi"], r["source_key"]): r for r in session.execute(sa.select(kpi_facts).where(
        sa.tuple_(kpi_facts.c.kpi, kpi_facts.c.source_key).in_(list(keys)))).mappings()}
    touched: Touched = set()
    rows = []
    for fact in facts:
        cause = fact.pop("_cause", "")
        rows.append(fact)
        before = old.get((fact["kpi"], fact["source_key"]))
        now_key = (fact["user_id"], fact["month"])
        changed = before is None or (before["user_id"], before["month"], before["value"],
                                     before["counts"]) != (fact["user_id"], fact["month"],
                                                           fact["value"], fact["counts"])
        if not changed:
            continue
        if before is not None and before["user_id"] is not None:
            touched.add((before["user_id"], before["month"]))
            causes[(before["user_id"], before["month"])] = cause
        if fact["user_id"] is not None:
            touched.add(now_key)
            causes[now_key] = cause
    insert = pg_insert(kpi_facts)
    session.execute(insert.on_conflict_do_update(
        index_elements=["kpi", "source_key"],
        set_={c: insert.excluded[c] for c in rows[0] if c not in ("kpi", "source_key")}), rows)
    return touched


def facts_for(session, user_id, month: date) -> dict[str, Decimal]:
    rows = session.execute(
        sa.select(kpi_facts.c.kpi, sa.func.sum(kpi_facts.c.value))
        .where(kpi_facts.c.user_id == as_uuid(user_id), kpi_facts.c.month == month,
               kpi_facts.c.counts.is_(True))
        .group_by(kpi_facts.c.kpi)).all()
    facts = {k: Decimal(0) for k in KPIS}
    for kpi, total in rows:
        facts[kpi] = Decimal(total)
    facts["sales"] = money(facts["sales"])
    facts["payments"] = money(facts["payments"])
    for kpi in ("new_clients", "calls", "meetings"):
        facts[kpi] = Decimal(int(facts[kpi]))
    return facts


# -- plans -------------------------------------------------------------------------------------

def plans_for(session, user_id, month: date) -> dict[str, Decimal | None]:
    row = session.execute(sa.select(sales_plans).where(
        sales_plans.c.user_id == as_uuid(user_id), sales_plans.c.month == month)).mappings().first()
    if row is None:
        return {k: None for k in KPIS}
    return {k: (None if row[c] is None else Decimal(row[c])) for k, c in PLAN_COLUMNS.items()}


def plan_payload(row: dict) -> dict:
    """``sales_plan_changed`` of a stored plan row."""
    return {"user_id": row["user_id"], "department_id": row["department_id"],
            "month": row["month"], "sales_amount": row["sales"],
            "shipments_amount": row["shipments"], "payments_amount": row["payments"],
            "new_clients": row["new_clients"], "calls": row["calls"],
            "meetings": row["meetings"]}


def save_plan(session, user_id, month: date, department_id, values: dict, by) -> dict:
    row = {"department_id": as_uuid(department_id), "updated_at": utcnow(),
           "updated_by": as_uuid(by),
           **{PLAN_COLUMNS[k]: values.get(k) for k in KPIS}}
    session.execute(pg_insert(sales_plans).values(user_id=as_uuid(user_id), month=month, **row)
                    .on_conflict_do_update(index_elements=["user_id", "month"], set_=row))
    return {"user_id": as_uuid(user_id), "month": month, **row}


# -- schemes -----------------------------------------------------------------------------------

def position_of(session, user_id) -> str | None:
    """The pay scheme position of a person: set explicitly, else their role (None: unknown)."""
    position = session.execute(sa.select(positions.c.position).where(
        positions.c.user_id == as_uuid(user_id))).scalar()
    if position:
        return position
    return session.execute(sa.select(staff.c.role).where(
        staff.c.user_id == as_uuid(user_id))).scalar()


def scheme_row_for(session, position: str, month: date):
    return session.execute(
        sa.select(pay_schemes).where(pay_schemes.c.position == position,
                                     pay_schemes.c.valid_from <= month)
        .order_by(pay_schemes.c.valid_from.desc(), pay_schemes.c.version.desc()).limit(1)
    ).mappings().first()


def scheme_row(session, scheme_id: int):
    return session.execute(sa.select(pay_schemes).where(
        pay_schemes.c.id == scheme_id)).mappings().first()


# -- documents ---------------------------------------------------------------------------------

def document_row(session, user_id, month: date, *, for_update: bool = False):
    query = sa.select(salary_documents).where(salary_documents.c.user_id == as_uuid(user_id),
                                              salary_documents.c.month == month)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).mappings().first()


def documents_of(session, user_id) -> list[dict]:
    return [dict(r) for r in session.execute(sa.select(salary_documents).where(
        salary_documents.c.user_id == as_uuid(user_id)).order_by(
        salary_documents.c.month)).mappings()]


def _decimalize(data: dict) -> dict:
    return {k: (None if v is None else Decimal(str(v))) for k, v in data.items()}


def corrections_for(session, user_id, month: date, docs: list[dict]) -> list:
    """Correction lines a document of ``month`` carries: for every frozen earlier month whose
    next open document is this one, what today's facts change in it."""
    lines = []
    by_month = {d["month"]: d for d in docs}
    for frozen in (d for d in docs if d["state"] in FROZEN and d["month"] < month):
        between = [m for m, d in by_month.items()
                   if frozen["month"] < m < month and d["state"] not in FROZEN]
        if between:
            continue  # an earlier open document carries it
        scheme = scheme_row(session, frozen["scheme_id"]) if frozen["scheme_id"] else None
        if scheme is None:
            continue
        current = facts_for(session, user_id, frozen["month"])
        recomputed = compute_pay(scheme_from_definition(scheme["definition"]),
                                 _decimalize(frozen["plans"]), current)
        approved_base = sum((Decimal(str(ln["amount"])) for ln in frozen["lines"]
                             if ln["kind"] != "correction"), Decimal(0))
        corrected_since = sum(
            (Decimal(str(ln["amount"])) for d in docs if d["state"] in FROZEN
             and d["month"] > frozen["month"] for ln in d["lines"]
             if ln["kind"] == "correction" and ln.get("source_month") == frozen[
                 "month"].isoformat()), Decimal(0))
        line = correction(FrozenMonth(frozen["month"], approved_base,
                                      _decimalize(frozen["facts"]), corrected_since),
                          recomputed, current)
        if line is not None:
            lines.append(line)
    return lines


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def month_pay(session, user_id, month: date):
    """(scheme row, plans, facts, Pay without corrections) of one person's month; the scheme row
    is None when no scheme applies to the person's position in that month."""
    plans, facts = plans_for(session, user_id, month), facts_for(session, user_id, month)
    position = position_of(session, user_id)
    scheme = None if position is None else scheme_row_for(session, position, month)
    pay = None if scheme is None else compute_pay(
        scheme_from_definition(scheme["definition"]), plans, facts)
    return scheme, plans, facts, pay


def compute_document(session, user_id, month: date, *, department_id=None) -> dict | None:
    """Create or recompute the draft of (user, month); returns its row, or None when no scheme
    applies. The caller checked that it is a draft (or does not exist yet)."""
    scheme, plans, facts, pay = month_pay(session, user_id, month)
    if scheme is None:
        return None
    docs = documents_of(session, user_id)
    pay: Pay = pay.with_lines(corrections_for(session, user_id, month, docs))
    existing = next((d for d in docs if d["month"] == month), None)
    values = {
        "department_id": as_uuid(department_id) if department_id else department_of(
            session, user_id),
        "state": "draft", "stale": False, "scheme_id": scheme["id"],
        "plans": _jsonable(plans), "facts": _jsonable(facts),
        "kpis": _jsonable([k.as_dict() for k in pay.kpis]),
        "lines": _jsonable([ln.as_dict() for ln in pay.lines]),
        "total": pay.total,
        "weighted_fulfilment": None if pay.weighted_fulfilment is None else money(
            pay.weighted_fulfilment),
        "computed_at": utcnow(),
    }
    if existing is None:
        doc_id = uuid.uuid4()
        session.execute(sa.insert(salary_documents).values(
            id=doc_id, user_id=as_uuid(user_id), month=month, revision=1, **values))
    else:
        if existing["state"] != "draft":
            raise Conflict("Пересчитать можно только черновик", code="wrong_state")
        doc_id = existing["id"]
        session.execute(sa.update(salary_documents).where(salary_documents.c.id == doc_id)
                        .values(revision=existing["revision"] + 1, **values))
    return dict(session.execute(sa.select(salary_documents).where(
        salary_documents.c.id == doc_id)).mappings().one())


def follow_facts(session, user_id, month: date, *, corrections: bool = True
                 ) -> list[tuple[str, dict]]:
    """After the facts (or the plan) of (user, month) changed: a draft is recomputed, a confirmed
    document is marked stale, and when the month is frozen the next open month's document
    (created when missing) is recomputed to carry the correction (facts only: a frozen month's
    plan is the one it was approved with). Returns (action, document row) changes."""
    lock(session, f"payroll-user:{user_id}")
    changed: list[tuple[str, dict]] = []
    doc = document_row(session, user_id, month, for_update=True)
    if doc is None or (doc["state"] in FROZEN and not corrections):
        return changed
    if doc["state"] in FROZEN:
        target = next_month(month)
        while True:
            nxt = document_row(session, user_id, target, for_update=True)
            if nxt is None or nxt["state"] not in FROZEN:
                break
            target = next_month(target)
        if nxt is None:
            row = compute_document(session, user_id, target)
            if row is not None:
                changed.append(("computed", row))
            return changed
        doc = nxt
    if doc["state"] == "draft":
        changed.append(("computed", compute_document(session, user_id, doc["month"])))
    elif doc["state"] == "confirmed" and not doc["stale"]:
        session.execute(sa.update(salary_documents).where(salary_documents.c.id == doc["id"])
                        .values(stale=True, revision=doc["revision"] + 1))
        changed.append(("stale", dict(document_row(session, user_id, doc["month"]))))
    return changed


def document_payload(row: dict, action: str, changed_by=None) -> dict:
    """``salary_document_changed`` of a stored document."""
    return {"document_id": row["id"], "user_id": row["user_id"],
            "department_id": row["department_id"], "month": row["month"], "state": row["state"],
            "stale": row["stale"], "total": row["total"], "revision": row["revision"],
            "action": action, "changed_by": as_uuid(changed_by)}


def widget(session, user_id, month: date) -> dict:
    """The desk widget of (user, month): plan, fact, fulfilment per KPI, pay so far, next tier."""
    scheme, plans, facts, pay = month_pay(session, user_id, month)
    if pay is None:
        kpis = compute_pay(scheme_from_definition({}), plans, facts).kpis
        projected, f, tier = None, None, None
    else:
        kpis, projected, f = pay.kpis, pay.total, pay.weighted_fulfilment
        tier = next_tier(scheme_from_definition(scheme["definition"]), plans, facts)
    return {"user_id": as_uuid(user_id), "department_id": department_of(session, user_id),
            "month": month, "kpis": [k.as_dict() for k in kpis],
            "weighted_fulfilment": None if f is None else money(f),
            "projected_pay": projected,
            "next_tier": None if tier is None else tier.as_dict(),
            "scheme_id": None if scheme is None else scheme["id"]}
