"""Parsing the fixture messages (written by hand in the encodings mail really comes in)."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.mail.domain.parsing import (
    html_to_text,
    idempotency_key,
    message_ids,
    normalise_address,
    parse_message,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SUBJECT = "Запрос цены на профлист С21 и металлочерепицу Монтеррей"


def parsed(name):
    return parse_message((FIXTURES / name).read_bytes())


def test_utf8_quoted_printable_and_folded_rfc2047_subject():
    m = parsed("01_inbound_utf8_qp.eml")
    assert m.subject == SUBJECT                      # three folded encoded-words joined
    assert m.from_address == "ivanov@stroymetall.ru"  # lower-cased
    assert m.from_name == "Иванов Иван"
    assert m.to == ("m.ural.1@roofcrm.ru",)
    assert m.names["m.ural.1@roofcrm.ru"] == "Менеджер"
    assert "профлист С21 — 120 м², цвет RAL 3005" in m.text
    assert m.message_id == m.key == "<t1.root@stroymetall.ru>"
    assert m.sent_at == datetime(2026, 11, 23, 7, 15, tzinfo=UTC)
    assert m.references == () and m.in_reply_to is None


def test_windows1251_base64_body_and_subject():
    m = parsed("02_outbound_cp1251_base64.eml")
    assert m.subject == "Re: " + SUBJECT
    assert m.from_name == "Менеджер Урал"
    assert "Цена профлиста С21 — 650,00 руб." in m.text
    assert m.cc == ("sales@roofcrm.ru",)
    assert m.in_reply_to == "<t1.root@stroymetall.ru>"


def test_koi8r_qp_body_and_rfc2231_attachment_name_wins_over_rfc2047():
    m = parsed("03_inbound_koi8r_attachment.eml")
    assert m.subject == "RE: Отв: " + SUBJECT
    assert m.text.startswith("Спасибо! Реквизиты - во вложении, ждём счёт.")
    assert m.references == ("<t1.root@stroymetall.ru>", "<t2@roofcrm.ru>")
    (pdf,) = m.attachments
    assert pdf.filename == "Реквизиты ООО Стройметалл.pdf"   # filename*=, not name=
    assert pdf.content_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4")
    assert pdf.size == len(pdf.content)
    assert pdf.sha256 == hashlib.sha256(pdf.content).hexdigest()


def test_rfc6532_raw_utf8_headers_and_html_only_body():
    m = parsed("04_inbound_rfc6532_html.eml")
    assert m.subject == "Пересл: Re: " + SUBJECT
    assert m.from_name == "Бухгалтерия Стройметалл"
    assert m.from_address == "info@stroymetall.ru"
    assert "Подтверждаем заказ «С21» — 120 м²." in m.text
    assert "• Доставка: Екатеринбург" in m.text
    assert "alert" not in m.text and "color" not in m.text and "<p>" not in m.text


def test_rfc2047_attachment_name_when_there_is_no_rfc2231_one():
    m = parsed("06_unknown_rfc2047_name.eml")
    (xlsx,) = m.attachments
    assert xlsx.filename == "Смета ангар.xlsx"
    assert xlsx.size == 99
    assert m.from_address == "petr@newbuild.ru" and m.from_name == "Петр Сидоров"
    assert m.sent_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)   # +0500 -> UTC


def test_message_without_message_id_is_keyed_by_sha256_of_date_from_subject_body():
    raw = (FIXTURES / "05_no_message_id.eml").read_bytes()
    m = parse_message(raw)
    assert m.message_id is None
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"Subject: "))
    folded = [lines[at][len(b"Subject: "):]]
    folded += [line for line in lines[at + 1:at + 5] if line[:1] in (b" ", b"\t")]
    subject_as_written = b" ".join(b" ".join(folded).split())     # unfolded
    assert subject_as_written.startswith(b"=?utf-8?")          # the key hashes it encoded
    expected = "sha256:" + hashlib.sha256(
        b"Wed, 25 Nov 2026 08:00:00 +0300\nivanov@stroymetall.ru\n" + subject_as_written
        + b"\n" + body[:1024]).hexdigest()
    assert m.key == expected
    # the same message again has the same key; another body another one
    assert parse_message(raw).key == m.key
    assert parse_message(raw.replace("доставку".encode(), "оплату".encode())).key != m.key


def test_idempotency_key_prefers_message_id_and_reads_only_the_first_kilobyte():
    assert idempotency_key("<a@b>", "d", "f", "s", b"x") == "<a@b>"
    long_a, long_b = b"a" * 1024 + b"tail-1", b"a" * 1024 + b"tail-2"
    assert idempotency_key(None, "d", "f", "s", long_a) == idempotency_key(None, "d", "f", "s",
                                                                           long_b)
    assert idempotency_key(None, "d", "f", "s", b"1") != idempotency_key(None, "d", "f", "t",
                                                                         b"1")


def test_message_ids_keep_brackets_and_case():
    assert message_ids(" <A@x.ru>\r\n\t<b@Y.ru> junk <c@z>") == ["<A@x.ru>", "<b@Y.ru>", "<c@z>"]
    assert message_ids(None) == []


@pytest.mark.parametrize("value,expected", [
    ("Ivan@StroyMetall.RU", "ivan@stroymetall.ru"),
    (" <a.b@x.ru> ", "a.b@x.ru"),
    ("no-at-sign", None),
    ("a@localhost", None),
    ("", None),
])
def test_normalise_address(value, expected):
    assert normalise_address(value) == expected


def test_html_to_text_drops_markup_and_keeps_blocks():
    text = html_to_text("<div>Первая<br>вторая</div><table><tr><td>A</td><td>B</td></tr>"
                        "</table><style>.x{}</style>&amp; конец")
    assert text.splitlines()[0] == "Первая"
    assert "вторая" in text and "& конец" in text and ".x" not in text


def test_broken_charset_does_not_fail_the_message():
    raw = (b"From: a@b.ru\r\nSubject: x\r\nMessage-ID: <q@b.ru>\r\n"
           b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nhello\r\n")
    assert parse_message(raw).text.strip() == "hello"
