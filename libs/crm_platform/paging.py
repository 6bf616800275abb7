"""Keyset (cursor) pages for list RPCs: ``{"items": [...], "next_cursor": str | None}``.

A cursor is the sort, the last row's sort key and its id, base64url JSON (the encoding the deals
service has used since its first lists), opaque to callers; the next page is the rows after that
key, so pages neither skip nor repeat rows when others are inserted meanwhile, and a deep page
costs what the first one does (an index on the sort column and id).

    page = keyset_page(session, query, sort="-created", sorts={"created": t.c.created_at,
                       "name": t.c.name}, id_column=t.c.id, cursor=cursor, limit=limit)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from .errors import ValidationFailed


def encode_cursor(*values) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, (datetime, date)) else str(v)
                      for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(values, list) or len(values) != size:
            raise ValueError
        return [str(v) for v in values]
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("Курсор не распознан", fields={
            "cursor": ["передайте next_cursor из предыдущей страницы"]}) from None


@dataclass(frozen=True)
class Sort:
    name: str
    column: sa.ColumnElement
    descending: bool


def parse_sort(sort: str | None, sorts: dict[str, sa.ColumnElement], default: str) -> Sort:
    """``name`` ascending, ``-name`` descending; only the ``sorts`` whitelist (422 otherwise)."""
    text = (sort or default).strip()
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if name not in sorts:
        allowed = ", ".join(sorted(sorts))
        raise ValidationFailed("Сортировка по этому полю недоступна", fields={
            "sort": [f"одно из: {allowed} (с «-» — по убыванию)"]})
    return Sort(name, sorts[name], descending)


def keyset_page(session, query: sa.Select, *, sort: str | None, sorts: dict, default: str,
                id_column: sa.ColumnElement, cursor: str | None,
                limit: int) -> tuple[list, str | None]:
    """One page of ``query``'s rows (mappings) in the chosen order, ties broken by id in the
    same direction, and the cursor of the next page (None on the last). The sort columns must be
    NOT NULL (a NULL key would fall out of the row comparison)."""
    order = parse_sort(sort, sorts, default)
    spec = ("-" if order.descending else "") + order.name
    key = order.column
    after = decode_cursor(cursor, 3)
    if after is not None:
        if after[0] != spec:
            raise ValidationFailed("Курсор от другой сортировки", fields={
                "cursor": [f"курсор получен для sort={after[0]}, а запрошено sort={spec}"]})
        bound = sa.tuple_(sa.cast(sa.literal(after[1]), key.type),
                          sa.cast(sa.literal(after[2]), id_column.type))
        row_key = sa.tuple_(key, id_column)
        query = query.where(row_key < bound if order.descending else row_key > bound)
    direction = (sa.desc if order.descending else sa.asc)
    query = query.add_columns(key.label("_page_key"), id_column.label("_page_id")) \
        .order_by(direction(key), direction(id_column)).limit(limit + 1)
    try:
        rows = session.execute(query).mappings().all()
    except sa.exc.DataError:
        # A cursor whose values do not cast to the column types (hand-made or from another
        # sort): the caller's mistake, not ours.
        raise ValidationFailed("Курсор не распознан", fields={
            "cursor": ["передайте next_cursor из предыдущей страницы той же сортировки"]}) \
            from None
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(spec, rows[-1]["_page_key"], rows[-1]["_page_id"]) \
        if more and rows else None
    return [{k: v for k, v in row.items() if k not in ("_page_key", "_page_id")}
            for row in rows], next_cursor
