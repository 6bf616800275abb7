"""Salary documents: one per manager and month (lines, total), their workflow (see
``domain.workflow``), comments, and the export of approved documents for the payroll system.

Every change of a document is emitted as ``salary_document_changed``.
"""

from __future__ import annotations

import base64
import csv
import io
import uuid
from decimal import Decimal

import sqlalchemy as sa
from openpyxl import Workbook

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain.workflow import (
    FROZEN,
    STATE_TITLES,
    Actor,
    DocumentRef,
    can_see,
    check_approve,
    check_comment,
    check_confirm,
    check_export,
    check_recompute,
    check_return,
)
from .models import departments, document_comments, salary_documents, staff
from .payloads import ComputeResultSchema, DocumentSchema, DocumentSummarySchema, dump
from .plans import parse_month

EXPORT_FORMATS = ("csv", "xlsx")
EXPORT_HEADERS = ["user_id", "ФИО", "Отдел", "Месяц", "Оклад", "Переменная часть",
                  "Корректировки", "Итого", "Состояние"]


def actor_of(identity) -> Actor:
    return Actor(identity.user_id, identity.role, identity.department_id)


def ref_of(row) -> DocumentRef:
    return DocumentRef(str(row["user_id"]), None if row["department_id"] is None
                       else str(row["department_id"]), row["state"], row["stale"])


def summary(row, names: dict) -> dict:
    lines = row["lines"]
    return {"id": row["id"], "user_id": row["user_id"],
            "full_name": names.get(row["user_id"], ""), "department_id": row["department_id"],
            "month": row["month"], "state": row["state"], "stale": row["stale"],
            "total": row["total"], "weighted_fulfilment": row["weighted_fulfilment"],
            "has_corrections": any(ln["kind"] == "correction" for ln in lines),
            "computed_at": row["computed_at"], "revision": row["revision"]}


def split_total(row) -> tuple[Decimal, Decimal, Decimal]:
    fixed = variable = corrections = Decimal(0)
    for line in row["lines"]:
        amount = Decimal(str(line["amount"]))
        if line["kind"] == "fixed":
            fixed += amount
        elif line["kind"] == "correction":
            corrections += amount
        else:
            variable += amount
    return fixed, variable, corrections


class DocumentRpc:
    """RPCs of the salary documents (mixed into ``PayrollService``)."""

    def _names(self, session) -> dict:
        return dict(session.execute(sa.select(staff.c.user_id, staff.c.full_name)).all())

    def _document(self, session, document_id, *, for_update=False):
        try:
            doc_id = uuid.UUID(str(document_id))
        except ValueError:
            raise NotFound("Нет такого документа") from None
        query = sa.select(salary_documents).where(salary_documents.c.id == doc_id)
        if for_update:
            query = query.with_for_update()
        row = session.execute(query).mappings().first()
        if row is None:
            raise NotFound("Нет такого документа")
        return row

    def _detail(self, session, row) -> dict:
        names = self._names(session)
        comments = session.execute(sa.select(document_comments).where(
            document_comments.c.document_id == row["id"]).order_by(
            document_comments.c.id)).mappings().all()
        return dump(DocumentSchema, {
                **summary(row, names), "scheme_id": row["scheme_id"], "kpis": row["kpis"],
                "lines": row["lines"], "plans": row["plans"], "facts": row["facts"],
                "confirmed_at": row["confirmed_at"], "approved_at": row["approved_at"],
                "approved_by": row["approved_by"], "exported_at": row["exported_at"],
                "comments": [dict(c) for c in comments]})

    def _changed(self, session, row, action: str, by=None) -> None:
        self.outbox.emit(session, "salary_document_changed",
                         store.document_payload(row, action, by))

    def _move(self, document_id, check, values_for, action: str, comment: str | None = None):
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._document(session, document_id, for_update=True)
            if not can_see(actor_of(identity), ref_of(row)):
                raise NotFound("Нет такого документа")
            if comment is None:
                check(actor_of(identity), ref_of(row))
            else:
                check(actor_of(identity), ref_of(row), comment)
            values = values_for(identity, row)
            session.execute(sa.update(salary_documents).where(
                salary_documents.c.id == row["id"]).values(revision=row["revision"] + 1,
                                                           **values))
            if comment is not None:
                self._add_comment(session, row["id"], identity, comment, "returned")
            row = self._document(session, document_id)
            self._changed(session, row, action, identity.user_id)
            return self._detail(session, row)

    def _add_comment(self, session, document_id, identity, text: str, kind: str) -> None:
        text = (text or "").strip()
        if not text or len(text) > 4000:
            raise ValidationFailed("Комментарий пуст или длиннее 4000 знаков",
                                   fields={"text": ["от 1 до 4000 знаков"]})
        session.execute(sa.insert(document_comments).values(
            document_id=document_id, author_id=store.as_uuid(identity.user_id),
            author_name=identity.full_name or identity.username, kind=kind, text=text,
            at=utcnow()))

    # -- reading ------------------------------------------------------------------------------
    @rpc
    def list_documents(self, month, department_id=None, user_id=None) -> list[dict]:
        """The salary documents of a month: a manager's own, a sales head's department, a
        director's or admin's all (or one department / person)."""
        identity = self.caller.require()
        month = parse_month(month)
        query = sa.select(salary_documents).where(salary_documents.c.month == month)
        if identity.role == "manager":
            query = query.where(salary_documents.c.user_id == store.as_uuid(identity.user_id))
        elif identity.role == "sales_head":
            if department_id and str(department_id) != str(identity.department_id):
                raise Forbidden("Только свой отдел", code="not_head_of_department")
            query = query.where(salary_documents.c.department_id == store.as_uuid(
                identity.department_id))
        elif identity.role in ("director", "admin"):
            if department_id:
                query = query.where(salary_documents.c.department_id == store.as_uuid(
                    department_id))
        else:
            raise Forbidden("Нет доступа к документам", code="not_allowed")
        if user_id:
            query = query.where(salary_documents.c.user_id == store.as_uuid(user_id))
        with self.db.session() as session:
            names = self._names(session)
            rows = session.execute(query).mappings().all()
            return dump(DocumentSummarySchema, sorted((summary(r, names) for r in rows),
                                                      key=lambda d: d["full_name"]), many=True)

    @rpc
    def get_document(self, document_id) -> dict:
        """One document with its KPIs, lines (formula, amount; corrections marked with the month
        they correct), plans and facts it was computed from, and comments."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._document(session, document_id)
            if not can_see(actor_of(identity), ref_of(row)):
                raise NotFound("Нет такого документа")
            return self._detail(session, row)

    # -- computing ----------------------------------------------------------------------------
    @rpc
    def compute_documents(self, month, department_id=None, user_id=None) -> dict:
        """Create (or recompute, when still drafts) the documents of a month for the managers of
        a department (sales head: own; director: one or all) or one manager. Confirmed and
        frozen documents are left as they are. Returns what was computed and skipped."""
        identity = self.caller.require("sales_head", "director")
        month = parse_month(month)
        if identity.role == "sales_head":
            if department_id and str(department_id) != str(identity.department_id):
                raise Forbidden("Только свой отдел", code="not_head_of_department")
            department_id = identity.department_id
        query = sa.select(staff.c.user_id, staff.c.department_id).where(
            staff.c.role == "manager", staff.c.active.is_(True))
        if department_id:
            query = query.where(staff.c.department_id == store.as_uuid(department_id))
        if user_id:
            query = query.where(staff.c.user_id == store.as_uuid(user_id))
        computed, skipped = [], []
        with self.db.session() as session:
            for person in session.execute(query).mappings().all():
                store.lock(session, f"payroll-user:{person['user_id']}")
                existing = store.document_row(session, person["user_id"], month,
                                              for_update=True)
                if existing is not None and existing["state"] != "draft":
                    skipped.append({"user_id": person["user_id"], "reason": existing["state"]})
                    continue
                row = store.compute_document(session, person["user_id"], month,
                                             department_id=person["department_id"])
                if row is None:
                    skipped.append({"user_id": person["user_id"], "reason": "no_scheme"})
                    continue
                self._changed(session, row, "computed", identity.user_id)
                computed.append(row["id"])
        return dump(ComputeResultSchema, {"month": month, "computed": computed,
                                          "skipped": skipped})

    @rpc
    def recompute_document(self, document_id) -> dict:
        """Recompute a draft from today's plans, facts and the scheme version valid for its
        month (picking up new facts and pending corrections); a frozen document: 409."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._document(session, document_id)
            if not can_see(actor_of(identity), ref_of(row)):
                raise NotFound("Нет такого документа")
            check_recompute(actor_of(identity), ref_of(row))
            store.lock(session, f"payroll-user:{row['user_id']}")
            row = store.compute_document(session, row["user_id"], row["month"],
                                         department_id=row["department_id"])
            if row is None:
                raise Conflict("Нет схемы оплаты для должности на этот месяц", code="no_scheme")
            self._changed(session, row, "computed", identity.user_id)
            return self._detail(session, row)

    # -- the workflow -------------------------------------------------------------------------
    @rpc
    def confirm_document(self, document_id) -> dict:
        """The manager confirms their own draft."""
        return self._move(document_id, check_confirm,
                          lambda identity, row: {"state": "confirmed", "confirmed_at": utcnow()},
                          "confirmed")

    @rpc
    def approve_document(self, document_id) -> dict:
        """The sales head of the manager's department approves a confirmed document: it is
        frozen from now on (later fact changes become corrections in the next open month)."""
        return self._move(document_id, check_approve,
                          lambda identity, row: {"state": "approved", "approved_at": utcnow(),
                                                 "approved_by": store.as_uuid(identity.user_id)},
                          "approved")

    @rpc
    def return_document(self, document_id, comment: str) -> dict:
        """The sales head returns a confirmed document to draft with a comment saying what to
        correct."""
        return self._move(document_id, check_return,
                          lambda identity, row: {"state": "draft", "confirmed_at": None},
                          "returned", comment=comment)

    @rpc
    @idempotent
    def comment_document(self, document_id, text: str) -> dict:
        """Add a comment to a document (anyone who may see it)."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._document(session, document_id)
            if not can_see(actor_of(identity), ref_of(row)):
                raise NotFound("Нет такого документа")
            check_comment(actor_of(identity), ref_of(row))
            self._add_comment(session, row["id"], identity, text, "comment")
            return self._detail(session, row)

    @rpc
    def export_documents(self, month, format: str = "xlsx", department_id=None) -> dict:
        """The approved (and earlier exported) documents of a month for the payroll system, as
        XLSX (a totals sheet and a lines sheet) or CSV (UTF-8 with BOM, «;»; one row per
        document); approved ones become ``exported``. A sales head exports the department, a
        director or admin one department or all. Nothing approved: 409."""
        identity = self.caller.require("sales_head", "director", "admin")
        month = parse_month(month)
        if format not in EXPORT_FORMATS:
            raise ValidationFailed("Неизвестный формат", fields={"format": ["csv или xlsx"]})
        query = sa.select(salary_documents).where(salary_documents.c.month == month,
                                                  salary_documents.c.state.in_(FROZEN))
        if identity.role == "sales_head":
            if department_id and str(department_id) != str(identity.department_id):
                raise Forbidden("Только свой отдел", code="not_head_of_department")
            department_id = identity.department_id
        if department_id:
            query = query.where(salary_documents.c.department_id == store.as_uuid(department_id))
        with self.db.session() as session:
            rows = session.execute(query.with_for_update()).mappings().all()
            if not rows:
                raise Conflict("Нет утверждённых документов за этот месяц",
                               code="nothing_to_export")
            names = self._names(session)
            dept_names = dict(session.execute(sa.select(departments.c.department_id,
                                                        departments.c.name)).all())
            now = utcnow()
            for row in rows:
                check_export(actor_of(identity), ref_of(row))
                if row["state"] == "approved":
                    session.execute(sa.update(salary_documents).where(
                        salary_documents.c.id == row["id"]).values(
                        state="exported", exported_at=now,
                        exported_by=store.as_uuid(identity.user_id),
                        revision=row["revision"] + 1))
                    self._changed(session, self._document(session, row["id"]), "exported",
                                  identity.user_id)
            rows = sorted(rows, key=lambda r: names.get(r["user_id"], ""))
            table = [[str(r["user_id"]), names.get(r["user_id"], ""),
                      dept_names.get(r["department_id"], ""), r["month"].strftime("%m.%Y"),
                      *split_total(r), Decimal(r["total"]),
                      STATE_TITLES["exported"]] for r in rows]
            if format == "csv":
                content = _csv(table)
                content_type = "text/csv; charset=utf-8"
            else:
                content = _xlsx(table, rows, names)
                content_type = ("application/vnd.openxmlformats-officedocument."
                                "spreadsheetml.sheet")
        return {"filename": f"salary-{month:%Y-%m}.{format}", "content_type": content_type,
                "content_base64": base64.b64encode(content).decode(), "rows": len(rows)}


def _csv(table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(EXPORT_HEADERS)
    for row in table:
        writer.writerow([str(v).replace(".", ",") if isinstance(v, Decimal) else v
                         for v in row])
    return ("\ufeff" + out.getvalue()).encode()


def _xlsx(table, rows, names) -> bytes:
    book = Workbook()
    totals = book.active
    totals.title = "Итоги"
    totals.append(EXPORT_HEADERS)
    for row in table:
        totals.append([float(v) if isinstance(v, Decimal) else v for v in row])
    for cells in totals.iter_rows(min_row=2, min_col=5, max_col=8):
        for cell in cells:
            cell.number_format = "#,##0.00"
    lines = book.create_sheet("Строки")
    lines.append(["user_id", "ФИО", "Месяц", "Вид", "Строка", "Формула", "Сумма",
                  "За месяц (корректировка)"])
    for r in rows:
        for line in r["lines"]:
            lines.append([str(r["user_id"]), names.get(r["user_id"], ""),
                          r["month"].strftime("%m.%Y"), line["kind"], line["title"],
                          line["formula"], float(Decimal(str(line["amount"]))),
                          line.get("source_month")])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
