"""Payroll routes of the gateway (/api/v1/payroll/..., /api/v1/kpi): a mixin of
``GatewayService``. Plans, pay schemes, salary documents and the KPI widget; the live KPI stream
is with the other live streams (``routes/screenpop.py``). The payroll service enforces who may do
what; the gateway checks shapes and maps months ``ГГГГ-ММ`` to their first day."""

from __future__ import annotations

import re

from crm_platform.errors import ValidationFailed

from ..api import ApiRpcProxy, api
from ..schemas_payroll import (
    CommentCreateSchema,
    ComputeDocumentsSchema,
    ComputeResultSchema,
    CopyPlansSchema,
    CopyResultSchema,
    DepartmentQuery,
    DocumentSchema,
    DocumentsQuery,
    DocumentSummarySchema,
    ExportDocumentsSchema,
    KpiQuery,
    KpiWidgetSchema,
    PayrollSchemeQuery,
    PaySchemeSchema,
    PlanImportResultSchema,
    PlanImportSchema,
    PlanSchema,
    PlansOverviewSchema,
    PlansQuery,
    PlanValuesSchema,
    PositionSchema,
    ReturnDocumentSchema,
)
from .clients_ops import file_response

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def first_day(month: str | None) -> str | None:
    """``2026-11`` -> ``2026-11-01``; anything else is a 422 naming ``month``."""
    if month is None:
        return None
    if not _MONTH.match(month or ""):
        raise ValidationFailed("Неверный месяц",
                               fields={"month": ["месяц ГГГГ-ММ, например 2026-11"]})
    return f"{month}-01"


def _str(value):
    return None if value is None else str(value)


class PayrollRoutes:
    payroll_rpc = ApiRpcProxy("payroll")

    # -- plans --------------------------------------------------------------------------------
    @api("GET", "/api/v1/payroll/plans", query=PlansQuery, response=PlansOverviewSchema,
         summary="Планы менеджеров на месяц и свод по отделам", tags=["payroll"])
    def get_plans(self, request, query):
        """The month's plan per manager (null: not set) and the department roll-up: a manager
        sees their own, a sales head the department, a director everyone."""
        return self.payroll_rpc.get_plans(first_day(query["month"]),
                                          _str(query["department_id"]))

    @api("PUT", "/api/v1/payroll/plans/<month>/<uuid:user_id>", body=PlanValuesSchema,
         response=PlanSchema, summary="Задать план менеджера на месяц", tags=["payroll"])
    def set_plan(self, request, month, user_id, body):
        """Sales head of the manager's department or a director. `sales` is required (₽);
        `shipments` in tonnes, `payments` ₽, `new_clients`, `calls`, `meetings` counts.
        Emits `sales_plan_changed` (the deals forecast)."""
        return self.payroll_rpc.set_plan(str(user_id), first_day(month),
                                         PlanValuesSchema().dump(body))

    @api("POST", "/api/v1/payroll/plans/<month>/copy", body=CopyPlansSchema,
         response=CopyResultSchema, summary="Скопировать планы с прошлого месяца",
         tags=["payroll"])
    def copy_plans(self, request, month, body):
        """Copy the previous month's plans to managers who have none for `month` yet."""
        return self.payroll_rpc.copy_plans(first_day(month), _str(body["department_id"]))

    @api("GET", "/api/v1/payroll/plans/<month>/template", query=DepartmentQuery,
         summary="Шаблон XLSX для загрузки планов", tags=["payroll"])
    def plan_template(self, request, month, query):
        """An XLSX with one row per manager the caller plans for and the current plans."""
        return file_response(self.payroll_rpc.plan_template(first_day(month),
                                                            _str(query["department_id"])))

    @api("POST", "/api/v1/payroll/plans/<month>/import", body=PlanImportSchema,
         response=PlanImportResultSchema, max_body_bytes=8 * 1024 * 1024,
         idempotent=True, summary="Загрузить планы из XLSX", tags=["payroll"])
    def import_plans(self, request, month, body):
        """All rows or none: any bad row refuses the file with 422, `rows` listing each row's
        number and its errors (field, column, value, reasons)."""
        return self.payroll_rpc.import_plans(first_day(month), body["file_base64"])

    # -- pay schemes --------------------------------------------------------------------------
    @api("GET", "/api/v1/payroll/schemes", query=PayrollSchemeQuery, response=PaySchemeSchema,
         many=True, summary="Схемы оплаты (все версии)", tags=["payroll"])
    def list_schemes(self, request, query):
        """Admin, director, sales heads: every version, newest first."""
        return self.payroll_rpc.list_schemes(query["position"])

    @api("POST", "/api/v1/payroll/schemes", body=PaySchemeSchema, response=PaySchemeSchema,
         status=201,
         idempotent=True, summary="Новая версия схемы оплаты (admin, director)", tags=["payroll"])
    def create_scheme_version(self, request, body):
        """A new version of a position's scheme, valid from `valid_from` (a month's first day).
        Documents computed with an older version are never altered by it."""
        return 201, self.payroll_rpc.create_scheme_version(PaySchemeSchema().dump(body))

    @api("PUT", "/api/v1/payroll/positions/<uuid:user_id>", body=PositionSchema,
         response=PositionSchema, summary="Должность сотрудника для схемы оплаты",
         tags=["payroll"])
    def set_position(self, request, user_id, body):
        """Admin, director: which scheme position a person is paid by (default: their role)."""
        return self.payroll_rpc.set_position(str(user_id), body["position"])

    # -- salary documents ---------------------------------------------------------------------
    @api("GET", "/api/v1/payroll/documents", query=DocumentsQuery,
         response=DocumentSummarySchema, many=True, summary="Расчётные документы за месяц",
         tags=["payroll"])
    def list_documents(self, request, query):
        """A manager's own, a sales head's department, a director's all."""
        return self.payroll_rpc.list_documents(first_day(query["month"]),
                                               _str(query["department_id"]),
                                               _str(query["user_id"]))

    @api("POST", "/api/v1/payroll/documents/compute", body=ComputeDocumentsSchema,
         response=ComputeResultSchema, summary="Рассчитать документы за месяц",
         tags=["payroll"])
    def compute_documents(self, request, body):
        """Create or recompute the drafts of a department (sales head: own; director: any)."""
        return self.payroll_rpc.compute_documents(first_day(body["month"]),
                                                  _str(body["department_id"]),
                                                  _str(body["user_id"]))

    @api("POST", "/api/v1/payroll/documents/export", body=ExportDocumentsSchema,
         summary="Выгрузить утверждённые документы (XLSX/CSV)", tags=["payroll"])
    def export_documents(self, request, body):
        """The approved documents of the month as a file for the payroll system; they become
        `exported`. Nothing approved: 409."""
        return file_response(self.payroll_rpc.export_documents(
            first_day(body["month"]), body["format"], _str(body["department_id"])))

    @api("GET", "/api/v1/payroll/documents/<uuid:document_id>", response=DocumentSchema,
         summary="Расчётный документ", tags=["payroll"])
    def get_document(self, request, document_id):
        """Lines (KPI, plan, fact, fulfilment, formula, amount; corrections name their month),
        total, state and comments."""
        return self.payroll_rpc.get_document(str(document_id))

    @api("POST", "/api/v1/payroll/documents/<uuid:document_id>/recompute",
         response=DocumentSchema, summary="Пересчитать черновик", tags=["payroll"])
    def recompute_document(self, request, document_id):
        """A draft only; an approved document is frozen (409)."""
        return self.payroll_rpc.recompute_document(str(document_id))

    @api("POST", "/api/v1/payroll/documents/<uuid:document_id>/confirm",
         response=DocumentSchema, summary="Подтвердить (менеджер)", tags=["payroll"])
    def confirm_document(self, request, document_id):
        """The manager confirms their own draft."""
        return self.payroll_rpc.confirm_document(str(document_id))

    @api("POST", "/api/v1/payroll/documents/<uuid:document_id>/approve",
         response=DocumentSchema, summary="Утвердить (руководитель отдела)", tags=["payroll"])
    def approve_document(self, request, document_id):
        """The sales head of the manager's department approves a confirmed document."""
        return self.payroll_rpc.approve_document(str(document_id))

    @api("POST", "/api/v1/payroll/documents/<uuid:document_id>/return",
         body=ReturnDocumentSchema, response=DocumentSchema,
         summary="Вернуть на доработку с комментарием", tags=["payroll"])
    def return_document(self, request, document_id, body):
        """The sales head returns a confirmed document to draft, saying what to correct."""
        return self.payroll_rpc.return_document(str(document_id), body["comment"])

    @api("POST", "/api/v1/payroll/documents/<uuid:document_id>/comments",
         body=CommentCreateSchema, response=DocumentSchema, status=201,
         idempotent=True, summary="Комментарий к документу", tags=["payroll"])
    def comment_document(self, request, document_id, body):
        """Anyone who may see the document."""
        return 201, self.payroll_rpc.comment_document(str(document_id), body["text"])

    # -- the KPI widget -----------------------------------------------------------------------
    @api("GET", "/api/v1/kpi", query=KpiQuery, response=KpiWidgetSchema,
         summary="KPI-виджет менеджера", tags=["payroll"])
    def kpi_widget(self, request, query):
        """The current (or `month`) plan, fact and fulfilment per KPI, pay so far, and how much
        more shipment reaches the next bonus tier; the caller's own by default."""
        return self.payroll_rpc.kpi_widget(_str(query["user_id"]), first_day(query["month"]))
