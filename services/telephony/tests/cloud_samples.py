"""Cloud PBX webhook requests signed the way Mango Office and Zadarma sign them.

Reused by the unit tests, the webhook simulator and the integration tests. The signing here is
written independently of ``services.telephony.domain.cloud`` on purpose, so that a mistake
there cannot agree with itself.

Three calls in each PBX (numbers as Russian subscribers give them):

* answered inbound: +7 916 555-27-41 (unknown) → our DID +7 495 123-45-67, ext 101 answers, 95 s
  of talk, recorded;
* missed inbound to a queue: +7 903 111-22-33 (a known contact) → the ``sales`` queue, ext 101 and
  102 ring, nobody answers;
* outbound: ext 102 dials 8 (495) 111-22-33 from our DID, 42 s of talk, recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")
OUR_DID = "74951234567"
UNKNOWN_CALLER = "79165552741"
KNOWN_CONTACT = "79031112233"
OUTBOUND_TO = "84951112233"
T0 = int(datetime(2024, 3, 14, 10, 15, 2, tzinfo=MOSCOW).timestamp())

# --------------------------------------------------------------------------------------------
# Mango Office


def mango_form(payload: dict, key: str, salt: str, *, text: str | None = None) -> dict[str, str]:
    """The form Mango POSTs: ``vpbx_api_key``, ``sign = sha256(key + json + salt)``, ``json``.

    ``text`` overrides the serialised json (to send exactly the bytes a test wants signed).
    """
    if text is None:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    sign = hashlib.sha256(f"{key}{text}{salt}".encode()).hexdigest()
    return {"vpbx_api_key": key, "sign": sign, "json": text}


class MangoSample(NamedTuple):
    entry_id: str
    legs: list[dict]        # /events/call bodies, in the order Mango sends them
    summary: dict           # the /events/summary body


def _leg(entry_id, call_id, seq, ts, state, location, frm, to, reason=None, *, strings=False):
    body = {"entry_id": entry_id, "call_id": call_id, "timestamp": ts, "seq": seq,
            "call_state": state, "location": location, "from": frm, "to": to}
    if reason is not None:
        body["disconnect_reason"] = reason
    if strings:
        for name in ("timestamp", "seq", "disconnect_reason"):
            if name in body:
                body[name] = str(body[name])
    return body


def mango_answered_inbound(t0: int = T0) -> MangoSample:
    entry = "MTAxNjQ4MjY5MzY6MTA0"
    caller = {"number": UNKNOWN_CALLER, "taken_from_call_id": None}
    ivr = {"number": OUR_DID, "line_number": OUR_DID}
    ext = {"number": "sip:user101@vpbx400123456.mangosip.ru", "extension": "101",
           "line_number": OUR_DID}
    legs = [
        _leg(entry, "MToxMDE2NDgyNjkzNjoxMDQ6MQ==", 1, t0, "Appeared", "ivr", caller, ivr),
        _leg(entry, "MToxMDE2NDgyNjkzNjoxMDQ6MQ==", 2, t0 + 5, "Disconnected", "ivr", caller,
             ivr, 1100),
        _leg(entry, "MToxMDE2NDgyNjkzNjoxMDQ6Mg==", 1, t0 + 5, "Appeared", "abonent", caller,
             ext),
        _leg(entry, "MToxMDE2NDgyNjkzNjoxMDQ6Mg==", 2, t0 + 12, "Connected", "abonent", caller,
             ext),
        _leg(entry, "MToxMDE2NDgyNjkzNjoxMDQ6Mg==", 3, t0 + 107, "Disconnected", "abonent",
             caller, ext, 1110),
    ]
    summary = {"entry_id": entry, "call_direction": 1, "from": caller, "to": ext,
               "line_number": OUR_DID, "create_time": t0, "forward_time": t0 + 5,
               "talk_time": t0 + 12, "end_time": t0 + 107, "entry_result": 1,
               "disconnect_reason": 1110}
    return MangoSample(entry, legs, summary)


def mango_missed_queue(t0: int = T0 + 3600) -> MangoSample:
    """Every numeric field as a JSON string, as some Mango accounts send them."""
    entry = "MTAxNjQ4Mjc3NzE6MTA0"
    caller = {"number": KNOWN_CONTACT}
    queue = {"number": OUR_DID, "line_number": OUR_DID, "acd_group": "sales"}
    legs = [_leg(entry, "MjoxMDE2NDgyNzc3MToxMDQ6MQ==", 1, t0, "Appeared", "ivr", caller,
                 queue, strings=True),
            _leg(entry, "MjoxMDE2NDgyNzc3MToxMDQ6MQ==", 2, t0 + 3, "Appeared", "queue", caller,
                 queue, strings=True)]
    for n, ext in enumerate(("101", "102"), start=2):
        to = {"number": f"sip:user{ext}@vpbx400123456.mangosip.ru", "extension": ext,
              "line_number": OUR_DID, "acd_group": "sales"}
        call_id = f"MjoxMDE2NDgyNzc3MToxMDQ6{n}"
        legs.append(_leg(entry, call_id, 1, t0 + 4, "Appeared", "abonent", caller, to,
                         strings=True))
        legs.append(_leg(entry, call_id, 2, t0 + 34, "Disconnected", "abonent", caller, to,
                         1120, strings=True))
    legs.append(_leg(entry, "MjoxMDE2NDgyNzc3MToxMDQ6MQ==", 3, t0 + 35, "Disconnected", "queue",
                     caller, queue, 1110, strings=True))
    summary = {"entry_id": entry, "call_direction": "1", "from": caller,
               "to": {"number": OUR_DID, "extension": "", "acd_group": "sales"},
               "line_number": OUR_DID, "create_time": str(t0), "forward_time": str(t0 + 3),
               "talk_time": "0", "end_time": str(t0 + 35), "entry_result": "0",
               "disconnect_reason": "1110"}
    return MangoSample(entry, legs, summary)


def mango_outbound(t0: int = T0 + 7200) -> MangoSample:
    entry = "MTAxNjQ4Mjg0NTU6MTA0"
    me = {"number": "sip:user102@vpbx400123456.mangosip.ru", "extension": "102"}
    them = {"number": OUTBOUND_TO, "line_number": OUR_DID}
    call_id = "MzoxMDE2NDgyODQ1NToxMDQ6MQ=="
    legs = [
        _leg(entry, call_id, 1, t0, "Appeared", "abonent", me, them),
        _leg(entry, call_id, 2, t0 + 8, "Connected", "abonent", me, them),
        _leg(entry, call_id, 3, t0 + 50, "Disconnected", "abonent", me, them, 1100),
    ]
    summary = {"entry_id": entry, "call_direction": 2, "from": me, "to": them,
               "line_number": OUR_DID, "create_time": t0, "forward_time": 0,
               "talk_time": t0 + 8, "end_time": t0 + 50, "entry_result": 1,
               "disconnect_reason": 1100}
    return MangoSample(entry, legs, summary)


# --------------------------------------------------------------------------------------------
# Zadarma

_ZADARMA_SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}
ZADARMA_IP = "185.45.152.42"


def zadarma_request(event: str, fields: dict, secret: str,
                    *, order: tuple[str, ...] | None = None) -> tuple[dict[str, str], dict]:
    """The form and headers Zadarma sends: ``Signature: base64(hex(HMAC-SHA1(secret, S)))``.

    ``order`` signs other fields (or the right ones in another order), to forge a request.
    """
    form = {"event": event, **{k: "" if v is None else str(v) for k, v in fields.items()}}
    signed = "".join(form.get(name, "") for name in (order or _ZADARMA_SIGNED[event]))
    digest = hmac.new(secret.encode(), signed.encode(), hashlib.sha1).hexdigest()
    headers = {"Signature": base64.b64encode(digest.encode()).decode(),
               "Content-Type": "application/x-www-form-urlencoded"}
    return form, headers


def _local(t: int) -> str:
    return datetime.fromtimestamp(t, MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


Events = list[tuple[str, dict]]


def zadarma_answered_inbound(t0: int = T0) -> Events:
    base = {"pbx_call_id": "in_9f2c0b3a1e7d4c5b8a6f", "caller_id": UNKNOWN_CALLER,
            "called_did": OUR_DID, "call_start": _local(t0)}
    return [
        ("NOTIFY_START", dict(base)),
        ("NOTIFY_INTERNAL", {**base, "internal": "101"}),
        ("NOTIFY_ANSWER", {"pbx_call_id": base["pbx_call_id"], "caller_id": UNKNOWN_CALLER,
                           "destination": "101", "call_start": base["call_start"],
                           "internal": "101"}),
        ("NOTIFY_END", {**base, "internal": "101", "duration": 95, "disposition": "answered",
                        "status_code": 16, "is_recorded": 1,
                        "call_id_with_rec": "1710400502.3514621"}),
        ("NOTIFY_RECORD", {"pbx_call_id": base["pbx_call_id"],
                           "call_id_with_rec": "1710400502.3514621"}),
    ]


def zadarma_missed_queue(t0: int = T0 + 3600) -> Events:
    base = {"pbx_call_id": "in_4d1e8a7c2b9f0e3d5c6a", "caller_id": KNOWN_CONTACT,
            "called_did": OUR_DID, "call_start": _local(t0)}
    return [
        ("NOTIFY_START", dict(base)),
        ("NOTIFY_INTERNAL", {**base, "internal": "101"}),
        ("NOTIFY_INTERNAL", {**base, "internal": "102"}),
        ("NOTIFY_END", {**base, "duration": 35, "disposition": "no answer",
                        "status_code": 19, "is_recorded": 0, "call_id_with_rec": ""}),
    ]


def zadarma_outbound(t0: int = T0 + 7200) -> Events:
    base = {"pbx_call_id": "out_7b3e9d1c5a2f8e4b0c6d", "internal": "102",
            "destination": OUTBOUND_TO, "call_start": _local(t0)}
    return [
        ("NOTIFY_OUT_START", dict(base)),
        ("NOTIFY_OUT_END", {**base, "caller_id": OUR_DID, "duration": 42,
                            "disposition": "answered", "status_code": 16, "is_recorded": 1,
                            "call_id_with_rec": "1710407702.3514977"}),
        ("NOTIFY_RECORD", {"pbx_call_id": base["pbx_call_id"],
                           "call_id_with_rec": "1710407702.3514977"}),
    ]


def zadarma_requests(events: Events, secret: str) -> list[tuple[dict[str, str], dict]]:
    return [zadarma_request(name, fields, secret) for name, fields in events]


__all__ = [
    "KNOWN_CONTACT", "MOSCOW", "OUR_DID", "OUTBOUND_TO", "T0", "UNKNOWN_CALLER", "ZADARMA_IP",
    "MangoSample", "mango_answered_inbound", "mango_form", "mango_missed_queue",
    "mango_outbound", "zadarma_answered_inbound", "zadarma_missed_queue", "zadarma_outbound",
    "zadarma_request", "zadarma_requests",
]
