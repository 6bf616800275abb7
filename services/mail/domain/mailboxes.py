"""A mailbox's settings, checked (pure): every error at once, named by field, in Russian.

The password is never stored: ``secret_ref`` names where it lives, ``env:NAME`` (the process
environment, in production a Kubernetes Secret mounted as variables). ``resolve_secret`` reads it
when the mailbox is used.
"""

from __future__ import annotations

import os
import re
import uuid

from crm_platform.errors import ValidationFailed

from .parsing import normalise_address

SECRET_REF = re.compile(r"^env:[A-Z_][A-Z0-9_]{0,127}$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$")
KINDS = ("personal", "shared")
SMTP_SECURITY = ("none", "starttls", "ssl")
FIELDS = ("address", "display_name", "kind", "owner_id", "department_id", "imap_host",
          "imap_port", "imap_tls", "login", "secret_ref", "sent_folder", "smtp_host",
          "smtp_port", "smtp_security", "enabled", "sync_interval_seconds")
DEFAULTS = {"display_name": "", "kind": "personal", "owner_id": None, "department_id": None,
            "imap_port": 993, "imap_tls": True, "sent_folder": "Sent", "smtp_host": None,
            "smtp_port": 587, "smtp_security": "starttls", "enabled": True,
            "sync_interval_seconds": 300}


def _uuid(value, name, errors):
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        errors[name] = ["некорректный идентификатор"]
        return None


def _port(value, name, errors):
    try:
        port = int(value)
    except (TypeError, ValueError):
        errors[name] = ["ожидается номер порта"]
        return None
    if isinstance(value, bool) or not 1 <= port <= 65535:
        errors[name] = ["порт от 1 до 65535"]
        return None
    return port


def check_mailbox(data: dict, current: dict | None = None) -> dict:
    """The settings of a new mailbox (``current`` None) or the merge of ``data`` into
    ``current``; raises ``ValidationFailed`` naming every bad field."""
    unknown = sorted(set(data) - set(FIELDS))
    errors: dict = {name: ["неизвестное поле"] for name in unknown}
    merged = {**DEFAULTS, **(current or {}), **{k: v for k, v in data.items() if k in FIELDS}}
    out = dict(merged)
    address = normalise_address(str(merged.get("address") or ""))
    if not address:
        errors["address"] = ["ожидается адрес электронной почты"]
    out["address"] = address
    if merged["kind"] not in KINDS:
        errors["kind"] = [f"одно из: {', '.join(KINDS)}"]
    out["owner_id"] = _uuid(merged.get("owner_id"), "owner_id", errors)
    out["department_id"] = _uuid(merged.get("department_id"), "department_id", errors)
    if merged["kind"] == "personal" and out["owner_id"] is None and "owner_id" not in errors:
        errors["owner_id"] = ["у личного ящика должен быть владелец"]
    if merged["kind"] == "shared" and out["department_id"] is None \
            and "department_id" not in errors:
        errors["department_id"] = ["общий ящик принадлежит отделу"]
    for name in ("imap_host", "smtp_host"):
        value = merged.get(name)
        if value in (None, "") and name == "smtp_host":
            out[name] = None
            continue
        if not isinstance(value, str) or not HOST.match(value):
            errors[name] = ["ожидается имя хоста или IP-адрес"]
    for name in ("imap_port", "smtp_port"):
        out[name] = _port(merged.get(name), name, errors)
    for name in ("imap_tls", "enabled"):
        if not isinstance(merged.get(name), bool):
            errors[name] = ["ожидается true или false"]
    login = merged.get("login")
    if not isinstance(login, str) or not login.strip() or len(login) > 320:
        errors["login"] = ["ожидается логин IMAP"]
    else:
        out["login"] = login.strip()
    ref = merged.get("secret_ref")
    if not isinstance(ref, str) or not SECRET_REF.match(ref):
        errors["secret_ref"] = ["ссылка на секрет вида env:ИМЯ_ПЕРЕМЕННОЙ; пароль в базе не "
                                "хранится"]
    if merged["smtp_security"] not in SMTP_SECURITY:
        errors["smtp_security"] = [f"одно из: {', '.join(SMTP_SECURITY)}"]
    folder = merged.get("sent_folder")
    if not isinstance(folder, str) or not folder.strip() or len(folder) > 200:
        errors["sent_folder"] = ["ожидается имя папки"]
    interval = merged.get("sync_interval_seconds")
    if isinstance(interval, bool) or not isinstance(interval, int) or not 10 <= interval <= 86400:
        errors["sync_interval_seconds"] = ["от 10 до 86400 секунд"]
    display = merged.get("display_name")
    if not isinstance(display, str) or len(display) > 200:
        errors["display_name"] = ["не длиннее 200 символов"]
    if errors:
        raise ValidationFailed("Настройки почтового ящика не прошли проверку", fields=errors)
    return out


def resolve_secret(ref: str, environ=None) -> str:
    """The password ``ref`` names; ``LookupError`` (with a Russian reason) when it is absent."""
    environ = os.environ if environ is None else environ
    if not SECRET_REF.match(ref or ""):
        raise LookupError(f"неверная ссылка на секрет: {ref!r}")
    name = ref.split(":", 1)[1]
    value = environ.get(name)
    if not value:
        raise LookupError(f"секрет {name} не задан в окружении")
    return value
