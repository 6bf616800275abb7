"""Web-form submissions, pure: fields, spam signs, the signed fill-start token, the token bucket.

A form page (or the embed script) carries a token ``<issued unix seconds>.<HMAC-SHA256>`` signed
with the service's secret over the form key and the time: a submission sooner than
``min_fill_seconds`` after it (a bot) or with the honeypot field filled in is spam — answered as if
taken (202) so that bots learn nothing, but recorded as spam and no lead. A missing, forged or
day-old token is spam too (``token``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from .deal_input import EMAIL, normalise_email, normalise_phone

HONEYPOT_FIELD = "website"          # hidden from people by CSS; bots fill it in
TOKEN_MAX_AGE_SECONDS = 24 * 3600
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
TEXT_LIMITS = {"name": 200, "company": 300, "region": 16, "message": 4000, "page_url": 2000,
               "referrer": 2000, **{f: 200 for f in UTM_FIELDS}}
TRUE = ("1", "true", "on", "yes", "да")


def new_form_key() -> str:
    return secrets.token_urlsafe(18)          # 24 characters, 144 random bits


def sign(secret: str, form_key: str, issued: int) -> str:
    mac = hmac.new(secret.encode(), f"{form_key}.{issued}".encode(), hashlib.sha256)
    return f"{issued}.{mac.hexdigest()}"


def spam_reason(data: dict, *, secret: str, form_key: str, now: datetime,
                min_fill_seconds: int) -> str | None:
    """Why a submission is spam (``honeypot``, ``token``, ``too_fast``), or None."""
    if str(data.get(HONEYPOT_FIELD) or "").strip():
        return "honeypot"
    token = str(data.get("form_token") or "")
    issued_text, _, _mac = token.partition(".")
    if not issued_text.isdigit() or not hmac.compare_digest(
            sign(secret, form_key, int(issued_text)), token):
        return "token"
    elapsed = now.timestamp() - int(issued_text)
    if elapsed > TOKEN_MAX_AGE_SECONDS:
        return "token"
    if elapsed < min_fill_seconds:
        return "too_fast"
    return None


def clean_submission(data: dict, *, consent_required: bool) -> tuple[dict, dict[str, list[str]]]:
    """The submission's fields checked; (clean, errors by field). At least a phone or an e-mail;
    the consent checkbox when the form asks for it."""
    errors: dict[str, list[str]] = {}
    clean: dict = {}
    for name, limit in TEXT_LIMITS.items():
        value = str(data.get(name) or "").strip()
        if len(value) > limit:
            errors[name] = [f"не длиннее {limit} символов"]
        elif value:
            clean[name] = value
    inn = re.sub(r"\s", "", str(data.get("inn") or ""))
    if inn:
        if re.fullmatch(r"\d{10}|\d{12}", inn):
            clean["inn"] = inn
        else:
            errors["inn"] = ["ИНН: 10 или 12 цифр"]
    if data.get("phone"):
        phone = normalise_phone(data["phone"])
        if phone is None:
            errors["phone"] = ["не похоже на номер телефона"]
        else:
            clean["phone"] = phone
    if data.get("email"):
        email = normalise_email(data["email"])
        if not EMAIL.fullmatch(email or "") or len(email) > 320:
            errors["email"] = ["адрес вида name@example.ru"]
        else:
            clean["email"] = email
    if "phone" not in clean and "email" not in clean and not {"phone", "email"} & set(errors):
        errors["phone"] = ["укажите телефон или e-mail"]
    for url_field in ("page_url", "referrer"):
        if clean.get(url_field) and urlsplit(clean[url_field]).scheme not in ("http", "https"):
            errors[url_field] = ["адрес страницы http(s)://…"]
    if "region" in clean and not re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{1,3}", clean["region"]):
        errors["region"] = ["код региона ISO 3166-2, например RU-MOW"]
    consent = str(data.get("consent") or "").strip().lower() in TRUE \
        or data.get("consent") is True
    if consent_required and not consent:
        errors["consent"] = ["нужно согласие на обработку персональных данных"]
    clean["consent"] = consent
    return clean, errors


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """A browser's ``Origin`` against the form's allowed origins (none configured: any; no
    ``Origin`` header: a plain form post from our own page, allowed)."""
    if not allowed or not origin:
        return True
    return origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}


def take_token(tokens: float | None, updated_at: datetime | None, now: datetime, *,
               rate_per_minute: float, burst: int) -> tuple[bool, float, int]:
    """A token bucket: (allowed, tokens left, seconds until the next token when refused)."""
    if tokens is None or updated_at is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, (now - updated_at).total_seconds())
        tokens = min(float(burst), tokens + elapsed * rate_per_minute / 60.0)
    if tokens >= 1.0:
        return True, tokens - 1.0, 0
    wait = (1.0 - tokens) * 60.0 / rate_per_minute
    return False, tokens, max(1, int(wait + 0.999))
