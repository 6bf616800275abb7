"""Entrypoints of the clients service: exports of client lists (CSV, XLSX), by role and quota.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).

Only sales heads and directors export, each at most ``EXPORT_DAILY_QUOTA`` times a day (default 5,
counted in ``usage_counters`` kind ``export`` per UTC day like the card reads), at most
``EXPORT_MAX_ROWS`` rows (default 50 000) an export. Every export is audited (action ``export``
with the filter, the rows and the format; a refusal over the quota as ``export_denied``).
CSV is what Excel in Russia opens by double click: UTF-8 with a BOM, ``;`` between fields.
"""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import QuotaExceeded, ValidationFailed
from crm_platform.rpc import rpc

from . import store
from .models import clients, usage_counters
from .segmentation import business_tz, load_filter, visible_clients

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
COLUMNS = (
    ("short_name", "Наименование", 40),
    ("full_name", "Полное наименование", 50),
    ("legal_form", "Форма", 8),
    ("inn", "ИНН", 14),
    ("kpp", "КПП", 12),
    ("ogrn", "ОГРН", 17),
    ("region", "Регион", 10),
    ("status", "Статус", 16),
    ("segment", "Сегмент", 16),
    ("industry", "Отрасль", 20),
    ("source", "Источник", 14),
    ("owner_name", "Ответственный", 28),
    ("department_name", "Отдел", 24),
    ("phones", "Телефоны", 30),
    ("emails", "E-mail", 30),
    ("website", "Сайт", 24),
    ("last_interaction_at", "Последнее взаимодействие", 18),
    ("last_invoice_at", "Последний счёт", 18),
    ("created_at", "Создан", 18),
    ("id", "ID в CRM", 38),
)
STATUS_NAMES = {"potential": "потенциальный", "active": "активный", "dormant": "спящий",
                "lost": "потерян"}
DATETIME_TEXT = "%d.%m.%Y %H:%M"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_values(row: dict, tz) -> list:
    """One row's cells: texts, and datetimes as naive wall-clock times of the business zone."""
    cells = []
    for key, _title, _width in COLUMNS:
        value = row.get(key)
        if key == "status":
            value = STATUS_NAMES.get(value, value)
        elif key in ("phones", "emails"):
            value = ", ".join(value or [])
        elif isinstance(value, datetime):
            value = value.astimezone(tz).replace(tzinfo=None)
        elif value is not None and not isinstance(value, str):
            value = str(value)
        cells.append(value)
    return cells


def to_csv(rows: list[list]) -> bytes:
    """UTF-8 with a BOM, ``;``-separated, CRLF lines. A text that Excel would take for a formula
    (``=``, ``+``, ``-``, ``@`` first) gets a leading apostrophe (CSV injection)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([title for _key, title, _width in COLUMNS])
    for cells in rows:
        writer.writerow([_csv_cell(v) for v in cells])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime(DATETIME_TEXT)
    if value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_xlsx(rows: list[list]) -> bytes:
    """One sheet with a bold, frozen, filterable header; texts stay texts (no formulas)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Клиенты")
    sheet.freeze_panes = "A2"
    for index, (_key, _title, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    header = []
    for _key, title, _width in COLUMNS:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for cells in rows:
        out = []
        for value in cells:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, datetime):
                cell.number_format = "DD.MM.YYYY HH:MM"
            elif isinstance(value, str):
                cell.data_type = "s"  # "=..." would otherwise be written as a formula
            out.append(cell)
        sheet.append(out)
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(rows) + 1}"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class ExportEntrypoints:

    @rpc
    def export_clients(self, filter: dict | list | None = None, format: str = "csv",
                       segment_id: str | None = None) -> dict:
        """The visible clients of a filter (see ``domain.segments``) or saved segment as a file:
        ``{"filename", "content_type", "content_base64", "rows"}``. Sales heads and directors
        only; over the daily quota: 429 ``export_quota_exceeded``."""
        identity = self.caller.require("sales_head", "director")
        if format not in FORMATS:
            raise ValidationFailed("Формат выгрузки: csv или xlsx",
                                   fields={"format": ["csv или xlsx"]})
        quota = as_int(self.config.get("EXPORT_DAILY_QUOTA"), 5)
        max_rows = as_int(self.config.get("EXPORT_MAX_ROWS"), 50_000)
        tz = business_tz(self.config)
        now = utcnow()
        with self.db.session() as session:
            raw, node = load_filter(session, identity, filter, segment_id)
            used = self._take_export_slot(session, identity, now, quota)
            if used is None:
                store.audit(session, identity, "export_denied", now,
                            details={"filter": raw, "format": format, "quota": quota})
            else:
                rows = session.execute(
                    sa.select(clients)
                    .where(visible_clients(identity, node, now, tz))
                    .order_by(clients.c.short_name, clients.c.id)
                    .limit(max_rows + 1)).mappings().all()
                if len(rows) > max_rows:  # rolls back the quota slot too
                    raise ValidationFailed(
                        f"Больше {max_rows} клиентов в одной выгрузке: сузьте фильтр",
                        fields={"filter": [f"больше {max_rows} строк"]}, code="export_too_large")
                names = store.staff_names(session, [r["owner_id"] for r in rows])
                depts = store.department_names(session, [r["department_id"] for r in rows])
                cells = [export_values({**row, "owner_name": names.get(row["owner_id"]),
                                        "department_name": depts.get(row["department_id"])}, tz)
                         for row in rows]
                content = to_csv(cells) if format == "csv" else to_xlsx(cells)
                store.audit(session, identity, "export", now,
                            fields=[key for key, _title, _width in COLUMNS],
                            details={"filter": raw, "segment_id": segment_id, "rows": len(rows),
                                     "format": format, "exports_today": used})
        if used is None:
            raise QuotaExceeded(
                f"Дневной лимит выгрузок исчерпан ({quota} в день). Следующая выгрузка — завтра.",
                code="export_quota_exceeded", extra={"quota": quota})
        stamp = now.astimezone(tz).strftime("%Y%m%d-%H%M")
        return {"filename": f"clients-{stamp}.{format}", "content_type": FORMATS[format],
                "content_base64": base64.b64encode(content).decode("ascii"), "rows": len(rows)}

    @staticmethod
    def _take_export_slot(session, identity, now, quota: int) -> int | None:
        """Count one export of today, atomically and only below the quota: the number it is,
        or None when the quota is used up."""
        if quota <= 0:
            return None
        counter = usage_counters.c
        return session.execute(
            pg_insert(usage_counters)
            .values(user_id=identity.user_id, day=now.date(), kind="export", count=1)
            .on_conflict_do_update(index_elements=["user_id", "day", "kind"],
                                   set_={"count": counter.count + 1},
                                   where=counter.count < quota)
            .returning(counter.count)).scalar()
