"""What the manager's pages share: money and Moscow-time formatting, the page renderer that adds
them to templates, reading form fields and turning a service's refusal into a message.

Money arrives from the services as decimal strings ("1234567.89") and leaves as
"1 234 567,89 ₽"; times arrive as ISO 8601 with an offset and are shown in Moscow time
("27.11.2026 14:05"), whatever the server's zone.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Response

from crm_platform.clock import utcnow
from crm_platform.errors import DomainError

from .base import ui_render
from .i18n import language_of, translator

MOSCOW = ZoneInfo("Europe/Moscow")
NBSP = "\u00a0"
# Cards per funnel column on the board: more are behind "ещё …" (the list view).
BOARD_COLUMN_CARDS = 30
# Roles that work with clients and deals in these pages (admins hold no personal data).
WORKERS = ("manager", "sales_head", "director")
HEADS_HERE = ("sales_head", "director")


def to_decimal(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def rub(value, empty: str = "—") -> str:
    """``Decimal("1234567.891")`` -> ``"1 234 567,89 ₽"`` (non-breaking spaces)."""
    amount = to_decimal(value)
    if amount is None:
        return empty
    amount = amount.quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ""
    whole, cents = f"{abs(amount):.2f}".split(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{NBSP.join(groups)},{cents}{NBSP}₽"


def number(value, empty: str = "—") -> str:
    """A plan or fact figure as people read it: ``Decimal("1100000.00")`` -> ``"1 100 000"``,
    ``"18.500"`` -> ``"18,5"`` (groups by non-breaking spaces, a decimal comma, no idle zeros)."""
    amount = to_decimal(value)
    if amount is None:
        return empty
    text = f"{abs(amount):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return ("-" if amount < 0 else "") + NBSP.join(groups or ["0"]) + (
        "," + fraction if fraction else "")


def moment(value) -> datetime | None:
    """An aware datetime from ISO text (or a datetime); naive or unreadable -> None."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else None


def msk(value, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """A moment as Moscow time, ``27.11.2026 14:05``; a plain date as ``27.11.2026``."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).strftime("%d.%m.%Y")
        except ValueError:
            return value
    parsed = moment(value)
    return parsed.astimezone(MOSCOW).strftime(fmt) if parsed else ""


def msk_time(value) -> str:
    return msk(value, "%H:%M")


def days_since(value, now: datetime | None = None) -> int | None:
    parsed = moment(value)
    if parsed is None:
        return None
    return max(0, ((now or utcnow()) - parsed).days)


def today_msk(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(MOSCOW).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The Moscow day as [start, end) aware datetimes."""
    start = datetime.combine(day, time(0), MOSCOW)
    return start, start + timedelta(days=1)


def local_due(day: str, at: str | None) -> str | None:
    """A form's date (``2026-11-27``) and time (``14:05``, default end of the working day) as an
    ISO moment in Moscow time; unreadable -> None (the service then names the field)."""
    try:
        chosen_day = date.fromisoformat((day or "").strip())
        chosen_time = time.fromisoformat((at or "").strip() or "18:00")
    except ValueError:
        return None
    return datetime.combine(chosen_day, chosen_time, MOSCOW).isoformat()


def problem_text(exc: DomainError) -> str:
    """A refusal as one sentence for people: the service's detail and the fields it names."""
    text = exc.detail or exc.title
    fields = exc.fields if isinstance(exc.fields, dict) else {}
    reasons = []
    for name, why in fields.items():
        why = ", ".join(str(w) for w in why) if isinstance(why, list | tuple) else str(why)
        reasons.append(f"{name}: {why}")
    return f"{text} ({'; '.join(reasons)})" if reasons else text


def with_query(path: str, **params) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return f"{path}?{urlencode(kept)}" if kept else path


def json_reply(data: dict, status: int = 200) -> Response:
    response = Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def page_render(request, template: str, session, active: str = "", status: int = 200, **ctx):
    """``ui_render`` with the formatting helpers these templates use. A ``notice`` carried in
    the URL after a form (Russian, from these pages) is shown in the page's language."""
    if ctx.get("notice"):
        ctx["notice"] = translator(language_of(request))(ctx["notice"])
    return ui_render(request, template, session, status=status, active=active, rub=rub,
                     number=number, msk=msk, msk_time=msk_time, days_since=days_since,
                     with_query=with_query, **ctx)
