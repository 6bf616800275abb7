"""Entrypoints of the directory service: absences (vacation, sick leave, business trip, day off)
of users — a mixin of ``DirectoryService``. The admin records anyone's, a sales head those of
their department's people. Every change (and a cancellation: kept, never deleted) is emitted as
``absence_changed`` with the absence's whole state, which the deals service replicates to skip
absent managers when it distributes leads.
"""

from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from .models import ABSENCE_KINDS, absences, users

MAX_DAYS = 366


def check_absence(data: dict, current: dict | None = None) -> tuple[dict, dict]:
    """``kind``, ``starts_on``, ``ends_on`` (ISO dates, at most a year), ``note``?; pure."""
    errors: dict[str, list[str]] = {}
    merged = {**(current or {}), **(data or {})}
    clean: dict = {}
    if merged.get("kind") not in ABSENCE_KINDS:
        errors["kind"] = [f"одно из: {', '.join(ABSENCE_KINDS)}"]
    clean["kind"] = merged.get("kind")
    for key in ("starts_on", "ends_on"):
        value = merged.get(key)
        try:
            clean[key] = value if isinstance(value, date) else date.fromisoformat(str(value))
        except ValueError:
            errors[key] = ["дата ГГГГ-ММ-ДД"]
    if not errors and clean["ends_on"] < clean["starts_on"]:
        errors["ends_on"] = ["не раньше начала"]
    elif not errors and (clean["ends_on"] - clean["starts_on"]).days >= MAX_DAYS:
        errors["ends_on"] = ["не больше года"]
    note = merged.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        errors["note"] = ["текст до 500 символов"]
    clean["note"] = note
    return clean, errors


def _view(row) -> dict:
    return {"id": str(row["id"]), "user_id": str(row["user_id"]), "kind": row["kind"],
            "starts_on": row["starts_on"].isoformat(), "ends_on": row["ends_on"].isoformat(),
            "note": row["note"], "cancelled": row["cancelled"]}


class AbsenceEntrypoints:
    def _absence_target(self, session, identity, user_id):
        row = session.execute(sa.select(users.c.id, users.c.department_id).where(
            users.c.id == self._uuid(user_id, "user_id"))).mappings().first()
        if row is None:
            raise NotFound("Пользователь не найден")
        if identity.role == "sales_head" and str(row["department_id"]) != identity.department_id:
            raise Forbidden("Сотрудник другого отдела", code="department_forbidden")
        return row

    def _emit_absence(self, session, row) -> None:
        self.outbox.emit(session, "absence_changed", {
            "absence_id": row["id"], "user_id": row["user_id"], "kind": row["kind"],
            "starts_on": row["starts_on"], "ends_on": row["ends_on"],
            "cancelled": row["cancelled"]})

    @rpc
    @idempotent
    def add_absence(self, user_id: str, data: dict) -> dict:
        """Record an absence of a user (admin; a sales head for their department): ``kind``
        (vacation, sick_leave, business_trip, day_off, other), ``starts_on``, ``ends_on``
        (inclusive), ``note``?."""
        identity = self.caller.require("admin", "sales_head")
        clean, errors = check_absence(data)
        if errors:
            raise ValidationFailed("Проверьте отсутствие", fields=errors)
        now = utcnow()
        with self.db.session() as session:
            target = self._absence_target(session, identity, user_id)
            row = {"id": uuid.uuid4(), "user_id": target["id"], **clean, "cancelled": False,
                   "created_at": now, "created_by": identity.user_id, "updated_at": now}
            session.execute(sa.insert(absences).values(**row))
            self._emit_absence(session, row)
            return _view(row)

    @rpc
    def update_absence(self, absence_id: str, changes: dict) -> dict:
        """Change an absence's dates, kind or note, or cancel it (``cancelled: true``)."""
        identity = self.caller.require("admin", "sales_head")
        with self.db.session() as session:
            current = session.execute(sa.select(absences).where(
                absences.c.id == self._uuid(absence_id, "absence_id")).with_for_update()) \
                .mappings().first()
            if current is None:
                raise NotFound("Отсутствие не найдено")
            self._absence_target(session, identity, current["user_id"])
            clean, errors = check_absence(
                {k: v for k, v in (changes or {}).items() if k != "cancelled"}, dict(current))
            cancelled = (changes or {}).get("cancelled", current["cancelled"])
            if not isinstance(cancelled, bool):
                errors["cancelled"] = ["true или false"]
            if errors:
                raise ValidationFailed("Проверьте отсутствие", fields=errors)
            row = {**current, **clean, "cancelled": cancelled, "updated_at": utcnow()}
            session.execute(sa.update(absences).where(absences.c.id == current["id"]).values(
                **clean, cancelled=cancelled, updated_at=row["updated_at"]))
            self._emit_absence(session, row)
            return _view(row)

    @rpc
    def list_absences(self, user_id: str | None = None, department_id: str | None = None,
                      since: str | None = None) -> list[dict]:
        """Absences (not cancelled) ending on or after ``since`` (default today), of a user or a
        department (a sales head: their own department's)."""
        identity = self.caller.require("admin", "sales_head", "director")
        try:
            day = date.fromisoformat(since) if since else utcnow().date()
        except ValueError:
            raise ValidationFailed("Неверная дата", fields={"since": ["ГГГГ-ММ-ДД"]}) from None
        query = sa.select(absences).join(users, users.c.id == absences.c.user_id).where(
            absences.c.cancelled.is_(False), absences.c.ends_on >= day)
        if identity.role == "sales_head":
            department_id = identity.department_id
        if department_id:
            query = query.where(users.c.department_id == self._uuid(department_id,
                                                                    "department_id"))
        if user_id:
            query = query.where(absences.c.user_id == self._uuid(user_id, "user_id"))
        with self.db.session() as session:
            return [_view(r) for r in session.execute(
                query.order_by(absences.c.starts_on)).mappings()]
