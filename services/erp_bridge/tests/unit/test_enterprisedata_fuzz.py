"""Hostile EnterpriseData messages (issue 11, part 3): XML bombs, external entities, huge
attributes and fields, truncated XML, wrong encodings, garbage bytes and zip bombs. Every input
either parses into a message the bridge can store or is refused with ``MalformedMessage`` (a
reason in Russian, a field within the quarantine's limits) — quickly, without expanding an
entity or reading a file, and never with another exception."""

from __future__ import annotations

import io
import time
import zipfile
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.erp_bridge.domain.enterprisedata import parse_message
from services.erp_bridge.domain.objects import (
    FIELD_MAX,
    ContactPerson,
    Counterparty,
    Document,
    MalformedMessage,
    Message,
)
from services.erp_bridge.tests.ed_samples import counterparty_xml, ed_message, order_xml, zipped
from services.erp_bridge.tests.unit.test_enterprisedata import CP, INN, KPP, ORDER, sale_message

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = 2.0      # seconds: no input may keep the parser busy longer (no hang, no expansion)
VALID = sale_message()


def outcome(data: bytes, **limits) -> Message | MalformedMessage:
    started = time.monotonic()
    try:
        result = parse_message(data, **limits)
    except MalformedMessage as error:
        assert error.reason and isinstance(error.reason, str)
        assert error.field is None or len(error.field) <= FIELD_MAX
        result = error
    assert time.monotonic() - started < SLOW
    if isinstance(result, Message):
        assert_storable(result)
    return result


def assert_storable(message: Message) -> None:
    """Within the bridge's columns (services/erp_bridge/models.py)."""
    assert len(message.header.sender) <= 100 and len(message.header.receiver) <= 100
    for obj in message.objects:
        if isinstance(obj, Counterparty):
            assert len(obj.name) <= 500 and len(obj.full_name) <= 1000
            assert len(obj.inn or "") <= 12 and len(obj.kpp or "") <= 9
        elif isinstance(obj, ContactPerson):
            assert len(obj.full_name) <= 500 and len(obj.position) <= 300
        elif isinstance(obj, Document):
            assert len(obj.number) <= 100 and len(obj.currency) <= 3
            assert len(obj.responsible or "") <= 300
            assert abs(obj.amount) < Decimal("1e13")


def rejected(data: bytes, **limits) -> MalformedMessage:
    result = outcome(data, **limits)
    assert isinstance(result, MalformedMessage), result
    return result


@FUZZ
@given(data=st.binary(max_size=3000))
def test_any_bytes_are_a_message_or_a_reason(data):
    outcome(data)


@FUZZ
@given(cut=st.integers(1, len(VALID) - 1))
def test_every_truncation_of_a_message_is_refused(cut):
    # The message ends with "</Message>\n": any shorter prefix is an unfinished document.
    if VALID[:cut].rstrip().endswith(b"</Message>"):
        return
    rejected(VALID[:cut])


@FUZZ
@given(position=st.integers(0, len(VALID) - 1), junk=st.binary(min_size=1, max_size=8))
def test_corrupted_bytes_anywhere_never_crash(position, junk):
    outcome(VALID[:position] + junk + VALID[position + len(junk):])


@FUZZ
@given(encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-32", "cp1251", "koi8-r",
                                 "latin-1"]),
       declare=st.sampled_from(["UTF-8", "windows-1251", "KOI8-R", "UTF-16", "bogus-charset",
                                None]))
def test_wrong_encodings_are_read_or_refused_never_garbled_silently(encoding, declare):
    text = VALID.decode("utf-8")
    text = text.replace('<?xml version="1.0" encoding="UTF-8"?>',
                        f'<?xml version="1.0" encoding="{declare}"?>' if declare else "")
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode(encoding, errors="replace")
    result = outcome(data)
    if isinstance(result, Message):
        # Read at all, then read right: the Cyrillic names came through as they were sent.
        names = {o.name for o in result.objects if isinstance(o, Counterparty)}
        assert names == {"ООО «Кровельный центр»"}


DTD_ATTACKS = {
    "billion laughs": '<!DOCTYPE Message [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY a{n + 1} "{f"&a{n};" * 10 if n else "&a;" * 10}">' for n in range(9))
    + "]>",
    "quadratic blowup": '<!DOCTYPE Message [<!ENTITY x "' + "x" * 50_000 + '">]>',
    "external entity": '<!DOCTYPE Message [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    "external parameter entity": '<!DOCTYPE Message [<!ENTITY % p SYSTEM '
                                 '"http://127.0.0.1:9/evil.dtd"> %p;]>',
    "external DTD": '<!DOCTYPE Message SYSTEM "http://127.0.0.1:9/evil.dtd">',
    "plain DOCTYPE": "<!DOCTYPE Message>",
}


@pytest.mark.parametrize("attack", list(DTD_ATTACKS), ids=list(DTD_ATTACKS))
@pytest.mark.parametrize("zip_it", [False, True], ids=["raw", "zipped"])
def test_dtds_and_entities_are_refused_before_any_expansion(attack, zip_it):
    text = VALID.decode().replace('<?xml version="1.0" encoding="UTF-8"?>\n',
                                  '<?xml version="1.0" encoding="UTF-8"?>\n'
                                  + DTD_ATTACKS[attack] + "\n", 1)
    text = text.replace("УТ-000123", "&xxe;" if "external entity" == attack else
                        "&a9;" if attack == "billion laughs" else
                        "&x;&x;&x;&x;" if attack == "quadratic blowup" else "УТ-000123")
    data = text.encode()
    error = rejected(zipped(data) if zip_it else data)
    assert "DTD" in error.reason
    assert "root:" not in error.reason      # nothing of /etc/passwd leaks into the reason


@FUZZ
@given(size=st.integers(1000, 200_000), where=st.sampled_from(["attribute", "text", "tag"]))
def test_huge_attributes_fields_and_names_are_refused_or_bounded(size, where):
    if where == "attribute":
        data = VALID.replace(b"<Body ", b"<Body junk=\"" + b"x" * size + b"\" ", 1)
        outcome(data)
    elif where == "text":
        data = ed_message(1, [order_xml(ORDER, "N" * size, "2024-03-15T10:30:00", "1.00", CP,
                                        INN, KPP)])
        error = rejected(data)
        assert "Номер" in error.reason
    else:
        tag = "Т" * size
        data = VALID.replace(b"<Body ", f"<{tag}/><Body ".encode(), 1)
        outcome(data)


@FUZZ
@given(name=st.text(min_size=1, max_size=1200), inn=st.text(min_size=1, max_size=40),
       amount=st.decimals(allow_nan=False, allow_infinity=False, places=2,
                          min_value=Decimal("-1e20"), max_value=Decimal("1e20")))
def test_any_field_values_parse_storable_or_are_refused(name, inn, amount):
    data = ed_message(1, [
        counterparty_xml(CP, name, inn, KPP),
        order_xml(ORDER, "УТ-1", "2024-03-15T10:30:00", str(amount), CP, INN, KPP),
    ])
    outcome(data)


def test_deep_nesting_is_refused_or_read_without_recursion_limits():
    depth = 200_000
    data = VALID.replace(b"<Body ", b"<x>" * depth + b"</x>" * depth + b"<Body ", 1)
    outcome(data)


def test_a_zip_bomb_is_refused_by_its_declared_and_real_size():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Message.xml", b"<Message>" + b" " * (30 * 1024 * 1024) + b"</Message>")
    error = rejected(buffer.getvalue())
    assert error.field == "zip"


def test_too_many_objects_are_refused_without_reading_them():
    objects = [counterparty_xml(CP, "ООО «Ромашка»", INN, KPP)] * 50
    error = rejected(ed_message(1, objects), max_objects=10)
    assert error.field == "Body"
