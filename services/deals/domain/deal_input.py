"""Checking what people and integrations send for a deal: every problem is named by its field."""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal, InvalidOperation

import phonenumbers

from crm_platform.errors import ValidationFailed

SOURCES = ("manual", "call", "email", "web", "campaign", "erp", "import", "other")
MAX_AMOUNT = Decimal("1000000000000")        # 10^12 RUB: anything larger is a typo
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EDITABLE = ("title", "amount", "volume", "product_groups", "expected_close_date", "probability",
            "notes", "region", "lead")


def normalise_phone(value) -> str | None:
    """E.164 for Russian numbers written any usual way (8 916 …, +7 …, 810 …); None if it is not
    a phone number (an extension, letters)."""
    digits = re.sub(r"[^\d+]", "", str(value or ""))
    if not digits:
        return None
    if digits.startswith("810"):
        digits = "+" + digits[3:]
    try:
        parsed = phonenumbers.parse(digits, "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed) or len(str(parsed.national_number)) < 6:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value) -> str | None:
    text = str(value or "").strip().lower()
    return text if text else None


def _money(value, field, errors):
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors[field] = ["сумма числом, например 150000.00"]
        return None
    if not amount.is_finite() or amount < 0 or amount >= MAX_AMOUNT:
        errors[field] = ["сумма от 0 до 10^12"]
        return None
    return amount.quantize(Decimal("0.01"))


def _quantity(value, field, errors):
    if value is None or value == "":
        return None
    try:
        qty = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors[field] = ["число"]
        return None
    if not qty.is_finite() or qty < 0 or qty >= Decimal("1e10"):
        errors[field] = ["число от 0"]
        return None
    return qty.quantize(Decimal("0.001"))


def normalise_deal(data: dict, *, partial: bool = False) -> dict:
    """The deal's own fields in stored form (``volume`` split into its columns). Unknown keys are
    ignored by the caller's schema; here only the meaning of each is checked."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    if "title" in data or not partial:
        title = str(data.get("title") or "").strip()
        if len(title) > 300:
            errors["title"] = ["не длиннее 300 символов"]
        out["title"] = title
    if "amount" in data:
        out["amount"] = _money(data.get("amount"), "amount", errors)
    if "volume" in data:
        volume = data.get("volume") or {}
        if not isinstance(volume, dict):
            errors["volume"] = ["{m2, tonnes, pieces}"]
            volume = {}
        for key, column in (("m2", "volume_m2"), ("tonnes", "volume_tonnes"),
                            ("pieces", "volume_pieces")):
            out[column] = _quantity(volume.get(key), f"volume.{key}", errors)
    if "product_groups" in data:
        groups = data.get("product_groups") or []
        if not isinstance(groups, list) or any(not str(g).strip() or len(str(g)) > 100
                                               for g in groups):
            errors["product_groups"] = ["список названий групп, до 100 символов каждое"]
        else:
            out["product_groups"] = sorted({str(g).strip() for g in groups})
    if "expected_close_date" in data:
        value = data.get("expected_close_date")
        if value in (None, ""):
            out["expected_close_date"] = None
        else:
            try:
                out["expected_close_date"] = (value if isinstance(value, date)
                                              else date.fromisoformat(str(value)))
            except ValueError:
                errors["expected_close_date"] = ["дата ГГГГ-ММ-ДД"]
    if "probability" in data:
        value = data.get("probability")
        if value is None:
            out["probability"] = None
        elif not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            errors["probability"] = ["целое от 0 до 100"]
        else:
            out["probability"] = value
    if "notes" in data:
        notes = str(data.get("notes") or "")
        if len(notes) > 20000:
            errors["notes"] = ["не длиннее 20000 символов"]
        out["notes"] = notes
    if "region" in data:
        region = data.get("region")
        if region is not None and not re.fullmatch(r"RU-[A-Z]{2,3}", str(region)):
            errors["region"] = ["код региона ISO 3166-2, например RU-SVE"]
        out["region"] = region
    if "lead" in data:
        out.update(_lead(data.get("lead") or {}, errors))
    if errors:
        raise ValidationFailed("Сделка не принята: проверьте поля", fields=errors)
    return out


def _lead(lead: dict, errors: dict) -> dict:
    if not isinstance(lead, dict):
        errors["lead"] = ["{name, company, inn, phone, email}"]
        return {}
    clean = {}
    for key in ("name", "company", "inn", "message"):
        value = str(lead.get(key) or "").strip()
        if len(value) > 2000:
            errors[f"lead.{key}"] = ["слишком длинно"]
        if value:
            clean[key] = value
    if clean.get("inn") and not re.fullmatch(r"\d{10}|\d{12}", clean["inn"]):
        errors["lead.inn"] = ["ИНН: 10 или 12 цифр"]
    phone = None
    if lead.get("phone"):
        phone = normalise_phone(lead["phone"])
        if phone is None:
            errors["lead.phone"] = ["не похоже на номер телефона"]
        else:
            clean["phone"] = phone
    email = None
    if lead.get("email"):
        email = normalise_email(lead["email"])
        if not EMAIL.match(email or ""):
            errors["lead.email"] = ["адрес вида name@example.ru"]
            email = None
        else:
            clean["email"] = email
    return {"lead": clean, "lead_phone": phone, "lead_email": email}


def duplicate_candidate(lead: dict) -> dict:
    """What the clients service's duplicate check is asked about a lead without a client."""
    candidate = {}
    if lead.get("company"):
        candidate["short_name"] = lead["company"]
    if lead.get("inn"):
        candidate["inn"] = lead["inn"]
    if lead.get("phone"):
        candidate["phones"] = [lead["phone"]]
    if lead.get("email"):
        candidate["emails"] = [lead["email"]]
    return candidate


def parse_uuid(value, field: str) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed("Неверный идентификатор", fields={field: ["UUID"]}) from None


def default_title(client_name: str | None, lead: dict) -> str:
    who = client_name or lead.get("company") or lead.get("name") or lead.get("phone") \
        or lead.get("email") or "новый клиент"
    return f"Интерес: {who}"[:300]
