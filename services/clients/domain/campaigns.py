"""Campaign rules without the framework: what a campaign may be, its states, the e-mail template
(Jinja2 in a sandbox), the recipient list (consent and duplicates), and the signed unsubscribe
token.

States: ``draft → scheduled → running → finished``; ``cancelled`` from any of the first three.
Launching (``running``) resolves the recipients once; a recipient is a row with a status
(``queued``, ``sent``, ``bounced``, ``unsubscribed``, ``skipped_no_consent``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from crm_platform.errors import Conflict, ValidationFailed

GOALS = ("reactivation", "new_product", "event")
CHANNELS = ("email", "calls")
STATES = ("draft", "scheduled", "running", "finished", "cancelled")
TRANSITIONS = {
    "draft": {"scheduled", "running", "cancelled"},
    "scheduled": {"draft", "running", "cancelled"},
    "running": {"finished", "cancelled"},
    "finished": set(),
    "cancelled": set(),
}
RECIPIENT_STATUSES = ("queued", "sent", "bounced", "unsubscribed", "skipped_no_consent")
# What a template may use: {{ client_name }}, {{ contact_name }}, {{ email }}, {{ campaign }}.
PLACEHOLDERS = ("client_name", "contact_name", "email", "campaign")
MAX_SUBJECT = 300
MAX_BODY = 100_000

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise Conflict(f"Кампанию в состоянии «{current}» нельзя перевести в «{target}»",
                       code="campaign_state")


def _render(template: str, values: dict) -> str:
    return _env.from_string(template).render(**values)


def check_campaign(data: dict, partial: bool = False) -> dict:
    """The validated fields of a campaign from ``data`` (all errors at once, field by field)."""
    errors: dict = {}
    out: dict = {}

    def given(name):
        return name in data and not (partial and data[name] is None and name == "name")

    if given("name") or not partial:
        name = data.get("name")
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 200:
            errors["name"] = ["от 1 до 200 символов"]
        out["name"] = name
    if given("goal") or not partial:
        goal = data.get("goal")
        if goal not in GOALS:
            errors["goal"] = [f"одно из: {', '.join(GOALS)}"]
        out["goal"] = goal
    if given("channels") or not partial:
        channels = data.get("channels", ["email"])
        if not isinstance(channels, list) or not channels \
                or any(c not in CHANNELS for c in channels):
            errors["channels"] = [f"непустой список из: {', '.join(CHANNELS)}"]
        else:
            out["channels"] = sorted(set(channels))
    if given("budget"):
        try:
            budget = Decimal(str(data["budget"])) if data["budget"] is not None else None
            if budget is not None and (not budget.is_finite() or budget < 0
                                       or budget != budget.quantize(Decimal("0.01"))):
                raise InvalidOperation
            out["budget"] = budget
        except (InvalidOperation, ValueError):
            errors["budget"] = ["неотрицательная сумма с точностью до копейки"]
    for field in ("starts_at", "ends_at"):
        if given(field):
            value = data[field]
            if value is None:
                out[field] = None
                continue
            try:
                moment = datetime.fromisoformat(str(value))
                if moment.tzinfo is None:
                    raise ValueError
                out[field] = moment
            except ValueError:
                errors[field] = ["дата и время ISO 8601 с часовым поясом"]
    if out.get("starts_at") and out.get("ends_at") and out["ends_at"] < out["starts_at"]:
        errors["ends_at"] = ["не раньше starts_at"]
    for field, limit in (("email_subject", MAX_SUBJECT), ("email_body", MAX_BODY)):
        if given(field):
            value = data[field]
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                errors[field] = [f"строка не длиннее {limit} символов"]
                continue
            if value:
                try:
                    _render(value, {p: "x" for p in PLACEHOLDERS})
                except TemplateError as exc:
                    errors[field] = [f"ошибка шаблона: {exc}"]
            out[field] = value
    for field in ("mailbox_id", "segment_id"):
        if given(field):
            value = data[field]
            try:
                out[field] = uuid.UUID(str(value)) if value else None
            except ValueError:
                errors[field] = ["не UUID"]
    if given("utm_campaign"):
        value = data["utm_campaign"]
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            errors["utm_campaign"] = ["строка не длиннее 200 символов"]
        out["utm_campaign"] = value or None
    if given("filter"):
        out["filter"] = data["filter"]
    if errors:
        raise ValidationFailed("Кампания не прошла проверку", fields=errors)
    return out


def check_ready_to_send(campaign: dict) -> None:
    """What an e-mail campaign needs before it runs."""
    if "email" not in campaign["channels"]:
        return
    errors = {}
    for field in ("email_subject", "email_body", "mailbox_id"):
        if not campaign.get(field):
            errors[field] = ["обязательно для рассылки"]
    if errors:
        raise ValidationFailed("Рассылку нельзя запустить", fields=errors,
                               code="campaign_incomplete")


def render_email(campaign: dict, recipient: Recipient, unsubscribe_url: str) -> tuple[str, str]:
    """Subject and body for one recipient; the body ends with the unsubscribe link."""
    values = {"client_name": recipient.client_name or "", "email": recipient.email,
              "contact_name": recipient.contact_name or "", "campaign": campaign["name"]}
    subject = " ".join(_render(campaign["email_subject"], values).split())
    body = _render(campaign["email_body"], values).rstrip()
    body += ("\n\n--\nВы получили это письмо, потому что дали согласие на рассылку.\n"
             f"Отписаться: {unsubscribe_url}\n")
    return subject, body


@dataclass(frozen=True)
class Recipient:
    email: str
    client_id: uuid.UUID
    contact_id: uuid.UUID | None
    client_name: str | None
    contact_name: str | None


def recipients_from(rows: list[dict]) -> list[Recipient]:
    """One recipient per lower-cased address, in the order of ``rows`` (clients then contacts):
    ``rows`` have ``client_id``, ``short_name``, ``emails`` and, for contacts, ``contact_id`` and
    ``full_name``."""
    seen: set[str] = set()
    out: list[Recipient] = []
    for row in rows:
        for raw in row.get("emails") or []:
            email = (raw or "").strip().lower()
            if not email or "@" not in email or email in seen:
                continue
            seen.add(email)
            out.append(Recipient(email, row["client_id"], row.get("contact_id"),
                                 row.get("short_name"), row.get("full_name")))
    return out


def split_by_consent(recipients: list[Recipient], consent: dict[str, bool]):
    """``(to send, without consent)``: only an explicit ``True`` for the address sends."""
    send = [r for r in recipients if consent.get(r.email) is True]
    skip = [r for r in recipients if consent.get(r.email) is not True]
    return send, skip


# -- the unsubscribe token: <recipient uuid hex>.<hmac-sha256, urlsafe base64, 22 chars> -------


def _mac(secret: str, recipient_id: uuid.UUID) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + recipient_id.bytes,
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def sign_unsubscribe(secret: str, recipient_id: uuid.UUID) -> str:
    if not secret:
        raise ValueError("no unsubscribe secret")
    return f"{recipient_id.hex}.{_mac(secret, recipient_id)}"


def verify_unsubscribe(secret: str, token: str) -> uuid.UUID | None:
    """The recipient id of a genuine token, else None (constant-time comparison)."""
    if not secret or not isinstance(token, str) or len(token) > 100 or "." not in token:
        return None
    head, mac = token.split(".", 1)
    try:
        recipient_id = uuid.UUID(hex=head)
    except ValueError:
        return None
    return recipient_id if hmac.compare_digest(mac, _mac(secret, recipient_id)) else None
