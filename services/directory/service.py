"""nameko entrypoints of the directory service: the organisation (regions, departments, users with
their roles, PBX extensions and mailboxes) and the check of local passwords.

Other services learn about people from ``department_changed`` / ``user_changed`` events and keep
what they need (telephony its extension map, mail its mailboxes).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from eventlet import tpool
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from . import domain
from .absences import AbsenceEntrypoints
from .models import departments, regions, users
from .schemas import (
    DepartmentSchema,
    DepartmentUpdateSchema,
    RegionSchema,
    UserSchema,
    UserUpdateSchema,
)

USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


def load(schema, data, *, partial=False) -> dict:
    try:
        return schema.load(data or {}, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed("Данные не прошли проверку", fields=exc.messages) from None


def unique_violation(exc: IntegrityError) -> Conflict:
    text = str(exc.orig)
    for field in ("username", "email", "extension", "mailbox", "name"):
        if f"({field})" in text:
            return Conflict("Такое значение уже занято", fields={field: ["уже используется"]})
    return Conflict("Запись противоречит существующей")


class DirectoryService(AbsenceEntrypoints, PersistentService):
    name = "directory"

    # -- reading ---------------------------------------------------------------------------
    @rpc
    def authenticate(self, username: str, password: str) -> dict:
        """Check a local password; returns the identity to sign into a token. The one RPC that
        needs no caller identity (it is how one gets it)."""
        with self.db.session() as session:
            row = session.execute(
                sa.select(users).where(users.c.username == domain.normalise_username(username))
            ).mappings().first()
            ok = tpool.execute(domain.password_matches, row["password_hash"] if row else None,
                               password or "")
            if not ok or not row or not row["active"]:
                raise Unauthenticated("Неверное имя пользователя или пароль",
                                      code="bad_credentials")
            return domain.identity_for(row, self._department(session, row["department_id"]))

    @rpc
    def identity_of(self, username: str) -> dict:
        """Identity of an active user, for a token issued by the company's SSO (integration and
        gateway use: the caller must be an integration account or the gateway's SSO login)."""
        self.caller.require("integration", "admin")
        with self.db.session() as session:
            row = session.execute(
                sa.select(users).where(users.c.username == domain.normalise_username(username),
                                       users.c.active.is_(True))
            ).mappings().first()
            if row is None:
                raise Unauthenticated("Пользователь не найден в справочнике", code="unknown_user")
            return domain.identity_for(row, self._department(session, row["department_id"]))

    @rpc
    def list_regions(self) -> list[dict]:
        """Regions (ISO 3166-2:RU codes) departments can cover."""
        self.caller.require()
        with self.db.session() as session:
            rows = session.execute(sa.select(regions).order_by(regions.c.name)).mappings()
            return RegionSchema(many=True).dump(rows)

    @rpc
    def list_departments(self) -> list[dict]:
        """Every department with its regions and head."""
        self.caller.require()
        with self.db.session() as session:
            rows = session.execute(sa.select(departments).order_by(departments.c.name)).mappings()
            return DepartmentSchema(many=True).dump(rows)

    @rpc
    def list_users(self, department_id: str | None = None, role: str | None = None,
                   include_inactive: bool = False) -> list[dict]:
        """Colleagues, optionally of one department or role (any signed-in user may list them:
        the directory holds no client data)."""
        self.caller.require()
        query = sa.select(*USER_COLUMNS).order_by(users.c.full_name)
        if department_id:
            query = query.where(users.c.department_id == self._uuid(department_id, "department_id"))
        if role:
            query = query.where(users.c.role == role)
        if not include_inactive:
            query = query.where(users.c.active.is_(True))
        with self.db.session() as session:
            dept_regions = self._regions_by_department(session)
            return [self._dump_user(row, dept_regions) for row in
                    session.execute(query).mappings()]

    @rpc
    def page_users(self, filters: dict | None = None, limit: int = 50, cursor: str | None = None,
                   sort: str | None = None) -> dict:
        """``list_users`` in cursor pages: ``{"items", "next_cursor"}``, by ``sort`` (``name``,
        ``username``, ``created``; ``-`` descending). Filters: ``department_id``, ``role``,
        ``include_inactive``, ``q`` (part of the name or login)."""
        self.caller.require()
        filters = filters or {}
        query = sa.select(*USER_COLUMNS)
        if filters.get("department_id"):
            query = query.where(
                users.c.department_id == self._uuid(filters["department_id"], "department_id"))
        if filters.get("role"):
            query = query.where(users.c.role == filters["role"])
        if not filters.get("include_inactive"):
            query = query.where(users.c.active.is_(True))
        if filters.get("q"):
            text = str(filters["q"]).strip()
            query = query.where(sa.or_(users.c.full_name.icontains(text, autoescape=True),
                                       users.c.username.icontains(text, autoescape=True)))
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, query, sort=sort, default="name", id_column=users.c.id,
                sorts={"name": users.c.full_name, "username": users.c.username,
                       "created": users.c.created_at},
                cursor=cursor, limit=max(1, min(int(limit), 500)))
            dept_regions = self._regions_by_department(session)
            return {"items": [self._dump_user(row, dept_regions) for row in rows],
                    "next_cursor": next_cursor}

    @rpc
    def get_user(self, user_id: str) -> dict:
        """One user by id."""
        self.caller.require()
        with self.db.session() as session:
            row = self._user(session, user_id)
            return self._dump_user(row, self._regions_by_department(session))

    # -- changing (admin) -------------------------------------------------------------------
    @rpc
    def create_region(self, data: dict) -> dict:
        """Add a region code (admin)."""
        self.caller.require("admin")
        region = load(RegionSchema(), data)
        with self.db.session() as session:
            try:
                with session.begin_nested():
                    session.execute(sa.insert(regions).values(**region))
            except IntegrityError:
                raise Conflict("Регион уже есть", fields={"code": ["уже есть"]}) from None
        return region

    @rpc
    @idempotent
    def create_department(self, data: dict) -> dict:
        """Create a sales department covering some regions (admin); emits department_changed."""
        self.caller.require("admin")
        dept = load(DepartmentSchema(), data)
        now = utcnow()
        with self.db.session() as session:
            domain.check_regions(dept["regions"], self._region_codes(session))
            dept.update(id=uuid.uuid4(), created_at=now, updated_at=now)
            try:
                with session.begin_nested():
                    session.execute(sa.insert(departments).values(**dept))
            except IntegrityError as exc:
                raise unique_violation(exc) from None
            self._emit_department(session, dept)
            return DepartmentSchema().dump(dept)

    @rpc
    def update_department(self, department_id: str, changes: dict) -> dict:
        """Rename, change regions or head (admin); emits department_changed."""
        self.caller.require("admin")
        changes = load(DepartmentUpdateSchema(), changes, partial=True)
        with self.db.session() as session:
            current = self._department(session, self._uuid(department_id, "department_id"),
                                       lock="update")
            if current is None:
                raise NotFound("Отдел не найден")
            if "regions" in changes:
                domain.check_regions(changes["regions"], self._region_codes(session))
            changes["updated_at"] = utcnow()
            try:
                with session.begin_nested():
                    session.execute(sa.update(departments)
                                    .where(departments.c.id == current["id"]).values(**changes))
            except IntegrityError as exc:
                raise unique_violation(exc) from None
            dept = dict(current) | changes
            self._emit_department(session, dept)
            # Members' identities carry the department's regions: announce them again.
            if "regions" in changes:
                for row in session.execute(
                        sa.select(users).where(users.c.department_id == current["id"])).mappings():
                    self._emit_user(session, row, dept["regions"])
            return DepartmentSchema().dump(dept)

    @rpc
    @idempotent
    def create_user(self, data: dict) -> dict:
        """Create a user (admin); a password enables local login. Emits user_changed."""
        self.caller.require("admin")
        data = dict(data or {})
        if isinstance(data.get("username"), str):  # "Ivanov" is the login "ivanov"
            data["username"] = domain.normalise_username(data["username"])
        user = load(UserSchema(), data)
        domain.check_role_placement(user["role"], user["department_id"])
        password = user.pop("password")
        now = utcnow()
        user.update(
            id=uuid.uuid4(), username=domain.normalise_username(user["username"]),
            email=(user["email"] or None) and user["email"].lower(),
            mailbox=(user["mailbox"] or None) and user["mailbox"].lower(),
            password_hash=tpool.execute(domain.hash_password, password) if password else None,
            created_at=now, updated_at=now,
        )
        with self.db.session() as session:
            department = self._department(session, user["department_id"], lock="share")
            if user["department_id"] and department is None:
                raise ValidationFailed("Отдел не найден", fields={"department_id": ["нет такого"]})
            try:
                with session.begin_nested():
                    session.execute(sa.insert(users).values(**user))
            except IntegrityError as exc:
                raise unique_violation(exc) from None
            self._emit_user(session, user, department["regions"] if department else [])
            return self._dump_user(user, {department["id"]: department["regions"]}
                                   if department else {})

    @rpc
    def update_user(self, user_id: str, changes: dict) -> dict:
        """Change role, department, extension, mailbox or deactivate (admin); emits user_changed."""
        self.caller.require("admin")
        changes = load(UserUpdateSchema(), changes, partial=True)
        with self.db.session() as session:
            current = self._user(session, user_id)
            merged = dict(current) | changes
            domain.check_role_placement(merged["role"], merged["department_id"])
            department = self._department(session, merged["department_id"], lock="share")
            if merged["department_id"] and department is None:
                raise ValidationFailed("Отдел не найден", fields={"department_id": ["нет такого"]})
            for key in ("email", "mailbox"):
                if changes.get(key):
                    changes[key] = changes[key].lower()
            changes["updated_at"] = utcnow()
            try:
                with session.begin_nested():
                    session.execute(sa.update(users).where(users.c.id == current["id"])
                                    .values(**changes))
            except IntegrityError as exc:
                raise unique_violation(exc) from None
            merged = dict(current) | changes
            self._emit_user(session, merged, department["regions"] if department else [])
            return self._dump_user(merged, self._regions_by_department(session))

    @rpc
    def set_password(self, user_id: str, password: str) -> None:
        """Set a local password: one's own, or anyone's for an admin."""
        identity = self.caller.identity
        if identity.user_id != str(user_id):
            self.caller.require("admin")
        if not password or len(password) < 8:
            raise ValidationFailed("Пароль слишком короткий",
                                   fields={"password": ["не короче 8 символов"]})
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.session() as session:
            current = self._user(session, user_id)
            session.execute(sa.update(users).where(users.c.id == current["id"])
                            .values(password_hash=password_hash, updated_at=utcnow()))

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _uuid(value, field: str) -> uuid.UUID:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise ValidationFailed("Неверный идентификатор",
                                   fields={field: ["не UUID"]}) from None

    def _user(self, session, user_id):
        row = session.execute(
            sa.select(*USER_COLUMNS).where(users.c.id == self._uuid(user_id, "user_id"))
        ).mappings().first()
        if row is None:
            raise NotFound("Пользователь не найден")
        return row

    @staticmethod
    def _department(session, department_id, lock: str | None = None):
        """``lock="share"`` while placing a user in it (its regions go into the user's event),
        ``lock="update"`` while changing it: so a move and a region change cannot interleave
        and leave a user announced with the department's old regions."""
        if department_id is None:
            return None
        query = sa.select(departments).where(departments.c.id == department_id)
        if lock:
            query = query.with_for_update(read=lock == "share")
        return session.execute(query).mappings().first()

    @staticmethod
    def _region_codes(session) -> set[str]:
        return set(session.execute(sa.select(regions.c.code)).scalars())

    @staticmethod
    def _regions_by_department(session) -> dict:
        return dict(session.execute(sa.select(departments.c.id, departments.c.regions)).all())

    @staticmethod
    def _dump_user(row, dept_regions: dict) -> dict:
        data = UserSchema().dump(row)
        data["regions"] = list(dept_regions.get(row["department_id"], []))
        return data

    def _emit_department(self, session, dept: dict):
        self.outbox.emit(session, "department_changed", {
            "department_id": dept["id"], "name": dept["name"], "regions": dept["regions"],
            "head_user_id": dept.get("head_user_id"),
        })

    def _emit_user(self, session, user, dept_regions):
        self.outbox.emit(session, "user_changed", {
            "user_id": user["id"], "username": user["username"], "full_name": user["full_name"],
            "email": user["email"], "role": user["role"], "department_id": user["department_id"],
            "regions": list(dept_regions), "extension": user["extension"],
            "mailbox": user["mailbox"], "active": user["active"],
        })
