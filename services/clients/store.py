"""Queries of the clients service: what entrypoints need from its database, in one place."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa

from crm_platform.errors import NotFound

from .models import (
    audit_log,
    clients,
    contacts,
    departments,
    identifiers,
    ownership_history,
    staff,
)


def as_uuid(value, field: str = "id") -> uuid.UUID:
    from crm_platform.errors import ValidationFailed

    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise ValidationFailed("Неверный идентификатор", fields={field: ["не UUID"]}) from None


def lock_keys(session, keys: list[str]) -> None:
    """Serialise concurrent creations that share a key (INN, phone, e-mail, name) until commit, so
    that two managers entering the same lead at once cannot both pass the duplicate check."""
    for key in sorted(set(keys)):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.hashtextextended(sa.literal(key), 0))))


def exact_hits(session, keys: list[tuple[str, str, object]]) -> list[tuple[str, str, dict]]:
    if not keys:
        return []
    pairs = list({(kind, value) for kind, value, _ in keys})
    rows = session.execute(
        sa.select(identifiers.c.kind, identifiers.c.value,
                  identifiers.c.contact_id.label("matched_contact_id"), clients)
        .join(clients, clients.c.id == identifiers.c.client_id)
        .where(sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(pairs))
        .where(clients.c.merged_into.is_(None))
    ).mappings().all()
    return [(row["kind"], row["value"], dict(row)) for row in rows]


def same_name_hits(session, key: str, limit: int = 20) -> list[tuple[dict, float]]:
    """Clients whose normalised name equals ``key`` (btree: the fast, blocking part of the name
    check — "ООО «Стройметалл»" and "СТРОЙМЕТАЛЛ" have one key)."""
    if not key:
        return []
    rows = session.execute(
        sa.select(clients).where(clients.c.name_key == key, clients.c.merged_into.is_(None))
        .limit(limit)).mappings().all()
    return [(dict(row), 1.0) for row in rows]


def fuzzy_hits(session, key: str, limit: int = 10, threshold: float = 0.6):
    if not key:
        return []
    similarity = sa.func.similarity(clients.c.name_key, key)
    # `%` uses the GIN trigram index; set_limit makes its threshold ours. Below 0.6 nothing is
    # shown anyway (matching.SIMILAR_NAME), and a lower threshold doubles the time at 1M clients.
    session.execute(sa.select(sa.func.set_limit(threshold)))
    rows = session.execute(
        sa.select(clients, similarity.label("similarity"))
        .where(clients.c.name_key.op("%")(key))
        .where(clients.c.merged_into.is_(None))
        .order_by(similarity.desc())
        .limit(limit)
    ).mappings().all()
    return [(dict(row), float(row["similarity"])) for row in rows]


def client_row(session, client_id, *, lock: bool = False) -> dict:
    query = sa.select(clients).where(clients.c.id == as_uuid(client_id, "client_id"))
    if lock:
        query = query.with_for_update()
    row = session.execute(query).mappings().first()
    if row is None:
        raise NotFound("Клиент не найден", code="client_not_found")
    if row["merged_into"] is not None:
        raise NotFound("Клиент объединён с другим", code="client_merged",
                       extra={"merged_into": str(row["merged_into"])})
    return dict(row)


def contacts_of(session, client_ids) -> dict:
    rows = session.execute(
        sa.select(contacts).where(contacts.c.client_id.in_(list(client_ids)))
        .order_by(contacts.c.created_at)
    ).mappings().all()
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row["client_id"], []).append(dict(row))
    return grouped


def staff_names(session, user_ids) -> dict:
    ids = [u for u in set(user_ids) if u is not None]
    if not ids:
        return {}
    return dict(session.execute(
        sa.select(staff.c.user_id, staff.c.full_name).where(staff.c.user_id.in_(ids))).all())


def department_names(session, department_ids) -> dict:
    ids = [d for d in set(department_ids) if d is not None]
    if not ids:
        return {}
    return dict(session.execute(
        sa.select(departments.c.department_id, departments.c.name)
        .where(departments.c.department_id.in_(ids))).all())


def staff_member(session, user_id) -> dict | None:
    row = session.execute(sa.select(staff).where(staff.c.user_id == user_id)).mappings().first()
    return dict(row) if row else None


def department(session, department_id) -> dict | None:
    if department_id is None:
        return None
    row = session.execute(sa.select(departments).where(
        departments.c.department_id == department_id)).mappings().first()
    return dict(row) if row else None


def replace_identifiers(session, client_id, keys) -> None:
    session.execute(sa.delete(identifiers).where(identifiers.c.client_id == client_id))
    unique = {(kind, value): contact_id for kind, value, contact_id in keys}
    if unique:
        session.execute(sa.insert(identifiers), [
            {"kind": kind, "value": value, "client_id": client_id, "contact_id": contact_id}
            for (kind, value), contact_id in unique.items()])


def start_ownership(session, client_id, owner_id, department_id, reason, by, at: datetime):
    session.execute(sa.update(ownership_history)
                    .where(ownership_history.c.client_id == client_id,
                           ownership_history.c.until.is_(None))
                    .values(until=at))
    session.execute(sa.insert(ownership_history).values(
        client_id=client_id, owner_id=owner_id, department_id=department_id, since=at,
        reason=reason, changed_by=by))


def audit(session, identity, action: str, at: datetime, client_id=None, fields=(),
          details: dict | None = None) -> None:
    session.execute(sa.insert(audit_log).values(
        at=at, user_id=identity.user_id if identity else None,
        role=identity.role if identity else None, action=action, client_id=client_id,
        fields=list(fields), details=details or {}))


def audit_many(session, identity, action: str, at: datetime, client_ids, details=None) -> None:
    if client_ids:
        session.execute(sa.insert(audit_log), [
            {"at": at, "user_id": identity.user_id, "role": identity.role, "action": action,
             "client_id": cid, "fields": [], "details": details or {}} for cid in client_ids])
