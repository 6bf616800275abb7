"""Personal data requests (152-FZ) as every service that holds personal data answers them.

Each such service implements two platform RPCs in its own ``privacy.py`` mixin:

* ``personal_data_export(person) -> {"service", "sections": {name: [rows]}}`` — everything it
  holds about the person, as plain JSON;
* ``personal_data_erase(person, request_id) -> {"service", "erased": {name: count}, "kept":
  {name: reason}}`` — anonymise: names, phones, e-mails and bodies become ``MARKER`` (or leave
  arrays); what the law makes us keep (ERP documents' requisites, a company's INN/KPP, the
  append-only audit) stays and is named in ``kept``. Repeating it changes nothing more.

``person`` is ``{"emails": [...], "phones": [...]}`` already normalised (``normalise_person``):
the clients service, which orchestrates the request, expands a contact into its addresses and
numbers first. Callers: admin, director or integration accounts.
"""

from __future__ import annotations

import phonenumbers

from .errors import ValidationFailed

MARKER = "[удалено]"
ROLES = ("admin", "director", "integration")
MAX_KEYS = 20


def _phone(value: str) -> str | None:
    try:
        number = phonenumbers.parse(str(value), "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_person(person) -> dict:
    """``{"emails": [...], "phones": [...]}`` from ``email``/``phone`` or ``emails``/``phones``;
    422 naming the field when nothing usable is given or a value is no e-mail / phone."""
    if not isinstance(person, dict):
        raise ValidationFailed("Укажите человека", fields={"person": ["объект"]})
    errors: dict = {}
    emails, phones = [], []
    raw_emails = list(person.get("emails") or []) + ([person["email"]] if person.get("email")
                                                     else [])
    raw_phones = list(person.get("phones") or []) + ([person["phone"]] if person.get("phone")
                                                     else [])
    for value in raw_emails[:MAX_KEYS]:
        email = str(value).strip().lower()
        if "@" not in email or " " in email or len(email) > 320:
            errors["email"] = ["некорректный адрес электронной почты"]
        elif email not in emails:
            emails.append(email)
    for value in raw_phones[:MAX_KEYS]:
        phone = _phone(value)
        if phone is None:
            errors["phone"] = ["некорректный номер телефона"]
        elif phone not in phones:
            phones.append(phone)
    if errors:
        raise ValidationFailed("Данные человека не прошли проверку", fields=errors)
    if not emails and not phones:
        raise ValidationFailed("Укажите e-mail или телефон человека",
                               fields={"email": ["нужен e-mail или телефон"]})
    return {"emails": emails, "phones": phones}
