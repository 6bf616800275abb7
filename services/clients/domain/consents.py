"""Consent records, pure: who (normalised e-mail / E.164 phone), for what (purpose), by which text.

152-FZ asks the operator to prove a consent: the text the person agreed to (its version), when,
how (source) and from where (IP, user agent). A withdrawal is a state of the record (the time and
the channel), never a deletion; a withdrawal with nothing granted is kept as an opt-out row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_platform.errors import ValidationFailed

from .normalize import FieldError, normalise_email, normalise_phone

PURPOSES = ("processing", "marketing_email", "marketing_calls")
SOURCES = ("web_form", "manual", "import", "email", "call", "campaign", "unsubscribe", "api")
MAX_REASON = 500
MAX_USER_AGENT = 500


@dataclass(frozen=True)
class Person:
    email: str | None
    phone: str | None

    def as_dict(self) -> dict:
        return {"email": self.email, "phone": self.phone}


def _fail(errors: dict[str, list[str]]):
    raise ValidationFailed("Проверьте данные согласия", fields=errors)


def person_of(data: dict) -> Person:
    """The person keys of ``data`` (``email`` and/or ``phone``), normalised; at least one."""
    errors: dict[str, list[str]] = {}
    email = phone = None
    try:
        email = normalise_email(data["email"], "email") if data.get("email") else None
    except FieldError as exc:
        errors.setdefault(exc.field, []).append(exc.reason)
    try:
        phone = normalise_phone(str(data["phone"]), "phone") if data.get("phone") else None
    except FieldError as exc:
        errors.setdefault(exc.field, []).append(exc.reason)
    if not errors and email is None and phone is None:
        errors["email"] = ["укажите e-mail или телефон человека"]
    if errors:
        _fail(errors)
    return Person(email, phone)


def check_purpose(value, field: str = "purpose") -> str:
    if value not in PURPOSES:
        _fail({field: [f"одно из: {', '.join(PURPOSES)}"]})
    return value


def check_source(value, field: str = "source") -> str:
    if value not in SOURCES:
        _fail({field: [f"одно из: {', '.join(SOURCES)}"]})
    return value


def check_given_at(value, now: datetime) -> datetime:
    """``given_at`` defaults to now; a naive or future time is refused."""
    if value in (None, ""):
        return now
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            _fail({"given_at": ["дата и время в ISO 8601"]})
    if value.tzinfo is None:
        _fail({"given_at": ["укажите часовой пояс"]})
    if value > now:
        _fail({"given_at": ["согласие не может быть дано в будущем"]})
    return value


def status_of(rows: list[dict]) -> bool:
    """The current state from a person's rows for one purpose: granted while some grant is not
    withdrawn (rows are ordered by id; a later opt-out closes every earlier grant)."""
    return any(r["given_at"] is not None and r["withdrawn_at"] is None for r in rows)


def normalise_emails(emails: list[str]) -> dict[str, str | None]:
    """``{as given: normalised or None when it is no address}`` for the bulk check."""
    result: dict[str, str | None] = {}
    for raw in emails:
        try:
            result[raw] = normalise_email(raw, "emails")
        except FieldError:
            result[raw] = None
    return result
