"""Russian phone normalisation to E.164 (INTEGRATION-FORMATS §2.4).

1. Strip everything except digits and a leading ``+`` (a ``+`` counts when it comes before the
   first digit, so ``tel:+7 916 …`` keeps it; a ``+`` after a digit is junk).
2. The first matching rule wins:

   ================================  ====================================================
   ``+`` followed by digits          kept as is (E.164; 7 to 15 digits, else raw only)
   11 digits starting with ``8``     ``8`` → ``+7`` (``8 800 …`` → ``+7800…``)
   11 digits starting with ``7``     prefixed with ``+``
   10 digits starting with 3/4/8/9   prefixed with ``+7``
   starting with ``810``             ``810`` → ``+`` (old international prefix; the rest must
                                     be 7 to 15 digits, else raw only)
   1 to 5 digits                     an internal extension, never a client phone
   ================================  ====================================================

3. Anything else is kept only in ``raw`` (``e164`` and ``extension`` are None) and never matched.

The result agrees with the ``phonenumbers`` library (region RU, international prefix 810) on
every rule above; ``Normalised.valid`` asks ``phonenumbers`` whether the E.164 number is a real,
allocated one (useful for reports, not for matching: matching compares the E.164 strings).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

MAX_EXTENSION_DIGITS = 5
_E164_MIN, _E164_MAX = 7, 15


@dataclass(frozen=True)
class Normalised:
    e164: str | None          # "+79165552741"; None for extensions and unparseable input
    extension: str | None     # "101" for an internal extension (≤ 5 digits), else None
    raw: str                  # the input as given ("" for None)

    @property
    def valid(self) -> bool:
        """phonenumbers' opinion of the E.164 number (False for extensions and raw only)."""
        if self.e164 is None:
            return False
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(self.e164, None))
        except phonenumbers.NumberParseException:
            return False


def _strip(raw: str) -> tuple[bool, str]:
    plus = False
    digits: list[str] = []
    for ch in raw:
        if ch.isascii() and ch.isdigit():
            digits.append(ch)
        elif ch == "+" and not digits:
            plus = True
    return plus, "".join(digits)


def _e164(digits: str) -> str | None:
    return "+" + digits if _E164_MIN <= len(digits) <= _E164_MAX else None


def normalise(raw: str | None) -> Normalised:
    """Normalise a phone number as a Russian PBX or a person would write it."""
    raw = "" if raw is None else str(raw)
    plus, digits = _strip(raw)
    if not digits:
        return Normalised(None, None, raw)
    n = len(digits)
    if plus:
        return Normalised(_e164(digits), None, raw)
    if n == 11 and digits[0] == "8":
        return Normalised("+7" + digits[1:], None, raw)
    if n == 11 and digits[0] == "7":
        return Normalised("+" + digits, None, raw)
    if n == 10 and digits[0] in "3489":
        return Normalised("+7" + digits, None, raw)
    if digits.startswith("810"):
        return Normalised(_e164(digits[3:]), None, raw)
    if n <= MAX_EXTENSION_DIGITS:
        return Normalised(None, digits, raw)
    return Normalised(None, None, raw)


def is_extension(raw: str | None) -> bool:
    """True when ``raw`` is an internal extension (1 to 5 digits once stripped, no ``+``)."""
    return normalise(raw).extension is not None


def to_e164(raw: str | None) -> str | None:
    """Shortcut: the E.164 form or None."""
    return normalise(raw).e164
