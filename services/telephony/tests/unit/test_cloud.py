"""Mango Office and Zadarma webhooks: signatures, parsing, and the calls they fold into."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from services.telephony.domain import cloud
from services.telephony.domain.calls import DISPOSITIONS, FinishedCall, Ringing
from services.telephony.domain.cloud import BadPayload, BadSignature
from services.telephony.tests import cloud_samples as s

KEY, SALT, SECRET = "vpbx-key-1f9a", "salt-7c2e", "zd-secret-93b1"
TZ = s.MOSCOW


def mango_verified(payload: dict) -> dict:
    return cloud.verify_mango(s.mango_form(payload, KEY, SALT), KEY, SALT)


def zadarma_feed(builder, events, secret=SECRET):
    out = []
    for form, headers in s.zadarma_requests(events, secret):
        cloud.verify_zadarma(form, headers["Signature"], secret)
        out.extend(builder.feed(cloud.zadarma_event(form, TZ)))
    return out


def finished(out) -> list[FinishedCall]:
    return [x for x in out if isinstance(x, FinishedCall)]


# --------------------------------------------------------------------------------------------
# Mango signatures


def test_mango_signature_accepted_returns_parsed_json():
    payload = s.mango_answered_inbound().summary
    assert mango_verified(payload) == payload


def test_mango_sign_is_over_the_raw_json_string():
    text = '{ "entry_id": "E1",\n  "call_direction": 1 }'       # not how json.dumps writes it
    form = s.mango_form({}, KEY, SALT, text=text)
    assert cloud.verify_mango(form, KEY, SALT) == {"entry_id": "E1", "call_direction": 1}
    assert form["sign"] == cloud.mango_sign(KEY, text, SALT)


def test_mango_one_byte_changed_in_json_is_refused():
    form = s.mango_form(s.mango_answered_inbound().summary, KEY, SALT)
    forged = dict(form, json=form["json"].replace('"talk_time":', '"talk_time": ', 1))
    assert forged["json"] != form["json"]
    with pytest.raises(BadSignature, match="sign"):
        cloud.verify_mango(forged, KEY, SALT)
    forged = dict(form, json=form["json"].replace("79165552741", "79165552742"))
    with pytest.raises(BadSignature):
        cloud.verify_mango(forged, KEY, SALT)


@pytest.mark.parametrize("key, salt, reason", [
    ("other-key", SALT, "vpbx_api_key"),         # signed correctly with someone else's key
    (KEY, "other-salt", "sign"),
])
def test_mango_wrong_key_or_salt_is_refused(key, salt, reason):
    form = s.mango_form(s.mango_outbound().summary, key, salt)
    with pytest.raises(BadSignature, match=reason):
        cloud.verify_mango(form, KEY, SALT)


@pytest.mark.parametrize("missing", ["vpbx_api_key", "sign", "json"])
def test_mango_missing_field_is_refused(missing):
    form = s.mango_form(s.mango_outbound().summary, KEY, SALT)
    del form[missing]
    with pytest.raises(BadSignature, match=missing):
        cloud.verify_mango(form, KEY, SALT)
    with pytest.raises(BadSignature):
        cloud.verify_mango(dict(form, **{missing: ""}), KEY, SALT)


def test_mango_unconfigured_credentials_refuse_everything():
    form = s.mango_form({"entry_id": "E"}, "", "")
    with pytest.raises(BadSignature, match="configured"):
        cloud.verify_mango(form, "", "")


def test_mango_non_ascii_sign_is_refused_not_crashing():
    form = dict(s.mango_form({"entry_id": "E"}, KEY, SALT), sign="ж" * 64)
    with pytest.raises(BadSignature):
        cloud.verify_mango(form, KEY, SALT)


@pytest.mark.parametrize("text", ["[1, 2]", "\"x\"", "not json", "null"])
def test_mango_signed_but_not_an_object_is_bad_payload(text):
    with pytest.raises(BadPayload):
        cloud.verify_mango(s.mango_form({}, KEY, SALT, text=text), KEY, SALT)


@pytest.mark.parametrize("patch", [
    {"entry_id": None}, {"call_direction": 7}, {"create_time": "yesterday"},
    {"from": "79165552741"}, {"entry_result": True},
])
def test_mango_summary_wrong_types_are_bad_payload(patch):
    payload = {**s.mango_answered_inbound().summary, **patch}
    with pytest.raises(BadPayload):
        cloud.mango_summary(mango_verified(payload), TZ)


# --------------------------------------------------------------------------------------------
# Mango legs and summaries


def test_mango_leg_numbers_as_strings_or_numbers_parse_alike():
    leg = s.mango_answered_inbound().legs[4]
    as_strings = {**leg, "seq": "3", "timestamp": str(leg["timestamp"]),
                  "disconnect_reason": "1110"}
    a, b = cloud.mango_call_event(leg, TZ), cloud.mango_call_event(as_strings, TZ)
    assert a == b
    assert a.seq == 3 and a.disconnect_reason == 1110 and a.to_extension == "101"
    assert a.at == datetime.fromtimestamp(s.T0 + 107, TZ) and a.at.tzinfo is not None
    assert cloud.mango_leg_key(a) == ("MToxMDE2NDgyNjkzNjoxMDQ6Mg==", 3)


def test_mango_leg_keys_dedupe_redeliveries():
    legs = s.mango_missed_queue().legs
    parsed = [cloud.mango_call_event(mango_verified(x), TZ) for x in legs + legs[:3]]
    assert len({cloud.mango_leg_key(x) for x in parsed}) == len(legs)


def test_mango_ringing_only_at_an_abonent_extension():
    sample = s.mango_answered_inbound()
    rings = [cloud.mango_ringing(cloud.mango_call_event(x, TZ)) for x in sample.legs]
    assert [r is not None for r in rings] == [False, False, True, False, False]
    assert rings[2] == Ringing(key=sample.entry_id, pbx="mango", extension="101",
                               external_number="+79165552741", direction="inbound",
                               at=datetime.fromtimestamp(s.T0 + 5, TZ))


def test_mango_queue_rings_every_extension():
    rings = [cloud.mango_ringing(cloud.mango_call_event(x, TZ)) for x in
             s.mango_missed_queue().legs]
    assert sorted(r.extension for r in rings if r) == ["101", "102"]
    assert {r.external_number for r in rings if r} == {"+79031112233"}


def test_mango_outbound_rings_the_dialling_extension():
    rings = [cloud.mango_ringing(cloud.mango_call_event(x, TZ)) for x in s.mango_outbound().legs]
    ring = rings[0]
    assert ring.direction == "outbound" and ring.extension == "102"
    assert ring.external_number == "+74951112233"
    assert rings[1:] == [None, None]


def test_mango_answered_inbound_summary():
    call = cloud.mango_summary(mango_verified(s.mango_answered_inbound().summary), TZ)
    assert (call.key, call.pbx, call.direction) == ("MTAxNjQ4MjY5MzY6MTA0", "mango", "inbound")
    assert call.our_number == "+74951234567"
    assert call.external_number == "+79165552741" and call.external_raw is None
    assert call.rang == ("101",) and call.answered_by == "101" and call.answered
    assert call.started_at == datetime.fromtimestamp(s.T0, TZ)
    assert call.answered_at == call.started_at + timedelta(seconds=12)
    assert call.ended_at == call.started_at + timedelta(seconds=107)
    assert (call.duration_seconds, call.talk_seconds) == (107, 95)
    assert call.disposition == "answered" and call.recording is None


def test_mango_missed_queue_summary_with_string_numbers():
    call = cloud.mango_summary(mango_verified(s.mango_missed_queue().summary), TZ)
    assert call.direction == "inbound" and call.external_number == "+79031112233"
    assert call.our_number == "+74951234567"
    assert call.answered_by is None and not call.answered and call.answered_at is None
    assert (call.disposition, call.talk_seconds, call.duration_seconds) == ("no_answer", 0, 35)
    assert call.extra["acd_group"] == "sales"


def test_mango_outbound_summary():
    call = cloud.mango_summary(mango_verified(s.mango_outbound().summary), TZ)
    assert call.direction == "outbound" and call.answered_by == "102"
    assert call.external_number == "+74951112233" and call.our_number == "+74951234567"
    assert (call.talk_seconds, call.duration_seconds, call.disposition) == (42, 50, "answered")


def test_mango_summary_numbers_as_numbers_and_strings_agree():
    summary = s.mango_answered_inbound().summary
    stringy = {k: str(v) if isinstance(v, int) else v for k, v in summary.items()}
    numeric = {**summary, "from": {"number": int(s.UNKNOWN_CALLER)},
               "line_number": int(s.OUR_DID)}
    a, b, c = (cloud.mango_summary(x, TZ) for x in (summary, stringy, numeric))
    assert a == b
    assert (c.external_number, c.our_number) == (a.external_number, a.our_number)


@pytest.mark.parametrize("raw", ["anonymous", "sip:client@example.org", "12345678", ""])
def test_mango_summary_unknown_numbers_are_kept_raw(raw):
    summary = {**s.mango_answered_inbound().summary, "from": {"number": raw}}
    call = cloud.mango_summary(summary, TZ)
    assert call.external_number is None
    assert call.external_raw == (raw or None)


def test_mango_summary_entry_result_alone_means_answered():
    summary = {**s.mango_answered_inbound().summary, "talk_time": 0, "entry_result": "1"}
    call = cloud.mango_summary(summary, TZ)
    assert call.disposition == "answered" and call.answered_by == "101"


# --------------------------------------------------------------------------------------------
# Zadarma signatures, echo and IPs


@pytest.mark.parametrize("event, fields, expected", [
    ("NOTIFY_START", {"caller_id": "7916", "called_did": "7495", "call_start": "T"},
     "79167495T"),
    ("NOTIFY_INTERNAL", {"caller_id": "a", "called_did": "b", "call_start": "c",
                         "internal": "101"}, "abc"),
    ("NOTIFY_ANSWER", {"caller_id": "a", "destination": "d", "call_start": "c",
                       "called_did": "x"}, "adc"),
    ("NOTIFY_END", {"caller_id": "a", "called_did": "b", "call_start": "c", "duration": "9"},
     "abc"),
    ("NOTIFY_OUT_START", {"internal": "102", "destination": "d", "call_start": "c"},
     "102dc"),
    ("NOTIFY_OUT_END", {"internal": "102", "destination": "d", "call_start": "c",
                        "caller_id": "x"}, "102dc"),
    ("NOTIFY_RECORD", {"pbx_call_id": "in_1", "call_id_with_rec": "r.1"}, "in_1r.1"),
])
def test_zadarma_signed_string_per_event(event, fields, expected):
    assert cloud.zadarma_signed_string(event, fields) == expected


def test_zadarma_signed_string_unknown_event():
    with pytest.raises(BadPayload):
        cloud.zadarma_signed_string("NOTIFY_SOMETHING", {})


@pytest.mark.parametrize("events", [s.zadarma_answered_inbound(), s.zadarma_missed_queue(),
                                    s.zadarma_outbound()])
def test_zadarma_signatures_accepted(events):
    for form, headers in s.zadarma_requests(events, SECRET):
        assert cloud.verify_zadarma(form, headers["Signature"], SECRET) == form["event"]


def test_zadarma_forgeries_refused():
    event, fields = s.zadarma_answered_inbound()[3]
    form, headers = s.zadarma_request(event, fields, SECRET)
    sig = headers["Signature"]
    cases = [
        (form, None), (form, ""),
        (form, s.zadarma_request(event, fields, "other-secret")[1]["Signature"]),
        (dict(form, caller_id="79990000000"), sig),                  # a signed field changed
        (form, s.zadarma_request(event, fields, SECRET,
                                 order=("called_did", "caller_id", "call_start"))[1]["Signature"]),
        (form, s.zadarma_request(event, fields, SECRET,
                                 order=("caller_id", "destination", "call_start"))[1]["Signature"]),
        (form, sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]),
    ]
    for bad_form, bad_sig in cases:
        with pytest.raises(BadSignature):
            cloud.verify_zadarma(bad_form, bad_sig, SECRET)
    with pytest.raises(BadSignature, match="configured"):
        cloud.verify_zadarma(form, sig, "")


def test_zadarma_unsigned_fields_are_not_protected():
    """Documented weakness: duration/disposition are outside S, hence the IP allow-list."""
    event, fields = s.zadarma_answered_inbound()[3]
    form, headers = s.zadarma_request(event, fields, SECRET)
    cloud.verify_zadarma(dict(form, duration="9999"), headers["Signature"], SECRET)


def test_zadarma_event_must_be_known():
    form, headers = s.zadarma_request("NOTIFY_START", s.zadarma_missed_queue()[0][1], SECRET)
    with pytest.raises(BadPayload):
        cloud.verify_zadarma(dict(form, event="NOTIFY_BOGUS"), headers["Signature"], SECRET)


def test_zd_echo():
    assert cloud.zadarma_echo({"zd_echo": "a1B2c3"}) == "a1B2c3"
    assert cloud.zadarma_echo({}) is None
    assert cloud.zadarma_echo({"zd_echo": ""}) is None
    assert cloud.zadarma_echo({"zd_echo": "<script>"}) is None
    assert cloud.zadarma_echo({"zd_echo": "x" * 1000}) is None


@pytest.mark.parametrize("ip, allowed", [
    ("185.45.152.40", True), ("185.45.152.41", True), ("185.45.152.43", True),
    ("185.45.152.44", False), ("185.45.152.39", False), ("10.0.0.1", False),
    ("::ffff:185.45.152.42", True), ("2001:db8::1", False), ("", False), (None, False),
    ("not-an-ip", False),
])
def test_ip_allow_list(ip, allowed):
    assert cloud.ip_allowed(ip) is allowed


def test_ip_allow_list_is_configurable():
    assert cloud.ip_allowed("10.1.2.3", allow=("10.0.0.0/8",))
    assert not cloud.ip_allowed("185.45.152.40", allow=())


# --------------------------------------------------------------------------------------------
# Zadarma events and the builder


def test_zadarma_event_parsing():
    form, _ = s.zadarma_request(*s.zadarma_answered_inbound()[3], SECRET)
    ev = cloud.zadarma_event(form, TZ)
    assert ev.event == "NOTIFY_END" and ev.pbx_call_id.startswith("in_")
    assert ev.call_start == datetime.fromtimestamp(s.T0, TZ) and ev.call_start.tzinfo
    assert (ev.duration, ev.status_code, ev.is_recorded) == (95, 16, True)
    assert ev.disposition == "answered" and ev.call_id_with_rec == "1710400502.3514621"
    assert ev.direction == "inbound"


@pytest.mark.parametrize("patch", [{"call_start": "14.03.2024 10:15"}, {"duration": "long"},
                                   {"pbx_call_id": ""}, {"is_recorded": "maybe"}])
def test_zadarma_bad_fields_are_bad_payload(patch):
    form, _ = s.zadarma_request(*s.zadarma_answered_inbound()[3], SECRET)
    with pytest.raises(BadPayload):
        cloud.zadarma_event({**form, **patch}, TZ)


def test_zadarma_answered_inbound():
    out = zadarma_feed(cloud.ZadarmaCallBuilder(), s.zadarma_answered_inbound())
    rings = [x for x in out if isinstance(x, Ringing)]
    assert [(r.extension, r.external_number, r.direction) for r in rings] == \
        [("101", "+79165552741", "inbound")]
    [call] = finished(out)
    assert (call.key, call.pbx, call.direction) == ("in_9f2c0b3a1e7d4c5b8a6f", "zadarma",
                                                    "inbound")
    assert call.our_number == "+74951234567" and call.external_number == "+79165552741"
    assert call.rang == ("101",) and call.answered_by == "101" and call.answered
    assert call.started_at == datetime.fromtimestamp(s.T0, TZ)
    assert (call.talk_seconds, call.duration_seconds) == (95, 95)
    assert call.ended_at == call.started_at + timedelta(seconds=95)
    assert call.disposition == "answered" and call.recording == "1710400502.3514621"


def test_zadarma_missed_queue():
    out = zadarma_feed(cloud.ZadarmaCallBuilder(), s.zadarma_missed_queue())
    assert sorted(r.extension for r in out if isinstance(r, Ringing)) == ["101", "102"]
    [call] = finished(out)
    assert call.direction == "inbound" and call.external_number == "+79031112233"
    assert call.rang == ("101", "102") and call.answered_by is None and not call.answered
    assert (call.disposition, call.talk_seconds, call.recording) == ("no_answer", 0, None)


def test_zadarma_outbound():
    out = zadarma_feed(cloud.ZadarmaCallBuilder(), s.zadarma_outbound())
    [ring] = [x for x in out if isinstance(x, Ringing)]
    assert (ring.extension, ring.external_number, ring.direction) == ("102", "+74951112233",
                                                                      "outbound")
    [call] = finished(out)
    assert call.direction == "outbound" and call.answered_by == "102"
    assert call.our_number == "+74951234567" and call.external_number == "+74951112233"
    assert (call.talk_seconds, call.disposition) == (42, "answered")
    assert call.recording == "1710407702.3514977"


@pytest.mark.parametrize("given, expected", [
    ("answered", "answered"), ("busy", "busy"), ("cancel", "cancelled"),
    ("no answer", "no_answer"), ("failed", "failed"), ("no money", "failed"),
    ("line limit", "failed"),
])
def test_zadarma_disposition_mapping(given, expected):
    events = s.zadarma_missed_queue()
    events[-1] = ("NOTIFY_END", {**events[-1][1], "disposition": given})
    [call] = finished(zadarma_feed(cloud.ZadarmaCallBuilder(), events))
    assert call.disposition == expected and call.disposition in DISPOSITIONS


@pytest.mark.parametrize("sample", [s.zadarma_answered_inbound, s.zadarma_missed_queue,
                                    s.zadarma_outbound])
def test_zadarma_redelivery_changes_nothing(sample):
    builder = cloud.ZadarmaCallBuilder()
    events = sample()
    first = zadarma_feed(builder, events)
    assert zadarma_feed(builder, events) == []                     # all of it again
    for event in events:                                           # and each one on its own
        assert zadarma_feed(builder, [event]) == []
    [call] = finished(first)
    assert builder.finished(call.key) == call


def test_zadarma_record_before_end():
    events = s.zadarma_answered_inbound()
    record = events.pop()
    events.insert(2, record)
    end = events[-1]
    events[-1] = ("NOTIFY_END", {**end[1], "call_id_with_rec": ""})   # END names no file
    [call] = finished(zadarma_feed(cloud.ZadarmaCallBuilder(), events))
    assert call.recording == "1710400502.3514621"


def test_zadarma_record_after_end_completes_the_call():
    events = s.zadarma_answered_inbound()
    events[3] = ("NOTIFY_END", {**events[3][1], "call_id_with_rec": ""})
    builder = cloud.ZadarmaCallBuilder()
    out = zadarma_feed(builder, events[:4])
    [call] = finished(out)
    assert call.recording is None
    [again] = finished(zadarma_feed(builder, events[4:]))
    assert again.key == call.key and again.recording == "1710400502.3514621"
    assert again == FinishedCall(**{**call.__dict__, "recording": "1710400502.3514621"})
    assert builder.finished(call.key).recording == "1710400502.3514621"
    assert zadarma_feed(builder, events[4:]) == []


def test_zadarma_record_after_end_that_named_it_changes_nothing():
    builder = cloud.ZadarmaCallBuilder()
    events = s.zadarma_answered_inbound()
    [call] = finished(zadarma_feed(builder, events[:4]))
    assert call.recording == "1710400502.3514621"
    assert zadarma_feed(builder, events[4:]) == []


def test_zadarma_end_alone_still_makes_the_call():
    [call] = finished(zadarma_feed(cloud.ZadarmaCallBuilder(), s.zadarma_answered_inbound()[3:4]))
    assert call.answered_by == "101" and call.rang == ("101",) and call.recording


def test_zadarma_not_recorded_keeps_no_recording():
    events = s.zadarma_outbound()[:2]
    events[1] = ("NOTIFY_OUT_END", {**events[1][1], "is_recorded": "0"})
    [call] = finished(zadarma_feed(cloud.ZadarmaCallBuilder(), events))
    assert call.recording is None


def test_samples_sign_like_the_pbx():
    form = s.mango_form({"a": 1}, KEY, SALT)
    assert json.loads(form["json"]) == {"a": 1}
    form, headers = s.zadarma_request("NOTIFY_RECORD", {"pbx_call_id": "in_1",
                                                        "call_id_with_rec": "r"}, SECRET)
    assert headers["Signature"] == cloud.zadarma_sign("NOTIFY_RECORD", form, SECRET)
