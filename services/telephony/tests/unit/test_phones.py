"""Phone normalisation (INTEGRATION-FORMATS §2.4): every rule, the examples, and phonenumbers."""

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.telephony.domain.phones import Normalised, is_extension, normalise, to_e164

# (input, e164, extension)
CASES = [
    # '+' followed by digits: kept as is
    ("+79165552741", "+79165552741", None),
    ("+7 (916) 555-27-41", "+79165552741", None),
    ("+49 30 1234567", "+49301234567", None),
    ("tel:+7-916-555-27-41", "+79165552741", None),
    # 11 digits starting with 8
    ("8 916 555-27-41", "+79165552741", None),
    ("8 (916) 555 27 41", "+79165552741", None),
    ("8 800 555-35-35", "+78005553535", None),
    ("8-495-123-45-67", "+74951234567", None),
    # 11 digits starting with 7
    ("79165552741", "+79165552741", None),
    ("7 (495) 123-45-67", "+74951234567", None),
    # 10 digits starting with 3, 4, 8 or 9
    ("9165552741", "+79165552741", None),
    ("(495) 123-45-67", "+74951234567", None),
    ("8005553535", "+78005553535", None),
    ("3512345678", "+73512345678", None),
    # starting with 810
    ("810 49 30 1234567", "+49301234567", None),
    ("8-10-1-212-555-0100", "+12125550100", None),
    # ≤ 5 digits: an extension
    ("101", None, "101"),
    ("1", None, "1"),
    ("12345", None, "12345"),
    (" 102 ", None, "102"),
    # anything else: raw only
    ("123456", None, None),
    ("0951234567", None, None),
    ("5551234567", None, None),
    ("anonymous", None, None),
    ("", None, None),
    ("+123", None, None),                      # too short for E.164
    ("+1234567890123456", None, None),         # too long for E.164
    ("810123", None, None),                    # 810 and too little after it
]


@pytest.mark.parametrize("raw,e164,ext", CASES)
def test_rules(raw, e164, ext):
    n = normalise(raw)
    assert n == Normalised(e164, ext, raw)
    assert to_e164(raw) == e164
    assert is_extension(raw) is (ext is not None)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("8 916 555-27-41", "+79165552741"),
        ("8 800 555-35-35", "+78005553535"),
        ("810 49 30 1234567", "+49301234567"),
    ],
)
def test_formats_document_examples(raw, expected):
    assert normalise(raw).e164 == expected
    assert normalise(raw).valid


def test_101_is_an_extension_never_a_phone():
    n = normalise("101")
    assert n.extension == "101" and n.e164 is None and not n.valid
    assert is_extension("101")
    assert not is_extension("+7101")
    assert not is_extension("89165552741")


@pytest.mark.parametrize(
    "raw",
    [
        "  8 916 555-27-41  ",
        "phone: 8(916)555-27-41;",
        "<+7 916 555 27 41>",
        "8.916.555.27.41",
        "8 916 555-27-41\t",
        "\u200b+7\u00a0916\u00a0555\u201127\u201141",   # zero-width space, NBSP, non-ASCII dashes
    ],
)
def test_junk_around_and_inside(raw):
    assert normalise(raw).e164 == "+79165552741"


def test_plus_after_a_digit_is_junk():
    # "8+916…" has no leading '+': the digits follow the 8-rule
    assert normalise("8+9165552741").e164 == "+79165552741"


def test_none_and_non_ascii_digits():
    assert normalise(None) == Normalised(None, None, "")
    # Arabic-Indic digits are not phone digits here
    assert normalise("١٠١").extension is None


@pytest.mark.parametrize("raw,_e164,_ext", [c for c in CASES if c[1] is not None])
def test_agrees_with_phonenumbers(raw, _e164, _ext):
    parsed = phonenumbers.parse(raw, "RU")
    assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == _e164


# Any formatting of a valid +7 number normalises to the same E.164.
_ru_national = st.sampled_from(["916", "903", "495", "812", "800", "343"]).flatmap(
    lambda code: st.text("0123456789", min_size=7, max_size=7).map(lambda rest: code + rest)
)
_seps = st.sampled_from(["", " ", "-", ".", " - ", "\t", "  "])


@st.composite
def formatted_ru(draw):
    national = draw(_ru_national)
    prefix = draw(st.sampled_from(["+7", "8", "7", "", "+7 ", "8 ", "+ 7"]))
    groups = [national[:3], national[3:6], national[6:8], national[8:]]
    if draw(st.booleans()):
        groups[0] = "(" + groups[0] + ")"
    body = ""
    for g in groups:
        body += draw(_seps) + g
    lead = draw(st.sampled_from(["", " ", "tel:", "Тел. ", "\u00a0"]))
    trail = draw(st.sampled_from(["", " ", ";", " (моб.)", "\r\n"]))
    return national, lead + prefix + body + trail


@given(formatted_ru())
def test_any_formatting_of_a_ru_number(case):
    national, raw = case
    n = normalise(raw)
    assert n.e164 == "+7" + national
    assert n.extension is None
