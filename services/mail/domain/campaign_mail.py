"""Campaign e-mail without the framework: the token bucket that sets the pace, the message with its
unsubscribe headers, and the bounce rule.

**Pace.** One bucket per sending mailbox, kept in the database (row ``send_buckets``, taken
``FOR UPDATE``, so every replica draws from the same bucket): it refills at
``rate_per_minute / 60`` tokens a second up to ``capacity`` (just enough for one tick at that rate,
at least 1), and a message is sent only for a whole token taken.

**Bounce rule.** A message in the campaign mailbox's INBOX is a bounce of one of our campaign
messages when it is a delivery status notification (``multipart/report;
report-type=delivery-status``) with a recipient whose ``Action`` is ``failed`` and whose
``Status`` is permanent (5.x.x) — delays (4.x.x, ``delayed``) are not bounces — or, for servers
that send no DSN, a null-sender message (``Return-Path: <>``) with ``X-Failed-Recipients``. It is
matched to our message by the original Message-ID (in the returned message or its headers),
else by the failed address among the mailbox's sent campaign messages. An SMTP 5xx refusal of the
recipient at sending time is a bounce too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid

from .parsing import domain_of, make_address


def bucket_capacity(rate_per_minute: float, tick_seconds: float) -> float:
    return max(1.0, math.ceil(rate_per_minute / 60.0 * tick_seconds))


def take_tokens(tokens: float, refilled_at: datetime, now: datetime, rate_per_minute: float,
                capacity: float, wanted: int) -> tuple[int, float]:
    """``(whole tokens granted, tokens left)`` after refilling since ``refilled_at``."""
    elapsed = max(0.0, (now - refilled_at).total_seconds())
    tokens = min(capacity, tokens + elapsed * rate_per_minute / 60.0)
    granted = max(0, min(int(tokens), wanted))
    return granted, tokens - granted


def build_message(mailbox: dict, send: dict, now: datetime) -> EmailMessage:
    """The campaign message to one recipient: List-Unsubscribe (the https link) and RFC 8058
    one-click, our own Message-ID, and the campaign and recipient ids for bounce matching."""
    message = EmailMessage()
    message["From"] = make_address(mailbox["display_name"] or "", mailbox["address"])
    message["To"] = send["email"]
    message["Subject"] = send["subject"]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=domain_of(mailbox["address"]))
    message["List-Unsubscribe"] = f"<{send['unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Precedence"] = "bulk"
    message["X-CRM-Campaign"] = str(send["campaign_id"])
    message["X-CRM-Recipient"] = str(send["recipient_id"])
    message.set_content(send["body"])
    return message


@dataclass(frozen=True)
class Bounce:
    email: str | None             # the failed address, lower-cased
    original_message_id: str | None
    recipient_id: str | None      # our X-CRM-Recipient, when the returned headers carry it
    status: str | None
    reason: str


_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


def _address(value: str | None) -> str | None:
    value = (value or "").strip()
    if ";" in value:                                   # "rfc822; user@example.com"
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip().lower()
    return value if "@" in value else None


def _returned_headers(message) -> dict:
    """Headers of the returned original (``message/rfc822`` or ``text/rfc822-headers``)."""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if inner is not None:
                return {k.lower(): str(v) for k, v in inner.items()}
        if ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True) or b""
            inner = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
            return {k.lower(): str(v) for k, v in inner.items()}
    return {}


def _dsn_fields(part) -> list[dict]:
    """The per-recipient field groups of a ``message/delivery-status`` part."""
    payload = part.get_payload()
    groups = []
    if isinstance(payload, list):        # the email package parses it as a list of header blocks
        for block in payload[1:]:
            groups.append({k.lower(): str(v) for k, v in block.items()})
        return groups
    text = payload if isinstance(payload, str) else (part.get_payload(decode=True) or b"") \
        .decode("utf-8", "replace")
    for block in re.split(r"\r?\n\s*\r?\n", text.strip())[1:]:
        fields = {}
        for line in block.splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        groups.append(fields)
    return groups


def detect_bounces(raw: bytes) -> list[Bounce]:
    """The permanent failures reported by a message (empty: not a bounce). See the module doc."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception:  # noqa: BLE001 - an unreadable message is no bounce
        return []
    returned = _returned_headers(message)
    original = next(iter(_MSGID.findall(returned.get("message-id", ""))), None)
    recipient_id = returned.get("x-crm-recipient") or None
    out = []
    is_report = message.get_content_type() == "multipart/report" and \
        str(message.get_param("report-type", "")).lower() == "delivery-status"
    if is_report:
        for part in message.walk():
            if part.get_content_type() != "message/delivery-status":
                continue
            for group in _dsn_fields(part):
                action = group.get("action", "").lower()
                status = group.get("status", "").split(" ")[0]
                if action != "failed" or not status.startswith("5"):
                    continue
                email = _address(group.get("final-recipient")
                                 or group.get("original-recipient"))
                out.append(Bounce(email, original, recipient_id, status,
                                  group.get("diagnostic-code", "")[:500]))
        return out
    null_sender = (message.get("Return-Path") or "").strip() == "<>"
    failed = message.get("X-Failed-Recipients")
    if null_sender and failed:
        for value in str(failed).split(","):
            email = _address(value)
            if email:
                out.append(Bounce(email, original, recipient_id, None,
                                  str(message.get("Subject") or "")[:500]))
    return out
