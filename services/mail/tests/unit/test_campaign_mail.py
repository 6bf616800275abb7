"""Campaign mail rules: the token bucket, the message headers, and the bounce rule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.mail.domain.campaign_mail import (
    bucket_capacity,
    build_message,
    detect_bounces,
    take_tokens,
)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_the_bucket_refills_at_the_rate_and_is_capped():
    assert bucket_capacity(60, 0.2) == 1 and bucket_capacity(6000, 0.2) == 20
    assert take_tokens(0.0, T0, T0 + timedelta(seconds=0.5), 60, 1, 5) == (0, 0.5)
    granted, left = take_tokens(0.5, T0, T0 + timedelta(seconds=0.5), 60, 1, 5)
    assert granted == 1 and abs(left) < 1e-9
    assert take_tokens(0.0, T0, T0 + timedelta(hours=1), 60, 1, 5)[0] == 1   # no burst
    assert take_tokens(0.0, T0, T0 + timedelta(seconds=1), 600, 2, 5)[0] == 2
    assert take_tokens(3.0, T0, T0, 600, 5, 1) == (1, 2.0)                  # only what's wanted
    # a clock going back refills nothing
    assert take_tokens(0.2, T0, T0 - timedelta(seconds=5), 60, 1, 1) == (0, 0.2)


def test_the_message_carries_one_click_unsubscribe():
    rid, cid = uuid.uuid4(), uuid.uuid4()
    message = build_message({"display_name": "Отдел продаж", "address": "sales@roofcrm.ru"}, {
        "email": "a@b.ru", "subject": "Новинка", "body": "Текст", "campaign_id": cid,
        "recipient_id": rid, "unsubscribe_url": "https://crm/u/tok"}, T0)
    assert message["List-Unsubscribe"] == "<https://crm/u/tok>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-CRM-Recipient"] == str(rid)
    assert message["Message-ID"].endswith("@roofcrm.ru>")


def dsn(action: str, status: str, headers_part: str = "text/rfc822-headers") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\r\nTo: sales@roofcrm.ru\r\nSubject: failure\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; '
        'boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nSorry\r\n'
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n"
        f"\r\nFinal-Recipient: rfc822; Bob@Example.org\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; 550 no such user\r\n\r\n"
        f"--B\r\nContent-Type: {headers_part}\r\n\r\n"
        "Message-ID: <orig-1@roofcrm.ru>\r\nX-CRM-Recipient: r-1\r\nSubject: x\r\n\r\n"
        "--B--\r\n").encode()


def test_a_permanent_failure_dsn_is_a_bounce():
    bounce, = detect_bounces(dsn("failed", "5.1.1"))
    assert bounce.email == "bob@example.org" and bounce.status == "5.1.1"
    assert bounce.original_message_id == "<orig-1@roofcrm.ru>"
    assert bounce.recipient_id == "r-1" and "no such user" in bounce.reason
    bounce, = detect_bounces(dsn("failed", "5.2.2", "message/rfc822"))
    assert bounce.original_message_id == "<orig-1@roofcrm.ru>"


def test_delays_and_ordinary_mail_are_not_bounces():
    assert detect_bounces(dsn("delayed", "4.4.1")) == []
    assert detect_bounces(dsn("failed", "4.4.7")) == []
    assert detect_bounces(b"From: a@b.ru\r\nSubject: hi\r\n\r\nhello\r\n") == []
    # a null sender without X-Failed-Recipients says nothing we can use
    assert detect_bounces(b"Return-Path: <>\r\nSubject: x\r\n\r\nbody\r\n") == []


def test_a_null_sender_with_failed_recipients_is_a_bounce():
    bounce, = detect_bounces(b"Return-Path: <>\r\nX-Failed-Recipients: Eve@Example.org\r\n"
                             b"Subject: Mail delivery failed\r\n\r\nbody\r\n")
    assert bounce.email == "eve@example.org" and bounce.status is None
