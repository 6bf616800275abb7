"""Vehicles, drivers and carriers: what a valid one is.

* Plates are kept in one spelling: upper case, no spaces or dashes, Latin look-alikes turned into
  the Cyrillic letters Russian plates use (``a 123 bc 77`` -> ``А123ВС77``). A truck's plate is
  ``L DDD LL RR(R)``; a trailer's ``LL DDDD RR(R)``.
* Vehicle types: ``curtain_sider`` (тент), ``flatbed`` (бортовой), ``crane`` (with a loader crane).
  Payload in tonnes and body length in metres are Decimals; profiled sheet and panels are long, so
  the body length limits what a vehicle can take as much as its payload.
* A vehicle is ours (``own``: its cost is ``per_km_rate`` × km + ``per_hour_rate`` × hours) or a
  hired carrier's (``carrier``: the carrier's rate, see ``costs``).
* Carriers' rates: ``per_trip`` (a fixed sum a trip), ``per_km`` (× the trip's km) or
  ``per_tonne`` (× the tonnes carried).
* Drivers: a name, a phone in E.164 (phonenumbers, Russian dialling habits: 8 912 ... is +7 912
  ...), a licence number, optionally the CRM login (a user with role ``driver``) that opens the
  driver page.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import phonenumbers

from crm_platform.errors import ValidationFailed

VEHICLE_TYPES = ("curtain_sider", "flatbed", "crane")
OWNERSHIP = ("own", "carrier")
RATE_KINDS = ("per_trip", "per_km", "per_tonne")

_LATIN_TO_CYRILLIC = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")
_PLATE_LETTERS = "АВЕКМНОРСТУХ"
_TRUCK = re.compile(rf"^[{_PLATE_LETTERS}]\d{{3}}[{_PLATE_LETTERS}]{{2}}\d{{2,3}}$")
_TRAILER = re.compile(rf"^[{_PLATE_LETTERS}]{{2}}\d{{4}}\d{{2,3}}$")


def normalise_plate(raw: str) -> str:
    """The one spelling of a Russian registration plate; ``ValidationFailed`` if it is none."""
    plate = re.sub(r"[\s\-]", "", str(raw or "")).upper().translate(_LATIN_TO_CYRILLIC)
    if not (_TRUCK.match(plate) or _TRAILER.match(plate)):
        raise ValidationFailed("Госномер не распознан", fields={"plate": [
            "ожидается номер вида А123ВС77 (грузовик) или АВ1234 77 (прицеп)"]})
    return plate


def normalise_phone(raw: str, field: str = "phone") -> str:
    """E.164 of a Russian (or international, with +) phone number."""
    text = str(raw or "").strip()
    try:
        number = phonenumbers.parse(text, "RU")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationFailed("Телефон не распознан", fields={field: [
            "ожидается номер телефона, например +7 912 345-67-89"]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def decimal_in(value, field: str, errors: dict, *, low: Decimal, high: Decimal,
               required: bool = True) -> Decimal | None:
    """``value`` as a Decimal within [low, high]; the reason goes to ``errors[field]``."""
    if value is None or value == "":
        if required:
            errors[field] = ["обязательное поле"]
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors[field] = ["ожидается число"]
        return None
    if not number.is_finite() or number < low or number > high:
        errors[field] = [f"от {low} до {high}"]
        return None
    return number


def check_vehicle(data: dict, *, carrier_exists) -> dict:
    """A vehicle's fields, checked and normalised. ``carrier_exists(id)`` tells whether a carrier
    is known. Raises ``ValidationFailed`` naming every bad field."""
    errors: dict = {}
    out: dict = {}
    try:
        out["plate"] = normalise_plate(data.get("plate"))
    except ValidationFailed as exc:
        errors.update(exc.fields)
    kind = data.get("kind")
    if kind not in VEHICLE_TYPES:
        errors["kind"] = [f"одно из: {', '.join(VEHICLE_TYPES)}"]
    out["kind"] = kind
    out["payload_t"] = decimal_in(data.get("payload_t"), "payload_t", errors,
                                  low=Decimal("0.1"), high=Decimal("60"))
    out["body_length_m"] = decimal_in(data.get("body_length_m"), "body_length_m", errors,
                                      low=Decimal("1"), high=Decimal("25"))
    out["volume_m3"] = decimal_in(data.get("volume_m3"), "volume_m3", errors,
                                  low=Decimal("0"), high=Decimal("200"), required=False)
    ownership = data.get("ownership", "own")
    if ownership not in OWNERSHIP:
        errors["ownership"] = ["own или carrier"]
    out["ownership"] = ownership
    out["carrier_id"] = data.get("carrier_id")
    if ownership == "carrier":
        if not out["carrier_id"]:
            errors["carrier_id"] = ["обязателен для машины перевозчика"]
        elif not carrier_exists(out["carrier_id"]):
            errors["carrier_id"] = ["перевозчик не найден"]
        out["per_km_rate"] = out["per_hour_rate"] = None
    else:
        if out["carrier_id"]:
            errors["carrier_id"] = ["у своей машины нет перевозчика"]
        out["per_km_rate"] = decimal_in(data.get("per_km_rate"), "per_km_rate", errors,
                                        low=Decimal("0"), high=Decimal("100000"))
        out["per_hour_rate"] = decimal_in(data.get("per_hour_rate"), "per_hour_rate", errors,
                                          low=Decimal("0"), high=Decimal("1000000"))
    out["active"] = bool(data.get("active", True))
    if errors:
        raise ValidationFailed("Машина не прошла проверку", fields=errors)
    return out


def check_carrier(data: dict) -> dict:
    errors: dict = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = ["обязательное поле"]
    elif len(name) > 300:
        errors["name"] = ["не длиннее 300 символов"]
    rate_kind = data.get("rate_kind")
    if rate_kind not in RATE_KINDS:
        errors["rate_kind"] = [f"одно из: {', '.join(RATE_KINDS)}"]
    rate = decimal_in(data.get("rate"), "rate", errors, low=Decimal("0"),
                      high=Decimal("10000000"))
    phone = None
    if data.get("phone"):
        try:
            phone = normalise_phone(data["phone"])
        except ValidationFailed as exc:
            errors.update(exc.fields)
    if errors:
        raise ValidationFailed("Перевозчик не прошёл проверку", fields=errors)
    return {"name": name, "rate_kind": rate_kind, "rate": rate, "phone": phone,
            "inn": (str(data.get("inn") or "").strip() or None), "active": bool(
                data.get("active", True))}


def check_driver(data: dict, *, carrier_exists) -> dict:
    errors: dict = {}
    name = " ".join(str(data.get("full_name") or "").split())
    if not name:
        errors["full_name"] = ["обязательное поле"]
    elif len(name) > 300:
        errors["full_name"] = ["не длиннее 300 символов"]
    phone = None
    try:
        phone = normalise_phone(data.get("phone"))
    except ValidationFailed as exc:
        errors.update(exc.fields)
    licence = re.sub(r"\s", "", str(data.get("licence") or "")).upper()
    if not re.fullmatch(r"[0-9A-ZА-Я]{6,20}", licence):
        errors["licence"] = ["номер водительского удостоверения: 6–20 букв и цифр"]
    carrier_id = data.get("carrier_id")
    if carrier_id and not carrier_exists(carrier_id):
        errors["carrier_id"] = ["перевозчик не найден"]
    if errors:
        raise ValidationFailed("Водитель не прошёл проверку", fields=errors)
    return {"full_name": name, "phone": phone, "licence": licence, "carrier_id": carrier_id,
            "user_id": data.get("user_id"), "active": bool(data.get("active", True))}
