"""Sales plans: per manager and month, rolled up per department; entered by the sales head (own
department; a director any), imported from XLSX (a template to fill is offered), copied from the
previous month. Every change is emitted as ``sales_plan_changed`` (the deals forecast keeps them)
and the manager's desk widget is pushed again (``kpi_changed``).

KPIs and units: ``sales`` (realisations, ₽), ``shipments`` (tonnes), ``payments`` (₽),
``new_clients``, ``calls``, ``meetings`` (counts). ``sales`` is required, the rest optional.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from datetime import date
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain.months import first_day, previous_month
from .domain.pay import KPI_TITLES, KPIS
from .models import departments, sales_plans, staff
from .payloads import (
    CopyResultSchema,
    ImportResultSchema,
    PlanSchema,
    PlansOverviewSchema,
    dump,
)

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 2000
TEMPLATE_HEADERS = ["user_id", "Менеджер"] + [KPI_TITLES[k] for k in KPIS]
HEADER_TO_KPI = {KPI_TITLES[k]: k for k in KPIS}


class PlanValuesSchema(Schema):
    sales = fields.Decimal(required=True, places=2, allow_nan=False,
                           validate=validate.Range(min=0, max=Decimal("1e13")))
    shipments = fields.Decimal(allow_none=True, load_default=None, places=2, allow_nan=False,
                               validate=validate.Range(min=0, max=Decimal("1e9")))
    payments = fields.Decimal(allow_none=True, load_default=None, places=2, allow_nan=False,
                              validate=validate.Range(min=0, max=Decimal("1e13")))
    new_clients = fields.Integer(allow_none=True, load_default=None, strict=True,
                                 validate=validate.Range(min=0, max=100000))
    calls = fields.Integer(allow_none=True, load_default=None, strict=True,
                           validate=validate.Range(min=0, max=100000))
    meetings = fields.Integer(allow_none=True, load_default=None, strict=True,
                              validate=validate.Range(min=0, max=100000))


def parse_month(value) -> date:
    try:
        month = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValidationFailed("Неверный месяц", fields={"month": ["ожидается ГГГГ-ММ-01"]}) \
            from None
    return first_day(month)


def load_values(data: dict, where: str = "body") -> dict:
    try:
        return PlanValuesSchema().load(data)
    except ValidationError as exc:
        raise ValidationFailed("План не прошёл проверку", fields=exc.messages) from None


def plan_dict(row) -> dict:
    return {"user_id": row["user_id"], "month": row["month"],
            "department_id": row["department_id"],
            **{k: row[store.PLAN_COLUMNS[k]] for k in KPIS},
            "updated_at": row["updated_at"], "updated_by": row["updated_by"]}


class PlanRpc:
    """RPCs of the plans (mixed into ``PayrollService``)."""

    # -- who may plan for whom ----------------------------------------------------------------
    def _planned_person(self, session, identity, user_id):
        try:
            person_id = store.as_uuid(user_id)
        except (ValueError, TypeError, AttributeError):
            person_id = None
        person = None if person_id is None else session.execute(sa.select(staff).where(
            staff.c.user_id == person_id)).mappings().first()
        if person is None or person["role"] != "manager":
            raise NotFound("Нет такого менеджера", fields={"user_id": ["не найден"]})
        if identity.role == "director":
            return person
        if identity.role == "sales_head" and identity.department_id and str(
                person["department_id"]) == str(identity.department_id):
            return person
        raise Forbidden("Планы задаёт руководитель отдела менеджера или директор",
                        code="not_head_of_department")

    def _planned_department(self, identity, department_id):
        if identity.role in ("director", "admin"):
            return store.as_uuid(department_id) if department_id else None
        if identity.role == "sales_head":
            if department_id and str(department_id) != str(identity.department_id):
                raise Forbidden("Только свой отдел", code="not_head_of_department")
            return store.as_uuid(identity.department_id)
        return None

    def _apply_plan(self, session, person, month, values, by):
        row = store.save_plan(session, person["user_id"], month, person["department_id"],
                              values, by)
        self.outbox.emit(session, "sales_plan_changed", store.plan_payload(row))
        for action, doc in store.follow_facts(session, person["user_id"], month,
                                              corrections=False):
            self.outbox.emit(session, "salary_document_changed",
                             store.document_payload(doc, action, by))
        self.emit_widget(session, person["user_id"], month, cause="sales_plan_changed")
        return row

    # -- RPCs ---------------------------------------------------------------------------------
    @rpc
    def get_plans(self, month, department_id=None) -> dict:
        """The plans of a month: one row per manager (``plan`` null when none set) and the roll-up
        per department (sums of what is planned). A manager sees their own, a sales head the
        department, a director or admin everyone (or ``department_id``)."""
        identity = self.caller.require()
        month = parse_month(month)
        with self.db.session() as session:
            query = sa.select(staff).where(staff.c.role == "manager", staff.c.active.is_(True))
            if identity.role == "manager":
                query = query.where(staff.c.user_id == store.as_uuid(identity.user_id))
            elif identity.role == "sales_head":
                query = query.where(staff.c.department_id == store.as_uuid(
                    self._planned_department(identity, department_id)))
            elif identity.role in ("director", "admin"):
                if department_id:
                    query = query.where(staff.c.department_id == store.as_uuid(department_id))
            else:
                raise Forbidden("Нет доступа к планам", code="not_allowed")
            people = session.execute(query.order_by(staff.c.full_name)).mappings().all()
            plans = {r["user_id"]: r for r in session.execute(sa.select(sales_plans).where(
                sales_plans.c.month == month, sales_plans.c.user_id.in_(
                    [p["user_id"] for p in people]))).mappings()}
            names = dict(session.execute(sa.select(departments.c.department_id,
                                                   departments.c.name)).all())
        rows, rollup = [], {}
        for p in people:
            plan = plans.get(p["user_id"])
            rows.append({"user_id": p["user_id"], "full_name": p["full_name"],
                         "department_id": p["department_id"],
                         "plan": None if plan is None else plan_dict(plan)})
            dept = rollup.setdefault(p["department_id"], {
                "department_id": p["department_id"], "name": names.get(p["department_id"], ""),
                "managers": 0, "planned": 0, **{k: None for k in KPIS}})
            dept["managers"] += 1
            if plan is not None:
                dept["planned"] += 1
                for k in KPIS:
                    value = plan[store.PLAN_COLUMNS[k]]
                    if value is not None:
                        dept[k] = (dept[k] or 0) + value
        return dump(PlansOverviewSchema, {"month": month, "managers": rows,
                                          "departments": list(rollup.values())})

    @rpc
    def set_plan(self, user_id, month, values: dict) -> dict:
        """Set one manager's plan for a month (sales head of the manager's department, or a
        director); emits ``sales_plan_changed``."""
        identity = self.caller.require("sales_head", "director")
        month, values = parse_month(month), load_values(values)
        with self.db.session() as session:
            person = self._planned_person(session, identity, user_id)
            row = self._apply_plan(session, person, month, values, identity.user_id)
            return dump(PlanSchema, plan_dict(row))

    @rpc
    def copy_plans(self, month, department_id=None) -> dict:
        """Copy last month's plans to ``month`` for the managers of the department (a sales
        head: their own; a director: one or all) who have none for ``month`` yet; plans already
        set are kept. Returns how many were copied."""
        identity = self.caller.require("sales_head", "director")
        month = parse_month(month)
        department = self._planned_department(identity, department_id)
        source = previous_month(month)
        copied = 0
        with self.db.session() as session:
            query = sa.select(sales_plans, staff.c.department_id.label("current_department")).join(
                staff, staff.c.user_id == sales_plans.c.user_id).where(
                sales_plans.c.month == source, staff.c.role == "manager",
                staff.c.active.is_(True))
            if department is not None:
                query = query.where(staff.c.department_id == department)
            existing = set(session.execute(sa.select(sales_plans.c.user_id).where(
                sales_plans.c.month == month)).scalars())
            for row in session.execute(query).mappings().all():
                if row["user_id"] in existing:
                    continue
                person = {"user_id": row["user_id"], "department_id": row["current_department"]}
                values = {k: row[store.PLAN_COLUMNS[k]] for k in KPIS}
                self._apply_plan(session, person, month, values, identity.user_id)
                copied += 1
        return dump(CopyResultSchema, {"month": month, "source_month": source, "copied": copied})

    @rpc
    def plan_template(self, month, department_id=None) -> dict:
        """An XLSX to fill in: one row per manager the caller plans for, with the current plans
        of ``month`` (``user_id`` identifies the row; the name is for reading)."""
        identity = self.caller.require("sales_head", "director")
        month = parse_month(month)
        department = self._planned_department(identity, department_id)
        with self.db.session() as session:
            query = sa.select(staff).where(staff.c.role == "manager", staff.c.active.is_(True))
            if department is not None:
                query = query.where(staff.c.department_id == department)
            people = session.execute(query.order_by(staff.c.full_name)).mappings().all()
            plans = {r["user_id"]: r for r in session.execute(sa.select(sales_plans).where(
                sales_plans.c.month == month)).mappings()}
        book = Workbook()
        sheet = book.active
        sheet.title = f"План {month:%m.%Y}"
        sheet.append(TEMPLATE_HEADERS)
        for p in people:
            plan = plans.get(p["user_id"])
            sheet.append([str(p["user_id"]), p["full_name"]] + [
                None if plan is None or plan[store.PLAN_COLUMNS[k]] is None
                else float(plan[store.PLAN_COLUMNS[k]]) if k in ("sales", "payments",
                                                                  "shipments")
                else int(plan[store.PLAN_COLUMNS[k]]) for k in KPIS])
        for column, width in zip("ABCDEFGH", (38, 34, 22, 14, 22, 14, 10, 10), strict=True):
            sheet.column_dimensions[column].width = width
        out = io.BytesIO()
        book.save(out)
        return {"filename": f"plans-{month:%Y-%m}.xlsx",
                "content_type": "application/vnd.openxmlformats-officedocument."
                                "spreadsheetml.sheet",
                "content_base64": base64.b64encode(out.getvalue()).decode(), "rows": len(people)}

    @rpc
    @idempotent
    def import_plans(self, month, file_base64: str) -> dict:
        """Import plans from an XLSX shaped like the template (headers in the first row:
        ``user_id`` and the KPI columns; other columns ignored). Every row is checked first; any
        error refuses the whole file (422 listing each row's field and reason) and nothing is
        stored; otherwise all rows are applied in one transaction."""
        identity = self.caller.require("sales_head", "director")
        month = parse_month(month)
        try:
            content = base64.b64decode(file_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("Файл не в base64", fields={"file_base64": ["не base64"]}) \
                from None
        if len(content) > MAX_IMPORT_BYTES:
            raise ValidationFailed("Файл слишком велик", fields={
                "file_base64": [f"не больше {MAX_IMPORT_BYTES} байт"]})
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError,
                TypeError) as exc:
            raise ValidationFailed("Не удалось прочитать XLSX", fields={
                "file_base64": [f"не XLSX: {type(exc).__name__}"]}) from None
        rows = list(book.worksheets[0].iter_rows(values_only=True, max_row=MAX_IMPORT_ROWS + 2))
        book.close()
        if not rows:
            raise ValidationFailed("Пустой файл", fields={"file_base64": ["нет строк"]})
        headers = [str(h).strip() if h is not None else "" for h in rows[0]]
        if "user_id" not in headers:
            raise ValidationFailed("Нет колонки user_id", fields={
                "file_base64": ["в первой строке нужны заголовки шаблона"]})
        if len(rows) > MAX_IMPORT_ROWS + 1:
            raise ValidationFailed("Слишком много строк", fields={
                "file_base64": [f"не больше {MAX_IMPORT_ROWS}"]})
        columns = {h: i for i, h in enumerate(headers) if h}
        errors, accepted = [], []
        with self.db.session() as session:
            seen: dict[str, int] = {}
            for number, raw in enumerate(rows[1:], start=2):
                if raw is None or all(v is None or str(v).strip() == "" for v in raw):
                    continue
                cell = {h: (raw[i] if i < len(raw) else None) for h, i in columns.items()}
                user_id = str(cell.get("user_id") or "").strip()
                row_errors = []
                person = None
                try:
                    person = self._planned_person(session, identity, user_id)
                except NotFound:
                    row_errors.append({"field": "user_id", "column": "user_id",
                                       "value": user_id, "reasons": ["нет такого менеджера"]})
                except Forbidden:
                    row_errors.append({"field": "user_id", "column": "user_id",
                                       "value": user_id,
                                       "reasons": ["менеджер не из вашего отдела"]})
                if person is not None and user_id in seen:
                    row_errors.append({"field": "user_id", "column": "user_id",
                                       "value": user_id,
                                       "reasons": [f"повтор строки {seen[user_id]}"]})
                seen.setdefault(user_id, number)
                values, value_errors = _row_values(cell)
                row_errors.extend(value_errors)
                if row_errors:
                    errors.append({"row": number, "errors": row_errors})
                elif person is not None:
                    accepted.append((person, values))
            if errors:
                raise ValidationFailed(
                    f"Файл не загружен: ошибки в строках ({len(errors)})",
                    fields={"file_base64": ["ошибки в строках, см. rows"]},
                    extra={"rows": errors})
            if not accepted:
                raise ValidationFailed("В файле нет строк с планами",
                                       fields={"file_base64": ["нет строк"]})
            for person, values in accepted:
                self._apply_plan(session, person, month, values, identity.user_id)
        return dump(ImportResultSchema, {"month": month, "imported": len(accepted)})


def _row_values(cell: dict) -> tuple[dict, list]:
    data, errors = {}, []
    for header, kpi in HEADER_TO_KPI.items():
        value = cell.get(header, cell.get(kpi))
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if kpi in ("new_clients", "calls", "meetings"):
            try:
                number = Decimal(str(value).strip().replace(",", "."))
                if number != number.to_integral_value():
                    raise InvalidOperation
                data[kpi] = int(number)
            except (InvalidOperation, ValueError):
                errors.append({"field": kpi, "column": header, "value": str(value),
                               "reasons": ["ожидается целое число"]})
        else:
            try:
                data[kpi] = str(Decimal(str(value).strip().replace(" ", "").replace(",", "."))
                                .quantize(Decimal("0.01")))
            except (InvalidOperation, ValueError):
                errors.append({"field": kpi, "column": header, "value": str(value),
                               "reasons": ["ожидается число"]})
    if not errors:
        try:
            data = PlanValuesSchema().load(data)
        except ValidationError as exc:
            for name, reasons in exc.messages.items():
                header = KPI_TITLES.get(name, name)
                errors.append({"field": name, "column": header,
                               "value": None if cell.get(header) is None else str(cell[header]),
                               "reasons": [str(r) for r in (reasons if isinstance(reasons, list)
                                                            else [reasons])]})
    return data, errors
