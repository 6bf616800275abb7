"""Report routes of the gateway (``/api/v1/reports``): a mixin of ``GatewayService``.

The reports service decides who sees what (a manager own figures, a sales head the department, a
director all: 403 otherwise) and checks the parameters again (422 naming the field); the gateway
validates the query's shape and picks the representation: JSON, or a CSV/XLSX download by
``format`` or the ``Accept`` header.
"""

from __future__ import annotations

from ..api import ApiRpcProxy, api
from ..schemas_reports import ReportCatalogueItemSchema, ReportQuery, ReportSchema
from .clients_ops import file_response

TAGS = ["reports"]
ACCEPTED = {"text/csv": "csv",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


def wanted_format(query: dict, accept: str | None) -> str:
    """``format`` wins; else the first of CSV/XLSX the Accept header names; else JSON."""
    if query.get("format"):
        return query["format"]
    for item in (accept or "").split(","):
        mime = item.split(";")[0].strip().lower()
        if mime in ACCEPTED:
            return ACCEPTED[mime]
    return "json"


def report_params(query: dict) -> dict:
    """The loaded query as plain JSON for the RPC (dates ISO, ids as text)."""
    out = {}
    for key, value in query.items():
        if key == "format" or value is None:
            continue
        out[key] = value.isoformat() if hasattr(value, "isoformat") else (
            str(value) if not isinstance(value, int | str) else value)
    return out


class ReportRoutes:
    reports_rpc = ApiRpcProxy("reports")

    @api("GET", "/api/v1/reports", response=ReportCatalogueItemSchema, many=True,
         summary="Каталог отчётов", tags=TAGS)
    def list_reports(self, request):
        """Every report: name, title, what it can be grouped by and its columns."""
        return self.reports_rpc.list_reports()

    @api("GET", "/api/v1/reports/<name>", query=ReportQuery, response=ReportSchema,
         summary="Отчёт: строки и итоги (JSON, CSV или XLSX)", tags=TAGS)
    def get_report(self, request, name, query):
        """One report of the catalogue over a period, filtered by manager, department, region,
        client or segment and grouped by a time bucket and slices. ``format=csv|xlsx`` (or
        ``Accept: text/csv`` / the XLSX type) answers the same rows and totals as a file."""
        fmt = wanted_format(query, request.headers.get("Accept"))
        params = report_params(query)
        if fmt == "json":
            return self.reports_rpc.get_report(name, params)
        return file_response(self.reports_rpc.export_report(name, params, fmt))
