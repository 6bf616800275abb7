"""Validation and normalisation of what people type into a client card.

INN and OGRN are checked with their real checksums (python-stdnum), KPP by format, phones are
normalised to E.164 with Russian dialling habits (``8 916 …``, ``+7 (916) …``, ten local digits,
``810`` as the international prefix), and a short number is a PBX extension, never a client's phone.
Every function raises ``FieldError(field, reason)``; the caller collects them per field.
"""

from __future__ import annotations

import re

import phonenumbers
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.ru import inn as stdnum_inn
from stdnum.ru import ogrn as stdnum_ogrn

# Longest internal (PBX) number we accept as an extension rather than a phone.
MAX_EXTENSION_DIGITS = 6

LEGAL_FORMS = {
    # spelled-out form -> abbreviation
    "общество с ограниченной ответственностью": "ООО",
    "закрытое акционерное общество": "ЗАО",
    "открытое акционерное общество": "ОАО",
    "публичное акционерное общество": "ПАО",
    "непубличное акционерное общество": "АО",
    "акционерное общество": "АО",
    "индивидуальный предприниматель": "ИП",
    "общество с дополнительной ответственностью": "ОДО",
    "производственный кооператив": "ПК",
    "государственное унитарное предприятие": "ГУП",
    "муниципальное унитарное предприятие": "МУП",
    "товарищество собственников жилья": "ТСЖ",
}
ABBREVIATIONS = {"ООО", "ЗАО", "ОАО", "ПАО", "АО", "ИП", "ОДО", "ПК", "ГУП", "МУП", "ТСЖ", "НАО",
                 "ООО.", "LLC", "LTD", "JSC", "ТОО", "ЧП", "ФГУП", "АНО", "НКО"}


class FieldError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def normalise_inn(value: str | None, field: str = "inn") -> str | None:
    if value in (None, ""):
        return None
    number = digits(str(value))
    if len(number) not in (10, 12):
        raise FieldError(field, "ИНН состоит из 10 (организация) или 12 (ИП) цифр")
    try:
        return stdnum_inn.validate(number)
    except InvalidChecksum:
        raise FieldError(field, "неверная контрольная сумма ИНН") from None
    except (InvalidFormat, InvalidLength, InvalidComponent):
        raise FieldError(field, "ИНН не распознан") from None


def normalise_kpp(value: str | None, field: str = "kpp") -> str | None:
    if value in (None, ""):
        return None
    kpp = re.sub(r"\s", "", str(value)).upper()
    # 4 digits of the tax office, 2 of the reason (digits or capital Latin letters), 3 digits.
    if not re.fullmatch(r"\d{4}[\dA-Z]{2}\d{3}", kpp):
        raise FieldError(field, "КПП — 9 знаков: 4 цифры, 2 цифры или латинские буквы, 3 цифры")
    return kpp


def normalise_ogrn(value: str | None, field: str = "ogrn") -> str | None:
    if value in (None, ""):
        return None
    number = digits(str(value))
    if len(number) not in (13, 15):
        raise FieldError(field, "ОГРН — 13 цифр (ОГРНИП — 15)")
    try:
        return stdnum_ogrn.validate(number)
    except InvalidChecksum:
        raise FieldError(field, "неверная контрольная сумма ОГРН") from None
    except (InvalidFormat, InvalidLength, InvalidComponent):
        raise FieldError(field, "ОГРН не распознан") from None


def is_extension(value: str) -> bool:
    """A short number dialled inside the office PBX (``101``), not a phone of a client."""
    number = digits(value)
    return 0 < len(number) <= MAX_EXTENSION_DIGITS and not value.strip().startswith("+")


def normalise_phone(value: str, field: str = "phones") -> str:
    """E.164 (``+79161234567``) for a Russian or international number."""
    raw = (value or "").strip()
    if not raw:
        raise FieldError(field, "пустой номер")
    if is_extension(raw):
        raise FieldError(field, f"{raw} — внутренний номер АТС, а не телефон клиента")
    try:
        number = phonenumbers.parse(raw, "RU")
    except phonenumbers.NumberParseException:
        raise FieldError(field, f"{raw} — не телефонный номер") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError(field, f"{raw} — такого номера не существует")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(value: str, field: str = "emails") -> str:
    email = (value or "").strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 320:
        raise FieldError(field, f"{value!r} — не адрес электронной почты")
    return email


def normalise_website(value: str | None) -> str | None:
    if not value:
        return None
    site = value.strip().lower()
    site = re.sub(r"^https?://", "", site).rstrip("/")
    return site or None


QUOTES = "«»\"'“”„‘’`"


def split_legal_form(name: str) -> tuple[str | None, str]:
    """``ООО «Стройметалл»`` -> (``ООО``, ``Стройметалл``); also ``Стройметалл, ООО`` and the
    spelled-out forms."""
    text = " ".join((name or "").split())
    lowered = text.lower()
    # Longest first: "непубличное акционерное общество" contains "публичное акционерное общество".
    for spelled, short in sorted(LEGAL_FORMS.items(), key=lambda item: -len(item[0])):
        if spelled in lowered:
            start = lowered.index(spelled)
            text = (text[:start] + text[start + len(spelled):]).strip(" ,")
            return short, text.strip(QUOTES + " ,")
    tokens = [t for t in re.split(r"[\s,]+", text) if t]
    bare = [t.strip(QUOTES + ".").upper() for t in tokens]
    position = next((i for i, t in enumerate(bare) if t in ABBREVIATIONS), None)
    # A company may be *called* like a form ("АНО"): only a form beside a name is a form.
    if position is None or len(tokens) == 1:
        return None, text.strip(QUOTES + " ,")
    form = bare[position]
    rest = " ".join(tokens[:position] + tokens[position + 1:])
    return form, rest.strip(QUOTES + " ,")


def name_key(name: str) -> str:
    """The key that makes ``ООО «Стройметалл»``, ``Стройметалл, ООО`` and ``СТРОЙМЕТАЛЛ`` one name:
    legal form, quotes, punctuation and case dropped, ё as е, words in alphabetical order."""
    _form, bare = split_legal_form(name)
    bare = bare.lower().replace("ё", "е")
    words = re.findall(r"[0-9a-zа-я]+", bare)
    return " ".join(sorted(words))
