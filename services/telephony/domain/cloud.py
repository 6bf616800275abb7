"""Cloud PBX webhooks (Mango Office VPBX, Zadarma): signatures, parsing, and folding into calls.

Pure code: no sockets, no nameko, no database. The gateway hands the raw form (and, for Zadarma,
the ``Signature`` header and the client IP) to these functions; what comes out are the
``Ringing`` and ``FinishedCall`` objects of :mod:`services.telephony.domain.calls`.

Formats: INTEGRATION-FORMATS.md §2.2 (Mango) and §2.3 (Zadarma).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from services.telephony.domain.calls import FinishedCall, Ringing
from services.telephony.domain.phones import normalise

MANGO = "mango"
ZADARMA = "zadarma"


class CloudError(ValueError):
    """A webhook request that must be refused; ``reason`` says why (for logs, not for clients)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadSignature(CloudError):
    """Missing credentials, wrong key or wrong signature: answer 401/403 and store nothing."""


class BadPayload(CloudError):
    """Correctly signed but unusable content: answer 400 and store nothing."""


# --------------------------------------------------------------------------------------------
# small helpers


def _tz(tz: tzinfo | str) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _eq(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (bytes, so non-ASCII input cannot raise)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# What the telephony tables hold (models.py): ids VARCHAR(200), extensions VARCHAR(16), numbers
# INTEGER. A webhook field beyond these is refused as a bad payload (422) here, so it can never
# reach the database and fail there (a 500 after the signature was accepted).
MAX_TEXT = 200
MAX_EXTENSION = 16
MAX_INT = 2**31 - 1


def _int(value: object, name: str, *, default: int | None = None) -> int | None:
    """An int that may arrive as a JSON number or a string ("12", " 12 ", "12.0"), within the
    range of an INTEGER column."""
    number = _any_int(value, name, default)
    if number is not None and not -MAX_INT <= number <= MAX_INT:
        raise BadPayload(f"{name}: out of range: {value!r}")
    return number


def _any_int(value: object, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise BadPayload(f"{name}: boolean where a number was expected")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise BadPayload(f"{name}: not a number: {value!r}") from None
            if number.is_integer():
                return int(number)
    raise BadPayload(f"{name}: not an integer: {value!r}")


def _str(value: object, name: str, *, required: bool = False) -> str | None:
    """A string that may arrive as a JSON number (phone numbers, extensions, ids)."""
    if value is None or value == "":
        if required:
            raise BadPayload(f"{name}: missing")
        return None
    if isinstance(value, bool):
        raise BadPayload(f"{name}: boolean where a string was expected")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text and required:
            raise BadPayload(f"{name}: missing")
        if len(text) > MAX_TEXT:
            raise BadPayload(f"{name}: longer than {MAX_TEXT} characters")
        if "\x00" in text:
            raise BadPayload(f"{name}: contains a NUL character")
        return text or None
    raise BadPayload(f"{name}: not a string: {value!r}")


def _obj(value: object, name: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadPayload(f"{name}: not an object")
    return value


def _external(raw: str | None) -> tuple[str | None, str | None]:
    """(E.164, raw) of a client-side number: raw is kept only when it could not be normalised."""
    if not raw:
        return None, None
    if "@" in raw or raw.lower().startswith(("sip:", "sips:")):
        return None, raw             # a SIP URI: its digits are not a phone number
    try:
        n = normalise(raw)
    except (TypeError, ValueError):
        return None, raw
    if n.e164:
        return n.e164, None
    return None, raw


def _e164(raw: str | None) -> str | None:
    return _external(raw)[0]


def _extension(raw: str | None) -> str | None:
    """An extension as given (``101``), stripped; None when empty."""
    if not raw:
        return None
    if len(raw.strip()) > MAX_EXTENSION:
        raise BadPayload(f"extension longer than {MAX_EXTENSION} characters: {raw[:40]!r}")
    return raw.strip() or None


def _ts(value: object, name: str, tz: tzinfo) -> datetime | None:
    seconds = _int(value, name)
    if not seconds:
        return None
    if seconds < 0:
        raise BadPayload(f"{name}: before 1970: {value!r}")
    try:
        return datetime.fromtimestamp(seconds, tz)
    except (OverflowError, OSError, ValueError):
        raise BadPayload(f"{name}: not a time: {value!r}") from None


# --------------------------------------------------------------------------------------------
# Mango Office VPBX (§2.2)


def mango_sign(api_key: str, json_text: str, api_salt: str) -> str:
    """``hex(sha256(vpbx_api_key + json + vpbx_api_salt))`` over the raw json string."""
    return hashlib.sha256((api_key + json_text + api_salt).encode("utf-8")).hexdigest()


def verify_mango(form: Mapping[str, str], api_key: str, api_salt: str) -> dict:
    """Check a Mango webhook form (``vpbx_api_key``, ``sign``, ``json``); return the parsed json.

    Raises ``BadSignature`` (nothing configured, a field missing, wrong key, wrong sign) or
    ``BadPayload`` (json unreadable or not an object). Both comparisons are constant time and
    both are always made, so timing does not tell which of the two failed.
    """
    if not api_key or not api_salt:
        raise BadSignature("mango credentials not configured")
    key, sign, text = form.get("vpbx_api_key"), form.get("sign"), form.get("json")
    for name, value in (("vpbx_api_key", key), ("sign", sign), ("json", text)):
        if not isinstance(value, str) or not value:
            raise BadSignature(f"missing {name}")
    key_ok = _eq(key, api_key)
    sign_ok = _eq(sign.strip().lower(), mango_sign(api_key, text, api_salt))
    if not key_ok:
        raise BadSignature("wrong vpbx_api_key")
    if not sign_ok:
        raise BadSignature("wrong sign")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise BadPayload(f"json: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPayload("json: not an object")
    return payload


@dataclass(frozen=True)
class MangoLeg:
    """One ``/events/call`` notification: the state of one leg of a call."""

    entry_id: str
    call_id: str
    seq: int
    call_state: str                 # Appeared | Connected | OnHold | Disconnected
    location: str | None            # ivr | queue | abonent
    from_number: str | None         # as given by Mango
    from_extension: str | None
    to_number: str | None
    to_extension: str | None
    line_number: str | None         # our DID, when Mango gives it
    acd_group: str | None
    at: datetime                    # aware, from ``timestamp``
    disconnect_reason: int | None = None


def mango_call_event(payload: Mapping, tz: tzinfo | str) -> MangoLeg:
    """Parse an ``/events/call`` json object; numeric fields may be numbers or strings."""
    tz = _tz(tz)
    frm, to = _obj(payload.get("from"), "from"), _obj(payload.get("to"), "to")
    at = _ts(payload.get("timestamp"), "timestamp", tz)
    if at is None:
        raise BadPayload("timestamp: missing")
    state = _str(payload.get("call_state"), "call_state", required=True)
    return MangoLeg(
        entry_id=_str(payload.get("entry_id"), "entry_id", required=True),
        call_id=_str(payload.get("call_id"), "call_id", required=True),
        seq=_int(payload.get("seq"), "seq", default=0),
        call_state=state,
        location=_str(payload.get("location"), "location"),
        from_number=_str(frm.get("number"), "from.number"),
        from_extension=_extension(_str(frm.get("extension"), "from.extension")),
        to_number=_str(to.get("number"), "to.number"),
        to_extension=_extension(_str(to.get("extension"), "to.extension")),
        line_number=_str(to.get("line_number"), "to.line_number"),
        acd_group=_str(to.get("acd_group"), "to.acd_group"),
        at=at,
        disconnect_reason=_int(payload.get("disconnect_reason"), "disconnect_reason"),
    )


def mango_leg_key(leg: MangoLeg) -> tuple[str, int]:
    """Dedupe key of an ``/events/call`` notification."""
    return (leg.call_id, leg.seq)


def mango_ringing(leg: MangoLeg) -> Ringing | None:
    """The screen pop for a leg that appears at one of our extensions, else None.

    Inbound (``to.extension`` set): the extension that rings, the caller as the external side.
    Outbound (only ``from.extension`` set, the manager dials out): the manager's extension, the
    dialled number as the external side. Extension to extension: internal, no external number.
    """
    if leg.call_state != "Appeared" or leg.location != "abonent":
        return None
    if leg.to_extension:
        if leg.from_extension:
            direction, external = "internal", None
        else:
            direction, external = "inbound", _e164(leg.from_number)
        extension = leg.to_extension
    elif leg.from_extension:
        direction, external, extension = "outbound", _e164(leg.to_number), leg.from_extension
    else:
        return None
    return Ringing(key=leg.entry_id, pbx=MANGO, extension=extension, external_number=external,
                   direction=direction, at=leg.at)


MANGO_DIRECTIONS = {0: "internal", 1: "inbound", 2: "outbound"}


def mango_summary(payload: Mapping, tz: tzinfo | str) -> FinishedCall:
    """Parse an ``/events/summary`` json object into the finished call (key ``entry_id``).

    ``talk_time`` is the moment talk began (0 when not answered): talk = end - talk_time,
    duration = end - create_time. ``answered_by`` is the extension of our side that talked:
    ``to.extension`` for inbound and internal calls, ``from.extension`` for outbound ones.
    """
    tz = _tz(tz)
    entry_id = _str(payload.get("entry_id"), "entry_id", required=True)
    code = _int(payload.get("call_direction"), "call_direction")
    if code not in MANGO_DIRECTIONS:
        raise BadPayload(f"call_direction: unknown {payload.get('call_direction')!r}")
    direction = MANGO_DIRECTIONS[code]
    frm, to = _obj(payload.get("from"), "from"), _obj(payload.get("to"), "to")
    from_number, to_number = _str(frm.get("number"), "from.number"), _str(to.get("number"),
                                                                          "to.number")
    from_ext = _extension(_str(frm.get("extension"), "from.extension"))
    to_ext = _extension(_str(to.get("extension"), "to.extension"))
    line = _str(payload.get("line_number"), "line_number") or _str(to.get("line_number"),
                                                                   "to.line_number")
    created = _ts(payload.get("create_time"), "create_time", tz)
    ended = _ts(payload.get("end_time"), "end_time", tz)
    if created is None or ended is None:
        raise BadPayload("create_time/end_time: missing")
    if ended < created:
        raise BadPayload("end_time before create_time")
    talk_from = _ts(payload.get("talk_time"), "talk_time", tz)
    result = _int(payload.get("entry_result"), "entry_result", default=0)
    answered = result == 1 or talk_from is not None

    if direction == "inbound":
        external_raw, ours, rang = from_number, to_ext, (to_ext,) if to_ext else ()
    elif direction == "outbound":
        external_raw, ours, rang = to_number, from_ext, ()
    else:
        external_raw, ours, rang = None, to_ext, (to_ext,) if to_ext else ()
    external, raw = _external(external_raw)

    if answered:
        answered_at = talk_from if talk_from is not None else created
        answered_at = min(max(answered_at, created), ended)
        talk = int((ended - answered_at).total_seconds())
        disposition = "answered"
    else:
        answered_at, talk, disposition, ours = None, 0, "no_answer", None
    extra = {k: v for k, v in {
        "acd_group": _str(to.get("acd_group"), "to.acd_group"),
        "disconnect_reason": _int(payload.get("disconnect_reason"), "disconnect_reason"),
        "entry_result": result,
        "from_extension": from_ext,
        "to_extension": to_ext,
        "to_number": to_number if direction != "outbound" else None,
        "forward_time": _ts(payload.get("forward_time"), "forward_time", tz),
    }.items() if v is not None}
    return FinishedCall(
        key=entry_id, pbx=MANGO, direction=direction, our_number=_e164(line),
        external_number=external, external_raw=raw, rang=rang, answered_by=ours,
        started_at=created, answered_at=answered_at, ended_at=ended,
        duration_seconds=int((ended - created).total_seconds()), talk_seconds=talk,
        disposition=disposition, recording=None, extra=extra,
    )


# --------------------------------------------------------------------------------------------
# Zadarma (§2.3)

ZADARMA_EVENTS = ("NOTIFY_START", "NOTIFY_INTERNAL", "NOTIFY_ANSWER", "NOTIFY_END",
                  "NOTIFY_OUT_START", "NOTIFY_OUT_END", "NOTIFY_RECORD")

#: The fields whose concatenation is signed, per event; nothing else in the form is protected.
ZADARMA_SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}

ZADARMA_IPS = ("185.45.152.40/30",)

#: Zadarma ``disposition`` → calls.DISPOSITIONS; anything else (no money, line limit…) is failed.
ZADARMA_DISPOSITIONS = {
    "answered": "answered",
    "busy": "busy",
    "cancel": "cancelled",
    "cancelled": "cancelled",
    "no answer": "no_answer",
    "noanswer": "no_answer",
    "no_answer": "no_answer",
    "failed": "failed",
}


def zadarma_signed_string(event: str, form: Mapping[str, str]) -> str:
    """The string S that Zadarma signs for ``event`` (a field absent from the form counts as "")."""
    fields = ZADARMA_SIGNED.get(event)
    if fields is None:
        raise BadPayload(f"unknown zadarma event {event!r}")
    return "".join(str(form.get(name) or "") for name in fields)


def zadarma_sign(event: str, form: Mapping[str, str], secret: str) -> str:
    """``base64(hex(HMAC-SHA1(secret, S)))``, the value of the ``Signature`` header."""
    digest = hmac.new(secret.encode("utf-8"), zadarma_signed_string(event, form).encode("utf-8"),
                      hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def verify_zadarma(event_form: Mapping[str, str], signature_header: str | None,
                   secret: str) -> str:
    """Check the ``Signature`` header of a Zadarma webhook; return the event name.

    Raises ``BadSignature`` (nothing configured, no header, wrong signature) or ``BadPayload``
    (no or unknown ``event``). Only the fields of ``ZADARMA_SIGNED`` are protected.
    """
    if not secret:
        raise BadSignature("zadarma secret not configured")
    if not signature_header or not signature_header.strip():
        raise BadSignature("missing Signature header")
    event = event_form.get("event")
    if not isinstance(event, str) or event not in ZADARMA_SIGNED:
        raise BadPayload(f"unknown zadarma event {event!r}")
    if not _eq(signature_header.strip(), zadarma_sign(event, event_form, secret)):
        raise BadSignature("wrong signature")
    return event


def zadarma_echo(query: Mapping[str, str]) -> str | None:
    """The value to answer a ``GET ?zd_echo=X`` URL check with (text/plain), else None.

    Only short printable values are echoed, so the endpoint cannot be used to reflect markup.
    """
    value = query.get("zd_echo")
    if not isinstance(value, str) or not value or len(value) > 256:
        return None
    if not value.isprintable() or any(c in value for c in "<>\"'&"):
        return None
    return value


def ip_allowed(ip: str | None, allow: Iterable[str] = ZADARMA_IPS) -> bool:
    """Whether ``ip`` (v4, v6 or v4-mapped v6) lies in one of the ``allow`` networks."""
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for network in allow:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


@dataclass(frozen=True)
class ZadarmaEvent:
    event: str
    pbx_call_id: str
    caller_id: str | None = None
    called_did: str | None = None
    destination: str | None = None
    internal: str | None = None
    call_start: datetime | None = None      # aware (``call_start`` is PBX-local time)
    duration: int | None = None
    disposition: str | None = None          # as Zadarma gives it (``no answer``, ``cancel``…)
    status_code: int | None = None
    is_recorded: bool | None = None
    call_id_with_rec: str | None = None

    @property
    def direction(self) -> str:
        if self.pbx_call_id.startswith("out_") or self.event.startswith("NOTIFY_OUT_"):
            return "outbound"
        return "inbound"


def zadarma_event_key(ev: ZadarmaEvent) -> tuple[str, str, str]:
    """Dedupe key: ``(pbx_call_id, event)``; plus the extension for INTERNAL/ANSWER, since a
    ring group sends one NOTIFY_INTERNAL per extension it rings."""
    extra = (ev.internal or "") if ev.event in ("NOTIFY_INTERNAL", "NOTIFY_ANSWER") else ""
    return (ev.pbx_call_id, ev.event, extra)


def _bool(value: object, name: str) -> bool | None:
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise BadPayload(f"{name}: not a flag: {value!r}")


def zadarma_event(form: Mapping[str, str], tz: tzinfo | str) -> ZadarmaEvent:
    """Parse a Zadarma webhook form; ``call_start`` (local ``YYYY-MM-DD HH:MM:SS``) gets ``tz``."""
    tz = _tz(tz)
    event = _str(form.get("event"), "event", required=True)
    if event not in ZADARMA_SIGNED:
        raise BadPayload(f"unknown zadarma event {event!r}")
    start_text = _str(form.get("call_start"), "call_start")
    call_start = None
    if start_text:
        try:
            call_start = datetime.strptime(start_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
        except ValueError:
            raise BadPayload(f"call_start: not YYYY-MM-DD HH:MM:SS: {start_text!r}") from None
    elif event != "NOTIFY_RECORD":
        raise BadPayload("call_start: missing")
    duration = _int(form.get("duration"), "duration")
    if duration is not None and duration < 0:
        raise BadPayload("duration: negative")
    if call_start is not None and duration:
        try:
            call_start + timedelta(seconds=duration)
        except OverflowError:
            raise BadPayload("call_start + duration: past the end of the calendar") from None
    for key, value in form.items():     # the whole form is kept as JSONB, which refuses U+0000
        if "\x00" in str(key) or "\x00" in str(value or ""):
            raise BadPayload(f"{str(key)[:40]}: contains a NUL character")
    disposition = _str(form.get("disposition"), "disposition")
    return ZadarmaEvent(
        event=event,
        pbx_call_id=_str(form.get("pbx_call_id"), "pbx_call_id", required=True),
        caller_id=_str(form.get("caller_id"), "caller_id"),
        called_did=_str(form.get("called_did"), "called_did"),
        destination=_str(form.get("destination"), "destination"),
        internal=_extension(_str(form.get("internal"), "internal")),
        call_start=call_start,
        duration=duration,
        disposition=disposition.lower() if disposition else None,
        status_code=_int(form.get("status_code"), "status_code"),
        is_recorded=_bool(form.get("is_recorded"), "is_recorded"),
        call_id_with_rec=_str(form.get("call_id_with_rec"), "call_id_with_rec"),
    )


@dataclass
class _ZadarmaCall:
    pbx_call_id: str
    rang: list[str] = field(default_factory=list)
    answered_by: str | None = None
    recording: str | None = None
    start: ZadarmaEvent | None = None
    finished: FinishedCall | None = None


class ZadarmaCallBuilder:
    """Folds the webhook events of each ``pbx_call_id`` into ``Ringing`` and ``FinishedCall``.

    ``feed`` returns what the event produces: a ``Ringing`` on NOTIFY_INTERNAL (inbound) or on
    NOTIFY_OUT_START with an ``internal`` (outbound), one ``FinishedCall`` on NOTIFY_END /
    NOTIFY_OUT_END. A NOTIFY_RECORD before the end is kept for the finished call; one after it
    returns the finished call again with the recording only if it had none (consumers upsert on
    ``key``). A re-delivered event (same ``zadarma_event_key``) returns nothing. The last
    ``max_calls`` calls are remembered, finished ones included, to absorb late duplicates.
    """

    def __init__(self, max_calls: int = 10_000):
        self.max_calls = max_calls
        self._calls: OrderedDict[str, _ZadarmaCall] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def _call(self, pbx_call_id: str) -> _ZadarmaCall:
        call = self._calls.get(pbx_call_id)
        if call is None:
            call = self._calls[pbx_call_id] = _ZadarmaCall(pbx_call_id)
            while len(self._calls) > self.max_calls:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(pbx_call_id)
        return call

    def finished(self, pbx_call_id: str) -> FinishedCall | None:
        call = self._calls.get(pbx_call_id)
        return call.finished if call else None

    def feed(self, ev: ZadarmaEvent) -> list[Ringing | FinishedCall]:
        key = zadarma_event_key(ev)
        if key in self._seen:
            return []
        self._seen[key] = None
        while len(self._seen) > self.max_calls * 8:
            self._seen.popitem(last=False)
        call = self._call(ev.pbx_call_id)
        name = ev.event

        if name == "NOTIFY_RECORD":
            if not ev.call_id_with_rec:
                return []
            if call.finished is None:
                call.recording = ev.call_id_with_rec
                return []
            if call.finished.recording:
                return []
            call.recording = ev.call_id_with_rec
            call.finished = replace(call.finished, recording=ev.call_id_with_rec)
            return [call.finished]

        if call.finished is not None:        # a straggler after the end changes nothing
            return []
        if name in ("NOTIFY_START", "NOTIFY_OUT_START") and call.start is None:
            call.start = ev
        if ev.internal and name in ("NOTIFY_INTERNAL", "NOTIFY_OUT_START", "NOTIFY_ANSWER") \
                and ev.internal not in call.rang and ev.direction == "inbound":
            call.rang.append(ev.internal)
        if name == "NOTIFY_ANSWER" and ev.internal:
            call.answered_by = ev.internal

        if name == "NOTIFY_INTERNAL" and ev.internal:
            return [Ringing(key=ev.pbx_call_id, pbx=ZADARMA, extension=ev.internal,
                            external_number=_e164(ev.caller_id), direction="inbound",
                            at=ev.call_start)]
        if name == "NOTIFY_OUT_START" and ev.internal:
            return [Ringing(key=ev.pbx_call_id, pbx=ZADARMA, extension=ev.internal,
                            external_number=_e164(ev.destination), direction="outbound",
                            at=ev.call_start)]
        if name in ("NOTIFY_END", "NOTIFY_OUT_END"):
            call.finished = self._finish(call, ev)
            return [call.finished]
        return []

    @staticmethod
    def _finish(call: _ZadarmaCall, ev: ZadarmaEvent) -> FinishedCall:
        direction = ev.direction
        disposition = ZADARMA_DISPOSITIONS.get(ev.disposition or "", "failed")
        if ev.disposition is None:
            disposition = "answered" if call.answered_by else "no_answer"
        start = ev.call_start or (call.start.call_start if call.start else None)
        duration = ev.duration or 0
        ended = start + timedelta(seconds=duration)
        if direction == "outbound":
            our_raw, external_raw = ev.caller_id, ev.destination
            answered_by = (ev.internal or (call.start.internal if call.start else None)
                           or call.answered_by)
        else:
            our_raw, external_raw = ev.called_did, ev.caller_id
            answered_by = call.answered_by or ev.internal
            if ev.internal and ev.internal not in call.rang:
                call.rang.append(ev.internal)
        if disposition != "answered":
            answered_by = None
        talk = duration if disposition == "answered" else 0
        external, raw = _external(external_raw)
        recording = call.recording
        if ev.is_recorded and ev.call_id_with_rec:
            recording = ev.call_id_with_rec
        extra = {k: v for k, v in {
            "disposition": ev.disposition,
            "status_code": ev.status_code,
            "is_recorded": ev.is_recorded,
        }.items() if v is not None}
        return FinishedCall(
            key=call.pbx_call_id, pbx=ZADARMA, direction=direction, our_number=_e164(our_raw),
            external_number=external, external_raw=raw, rang=tuple(call.rang),
            answered_by=answered_by, started_at=start,
            answered_at=ended - timedelta(seconds=talk) if disposition == "answered" else None,
            ended_at=ended, duration_seconds=duration, talk_seconds=talk,
            disposition=disposition, recording=recording, extra=extra,
        )
