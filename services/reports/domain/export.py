"""A report as a file: CSV (UTF-8 with BOM and ``;``, as Excel opens it) or XLSX (openpyxl).

The rows, then a totals row ("Итого"), under a header of the columns' Russian titles. Numbers stay
numbers in XLSX (money as decimals, ratios as numbers), dates are ISO text in CSV.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime
from decimal import Decimal

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def table(columns: list[dict], rows: list[dict], totals: dict) -> list[list]:
    """Header, rows and the totals line as plain cells (the first column says "Итого")."""
    lines = [[c["title"] for c in columns]]
    for row in rows:
        lines.append([_cell(row.get(c["key"])) for c in columns])
    if totals:
        total_line = [_cell(totals.get(c["key"])) if c["key"] in totals else ""
                      for c in columns]
        total_line[0] = "Итого"
        lines.append(total_line)
    return lines


def to_csv(columns: list[dict], rows: list[dict], totals: dict) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    for line in table(columns, rows, totals):
        writer.writerow([str(v) if isinstance(v, Decimal) else v for v in line])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(columns: list[dict], rows: list[dict], totals: dict, title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "report")
    lines = table(columns, rows, totals)
    bold = Font(bold=True)
    for index, line in enumerate(lines):
        emphasise = index == 0 or (totals and index == len(lines) - 1)
        cells = []
        for value in line:
            if isinstance(value, Decimal):
                value = float(value)
            cell = WriteOnlyCell(sheet, value=value)
            if emphasise:
                cell.font = bold
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def render(fmt: str, columns: list[dict], rows: list[dict], totals: dict, title: str) -> bytes:
    if fmt == "csv":
        return to_csv(columns, rows, totals)
    if fmt == "xlsx":
        return to_xlsx(columns, rows, totals, title)
    raise ValueError(f"unknown format {fmt!r}")
