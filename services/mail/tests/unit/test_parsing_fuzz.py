"""Hostile mail (issue 11, part 3): broken MIME, wrong and unknown charsets, huge headers, deep
nesting, garbage bytes. ``parse_message`` must take any bytes, quickly, and give back only what
the mail tables can hold (no U+0000, which PostgreSQL text refuses; ids and addresses within
their columns) — a message that crashed the parser or the insert would stop its mailbox's sync
at that message for good."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.mail.domain.parsing import ParsedMessage, parse_message

FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = 3.0


def parsed(raw: bytes) -> ParsedMessage:
    started = time.monotonic()
    result = parse_message(raw)
    assert time.monotonic() - started < SLOW
    assert_storable(result)
    return result


def assert_storable(m: ParsedMessage) -> None:
    """Within services/mail/models.py (messages, attachments) and without NUL characters."""
    texts = [m.key, m.subject, m.from_name, m.text, m.message_id or "", m.in_reply_to or "",
             m.from_address or "", *m.to, *m.cc, *m.references, *m.names, *m.names.values()]
    texts += [a.filename for a in m.attachments] + [a.content_type for a in m.attachments]
    assert all(isinstance(t, str) and "\x00" not in t for t in texts)
    assert len(m.key) <= 1000 and len(m.message_id or "") <= 998
    assert len(m.subject) <= 998
    assert all(len(a) <= 320 for a in (m.from_address or "", *m.to, *m.cc))
    assert all(len(r) <= 998 for r in (*m.references, m.in_reply_to or ""))
    assert all(len(a.filename) <= 500 and len(a.content_type) <= 200 for a in m.attachments)
    assert m.sent_at is None or m.sent_at.tzinfo is not None


header_names = st.sampled_from(["From", "To", "Cc", "Subject", "Date", "Message-ID",
                                "In-Reply-To", "References", "Content-Type",
                                "Content-Transfer-Encoding", "Content-Disposition",
                                "MIME-Version", "X-Junk"])
header_values = st.one_of(
    st.text(max_size=80).map(lambda t: t.replace("\r", " ").replace("\n", " ")),
    st.sampled_from([
        'multipart/mixed; boundary="b"', "multipart/mixed", "multipart/alternative; boundary=",
        "text/plain; charset=x-unknown-charset", "text/plain; charset=koi8-r",
        "text/html; charset=windows-1251", "text/plain; charset=utf-7", "base64",
        "quoted-printable", "x-uuencode", "attachment; filename*=utf-8''%D0%9F%00.pdf",
        "=?utf-8?B?0J/RgNC40LLQtdGC?=", "=?koi8-r?Q?=F0=D2=C9?=", "=?bogus?B?AAAA?=",
        "=?utf-8?B?AA==?=", "<a@b>", "<" + "x" * 2000 + "@example.com>",
        '"' + "Ы" * 500 + '" <' + "a" * 400 + "@example.com>", "Mon, 99 Foo 20261 25:61:00",
        "Fri, 31 Dec 9999 23:59:59 -1200", "a@b.c\x00d", "message/rfc822",
    ]),
)
bodies = st.one_of(st.binary(max_size=600), st.text(max_size=300).map(str.encode),
                   st.sampled_from([b"=\r\n=ZZ=00=", b"AAAA====!!!", b"\x00\x00\x00",
                                    b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
                                    b"--b--", b"<html><script>x</script><p>\x00</p>"]))


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_any_bytes_parse_into_something_storable(raw):
    parsed(raw)


@FUZZ
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=12), body=bodies)
def test_broken_headers_and_mime_parse_into_something_storable(headers, body):
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    parsed(head.encode("utf-8", "surrogatepass") + b"\r\n" + body)


@FUZZ
@given(charset=st.sampled_from(["utf-8", "windows-1251", "koi8-r", "x-no-such", "utf-16",
                                "utf-7", "iso-2022-jp", "", "ascii\x00"]),
       cte=st.sampled_from(["8bit", "base64", "quoted-printable", "7bit", "x-bogus"]),
       text=st.text(max_size=200))
def test_wrong_and_unknown_charsets_never_crash(charset, cte, text):
    body = text.encode("utf-8", "surrogatepass")
    raw = (f"From: a@example.com\r\nSubject: charset\r\nContent-Type: text/plain; "
           f"charset=\"{charset}\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").encode() + body
    parsed(raw)


@FUZZ
@given(size=st.integers(10_000, 100_000), header=header_names)
def test_huge_headers_are_bounded(size, header):
    raw = (f"From: a@example.com\r\n{header}: ".encode() + b"x" * size
           + b"\r\nMessage-ID: <" + b"y" * size + b"@example.com>\r\n\r\nbody")
    parsed(raw)


@FUZZ
@given(depth=st.integers(50, 200))
def test_deeply_nested_multiparts_parse(depth):
    parts = [b"From: a@example.com\r\nSubject: nest\r\n"]
    for level in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'
                     f"--b{level}\r\n".encode())
    parts.append(b"Content-Type: text/plain\r\n\r\ninner text\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n".encode())
    result = parsed(b"".join(parts))
    assert "inner text" in result.text


def test_nul_characters_in_a_body_and_a_filename_are_dropped():
    raw = (b"From: a@example.com\r\nSubject: nul\x00here\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbe\x00fore\r\n"
           b"--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''a%00b.pdf\r\n\r\n%PDF\r\n--b--\r\n")
    result = parsed(raw)
    assert "before" in result.text.replace("\ufffd", "")
    assert [a.filename.replace("\ufffd", "") for a in result.attachments] == ["ab.pdf"]
