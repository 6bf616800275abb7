"""A client card and its contacts, checked and normalised as a whole: every bad field is reported at
once (``fields`` maps a field to its reasons), and nothing half-checked goes further."""

from __future__ import annotations

from marshmallow import ValidationError

from crm_platform.errors import ValidationFailed

from ..schemas import ClientInputSchema, ContactSchema
from .normalize import (
    ABBREVIATIONS,
    QUOTES,
    FieldError,
    name_key,
    normalise_email,
    normalise_inn,
    normalise_kpp,
    normalise_ogrn,
    normalise_phone,
    normalise_website,
    split_legal_form,
)

# Built once: a marshmallow schema per call costs a third of normalising a 20,000-row import.
_CLIENT_INPUT = ClientInputSchema()
_CONTACT_INPUT = ContactSchema()


class Errors:
    def __init__(self):
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, reason: str):
        self.fields.setdefault(field, []).append(reason)

    def take(self, field: str, func, *args):
        try:
            return func(*args)
        except FieldError as exc:
            self.add(field, exc.reason)
            return None

    def raise_if_any(self, message="Карточка клиента не прошла проверку"):
        if self.fields:
            raise ValidationFailed(message, fields=self.fields)


def _unique(values):
    seen, out = set(), []
    for value in values:
        if value is not None and value not in seen:
            seen.add(value)
            out.append(value)
    return out


def normalise_phones(errors: Errors, field: str, values) -> list[str]:
    return _unique(errors.take(f"{field}.{i}", normalise_phone, v, field)
                   for i, v in enumerate(values or []))


def normalise_emails(errors: Errors, field: str, values) -> list[str]:
    return _unique(errors.take(f"{field}.{i}", normalise_email, v, field)
                   for i, v in enumerate(values or []))


def normalise_client(data: dict, *, partial: bool = False) -> dict:
    """Raw input -> a normalised card (only the given fields when ``partial``)."""
    try:
        card = _CLIENT_INPUT.load(data or {}, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed("Карточка клиента не прошла проверку",
                               fields=exc.messages) from None
    errors = Errors()
    if "short_name" in card:
        form, bare = split_legal_form(card["short_name"])
        if not bare or bare.strip(QUOTES + ". ").upper() in ABBREVIATIONS:
            errors.add("short_name", "нужно название, а не только форма собственности")
        if form and not card.get("legal_form"):
            card["legal_form"] = form
        card["name_key"] = name_key(card["short_name"]) or card["short_name"].lower()
    if "inn" in card:
        card["inn"] = errors.take("inn", normalise_inn, card["inn"])
    if "kpp" in card:
        card["kpp"] = errors.take("kpp", normalise_kpp, card["kpp"])
    if "ogrn" in card:
        card["ogrn"] = errors.take("ogrn", normalise_ogrn, card["ogrn"])
    if card.get("kpp") and card.get("inn") and len(card["inn"]) == 12:
        errors.add("kpp", "у индивидуального предпринимателя нет КПП")
    if "phones" in card:
        card["phones"] = normalise_phones(errors, "phones", card["phones"])
    if "emails" in card:
        card["emails"] = normalise_emails(errors, "emails", card["emails"])
    if "website" in card:
        card["website"] = normalise_website(card["website"])
    if card.get("legal_form"):
        card["legal_form"] = card["legal_form"].strip().upper()
    errors.raise_if_any()
    return card


def normalise_contact(data: dict, *, partial: bool = False) -> dict:
    try:
        contact = _CONTACT_INPUT.load(data or {}, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed("Контакт не прошёл проверку", fields=exc.messages) from None
    errors = Errors()
    if "phones" in contact:
        contact["phones"] = normalise_phones(errors, "phones", contact["phones"])
    if "emails" in contact:
        contact["emails"] = normalise_emails(errors, "emails", contact["emails"])
    if "full_name" in contact:
        contact["full_name"] = " ".join(contact["full_name"].split())
    errors.raise_if_any("Контакт не прошёл проверку")
    return contact


def identifiers_of(card: dict, contacts: list[dict] = ()) -> list[tuple[str, str, object]]:
    """The exact keys the duplicate check looks up: (kind, value, contact id or None)."""
    keys = []
    if card.get("inn"):
        keys.append(("inn", card["inn"], None))
        if card.get("kpp"):
            keys.append(("inn_kpp", f"{card['inn']}/{card['kpp']}", None))
    for phone in card.get("phones") or []:
        keys.append(("phone", phone, None))
    for email in card.get("emails") or []:
        keys.append(("email", email, None))
    for contact in contacts:
        for phone in contact.get("phones") or []:
            keys.append(("phone", phone, contact.get("id")))
        for email in contact.get("emails") or []:
            keys.append(("email", email, contact.get("id")))
    return keys


def normalise_client_and_contacts(data: dict, contacts: list[dict] | None, *,
                                  partial: bool = False) -> tuple[dict, list[dict]]:
    """The card and its contacts, with every error at once: a contact's are named by their place
    (``contacts.0.phones.1``), so they cannot be mistaken for the card's own."""
    fields: dict = {}
    card, normalised = {}, []
    try:
        card = normalise_client(data, partial=partial)
    except ValidationFailed as exc:
        fields.update(exc.fields)
    for i, contact in enumerate(contacts or []):
        try:
            normalised.append(normalise_contact(contact, partial=partial))
        except ValidationFailed as exc:
            for name, reasons in exc.fields.items():
                fields[f"contacts.{i}.{name}"] = reasons
    if fields:
        raise ValidationFailed("Карточка клиента не прошла проверку", fields=fields)
    return card, normalised
